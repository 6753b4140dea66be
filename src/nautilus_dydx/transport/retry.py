"""The retry loop the transports share; the decision itself is the injected :class:`RetryPolicy`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from nautilus_dydx.core.errors import DydxError
from nautilus_dydx.core.retry import RetryPolicy

__all__ = ["run_with_retry"]

T = TypeVar("T")
_log = logging.getLogger(__name__)


async def run_with_retry(
    attempt: Callable[[], Awaitable[T]],
    policy: RetryPolicy,
    *,
    what: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> T:
    """Run ``attempt`` until it succeeds or ``policy`` gives up; re-raise the last ``DydxError``.

    ``attempt`` must raise only :class:`DydxError` subclasses (the transport maps library errors
    first). Cancellation is never retried.
    """
    started = clock()
    attempts = 0
    while True:
        try:
            return await attempt()
        except DydxError as exc:
            attempts += 1
            delay = policy.next_delay(attempts, exc, clock() - started)
            if delay is None:
                raise
            _log.debug(
                "%s failed (%s: %s); retry %d in %.3fs", what, type(exc).__name__, exc, attempts, delay
            )
            await sleep(delay)
