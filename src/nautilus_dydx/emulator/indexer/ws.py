"""The emulated indexer WebSocket (socks) at ``/v4/ws``.

Per connection: a ``message_id`` counter with the real server's rules, subscriptions with their
per-channel limits, an outbox drained by a writer task (so a stall fault can hold it), protocol pings
with a pong deadline, optional batching, and a log of every ``v4_orderbook`` message sent, from which
the control API computes the checksum of a correct client's view after each message.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
import zlib
from array import array
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import msgspec
from aiohttp import WSMsgType, web

from nautilus_dydx.emulator import events as ev
from nautilus_dydx.emulator.indexer import fmt
from nautilus_dydx.emulator.indexer.store import PARENT_MODULUS, IndexerStore

if TYPE_CHECKING:
    from nautilus_dydx.emulator.indexer.rest import RestApi

__all__ = ["BookLog", "FixedWindowLimit", "WsConnection", "WsHub", "book_checksum"]

log = logging.getLogger(__name__)

Json = dict[str, Any]

VERSIONS = {
    "v4_orderbook": "1.0.0",
    "v4_subaccounts": "3.0.0",
    "v4_parent_subaccounts": "3.0.0",
    "v4_trades": "2.1.0",
    "v4_markets": "1.0.0",
    "v4_candles": "1.0.0",
    "v4_block_height": "1.0.0",
}
LIMITS = {
    "v4_markets": 32,
    "v4_orderbook": 32,
    "v4_trades": 32,
    "v4_candles": 32,
    "v4_subaccounts": 256,
    "v4_parent_subaccounts": 256,
    "v4_block_height": 1,
}
NO_ID = frozenset({"v4_markets", "v4_block_height"})
# Book messages per (connection, ticker) whose checksum is kept: a verification window, not an archive.
CHECKSUM_HISTORY = 4096
CHECKSUM_DEPTH = 25  # the default depth of docs/checksum.md
CLOSED_CONNECTIONS_KEPT = 64
OUTBOX_LIMIT = 200_000
# socks' rate limits (subscribe attempts per channel and id, invalid messages): at most this many
# attempts per key in a window opened by the first one.
RATE_LIMIT_POINTS = 2
RATE_LIMIT_WINDOW = 1.0
RATE_LIMITED_REASON = '{"message":"Rate limited"}'
RESTART_REASON = '{"message":"Service restarting"}'
_ENC = msgspec.json.Encoder()


def _canonical(value: Decimal) -> str:
    return fmt.dec(value)


def book_checksum(
    bids: list[tuple[Decimal, Decimal]], asks: list[tuple[Decimal, Decimal]], depth: int
) -> int:
    """CRC-32 of ``BIDS|ASKS`` per docs/checksum.md; levels best first."""
    b = ",".join(f"{_canonical(p)}:{_canonical(s)}" for p, s in bids[:depth])
    a = ",".join(f"{_canonical(p)}:{_canonical(s)}" for p, s in asks[:depth])
    return zlib.crc32(f"{b}|{a}".encode("ascii")) & 0xFFFFFFFF


class _ClientBook:
    """A correct client's book: levels with the message_id that last set them, uncrossed by recency.

    Each level keeps its canonical ``PRICE:SIZE`` text, made once when the level is set, so that a
    checksum per message costs a sort and a join rather than formatting every level again.
    """

    __slots__ = ("asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[Decimal, int, str]] = {}
        self.asks: dict[Decimal, tuple[Decimal, int, str]] = {}

    @staticmethod
    def _level(price: Decimal, size: Decimal, age: int) -> tuple[Decimal, int, str]:
        return (size, age, f"{_canonical(price)}:{_canonical(size)}")

    def apply(self, kind: str, message_id: int, payload: Any) -> None:
        level = self._level
        if kind == "snapshot":
            for key in ("bids", "asks"):
                side: dict[Decimal, tuple[Decimal, int, str]] = {}
                for lv in payload[key]:
                    price, size = Decimal(lv["price"]), Decimal(lv["size"])
                    if size > 0:
                        side[price] = level(price, size, message_id)
                setattr(self, key, side)
        else:
            for contents in payload:
                for key, side in (("bids", self.bids), ("asks", self.asks)):
                    for raw in contents.get(key, ()):
                        price, size = Decimal(raw[0]), Decimal(raw[1])
                        if size == 0:
                            side.pop(price, None)
                        else:
                            side[price] = level(price, size, message_id)
        self.uncross()

    def uncross(self) -> None:
        while self.bids and self.asks:
            bid = max(self.bids)
            ask = min(self.asks)
            if bid < ask:
                return
            b_size, b_age, _ = self.bids[bid]
            a_size, a_age, _ = self.asks[ask]
            if b_age < a_age:
                del self.bids[bid]
            elif a_age < b_age:
                del self.asks[ask]
            elif b_size < a_size:
                del self.bids[bid]
                self.asks[ask] = self._level(ask, a_size - b_size, a_age)
            elif a_size < b_size:
                del self.asks[ask]
                self.bids[bid] = self._level(bid, b_size - a_size, b_age)
            else:
                del self.bids[bid]
                del self.asks[ask]

    def checksum(self, depth: int) -> int:
        bids, asks = self.bids, self.asks
        b = ",".join(bids[p][2] for p in sorted(bids, reverse=True)[:depth])
        a = ",".join(asks[p][2] for p in sorted(asks)[:depth])
        return zlib.crc32(f"{b}|{a}".encode("ascii")) & 0xFFFFFFFF


def _js_str(value: Any) -> str:
    """``String(value)`` of a JSON value as the venue's JavaScript server would render it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else _js_str(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


def _js_truthy(value: Any) -> bool:
    """JavaScript truthiness of a JSON value (``[]`` and ``{}`` are true, ``""`` and ``0`` false)."""
    if isinstance(value, (list, dict)):
        return True
    return bool(value)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")  # JavaScript's JSON.parse refuses NaN and Infinity


class FixedWindowLimit:
    """The venue's per-key rate limit: the first attempt opens a window of ``window`` seconds, and
    an attempt that brings the count in that window above ``points`` is refused.

    A fixed window, not a sliding one: the first attempt after the window has passed opens a new
    window with a count of one, however recent the attempts before it.
    """

    __slots__ = ("_windows", "points", "window")

    def __init__(self, points: int = RATE_LIMIT_POINTS, window: float = RATE_LIMIT_WINDOW) -> None:
        self.points = points
        self.window = window
        self._windows: dict[Any, tuple[float, int]] = {}

    def refuse(self, key: Any, now: float) -> bool:
        """Count an attempt on ``key`` at ``now``; True when it is over the limit."""
        opened = self._windows.get(key)
        if opened is not None and now - opened[0] < self.window:
            count = opened[1] + 1
            self._windows[key] = (opened[0], count)
            return count > self.points
        self._windows[key] = (now, 1)
        return False

    def forget_expired(self, now: float) -> None:
        """Drop the keys whose window has passed: their next attempt opens a new one anyway."""
        expired = [k for k, (start, _) in self._windows.items() if now - start >= self.window]
        for key in expired:
            del self._windows[key]

    def __len__(self) -> int:
        return len(self._windows)


class BookLog:
    """The checksum a correct client's book has after each ``v4_orderbook`` message of one ticker
    sent on one connection (docs/checksum.md), bounded to the last ``limit`` messages.

    The view is applied and its checksum taken as each message is sent, and only the two integers
    are kept (16 bytes a message), so a long-running emulator's memory stays flat.
    """

    def __init__(self, limit: int = CHECKSUM_HISTORY, depth: int = CHECKSUM_DEPTH) -> None:
        self.limit = limit
        self.depth = depth
        self.book = _ClientBook()
        self._ids = array("q")
        self._sums = array("q")

    def add(self, message_id: int, kind: str, payload: Any) -> None:
        self.book.apply(kind, message_id, payload)
        self._ids.append(message_id)
        self._sums.append(self.book.checksum(self.depth))
        excess = len(self._ids) - self.limit
        # Trim in chunks so that the amortised cost per message stays O(1).
        if excess > 0 and excess >= max(1, self.limit // 8):
            del self._ids[:excess]
            del self._sums[:excess]

    def __len__(self) -> int:
        return min(len(self._ids), self.limit)

    def seal(self) -> None:
        """The connection closed: keep the records, drop the view."""
        self.book = _ClientBook()

    def checksums(self, depth: int, after: int) -> list[Json]:
        """Records with ``message_id > after``.

        Raises:
            ValueError: ``depth`` is not the depth the records were taken at.
        """
        if depth != self.depth:
            raise ValueError(f"checksums are recorded at depth {self.depth}, not {depth}")
        start = max(0, len(self._ids) - self.limit)
        ids, sums = self._ids, self._sums
        return [{"message_id": ids[i], "checksum": sums[i]} for i in range(start, len(ids)) if ids[i] > after]


@dataclass(slots=True, eq=False)
class _Sub:
    channel: str
    id: str | None
    batched: bool
    # What an error naming this subscription carries: the channel, and the id as the client sent
    # it (no id when it sent none, as for v4_markets and usually v4_block_height).
    echo: Json = field(default_factory=dict)
    pending: list[tuple[bytes, Json, int | None]] = field(default_factory=list)


class WsConnection:
    """One accepted socket."""

    def __init__(self, hub: WsHub, ws: web.WebSocketResponse, request: web.Request) -> None:
        self.hub = hub
        self.ws = ws
        self.request = request
        self.id = str(uuid.uuid4())
        self._cid = self.id.encode()
        self.message_id = 0
        self.subs: dict[tuple[str, str | None], _Sub] = {}
        self.book_logs: dict[str, BookLog] = {}
        self.outbox: deque[str] = deque()
        self.wake = asyncio.Event()
        self.pong = asyncio.Event()
        self.stalled_until = 0.0
        # Data messages still to lose in transit (a fault): each takes its message_id and its
        # checksum record, and is never sent.
        self.lose = 0
        self.closing = False
        self._invalid = FixedWindowLimit()
        self._attempts = FixedWindowLimit()
        self.tasks: list[asyncio.Task[None]] = []

    # --- output -------------------------------------------------------------------------------

    def send(self, message: Json) -> None:
        self.enqueue(_ENC.encode(message).decode())

    def enqueue(self, text: str) -> None:
        if self.closing:
            return
        if len(self.outbox) >= OUTBOX_LIMIT:
            log.warning("ws %s: outbox full, dropping the connection", self.id)
            self.hub.schedule_close(self, 4000, "Outbox overflow")
            return
        self.outbox.append(text)
        self.wake.set()

    def error(self, message: str, echo: Json | None = None) -> None:
        """An ``error`` with the current ``message_id``; ``echo``: its ``channel``/``id`` fields.

        The venue names the subscription only in its "already subscribed" and snapshot-fetch
        ("Internal error") errors; every other error has neither field.
        """
        body: Json = {
            "type": "error",
            "message": message,
            "connection_id": self.id,
            "message_id": self.message_id,
        }
        if echo:
            body.update(echo)
        self.send(body)

    def send_data(self, sub: _Sub, batch: bool, body: bytes, raw: Any, child: int | None) -> None:
        self.message_id += 1
        mid = self.message_id
        head = b'{"type":"channel_batch_data"' if batch else b'{"type":"channel_data"'
        parts = [head, b',"connection_id":"', self._cid, b'","message_id":', str(mid).encode()]
        if sub.id is not None and sub.channel != "v4_markets":
            parts += [b',"id":', _ENC.encode(sub.id)]
        parts += [
            b',"channel":"',
            sub.channel.encode(),
            b'","version":"',
            VERSIONS[sub.channel].encode(),
            b'"',
        ]
        parts += [b',"contents":', body]
        if child is not None:
            parts += [b',"subaccountNumber":', str(child).encode()]
        parts.append(b"}")
        if self.lose:
            self.lose -= 1
        else:
            self.enqueue(b"".join(parts).decode())
        if sub.channel == "v4_orderbook" and sub.id is not None:
            self._book_log(sub.id).add(mid, "update", raw if batch else [raw])

    def _book_log(self, ticker: str) -> BookLog:
        book_log = self.book_logs.get(ticker)
        if book_log is None:
            book_log = self.book_logs[ticker] = BookLog(self.hub.checksum_history)
        return book_log

    def deliver(self, sub: _Sub, body: bytes, raw: Json, child: int | None) -> None:
        if sub.batched:
            sub.pending.append((body, raw, child))
        else:
            self.send_data(sub, False, body, raw, child)

    def flush(self, sub: _Sub) -> None:
        if not sub.pending:
            return
        pending, sub.pending = sub.pending, []
        # One message per child subaccount (parent channels), order kept within each.
        groups: dict[int | None, list[tuple[bytes, Json]]] = {}
        for body, raw, child in pending:
            groups.setdefault(child, []).append((body, raw))
        for child, items in groups.items():
            body = b"[" + b",".join(b for b, _ in items) + b"]"
            self.send_data(sub, True, body, [r for _, r in items], child)

    # --- input --------------------------------------------------------------------------------

    def _invalid_message(self, text: str) -> None:
        if self._invalid.refuse("invalid", time.monotonic()):
            self.error("Too many invalid messages. Please reconnect and try again.")
            self.hub.schedule_close(self, 1008, RATE_LIMITED_REASON)
            return
        self.error(text)

    def handle(self, text: str) -> None:
        try:
            data = json.loads(text, parse_constant=_reject_constant)
        except ValueError:
            self._invalid_message("Invalid message: could not parse")
            return
        if data is None:
            # The venue reads ``.type`` of the parsed value, which throws on null; its catch-all
            # answers this, outside the invalid-message limit.
            self.error("Internal error")
            return
        if not isinstance(data, dict) or not _js_truthy(data.get("type")):
            self._invalid_message("Invalid message: type is required")
            return
        kind = data["type"]
        if kind == "ping":
            return
        if kind not in ("subscribe", "unsubscribe"):
            self._invalid_message(f"Invalid message type: {_js_str(kind)}")
            return
        # The checks both requests share; none takes a message_id.
        channel = data.get("channel")
        if not _js_truthy(channel):
            self.error("Invalid subscribe message: channel is required")
            return
        if not isinstance(channel, str) or channel not in VERSIONS:
            self.error(f"Invalid channel: {_js_str(channel)}")
            return
        raw_id = data.get("id")
        if channel not in NO_ID and not isinstance(raw_id, str):
            self.error(f"Invalid id: {_js_str(raw_id) if 'id' in data else 'undefined'}")
            return
        sub_id: str | None
        if channel == "v4_block_height":
            sub_id = "v4_block_height"
        elif channel == "v4_markets":
            sub_id = None
        else:
            sub_id = raw_id
        echo: Json = {"channel": channel}
        if "id" in data:
            echo["id"] = raw_id
        if kind == "unsubscribe":
            self._unsubscribe(channel, sub_id, echo)
        else:
            self._subscribe(channel, sub_id, _js_truthy(data.get("batched", False)), echo)

    def handle_safely(self, text: str) -> None:
        """:meth:`handle`, with any unexpected failure logged and answered, never raised."""
        try:
            self.handle(text)
        except Exception:
            log.exception("ws %s: failed to handle a client message", self.id)
            self.error("Internal error, could not process message")

    def _subscribe(self, channel: str, sub_id: str | None, batched: bool, echo: Json) -> None:
        """The venue's order: the request takes a message_id, then id valid -> per-connection
        limit -> attempt rate -> snapshot -> not already subscribed; an error carries that id."""
        self.message_id += 1
        mid = self.message_id
        key = (channel, sub_id)
        if not self.hub.valid_id(channel, sub_id):
            self.error(f"Invalid subscription id for channel: ({channel}-{sub_id})")
            return
        limit = LIMITS[channel]
        # The request counts against the limit alongside what the connection holds.
        if sum(1 for c, _ in self.subs if c == channel) + 1 > limit:
            self.error(f"Per-connection subscription limit reached for {channel} (limit={limit}).")
            return
        # The venue names id-less subscriptions after their channel in its texts.
        label = f"{channel}-{sub_id if sub_id is not None else channel}"
        now = time.monotonic()
        self._attempts.forget_expired(now)
        if self._attempts.refuse(key, now):
            self.error(f"Too many subscribe attempts for channel {label}. Please  reconnect and try again.")
            self.hub.schedule_close(self, 1008, RATE_LIMITED_REASON)
            return
        snapshot = self.hub.snapshot(channel, sub_id)
        if key in self.subs:
            self.error(f"Invalid subscribe message: already subscribed ({label})", echo)
            return
        sub = _Sub(channel, sub_id, batched, echo)
        self.subs[key] = sub
        self.hub.index(self, sub)
        body: Json = {
            "type": "subscribed",
            "connection_id": self.id,
            "message_id": mid,
            "channel": channel,
        }
        if channel != "v4_markets":
            body["id"] = sub_id
        body["contents"] = snapshot
        self.send(body)
        if channel == "v4_orderbook" and sub_id is not None:
            self._book_log(sub_id).add(mid, "snapshot", snapshot)

    def _unsubscribe(self, channel: str, sub_id: str | None, echo: Json) -> None:
        sub = self.subs.pop((channel, sub_id), None)
        if sub is not None:
            self.hub.unindex(self, sub)
        self.message_id += 1
        body: Json = {
            "type": "unsubscribed",
            "connection_id": self.id,
            "message_id": self.message_id,
            "channel": channel,
        }
        # The id exactly as the request had it: none when it had none (v4_block_height too), and
        # never on v4_markets.
        if channel != "v4_markets" and "id" in echo:
            body["id"] = echo["id"]
        self.send(body)

    def drop_subscription(self, channel: str, sub_id: str | None) -> bool:
        sub = self.subs.pop((channel, sub_id), None)
        if sub is None:
            return False
        self.hub.unindex(self, sub)
        return True

    # --- tasks --------------------------------------------------------------------------------

    def _peer_gone(self, task: str, exc: BaseException) -> None:
        log.debug("ws %s: %s stopped, peer gone (%r)", self.id, task, exc)
        self.hub._forget(self)

    async def writer(self) -> None:
        try:
            await self._write_loop()
        except (ConnectionError, RuntimeError) as exc:  # the socket closed under us
            self._peer_gone("writer", exc)

    async def _write_loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.outbox:
                delay = self.stalled_until - loop.time()
                if delay > 0:
                    await asyncio.sleep(delay)
                    continue
                await self.ws.send_str(self.outbox.popleft())

    async def pinger(self, interval: float, pong_wait: float) -> None:
        try:
            await self._ping_loop(interval, pong_wait)
        except (ConnectionError, RuntimeError) as exc:  # the socket closed under us
            self._peer_gone("pinger", exc)

    async def _ping_loop(self, interval: float, pong_wait: float) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(interval)
            delay = self.stalled_until - loop.time()
            while delay > 0:
                await asyncio.sleep(delay)
                delay = self.stalled_until - loop.time()
            self.pong.clear()
            await self.ws.ping()
            try:
                await asyncio.wait_for(self.pong.wait(), pong_wait)
            except TimeoutError:
                log.info("ws %s: no pong within %.1fs, closing 1011", self.id, pong_wait)
                self.hub.schedule_close(self, 1011, "Heartbeat timeout")
                return


class WsHub:
    """All connections, the (channel, id) -> subscribers index, batching and fault hooks."""

    def __init__(
        self,
        store: IndexerStore,
        rest: RestApi,
        *,
        ping_interval: float = 30.0,
        pong_timeout: float = 10.0,
        batch_interval: float = 0.25,
        checksum_history: int = CHECKSUM_HISTORY,
    ) -> None:
        if checksum_history < 1:
            raise ValueError("checksum_history must be >= 1")
        self.store = store
        self.rest = rest
        self.ping_interval = ping_interval
        self.pong_timeout = pong_timeout
        self.batch_interval = batch_interval
        self.checksum_history = checksum_history
        self.connections: dict[str, WsConnection] = {}
        self.closed_logs: OrderedDict[str, dict[str, BookLog]] = OrderedDict()
        self._index: dict[tuple[str, str | None], dict[WsConnection, _Sub]] = {}
        self._batched: set[tuple[WsConnection, _Sub]] = set()
        self._flusher: asyncio.Task[None] | None = None
        self._closers: set[asyncio.Task[None]] = set()
        self.messages_sent = 0
        store.set_listener(self.publish, self.wants)

    # --- index --------------------------------------------------------------------------------

    def wants(self, channel: str, sub_id: str | None) -> bool:
        return bool(self._index.get((channel, sub_id)))

    def index(self, conn: WsConnection, sub: _Sub) -> None:
        self._index.setdefault((sub.channel, sub.id), {})[conn] = sub
        if sub.batched:
            self._batched.add((conn, sub))

    def unindex(self, conn: WsConnection, sub: _Sub) -> None:
        subs = self._index.get((sub.channel, sub.id))
        if subs is not None:
            subs.pop(conn, None)
            if not subs:
                del self._index[(sub.channel, sub.id)]
        self._batched.discard((conn, sub))
        sub.pending.clear()

    def publish(self, channel: str, sub_id: str | None, contents: Json, child: int | None) -> None:
        subs = self._index.get((channel, sub_id))
        if not subs:
            return
        body = _ENC.encode(contents)
        for conn, sub in list(subs.items()):
            conn.deliver(sub, body, contents, child)

    # --- validation and snapshots ---------------------------------------------------------------

    def valid_id(self, channel: str, sub_id: str | None) -> bool:
        if channel in NO_ID:
            return True
        assert sub_id is not None
        if channel in ("v4_orderbook", "v4_trades"):
            return sub_id in self.store.by_ticker
        if channel == "v4_candles":
            ticker, _, res = sub_id.rpartition("/")
            return ticker in self.store.by_ticker and res in fmt.RESOLUTIONS
        address, sep, number = sub_id.rpartition("/")
        if not sep or not address or not number.isdigit():
            return False
        limit = 128000 if channel == "v4_subaccounts" else PARENT_MODULUS
        return int(number) < limit

    def snapshot(self, channel: str, sub_id: str | None) -> Json:
        store = self.store
        if channel == "v4_markets":
            return store.render_markets()
        if channel == "v4_block_height":
            return {"height": str(store.height), "time": fmt.iso(store.time) if store.time else None}
        assert sub_id is not None
        if channel == "v4_orderbook":
            bids, asks = store.book_levels(store.by_ticker[sub_id].clob_pair_id)
            return {
                "bids": [{"price": fmt.dec(p), "size": fmt.dec(s)} for p, s in bids],
                "asks": [{"price": fmt.dec(p), "size": fmt.dec(s)} for p, s in asks],
            }
        if channel == "v4_trades":
            return self.rest.trades_body(store.by_ticker[sub_id])
        if channel == "v4_candles":
            ticker, _, res = sub_id.rpartition("/")
            return self.rest.candles_body(store.by_ticker[ticker], res)
        address, _, number_text = sub_id.rpartition("/")
        number = int(number_text)
        if channel == "v4_subaccounts":
            ref = ev.SubaccountRef(address, number)
            sub = store.subaccounts.get(ref)
            if sub is None:
                return {}
            return {
                "subaccount": store.render_subaccount(sub),
                "orders": store.snapshot_orders([ref]),
                "blockHeight": str(store.height),
            }
        parent = self.rest.parent_body(address, number)
        if parent is None:
            return {}
        refs = [c.ref for c in store.children(address, number)]
        return {"subaccount": parent, "orders": store.snapshot_orders(refs), "blockHeight": str(store.height)}

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.batch_interval)
            for conn, sub in list(self._batched):
                conn.flush(sub)

    async def handler(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(autoping=False, max_msg_size=1 << 20)
        await ws.prepare(request)
        conn = WsConnection(self, ws, request)
        self.connections[conn.id] = conn
        loop = asyncio.get_running_loop()
        conn.tasks = [loop.create_task(conn.writer())]
        if self.ping_interval > 0:
            conn.tasks.append(loop.create_task(conn.pinger(self.ping_interval, self.pong_timeout)))
        conn.send({"type": "connected", "connection_id": conn.id, "message_id": 0})
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    conn.handle_safely(msg.data)
                elif msg.type == WSMsgType.BINARY:
                    conn.handle_safely(msg.data.decode("utf-8", "replace"))
                elif msg.type == WSMsgType.PING:
                    await ws.pong(msg.data)
                elif msg.type == WSMsgType.PONG:
                    conn.pong.set()
                elif msg.type == WSMsgType.ERROR:
                    break
        except ConnectionError:
            log.debug("ws %s: connection lost", conn.id)
        finally:
            self._forget(conn)
        return ws

    def _forget(self, conn: WsConnection) -> None:
        if self.connections.pop(conn.id, None) is None:
            return
        conn.closing = True
        for sub in list(conn.subs.values()):
            self.unindex(conn, sub)
        conn.subs.clear()
        current = asyncio.current_task()
        for task in conn.tasks:
            if task is not current:
                task.cancel()
        if conn.book_logs:
            for book_log in conn.book_logs.values():
                book_log.seal()
            self.closed_logs[conn.id] = conn.book_logs
            while len(self.closed_logs) > CLOSED_CONNECTIONS_KEPT:
                self.closed_logs.popitem(last=False)

    def schedule_close(self, conn: WsConnection, code: int, reason: str) -> None:
        task = asyncio.get_running_loop().create_task(self.close(conn, code, reason))
        self._closers.add(task)
        task.add_done_callback(self._closers.discard)

    async def close(self, conn: WsConnection, code: int, reason: str) -> None:
        """Send what is queued, then a close frame with ``code`` and ``reason``."""
        if conn.closing:
            return
        conn.closing = True
        try:
            while conn.outbox and not conn.ws.closed:
                await conn.ws.send_str(conn.outbox.popleft())
            await asyncio.wait_for(conn.ws.close(code=code, message=reason.encode()), 2.0)
        except (ConnectionError, TimeoutError, RuntimeError):
            pass
        finally:
            self._forget(conn)

    def drop(self, conn: WsConnection) -> None:
        """Abrupt loss: the TCP connection goes away with no close frame."""
        transport = conn.request.transport
        conn.closing = True
        if transport is not None:
            transport.abort()
        self._forget(conn)

    async def shutdown(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            self._flusher = None
        await asyncio.gather(
            *(self.close(c, 1012, RESTART_REASON) for c in list(self.connections.values())),
            return_exceptions=True,
        )
        for task in list(self._closers):
            task.cancel()

    # --- faults ---------------------------------------------------------------------------------

    def targets(self, connection_id: str | None) -> list[WsConnection]:
        if connection_id is None:
            return list(self.connections.values())
        conn = self.connections.get(connection_id)
        return [conn] if conn is not None else []

    def internal_error(self, conn: WsConnection, channel: str, sub_id: str | None) -> None:
        sub = conn.subs.get((channel, sub_id))
        echo = sub.echo if sub is not None else {"channel": channel}
        conn.drop_subscription(channel, sub_id)
        conn.error(f"Internal error, could not fetch data for subscription: {channel}.", echo)

    def inject_crossed(self, conn: WsConnection, ticker: str) -> bool:
        """Send a stale bid above the best ask, then refresh the crossed asks so recency drops it."""
        sub = conn.subs.get(("v4_orderbook", ticker))
        market = self.store.by_ticker.get(ticker)
        if sub is None or market is None:
            return False
        bids, asks = self.store.book_levels(market.clob_pair_id)
        if not asks:
            return False
        conn.flush(sub)
        tick = self.store.price(market, market.subticks_per_tick)
        step = self.store.size(market, market.step_base_quantums)
        stale_price = asks[0][0] + tick
        current = {p: s for p, s in bids}
        if stale_price in current:
            return False
        stale: Json = {"bids": [[fmt.dec(stale_price), fmt.dec(step)]]}
        conn.send_data(sub, False, _ENC.encode(stale), stale, None)
        refresh: Json = {"asks": [[fmt.dec(p), fmt.dec(s)] for p, s in asks if p <= stale_price]}
        conn.send_data(sub, False, _ENC.encode(refresh), refresh, None)
        return True

    def checksums(self, connection_id: str, ticker: str, depth: int, after: int) -> list[Json] | None:
        conn = self.connections.get(connection_id)
        logs = conn.book_logs if conn is not None else self.closed_logs.get(connection_id)
        if logs is None:
            return None
        book_log = logs.get(ticker)
        return book_log.checksums(depth, after) if book_log is not None else []
