"""InstrumentProvider against the emulator over real sockets: REST loading, errors, status and oracle changes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from nautilus_dydx.core.retry import ExponentialBackoff
from nautilus_dydx.core.units import Rounding
from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.schemas import stream
from nautilus_dydx.schemas.rest import PerpetualMarketsResponse
from nautilus_dydx.services.instruments import (
    InstrumentNotFoundError,
    InstrumentProvider,
    PerpetualMarketStatus,
)
from nautilus_dydx.transport.http import HttpClient

# Generous bound on waiting for the emulator's next blocks; never asserted as a timing.
DEADLINE = 20.0


@pytest.fixture
async def emulator() -> AsyncIterator[Emulator]:
    async with Emulator(port=0, block_time=0.1, seed=1, synthetic=False, rate_limit=None) as emu:
        yield emu


@pytest.fixture
async def http(emulator: Emulator) -> AsyncIterator[HttpClient]:
    async with HttpClient(emulator.indexer_url, retry=ExponentialBackoff(max_attempts=1)) as client:
        yield client


async def test_load_all_matches_the_indexer(emulator: Emulator, http: HttpClient) -> None:
    provider = InstrumentProvider(http)
    loaded = await provider.load_all()
    raw = await http.get_perpetual_markets()
    assert [i.ticker for i in loaded] == sorted(raw.markets)
    for instrument in loaded:
        market = raw.markets[instrument.ticker]
        assert instrument.clob_pair_id == market.clob_pair_id
        assert instrument.tick_size == market.tick_size
        assert instrument.step_size == market.step_size
        assert instrument.status is PerpetualMarketStatus.ACTIVE
        assert instrument.oracle_price is not None
    btc = await provider.get("BTC-USD")
    assert (btc.base, btc.quote) == ("BTC", "USD")
    assert btc.params.to_quantums(btc.min_order_size, Rounding.EXACT) == btc.params.step_base_quantums


async def test_get_one_market_and_unknown_ticker(http: HttpClient) -> None:
    provider = InstrumentProvider(http)
    eth = await provider.get("ETH-USD")
    assert eth.ticker == "ETH-USD"
    assert [i.ticker for i in provider.list()] == ["ETH-USD"]
    await provider.load_all()
    with pytest.raises(InstrumentNotFoundError) as info:
        await provider.get("BTC-USDT")
    assert info.value.status == 400  # the indexer's "ticker must be a valid ticker"
    assert "BTC-USD" in info.value.suggestions


async def test_concurrent_gets_share_one_request(emulator: Emulator, http: HttpClient) -> None:
    provider = InstrumentProvider(http)
    results = await asyncio.gather(*(provider.get("SOL-USD") for _ in range(10)))
    assert all(r is results[0] for r in results)
    assert len(provider) == 1


async def _next_block(emulator: Emulator) -> None:
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{emulator.indexer_url}/emulator/block") as r,
    ):
        assert r.status == 200


async def test_status_change_seen_by_refresh(emulator: Emulator, http: HttpClient) -> None:
    provider = InstrumentProvider(http, ttl=3600.0)
    btc = await provider.get("BTC-USD")
    emulator.engine.set_market_status(btc.clob_pair_id, "PAUSED")
    await _next_block(emulator)
    assert (await provider.get("BTC-USD")).status is PerpetualMarketStatus.ACTIVE  # fresh: cached
    (paused,) = await provider.refresh("BTC-USD")
    assert paused.status is PerpetualMarketStatus.PAUSED
    assert not paused.is_tradable


async def test_v4_markets_stream_folds_status_and_oracle(emulator: Emulator, http: HttpClient) -> None:
    provider = InstrumentProvider(http, ttl=3600.0)
    await provider.load_all()
    async with aiohttp.ClientSession() as session, session.ws_connect(emulator.ws_url) as ws:
        await ws.send_str(json.dumps({"type": "subscribe", "channel": "v4_markets"}))
        emulator.engine.set_market_status(1, "CANCEL_ONLY")  # ETH-USD
        async with session.post(
            f"{emulator.indexer_url}/emulator/oracle", json={"ticker": "SOL-USD", "price": "123.45"}
        ) as response:
            assert response.status == 200, await response.text()
        await _next_block(emulator)
        saw_status = saw_oracle = False

        async def consume() -> None:
            nonlocal saw_status, saw_oracle
            async for frame in ws:
                message = stream.decode_stream_message(frame.data)
                if isinstance(message, stream.MarketsSubscribed | stream.MarketsUpdate | stream.MarketsBatch):
                    provider.apply_markets_update(message)
                if isinstance(message, stream.MarketsUpdate):
                    if message.contents.trading and "ETH-USD" in message.contents.trading:
                        saw_status = True
                    prices = message.contents.oracle_prices or {}
                    if prices.get("SOL-USD") is not None and prices["SOL-USD"].oracle_price == Decimal(
                        "123.45"
                    ):
                        saw_oracle = True
                        assert provider.get_cached("SOL-USD").oracle_price == Decimal("123.45")  # type: ignore[union-attr]
                if saw_status and saw_oracle:
                    return

        await asyncio.wait_for(consume(), DEADLINE)
    eth = provider.get_cached("ETH-USD")
    assert eth is not None
    assert eth.status is PerpetualMarketStatus.CANCEL_ONLY
    assert (await http.get_perpetual_markets("ETH-USD")).markets["ETH-USD"].status == "CANCEL_ONLY"


async def test_market_dropped_by_a_bad_stream_update_is_fetched_again(emulator: Emulator) -> None:
    calls: list[str | None] = []

    class Counting(HttpClient):
        async def get_perpetual_markets(
            self, ticker: str | None = None, *, limit: int | None = None
        ) -> PerpetualMarketsResponse:
            calls.append(ticker)
            return await super().get_perpetual_markets(ticker, limit=limit)

    async with Counting(emulator.indexer_url, retry=ExponentialBackoff(max_attempts=1)) as http:
        provider = InstrumentProvider(http, ttl=3600.0)
        await provider.load_all()
        # A status this client does not know makes the update inconsistent: the market is dropped.
        bad = stream.MarketsUpdateContents(
            trading={"BTC-USD": stream.MarketTradingUpdate(status="DELISTING_SOON")}
        )
        assert provider.apply_markets_update(bad) == []
        assert provider.get_cached("BTC-USD") is None
        btc = await provider.get("BTC-USD")
        assert btc.status is PerpetualMarketStatus.ACTIVE
        assert calls == [None, "BTC-USD"]
        assert await provider.get("BTC-USD") is btc  # cached again, fresh
        assert calls == [None, "BTC-USD"]
