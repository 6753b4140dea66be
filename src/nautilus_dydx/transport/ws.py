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
import msgspec
from yarl import URL

from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import (
    ConfigError,
    ConnectError,
    DecodeError,
    DydxError,
    SubscriptionError,
    TransportTimeout,
    WebSocketError,
)
from nautilus_dydx.core.retry import ExponentialBackoff
from nautilus_dydx.core.stream import StreamProtocol, Subscription, error_subscription
from nautilus_dydx.schemas.stream import (
    Channel,
    Connected,
    Heartbeat,
    MarketStreamMsg,
    MessageGap,
    Reconnected,
    Reconnecting,
    StreamError,
)
from nautilus_dydx.transport.consumer import QueueIterator

__all__ = ["WsClient", "WsStats"]

_log = logging.getLogger(__name__)

MessageCallback = Callable[[MarketStreamMsg], None]
SessionFactory = Callable[[], aiohttp.ClientSession]

# The server closes a connection on the third subscribe attempt for one channel+id within one second.
_SUBSCRIBE_ATTEMPTS_PER_SECOND = 2
# A socket that lived this long was healthy: the next failure starts the back-off from the beginning.
_HEALTHY_AFTER = 10.0
_CLOSE_SENTINEL = object()
# How long closing a socket waits for the peer's close frame. A healthy server answers at once; a
# dead or silent one never does, and its books must be announced as resyncing without delay.
_CLOSE_GRACE = 1.0


def _check_url(url: str) -> None:
    """Refuse a URL that could only fail at connect() (and then look like a network fault)."""
    try:
        parsed = URL(url)
        port = parsed.port
    except (ValueError, UnicodeError) as exc:
        raise ConfigError(f"WsClient: {url!r} is not a valid URL: {exc}") from None
    if not parsed.host or any(c.isspace() or not c.isprintable() for c in parsed.host):
        raise ConfigError(f"WsClient: {url!r} has no valid host")
    if port is None or not 0 < port <= 65535:
        raise ConfigError(f"WsClient: {url!r}: port {port} is not in [1, 65535]")


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
    decode_errors: int = 0
    gaps: int = 0
    """Sequence gaps (lost messages) detected and delivered as ``MessageGap``."""


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


class _FrameHead(msgspec.Struct):
    """Just enough of a frame to know which subscription it belongs to."""

    message_id: int = -1
    channel: str | None = None
    id: str | None = None


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
    blocked: bool = False  # the reader waits for a slow consumer, not for the network

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
        channel_limits: lower per-connection subscription limits, e.g. to spread load over more
            sockets (defaults and maxima: :attr:`Channel.limit`, the server's own limits).

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
        _check_url(url)
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
        for channel, limit in (channel_limits or {}).items():
            if not 1 <= limit <= channel.limit:
                raise ConfigError(
                    f"WsClient: channel_limits[{channel.value}] must be in [1, {channel.limit}] "
                    f"(the server refuses more); got {limit}"
                )
            self._limits[channel] = limit
        self._connections: list[_Connection] = []
        self._queue: asyncio.Queue[object] = asyncio.Queue(maxsize=queue_size)
        self._callbacks: list[MessageCallback] = []
        self._iterators = 0
        self._closed = False
        self._watchdog: asyncio.Task[None] | None = None
        self._connect_lock = asyncio.Lock()
        self.stats = WsStats()

    @classmethod
    def from_config(
        cls,
        config: DydxConfig,
        *,
        reconnect: ExponentialBackoff | None = None,
        watchdog_timeout: float | None = None,
        connect_timeout: float | None = None,
        batched: bool = False,
        ssl: ssl_module.SSLContext | bool | None = None,
        max_connections: int = 8,
    ) -> WsClient:
        """A client for ``config``'s indexer socket with its timeouts and TLS choice; keywords override."""
        return cls(
            config.indexer_ws_url,
            reconnect=reconnect,
            watchdog_timeout=config.ws_heartbeat_timeout if watchdog_timeout is None else watchdog_timeout,
            connect_timeout=config.connect_timeout if connect_timeout is None else connect_timeout,
            batched=batched,
            ssl=config.http_ssl if ssl is None else ssl,
            max_connections=max_connections,
        )

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> WsClient:
        try:
            await self.connect()
        except BaseException:
            await self.close()  # __aexit__ does not run when __aenter__ fails
            raise
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
            ConfigError: the client is closed (a closed client is not reopened).
        """
        if self._closed:
            raise ConfigError("WsClient is closed")
        # One opener at a time: concurrent subscribe() calls before the first socket is up must not
        # open sockets of their own.
        async with self._connect_lock:
            if self._connections and self._connections[0].task is not None:
                return
            conn = self._connections[0] if self._connections else self._new_connection()
            try:
                await self._open(conn)  # the first connect fails loudly; later drops reconnect quietly
            except BaseException:
                conn.ws = None
                conn.protocol = None
                # Nothing is open: release the session too (built again on the next attempt).
                if self._session is not None:
                    await self._session.close()
                    self._session = None
                raise
            conn.task = asyncio.create_task(self._run(conn, first_open_done=True), name="dydx-ws-0")
            if self._watchdog is None:
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

        A subscription the server refuses as invalid (``Invalid subscription id ...``) is dropped
        (not replayed); the refusal arrives in the stream as a :class:`StreamError`.

        Raises:
            ConfigError: the channel or id is malformed, every allowed socket is full, or the
                client is closed.
            SubscriptionError: already subscribed.
        """
        sub = Subscription.of(channel, id)
        if self._closed:
            raise ConfigError("WsClient is closed")
        if any(sub in c.wanted for c in self._connections):
            raise SubscriptionError(f"already subscribed to {sub}", channel=sub.channel.value, id=sub.id)
        if not self._connections or self._connections[0].task is None:
            await self.connect()
        if any(sub in c.wanted for c in self._connections):  # a concurrent call won the race
            raise SubscriptionError(f"already subscribed to {sub}", channel=sub.channel.value, id=sub.id)
        conn = self._connection_for(sub.channel)
        wanted = _Wanted(sub, self._batched if batched is None else batched)
        conn.wanted[sub] = wanted
        try:
            if conn.task is None:
                conn.task = asyncio.create_task(self._run(conn), name=f"dydx-ws-{conn.index}")
            elif conn.ready.is_set():
                await self._send_subscribe(conn, wanted)
        except ConfigError:
            conn.wanted.pop(sub, None)  # refused locally: nothing to replay
            raise
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
        if self._iterators:
            # Two loops would split the stream between them; more consumers use add_callback().
            raise ConfigError("WsClient: one `async for` at a time; use add_callback() for more consumers")
        self._iterators += 1
        return QueueIterator(self._queue, _CLOSE_SENTINEL, lambda: self._closed, self._release_iterator)

    def _release_iterator(self) -> None:
        self._iterators -= 1

    async def _deliver(self, msg: MarketStreamMsg, conn: _Connection | None = None) -> None:
        for callback in tuple(self._callbacks):
            try:
                callback(msg)
            except Exception:
                self.stats.callback_errors += 1
                _log.exception("WsClient callback %r failed", callback)
        # With callbacks and nobody iterating, queueing would only fill memory and then stall the reader.
        if self._iterators or not self._callbacks:
            if not self._queue.full():
                self._queue.put_nowait(msg)
                return
            if conn is None:
                await self._queue.put(msg)
                return
            conn.blocked = True  # the watchdog must not take a slow consumer for a dead socket
            try:
                await self._queue.put(msg)
            finally:
                conn.blocked = False
                conn.last_rx = asyncio.get_running_loop().time()

    # -- sockets -----------------------------------------------------------------------------------

    def _session_get(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            factory = self._session_factory or aiohttp.ClientSession
            self._session = factory()
        return self._session

    async def _open(self, conn: _Connection) -> None:
        loop = asyncio.get_running_loop()
        with _map_exceptions(f"connect {self._url}"):
            async with asyncio.timeout(self._connect_timeout):  # TCP + TLS + upgrade
                ws = await self._session_get().ws_connect(
                    self._url,
                    autoping=False,
                    ssl=self._ssl,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=_CLOSE_GRACE),
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
        loop = asyncio.get_running_loop()
        delays: Iterator[float] | None = None
        attempt = 0
        reopened = False
        while not self._closed:
            opened_at: float | None = None
            try:
                if not first_open_done:
                    await self._open(conn)
                first_open_done = False
                opened_at = loop.time()
                if reopened:
                    self.stats.reconnects += 1
                    await self._deliver(
                        Reconnected(connection_id=conn.connection_id, socket=conn.index), conn
                    )
                conn.ready.set()
                for wanted in list(conn.wanted.values()):
                    await self._send_subscribe(conn, wanted)
                await self._read(conn)
                reason = "closed by server"
            except asyncio.CancelledError:
                raise
            except DydxError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            except Exception as exc:
                # A bug must not end the loop silently: log it and reconnect like any other failure.
                _log.exception("dYdX WS socket %d failed unexpectedly", conn.index)
                reason = f"unexpected {type(exc).__name__}: {exc}"
            finally:
                conn.ready.clear()
            if self.closed:  # close() may have run while we awaited
                return
            if conn.ws is not None and not conn.ws.closed:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.ws.close(), _CLOSE_GRACE)
            if opened_at is not None and loop.time() - opened_at >= _HEALTHY_AFTER:
                delays, attempt = None, 0  # it was healthy: start the back-off afresh
            if delays is None:
                delays = self._reconnect.delays()
            attempt += 1
            reopened = True
            delay = next(delays)
            _log.warning(
                "dYdX WS socket %d lost (%s); reconnect %d in %.2fs", conn.index, reason, attempt, delay
            )
            interrupted = tuple((sub.channel, sub.id) for sub in conn.wanted)
            await self._deliver(
                Reconnecting(
                    attempt=attempt, delay=delay, reason=reason, socket=conn.index, subscriptions=interrupted
                ),
                conn,
            )
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
                try:
                    msg = conn.protocol.receive(data)
                except DecodeError as exc:
                    await self._undecodable(conn, data, exc)
                    continue
                if conn.protocol.has_gaps:
                    await self._report_gaps(conn)  # before the message that revealed them
                return msg
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

    async def _report_gaps(self, conn: _Connection) -> None:
        assert conn.protocol is not None
        for gap in conn.protocol.drain_gaps():
            self.stats.gaps += 1
            affected = tuple((sub.channel, sub.id) for sub in gap.affected)
            await self._deliver(
                MessageGap(gap.connection_id, gap.expected, gap.received, conn.index, affected), conn
            )

    async def _read(self, conn: _Connection) -> None:
        while True:
            msg = await self._receive(conn)
            if type(msg) is StreamError:
                await self._on_error(conn, msg)
            await self._deliver(msg, conn)

    async def _undecodable(self, conn: _Connection, data: str | bytes, exc: DecodeError) -> None:
        """A frame we cannot decode: keep the socket, and heal the subscription it belonged to.

        Dropping one frame of a stream of absolute updates may leave a book wrong, so the
        subscription is taken again (a fresh snapshot) and an ``Internal error`` message naming it is
        delivered, which consumers already treat as "this subscription is being rebuilt".
        """
        self.stats.decode_errors += 1
        _log.warning("dYdX WS socket %d: undecodable frame skipped (%s)", conn.index, exc)
        try:
            head = msgspec.json.decode(data, type=_FrameHead)
        except msgspec.DecodeError:
            return  # not even its id is readable: the next frame reveals it as a gap
        assert conn.protocol is not None
        if head.message_id >= 0:
            conn.protocol.skip(head.message_id)  # accounted for here, not a gap
        try:
            sub = Subscription.of(head.channel or "", head.id)
        except ConfigError:
            return  # not a subscription's frame: nothing to heal
        wanted = conn.wanted.get(sub)
        if wanted is None:
            return
        assert conn.protocol is not None
        self.stats.resubscribes += 1
        await self._send(conn, conn.protocol.unsubscribe(sub))
        await self._send_subscribe(conn, wanted)
        announcement = StreamError(
            connection_id=conn.connection_id,
            message_id=head.message_id,
            message=f"Internal error, could not decode data for subscription: {sub.channel.value}.",
            channel=sub.channel.value,
            id=sub.id,
        )
        await self._deliver(announcement, conn)

    async def _on_error(self, conn: _Connection, msg: StreamError) -> None:
        error = SubscriptionError(msg.message, channel=msg.channel, id=msg.id)
        if not error.is_internal or msg.channel is None:
            refused = error_subscription(msg) if msg.message.startswith("Invalid subscription id") else None
            if refused is not None and conn.wanted.pop(refused, None) is not None:
                # The server will never take it: replaying it on every reconnect would only hold a
                # channel slot and block a corrected subscribe with "already subscribed".
                _log.warning("dYdX WS refused %s (%s); dropped", refused, msg.message)
                return
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
        protocol = conn.protocol
        assert protocol is not None
        if conn.wanted.get(wanted.subscription) is not wanted:
            return  # unsubscribed since this send was planned (e.g. during a replay)
        loop = asyncio.get_running_loop()
        times = conn.attempts.setdefault(
            wanted.subscription, collections.deque(maxlen=_SUBSCRIBE_ATTEMPTS_PER_SECOND)
        )
        if len(times) == _SUBSCRIBE_ATTEMPTS_PER_SECOND:
            wait = times[0] + 1.0 - loop.time()
            if wait > 0:
                await asyncio.sleep(wait + 0.01)
                if conn.wanted.get(wanted.subscription) is not wanted or conn.protocol is not protocol:
                    return  # unsubscribed, or the socket was replaced (its replay sends it), meanwhile
        times.append(loop.time())
        await self._send(conn, protocol.subscribe(wanted.subscription, batched=wanted.batched))

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
                    and not conn.blocked
                    and silent > self._watchdog_timeout
                ):
                    self.stats.watchdog_trips += 1
                    _log.warning("dYdX WS socket %d silent for %.1fs; reconnecting", conn.index, silent)
                    # Closing makes the reader's receive() return CLOSED, which triggers a reconnect.
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(code=4000, message=b"watchdog"), _CLOSE_GRACE)
