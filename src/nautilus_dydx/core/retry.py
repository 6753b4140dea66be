"""Retry policies shared by the REST, WebSocket and gRPC transports.

A policy is a pure value: given the attempt number, the error and the time already spent, it says how
long to wait before the next attempt, or ``None`` to give up. The transports own the loop and the
sleeping (see :func:`nautilus_dydx.transport.retry.run_with_retry`), so tests can inject a clock and a
random source and check every delay exactly.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from nautilus_dydx.core.errors import ConfigError, is_retryable, retry_after

__all__ = ["ExponentialBackoff", "NoRetry", "RetryPolicy"]


@runtime_checkable
class RetryPolicy(Protocol):
    """Decides whether and when a failed attempt is tried again."""

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        """Seconds to wait before attempt ``attempt + 1``, or ``None`` to stop.

        Args:
            attempt: the number of attempts made so far (1 after the first failure).
            error: the error the last attempt ended with.
            elapsed: seconds since the first attempt started.
        """
        ...


@dataclass(frozen=True, slots=True)
class NoRetry:
    """Never retries."""

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        return None


@dataclass(frozen=True, slots=True)
class ExponentialBackoff:
    """Capped exponential back-off with full jitter and a total time budget.

    The n-th delay is drawn uniformly from ``[0, min(cap, initial * factor ** (n - 1))]`` ("full
    jitter"), so that many clients reconnecting at once spread out. A delay the venue asked for
    (``Retry-After``) is honoured as a lower bound. The policy gives up after ``max_attempts`` attempts
    or when the next attempt would start after ``budget`` seconds; ``None`` means no limit.

    Args:
        initial: upper bound of the first delay, seconds.
        factor: growth of the upper bound per attempt.
        cap: largest upper bound, seconds.
        jitter: ``True`` for full jitter, ``False`` for the deterministic upper bound.
        max_attempts: total attempts including the first; ``None`` for unlimited.
        budget: total seconds across all attempts and waits; ``None`` for unlimited.
        retryable: decides which errors are worth another attempt (defaults to
            :func:`nautilus_dydx.core.errors.is_retryable`).
        rng: the random source for jitter (inject a seeded ``random.Random`` in tests).
    """

    initial: float = 0.1
    factor: float = 2.0
    cap: float = 10.0
    jitter: bool = True
    max_attempts: int | None = 5
    budget: float | None = 30.0
    retryable: Callable[[BaseException], bool] = is_retryable
    rng: random.Random = field(default_factory=random.Random, compare=False)

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ConfigError("ExponentialBackoff: initial and cap must be >= 0")
        if self.factor < 1:
            raise ConfigError("ExponentialBackoff: factor must be >= 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ConfigError("ExponentialBackoff: max_attempts must be >= 1 or None")
        if self.budget is not None and self.budget < 0:
            raise ConfigError("ExponentialBackoff: budget must be >= 0 or None")

    def ceiling(self, attempt: int) -> float:
        """The upper bound of the delay after ``attempt`` failed attempts."""
        # Cap the exponent so that huge attempt numbers (a reconnect loop running for days) never overflow.
        exponent = min(max(attempt - 1, 0), 64)
        if self.initial == 0:
            return 0.0
        try:
            grown = self.initial * self.factor**exponent
        except OverflowError:  # a large factor overflows float long before 64 attempts
            return float(self.cap)
        return float(min(self.cap, grown))

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        if not self.retryable(error):
            return None
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        ceiling = self.ceiling(attempt)
        delay = self.rng.uniform(0.0, ceiling) if self.jitter else ceiling
        asked = retry_after(error)
        if asked is not None:
            delay = max(delay, asked)
        if self.budget is not None and elapsed + delay > self.budget:
            return None
        return delay

    def delays(self) -> Iterator[float]:
        """An endless series of jittered delays, for reconnect loops that never give up."""
        attempt = 1
        while True:
            ceiling = self.ceiling(attempt)
            yield self.rng.uniform(0.0, ceiling) if self.jitter else ceiling
            attempt += 1
