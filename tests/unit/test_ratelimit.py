"""Rate limits: window arithmetic (sans-I/O) and the async limiter driven by a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.errors import ConfigError, RateLimitedError, is_retryable
from nautilus_dydx.core.ratelimit import SlidingWindowLimit
from nautilus_dydx.transport.ratelimit import AsyncRateLimiter, RateLimiterRegistry


class FakeTime:
    """A clock that only moves when someone sleeps on it."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the limiter must never sleep for nothing"
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


def _max_in_any_window(grants: Iterable[tuple[float, int]], period: float) -> int:
    """The most grants inside any half-open window [s, s + period); windows starting at a grant suffice."""
    events = sorted(grants)
    best = 0
    for start, _ in events:
        best = max(best, sum(cost for t, cost in events if start <= t < start + period))
    return best


# --------------------------------------------------------------------------------------------------
# SlidingWindowLimit


def test_sliding_window_basic() -> None:
    w = SlidingWindowLimit(3, 10.0)
    assert [w.try_take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert w.try_take(4.0) == 6.0  # the first grant stops counting at 10.0
    assert w.in_window(4.0) == 3
    assert w.try_take(10.0) == 0.0
    assert w.try_take(10.0, cost=2) == 0.0  # the two grants of t=0 expired at 10.0
    assert w.try_take(10.0) == 10.0
    assert w.in_window(19.999) == 3
    assert w.in_window(20.0) == 0


def test_sliding_window_cost_and_validation() -> None:
    w = SlidingWindowLimit(5, 1.0)
    assert w.try_take(0.0, 4) == 0.0
    assert w.try_take(0.5, 3) == 0.5  # two of the four must expire: they all expire at 1.0
    with pytest.raises(ConfigError, match="cost must be an int in"):
        w.try_take(0.0, 6)
    with pytest.raises(ConfigError, match="cost must be an int in"):
        w.try_take(0.0, 0)
    for limit, period in ((0, 1.0), (1, 0.0), (1, float("inf")), (True, 1.0), (1.5, 1.0)):
        with pytest.raises(ConfigError):
            SlidingWindowLimit(limit, period)  # type: ignore[arg-type]


def test_sliding_window_drain_blocks_then_releases() -> None:
    w = SlidingWindowLimit(100, 10.0)
    assert w.try_take(0.0) == 0.0
    w.drain(1.0, 5.0)
    assert w.try_take(1.0) == 5.0
    assert w.try_take(5.5) == 0.5
    w.drain(2.0, 1.0)  # a shorter penalty never shortens a longer one
    assert w.try_take(5.9) == pytest.approx(0.1)
    assert w.try_take(6.0) == 0.0


@settings(max_examples=200, deadline=None)
@given(
    limit=st.integers(1, 20),
    period=st.sampled_from([0.5, 1.0, 10.0]),
    events=st.lists(
        st.tuples(st.sampled_from([0.0, 0.0, 0.001, 0.1, 0.25, 1.0, 3.0, 12.0]), st.integers(1, 5)),
        min_size=1,
        max_size=120,
    ),
    start=st.sampled_from([0.0, 12345.678, 2097152.0, 9.87e6]),
)
def test_sliding_window_never_exceeds_and_waits_exactly(
    limit: int, period: float, events: list[tuple[float, int]], start: float
) -> None:
    w = SlidingWindowLimit(limit, period)
    grants: list[tuple[float, int]] = []
    now = start
    for gap, raw_cost in events:
        cost = min(raw_cost, limit)
        now += gap
        for _ in range(4):  # sleeping the returned wait must lead to a grant at once (no livelock)
            wait = w.try_take(now, cost)
            if wait == 0.0:
                break
            # A refusal is justified: the grants still counting plus this one exceed the limit.
            assert sum(c for t, c in grants if now - period < t <= now) + cost > limit
            now += wait
        else:
            pytest.fail(f"no grant after sleeping the promised waits at {now}")
        grants.append((now, cost))
    assert _max_in_any_window(grants, period) <= limit


# --------------------------------------------------------------------------------------------------
# AsyncRateLimiter


async def test_async_limiter_never_exceeds_100_per_10s_in_any_window() -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=fake.sleep)
    order: list[int] = []
    grants: list[tuple[float, int]] = []

    async def request(i: int) -> None:
        await limiter.acquire()
        order.append(i)
        grants.append((fake.now, 1))

    await asyncio.gather(*(request(i) for i in range(250)))
    assert order == list(range(250))  # FIFO: nobody overtakes
    times = [t for t, _ in grants]
    assert times == [1000.0] * 100 + [1010.0] * 100 + [1020.0] * 50
    assert _max_in_any_window(grants, 10.0) == 100


async def test_async_limiter_spread_out_arrivals() -> None:
    fake = FakeTime(0.0)
    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=fake.sleep)
    grants: list[tuple[float, int]] = []
    for i in range(400):
        if i % 7 == 0:
            fake.now += 0.37  # callers arriving over time, some in bursts
        await limiter.acquire()
        grants.append((fake.now, 1))
    assert _max_in_any_window(grants, 10.0) == 100


async def test_penalize_holds_every_caller_back() -> None:
    fake = FakeTime(0.0)
    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=fake.sleep)
    await limiter.acquire()
    limiter.penalize(5.0)
    done: list[float] = []

    async def request() -> None:
        await limiter.acquire()
        done.append(fake.now)

    await asyncio.gather(request(), request(), request())
    assert done == [5.0, 5.0, 5.0]


async def test_cancelled_waiter_takes_nothing_and_frees_the_queue() -> None:
    fake = FakeTime(0.0)
    stalled = asyncio.Event()

    async def stalling_sleep(seconds: float) -> None:
        stalled.set()
        await asyncio.Event().wait()  # never wakes: only cancellation gets out

    limiter = AsyncRateLimiter(2, 10.0, clock=fake.clock, sleep=stalling_sleep)
    await limiter.acquire()
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await stalled.wait()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    fake.now = 10.0
    await asyncio.wait_for(limiter.acquire(), timeout=5)
    await asyncio.wait_for(limiter.acquire(), timeout=5)  # the cancelled waiter did not use a slot


async def test_async_limiter_with_the_real_clock() -> None:
    limiter = AsyncRateLimiter(2, 0.05)
    assert (limiter.capacity, limiter.period) == (2, 0.05)
    for _ in range(5):
        await asyncio.wait_for(limiter.acquire(), timeout=5)


# --------------------------------------------------------------------------------------------------
# RateLimiterRegistry


async def test_registry_shares_one_limiter_per_base_url() -> None:
    fake = FakeTime(0.0)
    registry = RateLimiterRegistry(3, 10.0, clock=fake.clock, sleep=fake.sleep)
    a = registry.get("https://indexer.dydx.trade")
    assert registry.get("HTTPS://Indexer.DYDX.trade/") is a
    assert registry.get("https://indexer.dydx.trade:443") is a
    assert registry.get("https://indexer.v4testnet.dydx.exchange") is not a
    assert registry.get("https://indexer.dydx.trade:8443") is not a
    assert registry.get("http://127.0.0.1:3002") is registry.get("http://127.0.0.1:3002/")

    b = registry.get("https://indexer.dydx.trade/")
    for _ in range(3):
        await a.acquire()
    await b.acquire()  # the fourth request in the window, through the other handle, must wait
    assert fake.now == 10.0
    assert (a.capacity, a.period) == (3, 10.0)


def test_registry_validates_its_quota() -> None:
    with pytest.raises(ConfigError):
        RateLimiterRegistry(0, 10.0)


# --------------------------------------------------------------------------------------------------
# AsyncRateLimiter: max_wait and abort


class GatedTime:
    """A clock that moves only when the test opens the gate of a pending sleep."""

    def __init__(self, start: float = 0.0) -> None:
        self.now = start
        self.pending: list[float] = []
        self.sleeping = asyncio.Event()
        self._gate = asyncio.Event()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.pending.append(seconds)
        self.sleeping.set()
        try:
            await self._gate.wait()
        finally:
            self.pending.remove(seconds)
            if not self.pending:
                self.sleeping.clear()
        self._gate.clear()
        self.now += seconds

    async def next_sleep(self) -> float:
        """The duration of the sleep the limiter is in (waiting for one to start)."""
        await asyncio.wait_for(self.sleeping.wait(), timeout=5)
        return self.pending[-1]

    def open(self) -> None:
        self._gate.set()


async def settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_max_wait_refuses_at_once_behind_a_penalty() -> None:
    fake = FakeTime(0.0)
    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=fake.sleep)
    limiter.penalize(60.0)
    with pytest.raises(RateLimitedError, match=r"60\.000s away") as info:
        await limiter.acquire(max_wait=2.0)
    assert info.value.retry_after == 60.0
    assert fake.sleeps == []  # refused without waiting
    assert is_retryable(info.value)
    # a caller that can wait that long waits it out
    assert await limiter.acquire(max_wait=60.0) is True
    assert fake.now == 60.0


async def test_max_wait_refuses_at_once_behind_a_full_window_and_takes_nothing() -> None:
    fake = FakeTime(0.0)
    limiter = AsyncRateLimiter(2, 10.0, clock=fake.clock, sleep=fake.sleep)
    assert await limiter.acquire()
    fake.now = 4.0
    assert await limiter.acquire()
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(max_wait=5.9)
    assert info.value.retry_after == pytest.approx(6.0)
    assert fake.sleeps == []
    assert await limiter.acquire(max_wait=6.0)
    assert fake.now == pytest.approx(10.0)
    # the refused caller took nothing: the grant at 4.0 is the next to expire
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(max_wait=0.0)
    assert info.value.retry_after == pytest.approx(4.0)


async def test_max_wait_counts_the_callers_queued_ahead() -> None:
    gate = GatedTime()
    limiter = AsyncRateLimiter(1, 10.0, clock=gate.clock, sleep=gate.sleep)
    assert await limiter.acquire()
    order: list[str] = []

    async def request(name: str, max_wait: float | None) -> None:
        await limiter.acquire(max_wait=max_wait)
        order.append(name)

    first = asyncio.create_task(request("first", None))  # next slot at 10
    assert await gate.next_sleep() == 10.0
    second = asyncio.create_task(request("second", 20.0))  # slot at 20: fits exactly
    await settle()
    # a third caller would be served at 30: it cannot wait 25 s, and is told so at once
    with pytest.raises(RateLimitedError) as info:
        await limiter.acquire(max_wait=25.0)
    assert info.value.retry_after == pytest.approx(30.0)
    gate.open()
    await first
    assert await gate.next_sleep() == pytest.approx(10.0)
    gate.open()
    await asyncio.wait_for(second, timeout=5)
    assert order == ["first", "second"]
    assert gate.now == pytest.approx(20.0)


async def test_a_penalty_fails_the_queued_callers_it_pushes_past_their_max_wait() -> None:
    gate = GatedTime()
    limiter = AsyncRateLimiter(1, 10.0, clock=gate.clock, sleep=gate.sleep)
    assert await limiter.acquire()
    head = asyncio.create_task(limiter.acquire(max_wait=15.0))
    await gate.next_sleep()
    patient = asyncio.create_task(limiter.acquire())
    short = asyncio.create_task(limiter.acquire(max_wait=35.0))  # served at 30 before the penalty
    long = asyncio.create_task(limiter.acquire(max_wait=100.0))
    await settle()
    limiter.penalize(60.0)
    # the head and the caller that could wait 35 s fail now, with what they would have waited
    with pytest.raises(RateLimitedError) as info:
        await asyncio.wait_for(head, timeout=5)
    assert info.value.retry_after == pytest.approx(60.0)
    with pytest.raises(RateLimitedError) as info:
        await asyncio.wait_for(short, timeout=5)
    assert info.value.retry_after == pytest.approx(70.0)  # behind the patient caller's slot at 60
    assert gate.now == 0.0
    # the others keep their places: the patient caller at 60, the long one at 70
    assert await gate.next_sleep() == pytest.approx(60.0)
    gate.open()
    assert await asyncio.wait_for(patient, timeout=5) is True
    assert await gate.next_sleep() == pytest.approx(10.0)
    gate.open()
    assert await asyncio.wait_for(long, timeout=5) is True
    assert gate.now == pytest.approx(70.0)


async def test_abort_ends_the_wait_and_takes_nothing() -> None:
    gate = GatedTime()
    limiter = AsyncRateLimiter(1, 10.0, clock=gate.clock, sleep=gate.sleep)
    loop = asyncio.get_running_loop()
    assert await limiter.acquire()
    abort_head: asyncio.Future[None] = loop.create_future()
    abort_queued: asyncio.Future[None] = loop.create_future()
    head = asyncio.create_task(limiter.acquire(abort=abort_head))
    await gate.next_sleep()
    queued = asyncio.create_task(limiter.acquire(abort=abort_queued))
    last = asyncio.create_task(limiter.acquire(max_wait=10.0))  # third in line: would be served at 30
    await settle()
    with pytest.raises(RateLimitedError):
        await last
    last = asyncio.create_task(limiter.acquire())
    await settle()
    abort_queued.set_result(None)
    assert await asyncio.wait_for(queued, timeout=5) is False
    abort_head.set_result(None)
    assert await asyncio.wait_for(head, timeout=5) is False
    # the head's sleep was dropped; the last caller sleeps now, for the slot at 10
    assert await gate.next_sleep() == 10.0
    assert gate.pending == [10.0]
    gate.open()
    assert await asyncio.wait_for(last, timeout=5) is True
    assert gate.now == 10.0  # neither aborted caller used a slot
    # an abort that already happened refuses even a free slot
    gate.now = 20.0
    done: asyncio.Future[None] = loop.create_future()
    done.set_result(None)
    assert await limiter.acquire(abort=done) is False
    assert await limiter.acquire(max_wait=0.0) is True


@settings(max_examples=150, deadline=None)
@given(
    capacity=st.integers(1, 6),
    callers=st.lists(
        st.tuples(st.integers(1, 3), st.one_of(st.none(), st.sampled_from([0.0, 0.5, 1.0, 2.5, 4.0, 10.0]))),
        min_size=1,
        max_size=25,
    ),
    busy=st.integers(0, 6),
)
def test_max_wait_is_kept_and_refusals_are_immediate(
    capacity: int, callers: list[tuple[int, float | None]], busy: int
) -> None:
    """Callers arriving together: each granted one waited at most its max_wait, each refused one
    was refused at once with a retry_after beyond its max_wait, grants stay FIFO and in quota."""

    async def run() -> None:
        fake = FakeTime(0.0)
        limiter = AsyncRateLimiter(capacity, 1.0, clock=fake.clock, sleep=fake.sleep)
        for _ in range(min(busy, capacity)):
            await limiter.acquire()
        grants: list[tuple[float, int]] = []
        granted: list[int] = []
        refused: list[tuple[float, float, float | None]] = []  # (when, max_wait, retry_after)

        async def caller(i: int, cost: int, max_wait: float | None) -> None:
            cost = min(cost, capacity)
            try:
                await limiter.acquire(cost, max_wait=max_wait)
            except RateLimitedError as exc:
                assert max_wait is not None
                refused.append((fake.now, max_wait, exc.retry_after))
                return
            assert max_wait is None or fake.now <= max_wait + 1e-9
            grants.append((fake.now, cost))
            granted.append(i)

        await asyncio.gather(*(caller(i, c, w) for i, (c, w) in enumerate(callers)))
        assert granted == sorted(granted)
        for when, max_wait, retry_after in refused:
            assert when == 0.0
            assert retry_after is not None
            assert retry_after > max_wait
        assert _max_in_any_window(grants, 1.0) <= capacity

    asyncio.run(run())
