"""The blocking façade (nautilus_dydx.sync) over real sockets against the emulator.

The emulator runs on its own event loop in a background thread, so that a test may block its own
thread (and, in the async tests, its own running loop) without starving the server.
"""

from __future__ import annotations

import asyncio
import inspect
import socket
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest

from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import (
    ConfigError,
    ConnectError,
    DydxError,
    NotFoundError,
    SubscriptionError,
    TransportTimeout,
)
from nautilus_dydx.core.retry import NoRetry
from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.schemas.rest import OrderBookResponse, PerpetualMarketsResponse, TimeResponse
from nautilus_dydx.schemas.stream import (
    Channel,
    Connected,
    MarketStreamMsg,
    OrderbookSubscribed,
    OrderbookUpdate,
)
from nautilus_dydx.sync import (
    LoopRunner,
    SyncError,
    SyncFacade,
    SyncHttpClient,
    SyncStream,
    SyncWsClient,
)
from nautilus_dydx.transport.http import HttpClient

TICKER = "BTC-USD"


class EmulatorThread:
    """An Emulator serving from its own loop in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.emu = Emulator(port=0, block_time=0.1, seed=1, rate_limit=None)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="emulator", daemon=True)

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self.emu.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            return
        self._ready.set()
        self.loop.run_forever()
        self.loop.run_until_complete(self.emu.stop())
        self.loop.close()

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(30)
        if self._error is not None:
            raise self._error
        assert self._ready.is_set(), "emulator did not start"

    def blocks(self, n: int) -> int:
        """Produce ``n`` blocks now (synthetic traders act on each); returns the height."""

        async def produce() -> int:
            height = 0
            for _ in range(n):
                height = self.emu.produce_block()
            return height

        return asyncio.run_coroutine_threadsafe(produce(), self.loop).result(30)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(30)


@pytest.fixture(scope="module")
def emulator() -> Iterator[EmulatorThread]:
    server = EmulatorThread()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def http(emulator: EmulatorThread) -> Iterator[SyncHttpClient]:
    with SyncHttpClient(emulator.emu.indexer_url, retry=NoRetry()) as client:
        yield client


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# --------------------------------------------------------------------------------------------------
# REST


def test_rest_markets_and_orderbook(emulator: EmulatorThread, http: SyncHttpClient) -> None:
    emulator.blocks(5)
    markets = http.get_perpetual_markets()
    assert isinstance(markets, PerpetualMarketsResponse)
    assert TICKER in markets.markets
    one = http.get_perpetual_markets(TICKER)
    assert list(one.markets) == [TICKER]
    book = http.get_orderbook(TICKER)
    assert isinstance(book, OrderBookResponse)
    assert book.bids
    assert book.asks
    assert book.bids[0].price < book.asks[0].price
    assert isinstance(http.get_time(), TimeResponse)


def test_rest_from_config(emulator: EmulatorThread) -> None:
    config = DydxConfig.local(port=emulator.emu._require_port())
    with SyncHttpClient(config) as client:
        assert client.base_url == emulator.emu.indexer_url
        assert client.get_height().height >= 1


def test_every_async_route_has_a_blocking_twin() -> None:
    public = {
        name
        for name, member in inspect.getmembers(HttpClient, inspect.isfunction)
        if not name.startswith("_") and (inspect.iscoroutinefunction(member) or name.startswith("iter_"))
    }
    public.discard("close")
    missing = sorted(name for name in public if not hasattr(SyncHttpClient, name))
    assert missing == []


def test_venue_error_keeps_its_type_across_the_thread(http: SyncHttpClient) -> None:
    with pytest.raises(NotFoundError) as info:
        http.get_orderbook("NOPE-USD")
    assert info.value.status == 404
    assert "NOPE-USD" in str(info.value)


def test_argument_errors_cross_the_thread(http: SyncHttpClient) -> None:
    with pytest.raises(ConfigError):
        http.get_trades(TICKER, limit=0)
    with pytest.raises(ConfigError):
        http.iter_trades(TICKER, limit=0)  # checked eagerly, on the caller's thread


@pytest.mark.parametrize(
    "walk",
    [
        lambda h: h.iter_trades_before_height(TICKER, limit=0),
        lambda h: h.iter_trades_before_height(TICKER, start_height=-1),
        lambda h: h.iter_fills_before_height("dydx1" + "q" * 38, 0, limit=0),
        lambda h: h.iter_fills_before_height("dydx1" + "q" * 38, -1),
    ],
)
def test_height_walk_argument_errors_raise_at_the_call(
    http: SyncHttpClient, walk: Callable[[SyncHttpClient], SyncStream[Any]]
) -> None:
    # At the call, on the caller's thread: no stream is handed out to fail on its first read.
    with pytest.raises(ConfigError):
        walk(http)


def test_connect_error_crosses_the_thread() -> None:
    url = f"http://127.0.0.1:{_free_port()}"
    with SyncHttpClient(url, retry=NoRetry(), timeout=2.0) as client, pytest.raises(ConnectError):
        client.get_time()


def test_paginated_iteration_matches_one_big_page(emulator: EmulatorThread, http: SyncHttpClient) -> None:
    height = emulator.blocks(120)
    reference = http.get_trades(TICKER, created_before_or_at_height=height, limit=1000).trades
    assert len(reference) > 4, "the synthetic takers should have traded"
    walked = list(http.iter_trades_before_height(TICKER, start_height=height, limit=3))
    assert [t.id for t in walked] == [t.id for t in reference]
    paged = http.iter_trades(TICKER, created_before_or_at_height=height, limit=3)
    assert sorted(t.id for t in paged) == sorted(t.id for t in reference)
    assert paged.finished


def test_paginated_stream_can_be_closed_early(emulator: EmulatorThread, http: SyncHttpClient) -> None:
    height = emulator.blocks(30)
    stream = http.iter_trades_before_height(TICKER, start_height=height, limit=2)
    first = stream.take(1)
    assert len(first) == 1
    stream.close()
    assert list(stream) == []


# --------------------------------------------------------------------------------------------------
# WebSocket


def test_ws_subscribe_and_read_messages(emulator: EmulatorThread) -> None:
    with SyncWsClient(emulator.emu.ws_url) as ws:
        sub = ws.subscribe(Channel.ORDERBOOK, TICKER)
        assert ws.subscriptions == [sub]
        messages: list[MarketStreamMsg] = []
        for msg in ws.messages(timeout=10):
            messages.append(msg)
            if len(messages) == 5:
                break
        assert isinstance(messages[0], Connected)
        assert isinstance(messages[1], OrderbookSubscribed)
        assert all(isinstance(m, OrderbookUpdate) for m in messages[2:])
        # Leaving the loop loses nothing: the next loop continues with the next message.
        more = ws.message_stream().take(2, timeout=10)
        assert all(isinstance(m, OrderbookUpdate) for m in more)
        ws.unsubscribe(Channel.ORDERBOOK, TICKER)
        assert ws.subscriptions == []
        stats, sockets = ws.stats()
        assert stats.messages >= 7
        assert sockets == 1


def test_ws_from_config_and_close_ends_iteration(emulator: EmulatorThread) -> None:
    config = DydxConfig.local(port=emulator.emu._require_port())
    ws = SyncWsClient(config)
    ws.subscribe(Channel.TRADES, TICKER)
    stream = ws.message_stream()
    assert isinstance(stream.get(timeout=10), Connected)
    ws.close()
    assert list(stream) == []
    assert ws.runner.closed
    with pytest.raises(SyncError):
        ws.subscribe(Channel.ORDERBOOK, TICKER)


def test_ws_subscription_error_keeps_its_type(emulator: EmulatorThread) -> None:
    with SyncWsClient(emulator.emu.ws_url) as ws:
        ws.subscribe(Channel.ORDERBOOK, TICKER)
        with pytest.raises(SubscriptionError):
            ws.subscribe(Channel.ORDERBOOK, TICKER)
        with pytest.raises(ConfigError):
            ws.subscribe(Channel.ORDERBOOK, None)


def test_ws_callbacks_run_on_the_loop_thread(emulator: EmulatorThread) -> None:
    with SyncWsClient(emulator.emu.ws_url) as ws:
        seen: list[tuple[int, MarketStreamMsg]] = []
        refused: list[BaseException] = []
        got_three = threading.Event()

        def on_message(msg: MarketStreamMsg) -> None:
            seen.append((threading.get_ident(), msg))
            if len(seen) == 1:
                try:
                    ws.subscriptions  # a blocking call on the loop thread would deadlock  # noqa: B018
                except SyncError as exc:
                    refused.append(exc)
            if len(seen) >= 3:
                got_three.set()

        remove = ws.add_callback(on_message)
        ws.subscribe(Channel.ORDERBOOK, TICKER)
        assert got_three.wait(10)
        remove()
        loop_thread = ws.runner.thread
        assert loop_thread is not None
        assert {ident for ident, _ in seen} == {loop_thread.ident}
        assert isinstance(seen[0][1], OrderbookSubscribed)
        assert len(refused) == 1


# --------------------------------------------------------------------------------------------------
# The runner


def test_close_stops_the_loop_thread(emulator: EmulatorThread) -> None:
    client = SyncHttpClient(emulator.emu.indexer_url)
    client.get_time()
    thread = client.runner.thread
    assert thread is not None
    assert thread.is_alive()
    assert thread.daemon
    client.close()
    assert not thread.is_alive()
    assert client.closed
    client.close()  # idempotent
    with pytest.raises(SyncError):
        client.get_time()
    with pytest.raises(SyncError):
        client.runner.run(asyncio.sleep(0))


def test_shared_runner_outlives_its_facades(emulator: EmulatorThread) -> None:
    with LoopRunner() as runner:
        first = SyncHttpClient(emulator.emu.indexer_url, runner=runner)
        second = SyncWsClient(emulator.emu.ws_url, runner=runner)
        first.get_time()
        first.close()
        assert not runner.closed
        second.connect()
        second.close()
        thread = runner.thread
        assert thread is not None
        assert thread.is_alive()
    assert not thread.is_alive()


def test_runner_starts_lazily_and_timeout_cancels() -> None:
    runner = LoopRunner()
    assert not runner.started
    cancelled = threading.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    try:
        with pytest.raises(TransportTimeout):
            runner.run(slow(), timeout=0.05)
        assert cancelled.wait(10)
        assert runner.run(asyncio.sleep(0, result=7)) == 7
    finally:
        runner.close()


def test_close_cancels_pending_calls() -> None:
    runner = LoopRunner()
    future = runner.submit(asyncio.sleep(60))
    runner.close()
    assert future.cancelled()
    with pytest.raises(SyncError):
        runner.wait(future)


def test_blocking_on_the_loop_thread_raises() -> None:
    with LoopRunner() as runner:

        async def nested() -> None:
            runner.run(asyncio.sleep(0))

        with pytest.raises(SyncError, match="deadlock"):
            runner.run(nested())


async def test_from_a_running_loop_the_facade_blocks_and_works(emulator: EmulatorThread) -> None:
    """The documented notebook behaviour: the call works, pausing the caller's loop meanwhile."""
    caller_loop = asyncio.get_running_loop()
    with SyncHttpClient(emulator.emu.indexer_url) as client:
        assert client.runner.loop is not caller_loop
        assert isinstance(client.get_time(), TimeResponse)
        # The non-blocking way from a running loop: submit and await the wrapped future.
        answer = await asyncio.wrap_future(client.submit(lambda c: c.get_height()))
        assert answer.height >= 1


def _finishes(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in a helper thread and return what it returned or raised; fail if it hangs."""
    box: list[Any] = []

    def target() -> None:
        try:
            box.append(fn())
        except BaseException as exc:
            box.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(30)
    assert not thread.is_alive(), f"{fn} hangs"
    return box[0]


def _closed_loop() -> asyncio.AbstractEventLoop:
    loop = asyncio.new_event_loop()
    loop.close()
    return loop


def test_a_loop_that_cannot_run_raises_and_close_does_not_hang() -> None:
    runner = LoopRunner(loop_factory=_closed_loop)
    outcome = _finishes(lambda: runner.run(asyncio.sleep(0, "ok")))
    assert isinstance(outcome, SyncError)
    assert isinstance(outcome.__cause__, RuntimeError)
    assert "closed" in str(outcome.__cause__)
    assert not runner.started
    assert _finishes(runner.close) is None
    assert runner.closed


class _Refusing(asyncio.SelectorEventLoop):
    """A loop whose run_forever fails at once (as uvloop or a custom loop might)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__()
        self.error = error

    def run_forever(self) -> None:
        raise self.error


def test_a_failed_start_chains_its_cause_and_the_next_call_tries_again() -> None:
    error = RuntimeError("no loop for you")
    made: list[asyncio.AbstractEventLoop] = []

    def factory() -> asyncio.AbstractEventLoop:
        loop = _Refusing(error) if not made else asyncio.new_event_loop()
        made.append(loop)
        return loop

    runner = LoopRunner(loop_factory=factory)
    try:
        outcome = _finishes(lambda: runner.run(asyncio.sleep(0, "ok")))
        assert isinstance(outcome, SyncError)
        assert outcome.__cause__ is error
        assert made[0].is_closed()  # the runner's own loop is not left open
        assert _finishes(lambda: runner.run(asyncio.sleep(0, "ok"))) == "ok"
        assert runner.started
    finally:
        runner.close()


def test_a_loop_factory_error_is_a_sync_error() -> None:
    error = RuntimeError("factory broke")

    def factory() -> asyncio.AbstractEventLoop:
        raise error

    runner = LoopRunner(loop_factory=factory)
    with pytest.raises(SyncError) as info:
        runner.run(asyncio.sleep(0))
    assert info.value.__cause__ is error
    runner.close()


def test_a_loop_running_elsewhere_is_refused_and_left_alone() -> None:
    other = asyncio.new_event_loop()
    other_thread = threading.Thread(target=other.run_forever, daemon=True)
    other_thread.start()
    try:
        busy = asyncio.run_coroutine_threadsafe(asyncio.sleep(60), other)
        runner = LoopRunner(loop_factory=lambda: other)
        outcome = _finishes(lambda: runner.run(asyncio.sleep(0)))
        assert isinstance(outcome, SyncError)
        assert "already running" in str(outcome.__cause__)
        # Not the runner's to stop, close or drain: it runs on, its task untouched.
        assert asyncio.run_coroutine_threadsafe(asyncio.sleep(0, "alive"), other).result(10) == "alive"
        assert not other.is_closed()
        assert not busy.done()
        busy.cancel()
        assert _finishes(runner.close) is None
    finally:
        other.call_soon_threadsafe(other.stop)
        other_thread.join(10)
        other.close()


async def test_from_a_running_loop_a_strict_runner_refuses(emulator: EmulatorThread) -> None:
    with LoopRunner(allow_running_loop=False) as runner:
        # Construction blocks too, so it is refused as well.
        with pytest.raises(SyncError, match="await"):
            SyncHttpClient(emulator.emu.indexer_url, runner=runner)
        client = await asyncio.to_thread(SyncHttpClient, emulator.emu.indexer_url, runner=runner)
        with pytest.raises(SyncError, match="await"):
            client.get_time()
        answer = await asyncio.wrap_future(client.submit(lambda c: c.get_time()))
        assert isinstance(answer, TimeResponse)
        await asyncio.to_thread(client.close)


class _SlowClose:
    """An async client whose close takes a few loop steps and records whether it got to its end."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    async def close(self) -> None:
        for _ in range(3):
            await asyncio.sleep(0)
        self.finished.set()


def _hold(runner: LoopRunner) -> tuple[threading.Event, threading.Event]:
    """Block the runner's loop inside one callback; returns (open the gate, the hold has ended)."""
    gate, holding, ended = threading.Event(), threading.Event(), threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(30)
        ended.set()

    runner.loop.call_soon_threadsafe(hold)
    assert holding.wait(10)
    return gate, ended


async def test_strict_runner_close_from_a_running_loop_does_not_block_and_still_closes() -> None:
    runner = LoopRunner(allow_running_loop=False)
    facade: SyncFacade[_SlowClose] = await asyncio.to_thread(SyncFacade, _SlowClose, runner=runner)
    client = facade.async_client
    thread = runner.thread
    assert thread is not None
    gate, ended = _hold(runner)
    try:
        # With the runner's loop held, a close that waited for it could only return after the hold.
        facade.close()
        assert facade.closed
        runner.close()
        assert runner.closed
        assert not ended.is_set()
    finally:
        gate.set()
    # The stop came right behind the façade's close, yet the client's close ran to its end.
    await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive()
    assert client.finished.is_set()


async def test_strict_runner_with_block_in_async_code_closes_the_http_client(
    emulator: EmulatorThread,
) -> None:
    runner = LoopRunner(allow_running_loop=False)
    try:
        with await asyncio.to_thread(SyncHttpClient, emulator.emu.indexer_url, runner=runner) as rest:
            answer = await asyncio.wrap_future(rest.submit(lambda c: c.get_time()))
            assert isinstance(answer, TimeResponse)
            http = rest.async_client
            assert not http.closed
        assert rest.closed
        with pytest.raises(SyncError):
            rest.submit(lambda c: c.get_time())

        # The close was handed to the runner's thread; a call queued behind it sees its effect.
        async def closed(client: HttpClient) -> bool:
            return client.closed

        assert await asyncio.wrap_future(runner.submit(closed(http)))
    finally:
        await asyncio.to_thread(runner.close)


# --------------------------------------------------------------------------------------------------
# SyncStream on its own


async def _counting(n: int, counter: list[int], fail: DydxError | None = None) -> AsyncIterator[int]:
    for i in range(n):
        counter[0] += 1
        yield i
    if fail is not None:
        raise fail


def test_stream_delivers_in_order_and_ends() -> None:
    with LoopRunner() as runner:
        counter = [0]
        stream: SyncStream[int] = SyncStream(runner, lambda: _counting(50, counter), maxsize=7)
        assert list(stream) == list(range(50))
        assert stream.finished
        with pytest.raises(StopIteration):
            stream.get()


def test_stream_source_error_keeps_its_type() -> None:
    with LoopRunner() as runner:
        error = NotFoundError("gone", status=404)
        stream: SyncStream[int] = SyncStream(runner, lambda: _counting(2, [0], fail=error))
        assert stream.get() == 0
        assert stream.get() == 1
        with pytest.raises(NotFoundError) as info:
            stream.get()
        assert info.value is error
        assert list(stream) == []


def test_stream_is_bounded() -> None:
    with LoopRunner() as runner:
        counter = [0]
        stream: SyncStream[int] = SyncStream(runner, lambda: _counting(1000, counter), maxsize=4)

        async def settle() -> int:
            for _ in range(10):
                await asyncio.sleep(0)
            return counter[0]

        assert stream.get() == 0
        assert runner.run(settle()) == 1 + 4
        assert stream.take(3) == [1, 2, 3]
        assert runner.run(settle()) == 4 + 4
        stream.close()


def test_stream_timeout_leaves_it_usable_and_close_wakes_a_reader() -> None:
    with LoopRunner() as runner:
        items: asyncio.Queue[int] | None = None
        made = threading.Event()

        async def source() -> AsyncIterator[int]:
            nonlocal items
            items = asyncio.Queue()
            made.set()
            while True:
                yield await items.get()

        stream: SyncStream[int] = SyncStream(runner, source, timeout=0.05)
        with pytest.raises(TransportTimeout):
            next(stream)
        assert made.wait(10)
        assert items is not None
        queue_ = items
        runner.loop.call_soon_threadsafe(queue_.put_nowait, 42)
        assert stream.get(timeout=10) == 42

        results: list[Any] = []
        reader = threading.Thread(target=lambda: results.append(list(stream.items(timeout=None))))
        reader.start()
        stream.close()
        reader.join(10)
        assert not reader.is_alive()
        assert results == [[]]


def test_stream_rejects_a_zero_bound() -> None:
    with LoopRunner() as runner, pytest.raises(ConfigError):
        SyncStream(runner, lambda: _counting(1, [0]), maxsize=0)


def test_runner_closed_under_a_waiting_reader_ends_the_stream() -> None:
    runner = LoopRunner()
    gate = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        holding.set()
        gate.wait(10)

    # Hold the loop inside one callback *before* the stream exists, so that the pump's start and the
    # stop below both queue behind it and run in the same later iteration: the pump's first step
    # would come one iteration after that, and the loop is stopped by then. (Queuing the hold
    # without waiting for it to start let the loop sometimes take the hold and the pump's start in
    # one iteration, and then the pump ran.)
    runner.loop.call_soon_threadsafe(hold)
    assert holding.wait(10)
    stream: SyncStream[int] = SyncStream(runner, lambda: _counting(3, [0]))
    results: list[Any] = []
    reader = threading.Thread(target=lambda: results.append(list(stream.items(timeout=None))))
    reader.start()
    for _ in range(1000):
        if stream._future is not None:
            break
        threading.Event().wait(0.01)
    assert stream._future is not None
    # The stop lands before the pump's first step, so the pump is cancelled without ever running.
    runner.loop.call_soon_threadsafe(runner.loop.stop)
    gate.set()
    runner.close()
    reader.join(10)
    assert not reader.is_alive()
    assert results == [[]]


def test_sync_data_client_reads_a_verified_book(emulator: EmulatorThread) -> None:
    from decimal import Decimal

    from nautilus_dydx.services.data import BookSnapshot
    from nautilus_dydx.sync import SyncDataClient

    port = int(emulator.emu.indexer_url.rsplit(":", 1)[1])
    with SyncDataClient(DydxConfig.local(port=port), call_timeout=10, audit_interval=None) as data:
        data.subscribe_book("BTC-USD")
        first = next(iter(data.events(timeout=10)))
        assert isinstance(first, BookSnapshot)
        assert data.is_synced("BTC-USD")
        bids, asks = data.top("BTC-USD", depth=5)
        if bids and asks:
            assert Decimal(bids[0][0]) < Decimal(asks[0][0])
