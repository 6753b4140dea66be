"""Token-bucket arithmetic, with no clock and no sleeping of its own (sans-I/O).

The async limiter in :mod:`nautilus_dydx.transport.ratelimit` drives it with a real clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nautilus_dydx.core.errors import ConfigError

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """A bucket of ``capacity`` tokens refilled continuously at ``capacity / period`` per second.

    The indexer counts 100 requests per 10 s window per client; a bucket of 100 tokens refilled over
    10 s never exceeds that in any window aligned the server's way.

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
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate

    def drain(self, now: float, seconds: float) -> None:
        """Empty the bucket and hold it empty for ``seconds`` (the venue said Retry-After)."""
        self._refill(now)
        self.tokens = min(self.tokens, 0.0) - seconds * self.rate
        self.updated = now
