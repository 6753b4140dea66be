"""A central limit order book of individual orders, in integer subticks and quantums.

Price-time priority: better price first, then earlier arrival (a sequence number the engine hands
out). The book only stores and orders resting orders; the engine runs the taker loop, because every
match needs account checks (self-trade, collateral, reduce-only) that belong to the chain state.
"""

from __future__ import annotations

import bisect
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

from nautilus_dydx.emulator.events import OrderKey, Side

__all__ = ["Book", "BookOrder", "BookState", "crosses"]


@dataclass(slots=True)
class BookOrder:
    """A resting order: its limit, original size and how much of it has filled."""

    key: OrderKey
    side: Side
    subticks: int
    quantums: int
    filled: int
    seq: int

    @property
    def remaining(self) -> int:
        return self.quantums - self.filled


@dataclass(frozen=True, slots=True)
class BookState:
    """What :meth:`Book.restore` needs: each side's levels, the index and every order's fill."""

    sides: tuple[
        tuple[list[int], dict[int, tuple[BookOrder, ...]]],
        tuple[list[int], dict[int, tuple[BookOrder, ...]]],
    ]
    index: dict[OrderKey, BookOrder]
    fills: list[tuple[BookOrder, int]]


def crosses(taker_side: Side, taker_subticks: int, maker_subticks: int) -> bool:
    """Whether a taker limit can trade at a maker's price."""
    if taker_side == "BUY":
        return maker_subticks <= taker_subticks
    return maker_subticks >= taker_subticks


class _Side:
    """One side of the book: price levels (FIFO queues) and their prices kept sorted ascending."""

    __slots__ = ("_levels", "_prices", "_reverse")

    def __init__(self, *, best_is_highest: bool) -> None:
        self._levels: dict[int, deque[BookOrder]] = {}
        self._prices: list[int] = []
        self._reverse = best_is_highest

    def add(self, order: BookOrder) -> None:
        level = self._levels.get(order.subticks)
        if level is None:
            level = self._levels[order.subticks] = deque()
            bisect.insort(self._prices, order.subticks)
        level.append(order)

    def remove(self, order: BookOrder) -> None:
        level = self._levels[order.subticks]
        level.remove(order)
        if not level:
            del self._levels[order.subticks]
            del self._prices[bisect.bisect_left(self._prices, order.subticks)]

    def prices_best_first(self) -> list[int]:
        return self._prices[::-1] if self._reverse else list(self._prices)

    def best_price(self) -> int | None:
        if not self._prices:
            return None
        return self._prices[-1] if self._reverse else self._prices[0]

    def iter_orders(self) -> Iterator[BookOrder]:
        """Orders in priority order; a snapshot, so the caller may remove orders while iterating."""
        for price in self.prices_best_first():
            yield from tuple(self._levels.get(price, ()))

    def levels(self) -> list[tuple[int, int]]:
        return [(p, sum(o.remaining for o in self._levels[p])) for p in self.prices_best_first()]

    def snapshot(self) -> tuple[list[int], dict[int, tuple[BookOrder, ...]]]:
        return list(self._prices), {p: tuple(q) for p, q in self._levels.items()}

    def restore(self, state: tuple[list[int], dict[int, tuple[BookOrder, ...]]]) -> None:
        prices, levels = state
        self._prices = list(prices)
        self._levels = {p: deque(q) for p, q in levels.items()}

    def __len__(self) -> int:
        return sum(len(q) for q in self._levels.values())


class Book:
    """The resting orders of one clob pair."""

    __slots__ = ("_asks", "_bids", "_index")

    def __init__(self) -> None:
        self._bids = _Side(best_is_highest=True)
        self._asks = _Side(best_is_highest=False)
        self._index: dict[OrderKey, BookOrder] = {}

    def _side(self, side: Side) -> _Side:
        return self._bids if side == "BUY" else self._asks

    def add(self, order: BookOrder) -> None:
        """Rest an order at the back of its price level."""
        if order.key in self._index:
            raise ValueError(f"order {order.key} already rests on the book")
        self._index[order.key] = order
        self._side(order.side).add(order)

    def remove(self, key: OrderKey) -> BookOrder | None:
        """Take an order off the book; ``None`` when it does not rest there."""
        order = self._index.pop(key, None)
        if order is not None:
            self._side(order.side).remove(order)
        return order

    def get(self, key: OrderKey) -> BookOrder | None:
        return self._index.get(key)

    def snapshot(self) -> BookState:
        """The book's state, for :meth:`restore` (cheap: no order is copied or re-hashed)."""
        return BookState(
            sides=(self._bids.snapshot(), self._asks.snapshot()),
            index=dict(self._index),
            fills=[(order, order.filled) for order in self._index.values()],
        )

    def restore(self, state: BookState) -> None:
        """Put the book back as it was at :meth:`snapshot`, with the same :class:`BookOrder` objects."""
        self._bids.restore(state.sides[0])
        self._asks.restore(state.sides[1])
        self._index = dict(state.index)
        for order, filled in state.fills:
            order.filled = filled

    def __contains__(self, key: object) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._index)

    def orders(self) -> Iterator[BookOrder]:
        """Every resting order (bids then asks, each in priority order)."""
        yield from self._bids.iter_orders()
        yield from self._asks.iter_orders()

    def makers_for(self, taker_side: Side, taker_subticks: int) -> Iterator[BookOrder]:
        """Opposite-side orders a taker could trade with, in priority order."""
        for order in self._side("SELL" if taker_side == "BUY" else "BUY").iter_orders():
            if not crosses(taker_side, taker_subticks, order.subticks):
                return
            yield order

    def best_bid(self) -> int | None:
        return self._bids.best_price()

    def best_ask(self) -> int | None:
        return self._asks.best_price()

    def levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Aggregated ``(bids best-first, asks best-first)`` as ``(subticks, remaining quantums)``."""
        return self._bids.levels(), self._asks.levels()
