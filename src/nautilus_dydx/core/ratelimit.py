"""Rate-limit arithmetic, with no clock and no sleeping of its own (sans-I/O).

Two shapes share one interface (``try_take(now, cost) -> seconds to wait`` and ``drain(now, seconds)``):

* :class:`SlidingWindowLimit` guarantees at most ``limit`` grants in *any* window of ``period``
  seconds. It is what the indexer's fixed-window quota needs (100 requests per 10 s): whatever the
  server's window alignment, it is never exceeded.
* :class:`TokenBucket` smooths a rate but allows a burst of ``capacity`` on top of the refill, so over
  one ``period`` it may grant up to twice ``capacity``; use it where a long-run rate matters, not a
  hard per-window cap.

The async limiter in :mod:`nautilus_dydx.transport.ratelimit` drives them with a real clock.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from nautilus_dydx.core.errors import ConfigError

__all__ = ["SlidingWindowLimit", "TokenBucket"]

_TOKEN_EPSILON = 1e-9


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


@dataclass(slots=True)
class TokenBucket:
    """A bucket of ``capacity`` tokens refilled continuously at ``capacity / period`` per second.

    A full bucket grants a burst of ``capacity`` and keeps refilling meanwhile, so one window of
    ``period`` seconds can see up to ``2 × capacity`` grants. For a hard "N per window" quota such as
    the indexer's, use :class:`SlidingWindowLimit`.

    Args:
        capacity: the most tokens the bucket holds (the burst).
        period: seconds to refill an empty bucket.
        now: the clock reading at creation.
    """

    capacity: float
    period: float
    now: float = 0.0
    tokens: float = field(init=False)
    updated: float = field(init=False)

    def __post_init__(self) -> None:
        if self.capacity <= 0 or self.period <= 0:
            raise ConfigError("TokenBucket: capacity and period must be > 0")
        self.tokens = float(self.capacity)
        self.updated = self.now

    @property
    def rate(self) -> float:
        """Tokens added per second."""
        return self.capacity / self.period

    def _refill(self, now: float) -> None:
        if now > self.updated:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
            self.updated = now

    def try_take(self, now: float, cost: float = 1.0) -> float:
        """Take ``cost`` tokens if they are there; return 0.0, else the seconds until they will be.

        Nothing is taken when the answer is non-zero.
        """
        if cost > self.capacity:
            raise ConfigError(f"TokenBucket: cost {cost} exceeds capacity {self.capacity}")
        self._refill(now)
        # Refill arithmetic in floats can land a hair below a whole token at exactly the promised time
        # (the clock's own rounding, times the rate); without this tolerance a caller that sleeps the
        # returned wait is told to wait again for a sub-ulp interval, forever.
        tolerance = _TOKEN_EPSILON + 8 * math.ulp(max(abs(now), 1.0)) * self.rate
        if self.tokens >= cost - tolerance:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def drain(self, now: float, seconds: float) -> None:
        """Empty the bucket and hold it empty for ``seconds`` (the venue said Retry-After)."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate
        self.updated = now
