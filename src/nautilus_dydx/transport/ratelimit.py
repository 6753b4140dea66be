"""Async rate limiters shared by clients that talk to the same base URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from nautilus_dydx.core.ratelimit import TokenBucket

__all__ = ["AsyncRateLimiter", "RateLimiterRegistry"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class AsyncRateLimiter:
    """Waits until a token is free; FIFO among waiters so no caller starves.

    Args:
        capacity: requests allowed per ``period``.
        period: the window in seconds.
        clock: a monotonic clock (inject one in tests).
        sleep: the sleep coroutine (inject one in tests).
    """

    def __init__(
        self,
        capacity: float = 100,
        period: float = 10.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._bucket = TokenBucket(capacity, period, now=clock())
        self._lock = asyncio.Lock()

    @property
    def capacity(self) -> float:
        return self._bucket.capacity

    @property
    def period(self) -> float:
        return self._bucket.period

    async def acquire(self, cost: float = 1.0) -> None:
        """Wait until ``cost`` tokens can be taken, then take them."""
        async with self._lock:
            while True:
                wait = self._bucket.try_take(self._clock(), cost)
                if wait <= 0.0:
                    return
                await self._sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (after a 429 with Retry-After)."""
        self._bucket.drain(self._clock(), seconds)


class RateLimiterRegistry:
    """One :class:`AsyncRateLimiter` per base URL, handed to every client that shares the quota.

    No global state: create one registry and pass it to the clients that should share limits.
    """

    def __init__(self, capacity: float = 100, period: float = 10.0) -> None:
        self._capacity = capacity
        self._period = period
        self._limiters: dict[str, AsyncRateLimiter] = {}

    def get(self, base_url: str) -> AsyncRateLimiter:
        """The limiter for ``base_url`` (normalised: scheme and host lower-cased, no trailing slash)."""
        key = base_url.rstrip("/").lower()
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = AsyncRateLimiter(self._capacity, self._period)
            self._limiters[key] = limiter
        return limiter
