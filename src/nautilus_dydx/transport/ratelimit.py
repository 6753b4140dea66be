"""Async rate limiters shared by clients that talk to the same base URL."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from nautilus_dydx.core.errors import RateLimitedError
from nautilus_dydx.core.ratelimit import SlidingWindowLimit

__all__ = ["AsyncRateLimiter", "RateLimiterRegistry"]

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class _Waiter:
    """One caller queued in :meth:`AsyncRateLimiter.acquire`."""

    __slots__ = ("cost", "deadline", "sleeper", "turn")

    def __init__(self, cost: int, deadline: float | None, turn: asyncio.Future[None]) -> None:
        self.cost = cost
        self.deadline = deadline  # on the limiter's clock; None: no limit
        self.turn = turn  # resolved when this waiter reaches the head of the queue
        self.sleeper: asyncio.Future[None] | None = None  # the head's current sleep


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
        # Callers not yet granted, in arrival order; only the first one sleeps on the window.
        self._queue: deque[_Waiter] = deque()

    @property
    def capacity(self) -> int:
        """Requests allowed per window."""
        return self._window.limit

    @property
    def period(self) -> float:
        """The window length in seconds."""
        return self._window.period

    async def acquire(
        self,
        cost: int = 1,
        *,
        max_wait: float | None = None,
        abort: asyncio.Future[Any] | None = None,
    ) -> bool:
        """Wait until ``cost`` requests fit the quota, then count them.

        A caller cancelled or aborted while waiting takes nothing and lets the next waiter in.

        Args:
            cost: how many requests to count.
            max_wait: the longest this caller may wait, in seconds (``None``: as long as it takes).
                When the grant cannot come within it - behind a ``Retry-After`` penalty, a full
                window or the callers queued ahead - nothing is taken and
                :class:`~nautilus_dydx.core.errors.RateLimitedError` is raised at once, its
                ``retry_after`` the expected wait. A penalty that arrives while the caller waits is
                checked the same way.
            abort: a future whose completion ends the wait (a client being closed).

        Returns:
            True when the requests were counted; False when ``abort`` completed first (nothing
            was taken).

        Raises:
            RateLimitedError: the wait would be longer than ``max_wait``.
        """
        if abort is not None and abort.done():
            return False
        now = self._clock()
        queue = self._queue
        if not queue:
            wait = self._window.try_take(now, cost)
            if wait <= 0.0:
                return True
        elif max_wait is not None:
            wait = self._expected_wait(now, cost)
        else:
            wait = 0.0  # unknown and not needed: nothing to compare it with
        if max_wait is not None and wait > max_wait:
            raise _too_long(wait, max_wait)
        waiter = _Waiter(
            cost, None if max_wait is None else now + max_wait, asyncio.get_running_loop().create_future()
        )
        queue.append(waiter)
        try:
            if queue[0] is not waiter:
                if not await _first(waiter.turn, abort):
                    return False
                waiter.turn.result()  # the RateLimitedError of a penalty that pushed us out
            while True:
                now = self._clock()
                wait = self._window.try_take(now, cost)
                if wait <= 0.0:
                    return True
                if waiter.deadline is not None and now + wait > waiter.deadline:
                    raise _too_long(wait, waiter.deadline - now)
                sleeper = waiter.sleeper = asyncio.ensure_future(self._sleep(wait))
                if not await _first(sleeper, abort):
                    return False
                if not sleeper.cancelled():  # penalize() cancels it to have the wait looked at again
                    sleeper.result()
        finally:
            if waiter.sleeper is not None:
                waiter.sleeper.cancel()
            if waiter.turn.done() and not waiter.turn.cancelled():
                waiter.turn.exception()  # retrieved, even by a caller cancelled meanwhile
            self._leave(waiter)

    def penalize(self, seconds: float) -> None:
        """Hold every caller back for ``seconds`` (after a 429 with Retry-After).

        Queued callers whose ``max_wait`` the penalty now exceeds fail at once with
        :class:`~nautilus_dydx.core.errors.RateLimitedError`.
        """
        now = self._clock()
        self._window.drain(now, seconds)
        queue = self._queue
        if not queue:
            return
        head = queue[0]
        if head.sleeper is not None:
            head.sleeper.cancel()  # the head looks at its wait again, and fails itself if need be
        if all(waiter.deadline is None for waiter in queue):
            return
        # Replay the queue on a copy of the window: who can still be served within their deadline?
        window = copy.deepcopy(self._window)
        at = now
        for index, waiter in enumerate(list(queue)):
            if waiter.deadline is None:
                at = _grant_time(window, at, waiter.cost)
                continue
            before = copy.deepcopy(window)
            granted = _grant_time(window, at, waiter.cost)
            if granted <= waiter.deadline:
                at = granted
                continue
            window = before  # it leaves, taking nothing from those behind it
            if index == 0:
                continue  # the head, woken above, fails itself
            queue.remove(waiter)
            if not waiter.turn.done():
                waiter.turn.set_exception(_too_long(granted - now, waiter.deadline - now))

    def _expected_wait(self, now: float, cost: int) -> float:
        """Seconds until ``cost`` fits behind every queued caller, if nothing else changes."""
        window = copy.deepcopy(self._window)
        at = now
        for waiter in self._queue:
            at = _grant_time(window, at, waiter.cost)
        return _grant_time(window, at, cost) - now

    def _leave(self, waiter: _Waiter) -> None:
        queue = self._queue
        if queue and queue[0] is waiter:
            queue.popleft()
            if queue and not queue[0].turn.done():
                queue[0].turn.set_result(None)
        else:
            with contextlib.suppress(ValueError):  # penalize() took it out already
                queue.remove(waiter)


def _grant_time(window: SlidingWindowLimit, at: float, cost: int) -> float:
    """When ``window`` grants ``cost`` at or after ``at``; takes it there (a simulation)."""
    for _ in range(16):
        wait = window.try_take(at, cost)
        if wait <= 0.0:
            break
        at += wait
    return at


async def _first(fut: asyncio.Future[Any], abort: asyncio.Future[Any] | None) -> bool:
    """Wait for ``fut``; False when ``abort`` completes first (or with it)."""
    if abort is None:
        await asyncio.wait((fut,))
        return True
    await asyncio.wait((fut, abort), return_when=asyncio.FIRST_COMPLETED)
    return not abort.done()


def _too_long(wait: float, max_wait: float) -> RateLimitedError:
    return RateLimitedError(
        f"rate limit: the next slot is {wait:.3f}s away, longer than the {max(max_wait, 0.0):.3f}s allowed",
        retry_after=wait,
    )


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
