"""The indexer's tables driven by hand-made chain events (no engine), plus its formatting rules."""

from __future__ import annotations

import datetime as dt
import zlib
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator import events as ev
from nautilus_dydx.emulator.indexer import fmt
from nautilus_dydx.emulator.indexer.store import IndexerStore
from nautilus_dydx.emulator.indexer.ws import BookLog, book_checksum

T0 = dt.datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)
BTC = ev.MarketInfo(
    clob_pair_id=0,
    perpetual_id=0,
    market_id=0,
    ticker="BTC-USD",
    atomic_resolution=-10,
    quantum_conversion_exponent=-9,
    step_base_quantums=1_000_000,
    subticks_per_tick=100_000,
    initial_margin_ppm=50_000,
    maintenance_fraction_ppm=600_000,
    market_type="CROSS",
    status="ACTIVE",
    price_exponent=-5,
)
OWNER = "dydx1zsw8fczav25uvc8rg3zcv6zy9j7yhnktpq374m"


def snapshot(client_id: int, side: str, quantums: int, dollars: int) -> ev.OrderSnapshot:
    return order_snapshot(OWNER, client_id, side, quantums, dollars * 100_000, gtb=10)


class Sink:
    def __init__(self) -> None:
        self.messages: list[tuple[str, str | None, dict[str, Any], int | None]] = []

    def publish(self, channel: str, sub_id: str | None, contents: dict[str, Any], child: int | None) -> None:
        self.messages.append((channel, sub_id, contents, child))

    def wants(self, channel: str, sub_id: str | None) -> bool:
        return True


def new_store() -> tuple[IndexerStore, Sink]:
    sink = Sink()
    store = IndexerStore(sink.publish, sink.wants)
    store.apply(ev.MarketListed(BTC))
    store.apply(ev.OraclePriceUpdated(0, 0, 5_000_000_000, -5, 1, T0))
    store.apply(ev.BlockCommitted(1, T0))
    return store, sink


def test_formatting_and_ids() -> None:
    assert fmt.iso(T0) == "2026-01-02T03:04:05.678Z"
    assert fmt.dec(Decimal("1234.500")) == "1234.5"
    assert fmt.dec(Decimal("1E+3")) == "1000"
    assert fmt.dec(Decimal("-0.000")) == "0"
    assert fmt.subaccount_uuid("dydx18tkxrnrkqc2t0lr3zxr5g6a4hdvqksylxqje4r", 0) == (
        "c7169f81-0c80-54c5-a41f-9cbb6a538fdf"
    )
    assert fmt.subaccount_uuid(OWNER, 0) == "db535c19-b298-5ee8-bb59-e96c659a8bd4"
    assert fmt.fill_uuid("0000eef1000000020000004d", "TAKER") == "c5030bd3-cd85-5046-8f2a-518bbba6ec45"
    assert IndexerStore.price(BTC, 5_000_000_000) == 50_000
    assert IndexerStore.size(BTC, 1_000_000) == Decimal("0.0001")


@settings(max_examples=200, deadline=None)
@given(st.decimals(allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=12))
def test_dec_is_canonical(value: Decimal) -> None:
    text = fmt.dec(value)
    assert Decimal(text) == value
    assert "E" not in text.upper()
    assert not text.startswith("+")
    if "." in text:
        assert not text.endswith("0")
        assert not text.endswith(".")


def test_book_levels_from_order_events() -> None:
    store, sink = new_store()
    store.apply(ev.OrderPlaced(snapshot(1, "BUY", 3_000_000, 49_999), "BEST_EFFORT_OPENED", 1, T0))
    store.apply(ev.OrderPlaced(snapshot(2, "BUY", 2_000_000, 49_999), "BEST_EFFORT_OPENED", 1, T0))
    store.apply(ev.OrderUpdated(snapshot(1, "BUY", 0, 0).key, 1_000_000, 1, T0))
    book = [m for m in sink.messages if m[0] == "v4_orderbook"]
    assert [m[2] for m in book] == [
        {"bids": [["49999", "0.0003"]]},
        {"bids": [["49999", "0.0005"]]},
        {"bids": [["49999", "0.0004"]]},  # remaining = quantums - filled, as an absolute level
    ]
    store.apply(
        ev.OrderRemoved(
            snapshot(2, "BUY", 0, 0).key,
            "BEST_EFFORT_CANCELED",
            "ORDER_REMOVAL_REASON_USER_CANCELED",
            0,
            1,
            T0,
        )
    )
    store.apply(
        ev.OrderRemoved(
            snapshot(1, "BUY", 0, 0).key, "FILLED", "ORDER_REMOVAL_REASON_FULLY_FILLED", 3_000_000, 1, T0
        )
    )
    book = [m for m in sink.messages if m[0] == "v4_orderbook"]
    assert book[-1][2] == {"bids": [["49999", "0"]]}  # "0" deletes the level
    assert store.book_levels(0) == ([], [])
    orders = [m for m in sink.messages if m[0] == "v4_subaccounts"]
    assert orders[0][2]["orders"][0]["status"] == "BEST_EFFORT_OPENED"
    assert any(m[0] == "v4_parent_subaccounts" and m[3] == 0 for m in sink.messages)


def test_crossed_indexer_book_is_uncrossed_by_age_then_size() -> None:
    store, _ = new_store()
    store.apply(ev.OrderPlaced(snapshot(1, "SELL", 1_000_000, 50_000), "BEST_EFFORT_OPENED", 1, T0))
    store.apply(ev.OrderPlaced(snapshot(2, "BUY", 5_000_000, 50_001), "BEST_EFFORT_OPENED", 1, T0))
    bids, asks = store.book_levels(0)
    assert asks == []  # the ask was set earlier than the crossing bid: it is dropped
    assert bids == [(Decimal(50_001), Decimal("0.0005"))]


def test_fills_make_trades_candles_and_positions() -> None:
    store, sink = new_store()
    maker = snapshot(1, "SELL", 2_000_000, 50_000)
    taker = ev.OrderKey("dydx1taker", 0, 9, 0, 0)
    store.apply(ev.OrderPlaced(maker, "BEST_EFFORT_OPENED", 1, T0))
    t1 = T0 + dt.timedelta(seconds=1)
    event_id = bytes.fromhex("000000020000000100000000")
    store.apply(
        ev.FillCommitted(
            event_id, 0, maker.key, taker, "BUY", 5_000_000_000, 1_000_000, -10, 25, "LIMIT", 2, t1, "AB"
        )
    )
    store.apply(ev.BlockCommitted(2, t1))
    (trade,) = store.trades[0]
    assert trade.id == "000000020000000100000000"
    trades_msg = next(m for m in sink.messages if m[0] == "v4_trades")
    assert trades_msg[2] == {
        "trades": [
            {
                "id": trade.id,
                "size": "0.0001",
                "price": "50000",
                "side": "BUY",
                "createdAt": fmt.iso(t1),
                "type": "LIMIT",
            }
        ]
    }
    candle = next(iter(store.candles[(0, "1MIN")].values()))
    assert (candle.open, candle.trades, candle.usd_volume) == (Decimal(50_000), 1, Decimal(5))
    maker_fill = store.fills[ev.SubaccountRef(OWNER, 0)][0]
    assert (maker_fill.liquidity, maker_fill.fee) == ("MAKER", Decimal("-0.00001"))
    # The maker order became OPEN in the indexer's tables and still rests with 0.0001 left.
    row = store.orders[maker_fill.order_id]
    assert row.status == "OPEN"
    assert store.book_levels(0)[1] == [(Decimal(50_000), Decimal("0.0002"))]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 9),
            st.sampled_from(["place", "update", "remove"]),
            st.integers(1, 5),
            st.integers(0, 4),
        ),
        max_size=60,
    )
)
def test_book_equals_sum_of_live_remaining(ops: list[tuple[int, str, int, int]]) -> None:
    store, _ = new_store()
    live: dict[int, tuple[str, int, int, int]] = {}  # cid -> (side, quantums, filled, dollars)
    for cid, op, lots, offset in ops:
        side = "BUY" if cid % 2 == 0 else "SELL"
        dollars = 40_000 - offset if side == "BUY" else 60_000 + offset
        key = snapshot(cid, side, 0, 0).key
        if op == "place":
            live[cid] = (side, lots * 1_000_000, 0, dollars)
            store.apply(ev.OrderPlaced(snapshot(cid, side, lots * 1_000_000, dollars), "OPEN", 1, T0))
        elif op == "update" and cid in live:
            s, q, _, d = live[cid]
            filled = min(q, lots * 500_000)
            live[cid] = (s, q, filled, d)
            store.apply(ev.OrderUpdated(key, filled, 1, T0))
        elif op == "remove" and cid in live:
            del live[cid]
            store.apply(ev.OrderRemoved(key, "CANCELED", "ORDER_REMOVAL_REASON_USER_CANCELED", 0, 1, T0))
    expected: dict[tuple[str, int], int] = {}
    for side, q, filled, d in live.values():
        if q - filled > 0:
            expected[(side, d)] = expected.get((side, d), 0) + q - filled
    bids, asks = store.book_levels(0)
    got = {("BUY", int(p)): int(s * 10**10) for p, s in bids} | {
        ("SELL", int(p)): int(s * 10**10) for p, s in asks
    }
    assert got == expected


def test_book_log_replay_and_eviction() -> None:
    log = BookLog(limit=3)
    log.add(1, "snapshot", {"bids": [{"price": "100", "size": "1"}], "asks": [{"price": "101", "size": "2"}]})
    log.add(2, "update", [{"bids": [["100.5", "1.5"]]}])
    log.add(3, "update", [{"asks": [["100.5", "0.5"]]}])  # a newer ask at the bid's price
    log.add(4, "update", [{"asks": [["101", "0"]]}])
    records = log.checksums(25, after=0)
    assert [r["message_id"] for r in records] == [2, 3, 4]  # the snapshot was folded into the base
    # After 3 the ask at 100.5 (newer) crosses the bid at 100.5 (older): the bid goes.
    expected = zlib.crc32(b"100:1|100.5:0.5")
    assert records[-1]["checksum"] == expected
    assert book_checksum([], [], 25) == zlib.crc32(b"|")


def test_closed_position_renders_its_average_entry_price() -> None:
    store, _ = new_store()
    closed = ev.PositionSnapshot(
        clob_pair_id=0,
        quantums=0,
        entry_quote_quantums=0,
        realized_pnl=2_700,
        net_funding=0,
        sum_open=3_000_000,
        sum_close=3_000_000,
        max_size=3_000_000,
        open_event_id=bytes(12),
        created_height=1,
        created_time=T0,
        closed_height=2,
        closed_time=T0,
        exit_quote_quantums=15_002_700,
        open_quote_quantums=15_000_300,
    )
    body = store.render_position(ev.SubaccountRef(OWNER, 0), closed)
    assert (body["status"], body["entryPrice"], body["exitPrice"]) == ("CLOSED", "50001", "50009")


def test_oracle_history_is_trimmed_on_write() -> None:
    store, _ = new_store()
    for hour in range(1, 100):
        price = 5_000_000_000 + hour * 100_000
        store.apply(ev.OraclePriceUpdated(0, 0, price, -5, hour, T0 + dt.timedelta(hours=hour)))
        store.apply(ev.OraclePriceUpdated(0, 0, price, -5, hour, T0 + dt.timedelta(hours=hour, minutes=1)))
    prices = store._stats[0].prices
    assert len(prices) == 25  # the price 24 h ago, then one per (changed) hour since
    assert prices[0] == (T0 + dt.timedelta(hours=75), Decimal(50_075))


def test_emptied_book_level_forgets_its_age() -> None:
    store, _ = new_store()
    for client_id in range(1, 51):
        order = snapshot(client_id, "BUY", 1_000_000, 40_000 + client_id)
        store.apply(ev.OrderPlaced(order, "BEST_EFFORT_OPENED", 1, T0))
        store.apply(
            ev.OrderRemoved(order.key, "BEST_EFFORT_CANCELED", "ORDER_REMOVAL_REASON_USER_CANCELED", 0, 1, T0)
        )
    book = store.books[0]
    assert (book.bids, book.age) == ({}, {})
