"""Async rate limiters shared by clients that talk to the same base URL."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from nautilus_dydx.core.ratelimit import SlidingWindowLimit

__all__ = ["AsyncRateLimiter", "RateLimiterRegistry"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class AsyncRateLimiter:
    """Waits until a request fits the quota; FIFO among waiters so no caller starves.

    The quota holds in every window of ``period`` seconds, not only in windows aligned with this
    client's start, because the indexer counts requests in fixed windows whose alignment we do not see.

    Args:
        capacity: requests allowed in any window of ``period`` seconds.
        period: the window in seconds.
        clock: a monotonic clock (inject one in tests).
        sleep: the sleep coroutine (inject one in tests).
    """

    def __init__(
        self,
        capacity: int = 100,
        period: float = 10.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._window = SlidingWindowLimit(capacity, period)
        self._lock = asyncio.Lock()

    @property
    def capacity(self) -> int:
        """Requests allowed per window."""
        return self._window.limit

    @property
    def period(self) -> float:
        """The window length in seconds."""
        return self._window.period

    async def acquire(self, cost: int = 1) -> None:
        """Wait until ``cost`` requests fit the quota, then count them.

        A caller cancelled while waiting takes nothing and lets the next waiter in.
        """
        async with self._lock:
            while True:
                wait = self._window.try_take(self._clock(), cost)
                if wait <= 0.0:
                    return
                await self._sleep(wait)

    def penalize(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (after a 429 with Retry-After)."""
        self._window.drain(self._clock(), seconds)


def _limiter_key(base_url: str) -> str:
    """Scheme and host lower-cased, default port dropped, path kept without its trailing slash."""
    parts = urlsplit(base_url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    if port is not None and (scheme, port) not in (("http", 80), ("https", 443), ("ws", 80), ("wss", 443)):
        host = f"{host}:{port}"
    if not scheme or not host:
        return base_url.strip().rstrip("/")
    return f"{scheme}://{host}{parts.path.rstrip('/')}"


class RateLimiterRegistry:
    """One :class:`AsyncRateLimiter` per base URL, handed to every client that shares the quota.

    No global state: create one registry and pass it to the clients that should share limits.

    Args:
        capacity: requests allowed per window for each base URL.
        period: the window in seconds.
        clock: the clock given to every limiter (inject one in tests).
        sleep: the sleep given to every limiter (inject one in tests).
    """

    def __init__(
        self,
        capacity: int = 100,
        period: float = 10.0,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # Validate once, here, rather than on the first get().
        SlidingWindowLimit(capacity, period)
        self._capacity = capacity
        self._period = period
        self._clock = clock
        self._sleep = sleep
        self._limiters: dict[str, AsyncRateLimiter] = {}

    def get(self, base_url: str) -> AsyncRateLimiter:
        """The limiter for ``base_url``.

        URLs that differ only in the case of scheme or host, a default port or a trailing slash share
        one limiter.
        """
        key = _limiter_key(base_url)
        limiter = self._limiters.get(key)
        if limiter is None:
            limiter = AsyncRateLimiter(self._capacity, self._period, clock=self._clock, sleep=self._sleep)
            self._limiters[key] = limiter
        return limiter
