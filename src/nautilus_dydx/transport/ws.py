"""``WsClient``: the dYdX v4 Indexer WebSocket on aiohttp.

A thin asyncio shell around the sans-I/O :class:`~nautilus_dydx.core.stream.StreamProtocol`:

- one or more sockets (subscriptions are spread so that no socket passes a channel's per-connection
  limit: 32 for market channels, 256 for subaccounts, 1 for block height);
- protocol pings answered by hand (``autoping=False``) so that a ping counts as a sign of life, and a
  watchdog that drops a socket on which nothing at all arrived for ``watchdog_timeout`` seconds;
- reconnect forever with the shared :class:`~nautilus_dydx.core.retry.ExponentialBackoff` (full
  jitter), then replay every subscription of that socket while keeping to the server's rule of at most
  two subscribe attempts per channel and id per second (a third closes the socket with 1008);
- a subscription the indexer failed with ``Internal error, could not fetch data`` is subscribed again;
- messages are delivered in order through ``async for msg in client`` and through callbacks, with
  :class:`Reconnecting` / :class:`Reconnected` / :class:`Heartbeat` connection events in the stream.

Every aiohttp and OS exception is mapped to a :class:`~nautilus_dydx.core.errors.DydxError` in
:func:`_map_exceptions`, the one seam of this module.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl as ssl_module
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field

import aiohttp

from nautilus_dydx.core.errors import (
    ConfigError,
    ConnectError,
    DydxError,
    SubscriptionError,
    TransportTimeout,
    WebSocketError,
)
from nautilus_dydx.core.retry import ExponentialBackoff
from nautilus_dydx.core.stream import StreamProtocol, Subscription
from nautilus_dydx.schemas.stream import (
    Channel,
    Connected,
    Heartbeat,
    MarketStreamMsg,
    Reconnected,
    Reconnecting,
    StreamError,
    Unsubscribed,
)

__all__ = ["WsClient", "WsStats"]

_log = logging.getLogger(__name__)

MessageCallback = Callable[[MarketStreamMsg], None]
SessionFactory = Callable[[], aiohttp.ClientSession]

# The server closes a connection on the third subscribe attempt for one channel+id within one second.
_SUBSCRIBE_ATTEMPTS_PER_SECOND = 2
_CLOSE_SENTINEL = object()


@dataclass(slots=True)
class WsStats:
    """Counters of one :class:`WsClient` (all connections together)."""

    messages: int = 0
    bytes: int = 0
    reconnects: int = 0
    resubscribes: int = 0
    pings: int = 0
    watchdog_trips: int = 0
    callback_errors: int = 0


@contextlib.contextmanager
def _map_exceptions(what: str) -> Iterator[None]:
    """Turn library exceptions into ours; the one place this module does it."""
    try:
        yield
    except DydxError:
        raise
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise TransportTimeout(f"{what}: timed out") from exc
    except aiohttp.WSServerHandshakeError as exc:
        raise WebSocketError(f"{what}: handshake refused with HTTP {exc.status}") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError, OSError) as exc:
        raise ConnectError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise WebSocketError(f"{what}: {type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class _Wanted:
    """A subscription the caller asked for; it survives reconnects until unsubscribed."""

    subscription: Subscription
    batched: bool


@dataclass(eq=False, slots=True)
class _Connection:
    index: int
    wanted: dict[Subscription, _Wanted] = field(default_factory=dict)
    ws: aiohttp.ClientWebSocketResponse | None = None
    protocol: StreamProtocol | None = None
    task: asyncio.Task[None] | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    attempts: dict[Subscription, collections.deque[float]] = field(default_factory=dict)
    last_rx: float = 0.0
    connection_id: str = ""

    def count(self, channel: Channel) -> int:
        return sum(1 for sub in self.wanted if sub.channel is channel)


class WsClient:
    """The Indexer WebSocket client.

    Args:
        url: the socket URL, e.g. ``wss://indexer.dydx.trade/v4/ws``.
        reconnect: back-off between reconnect attempts (never gives up while the client is open).
        watchdog_timeout: seconds without any frame (data or ping) after which a socket is dropped and
            reconnected. The indexer pings every 30 s, so keep this above that.
        connect_timeout: seconds to open a socket.
        batched: default for ``subscribe(..., batched=None)``.
        ssl: ``True`` (verify with the system store), ``False`` (no verification; not advised), or an
            ``ssl.SSLContext``.
        session_factory: builds the aiohttp session (the test seam); the client closes what it built.
        max_connections: the most sockets the client opens to spread subscriptions.
        queue_size: messages buffered for ``async for`` before the reader waits for the consumer (no
            message is ever dropped; a slow consumer slows the socket instead).
        channel_limits: per-connection subscription limits, for deployments configured differently
            from the public indexer (defaults: :attr:`Channel.limit`).

    Example::

        async with WsClient(config.indexer_ws_url) as ws:
            await ws.subscribe(Channel.ORDERBOOK, "BTC-USD", batched=True)
            async for msg in ws:
                ...
    """

    def __init__(
        self,
        url: str,
        *,
        reconnect: ExponentialBackoff | None = None,
        watchdog_timeout: float = 45.0,
        connect_timeout: float = 10.0,
        batched: bool = False,
        ssl: ssl_module.SSLContext | bool = True,
        session_factory: SessionFactory | None = None,
        max_connections: int = 8,
        queue_size: int = 100_000,
        channel_limits: Mapping[Channel, int] | None = None,
    ) -> None:
        if not url.startswith(("ws://", "wss://")):
            raise ConfigError(f"WsClient: url must start with ws:// or wss://; got {url!r}")
        if watchdog_timeout <= 0 or connect_timeout <= 0:
            raise ConfigError("WsClient: watchdog_timeout and connect_timeout must be > 0")
        if max_connections < 1:
            raise ConfigError("WsClient: max_connections must be >= 1")
        self._url = url
        self._reconnect = reconnect or ExponentialBackoff(
            initial=0.25, factor=2.0, cap=10.0, max_attempts=None, budget=None
        )
        self._watchdog_timeout = watchdog_timeout
        self._connect_timeout = connect_timeout
        self._batched = batched
        self._ssl = ssl
        self._session_factory = session_factory
        self._session: aiohttp.ClientSession | None = None
        self._max_connections = max_connections
        self._limits = {channel: channel.limit for channel in Channel}
        if channel_limits:
            self._limits.update(channel_limits)
        self._connections: list[_Connection] = []
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self._callbacks: list[MessageCallback] = []
        self._iterators = 0
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None
        self.stats = WsStats()

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> WsClient:
        await self.connect()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def url(self) -> str:
        return self._url

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def connection_count(self) -> int:
        """Sockets currently open."""
        return sum(1 for c in self._connections if c.ws is not None and not c.ws.closed)

    async def connect(self) -> None:
        """Open the first socket and wait until the server said ``connected``.

        Raises:
            ConnectError, TransportTimeout, WebSocketError: the first connection could not be made.
        """
        if self._closed:
            raise WebSocketError("WsClient is closed")
        if self._connections:
            return
        conn = self._new_connection()
        await self._open(conn)  # the first connect fails loudly; later drops reconnect in the background
        conn.task = asyncio.create_task(self._run(conn, first_open_done=True), name="dydx-ws-0")
        self._watchdog = asyncio.create_task(self._watch(), name="dydx-ws-watchdog")

    async def close(self) -> None:
        """Close every socket and end ``async for`` iteration. Idempotent."""
        if self._closed:
            return
        self._closed = True
        tasks = [c.task for c in self._connections if c.task is not None]
        if self._watchdog is not None:
            tasks.append(self._watchdog)
        for task in tasks:
            task.cancel()
        for conn in self._connections:
            if conn.ws is not None and not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await conn.ws.close()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
            self._session = None
        # Wake a consumer blocked on an empty queue; a full queue is drained by iteration first.
        with contextlib.suppress(asyncio.QueueFull):
            self._queue.put_nowait(_CLOSE_SENTINEL)

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe(
        self, channel: Channel | str, id: str | None = None, *, batched: bool | None = None
    ) -> Subscription:
        """Subscribe to ``channel`` (and ``id``); kept across reconnects until :meth:`unsubscribe`.

        Raises:
            ConfigError: the channel or id is malformed, or every allowed socket is full.
            SubscriptionError: already subscribed.
        """
        sub = Subscription.of(channel, id)
        if any(sub in c.wanted for c in self._connections):
            raise SubscriptionError(f"already subscribed to {sub}", channel=sub.channel.value, id=sub.id)
        if not self._connections:
            await self.connect()
        conn = self._connection_for(sub.channel)
        wanted = _Wanted(sub, self._batched if batched is None else batched)
        conn.wanted[sub] = wanted
        if conn.task is None:
            conn.task = asyncio.create_task(self._run(conn), name=f"dydx-ws-{conn.index}")
        elif conn.ready.is_set():
            await self._send_subscribe(conn, wanted)
        return sub

    async def unsubscribe(self, channel: Channel | str, id: str | None = None) -> None:
        """Stop a subscription. Unknown subscriptions are ignored, as the server does."""
        sub = Subscription.of(channel, id)
        for conn in self._connections:
            if conn.wanted.pop(sub, None) is not None and conn.ready.is_set() and conn.protocol is not None:
                await self._send(conn, conn.protocol.unsubscribe(sub))

    @property
    def subscriptions(self) -> list[Subscription]:
        """Every subscription the client keeps, over all sockets."""
        return [sub for c in self._connections for sub in c.wanted]

    def _connection_for(self, channel: Channel) -> _Connection:
        limit = self._limits[channel]
        for conn in self._connections:
            if conn.count(channel) < limit:
                return conn
        if len(self._connections) >= self._max_connections:
            raise ConfigError(
                f"WsClient: {channel.value} needs more than {self._max_connections} sockets "
                f"({limit} subscriptions each); raise max_connections"
            )
        return self._new_connection()

    def _new_connection(self) -> _Connection:
        conn = _Connection(index=len(self._connections))
        self._connections.append(conn)
        return conn

    # -- delivery ----------------------------------------------------------------------------------

    def add_callback(self, callback: MessageCallback) -> Callable[[], None]:
        """Call ``callback`` with every message, in order, on the event loop; returns a remover.

        A callback must not block. An exception in a callback is logged and counted, never raised
        into the reader.
        """
        self._callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._callbacks.remove(callback)

        return remove

    def __aiter__(self) -> AsyncIterator[MarketStreamMsg]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[MarketStreamMsg]:
        self._iterators += 1
        try:
            async for msg in self._drain():
                yield msg
        finally:
            self._iterators -= 1

    async def _drain(self) -> AsyncIterator[MarketStreamMsg]:
        while True:
            if self._closed and self._queue.empty():
                return
            item = await self._queue.get()
            if item is _CLOSE_SENTINEL:
                return
            yield item  # type: ignore[misc]

    async def _deliver(self, msg: MarketStreamMsg) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(msg)
            except Exception:
                self.stats.callback_errors += 1
                _log.exception("WsClient callback %r failed", callback)
        # With callbacks and nobody iterating, queueing would only fill memory and then stall the reader.
        if self._iterators or not self._callbacks:
            await self._queue.put(msg)

    # -- sockets -----------------------------------------------------------------------------------

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            factory = self._session_factory or aiohttp.ClientSession
            self._session = factory()
        return self._session

    async def _open(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        with _map_exceptions(f"connect {self._url}"):
            ws = await self._session_get().ws_connect(
                self._url,
                autoping=False,
                ssl=self._ssl,
                timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=5.0),
                max_msg_size=64 * 1024 * 1024,
            )
        conn.ws = ws
        conn.protocol = StreamProtocol()
        conn.last_rx = loop.time()
        try:
            first = await self._receive(conn, deadline=self._connect_timeout)
        except BaseException:
            await ws.close()
            raise
        if not isinstance(first, Connected):
            await ws.close()
            raise WebSocketError(f"expected 'connected' first; got {type(first).__name__}")
        conn.connection_id = first.connection_id
        await self._deliver(first)

    async def _run(self, conn: _Connection, *, first_open_done: bool = False) -> None:
        """Keep one socket alive until the client closes."""
        delays: Iterator[float] | None = None
        attempt = 0
        while not self._closed:
            try:
                if not first_open_done:
                    await self._open(conn)
                first_open_done = False
                if attempt:
                    self.stats.reconnects += 1
                    await self._deliver(Reconnected(connection_id=conn.connection_id))
                delays, attempt = None, 0
                conn.ready.set()
                for wanted in list(conn.wanted.values()):
                    await self._send_subscribe(conn, wanted)
                await self._read(conn)
                reason = "closed by server"
            except asyncio.CancelledError:
                raise
            except DydxError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            finally:
                conn.ready.clear()
            if self.closed:  # close() may have run while we awaited
                return
            if conn.ws is not None and not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await conn.ws.close()
            if delays is None:
                delays = self._reconnect.delays()
            attempt += 1
            delay = next(delays)
            _log.warning(
                "dYdX WS socket %d lost (%s); reconnect %d in %.2fs", conn.index, reason, attempt, delay
            )
            await self._deliver(Reconnecting(attempt=attempt, delay=delay, reason=reason))
            await asyncio.sleep(delay)

    async def _receive(self, conn: _Connection, *, deadline: float | None = None) -> MarketStreamMsg:
        """The next decoded message of ``conn``; answers pings on the way."""
        assert conn.ws is not None
        assert conn.protocol is not None
        loop = asyncio.get_running_loop()
        while True:
            with _map_exceptions("receive"):
                if deadline is None:
                    frame = await conn.ws.receive()
                else:
                    async with asyncio.timeout(deadline):
                        frame = await conn.ws.receive()
            conn.last_rx = loop.time()
            kind = frame.type
            if kind is aiohttp.WSMsgType.TEXT or kind is aiohttp.WSMsgType.BINARY:
                data = frame.data
                self.stats.messages += 1
                self.stats.bytes += len(data)
                return conn.protocol.receive(data)
            if kind is aiohttp.WSMsgType.PING:
                self.stats.pings += 1
                with _map_exceptions("pong"):
                    await conn.ws.pong(frame.data)
                return Heartbeat()
            if kind is aiohttp.WSMsgType.PONG:
                continue
            if kind is aiohttp.WSMsgType.ERROR:
                raise ConnectError(f"socket error: {frame.data!r}")
            # CLOSE / CLOSING / CLOSED
            code = conn.ws.close_code
            raise WebSocketError(f"socket closed (code {code}, {frame.extra!r})", close_code=code)

    async def _read(self, conn: _Connection) -> None:
        while True:
            msg = await self._receive(conn)
            if isinstance(msg, StreamError):
                await self._on_error(conn, msg)
            elif isinstance(msg, Unsubscribed | Heartbeat):
                pass
            await self._deliver(msg)

    async def _on_error(self, conn: _Connection, msg: StreamError) -> None:
        error = SubscriptionError(msg.message, channel=msg.channel, id=msg.id)
        if not error.is_internal or msg.channel is None:
            _log.warning("dYdX WS error on socket %d: %s", conn.index, msg.message)
            return
        try:
            sub = Subscription.of(msg.channel, msg.id)
        except ConfigError:
            return
        wanted = conn.wanted.get(sub)
        if wanted is not None:
            # The server dropped the subscription when its snapshot fetch failed; ask again.
            self.stats.resubscribes += 1
            _log.warning("dYdX WS %s failed server-side (%s); subscribing again", sub, msg.message)
            await self._send_subscribe(conn, wanted)

    async def _send_subscribe(self, conn: _Connection, wanted: _Wanted) -> None:
        assert conn.protocol is not None
        loop = asyncio.get_running_loop()
        times = conn.attempts.setdefault(
            wanted.subscription, collections.deque(maxlen=_SUBSCRIBE_ATTEMPTS_PER_SECOND)
        )
        if len(times) == _SUBSCRIBE_ATTEMPTS_PER_SECOND:
            wait = times[0] + 1.0 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait + 0.01)
        times.append(loop.time())
        await self._send(conn, conn.protocol.subscribe(wanted.subscription, batched=wanted.batched))

    async def _send(self, conn: _Connection, data: bytes) -> None:
        if conn.ws is None or conn.ws.closed:
            return  # replayed on reconnect
        with _map_exceptions("send"):
            await conn.ws.send_str(data.decode())

    async def _watch(self) -> None:
        """Drop sockets that went silent; their run loops reconnect them."""
        loop = asyncio.get_running_loop()
        period = min(1.0, self._watchdog_timeout / 4)
        while not self._closed:
            await asyncio.sleep(period)
            now = loop.time()
            for conn in self._connections:
                ws = conn.ws
                silent = now - conn.last_rx
                if (
                    ws is not None
                    and not ws.closed
                    and conn.ready.is_set()
                    and silent > self._watchdog_timeout
                ):
                    self.stats.watchdog_trips += 1
                    _log.warning("dYdX WS socket %d silent for %.1fs; reconnecting", conn.index, silent)
                    # Closing makes the reader's receive() return CLOSED, which triggers a reconnect.
                    with contextlib.suppress(Exception):
                        await ws.close(code=4000, message=b"watchdog")
