"""Oracle prices: a seeded random walk per market in integer price units, with overrides."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

__all__ = ["Oracle"]


class Oracle:
    """Prices in units of ``10**price_exponent`` of each market, keyed by clob pair id.

    Each :meth:`step` moves every price by a uniformly drawn integer number of ppm in
    ``[-max_step_ppm, max_step_ppm]``, except markets with a pending override, which jump to it. The
    walk is drawn from one :class:`random.Random` seeded by the engine, in ascending clob pair order,
    so the same seed gives the same path.
    """

    def __init__(self, prices: Mapping[int, int], *, seed: int, max_step_ppm: int = 300) -> None:
        self._prices = dict(prices)
        self._pending: dict[int, int] = {}
        self._rng = random.Random(seed)
        self.max_step_ppm = max_step_ppm

    @property
    def prices(self) -> Mapping[int, int]:
        return self._prices

    def price(self, clob_pair_id: int) -> int:
        return self._prices[clob_pair_id]

    def override(self, clob_pair_id: int, price: int) -> None:
        """Set the price the next :meth:`step` applies (instead of a random move)."""
        if price <= 0:
            raise ValueError("oracle price must be > 0")
        self._pending[clob_pair_id] = price

    def snapshot(self) -> tuple[dict[int, int], dict[int, int]]:
        """Prices and pending overrides (the random walk's state is not included)."""
        return dict(self._prices), dict(self._pending)

    def restore(self, state: tuple[dict[int, int], dict[int, int]]) -> None:
        """Put back what :meth:`snapshot` returned."""
        self._prices, self._pending = dict(state[0]), dict(state[1])

    def step(self) -> Iterable[int]:
        """Advance one block; returns the clob pair ids whose price changed."""
        changed: list[int] = []
        for clob_pair_id in sorted(self._prices):
            old = self._prices[clob_pair_id]
            move = self._rng.randint(-self.max_step_ppm, self.max_step_ppm)
            new = self._pending.pop(clob_pair_id, None)
            if new is None:
                new = max(1, old + old * move // 1_000_000)
            if new != old:
                self._prices[clob_pair_id] = new
                changed.append(clob_pair_id)
        return changed
