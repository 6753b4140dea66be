"""Rate-limit arithmetic, with no clock and no sleeping of its own (sans-I/O).

:class:`SlidingWindowLimit` (``try_take(now, cost) -> seconds to wait``, ``drain(now, seconds)``)
guarantees at most ``limit`` grants in *any* window of ``period`` seconds. That is what the indexer's
fixed-window quota needs (100 requests per 10 s): whatever the server's window alignment, it is never
exceeded. (A token bucket would not do: a full bucket plus its refill grants up to twice the quota in
one window.)

The async limiter in :mod:`nautilus_dydx.transport.ratelimit` drives it with a real clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from nautilus_dydx.core.errors import ConfigError

__all__ = ["SlidingWindowLimit"]


@dataclass(slots=True)
class SlidingWindowLimit:
    """At most ``limit`` grants in any half-open window ``[t, t + period)``.

    It remembers when each of the last ``limit`` grants stops counting (grant time + ``period``); a new
    grant is allowed once enough of them have expired. Memory is ``O(limit)``.

    Args:
        limit: grants allowed per window.
        period: the window length in seconds.
    """

    limit: int
    period: float
    # Expiry times (grant time + period) of the grants still inside the window, oldest first.
    _expiries: deque[float] = field(init=False, repr=False)
    _blocked_until: float = field(init=False, default=-math.inf)

    def __post_init__(self) -> None:
        if isinstance(self.limit, bool) or not isinstance(self.limit, int) or self.limit < 1:
            raise ConfigError(f"SlidingWindowLimit: limit must be a positive int; got {self.limit!r}")
        if not self.period > 0 or not math.isfinite(self.period):
            raise ConfigError(f"SlidingWindowLimit: period must be a positive number; got {self.period!r}")
        self._expiries = deque()

    def in_window(self, now: float) -> int:
        """How many grants still count at ``now``."""
        self._expire(now)
        return len(self._expiries)

    def _expire(self, now: float) -> None:
        expiries = self._expiries
        while expiries and expiries[0] <= now:
            expiries.popleft()

    def try_take(self, now: float, cost: int = 1) -> float:
        """Grant ``cost`` requests at ``now`` and return 0.0, or return the seconds until they fit.

        Nothing is taken when the answer is non-zero.
        """
        if isinstance(cost, bool) or not isinstance(cost, int) or not 1 <= cost <= self.limit:
            raise ConfigError(f"SlidingWindowLimit: cost must be an int in [1, {self.limit}]; got {cost!r}")
        if now < self._blocked_until:
            return self._blocked_until - now
        self._expire(now)
        excess = len(self._expiries) + cost - self.limit
        if excess <= 0:
            self._expiries.extend([now + self.period] * cost)
            return 0.0
        return self._expiries[excess - 1] - now

    def drain(self, now: float, seconds: float) -> None:
        """Grant nothing for ``seconds`` from ``now`` (the venue said Retry-After)."""
        self._blocked_until = max(self._blocked_until, now + max(seconds, 0.0))
