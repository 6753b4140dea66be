"""OrderBook: conversions, writes, uncrossing, checksum (examples)."""

from __future__ import annotations

import zlib
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nautilus_dydx.core.book import Change, LevelChange, OrderBook, Side, decimal_places
from nautilus_dydx.core.errors import DecodeError
from nautilus_dydx.schemas.stream import (
    OrderbookBatch,
    OrderbookSubscribed,
    OrderbookUpdateContents,
    decode_stream_message,
)

OWN = Path(__file__).resolve().parents[1] / "fixtures" / "ws"
# Text that is no plain decimal number: refused as a price and as a size.
NOT_DECIMALS = ["", ".", ".5", "-1", "+1", "1e5", " 1", "1 ", "1_0", "١", "1.2.3", "1.-1"]


def _levels(book: OrderBook, side: Side, levels: list[tuple[str, str]], offset: int) -> list[LevelChange]:
    """One message's levels of one side, written one by one."""
    return [book.apply_update(side, price, size, offset) for price, size in levels]


def _deltas(book: OrderBook, updates: Any, offset: int) -> list[LevelChange]:
    """One message's updates (bids then asks of each, in order), written one by one."""
    out: list[LevelChange] = []
    for update in updates:
        out += _levels(book, Side.BID, update.bids, offset)
        out += _levels(book, Side.ASK, update.asks, offset)
    return out


def eth() -> OrderBook:
    return OrderBook("0.1", "0.001", market="ETH-USD")


# -- construction and conversions -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("increment", "places"),
    [("1", 0), ("10", 0), ("0.1", 1), ("0.001", 3), ("0.0025", 4), ("1E-9", 9), (Decimal("0.00001"), 5)],
)
def test_decimal_places(increment: str | Decimal, places: int) -> None:
    assert decimal_places(increment) == places


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "NaN", "Infinity"])
def test_decimal_places_rejects(bad: str) -> None:
    with pytest.raises(ValueError, match="increment"):
        decimal_places(bad)


def test_constructor_needs_exactly_one_precision_per_axis() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        OrderBook()
    with pytest.raises(ValueError, match="exactly one"):
        OrderBook("0.1", "0.001", price_decimals=1)
    with pytest.raises(ValueError, match="non-negative"):
        OrderBook(price_decimals=-1, size_decimals=0)
    with pytest.raises(ValueError, match="cache_size"):
        OrderBook("1", "1", cache_size=-1)
    book = OrderBook(price_decimals=2, size_decimals=4)
    assert (book.price_decimals, book.size_decimals) == (2, 4)


@pytest.mark.parametrize(
    ("text", "value"),
    [("2396.1", 23961), ("2396", 23960), ("2396.10", 23961), ("43240.0", 432400), ("0", 0), ("0.0", 0)],
)
def test_parse_price(text: str, value: int) -> None:
    assert eth().parse_price(text) == value


@pytest.mark.parametrize("text", [*NOT_DECIMALS, "0x10", "nan", "inf", "2396.15"])
def test_parse_price_rejects(text: str) -> None:
    book = eth()
    with pytest.raises(DecodeError):
        book.parse_price(text)
    # a rejected string is not remembered as valid
    with pytest.raises(DecodeError):
        book.parse_price(text)


@pytest.mark.parametrize("text", [*NOT_DECIMALS, "1.0001", "1.+5", "1. ", "１.5"])
def test_sizes_are_strict_on_both_paths(text: str) -> None:
    book = eth()
    for good in ("1.5", "1.2", "0.5", "1", "1.0", "1.", "1.000"):
        book.parse_size(good)  # fills the cache
    with pytest.raises(DecodeError):
        book.parse_size(text)
    with pytest.raises(DecodeError):
        book.apply_sides(OrderbookUpdateContents(bids=[("100", text)]), 1)
    assert book.top(5) == ([], [])


def test_sizes_parse_exactly_on_both_paths() -> None:
    cases = {
        "1.1221": 11221,
        "0.861": 8610,
        "19.8": 198000,
        "7": 70000,
        "7.": 70000,
        "0.00010": 1,
        "12.1221": 121221,
        "0": 0,
        "0.0000": 0,
    }
    book = OrderBook(price_decimals=0, size_decimals=4)
    for text, value in cases.items():
        assert book.parse_size(text) == value
    for i, (text, value) in enumerate(cases.items()):
        book.apply_sides(OrderbookUpdateContents(bids=[(str(100 + i), text)]), 1)
        assert book.level(Side.BID, 100 + i) == (None if value == 0 else (value, 1))


def test_format_is_canonical() -> None:
    book = OrderBook(price_decimals=3, size_decimals=0)
    assert [book.format_price(v) for v in (0, 5, 1000, 1234500, 1230, -50)] == [
        "0",
        "0.005",
        "1",
        "1234.5",
        "1.23",
        "-0.05",
    ]
    assert book.format_size(120) == "120"
    assert book.price_to_decimal(1234500) == Decimal("1234.5")


# -- writes ---------------------------------------------------------------------------------------


def test_update_reports_what_changed() -> None:
    book = eth()
    assert book.apply_update(Side.BID, "100.5", "2", 1) == LevelChange(Side.BID, 1005, 2000, Change.ADDED)
    assert book.apply_update(Side.BID, "100.5", "2.5", 2).change is Change.UPDATED
    assert book.apply_update(Side.BID, "100.50", "2.500", 3).change is Change.UNCHANGED
    assert book.level(Side.BID, 1005) == (2500, 3)
    assert book.apply_update(Side.BID, "100.5", "0", 4) == LevelChange(Side.BID, 1005, 0, Change.DELETED)
    assert book.apply_update(Side.BID, "100.5", "0.000", 5).change is Change.UNCHANGED
    assert len(book) == 0
    assert book.level(Side.BID, 1005) is None


def test_bad_update_leaves_book_unchanged() -> None:
    book = eth()
    book.apply_update(Side.ASK, "101", "1", 1)
    with pytest.raises(DecodeError):
        book.apply_update(Side.ASK, "101", "1.0001", 2)
    with pytest.raises(DecodeError):
        book.apply_update(Side.ASK, "101.01", "1", 2)
    assert book.top(5) == ([], [(1010, 1000)])
    assert book.level(Side.ASK, 1010) == (1000, 1)


def _state(book: OrderBook) -> tuple[object, ...]:
    """Everything a reader can see of a book, offsets included."""
    bids, asks = book.top(len(book) + 1)
    offsets = [book.level(Side.BID, p) for p, _ in bids] + [book.level(Side.ASK, p) for p, _ in asks]
    return (len(book), bids, asks, offsets, book.checksum_string(), book.is_crossed, book.top_of_book())


class _Level:
    def __init__(self, price: object, size: object) -> None:
        self.price = price
        self.size = size


def _failing_levels() -> Any:
    yield ("100", "1")
    raise RuntimeError("source failed")


# Each snapshot side fails after a valid level, so a half-loaded book would show.
BAD_SNAPSHOT_SIDES: list[tuple[str, Any, type[Exception]]] = [
    ("malformed size", [("100", "1"), ("101", "x")], DecodeError),
    ("too precise price", [("100", "1"), ("101.05", "1")], DecodeError),
    ("three elements", [("100", "1"), ("101", "1", "7")], DecodeError),
    ("one element", [("100", "1"), ("101",)], DecodeError),
    ("no level", [("100", "1"), 5], DecodeError),
    ("a dict", [("100", "1"), {"price": "101", "size": "1"}], DecodeError),
    ("None price", [("100", "1"), (None, "1")], DecodeError),
    ("int size", [("100", "1"), ("101", 1)], DecodeError),
    ("float size in an object", [_Level("100", "1"), _Level("101", 1.5)], DecodeError),
    ("bytes price", [("100", "1"), (b"101", "1")], DecodeError),
    ("list price", [("100", "1"), (["101"], "1")], DecodeError),
    ("failing source", _failing_levels, RuntimeError),
]


def _loaded() -> OrderBook:
    book = eth()
    book.apply_snapshot([("99", "2"), ("100", "1")], [("101", "1"), ("102", "3")], 1)
    book.apply_update(Side.BID, "98", "4", 2)
    return book


@pytest.mark.parametrize("side", ["bids", "asks"])
@pytest.mark.parametrize(
    ("levels", "error"), [pytest.param(lv, err, id=name) for name, lv, err in BAD_SNAPSHOT_SIDES]
)
def test_bad_snapshot_leaves_book_unchanged(side: str, levels: Any, error: type[Exception]) -> None:
    book = _loaded()
    before = _state(book)
    good = [("100.5", "1")]
    bad = levels() if callable(levels) else levels
    bids, asks = (bad, good) if side == "bids" else (good, bad)
    with pytest.raises(error):
        book.apply_snapshot(bids, asks, 5)
    assert _state(book) == before
    # the book still works: every level can be deleted, and the sorted keys agree with the sizes
    for s, p in ((Side.BID, "98"), (Side.BID, "99"), (Side.BID, "100"), (Side.ASK, "101"), (Side.ASK, "102")):
        assert book.apply_update(s, p, "0", 6).change is Change.DELETED
    assert len(book) == 0
    assert book.checksum_string() == "|"


def test_bad_snapshot_error_names_the_level() -> None:
    book = eth()
    with pytest.raises(DecodeError, match=r"invalid ask level \('101', '1', '7'\): 3 elements") as info:
        book.apply_snapshot([], [("101", "1", "7")], 1)  # type: ignore[list-item]
    assert info.value.payload == b"('101', '1', '7')"
    with pytest.raises(DecodeError, match="invalid bid level 5: neither"):
        book.apply_snapshot([5], [], 1)  # type: ignore[list-item]
    with pytest.raises(DecodeError, match="invalid size None: not a string"):
        book.apply_snapshot([("100", None)], [], 1)  # type: ignore[list-item]


def test_good_snapshot_after_a_bad_one_replaces_the_book() -> None:
    book = _loaded()
    with pytest.raises(DecodeError):
        book.apply_snapshot([("90", "1")], [("110", "1"), ("111", "x")], 5)
    assert book.apply_snapshot([("90", "1")], [("110", "1")], 6) == []
    assert book.top(10) == ([(900, 1000)], [(1100, 1000)])
    assert book.level(Side.BID, 900) == (1000, 6)
    assert book.level(Side.BID, 1000) is None


def test_snapshot_keeps_the_book_containers() -> None:
    # The containers are refilled, not replaced: a snapshot that zeroes a duplicate level and one
    # that reloads a non-empty book leave consistent keys, sizes and offsets.
    book = _loaded()
    book.apply_snapshot([("100", "1"), ("97", "1"), ("100", "0")], [("101", "2")], 9)
    assert book.top(10) == ([(970, 1000)], [(1010, 2000)])
    assert book.level(Side.BID, 970) == (1000, 9)
    assert book.level(Side.BID, 1000) is None
    assert book.apply_update(Side.BID, "97", "0", 10).change is Change.DELETED
    assert book.best_bid() is None


@pytest.mark.parametrize("bad", [None, 100, 1.5, b"100", ["100"], Decimal("100")])
def test_non_string_update_is_a_decode_error(bad: Any) -> None:
    book = eth()
    book.apply_update(Side.ASK, "101", "1", 1)
    with pytest.raises(DecodeError, match="not a string"):
        book.apply_update(Side.BID, bad, "1", 2)
    with pytest.raises(DecodeError, match="not a string"):
        book.apply_update(Side.BID, "100", bad, 2)
    with pytest.raises(DecodeError, match="not a string"):
        book.parse_price(bad)
    with pytest.raises(DecodeError, match="not a string"):
        book.parse_size(bad)
    assert book.top(5) == ([], [(1010, 1000)])


def test_snapshot_accepts_level_objects_and_pairs() -> None:
    snap = decode_stream_message((OWN / "orderbook_subscribed.json").read_bytes())
    assert isinstance(snap, OrderbookSubscribed)
    a, b = eth(), eth()
    assert a.apply_snapshot(snap.contents.bids, snap.contents.asks, snap.message_id) == []
    b.apply_snapshot(
        [(lvl.price, lvl.size) for lvl in snap.contents.bids],
        [(lvl.price, lvl.size) for lvl in snap.contents.asks],
        snap.message_id,
    )
    assert a.top(10) == b.top(10) == ([(30001, 1500), (30000, 250)], [(30003, 2000), (30010, 1)])
    assert a.best_bid() == (30001, 1500)
    assert a.best_ask() == (30003, 2000)
    assert a.best_bid_price == 30001
    assert a.best_ask_price == 30003
    assert a.mid == Decimal("3000.2")
    assert a.spread == Decimal("0.2")
    assert list(a.bids()) == [(Decimal("3000.1"), Decimal("1.5")), (Decimal("3000"), Decimal("0.25"))]
    assert list(a.asks()) == [(Decimal("3000.3"), Decimal("2")), (Decimal("3001"), Decimal("0.001"))]


def test_deltas_apply_bids_then_asks_in_order() -> None:
    book = eth()
    snap = decode_stream_message((OWN / "orderbook_subscribed.json").read_bytes())
    batch = decode_stream_message((OWN / "orderbook_batch.json").read_bytes())
    assert isinstance(snap, OrderbookSubscribed)
    assert isinstance(batch, OrderbookBatch)
    book.apply_snapshot(snap.contents.bids, snap.contents.asks, snap.message_id)
    changes = _deltas(book, batch.contents, batch.message_id)
    assert changes == [
        LevelChange(Side.ASK, 30003, 1750, Change.UPDATED),
        LevelChange(Side.BID, 30002, 500, Change.ADDED),
        LevelChange(Side.ASK, 30010, 0, Change.DELETED),
    ]
    assert book.uncross() == []
    assert book.top(1) == ([(30002, 500)], [(30003, 1750)])
    assert _levels(book, Side.BID, [("3000.2", "0"), ("1", "1")], 9) == [
        LevelChange(Side.BID, 30002, 0, Change.DELETED),
        LevelChange(Side.BID, 10, 1000, Change.ADDED),
    ]


def test_empty_and_one_sided_reads() -> None:
    book = eth()
    assert book.best_bid() is None
    assert book.best_ask() is None
    assert book.mid is None
    assert book.spread is None
    assert not book.is_crossed
    assert book.top(3) == ([], [])
    book.apply_update(Side.BID, "1", "1", 1)
    assert book.mid is None
    assert book.top(0) == ([], [])
    assert book.bid_count == 1
    assert book.ask_count == 0


# -- uncrossing -----------------------------------------------------------------------------------


def test_uncross_drops_the_older_level() -> None:
    book = eth()
    book.apply_snapshot([("100", "1")], [("101", "1"), ("102", "1")], 1)
    book.apply_update(Side.BID, "101.5", "3", 2)
    assert book.is_crossed
    repairs = book.uncross()
    # the ask at 101 (offset 1) is older than the bid (offset 2): dropped; 102 no longer crosses
    assert repairs == [LevelChange(Side.ASK, 1010, 0, Change.DELETED)]
    assert not book.is_crossed
    assert book.top(1) == ([(1015, 3000)], [(1020, 1000)])


def test_uncross_equal_offsets_subtracts_smaller_size() -> None:
    book = eth()
    _levels(book, Side.BID, [("101", "3")], 5)
    _levels(book, Side.ASK, [("100", "1"), ("100.5", "0.5"), ("102", "1")], 5)
    repairs = book.uncross()
    assert repairs == [
        LevelChange(Side.BID, 1010, 2000, Change.UPDATED),
        LevelChange(Side.ASK, 1000, 0, Change.DELETED),
        LevelChange(Side.BID, 1010, 1500, Change.UPDATED),
        LevelChange(Side.ASK, 1005, 0, Change.DELETED),
    ]
    assert book.top(5) == ([(1010, 1500)], [(1020, 1000)])
    assert book.level(Side.BID, 1010) == (1500, 5)


def test_uncross_equal_sizes_drops_both() -> None:
    book = eth()
    _levels(book, Side.BID, [("100", "1"), ("99", "1")], 3)
    _levels(book, Side.ASK, [("100", "1")], 3)
    assert book.uncross() == [
        LevelChange(Side.BID, 1000, 0, Change.DELETED),
        LevelChange(Side.ASK, 1000, 0, Change.DELETED),
    ]
    assert book.top(5) == ([(990, 1000)], [])


def test_crossed_snapshot_is_uncrossed() -> None:
    book = eth()
    repairs = book.apply_snapshot([("101", "2")], [("100", "1")], 1)
    assert repairs == [
        LevelChange(Side.BID, 1010, 1000, Change.UPDATED),
        LevelChange(Side.ASK, 1000, 0, Change.DELETED),
    ]


# -- checksum -------------------------------------------------------------------------------------


def test_checksum_doc_example() -> None:
    book = OrderBook("0.1", "0.01")
    book.apply_snapshot([("100.5", "2"), ("100", "1.25")], [("101", "0.5")], 1)
    assert book.checksum_string() == "100.5:2,100:1.25|101:0.5"
    assert book.checksum() == zlib.crc32(b"100.5:2,100:1.25|101:0.5")


def test_checksum_empty_and_depth() -> None:
    book = eth()
    assert book.checksum_string() == "|"
    assert book.checksum() == zlib.crc32(b"|")
    book.apply_snapshot([("3", "1"), ("2", "1"), ("1", "1")], [("4", "0.5"), ("5", "1.250")], 1)
    assert book.checksum_string(2) == "3:1,2:1|4:0.5,5:1.25"
    assert book.checksum_string(0) == "|"


# -- memory ---------------------------------------------------------------------------------------


def test_deleted_levels_leave_nothing_and_caches_are_bounded() -> None:
    book = OrderBook(price_decimals=2, size_decimals=0, cache_size=64)
    for i in range(1, 1000):
        book.apply_update(Side.BID, f"{i}.{i % 100:02d}", str(i), i)
    assert len(book) == 999
    for i in range(1, 1000):
        book.apply_update(Side.BID, f"{i}.{i % 100:02d}", "0", 1000 + i)
    assert len(book) == 0
    assert book.top(10) == ([], [])
    assert len(book._price_cache) <= 64
    assert len(book._size_cache) <= 64
    assert book._bid_sizes == {}
    assert book._bid_offsets == {}
    assert book._bid_keys == []
    book.apply_update(Side.ASK, "1", "1", 1)
    book.clear()
    assert len(book) == 0
    assert book.best_ask() is None


def test_uncached_book_behaves_the_same() -> None:
    a = OrderBook("0.1", "0.001", cache_size=0)
    b = eth()
    for book in (a, b):
        book.apply_snapshot([("100", "1")], [("101", "1")], 1)
        _levels(book, Side.ASK, [("100.5", "2"), ("101", "0")], 2)
    assert a.top(5) == b.top(5)
    assert a._price_cache == {}


# -- captured traffic -----------------------------------------------------------------------------


def test_captured_snapshot_and_batch_against_plain_dicts(shared_fixtures: Path) -> None:
    ws = shared_fixtures / "dydx-real" / "python-legacy" / "ws"
    snap = decode_stream_message((ws / "v4_orderbook_snapshot.json").read_bytes())
    batch = decode_stream_message((ws / "v4_orderbook_batched_data.json").read_bytes())
    assert isinstance(snap, OrderbookSubscribed)
    assert isinstance(batch, OrderbookBatch)
    book = eth()
    book.apply_snapshot(snap.contents.bids, snap.contents.asks, 1)
    bids = {Decimal(lvl.price): Decimal(lvl.size) for lvl in snap.contents.bids}
    asks = {Decimal(lvl.price): Decimal(lvl.size) for lvl in snap.contents.asks}
    _deltas(book, batch.contents, 2)
    for update in batch.contents:
        for side, levels in ((bids, update.bids), (asks, update.asks)):
            for p, q in levels:
                if Decimal(q) == 0:
                    side.pop(Decimal(p), None)
                else:
                    side[Decimal(p)] = Decimal(q)
    assert list(book.bids()) == sorted(bids.items(), reverse=True)
    assert list(book.asks()) == sorted(asks.items())
    # the two captures are months apart (ETH ~3393 vs ~2396): together they cross, badly
    assert book.is_crossed
    repairs = book.uncross()
    assert repairs
    assert not book.is_crossed
    # the batch (newer offset) wins every crossing: every dropped level is an old snapshot bid
    assert all(r.side is Side.BID and r.change is Change.DELETED for r in repairs)
    assert list(book.asks()) == sorted(asks.items())
