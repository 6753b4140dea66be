"""OrderBook against a naive reference book (Decimal dicts + sort), by hypothesis."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from decimal import Decimal, localcontext

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.book import Change, OrderBook, Side
from nautilus_dydx.core.errors import DecodeError

# -- the reference: a literal reading of protocol §4.8 and docs/checksum.md -----------------------


@dataclass
class RefBook:
    bids: dict[Decimal, tuple[Decimal, int]] = field(default_factory=dict)  # price -> (size, offset)
    asks: dict[Decimal, tuple[Decimal, int]] = field(default_factory=dict)

    def set(self, side: Side, price: Decimal, size: Decimal, offset: int) -> None:
        levels = self.bids if side is Side.BID else self.asks
        if size == 0:
            levels.pop(price, None)
        else:
            levels[price] = (size, offset)

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.asks else None

    def uncross(self) -> None:
        while self.bids and self.asks and max(self.bids) >= min(self.asks):
            bp, ap = max(self.bids), min(self.asks)
            (bs, bo), (as_, ao) = self.bids[bp], self.asks[ap]
            if bo < ao:
                del self.bids[bp]
            elif ao < bo:
                del self.asks[ap]
            elif bs > as_:
                self.bids[bp] = (bs - as_, bo)
                del self.asks[ap]
            elif as_ > bs:
                self.asks[ap] = (as_ - bs, ao)
                del self.bids[bp]
            else:
                del self.bids[bp]
                del self.asks[ap]

    def sorted_bids(self) -> list[tuple[Decimal, Decimal]]:
        return [(p, self.bids[p][0]) for p in sorted(self.bids, reverse=True)]

    def sorted_asks(self) -> list[tuple[Decimal, Decimal]]:
        return [(p, self.asks[p][0]) for p in sorted(self.asks)]

    def checksum(self, depth: int = 25) -> int:
        def canon(d: Decimal) -> str:
            text = format(d.normalize(), "f")
            return "0" if Decimal(text) == 0 else text

        bids = ",".join(f"{canon(p)}:{canon(q)}" for p, q in self.sorted_bids()[:depth])
        asks = ",".join(f"{canon(p)}:{canon(q)}" for p, q in self.sorted_asks()[:depth])
        return zlib.crc32(f"{bids}|{asks}".encode("ascii"))


# -- strategies -----------------------------------------------------------------------------------


def render(value: int, places: int, style: int) -> str:
    """A venue-like decimal string of value × 10**-places; ``style`` picks a spelling."""
    text = format(human(value, places), "f")  # exactly `places` decimals
    if style == 1 and "." in text:
        text = text.rstrip("0").rstrip(".")
    elif style == 2:
        text = text + ("0" if "." in text else ".0")
    return text


@dataclass(frozen=True)
class Scenario:
    price_places: int
    size_places: int
    snapshot: list[tuple[Side, int, int]]
    messages: list[list[tuple[Side, int, int]]]
    offsets: list[int]


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    price_places = draw(st.integers(0, 4))
    size_places = draw(st.integers(0, 4))
    # One narrow price range for both sides, so that crossings are frequent.
    price = st.integers(1, 40)
    level = st.tuples(st.sampled_from([Side.BID, Side.ASK]), price, st.integers(0, 6))
    snapshot = draw(st.lists(level, max_size=20))
    messages = draw(st.lists(st.lists(level, min_size=1, max_size=6), max_size=25))
    # Offsets never decrease; repeats are allowed (several messages per offset would be a batch).
    steps = draw(st.lists(st.integers(0, 2), min_size=len(messages), max_size=len(messages)))
    offsets, current = [], 1
    for step in steps:
        current += step
        offsets.append(current)
    return Scenario(price_places, size_places, snapshot, messages, offsets)


def human(value: int, places: int) -> Decimal:
    # from a string: exact whatever the digits (scaleb would round to the context's precision)
    return Decimal(f"{value}E-{places}")


def check_same(book: OrderBook, ref: RefBook, sc: Scenario) -> None:
    assert list(book.bids()) == ref.sorted_bids()
    assert list(book.asks()) == ref.sorted_asks()
    assert len(book) == len(ref.bids) + len(ref.asks)
    bb, ba = book.best_bid(), book.best_ask()
    assert (None if bb is None else human(bb[0], sc.price_places)) == ref.best_bid()
    assert (None if ba is None else human(ba[0], sc.price_places)) == ref.best_ask()
    for n in (1, 3, 10):
        top_bids, top_asks = book.top(n)
        assert [(human(p, sc.price_places), human(q, sc.size_places)) for p, q in top_bids] == (
            ref.sorted_bids()[:n]
        )
        assert [(human(p, sc.price_places), human(q, sc.size_places)) for p, q in top_asks] == (
            ref.sorted_asks()[:n]
        )
    for depth in (1, 5, 25):
        assert book.checksum(depth) == ref.checksum(depth)
    for side, levels in ((Side.BID, ref.bids), (Side.ASK, ref.asks)):
        for price, (size, offset) in levels.items():
            key = int(price.scaleb(sc.price_places))
            assert book.level(side, key) == (int(size.scaleb(sc.size_places)), offset)


# -- properties -----------------------------------------------------------------------------------


@settings(max_examples=250, deadline=None)
@given(scenarios(), st.integers(0, 2), st.sampled_from([0, 4, 2048]))
def test_book_matches_reference(sc: Scenario, style: int, cache_size: int) -> None:
    book = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places, cache_size=cache_size)
    ref = RefBook()
    for side, p, q in sc.snapshot:
        ref.set(side, human(p, sc.price_places), human(q, sc.size_places), 0)
    ref.uncross()
    bids = [
        (render(p, sc.price_places, style), render(q, sc.size_places, style))
        for s, p, q in sc.snapshot
        if s is Side.BID
    ]
    asks = [
        (render(p, sc.price_places, style), render(q, sc.size_places, style))
        for s, p, q in sc.snapshot
        if s is Side.ASK
    ]
    book.apply_snapshot(bids, asks, 0)
    check_same(book, ref, sc)
    for levels, offset in zip(sc.messages, sc.offsets, strict=True):
        before = {(side, price): size for side, price, size in _levels(book)}
        changes = []
        for side, p, q in levels:
            ref.set(side, human(p, sc.price_places), human(q, sc.size_places), offset)
            changes.append(
                book.apply_update(
                    side, render(p, sc.price_places, style), render(q, sc.size_places, style), offset
                )
            )
        # every reported change is consistent with the level it touched, in order
        for change in changes:
            old = before.get((change.side, change.price))
            if change.size == 0:
                assert change.change is (Change.DELETED if old is not None else Change.UNCHANGED)
                before.pop((change.side, change.price), None)
            else:
                expected = (
                    Change.ADDED
                    if old is None
                    else Change.UNCHANGED
                    if old == change.size
                    else Change.UPDATED
                )
                assert change.change is expected
                before[(change.side, change.price)] = change.size
        ref.uncross()
        repairs = book.uncross()
        assert not book.is_crossed
        for r in repairs:
            assert r.change in (Change.DELETED, Change.UPDATED)
        check_same(book, ref, sc)


def _levels(book: OrderBook) -> list[tuple[Side, int, int]]:
    bids, asks = book.top(10_000)
    return [(Side.BID, p, q) for p, q in bids] + [(Side.ASK, p, q) for p, q in asks]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 10**30), st.integers(0, 12), st.integers(0, 3))
def test_parse_roundtrip(value: int, places: int, extra_zeros: int) -> None:
    book = OrderBook(price_decimals=places, size_decimals=places)
    text = book.format_price(value)
    assert Decimal(text) == human(value, places)
    with localcontext(prec=100):  # normalize() rounds to the context's precision
        assert text == format(human(value, places).normalize(), "f") or value == 0
    assert book.parse_price(text) == value
    assert book.parse_size(text) == value
    padded = text + ("." if "." not in text else "") + "0" * extra_zeros if extra_zeros else text
    assert book.parse_price(padded) == value
    assert book.parse_price(format(human(value, places), "f")) == value
    # one more significant decimal than the book allows is refused
    with localcontext(prec=100):
        finer = format(human(value, places) + Decimal(f"1E-{places + 1}"), "f")
    with pytest.raises(DecodeError):
        book.parse_price(finer)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=12))
def test_parse_rejects_or_matches_decimal(text: str) -> None:
    book = OrderBook(price_decimals=3, size_decimals=3)
    try:
        value = book.parse_price(text)
    except DecodeError:
        return
    # anything accepted is a plain non-negative ASCII decimal that Decimal reads the same way
    assert text.isascii()
    assert set(text) <= set("0123456789.")
    assert Decimal(text).scaleb(3) == value


@settings(max_examples=200, deadline=None)
@given(scenarios())
def test_checksum_is_deterministic(sc: Scenario) -> None:
    a = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places)
    b = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places)
    levels = [(s, render(p, sc.price_places, 0), render(q, sc.size_places, 0)) for s, p, q in sc.snapshot]
    for s, p, q in levels:
        a.apply_update(s, p, q, 1)
    last: dict[tuple[Side, str], str] = {}
    for s, p, q in levels:
        last[(s, p)] = q
    # the same final content written in another order gives the same checksum
    for (s, p), q in reversed(list(last.items())):
        b.apply_update(s, p, q, 1)
    assert a.checksum() == b.checksum()
    assert a.checksum() == a.checksum()
    assert 0 <= a.checksum() < 2**32


@dataclass
class Delta:
    bids: list[tuple[str, str]]
    asks: list[tuple[str, str]]


@settings(max_examples=200, deadline=None)
@given(scenarios(), st.integers(0, 2), st.sampled_from([0, 3, 2048]))
def test_apply_sides_equals_apply_update_and_reports_top_writes(sc: Scenario, style: int, cache: int) -> None:
    """apply_sides (the data client's path) makes the same writes as apply_update, and a message
    it reports as not touching the top leaves the top of book as it was and the book uncrossed."""
    one = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places)
    fast = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places, cache_size=cache)
    for levels, offset in zip(sc.messages, sc.offsets, strict=True):
        rendered = [
            (s, render(p, sc.price_places, style), render(q, sc.size_places, style)) for s, p, q in levels
        ]
        for s, p, q in rendered:
            one.apply_update(s, p, q, offset)
        before = fast.top_of_book()
        update = Delta(
            [(p, q) for s, p, q in rendered if s is Side.BID],
            [(p, q) for s, p, q in rendered if s is Side.ASK],
        )
        touched = fast.apply_sides(update, offset)
        # the same levels, applied bids first then asks (order within a side kept)
        if not touched:
            assert fast.top_of_book() == before
            assert not fast.is_crossed
        assert one.uncross() == fast.uncross()
        assert one.top(100) == fast.top(100)
        for side in (Side.BID, Side.ASK):
            for price, _ in fast.top(100)[side]:
                assert fast.level(side, price) == one.level(side, price)
        assert fast.top_of_book() == (
            *(one.best_bid() or (None, None)),
            *(one.best_ask() or (None, None)),
        )


@settings(max_examples=200, deadline=None)
@given(scenarios(), scenarios(), st.data())
def test_failed_snapshot_leaves_book_unchanged(sc: Scenario, other: Scenario, data: st.DataObject) -> None:
    """A snapshot with one bad level anywhere in it leaves the book (levels, offsets, order) as it
    was, and the book keeps matching the reference afterwards."""
    book = OrderBook(price_decimals=sc.price_places, size_decimals=sc.size_places)
    ref = RefBook()
    for side, p, q in sc.snapshot:
        ref.set(side, human(p, sc.price_places), human(q, sc.size_places), 0)
    ref.uncross()
    book.apply_snapshot(
        [
            (render(p, sc.price_places, 0), render(q, sc.size_places, 0))
            for s, p, q in sc.snapshot
            if s is Side.BID
        ],
        [
            (render(p, sc.price_places, 0), render(q, sc.size_places, 0))
            for s, p, q in sc.snapshot
            if s is Side.ASK
        ],
        0,
    )
    sides: list[list[object]] = [[], []]
    for s, p, q in other.snapshot:
        sides[s].append((render(p, sc.price_places, 0), render(q, sc.size_places, 0)))
    bad = data.draw(st.sampled_from([("1", "x"), ("1", "1", "1"), ("1", None), 7, ("-1", "1")]))
    target = sides[data.draw(st.integers(0, 1))]
    target.insert(data.draw(st.integers(0, len(target))), bad)
    with pytest.raises(DecodeError):
        book.apply_snapshot(sides[0], sides[1], 1)  # type: ignore[arg-type]
    check_same(book, ref, sc)
    for levels, offset in zip(sc.messages, sc.offsets, strict=True):
        for side, p, q in levels:
            ref.set(side, human(p, sc.price_places), human(q, sc.size_places), offset)
            book.apply_update(side, render(p, sc.price_places, 0), render(q, sc.size_places, 0), offset)
        ref.uncross()
        book.uncross()
        check_same(book, ref, sc)
