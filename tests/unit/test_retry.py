"""ExponentialBackoff with a seeded rng, and run_with_retry with an injected clock and sleep."""

from __future__ import annotations

import asyncio
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.errors import (
    BadRequestError,
    ChainError,
    ConfigError,
    ConnectError,
    RateLimitedError,
    TransportTimeout,
)
from nautilus_dydx.core.retry import ExponentialBackoff, NoRetry, RetryPolicy
from nautilus_dydx.transport.retry import run_with_retry

RETRYABLE = ConnectError("connection refused")
FATAL = BadRequestError("bad", status=400)


# --------------------------------------------------------------------------------------------------
# ExponentialBackoff


def test_ceiling_grows_and_caps() -> None:
    b = ExponentialBackoff(initial=0.1, factor=2.0, cap=1.0)
    assert [b.ceiling(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    assert b.ceiling(0) == 0.1
    assert b.ceiling(10**9) == 1.0  # a reconnect loop running for days does not overflow


def test_ceiling_with_huge_factor_does_not_overflow() -> None:
    b = ExponentialBackoff(initial=1.0, factor=1e10, cap=60.0)
    assert b.ceiling(64) == 60.0
    assert b.ceiling(10**6) == 60.0
    assert ExponentialBackoff(initial=0.0, factor=1e10).ceiling(64) == 0.0


def test_deterministic_delays_without_jitter() -> None:
    b = ExponentialBackoff(initial=0.5, factor=3.0, cap=10.0, jitter=False, max_attempts=None, budget=None)
    assert [b.next_delay(n, RETRYABLE, 0.0) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    initial=st.floats(0.0, 5.0),
    factor=st.floats(1.0, 4.0),
    cap=st.floats(0.0, 30.0),
    attempt=st.integers(1, 200),
)
def test_every_jittered_delay_is_within_its_bounds(
    seed: int, initial: float, factor: float, cap: float, attempt: int
) -> None:
    b = ExponentialBackoff(
        initial=initial, factor=factor, cap=cap, max_attempts=None, budget=None, rng=random.Random(seed)
    )
    delay = b.next_delay(attempt, RETRYABLE, 0.0)
    assert delay is not None
    assert 0.0 <= delay <= min(cap, b.ceiling(attempt))


def test_seeded_rng_reproduces_delays() -> None:
    def delays(seed: int) -> list[float | None]:
        b = ExponentialBackoff(max_attempts=None, budget=None, rng=random.Random(seed))
        return [b.next_delay(n, RETRYABLE, 0.0) for n in range(1, 20)]

    assert delays(7) == delays(7)
    assert delays(7) != delays(8)


def test_retry_after_is_a_lower_bound() -> None:
    b = ExponentialBackoff(initial=0.1, cap=1.0, max_attempts=None, budget=None, rng=random.Random(1))
    for attempt in range(1, 10):
        assert b.next_delay(attempt, RateLimitedError("429", retry_after=7.0), 0.0) == 7.0
    small = RateLimitedError("429", retry_after=0.0001)
    jittered = ExponentialBackoff(jitter=False, initial=0.3, max_attempts=None, budget=None)
    assert jittered.next_delay(1, small, 0.0) == 0.3


def test_max_attempts_counts_the_first_attempt() -> None:
    b = ExponentialBackoff(max_attempts=3, budget=None, rng=random.Random(0))
    assert b.next_delay(1, RETRYABLE, 0.0) is not None
    assert b.next_delay(2, RETRYABLE, 0.0) is not None
    assert b.next_delay(3, RETRYABLE, 0.0) is None
    assert ExponentialBackoff(max_attempts=1).next_delay(1, RETRYABLE, 0.0) is None


def test_budget_stops_when_the_next_attempt_would_start_too_late() -> None:
    b = ExponentialBackoff(initial=2.0, jitter=False, max_attempts=None, budget=5.0)
    assert b.next_delay(1, RETRYABLE, 3.0) == 2.0  # starts at exactly 5.0: allowed
    assert b.next_delay(1, RETRYABLE, 3.01) is None
    assert b.next_delay(1, RateLimitedError("429", retry_after=6.0), 0.0) is None


def test_non_retryable_errors_stop_at_once() -> None:
    b = ExponentialBackoff(max_attempts=None, budget=None)
    assert b.next_delay(1, FATAL, 0.0) is None
    assert b.next_delay(1, ChainError("clob", 2003, "cross"), 0.0) is None
    assert b.next_delay(1, ValueError("foreign"), 0.0) is None
    assert b.next_delay(1, ChainError("sdk", 20, "mempool full"), 0.0) is not None


def test_custom_retryable_predicate() -> None:
    b = ExponentialBackoff(retryable=lambda e: isinstance(e, BadRequestError), budget=None)
    assert b.next_delay(1, FATAL, 0.0) is not None
    assert b.next_delay(1, RETRYABLE, 0.0) is None


def test_delays_generator_is_endless_and_bounded() -> None:
    b = ExponentialBackoff(initial=0.1, cap=2.0, rng=random.Random(3))
    gen = b.delays()
    values = [next(gen) for _ in range(500)]
    assert all(0.0 <= v <= 2.0 for v in values)
    assert max(values[100:]) > 1.0  # the cap is reached, not just the first ceilings
    fixed = ExponentialBackoff(initial=1.0, cap=3.0, jitter=False).delays()
    assert [next(fixed) for _ in range(4)] == [1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"initial": -1.0},
        {"cap": -0.1},
        {"factor": 0.5},
        {"max_attempts": 0},
        {"budget": -1.0},
    ],
)
def test_invalid_backoff(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        ExponentialBackoff(**kwargs)  # type: ignore[arg-type]


def test_policies_satisfy_the_protocol() -> None:
    assert isinstance(ExponentialBackoff(), RetryPolicy)
    assert isinstance(NoRetry(), RetryPolicy)
    assert NoRetry().next_delay(1, RETRYABLE, 0.0) is None


# --------------------------------------------------------------------------------------------------
# run_with_retry


class FakeTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """An attempt that fails with the given errors in order, then returns ``result``."""

    def __init__(
        self, errors: list[BaseException], result: str = "ok", cost: float = 0.0, fake: FakeTime | None = None
    ) -> None:
        self.errors = list(errors)
        self.result = result
        self.calls = 0
        self.cost = cost
        self.fake = fake

    async def __call__(self) -> str:
        self.calls += 1
        if self.fake is not None:
            self.fake.now += self.cost  # each attempt takes this long
        if self.errors:
            raise self.errors.pop(0)
        return self.result


class RecordingPolicy:
    def __init__(self, delays: list[float | None]) -> None:
        self.delays = delays
        self.seen: list[tuple[int, BaseException, float]] = []

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        self.seen.append((attempt, error, elapsed))
        return self.delays[len(self.seen) - 1]


async def test_succeeds_after_retries_and_sleeps_the_policy_delays() -> None:
    fake = FakeTime()
    errors: list[BaseException] = [ConnectError("a"), TransportTimeout("b")]
    script = Script(errors, fake=fake, cost=0.5)
    policy = RecordingPolicy([1.0, 2.0])
    result = await run_with_retry(script, policy, what="GET /v4/time", clock=fake.clock, sleep=fake.sleep)
    assert result == "ok"
    assert script.calls == 3
    assert fake.sleeps == [1.0, 2.0]
    assert [(a, type(e)) for a, e, _ in policy.seen] == [(1, ConnectError), (2, TransportTimeout)]
    assert [elapsed for _, _, elapsed in policy.seen] == [0.5, 2.0]  # attempt time + sleeps so far


async def test_reraises_the_last_error_when_the_policy_gives_up() -> None:
    fake = FakeTime()
    last = ConnectError("third")
    script = Script([ConnectError("first"), ConnectError("second"), last])
    policy = ExponentialBackoff(max_attempts=3, budget=None, rng=random.Random(5))
    with pytest.raises(ConnectError) as info:
        await run_with_retry(script, policy, what="x", clock=fake.clock, sleep=fake.sleep)
    assert info.value is last
    assert script.calls == 3
    assert len(fake.sleeps) == 2
    assert all(0.0 <= s <= policy.ceiling(n) for n, s in enumerate(fake.sleeps, start=1))


async def test_non_retryable_error_is_raised_after_one_attempt() -> None:
    fake = FakeTime()
    script = Script([FATAL])
    with pytest.raises(BadRequestError):
        await run_with_retry(script, ExponentialBackoff(), what="x", clock=fake.clock, sleep=fake.sleep)
    assert script.calls == 1
    assert fake.sleeps == []


async def test_budget_is_measured_on_the_injected_clock() -> None:
    fake = FakeTime()
    script = Script([ConnectError(str(i)) for i in range(100)], fake=fake, cost=4.0)
    policy = ExponentialBackoff(initial=1.0, jitter=False, max_attempts=None, budget=10.0)
    with pytest.raises(ConnectError):
        await run_with_retry(script, policy, what="x", clock=fake.clock, sleep=fake.sleep)
    # 4 s attempt, 1 s wait, 4 s attempt (elapsed 9), next wait 2 s would pass 10 s: stop after 2.
    assert script.calls == 2
    assert fake.sleeps == [1.0]


async def test_cancellation_is_never_retried() -> None:
    fake = FakeTime()
    script = Script([asyncio.CancelledError()])
    policy = RecordingPolicy([0.1] * 5)
    with pytest.raises(asyncio.CancelledError):
        await run_with_retry(script, policy, what="x", clock=fake.clock, sleep=fake.sleep)
    assert script.calls == 1
    assert policy.seen == []


async def test_cancellation_during_the_back_off_propagates() -> None:
    started = asyncio.Event()

    async def forever(seconds: float) -> None:
        started.set()
        await asyncio.Event().wait()

    script = Script([ConnectError("a")] * 10)
    task = asyncio.create_task(run_with_retry(script, RecordingPolicy([5.0] * 10), what="x", sleep=forever))
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.calls == 1


async def test_foreign_exceptions_are_not_retried() -> None:
    fake = FakeTime()
    script = Script([KeyError("bug")])
    policy = RecordingPolicy([0.1] * 5)
    with pytest.raises(KeyError):
        await run_with_retry(script, policy, what="x", clock=fake.clock, sleep=fake.sleep)
    assert script.calls == 1
    assert policy.seen == []


async def test_retry_after_is_honoured_by_the_loop() -> None:
    fake = FakeTime()
    script = Script([RateLimitedError("429", retry_after=3.0)])
    policy = ExponentialBackoff(initial=0.01, cap=0.1, rng=random.Random(2))
    assert await run_with_retry(script, policy, what="x", clock=fake.clock, sleep=fake.sleep) == "ok"
    assert fake.sleeps == [3.0]


async def test_with_the_real_clock_and_sleep() -> None:
    script = Script([ConnectError("a"), ConnectError("b")])
    policy = ExponentialBackoff(initial=0.001, cap=0.002, rng=random.Random(0))
    assert await run_with_retry(script, policy, what="x") == "ok"
    assert script.calls == 3
