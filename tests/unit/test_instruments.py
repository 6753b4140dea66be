"""Instrument conversion and the InstrumentProvider cache, against hand-written markets and a fake client."""

from __future__ import annotations

import asyncio
import json
import pickle
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from nautilus_dydx.core.errors import (
    BadRequestError,
    ConfigError,
    DecodeError,
    DydxError,
    HttpError,
    NotFoundError,
    VenueErrorItem,
)
from nautilus_dydx.core.units import MarketParams, Rounding
from nautilus_dydx.schemas import stream
from nautilus_dydx.schemas.rest import PerpetualMarket, PerpetualMarketsResponse, decode
from nautilus_dydx.services.instruments import (
    Instrument,
    InstrumentNotFoundError,
    InstrumentProvider,
    PerpetualMarketStatus,
    PerpetualMarketType,
)
from nautilus_dydx.transport.http import HttpClient

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "instruments"
S = PerpetualMarketStatus


def _body(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def _markets(name: str = "markets.json") -> dict[str, PerpetualMarket]:
    return decode(_body(name), PerpetualMarketsResponse).markets


def _market(ticker: str, name: str = "markets.json") -> PerpetualMarket:
    return _markets(name)[ticker]


class FakeHttp:
    """Answers get_perpetual_markets from a dict of markets, as the indexer does, and counts calls."""

    def __init__(self, markets: dict[str, PerpetualMarket]) -> None:
        self.markets = dict(markets)
        self.calls: list[str | None] = []
        self.gate: asyncio.Event | None = None
        self.fail: DydxError | None = None

    async def get_perpetual_markets(self, ticker: str | None = None) -> PerpetualMarketsResponse:
        self.calls.append(ticker)
        if self.gate is not None:
            await self.gate.wait()
        if self.fail is not None:
            raise self.fail
        if ticker is None:
            return PerpetualMarketsResponse(markets=dict(self.markets))
        if ticker not in self.markets:
            item = VenueErrorItem(msg="ticker must be a valid ticker", param="ticker", location="query")
            raise BadRequestError("ticker must be a valid ticker", status=400, errors=(item,))
        return PerpetualMarketsResponse(markets={ticker: self.markets[ticker]})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _provider(fake: FakeHttp, **kwargs: Any) -> InstrumentProvider:
    return InstrumentProvider(cast(HttpClient, fake), **kwargs)


def _clocked_provider(ttl: float) -> tuple[FakeHttp, Clock, InstrumentProvider]:
    """A provider over the standard markets, on a clock the test moves by hand."""
    fake, clock = FakeHttp(_markets()), Clock()
    return fake, clock, _provider(fake, ttl=ttl, clock=clock)


# -- Instrument ------------------------------------------------------------------------------------


def test_btc_instrument_fields() -> None:
    btc = Instrument.from_market(_market("BTC-USD"))
    assert (btc.ticker, btc.base, btc.quote, btc.clob_pair_id) == ("BTC-USD", "BTC", "USD", 0)
    assert btc.params == MarketParams(-10, -9, 1_000_000, 100_000)
    assert (btc.tick_size, btc.step_size, btc.min_order_size) == (
        Decimal(1),
        Decimal("0.0001"),
        Decimal("0.0001"),
    )
    assert (btc.price_decimals, btc.size_decimals) == (0, 4)
    assert btc.initial_margin_fraction == Decimal("0.05")
    assert btc.maintenance_margin_fraction == Decimal("0.03")
    assert btc.oracle_price == Decimal("50000.12")
    assert btc.status is S.ACTIVE
    assert btc.market_type is PerpetualMarketType.CROSS
    assert btc.params.to_subticks("50000", Rounding.EXACT) == 5_000_000_000


@pytest.mark.parametrize(
    ("ticker", "status", "tradable", "post_only"),
    [
        ("BTC-USD", S.ACTIVE, True, False),
        ("ETH-USD", S.PAUSED, False, False),
        ("SOL-USD", S.CANCEL_ONLY, False, False),
        ("LINK-USD", S.POST_ONLY, True, True),
        ("NEWT-USD", S.INITIALIZING, True, True),
        ("OLD-USD", S.FINAL_SETTLEMENT, False, False),
    ],
)
def test_every_status(ticker: str, status: PerpetualMarketStatus, tradable: bool, post_only: bool) -> None:
    instrument = Instrument.from_market(_market(ticker))
    assert instrument.status is status
    assert instrument.is_tradable is tradable
    assert instrument.post_only is post_only


@pytest.mark.parametrize(
    ("ticker", "tick", "step", "price_decimals", "size_decimals"),
    [
        ("ETH-USD", "0.1", "0.001", 1, 3),
        ("SOL-USD", "0.01", "0.1", 2, 1),
        ("LINK-USD", "0.001", "1", 3, 0),
        ("NEWT-USD", "0.0001", "10", 4, 0),
        ("OLD-USD", "0.01", "0.01", 2, 2),
    ],
)
def test_increments_and_decimals(
    ticker: str, tick: str, step: str, price_decimals: int, size_decimals: int
) -> None:
    instrument = Instrument.from_market(_market(ticker))
    assert instrument.tick_size == Decimal(tick)
    assert instrument.step_size == Decimal(step)
    assert (instrument.price_decimals, instrument.size_decimals) == (price_decimals, size_decimals)


def test_isolated_market() -> None:
    link = Instrument.from_market(_market("LINK-USD"))
    assert link.market_type is PerpetualMarketType.ISOLATED
    assert link.initial_margin_fraction == Decimal("0.2")


def test_null_oracle_price_is_none() -> None:
    newt = Instrument.from_market(_market("NEWT-USD"))
    assert newt.oracle_price is None
    assert newt.market_type is PerpetualMarketType.ISOLATED


def test_empty_oracle_price_string_is_none() -> None:
    # Structs are not validated on construction: this is what a lax decoder would hand over for "".
    market = msgspec.structs.replace(_market("BTC-USD"), oracle_price=cast(Any, ""))
    assert Instrument.from_market(market).oracle_price is None


def test_stream_snapshot_market_converts_like_rest() -> None:
    raw = json.loads(_body("markets.json"))["markets"]["SOL-USD"]
    snap = msgspec.json.decode(json.dumps(raw), type=stream.PerpetualMarket, strict=False)
    assert Instrument.from_market(snap) == Instrument.from_market(_market("SOL-USD"))


@pytest.mark.parametrize(
    ("ticker", "words"),
    [
        ("TICK-USD", "tick_size"),
        ("STEP-USD", "step_size"),
        ("MARGIN-USD", "maintenance margin"),
        ("ZEROIMF-USD", "initial margin"),
        ("STATUS-USD", "HALTED"),
        ("TYPE-USD", "SPOT"),
        ("NODASH", "BASE-QUOTE"),
        ("ZEROSTEP-USD", "step_base_quantums"),
        ("NEGORACLE-USD", "oracle price"),
    ],
)
def test_inconsistent_markets_raise_decode_error(ticker: str, words: str) -> None:
    with pytest.raises(DecodeError, match=ticker) as info:
        Instrument.from_market(_market(ticker, "inconsistent.json"))
    assert words in str(info.value)


def test_missing_fields_of_a_stream_market() -> None:
    with pytest.raises(DecodeError, match=r"missing .*atomicResolution"):
        Instrument.from_market(stream.PerpetualMarket(ticker="X-USD", clob_pair_id=1, status="ACTIVE"))


def test_direct_construction_validates() -> None:
    with pytest.raises(ConfigError, match="clob_pair_id"):
        Instrument(
            ticker="BTC-USD",
            clob_pair_id=-1,
            status=S.ACTIVE,
            market_type=PerpetualMarketType.CROSS,
            params=MarketParams(-10, -9, 1_000_000, 100_000),
            initial_margin_fraction=Decimal("0.05"),
            maintenance_margin_fraction=Decimal("0.03"),
        )


def test_instrument_is_frozen_and_hashable() -> None:
    btc = Instrument.from_market(_market("BTC-USD"))
    with pytest.raises(AttributeError):
        btc.ticker = "ETH-USD"  # type: ignore[misc]
    assert len({btc, Instrument.from_market(_market("BTC-USD"))}) == 1


def test_ticker_with_dashes_in_base() -> None:
    market = msgspec.structs.replace(_market("BTC-USD"), ticker="A,B-C,0X1-USD")
    instrument = Instrument.from_market(market)
    assert (instrument.base, instrument.quote) == ("A,B-C,0X1", "USD")


@given(
    ar=st.integers(-15, 0),
    qce=st.integers(-12, 0),
    sbq_exp=st.integers(0, 9),
    spt_exp=st.integers(0, 9),
)
def test_consistent_params_always_convert(ar: int, qce: int, sbq_exp: int, spt_exp: int) -> None:
    params = MarketParams(ar, qce, 10**sbq_exp, 10**spt_exp)
    market = msgspec.structs.replace(
        _market("BTC-USD"),
        atomic_resolution=ar,
        quantum_conversion_exponent=qce,
        step_base_quantums=10**sbq_exp,
        subticks_per_tick=10**spt_exp,
        tick_size=params.tick_size,
        step_size=params.step_size,
    )
    instrument = Instrument.from_market(market)
    assert instrument.params == params
    assert Decimal(1).scaleb(-instrument.price_decimals) <= instrument.tick_size
    assert instrument.tick_size.scaleb(instrument.price_decimals) % 1 == 0
    assert instrument.step_size.scaleb(instrument.size_decimals) % 1 == 0


def test_updated_applies_partial_trading_fields() -> None:
    btc = Instrument.from_market(_market("BTC-USD"))
    paused = btc.updated(stream.MarketTradingUpdate(status="PAUSED", next_funding_rate=Decimal("0.001")))
    assert paused.status is S.PAUSED
    assert paused.params == btc.params
    finer = btc.updated(stream.MarketTradingUpdate(subticks_per_tick=10_000, tick_size=Decimal("0.1")))
    assert finer.tick_size == Decimal("0.1")
    with pytest.raises(DecodeError, match="tick_size"):
        btc.updated(stream.MarketTradingUpdate(subticks_per_tick=10_000, tick_size=Decimal(1)))
    with pytest.raises(DecodeError, match="tick_size"):
        btc.updated(stream.MarketTradingUpdate(tick_size=Decimal("0.5")))
    with pytest.raises(DecodeError, match="status"):
        btc.updated(stream.MarketTradingUpdate(status="HALTED"))


# -- captured real markets -------------------------------------------------------------------------


def _real_bodies(shared_fixtures: Path) -> list[tuple[str, bytes]]:
    legacy = shared_fixtures / "dydx-real" / "python-legacy" / "http"
    bodies = [(p.name, p.read_bytes()) for p in sorted(legacy.glob("list_perpetual_markets*.json"))]
    rust = shared_fixtures / "dydx-real" / "rust" / "http_get_perpetual_markets.json"
    if rust.is_file():
        bodies.append((rust.name, json.dumps(json.loads(rust.read_bytes())["result"]).encode()))
    return bodies


def test_every_captured_market_converts(shared_fixtures: Path) -> None:
    bodies = _real_bodies(shared_fixtures)
    if not bodies:
        pytest.skip("no captured perpetualMarkets bodies in ../shared")
    seen_types: set[PerpetualMarketType] = set()
    seen_none_oracle = 0
    for name, body in bodies:
        for ticker, market in decode(body, PerpetualMarketsResponse).markets.items():
            instrument = Instrument.from_market(market)
            assert instrument.ticker == ticker, name
            assert instrument.tick_size == market.tick_size, (name, ticker)
            assert instrument.step_size == market.step_size, (name, ticker)
            seen_types.add(instrument.market_type)
            seen_none_oracle += instrument.oracle_price is None
    assert seen_types == {PerpetualMarketType.CROSS, PerpetualMarketType.ISOLATED}
    assert seen_none_oracle >= 1


async def test_captured_stream_updates_fold(shared_fixtures: Path) -> None:
    ws = shared_fixtures / "dydx-real" / "rust" / "ws_markets_status_update.json"
    if not ws.is_file():
        pytest.skip(f"{ws} absent")
    fake = FakeHttp(_markets())
    provider = _provider(fake)
    await provider.load_all()
    message = stream.decode_stream_message(ws.read_bytes())
    assert isinstance(message, stream.MarketsUpdate)
    assert provider.apply_markets_update(message) == ["BTC-USD", "ETH-USD"]
    assert provider.get_cached("BTC-USD") is not None
    assert provider.get_cached("BTC-USD").status is S.PAUSED  # type: ignore[union-attr]
    assert provider.get_cached("ETH-USD").status is S.ACTIVE  # type: ignore[union-attr]


# -- provider: loading and cache -------------------------------------------------------------------


async def test_load_all_one_request_then_cached() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake)
    loaded = await provider.load_all()
    assert [i.ticker for i in loaded] == sorted(_markets())
    assert fake.calls == [None]
    assert (await provider.get("ETH-USD")).status is S.PAUSED
    assert fake.calls == [None]
    assert [i.ticker for i in provider.list()] == sorted(_markets())
    assert len(provider) == 6
    assert "BTC-USD" in provider


async def test_load_all_leaves_out_inconsistent_markets_and_get_raises_their_error() -> None:
    markets = _markets() | {"TICK-USD": _market("TICK-USD", "inconsistent.json")}
    fake = FakeHttp(markets)
    provider = _provider(fake)
    loaded = await provider.load_all()
    assert "TICK-USD" not in {i.ticker for i in loaded}
    with pytest.raises(DecodeError, match="tick_size"):
        await provider.get("TICK-USD")
    assert fake.calls == [None]  # remembered, not fetched again while fresh


async def test_get_fetches_one_market_when_absent() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake)
    assert provider.get_cached("BTC-USD") is None
    btc = await provider.get("BTC-USD")
    assert btc.ticker == "BTC-USD"
    assert fake.calls == ["BTC-USD"]
    assert provider.get_cached("BTC-USD") is btc


async def test_ttl_expiry_refetches() -> None:
    fake, clock, provider = _clocked_provider(ttl=10.0)
    await provider.get("BTC-USD")
    clock.now += 9.999
    await provider.get("BTC-USD")
    assert fake.calls == ["BTC-USD"]
    assert provider.is_fresh("BTC-USD")
    fake.markets["BTC-USD"] = msgspec.structs.replace(fake.markets["BTC-USD"], status="CANCEL_ONLY")
    clock.now += 0.001
    assert not provider.is_fresh("BTC-USD")
    assert provider.get_cached("BTC-USD").status is S.ACTIVE  # type: ignore[union-attr]  # stale but readable
    assert (await provider.get("BTC-USD")).status is S.CANCEL_ONLY
    assert fake.calls == ["BTC-USD", "BTC-USD"]


async def test_zero_ttl_always_fetches() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake, ttl=0, clock=Clock())
    await provider.get("BTC-USD")
    await provider.get("BTC-USD")
    assert fake.calls == ["BTC-USD", "BTC-USD"]


async def test_failed_refresh_raises_and_keeps_stale_entry() -> None:
    fake, clock, provider = _clocked_provider(ttl=5.0)
    await provider.get("BTC-USD")
    clock.now += 6
    fake.fail = HttpError("503", status=503)
    with pytest.raises(HttpError):
        await provider.get("BTC-USD")
    assert provider.get_cached("BTC-USD") is not None


async def test_lru_eviction() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake, max_size=2, clock=Clock())
    await provider.get("BTC-USD")
    await provider.get("ETH-USD")
    assert provider.get_cached("BTC-USD") is not None  # BTC now most recently used
    await provider.get("SOL-USD")
    assert {i.ticker for i in provider.list()} == {"BTC-USD", "SOL-USD"}
    await provider.get("BTC-USD")
    await provider.get("LINK-USD")
    assert {i.ticker for i in provider.list()} == {"BTC-USD", "LINK-USD"}
    assert fake.calls == ["BTC-USD", "ETH-USD", "SOL-USD", "LINK-USD"]


async def test_load_all_beyond_max_size_keeps_the_limit() -> None:
    provider = _provider(FakeHttp(_markets()), max_size=3)
    await provider.load_all()
    assert len(provider) == 3


async def test_load_all_returns_every_valid_market_even_beyond_max_size() -> None:
    # The result is what the response held, not what is left in the cache after LRU eviction.
    markets = _markets() | {"TICK-USD": _market("TICK-USD", "inconsistent.json")}
    fake = FakeHttp(markets)
    provider = _provider(fake, max_size=2)
    loaded = await provider.load_all()
    assert [i.ticker for i in loaded] == sorted(_markets())
    assert len(provider) == 2
    # The cache keeps the last max_size valid markets in the venue's order, the very same objects.
    kept = [t for t in markets if t != "TICK-USD"][-2:]
    assert [i.ticker for i in provider.list()] == sorted(kept)
    assert all(provider.get_cached(i.ticker) is i for i in loaded if i.ticker in kept)
    # An evicted market is fetched on its own when asked for.
    evicted = loaded[0].ticker
    assert evicted not in kept
    assert (await provider.get(evicted)) == loaded[0]
    assert fake.calls == [None, evicted]


async def test_refresh_of_everything_returns_every_valid_market_beyond_max_size() -> None:
    provider = _provider(FakeHttp(_markets()), max_size=1)
    assert [i.ticker for i in await provider.refresh()] == sorted(_markets())


async def test_unknown_ticker_lists_close_matches() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake)
    await provider.load_all()
    with pytest.raises(InstrumentNotFoundError) as info:
        await provider.get("btc-usd")
    assert info.value.suggestions[0] == "BTC-USD"
    assert "did you mean BTC-USD" in str(info.value)
    with pytest.raises(NotFoundError) as info2:
        await provider.get("BTC-USDT")
    assert "BTC-USD" in cast(InstrumentNotFoundError, info2.value).suggestions
    with pytest.raises(LookupError):
        await provider.get("ZZZZZZ")
    assert isinstance(info.value, DydxError)
    clone = pickle.loads(pickle.dumps(info.value))
    assert (clone.ticker, clone.suggestions) == ("btc-usd", info.value.suggestions)


async def test_delisted_market_is_dropped() -> None:
    fake, clock, provider = _clocked_provider(ttl=1.0)
    await provider.get("OLD-USD")
    del fake.markets["OLD-USD"]
    clock.now += 2
    with pytest.raises(InstrumentNotFoundError):
        await provider.get("OLD-USD")
    assert provider.get_cached("OLD-USD") is None


async def test_other_bad_requests_pass_through() -> None:
    fake = FakeHttp(_markets())
    fake.fail = BadRequestError("bad", status=400, errors=(VenueErrorItem(msg="limit", param="limit"),))
    with pytest.raises(BadRequestError) as info:
        await _provider(fake).get("BTC-USD")
    assert not isinstance(info.value, InstrumentNotFoundError)


@pytest.mark.parametrize("ticker", ["", "  ", None, 5])
async def test_bad_ticker_argument(ticker: Any) -> None:
    with pytest.raises(ConfigError):
        await _provider(FakeHttp({})).get(ticker)


@pytest.mark.parametrize("kwargs", [{"ttl": -1}, {"ttl": True}, {"max_size": 0}, {"max_size": 1.5}])
def test_bad_config(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        _provider(FakeHttp({}), **kwargs)


async def test_refresh_and_invalidate() -> None:
    fake = FakeHttp(_markets())
    provider = _provider(fake)
    await provider.load_all()
    await provider.refresh("BTC-USD")
    await provider.refresh()
    assert fake.calls == [None, "BTC-USD", None]
    provider.invalidate("BTC-USD")
    assert provider.get_cached("BTC-USD") is None
    provider.invalidate()
    assert provider.list() == []


# -- provider: single-flight -----------------------------------------------------------------------


async def test_concurrent_gets_of_a_stale_entry_make_one_request() -> None:
    fake, clock, provider = _clocked_provider(ttl=1.0)
    await provider.get("BTC-USD")
    clock.now += 5
    fake.gate = asyncio.Event()
    waiters = [asyncio.create_task(provider.get("BTC-USD")) for _ in range(20)]
    await asyncio.sleep(0)
    fake.gate.set()
    results = await asyncio.gather(*waiters)
    assert fake.calls == ["BTC-USD", "BTC-USD"]
    assert all(r is results[0] for r in results)


async def test_single_flight_shares_errors_and_then_retries() -> None:
    fake = FakeHttp(_markets())
    fake.gate = asyncio.Event()
    fake.fail = HttpError("502", status=502)
    provider = _provider(fake)
    waiters = [asyncio.create_task(provider.get("BTC-USD")) for _ in range(3)]
    await asyncio.sleep(0)
    fake.gate.set()
    outcomes = await asyncio.gather(*waiters, return_exceptions=True)
    assert all(isinstance(o, HttpError) for o in outcomes)
    assert fake.calls == ["BTC-USD"]
    fake.fail = None
    assert (await provider.get("BTC-USD")).ticker == "BTC-USD"
    assert fake.calls == ["BTC-USD", "BTC-USD"]


async def test_cancelled_waiter_does_not_cancel_the_shared_request() -> None:
    fake = FakeHttp(_markets())
    fake.gate = asyncio.Event()
    provider = _provider(fake)
    first = asyncio.create_task(provider.get("BTC-USD"))
    second = asyncio.create_task(provider.get("BTC-USD"))
    await asyncio.sleep(0)
    first.cancel()
    fake.gate.set()
    assert (await second).ticker == "BTC-USD"
    assert first.cancelled()
    assert fake.calls == ["BTC-USD"]


async def test_get_during_load_all_waits_for_it() -> None:
    fake = FakeHttp(_markets())
    fake.gate = asyncio.Event()
    provider = _provider(fake)
    loading = asyncio.create_task(provider.load_all())
    loading_again = asyncio.create_task(provider.load_all())
    await asyncio.sleep(0)
    getting = asyncio.create_task(provider.get("SOL-USD"))
    await asyncio.sleep(0)
    fake.gate.set()
    assert (await getting).ticker == "SOL-USD"
    assert await loading == await loading_again
    assert fake.calls == [None]


# -- provider: v4_markets --------------------------------------------------------------------------


def _frame(contents: dict[str, Any], kind: str = "channel_data") -> bytes:
    envelope: dict[str, Any] = {
        "type": kind,
        "connection_id": "c",
        "message_id": 3,
        "channel": "v4_markets",
        "contents": contents if kind != "channel_batch_data" else [contents],
    }
    if kind != "subscribed":
        envelope["version"] = "1.0.0"
    return json.dumps(envelope).encode()


async def _loaded(**kwargs: Any) -> tuple[InstrumentProvider, FakeHttp]:
    fake = FakeHttp(_markets())
    provider = _provider(fake, **kwargs)
    await provider.load_all()
    return provider, fake


async def test_trading_update_changes_status_and_params_without_rest() -> None:
    clock = Clock()
    provider, fake = await _loaded(clock=clock, ttl=10.0)
    clock.now += 3
    message = stream.decode_stream_message(
        _frame({"trading": {"ETH-USD": {"status": "ACTIVE", "subticksPerTick": 10000, "tickSize": "0.01"}}})
    )
    assert provider.apply_markets_update(cast(stream.MarketsUpdate, message)) == ["ETH-USD"]
    eth = provider.get_cached("ETH-USD")
    assert eth is not None
    assert (eth.status, eth.tick_size, eth.price_decimals) == (S.ACTIVE, Decimal("0.01"), 2)
    clock.now += 7  # the update did not make the entry fresh again
    assert not provider.is_fresh("ETH-USD")
    assert fake.calls == [None]


async def test_oracle_prices_update() -> None:
    provider, _ = await _loaded()
    frame = _frame(
        {
            "oraclePrices": {
                "NEWT-USD": {"oraclePrice": "0.5", "effectiveAt": "2024-08-17T17:50:25.837Z", "marketId": 4},
                "UNKNOWN-USD": {"oraclePrice": "1"},
                "BTC-USD": {"oraclePrice": "50000.12"},
            }
        }
    )
    changed = provider.apply_markets_update(cast(stream.MarketsUpdate, stream.decode_stream_message(frame)))
    assert changed == ["NEWT-USD"]  # BTC unchanged, UNKNOWN not cached
    assert provider.get_cached("NEWT-USD").oracle_price == Decimal("0.5")  # type: ignore[union-attr]


async def test_batch_updates_apply_in_order() -> None:
    provider, _ = await _loaded()
    batch = stream.MarketsBatch(
        connection_id="c",
        message_id=1,
        id=None,
        version="1.0.0",
        contents=[
            stream.MarketsUpdateContents(trading={"BTC-USD": stream.MarketTradingUpdate(status="PAUSED")}),
            stream.MarketsUpdateContents(
                trading={"BTC-USD": stream.MarketTradingUpdate(status="CANCEL_ONLY")}
            ),
        ],
    )
    assert provider.apply_markets_update(batch) == ["BTC-USD"]
    assert provider.get_cached("BTC-USD").status is S.CANCEL_ONLY  # type: ignore[union-attr]


async def test_inconsistent_update_drops_the_market_and_keeps_the_others() -> None:
    provider, fake = await _loaded()
    update = stream.MarketsUpdateContents(
        trading={
            "BTC-USD": stream.MarketTradingUpdate(tick_size=Decimal("0.5")),
            "ETH-USD": stream.MarketTradingUpdate(status="ACTIVE"),
        }
    )
    assert provider.apply_markets_update(update) == ["ETH-USD"]
    assert provider.get_cached("BTC-USD") is None
    assert provider.get_cached("ETH-USD") is not None
    # Only the update was bad: the next get() asks the venue again and gets the market back.
    btc = await provider.get("BTC-USD")
    assert btc.tick_size == Decimal(1)
    assert fake.calls == [None, "BTC-USD"]


async def test_market_dropped_by_a_bad_oracle_price_is_fetched_on_next_get() -> None:
    provider, fake = await _loaded(ttl=3600.0)
    update = stream.MarketsUpdateContents(
        oracle_prices={"SOL-USD": stream.OraclePrice(oracle_price=Decimal("-1"))}
    )
    assert provider.apply_markets_update(update) == []
    assert provider.get_cached("SOL-USD") is None
    assert (await provider.get("SOL-USD")).oracle_price == _market("SOL-USD").oracle_price
    assert fake.calls == [None, "SOL-USD"]


async def test_a_venue_side_rejection_is_still_remembered_after_a_stream_rejection() -> None:
    # A stream rejection only evicts; a market the venue itself serves inconsistent stays
    # remembered (no request per get()) until its TTL ends.
    clock = Clock()
    markets = _markets() | {"TICK-USD": _market("TICK-USD", "inconsistent.json")}
    fake = FakeHttp(markets)
    provider = _provider(fake, clock=clock, ttl=10.0)
    await provider.load_all()
    provider.apply_markets_update(
        stream.MarketsUpdateContents(
            trading={"BTC-USD": stream.MarketTradingUpdate(tick_size=Decimal("0.5"))}
        )
    )
    for _ in range(3):
        with pytest.raises(DecodeError):
            await provider.get("TICK-USD")
    assert fake.calls == [None]
    clock.now += 10.0
    with pytest.raises(DecodeError):
        await provider.get("TICK-USD")
    assert fake.calls == [None, "TICK-USD"]


def _traceback_length(exc: BaseException) -> int:
    count, tb = 0, exc.__traceback__
    while tb is not None:
        count, tb = count + 1, tb.tb_next
    return count


async def test_remembered_rejection_is_raised_as_a_fresh_error_each_time() -> None:
    markets = _markets() | {"TICK-USD": _market("TICK-USD", "inconsistent.json")}
    fake = FakeHttp(markets)
    provider = _provider(fake)
    await provider.load_all()
    raised: list[DecodeError] = []
    for _ in range(200):
        try:
            await provider.get("TICK-USD")
        except DecodeError as exc:
            raised.append(exc)
    assert len(raised) == 200
    first, last = raised[0], raised[-1]
    # The same error each time, but a new object: re-raising one stored object grew its traceback
    # (and the frames it pins) by one call chain per get().
    assert first is not last
    assert (type(last), last.args, last.payload) == (type(first), first.args, first.payload)
    assert _traceback_length(last) == _traceback_length(first)
    assert fake.calls == [None]


async def test_rejection_found_by_a_single_fetch_is_raised_fresh_too() -> None:
    fake = FakeHttp({"TICK-USD": _market("TICK-USD", "inconsistent.json")})
    provider = _provider(fake, ttl=3600.0)
    raised: list[DecodeError] = []
    for _ in range(50):
        with pytest.raises(DecodeError) as info:
            await provider.get("TICK-USD")
        raised.append(info.value)
    assert len({id(error) for error in raised}) == 50
    assert {str(error) for error in raised} == {str(raised[0])}
    # The first came through the shared fetch, the rest from the cache: one traceback length each.
    assert {_traceback_length(error) for error in raised[1:]} == {_traceback_length(raised[1])}
    assert fake.calls == ["TICK-USD"]


async def test_partial_update_of_unknown_market_is_ignored_and_full_listing_added() -> None:
    provider, _ = await _loaded()
    assert (
        provider.apply_markets_update(
            stream.MarketsUpdateContents(trading={"NEW-USD": stream.MarketTradingUpdate(status="ACTIVE")})
        )
        == []
    )
    raw = json.loads(_body("markets.json"))["markets"]["SOL-USD"] | {"ticker": "NEW-USD", "clobPairId": "42"}
    listing = msgspec.json.decode(json.dumps(raw), type=stream.MarketTradingUpdate, strict=False)
    assert provider.apply_markets_update(stream.MarketsUpdateContents(trading={"NEW-USD": listing})) == [
        "NEW-USD"
    ]
    assert provider.get_cached("NEW-USD").clob_pair_id == 42  # type: ignore[union-attr]


async def test_snapshot_fills_the_cache_fresh() -> None:
    clock = Clock()
    fake = FakeHttp({})
    provider = _provider(fake, clock=clock, ttl=10.0)
    raw = json.loads(_body("markets.json"))
    raw["markets"]["TICK-USD"] = json.loads(_body("inconsistent.json"))["markets"]["TICK-USD"]
    message = stream.decode_stream_message(_frame(raw, "subscribed"))
    assert isinstance(message, stream.MarketsSubscribed)
    changed = provider.apply_markets_update(message)
    assert sorted(changed) == sorted(_markets())
    assert provider.is_fresh("BTC-USD")
    assert (await provider.get("LINK-USD")).market_type is PerpetualMarketType.ISOLATED
    assert fake.calls == []
    with pytest.raises(InstrumentNotFoundError) as info:
        await provider.get("ETH-US")
    assert "ETH-USD" in info.value.suggestions
