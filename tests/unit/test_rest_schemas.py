"""The REST Structs: the project's own fixtures, exact wire text, and JSON round-trips for every Struct."""

from __future__ import annotations

import enum
import json
import types
import typing
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.schemas import rest
from nautilus_dydx.schemas.rest import (
    AddressResponse,
    AssetPositionsResponse,
    CandleResolution,
    CandlesResponse,
    ComplianceScreenResponse,
    FillsResponse,
    HeightResponse,
    HistoricalFundingResponse,
    HistoricalPnlResponse,
    Order,
    OrderBookResponse,
    OrderSide,
    OrdersResponse,
    OrderStatus,
    ParentSubaccountResponse,
    PerpetualMarketsResponse,
    PerpetualPositionsResponse,
    ScreenResponse,
    SparklinesResponse,
    StrInt,
    SubaccountResponse,
    TimeResponse,
    TradesResponse,
    TransfersResponse,
    decode,
    encode,
    format_decimal,
    format_iso,
)

REST_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rest"

FIXTURE_TYPES: dict[str, Any] = {
    "time.json": TimeResponse,
    "height.json": HeightResponse,
    "perpetual_markets.json": PerpetualMarketsResponse,
    "orderbook.json": OrderBookResponse,
    "trades.json": TradesResponse,
    "trades_paged.json": TradesResponse,
    "candles.json": CandlesResponse,
    "historical_funding.json": HistoricalFundingResponse,
    "sparklines.json": SparklinesResponse,
    "address.json": AddressResponse,
    "subaccount.json": SubaccountResponse,
    "parent_subaccount.json": ParentSubaccountResponse,
    "perpetual_positions.json": PerpetualPositionsResponse,
    "asset_positions.json": AssetPositionsResponse,
    "orders.json": OrdersResponse,
    "order.json": Order,
    "fills.json": FillsResponse,
    "transfers.json": TransfersResponse,
    "parent_transfers.json": TransfersResponse,
    "historical_pnl.json": HistoricalPnlResponse,
    "screen.json": ScreenResponse,
    "screen_restricted.json": ScreenResponse,
    "compliance_screen.json": ComplianceScreenResponse,
    "compliance_screen_compliant.json": ComplianceScreenResponse,
}


def test_every_fixture_is_mapped() -> None:
    on_disk = {p.name for p in REST_FIXTURES.glob("*.json")}
    assert on_disk == set(FIXTURE_TYPES)


@pytest.mark.parametrize("name", sorted(FIXTURE_TYPES))
def test_fixture_decodes_and_reencodes_to_equal_json(name: str) -> None:
    body = (REST_FIXTURES / name).read_bytes()
    value = decode(body, FIXTURE_TYPES[name])
    assert json.loads(encode(value)) == json.loads(body)


def test_decimal_text_is_kept_exactly() -> None:
    markets = decode((REST_FIXTURES / "perpetual_markets.json").read_bytes(), PerpetualMarketsResponse)
    btc = markets.markets["BTC-USD"]
    assert btc.initial_margin_fraction == Decimal("0.05")
    assert str(btc.initial_margin_fraction) == "0.050000"
    # Decimal's own str() would say 3.75E-7; the wire form must stay plain.
    assert btc.next_funding_rate == Decimal("0.000000375")
    out = encode(btc)
    assert b'"initialMarginFraction":"0.050000"' in out
    assert b'"nextFundingRate":"0.000000375"' in out
    assert b'"priceChange24H":"-412.25"' in out
    assert b'"tickSize":"1"' in out
    new = markets.markets["NEWCOIN-USD"]
    assert new.oracle_price is None
    assert b'"tickSize":"0.000000001"' in encode(new)
    assert new.default_funding_rate_1h is msgspec.UNSET
    assert b"defaultFundingRate1H" not in encode(new)


def test_heights_are_ints_that_travel_as_strings() -> None:
    height = decode(b'{"height": "41200317", "time": "2025-03-14T09:26:52.004Z"}', HeightResponse)
    assert height.height == 41200317
    assert isinstance(height.height, int)
    assert height.time == datetime(2025, 3, 14, 9, 26, 52, 4000, tzinfo=UTC)
    assert json.loads(encode(height)) == {"height": "41200317", "time": "2025-03-14T09:26:52.004Z"}


@pytest.mark.parametrize("bad", [b'"12a"', b'""', b"true", b"1.5", b'"1e3"'])
def test_strint_rejects_non_integers(bad: bytes) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode(b'{"height": ' + bad + b', "time": "2025-03-14T09:26:52.004Z"}', HeightResponse)


def test_omitted_and_null_optionals_are_reproduced() -> None:
    orders = decode((REST_FIXTURES / "orders.json").read_bytes(), OrdersResponse)
    short_term, long_term, conditional = orders
    assert short_term.good_til_block == 41200337
    assert short_term.good_til_block_time is msgspec.UNSET
    assert short_term.created_at is msgspec.UNSET
    assert long_term.good_til_block is msgspec.UNSET
    assert long_term.order_flags == 64
    assert long_term.client_id == 4294967295
    assert conditional.trigger_price == Decimal("80000")
    positions = decode((REST_FIXTURES / "perpetual_positions.json").read_bytes(), PerpetualPositionsResponse)
    assert positions.positions[0].closed_at is None
    assert b'"closedAt":null' in encode(positions.positions[0])
    assert positions.positions[1].exit_price == Decimal("1910.25")


def test_unknown_fields_and_new_values_of_open_sets_do_not_break_a_page() -> None:
    body = json.loads((REST_FIXTURES / "orders.json").read_bytes())
    body[0]["status"] = "SOME_FUTURE_STATUS"
    body[0]["type"] = "SOME_FUTURE_TYPE"
    body[0]["brandNewField"] = {"nested": [1, 2]}
    orders = decode(json.dumps(body), OrdersResponse)
    assert orders[0].status == "SOME_FUTURE_STATUS"
    assert orders[1].status == OrderStatus.OPEN
    assert "brandNewField" not in json.loads(encode(orders[0]))


def test_closed_sets_are_enums() -> None:
    orders = decode((REST_FIXTURES / "orders.json").read_bytes(), OrdersResponse)
    assert orders[0].side is OrderSide.BUY
    body = json.loads((REST_FIXTURES / "orders.json").read_bytes())
    body[0]["side"] = "SIDEWAYS"
    with pytest.raises(msgspec.ValidationError, match="side"):
        decode(json.dumps(body), OrdersResponse)


def test_candle_resolution_seconds() -> None:
    assert [r.seconds for r in CandleResolution] == [60, 300, 900, 1800, 3600, 14400, 86400]
    assert CandleResolution("4HOURS") is CandleResolution.FOUR_HOURS


def test_transfer_reads_either_amount_spelling() -> None:
    transfers = decode((REST_FIXTURES / "transfers.json").read_bytes(), TransfersResponse)
    assert transfers.transfers[0].quantity == Decimal("250")
    assert transfers.transfers[0].asset_symbol == "USDC"
    assert transfers.transfers[1].sender.subaccount_number is msgspec.UNSET
    other = json.loads((REST_FIXTURES / "transfers.json").read_bytes())
    row = other["transfers"][0]
    row["amount"], row["asset"] = row.pop("size"), row.pop("symbol")
    again = decode(json.dumps(other), TransfersResponse)
    assert again.transfers[0].quantity == Decimal("250")
    assert again.transfers[0].asset_symbol == "USDC"
    parent = decode((REST_FIXTURES / "parent_transfers.json").read_bytes(), TransfersResponse)
    assert parent.transfers[0].recipient.parent_subaccount_number == 3


def test_transfer_spellings_first_key_wins_and_none_when_absent() -> None:
    body = json.loads((REST_FIXTURES / "transfers.json").read_bytes())
    row = body["transfers"][0]
    row["amount"], row["asset"] = "7", "DYDX"
    both = decode(json.dumps(body), TransfersResponse).transfers[0]
    assert both.quantity == Decimal("250")
    assert both.asset_symbol == "USDC"
    for key in ("size", "symbol", "amount", "asset"):
        del row[key]
    neither = decode(json.dumps(body), TransfersResponse).transfers[0]
    assert neither.quantity is None
    assert neither.asset_symbol is None


def test_format_helpers() -> None:
    assert format_decimal(Decimal("1E-9")) == "0.000000001"
    assert format_decimal(Decimal("-0.83227222400000000000001")) == "-0.83227222400000000000001"
    assert format_iso(datetime(2025, 1, 2, 3, 4, 5, 678999, tzinfo=UTC)) == "2025-01-02T03:04:05.678Z"
    assert format_iso(datetime(2025, 1, 2, 3, 4, 5)) == "2025-01-02T03:04:05.000Z"


# --------------------------------------------------------------------------------------------------
# Property tests: strategies derived from the Struct definitions themselves


def _datetimes() -> st.SearchStrategy[datetime]:
    return st.datetimes(
        min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
    ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))


# Integer coefficient and a decimal exponent: the shape of every decimal the venue sends, and cheap to
# generate; tiny values (exponent form in str()) are included on purpose.
_DECIMALS = st.builds(
    lambda coefficient, places: Decimal(coefficient).scaleb(-places),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.integers(min_value=0, max_value=24),
)


def strategy_for(tp: Any) -> st.SearchStrategy[Any]:
    """A strategy producing valid Python values of a REST schema type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return st.one_of(*(strategy_for(arg) for arg in typing.get_args(tp)))
    if origin is list:
        (item,) = typing.get_args(tp)
        return st.lists(strategy_for(item), max_size=2)
    if origin is dict:
        key, value = typing.get_args(tp)
        return st.dictionaries(strategy_for(key), strategy_for(value), max_size=2)
    if tp is type(None):
        return st.none()
    if tp is msgspec.UnsetType:
        return st.just(msgspec.UNSET)
    if tp is StrInt:
        return st.integers(min_value=-(2**63), max_value=2**64).map(StrInt)
    if tp is Decimal:
        return _DECIMALS
    if tp is datetime:
        return _datetimes()
    if tp is bool:
        return st.booleans()
    if tp is int:
        return st.integers(min_value=-(2**63), max_value=2**63 - 1)
    if tp is float:
        return st.floats(allow_nan=False, allow_infinity=False)
    if tp is str:
        return st.text(max_size=20)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        kwargs = {f.name: strategy_for(f.type) for f in msgspec.structs.fields(tp)}
        return st.builds(tp, **kwargs)
    raise AssertionError(f"no strategy for {tp!r}")


def _all_structs() -> list[type[msgspec.Struct]]:
    found = []
    for name in rest.__all__:
        obj = getattr(rest, name)
        if isinstance(obj, type) and issubclass(obj, msgspec.Struct):
            found.append(obj)
    return found


STRUCTS = _all_structs()


def test_every_struct_is_frozen_kw_only_and_lenient() -> None:
    assert len(STRUCTS) >= 30
    for cls in STRUCTS:
        config = cls.__struct_config__
        assert config.frozen, cls
        assert not config.forbid_unknown_fields, cls
        assert rest.DECODERS  # decoders are built at import
        with pytest.raises(TypeError):
            cls(*[None] * len(cls.__struct_fields__))


@pytest.mark.parametrize("cls", STRUCTS, ids=lambda c: c.__name__)
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_struct_json_round_trip(cls: type[msgspec.Struct], data: st.DataObject) -> None:
    value = data.draw(strategy_for(cls))
    wire = encode(value)
    again = decode(wire, cls)
    assert again == value
    assert encode(again) == wire


@settings(max_examples=50, deadline=None)
@given(
    sparklines=strategy_for(SparklinesResponse),
    orders=strategy_for(OrdersResponse),
)
def test_alias_round_trip(sparklines: dict[str, list[Decimal]], orders: list[Order]) -> None:
    assert decode(encode(sparklines), SparklinesResponse) == sparklines
    assert decode(encode(orders), OrdersResponse) == orders


@settings(max_examples=200, deadline=None)
@given(text=st.from_regex(r"-?(0|[1-9][0-9]{0,14})(\.[0-9]{1,24})?", fullmatch=True))
def test_decimal_wire_text_survives_exactly(text: str) -> None:
    body = json.dumps({"price": text, "size": text}).encode()
    level = decode(body, rest.OrderBookLevel)
    assert json.loads(encode(level)) == {"price": text, "size": text}
