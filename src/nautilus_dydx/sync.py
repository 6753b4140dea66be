"""A blocking façade over the async clients, for scripts and notebooks.

The async clients stay the single implementation; this module only moves their coroutines onto an
event loop that runs in a dedicated daemon thread and blocks the *calling* thread until the answer is
back:

- :class:`LoopRunner` owns that thread and its loop (started lazily on first use, stopped by
  :meth:`LoopRunner.close` or the ``with`` block; no ``atexit`` hook, no global state).
- :class:`SyncStream` turns an async iterator living on the loop thread into a blocking iterator fed
  through a bounded, thread-safe hand-off (a slow consumer slows the producer, nothing is dropped).
- :class:`SyncFacade` is the generic base of a blocking client: it builds the async client on the loop
  thread, runs its coroutines (:meth:`SyncFacade.call`), submits them without blocking
  (:meth:`SyncFacade.submit`) and adapts its async iterators (:meth:`SyncFacade.stream`).
- :func:`blocking` and :func:`blocking_iterator` turn an async client's methods into typed blocking
  methods of a façade in one line each; :class:`SyncHttpClient`, :class:`SyncWsClient` and
  :class:`SyncDataClient` are built that way, and a façade of any other async client can be too.

What happens where the caller already runs an event loop (Jupyter runs every cell inside one): the
client does not live on that loop, so blocking the caller cannot deadlock the client; the call works
and the caller's loop simply pauses until it returns, as with any blocking library. Work scheduled on
the caller's loop (for instance an emulator started there with ``await``) pauses too. Pass
``allow_running_loop=False`` to :class:`LoopRunner` to refuse such calls with :class:`SyncError`;
``await asyncio.wrap_future(facade.submit(...))`` is the non-blocking way from a running loop, and
``close()`` there does not block either (the client closes on the loop thread, see
:meth:`SyncFacade.close`). A blocking call from the runner's own loop thread (a callback) would
deadlock and always raises :class:`SyncError`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import ssl as ssl_module
import threading
import time
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import (
    Any,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    Protocol,
    Self,
    TypeVar,
    overload,
)

from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import ConfigError, DydxError, TransportTimeout
from nautilus_dydx.core.retry import ExponentialBackoff, RetryPolicy
from nautilus_dydx.schemas.stream import MarketStreamMsg
from nautilus_dydx.services.data import DataClient, MarketDataEvent
from nautilus_dydx.transport.http import DEFAULT_USER_AGENT, HttpClient
from nautilus_dydx.transport.ratelimit import AsyncRateLimiter
from nautilus_dydx.transport.ws import WsClient, WsStats

__all__ = [
    "AsyncClosable",
    "BlockingIterator",
    "BlockingMethod",
    "LoopRunner",
    "SyncDataClient",
    "SyncError",
    "SyncFacade",
    "SyncHttpClient",
    "SyncStream",
    "SyncWsClient",
    "blocking",
    "blocking_iterator",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
P = ParamSpec("P")


class SyncError(DydxError, RuntimeError):
    """The blocking façade cannot do what was asked.

    Raised when a blocking call would deadlock (made on the runner's own loop thread, e.g. from a
    callback), when it is made from a running event loop and the runner was built with
    ``allow_running_loop=False``, when the runner is (or gets) closed, and when its event loop cannot
    start (the cause is chained).
    """


class AsyncClosable(Protocol):
    """What :class:`SyncFacade` needs of an async client: an awaitable ``close()``."""

    async def close(self) -> None:
        """Release the client's sockets and tasks."""


C = TypeVar("C", bound=AsyncClosable)
C_co = TypeVar("C_co", bound=AsyncClosable, covariant=True)


class _Unset:
    """Marks "use the default" where ``None`` already means "no timeout"."""

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Final = _Unset()
_POLL: Final = 0.25
_CLEANUP_TIMEOUT: Final = 5.0
Timeout = float | None | _Unset


# --------------------------------------------------------------------------------------------------
# The loop thread


class _Start:
    """How the start of a loop thread went, reported by that thread (``done`` is set either way)."""

    __slots__ = ("done", "error", "running")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.running = False
        self.error: BaseException | None = None


class _ClosesOnExit:
    """``with x:`` closes ``x`` on the way out; subclasses provide ``close()`` (and may do more
    on entry in :meth:`_on_enter`, which closes them again if it fails)."""

    def close(self) -> None:
        raise NotImplementedError

    def _on_enter(self) -> None:
        """What entering the ``with`` block does besides returning ``self`` (nothing by default)."""

    def __enter__(self) -> Self:
        try:
            self._on_enter()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LoopRunner(_ClosesOnExit):
    """Runs coroutines on an event loop in a dedicated daemon thread, for synchronous callers.

    The thread starts on first use and runs until :meth:`close` (or the end of a ``with`` block).
    One runner can be shared by several façades (pass it as ``runner=``); a façade that made its own
    runner closes it with itself.

    Args:
        name: the thread's name.
        allow_running_loop: when ``True`` (default) a blocking call from a thread whose event loop is
            running (a notebook cell) is served, pausing that loop until it returns; when ``False`` it
            raises :class:`SyncError` instead.
        loop_factory: builds the event loop (default :func:`asyncio.new_event_loop`; pass
            ``uvloop.new_event_loop`` for uvloop). It must return a new loop that is neither running
            nor closed; when the loop cannot run, the call that started it raises :class:`SyncError`
            with the cause chained, and the next call tries again.
    """

    def __init__(
        self,
        *,
        name: str = "nautilus-dydx-loop",
        allow_running_loop: bool = True,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        self._name = name
        self._allow_running_loop = allow_running_loop
        self._loop_factory = loop_factory or asyncio.new_event_loop
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._cleanup_lock = threading.Lock()
        self._cleanups: set[concurrent.futures.Future[Any]] = set()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "running" if self._thread is not None else "idle"
        return f"<LoopRunner {self._name!r} {state}>"

    @property
    def started(self) -> bool:
        """True once the loop thread was started (it stays true after :meth:`close`)."""
        return self._thread is not None

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def thread(self) -> threading.Thread | None:
        """The loop thread, ``None`` before first use."""
        return self._thread

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The runner's event loop, starting the thread if needed.

        Raises:
            SyncError: the runner is closed, or its loop could not start (the cause is chained).
        """
        return self._ensure_started()

    def in_loop_thread(self) -> bool:
        """True when called on the runner's own loop thread (inside a callback or a coroutine)."""
        thread = self._thread
        return thread is not None and thread.ident == threading.get_ident()

    def _ensure_started(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._closed:
                raise SyncError(f"{self._name}: the loop runner is closed")
            if self._loop is not None:
                return self._loop
            try:
                loop = self._loop_factory()
            except Exception as exc:
                raise SyncError(f"{self._name}: loop_factory failed: {exc!r}") from exc
            start = _Start()
            thread = threading.Thread(target=self._main, args=(loop, start), name=self._name, daemon=True)
            try:
                thread.start()
            except RuntimeError as exc:
                raise SyncError(f"{self._name}: cannot start the loop thread: {exc}") from exc
            # The thread reports through ``start`` in a ``finally``; the liveness check is the guard
            # against waiting forever should it end without reporting.
            while not start.done.wait(_POLL) and thread.is_alive():
                pass
            if not start.running:
                thread.join(_POLL)
                cause = start.error
                raise SyncError(f"{self._name}: the event loop did not start: {cause!r}") from cause
            self._loop, self._thread = loop, thread
            _log.debug("%s: loop thread started", self._name)
            return loop

    def _main(self, loop: asyncio.AbstractEventLoop, start: _Start) -> None:
        me = threading.get_ident()

        def started() -> None:
            # A loop_factory may hand out a loop that already runs in another thread: this callback
            # then runs there, and must not report a start that did not happen here.
            if threading.get_ident() == me:
                start.running = True
                start.done.set()

        try:
            asyncio.set_event_loop(loop)
            loop.call_soon(started)
            loop.run_forever()
        except BaseException as exc:
            if start.running:
                raise
            start.error = exc
        finally:
            try:
                if start.running:
                    self._finish_cleanups(loop)
                    _drain_tasks(loop)
                    loop.run_until_complete(loop.shutdown_asyncgens())
                    loop.run_until_complete(loop.shutdown_default_executor())
            except Exception:
                _log.exception("error while stopping the loop thread")
            finally:
                asyncio.set_event_loop(None)
                if not loop.is_running():  # never close a loop that another thread runs
                    loop.close()
                start.done.set()

    def _submit_cleanup(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        # Like submit(), but a stop of the loop lets the coroutine finish (within _CLEANUP_TIMEOUT)
        # before the remaining tasks are cancelled: a façade's close() that does not wait for the
        # client's close must still have it run.
        future = self.submit(coro)
        with self._cleanup_lock:
            self._cleanups.add(future)
        future.add_done_callback(self._cleanup_done)
        return future

    def _cleanup_done(self, future: concurrent.futures.Future[Any]) -> None:
        with self._cleanup_lock:
            self._cleanups.discard(future)

    def _finish_cleanups(self, loop: asyncio.AbstractEventLoop) -> None:
        with self._cleanup_lock:
            pending = [future for future in self._cleanups if not future.done()]
        if not pending:
            return
        waiters = [asyncio.wrap_future(future, loop=loop) for future in pending]
        loop.run_until_complete(asyncio.wait(waiters, timeout=_CLEANUP_TIMEOUT))

    def _refuses_blocking(self) -> bool:
        """True when the current thread runs an event loop and this runner must not block it."""
        if self._allow_running_loop:
            return False
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return False
        return True

    def check_caller(self) -> None:
        """Raise if the current thread must not block on this runner.

        Raises:
            SyncError: on the runner's own loop thread (it would deadlock), or from a running event
                loop when ``allow_running_loop`` is false.
        """
        if self.in_loop_thread():
            raise SyncError(
                "a blocking call on the runner's own loop thread would deadlock (are you in a callback?); "
                "schedule async work with asyncio there instead"
            )
        if self._refuses_blocking():
            raise SyncError(
                f"blocking call from a running event loop ({asyncio.get_running_loop()!r}): await the "
                "async client instead, or `await asyncio.wrap_future(facade.submit(...))`"
            )

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop thread without waiting.

        Usable from any thread, including one that runs its own loop: there, await
        ``asyncio.wrap_future(future)``. Cancelling the future cancels the coroutine.

        Raises:
            SyncError: the runner is closed or its loop could not start (``coro`` is closed unawaited).
        """
        try:
            loop = self._ensure_started()
            return asyncio.run_coroutine_threadsafe(coro, loop)
        except BaseException as exc:
            coro.close()
            if isinstance(exc, RuntimeError) and not isinstance(exc, DydxError):
                raise SyncError(f"{self._name}: the loop is not running: {exc}") from exc
            raise

    def run(self, coro: Coroutine[Any, Any, T], *, timeout: float | None = None) -> T:
        """Run ``coro`` on the loop thread and block the calling thread until it finishes.

        Args:
            coro: the coroutine.
            timeout: seconds to wait; on expiry the coroutine is cancelled. ``None`` waits as long
                as it takes (the async clients have their own network timeouts).

        Returns:
            The coroutine's result.

        Raises:
            TransportTimeout: no result within ``timeout``.
            SyncError: see :meth:`check_caller`; or the runner was closed while waiting.
            DydxError: whatever the coroutine raised, unchanged (same object, same type).
        """
        try:
            self.check_caller()
        except SyncError:
            coro.close()
            raise
        return self.wait(self.submit(coro), timeout=timeout)

    def wait(self, future: concurrent.futures.Future[T], *, timeout: float | None = None) -> T:
        """Block until ``future`` (from :meth:`submit`) is done; see :meth:`run`."""
        try:
            done, _ = concurrent.futures.wait((future,), timeout=timeout)
            if not done and future.cancel():
                raise TransportTimeout(f"no result within {timeout} s; the call was cancelled")
            return future.result()
        except concurrent.futures.CancelledError:
            raise SyncError(f"{self._name}: the call was cancelled (runner closed?)") from None
        except (KeyboardInterrupt, SystemExit):
            # Ctrl-C / kernel interrupt: do not leave the coroutine running behind the caller's back.
            future.cancel()
            raise

    def close(self, *, timeout: float | None = 10.0) -> None:
        """Cancel whatever still runs on the loop, stop it and join the thread. Idempotent.

        Called from a running event loop on a runner built with ``allow_running_loop=False``, it
        does not block that loop: it stops the runner's loop and returns without joining; the thread
        lets the façades' pending closes finish, cancels the rest and ends by itself.

        Args:
            timeout: seconds to wait for the thread to end.

        Raises:
            SyncError: called from the loop thread itself.
        """
        if self.in_loop_thread():
            raise SyncError("LoopRunner.close() cannot be called from its own loop thread")
        with self._lock:
            if self._closed:
                return
            self._closed = True
            loop, thread = self._loop, self._thread
        if loop is None or thread is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already stopped and closed
            loop.call_soon_threadsafe(loop.stop)
        if self._refuses_blocking():
            _log.debug("%s: loop stopping; not joined from a running event loop", self._name)
            return
        thread.join(timeout)
        if thread.is_alive():
            _log.warning("%s: loop thread still running %s s after close()", self._name, timeout)
        else:
            _log.debug("%s: loop thread stopped", self._name)


def _drain_tasks(loop: asyncio.AbstractEventLoop) -> None:
    # Cancelling a task can schedule more (a client's close path); a few rounds settle it.
    for _ in range(5):
        tasks = asyncio.all_tasks(loop)
        if not tasks:
            return
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))


# --------------------------------------------------------------------------------------------------
# Streams


class _End:
    """Queued once when the source ends (or the stream is closed)."""


_END: Final = _End()


@dataclass(frozen=True, slots=True)
class _Failure:
    error: BaseException


class SyncStream(_ClosesOnExit, Iterator[T]):
    """A blocking iterator over an async iterator that runs on a :class:`LoopRunner`'s loop.

    A pump task on the loop thread pulls items from the source and hands them over through a
    thread-safe queue. The hand-off is bounded by ``maxsize``: the pump fetches the next item only
    while fewer than ``maxsize`` items wait for the consumer, so a slow consumer slows the source
    (for a paginated route, no page is fetched early; for a socket, reading pauses) and nothing is
    ever dropped. The pump starts on the first read.

    An exception raised by the source crosses the thread boundary unchanged and is raised once by
    the read that reaches it; the stream then ends. Iterating with ``for`` uses the default
    ``timeout``; :meth:`items` takes one per loop. ``break`` out of a loop keeps the stream: a later
    loop continues where the first stopped. Use one consumer thread at a time.

    Args:
        runner: the runner whose loop runs the source.
        source: called once, on the loop thread, to get the async iterable.
        maxsize: the most items fetched ahead of the consumer (>= 1).
        timeout: default seconds to wait for the next item (``None`` waits forever); on expiry a read
            raises :class:`~nautilus_dydx.core.errors.TransportTimeout` and the stream stays usable.
        name: for logs and ``repr``.

    Raises:
        ConfigError: ``maxsize`` < 1.
    """

    def __init__(
        self,
        runner: LoopRunner,
        source: Callable[[], AsyncIterable[T]],
        *,
        maxsize: int = 1000,
        timeout: float | None = None,
        name: str = "stream",
    ) -> None:
        if maxsize < 1:
            raise ConfigError(f"SyncStream: maxsize must be >= 1, got {maxsize}")
        self._runner = runner
        self._source = source
        self._maxsize = maxsize
        self._timeout = timeout
        self._name = name
        self._items: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._future: concurrent.futures.Future[None] | None = None
        self._credits: asyncio.Semaphore | None = None
        self._finished = False
        self._closed = False
        self._stopped = threading.Event()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "finished" if self._finished else "open"
        return f"<SyncStream {self._name!r} {state}>"

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    @property
    def finished(self) -> bool:
        """True once the consumer saw the end of the source (or its error)."""
        return self._finished

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        item = self._next(self._timeout)
        if isinstance(item, _End):
            raise StopIteration
        return item

    def get(self, timeout: Timeout = _DEFAULT) -> T:
        """The next item, waiting at most ``timeout`` seconds (default: the stream's).

        Raises:
            StopIteration: the stream ended or was closed.
            TransportTimeout: nothing arrived in time (the stream stays usable).
            SyncError: called on the loop thread (or from a running loop when the runner refuses).
            DydxError: the source failed.
        """
        item = self._next(self._timeout if isinstance(timeout, _Unset) else timeout)
        if isinstance(item, _End):
            raise StopIteration
        return item

    def items(self, timeout: Timeout = _DEFAULT) -> Iterator[T]:
        """Iterate with a per-item ``timeout`` (default: the stream's); ends when the stream ends."""
        wait = self._timeout if isinstance(timeout, _Unset) else timeout
        while True:
            item = self._next(wait)
            if isinstance(item, _End):
                return
            yield item

    def take(self, n: int, timeout: Timeout = _DEFAULT) -> list[T]:
        """Up to ``n`` items (fewer only when the stream ends first), each within ``timeout``."""
        out: list[T] = []
        for item in self.items(timeout):
            out.append(item)
            if len(out) >= n:
                break
        return out

    def _start(self) -> None:
        with self._lock:
            if self._future is None and not self._closed:
                self._future = self._runner.submit(self._pump())

    def _next(self, timeout: float | None) -> T | _End:
        if self._closed or self._finished:
            return _END
        self._runner.check_caller()
        self._start()
        item = self._wait_item(timeout)
        if self._stopped.is_set():  # closed by another thread while we waited
            return _END
        if isinstance(item, _End):
            self._finished = True
            return _END
        if isinstance(item, _Failure):
            self._finished = True
            raise item.error
        self._release()
        return item  # type: ignore[return-value]

    def _wait_item(self, timeout: float | None) -> object:
        # Waits in slices: a pump cancelled before its first step (the runner closed under us) never
        # queues its end marker, and a reader must not wait for it forever.
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = _POLL if deadline is None else min(_POLL, max(deadline - time.monotonic(), 0.0))
            try:
                return self._items.get(timeout=wait)
            except queue.Empty:
                pass
            future = self._future
            if future is not None and future.done():
                try:
                    return self._items.get_nowait()
                except queue.Empty:
                    return _END
            if deadline is not None and time.monotonic() >= deadline:
                raise TransportTimeout(f"{self._name}: nothing within {timeout} s")

    def _release(self) -> None:
        credits = self._credits
        if credits is None:
            return
        with contextlib.suppress(RuntimeError, SyncError):  # the loop is gone: nothing left to pace
            self._runner.loop.call_soon_threadsafe(credits.release)

    async def _pump(self) -> None:
        credits = asyncio.Semaphore(self._maxsize)
        self._credits = credits
        iterator: AsyncIterator[T] | None = None
        try:
            iterator = aiter(self._source())
            while True:
                await credits.acquire()
                try:
                    item = await anext(iterator)
                except StopAsyncIteration:
                    break
                self._items.put(item)
        except asyncio.CancelledError:
            self._items.put(_END)
            raise
        except Exception as exc:
            _log.debug("%s: source failed: %r", self._name, exc)
            self._items.put(_Failure(exc))
        else:
            self._items.put(_END)
        finally:
            aclose = getattr(iterator, "aclose", None)
            if aclose is not None:
                with contextlib.suppress(Exception):
                    await aclose()

    def close(self) -> None:
        """Stop the pump (closing the source) and end iteration. Idempotent; any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._stopped.set()
            future = self._future
        if future is not None:
            future.cancel()
        self._items.put(_END)  # wakes a consumer blocked in another thread


# --------------------------------------------------------------------------------------------------
# Façades


async def _construct(factory: Callable[[], T]) -> T:
    # Built on the loop thread so that anything the client binds to "the current loop" is the right one.
    return factory()


async def _apply(fn: Callable[[C], Awaitable[T]], client: C) -> T:
    return await fn(client)


class _FacadeLike(Protocol[C_co]):
    @property
    def runner(self) -> LoopRunner: ...

    @property
    def async_client(self) -> C_co: ...

    @property
    def call_timeout(self) -> float | None: ...

    @property
    def stream_maxsize(self) -> int: ...


class SyncFacade(_ClosesOnExit, Generic[C]):
    """The base of a blocking client wrapping an async client ``C``.

    The async client is built by ``factory`` on the loop thread and lives there; every call runs on
    that loop and blocks only the calling thread.

    Args:
        factory: builds the async client (called once, on the loop thread).
        runner: the loop to use; when ``None`` the façade makes its own and closes it with itself.
        call_timeout: seconds a blocking call may take before it is cancelled and
            :class:`~nautilus_dydx.core.errors.TransportTimeout` is raised (``None``: rely on the
            client's own timeouts).
        stream_maxsize: the bound of the streams the façade creates.

    Raises:
        SyncError: see :meth:`LoopRunner.check_caller`.
        DydxError: the factory failed.
    """

    def __init__(
        self,
        factory: Callable[[], C],
        *,
        runner: LoopRunner | None = None,
        call_timeout: float | None = None,
        stream_maxsize: int = 1000,
    ) -> None:
        self._owns_runner = runner is None
        self._runner = runner if runner is not None else LoopRunner()
        self._call_timeout = call_timeout
        self._stream_maxsize = stream_maxsize
        self._streams: list[SyncStream[Any]] = []
        self._closed = False
        try:
            self._client: C = self._runner.run(_construct(factory), timeout=call_timeout)
        except BaseException:
            if self._owns_runner:
                self._runner.close()
            raise

    @property
    def runner(self) -> LoopRunner:
        """The loop runner the async client lives on."""
        return self._runner

    @property
    def async_client(self) -> C:
        """The wrapped async client. Use it only from coroutines running on :attr:`runner`."""
        return self._client

    @property
    def call_timeout(self) -> float | None:
        """The timeout of blocking calls (``None``: none beyond the client's own)."""
        return self._call_timeout

    @property
    def stream_maxsize(self) -> int:
        """The bound of the streams this façade creates."""
        return self._stream_maxsize

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._closed

    def call(self, fn: Callable[[C], Awaitable[T]], *, timeout: Timeout = _DEFAULT) -> T:
        """Run ``fn(async_client)`` on the loop and block until it is done.

        Example: ``sync.call(lambda c: c.get_orderbook("ETH-USD"), timeout=5)``.

        Raises:
            TransportTimeout: ``timeout`` (default :attr:`call_timeout`) expired.
            SyncError: see :meth:`LoopRunner.check_caller`, or the façade is closed.
            DydxError: what the client raised.
        """
        self._check_open()
        wait = self._call_timeout if isinstance(timeout, _Unset) else timeout
        return self._runner.run(_apply(fn, self._client), timeout=wait)

    def submit(self, fn: Callable[[C], Awaitable[T]]) -> concurrent.futures.Future[T]:
        """Schedule ``fn(async_client)`` on the loop without blocking.

        From a running event loop (a notebook), ``await asyncio.wrap_future(sync.submit(fn))``.
        """
        self._check_open()
        return self._runner.submit(_apply(fn, self._client))

    def stream(
        self,
        source: Callable[[C], AsyncIterable[T]],
        *,
        maxsize: int | None = None,
        timeout: float | None = None,
        name: str = "stream",
    ) -> SyncStream[T]:
        """A blocking :class:`SyncStream` over ``source(async_client)``; closed with the façade."""
        self._check_open()
        client = self._client
        stream: SyncStream[T] = SyncStream(
            self._runner,
            lambda: source(client),
            maxsize=self._stream_maxsize if maxsize is None else maxsize,
            timeout=timeout,
            name=name,
        )
        self._streams = [s for s in self._streams if not (s.closed or s.finished)]
        self._streams.append(stream)
        return stream

    def _check_open(self) -> None:
        if self._closed:
            raise SyncError(f"{type(self).__name__} is closed")

    def close(self) -> None:
        """Close the streams, the async client, and the runner if the façade made it. Idempotent.

        Normally this blocks until the client's sockets are closed. From a running event loop on a
        runner built with ``allow_running_loop=False`` it never blocks that loop: it schedules the
        client's close on the runner's thread (and stops a runner the façade made once that close
        is done) and returns at once. To wait for the sockets to be closed there, run it in a worker
        thread: ``await asyncio.to_thread(facade.close)``.

        Raises:
            SyncError: called on the loop thread.
        """
        if self._closed:
            return
        runner = self._runner
        if runner.in_loop_thread():
            runner.check_caller()  # raises: blocking here would deadlock
        in_background = runner._refuses_blocking()
        self._closed = True
        for stream in self._streams:
            stream.close()
        self._streams.clear()
        if in_background:
            self._close_in_background()
            return
        try:
            if not runner.closed:
                runner.run(self._client.close(), timeout=self._call_timeout)
        except DydxError as exc:
            _log.warning("%s: closing the async client failed: %s", type(self).__name__, exc)
        finally:
            if self._owns_runner:
                runner.close()

    def _close_in_background(self) -> None:
        runner = self._runner
        name = type(self).__name__
        if not runner.closed:
            try:
                closing = runner._submit_cleanup(self._client.close())
            except SyncError as exc:  # the runner closed meanwhile: its stop cancelled the client
                _log.warning("%s: closing the async client failed: %s", name, exc)
            else:
                closing.add_done_callback(lambda future: _log_close_failure(name, future))
        if self._owns_runner:
            runner.close()  # from here it stops the loop without joining


def _log_close_failure(name: str, future: concurrent.futures.Future[None]) -> None:
    if future.cancelled():
        _log.warning("%s: closing the async client was cancelled", name)
    elif (exc := future.exception()) is not None:
        _log.warning("%s: closing the async client failed: %r", name, exc)


class BlockingMethod(Generic[C, P, T]):
    """A descriptor turning an async method of ``C`` into a typed blocking method of a façade.

    Built by :func:`blocking`; the arguments and the result keep the async method's types.
    """

    def __init__(self, method: Callable[Concatenate[C, P], Coroutine[Any, Any, T]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self.__name__ = getattr(method, "__name__", "method")

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.__name__ = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(self, obj: _FacadeLike[C], objtype: type[Any] | None = None) -> Callable[P, T]: ...

    def __get__(self, obj: _FacadeLike[C] | None, objtype: type[Any] | None = None) -> Self | Callable[P, T]:
        if obj is None:
            return self
        method = self._method
        facade = obj

        def call(*args: P.args, **kwargs: P.kwargs) -> T:
            if getattr(facade, "closed", False):
                raise SyncError(f"{type(facade).__name__} is closed")
            return facade.runner.run(
                method(facade.async_client, *args, **kwargs), timeout=facade.call_timeout
            )

        call.__name__ = self.__name__
        call.__doc__ = self.__doc__
        return call


class BlockingIterator(Generic[C, P, T]):
    """A descriptor turning a method of ``C`` that returns an async iterator into one returning a
    :class:`SyncStream`. Built by :func:`blocking_iterator`.

    The method is called on the calling thread, so argument errors raise at once; the iteration
    itself runs on the loop thread.
    """

    def __init__(self, method: Callable[Concatenate[C, P], AsyncIterable[T]]) -> None:
        self._method = method
        self.__doc__ = method.__doc__
        self.__name__ = getattr(method, "__name__", "iterator")

    def __set_name__(self, owner: type[Any], name: str) -> None:
        self.__name__ = name

    @overload
    def __get__(self, obj: None, objtype: type[Any] | None = None) -> Self: ...

    @overload
    def __get__(
        self, obj: _FacadeLike[C], objtype: type[Any] | None = None
    ) -> Callable[P, SyncStream[T]]: ...

    def __get__(
        self, obj: _FacadeLike[C] | None, objtype: type[Any] | None = None
    ) -> Self | Callable[P, SyncStream[T]]:
        if obj is None:
            return self
        method = self._method
        facade = obj
        name = self.__name__

        def call(*args: P.args, **kwargs: P.kwargs) -> SyncStream[T]:
            if getattr(facade, "closed", False):
                raise SyncError(f"{type(facade).__name__} is closed")
            # Called here so that argument errors raise at once; nothing runs until the first read.
            iterable = method(facade.async_client, *args, **kwargs)
            if isinstance(facade, SyncFacade):
                return facade.stream(lambda _client: iterable, name=name)
            return SyncStream(facade.runner, lambda: iterable, maxsize=facade.stream_maxsize, name=name)

        call.__name__ = self.__name__
        call.__doc__ = self.__doc__
        return call


def blocking(method: Callable[Concatenate[C, P], Coroutine[Any, Any, T]]) -> BlockingMethod[C, P, T]:
    """Declare a blocking façade method from an async client method.

    Example::

        class SyncDataClient(SyncFacade[DataClient]):
            resync = blocking(DataClient.resync)
    """
    return BlockingMethod(method)


def blocking_iterator(method: Callable[Concatenate[C, P], AsyncIterable[T]]) -> BlockingIterator[C, P, T]:
    """Declare a façade method returning a :class:`SyncStream` from an async-iterator method."""
    return BlockingIterator(method)


# --------------------------------------------------------------------------------------------------
# REST


class SyncHttpClient(SyncFacade[HttpClient]):
    """Blocking :class:`~nautilus_dydx.transport.http.HttpClient`: the same routes, same arguments,
    same results, same errors; the ``iter_*`` routes return :class:`SyncStream` s.

    Args:
        target: the indexer host without ``/v4``, or a :class:`~nautilus_dydx.core.config.DydxConfig`
            (its URL, request timeout, retry policy, rate limit and TLS settings are used).
        timeout: seconds per request attempt (default: the config's ``request_timeout``, else 10).
        retry: the retry policy (default: the config's, else the client's default).
        rate_limiter: the limiter to wait on (default: the config's ``rest_rate_limit``, else
            100 / 10 s). A limiter is bound to the loop it first waits on: share one only between
            clients on the same runner.
        ssl: TLS verification (default: the config's ``ssl_context`` or ``verify_tls``, else on).
        user_agent: the ``User-Agent`` header.
        runner: the loop to run on (default: a private one, closed with the client).
        call_timeout: an overall deadline per blocking call, across retries (``None``: none).

    Example::

        with SyncHttpClient(DydxConfig.testnet()) as client:
            book = client.get_orderbook("BTC-USD")
            for trade in client.iter_trades_before_height("BTC-USD"):
                ...
    """

    def __init__(
        self,
        target: str | DydxConfig,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: AsyncRateLimiter | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
        runner: LoopRunner | None = None,
        call_timeout: float | None = None,
    ) -> None:
        def build() -> HttpClient:
            if isinstance(target, DydxConfig):
                return HttpClient.from_config(
                    target,
                    timeout=timeout,
                    retry=retry,
                    rate_limiter=rate_limiter,
                    ssl=ssl,
                    user_agent=user_agent,
                )
            return HttpClient(
                target,
                timeout=10.0 if timeout is None else timeout,
                retry=retry,
                rate_limiter=rate_limiter,
                ssl=True if ssl is None else ssl,
                user_agent=user_agent,
            )

        super().__init__(build, runner=runner, call_timeout=call_timeout)

    @property
    def base_url(self) -> str:
        """The indexer host, without ``/v4``."""
        return self._client.base_url

    # market data
    get_time = blocking(HttpClient.get_time)
    get_height = blocking(HttpClient.get_height)
    get_perpetual_markets = blocking(HttpClient.get_perpetual_markets)
    get_orderbook = blocking(HttpClient.get_orderbook)
    get_trades = blocking(HttpClient.get_trades)
    get_candles = blocking(HttpClient.get_candles)
    get_historical_funding = blocking(HttpClient.get_historical_funding)
    get_sparklines = blocking(HttpClient.get_sparklines)
    # accounts
    get_address = blocking(HttpClient.get_address)
    get_subaccount = blocking(HttpClient.get_subaccount)
    get_parent_subaccount = blocking(HttpClient.get_parent_subaccount)
    get_perpetual_positions = blocking(HttpClient.get_perpetual_positions)
    get_parent_perpetual_positions = blocking(HttpClient.get_parent_perpetual_positions)
    get_asset_positions = blocking(HttpClient.get_asset_positions)
    get_parent_asset_positions = blocking(HttpClient.get_parent_asset_positions)
    get_orders = blocking(HttpClient.get_orders)
    get_parent_orders = blocking(HttpClient.get_parent_orders)
    get_order = blocking(HttpClient.get_order)
    get_fills = blocking(HttpClient.get_fills)
    get_parent_fills = blocking(HttpClient.get_parent_fills)
    get_transfers = blocking(HttpClient.get_transfers)
    get_parent_transfers = blocking(HttpClient.get_parent_transfers)
    get_historical_pnl = blocking(HttpClient.get_historical_pnl)
    get_parent_historical_pnl = blocking(HttpClient.get_parent_historical_pnl)
    # compliance
    screen = blocking(HttpClient.screen)
    get_compliance_screen = blocking(HttpClient.get_compliance_screen)
    # paginated walks
    iter_fills = blocking_iterator(HttpClient.iter_fills)
    iter_trades = blocking_iterator(HttpClient.iter_trades)
    iter_transfers = blocking_iterator(HttpClient.iter_transfers)
    iter_historical_pnl = blocking_iterator(HttpClient.iter_historical_pnl)
    iter_trades_before_height = blocking_iterator(HttpClient.iter_trades_before_height)
    iter_fills_before_height = blocking_iterator(HttpClient.iter_fills_before_height)


# --------------------------------------------------------------------------------------------------
# WebSocket


async def _ws_subscriptions(ws: WsClient) -> list[Any]:
    return ws.subscriptions


async def _ws_add_callback(ws: WsClient, callback: Callable[[MarketStreamMsg], None]) -> Callable[[], None]:
    return ws.add_callback(callback)


async def _ws_stats(ws: WsClient) -> tuple[WsStats, int]:
    stats = ws.stats
    copy = WsStats(
        messages=stats.messages,
        bytes=stats.bytes,
        reconnects=stats.reconnects,
        resubscribes=stats.resubscribes,
        pings=stats.pings,
        watchdog_trips=stats.watchdog_trips,
        callback_errors=stats.callback_errors,
    )
    return copy, ws.connection_count


class SyncWsClient(SyncFacade[WsClient]):
    """Blocking :class:`~nautilus_dydx.transport.ws.WsClient`.

    ``subscribe``/``unsubscribe``/``connect`` block until done. Messages arrive in order through
    :meth:`messages` (a blocking iterator; one consumer thread) and/or through callbacks, which run
    **on the loop thread**: they must be quick, must not block, and must not call this client's
    blocking methods (that raises :class:`SyncError`). The reconnect logic of ``WsClient`` keeps
    running in the background between reads.

    Args:
        target: the socket URL (``wss://.../v4/ws``) or a
            :class:`~nautilus_dydx.core.config.DydxConfig` (URL, heartbeat and connect timeouts, TLS).
        batched: default of ``subscribe(..., batched=None)``.
        reconnect: back-off between reconnect attempts.
        watchdog_timeout: seconds of silence before a socket is dropped and reconnected.
        connect_timeout: seconds to open a socket.
        ssl: TLS verification.
        max_connections: the most sockets to spread subscriptions over.
        runner: the loop to run on (default: a private one, closed with the client).
        call_timeout: deadline per blocking call (``None``: none beyond the client's timeouts).
        buffer: the most messages held for :meth:`messages` before the socket is paused.

    Example::

        with SyncWsClient(config) as ws:
            ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
            for msg in ws.messages(timeout=30):
                ...
    """

    def __init__(
        self,
        target: str | DydxConfig,
        *,
        batched: bool = False,
        reconnect: ExponentialBackoff | None = None,
        watchdog_timeout: float | None = None,
        connect_timeout: float | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        max_connections: int = 8,
        runner: LoopRunner | None = None,
        call_timeout: float | None = None,
        buffer: int = 10_000,
    ) -> None:
        def build() -> WsClient:
            if isinstance(target, DydxConfig):
                return WsClient.from_config(
                    target,
                    reconnect=reconnect,
                    watchdog_timeout=watchdog_timeout,
                    connect_timeout=connect_timeout,
                    batched=batched,
                    ssl=ssl,
                    max_connections=max_connections,
                )
            return WsClient(
                target,
                reconnect=reconnect,
                watchdog_timeout=45.0 if watchdog_timeout is None else watchdog_timeout,
                connect_timeout=10.0 if connect_timeout is None else connect_timeout,
                batched=batched,
                ssl=True if ssl is None else ssl,
                max_connections=max_connections,
            )

        super().__init__(build, runner=runner, call_timeout=call_timeout, stream_maxsize=buffer)
        self._messages: SyncStream[MarketStreamMsg] | None = None
        self._messages_lock = threading.Lock()

    def _on_enter(self) -> None:
        self.connect()

    @property
    def url(self) -> str:
        """The socket URL."""
        return self._client.url

    connect = blocking(WsClient.connect)
    subscribe = blocking(WsClient.subscribe)
    unsubscribe = blocking(WsClient.unsubscribe)

    @property
    def subscriptions(self) -> list[Any]:
        """Every subscription the client keeps (read on the loop thread)."""
        return self.call(_ws_subscriptions)

    def stats(self) -> tuple[WsStats, int]:
        """A copy of the client's counters and the number of open sockets (read on the loop thread)."""
        return self.call(_ws_stats)

    def message_stream(self) -> SyncStream[MarketStreamMsg]:
        """The one :class:`SyncStream` of this client's messages (created, not started, on first use).

        Until the first read, ``WsClient`` keeps messages for it unless callbacks are registered:
        with callbacks and no reader, messages go only to the callbacks.
        """
        with self._messages_lock:
            if self._messages is None:
                self._messages = self.stream(_ws_iter, name=f"ws {self._client.url}")
            return self._messages

    def messages(self, timeout: Timeout = _DEFAULT) -> Iterator[MarketStreamMsg]:
        """Messages in order, blocking; ends when the client closes.

        Args:
            timeout: seconds to wait for each message (default: none); on expiry
                :class:`~nautilus_dydx.core.errors.TransportTimeout` is raised and a later call
                continues with the next message.
        """
        return self.message_stream().items(timeout)

    def add_callback(self, callback: Callable[[MarketStreamMsg], None]) -> Callable[[], None]:
        """Call ``callback(msg)`` for every message, on the loop thread; returns a remover.

        The remover may be called from any thread.
        """
        remove = self.call(lambda ws: _ws_add_callback(ws, callback))
        runner = self._runner

        def remover() -> None:
            if runner.in_loop_thread():
                remove()
                return
            with contextlib.suppress(RuntimeError, SyncError):
                runner.loop.call_soon_threadsafe(remove)

        return remover


def _ws_iter(ws: WsClient) -> AsyncIterator[MarketStreamMsg]:
    return aiter(ws)


class SyncDataClient(SyncFacade[DataClient]):
    """A blocking :class:`~nautilus_dydx.services.data.DataClient` for scripts and notebooks.

    The client and its books live on the runner's loop thread; read a book through :meth:`top`
    (which copies it on that thread), never by touching the ``OrderBook`` from another thread.

    Example::

        with SyncDataClient(DydxConfig.local()) as data:
            data.subscribe_book("BTC-USD")
            for event in data.events(timeout=30):
                ...
    """

    def __init__(
        self,
        config: DydxConfig,
        *,
        runner: LoopRunner | None = None,
        call_timeout: float | None = None,
        buffer: int = 10_000,
        audit_interval: float | None = 30.0,
    ) -> None:
        def build() -> DataClient:
            return DataClient.from_config(config, audit_interval=audit_interval)

        super().__init__(build, runner=runner, call_timeout=call_timeout, stream_maxsize=buffer)
        self._events: SyncStream[MarketDataEvent] | None = None
        self._events_lock = threading.Lock()

    def _on_enter(self) -> None:
        self.start()

    start = blocking(DataClient.start)
    subscribe_trades = blocking(DataClient.subscribe_trades)
    subscribe_markets = blocking(DataClient.subscribe_markets)
    subscribe_candles = blocking(DataClient.subscribe_candles)
    subscribe_block_height = blocking(DataClient.subscribe_block_height)
    resync = blocking(DataClient.resync)
    audit = blocking(DataClient.audit)

    def subscribe_book(self, ticker: str) -> None:
        """Maintain the book of ``ticker`` (read it with :meth:`top`)."""
        self.call(lambda data: data.subscribe_book(ticker))

    def top(self, ticker: str, depth: int = 10) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
        """The best ``depth`` levels of each side as exact decimal strings, best first."""

        async def read(data: DataClient) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
            book = data.book(ticker)
            bids, asks = book.top(depth)
            fp, fs = book.format_price, book.format_size
            return [(fp(p), fs(q)) for p, q in bids], [(fp(p), fs(q)) for p, q in asks]

        return self.call(read)

    def is_synced(self, ticker: str) -> bool:
        """Whether the book of ``ticker`` is built and trusted."""

        async def read(data: DataClient) -> bool:
            return data.is_synced(ticker)

        return self.call(read)

    def events(self, timeout: Timeout = _DEFAULT) -> Iterator[MarketDataEvent]:
        """Every market-data event in order, blocking; ends when the client closes."""
        with self._events_lock:
            if self._events is None:
                self._events = self.stream(_data_iter, name="data events")
            stream = self._events
        return stream.items(timeout)


def _data_iter(data: DataClient) -> AsyncIterator[MarketDataEvent]:
    return aiter(data)
