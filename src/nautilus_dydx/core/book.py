"""An L2 order book for one dYdX market, keyed by integer prices.

Prices and sizes arrive as human decimal strings (``"2396.1"``, ``"3.123"``). The book turns them
into integers by string arithmetic at the market's precision — ``price_decimals`` digits after the
point for prices (from the tick size), ``size_decimals`` for sizes (from the step size) — so no
``Decimal`` is built per level and every comparison is an ``int`` comparison. ``"2396.1"`` at one
price decimal is the key ``23961``.

Each side is a ``dict`` price -> size, a ``dict`` price -> offset (the logical age of the write,
normally the ``message_id``), and a sorted ``list`` of the prices. Best bid and best ask are the
ends of those lists (O(1)); an update is one dict write, plus a ``bisect`` (O(log n) comparisons,
and an O(n) ``memmove`` done in C) only when a level appears or disappears. Deleted levels leave
nothing behind. ``docs/orderbook.md`` explains the uncrossing recipe and the checksum.
"""

from __future__ import annotations

import enum
import zlib
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal, InvalidOperation
from typing import Protocol

from msgspec import Struct

from nautilus_dydx.core.errors import DecodeError

__all__ = [
    "BookDelta",
    "Change",
    "LevelChange",
    "OrderBook",
    "PriceSizeLevel",
    "Side",
    "decimal_places",
]


class Side(enum.IntEnum):
    """Side of the book."""

    BID = 0
    ASK = 1


class Change(enum.IntEnum):
    """What a write did to one level."""

    UNCHANGED = 0
    """Same size as before (only the offset moved), or the deletion of an absent level."""
    ADDED = 1
    """A new level."""
    UPDATED = 2
    """An existing level got a new size."""
    DELETED = 3
    """The level is gone."""


class LevelChange(Struct, frozen=True, gc=False):
    """The effect of one write (or one uncrossing repair) on one level.

    Attributes:
        side: the side of the level.
        price: the price key (human price × 10**price_decimals).
        size: the new size key (human size × 10**size_decimals); 0 when the level was deleted.
        change: what happened.
    """

    side: Side
    price: int
    size: int
    change: Change


class BookDelta(Protocol):
    """One order-book update: ``bids`` and ``asks`` lists of ``(price, size)`` strings."""

    @property
    def bids(self) -> list[tuple[str, str]]: ...

    @property
    def asks(self) -> list[tuple[str, str]]: ...


class PriceSizeLevel(Protocol):
    """A snapshot level object with ``price`` and ``size`` decimal strings."""

    @property
    def price(self) -> str: ...

    @property
    def size(self) -> str: ...


_ADDED = Change.ADDED
_UPDATED = Change.UPDATED
_DELETED = Change.DELETED
_UNCHANGED = Change.UNCHANGED
_BID = Side.BID
_ASK = Side.ASK


def decimal_places(increment: Decimal | str) -> int:
    """The digits after the point needed to write every multiple of ``increment``.

    ``"0.001"`` -> 3, ``"1"`` -> 0, ``"10"`` -> 0, ``"0.0025"`` -> 4.

    Raises:
        ValueError: the increment is not a positive finite decimal.
    """
    try:
        d = Decimal(increment)
    except InvalidOperation:
        raise ValueError(f"not a decimal increment: {increment!r}") from None
    if not d.is_finite() or d <= 0:
        raise ValueError(f"increment must be positive and finite: {increment!r}")
    exponent = d.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite, checked above
    return max(0, -exponent)


def _make_parser(places: int, what: str) -> Callable[[str], int]:
    """A function turning a non-negative decimal string into an integer at ``places`` decimals."""
    pow10: list[int] = [10**k for k in range(places + 1)]
    scale = pow10[places]

    def parse(text: str) -> int:
        try:
            dot = text.find(".")
        except (AttributeError, TypeError):
            # Not a str (None, a number, bytes): the same typed error as a malformed one. A try
            # costs nothing on the path that does not raise.
            raise _bad(what, text, "not a string") from None
        if dot < 0:
            # isascii() guards against int() accepting Unicode digits; isdigit() rejects signs,
            # spaces and underscores, which int() would also accept.
            if text.isdigit() and text.isascii():
                return int(text) * scale
            raise _bad(what, text, "malformed number")
        frac = text[dot + 1 :]
        n = len(frac)
        if n > places:
            if frac[places:].strip("0"):
                raise _bad(what, text, f"more than {places} decimals")
            frac = frac[:places]
            n = places
        digits = text[:dot] + frac
        if dot == 0 or not (digits.isdigit() and digits.isascii()):
            raise _bad(what, text, "malformed number")
        return int(digits) * pow10[places - n]

    return parse


def _bad(what: str, text: object, reason: str) -> DecodeError:
    shown = repr(text)
    payload = text if isinstance(text, str) else shown
    return DecodeError(f"invalid {what} {shown}: {reason}", payload=payload.encode(errors="replace"))


def _make_formatter(places: int) -> Callable[[int], str]:
    """Canonical decimal form of ``value × 10**-places``: no exponent, no trailing zeros."""

    def fmt(value: int) -> str:
        if value < 0:
            return "-" + fmt(-value)
        s = str(value)
        if places == 0:
            return s
        if len(s) <= places:
            s = "0" * (places - len(s) + 1) + s
        frac = s[-places:].rstrip("0")
        whole = s[:-places]
        return f"{whole}.{frac}" if frac else whole

    return fmt


def _tail(keys: list[int], n: int) -> list[int]:
    # keys[-0:] is the whole list, hence the explicit bound.
    if n <= 0:
        return []
    return keys[-n:]


class OrderBook:
    """An L2 book with integer price keys, absolute-size updates and local uncrossing.

    Args:
        tick_size: the market's tick size (``"0.1"``); sets ``price_decimals``.
        step_size: the market's step size (``"0.001"``); sets ``size_decimals``.
        price_decimals: explicit price precision, instead of ``tick_size``.
        size_decimals: explicit size precision, instead of ``step_size``.
        market: the ticker, for messages and ``repr``.
        cache_size: how many distinct price (and size) strings to remember the integer of;
            0 disables the caches. Memory is bounded by it whatever the traffic.

    Raises:
        ValueError: neither or both of a size/decimals pair is given, or a value is invalid.

    Example:
        >>> book = OrderBook("0.1", "0.001", market="ETH-USD")
        >>> book.apply_snapshot([("2396.1", "3.1")], [("2396.5", "1")], offset=1)
        []
        >>> book.apply_update(Side.ASK, "2396.2", "0.5", offset=2).change
        <Change.ADDED: 1>
        >>> book.best_ask()
        (23962, 500)
        >>> str(book.mid)
        '2396.15'
    """

    __slots__ = (
        "_ask_keys",
        "_ask_offsets",
        "_ask_sizes",
        "_bid_keys",
        "_bid_offsets",
        "_bid_sizes",
        "_fmt_price",
        "_fmt_size",
        "_parse_price",
        "_parse_size",
        "_pow10",
        "_price_cache",
        "_size_cache",
        "cache_size",
        "market",
        "price_decimals",
        "size_decimals",
    )

    def __init__(
        self,
        tick_size: Decimal | str | None = None,
        step_size: Decimal | str | None = None,
        *,
        price_decimals: int | None = None,
        size_decimals: int | None = None,
        market: str = "",
        cache_size: int = 2048,
    ) -> None:
        self.price_decimals = _precision(tick_size, price_decimals, "tick_size", "price_decimals")
        self.size_decimals = _precision(step_size, size_decimals, "step_size", "size_decimals")
        self.market = market
        if cache_size < 0:
            raise ValueError(f"cache_size must be >= 0, got {cache_size}")
        self.cache_size = cache_size
        # Venue prices repeat (the same few hundred levels): a bounded str -> int cache makes the
        # conversion a dict lookup. Cleared when full, so memory stays bounded. Sizes rarely
        # repeat: apply_sides parses them inline; the other writes go through parse_size's cache.
        self._price_cache: dict[str, int] = {}
        self._size_cache: dict[str, int] = {}
        self._parse_price = _make_parser(self.price_decimals, "price")
        self._parse_size = _make_parser(self.size_decimals, "size")
        self._fmt_price = _make_formatter(self.price_decimals)
        self._fmt_size = _make_formatter(self.size_decimals)
        self._pow10 = tuple(10**k for k in range(self.size_decimals + 1))
        self._bid_sizes: dict[int, int] = {}
        self._bid_offsets: dict[int, int] = {}
        self._bid_keys: list[int] = []  # ascending: best bid is last
        self._ask_sizes: dict[int, int] = {}
        self._ask_offsets: dict[int, int] = {}
        self._ask_keys: list[int] = []  # ascending: best ask is first

    def __repr__(self) -> str:
        return (
            f"OrderBook({self.market!r}, bids={len(self._bid_keys)}, asks={len(self._ask_keys)}, "
            f"best_bid={self._best_str(self._bid_keys, -1)}, best_ask={self._best_str(self._ask_keys, 0)})"
        )

    def _best_str(self, keys: list[int], index: int) -> str | None:
        return self._fmt_price(keys[index]) if keys else None

    # ----------------------------------------------------------------------------------------
    # Conversions
    # ----------------------------------------------------------------------------------------

    def parse_price(self, text: str) -> int:
        """The price key of a decimal string. Raises DecodeError if malformed or too precise."""
        try:
            p = self._price_cache.get(text)
        except TypeError:  # unhashable, so no str: the parser says so
            p = None
        if p is None:
            p = self._remember(self._price_cache, text, self._parse_price(text))
        return p

    def parse_size(self, text: str) -> int:
        """The size key of a decimal string. Raises DecodeError if malformed or too precise."""
        try:
            q = self._size_cache.get(text)
        except TypeError:
            q = None
        if q is None:
            q = self._remember(self._size_cache, text, self._parse_size(text))
        return q

    def _remember(self, cache: dict[str, int], text: str, value: int) -> int:
        if self.cache_size:
            if len(cache) >= self.cache_size:
                cache.clear()
            cache[text] = value
        return value

    def format_price(self, price: int) -> str:
        """The canonical decimal string of a price key (``"2396.1"``, never ``"2396.10"``)."""
        return self._fmt_price(price)

    def format_size(self, size: int) -> str:
        """The canonical decimal string of a size key."""
        return self._fmt_size(size)

    def price_to_decimal(self, price: int) -> Decimal:
        """The human price of a price key."""
        return Decimal(self._fmt_price(price))

    def size_to_decimal(self, size: int) -> Decimal:
        """The human size of a size key."""
        return Decimal(self._fmt_size(size))

    # ----------------------------------------------------------------------------------------
    # Writes
    # ----------------------------------------------------------------------------------------

    def clear(self) -> None:
        """Remove every level."""
        self._bid_sizes.clear()
        self._bid_offsets.clear()
        self._bid_keys.clear()
        self._ask_sizes.clear()
        self._ask_offsets.clear()
        self._ask_keys.clear()

    def apply_snapshot(
        self,
        bids: Iterable[tuple[str, str] | PriceSizeLevel],
        asks: Iterable[tuple[str, str] | PriceSizeLevel],
        offset: int,
    ) -> list[LevelChange]:
        """Replace the whole book, then uncross it.

        Both sides are read in full before the book is touched: a snapshot that fails leaves the
        book exactly as it was.

        Args:
            bids: ``(price, size)`` pairs or ``{price, size}`` level objects, any order.
            asks: the same for asks.
            offset: the logical age of every level (the snapshot's ``message_id``).

        Returns:
            The uncrossing repairs made after loading (empty for an uncrossed snapshot).

        Raises:
            DecodeError: a level is not a ``(price, size)`` pair or level object, or a price or
                size is not a string, malformed or too precise; the book is unchanged. An
                exception raised by ``bids`` or ``asks`` themselves (a failing generator)
                propagates as it is, and leaves the book unchanged too.
        """
        bid_sizes = self._read_side(bids, "bid")
        ask_sizes = self._read_side(asks, "ask")
        # Nothing below can fail: the book goes from the old state to the new one in one step.
        # The containers are refilled in place, not replaced, so references to them stay valid.
        self._fill(bid_sizes, self._bid_sizes, self._bid_offsets, self._bid_keys, offset)
        self._fill(ask_sizes, self._ask_sizes, self._ask_offsets, self._ask_keys, offset)
        return self.uncross()

    def _read_side(self, levels: Iterable[tuple[str, str] | PriceSizeLevel], side: str) -> dict[int, int]:
        """Price key -> size key of one snapshot side; a zero size removes an earlier duplicate."""
        parse_price = self.parse_price
        parse_size = self.parse_size
        sizes: dict[int, int] = {}
        for level in levels:
            if isinstance(level, tuple):
                if len(level) != 2:
                    raise _bad(f"{side} level", level, f"{len(level)} elements, expected (price, size)")
                price, size = level
            else:
                try:
                    price, size = level.price, level.size
                except AttributeError:
                    raise _bad(
                        f"{side} level", level, "neither a (price, size) pair nor a level object"
                    ) from None
            p = parse_price(price)
            q = parse_size(size)
            if q:
                sizes[p] = q
            else:
                sizes.pop(p, None)
        return sizes

    @staticmethod
    def _fill(
        new: dict[int, int], sizes: dict[int, int], offsets: dict[int, int], keys: list[int], offset: int
    ) -> None:
        sizes.clear()
        sizes.update(new)
        offsets.clear()
        offsets.update(dict.fromkeys(new, offset))
        keys[:] = sorted(new)

    def apply_update(self, side: Side, price: str, size: str, offset: int) -> LevelChange:
        """Set one level to an absolute size (``"0"`` deletes it). Does not uncross.

        Args:
            side: the side of the level.
            price: the human price string.
            size: the new absolute human size string.
            offset: the logical age of this write (the update's ``message_id``).

        Returns:
            What the write did.

        Raises:
            DecodeError: the price or size is not a string, malformed or too precise (the book is
                unchanged).
        """
        p = self.parse_price(price)
        q = self.parse_size(size)
        if side is _BID:
            return self._set(_BID, self._bid_sizes, self._bid_offsets, self._bid_keys, p, q, offset)
        return self._set(_ASK, self._ask_sizes, self._ask_offsets, self._ask_keys, p, q, offset)

    def apply_sides(self, update: BookDelta, offset: int) -> bool:
        """Apply one update's bids then asks, reporting nothing per level — the hot path.

        The same writes as :meth:`apply_update` for each level (which reports each as a
        :class:`LevelChange`), for a caller that keeps the message itself as the record of what
        was applied. Does not uncross.

        Returns:
            True when a write reached the top of its side (at or better than its best price, or
            on an empty side). Only such a write can change the top of book or cross an
            uncrossed book, so False means both are as before.

        Raises:
            DecodeError: a price or size is malformed or too precise; levels before it are applied.
        """
        prices = self._price_cache
        places = self.size_decimals
        pow10 = self._pow10
        touched = False
        levels = update.bids
        if levels:
            sizes = self._bid_sizes
            offsets = self._bid_offsets
            keys = self._bid_keys
            # Until a write reaches the top, the best price cannot move: read it once.
            best = keys[-1] if keys else -1
            for price, size in levels:
                p = prices.get(price)
                if p is None:
                    p = self.parse_price(price)
                # Sizes rarely repeat, so no cache: split at the point and check that only ASCII
                # digits remain (isascii() is O(1); isdigit() rejects the signs, spaces and
                # underscores int() would take). Anything else goes to the full parser, which
                # accepts trailing zeros past the precision and raises for the rest.
                whole, _, frac = size.partition(".")
                n = len(frac)
                if n <= places and whole and (digits := whole + frac).isdigit() and size.isascii():
                    q = int(digits) * pow10[places - n]
                else:
                    q = self._parse_size(size)
                if p >= best:
                    touched = True
                if q:
                    if p not in sizes:
                        insort(keys, p)
                    sizes[p] = q
                    offsets[p] = offset
                elif sizes.pop(p, None) is not None:
                    del offsets[p]
                    del keys[bisect_left(keys, p)]
        levels = update.asks
        if levels:
            sizes = self._ask_sizes
            offsets = self._ask_offsets
            keys = self._ask_keys
            if keys:
                best = keys[0]
            else:
                touched = True
                best = 0
            for price, size in levels:
                p = prices.get(price)
                if p is None:
                    p = self.parse_price(price)
                whole, _, frac = size.partition(".")
                n = len(frac)
                if n <= places and whole and (digits := whole + frac).isdigit() and size.isascii():
                    q = int(digits) * pow10[places - n]
                else:
                    q = self._parse_size(size)
                if p <= best:
                    touched = True
                if q:
                    if p not in sizes:
                        insort(keys, p)
                    sizes[p] = q
                    offsets[p] = offset
                elif sizes.pop(p, None) is not None:
                    del offsets[p]
                    del keys[bisect_left(keys, p)]
        return touched

    def top_of_book(self) -> tuple[int | None, int | None, int | None, int | None]:
        """``(bid price, bid size, ask price, ask size)`` keys of the top of book (None: empty side)."""
        bk, ak = self._bid_keys, self._ask_keys
        bp: int | None = None
        bq: int | None = None
        if bk:
            bp = bk[-1]
            bq = self._bid_sizes[bp]
        if ak:
            ap = ak[0]
            return bp, bq, ap, self._ask_sizes[ap]
        return bp, bq, None, None

    @staticmethod
    def _set(
        side: Side,
        sizes: dict[int, int],
        offsets: dict[int, int],
        keys: list[int],
        p: int,
        q: int,
        offset: int,
    ) -> LevelChange:
        if q:
            old = sizes.get(p)
            sizes[p] = q
            offsets[p] = offset
            if old is None:
                insort(keys, p)
                return LevelChange(side, p, q, _ADDED)
            return LevelChange(side, p, q, _UPDATED if old != q else _UNCHANGED)
        if sizes.pop(p, None) is None:
            return LevelChange(side, p, 0, _UNCHANGED)
        del offsets[p]
        del keys[bisect_left(keys, p)]
        return LevelChange(side, p, 0, _DELETED)

    def uncross(self) -> list[LevelChange]:
        """Repair a crossed book by the venue's recipe (protocol §4.8).

        While best bid >= best ask: drop the level whose offset is older; with equal offsets,
        subtract the smaller size from the larger and drop the smaller level; with equal sizes
        too, drop both.

        Returns:
            The synthetic repairs, in the order made (``DELETED`` levels and ``UPDATED`` sizes),
            so that a data client can announce them.
        """
        bk, ak = self._bid_keys, self._ask_keys
        if not (bk and ak and bk[-1] >= ak[0]):
            return []
        bs, bo = self._bid_sizes, self._bid_offsets
        as_, ao = self._ask_sizes, self._ask_offsets
        repairs: list[LevelChange] = []
        while bk and ak and bk[-1] >= ak[0]:
            bp = bk[-1]
            ap = ak[0]
            b_off = bo[bp]
            a_off = ao[ap]
            if b_off != a_off:
                if b_off < a_off:
                    self._drop_best_bid(repairs)
                else:
                    self._drop_best_ask(repairs)
                continue
            b_size = bs[bp]
            a_size = as_[ap]
            if b_size > a_size:
                bs[bp] = b_size - a_size
                repairs.append(LevelChange(_BID, bp, b_size - a_size, _UPDATED))
                self._drop_best_ask(repairs)
            elif a_size > b_size:
                as_[ap] = a_size - b_size
                repairs.append(LevelChange(_ASK, ap, a_size - b_size, _UPDATED))
                self._drop_best_bid(repairs)
            else:
                self._drop_best_bid(repairs)
                self._drop_best_ask(repairs)
        return repairs

    def _drop_best_bid(self, repairs: list[LevelChange]) -> None:
        p = self._bid_keys.pop()
        del self._bid_sizes[p]
        del self._bid_offsets[p]
        repairs.append(LevelChange(_BID, p, 0, _DELETED))

    def _drop_best_ask(self, repairs: list[LevelChange]) -> None:
        p = self._ask_keys.pop(0)
        del self._ask_sizes[p]
        del self._ask_offsets[p]
        repairs.append(LevelChange(_ASK, p, 0, _DELETED))

    # ----------------------------------------------------------------------------------------
    # Reads
    # ----------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._bid_keys) + len(self._ask_keys)

    @property
    def bid_count(self) -> int:
        """Number of bid levels."""
        return len(self._bid_keys)

    @property
    def ask_count(self) -> int:
        """Number of ask levels."""
        return len(self._ask_keys)

    @property
    def is_crossed(self) -> bool:
        """True when best bid >= best ask (both sides non-empty)."""
        bk, ak = self._bid_keys, self._ask_keys
        return bool(bk and ak and bk[-1] >= ak[0])

    def best_bid(self) -> tuple[int, int] | None:
        """``(price key, size key)`` of the best bid, or None. O(1)."""
        bk = self._bid_keys
        if not bk:
            return None
        p = bk[-1]
        return p, self._bid_sizes[p]

    def best_ask(self) -> tuple[int, int] | None:
        """``(price key, size key)`` of the best ask, or None. O(1)."""
        ak = self._ask_keys
        if not ak:
            return None
        p = ak[0]
        return p, self._ask_sizes[p]

    @property
    def best_bid_price(self) -> int | None:
        """The best bid's price key, or None."""
        bk = self._bid_keys
        return bk[-1] if bk else None

    @property
    def best_ask_price(self) -> int | None:
        """The best ask's price key, or None."""
        ak = self._ask_keys
        return ak[0] if ak else None

    def top(self, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The best ``n`` levels of each side as ``(price key, size key)``, best first. O(n)."""
        bs, as_ = self._bid_sizes, self._ask_sizes
        bids = [(p, bs[p]) for p in reversed(_tail(self._bid_keys, n))]
        asks = [(p, as_[p]) for p in self._ask_keys[: max(n, 0)]]
        return bids, asks

    def level(self, side: Side, price: int) -> tuple[int, int] | None:
        """``(size key, offset)`` of the level at a price key, or None."""
        sizes, offsets = (
            (self._bid_sizes, self._bid_offsets) if side is _BID else (self._ask_sizes, self._ask_offsets)
        )
        size = sizes.get(price)
        return None if size is None else (size, offsets[price])

    def bids(self) -> Iterator[tuple[Decimal, Decimal]]:
        """Bid levels as human ``(price, size)`` Decimals, best first (not for the hot path)."""
        for p in reversed(self._bid_keys.copy()):
            yield self.price_to_decimal(p), self.size_to_decimal(self._bid_sizes[p])

    def asks(self) -> Iterator[tuple[Decimal, Decimal]]:
        """Ask levels as human ``(price, size)`` Decimals, best first (not for the hot path)."""
        for p in self._ask_keys.copy():
            yield self.price_to_decimal(p), self.size_to_decimal(self._ask_sizes[p])

    @property
    def mid(self) -> Decimal | None:
        """Human mid price, exact, or None when a side is empty."""
        bk, ak = self._bid_keys, self._ask_keys
        if not (bk and ak):
            return None
        # (bid + ask) / 2 at one more decimal is 5 * (bid + ask): exact, no division.
        return Decimal(_make_formatter(self.price_decimals + 1)(5 * (bk[-1] + ak[0])))

    @property
    def spread(self) -> Decimal | None:
        """Human best ask minus best bid (negative when crossed), or None when a side is empty."""
        bk, ak = self._bid_keys, self._ask_keys
        if not (bk and ak):
            return None
        return Decimal(self._fmt_price(ak[0] - bk[-1]))

    def checksum_string(self, depth: int = 25) -> str:
        """The ``BIDS|ASKS`` string of ``docs/checksum.md`` over the top ``depth`` levels."""
        fp, fs = self._fmt_price, self._fmt_size
        bs, as_ = self._bid_sizes, self._ask_sizes
        bids = ",".join([f"{fp(p)}:{fs(bs[p])}" for p in reversed(_tail(self._bid_keys, depth))])
        asks = ",".join([f"{fp(p)}:{fs(as_[p])}" for p in self._ask_keys[: max(depth, 0)]])
        return f"{bids}|{asks}"

    def checksum(self, depth: int = 25) -> int:
        """CRC-32 of :meth:`checksum_string`, as in ``docs/checksum.md`` (unsigned 32-bit)."""
        return zlib.crc32(self.checksum_string(depth).encode("ascii"))


def _precision(increment: Decimal | str | None, places: int | None, inc_name: str, places_name: str) -> int:
    if (increment is None) == (places is None):
        raise ValueError(f"give exactly one of {inc_name} and {places_name}")
    if places is not None:
        if isinstance(places, bool) or not isinstance(places, int) or places < 0:
            raise ValueError(f"{places_name} must be a non-negative int, got {places!r}")
        return places
    assert increment is not None
    return decimal_places(increment)
