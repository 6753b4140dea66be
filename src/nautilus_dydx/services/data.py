"""``DataClient``: one coherent, verified market-data feed per market.

It stitches the Indexer WebSocket stream and REST snapshots into :data:`BookEvent`\\ s:

- a :class:`BookSnapshot` when a book is (re)built from the subscription snapshot;
- a :class:`BookDeltas` per update message (the level upserts and deletes it made, already applied);
- a :class:`BookRepair` when the venue's stream left the book crossed and the local uncrossing recipe
  (protocol §4.8) dropped or shrank levels — never a silently crossed book;
- a :class:`BookResync` before any rebuild: after a reconnect, after the indexer's "Internal error"
  message, and when the periodic audit against the REST snapshot keeps disagreeing. Between a resync
  and the next snapshot the book is not trusted (:meth:`DataClient.is_synced` is false);
- a :class:`Quote` whenever the top of book changed;
- :class:`TradeEvent`, :class:`OraclePriceEvent`, :class:`FundingRateEvent`, :class:`CandleEvent`,
  :class:`BlockHeightEvent`, and the WebSocket's connection events.

Prices and sizes in book events are the book's integer keys (human value × 10**decimals); the book
(:meth:`DataClient.book`) converts them (``format_price``, ``price_to_decimal``), so the hot path
never builds a Decimal.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import partial
from typing import Protocol, TypeAlias

from msgspec import Struct

from nautilus_dydx.core.book import LevelChange, OrderBook, Side
from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import (
    BadRequestError,
    ConfigError,
    DydxError,
    NotFoundError,
    SubscriptionError,
)
from nautilus_dydx.core.stream import Subscription
from nautilus_dydx.schemas.stream import (
    BlockHeightBatch,
    BlockHeightSubscribed,
    BlockHeightUpdate,
    Candle,
    CandlesBatch,
    CandlesSubscribed,
    CandlesUpdate,
    Channel,
    MarketsBatch,
    MarketStreamMsg,
    MarketsUpdate,
    MarketsUpdateContents,
    MessageGap,
    OrderbookBatch,
    OrderbookSubscribed,
    OrderbookUpdate,
    OrderbookUpdateContents,
    Reconnected,
    Reconnecting,
    StreamError,
    Trade,
    TradesBatch,
    TradesSubscribed,
    TradesUpdate,
)
from nautilus_dydx.transport.consumer import QueueIterator
from nautilus_dydx.transport.http import HttpClient
from nautilus_dydx.transport.ws import WsClient

__all__ = [
    "BlockHeightEvent",
    "BookDeltas",
    "BookEvent",
    "BookRepair",
    "BookResync",
    "BookSnapshot",
    "CandleEvent",
    "DataClient",
    "DataMetrics",
    "FundingRateEvent",
    "MarketDataEvent",
    "OraclePriceEvent",
    "Quote",
    "StreamStatusEvent",
    "TradeEvent",
]

_log = logging.getLogger(__name__)


# -- events -------------------------------------------------------------------------------------


class BookSnapshot(Struct, frozen=True, gc=False):
    """The book of ``ticker`` was rebuilt from a snapshot (levels best first, integer keys)."""

    ticker: str
    bids: list[tuple[int, int]]
    asks: list[tuple[int, int]]
    offset: int
    reason: str
    connection_id: str


class BookDeltas(Struct, frozen=True, gc=False):
    """The level writes of one update message, already applied to the book.

    The event keeps the message's levels as the venue sent them (``contents``: one update, or the
    list of a batch) and converts them to integer keys only when asked (:attr:`levels`), so that
    the hot path builds nothing per level.

    Attributes:
        ticker: the market.
        contents: the update (``channel_data``) or updates (``channel_batch_data``) applied.
        offset: the message's ``message_id``.
        connection_id: the WebSocket connection it came on.
        book: the book they were applied to (its conversions give :attr:`levels`).
    """

    ticker: str
    contents: OrderbookUpdateContents | list[OrderbookUpdateContents]
    offset: int
    connection_id: str
    book: OrderBook

    @property
    def levels(self) -> list[tuple[Side, int, int]]:
        """``(side, price key, size key)`` of every write, in the order applied (bids then asks of
        each update); size 0 deletes the level. Built on each access."""
        contents = self.contents
        updates = contents if isinstance(contents, list) else [contents]
        parse_price, parse_size = self.book.parse_price, self.book.parse_size
        out: list[tuple[Side, int, int]] = []
        for update in updates:
            out += [(Side.BID, parse_price(p), parse_size(q)) for p, q in update.bids]
            out += [(Side.ASK, parse_price(p), parse_size(q)) for p, q in update.asks]
        return out


class BookRepair(Struct, frozen=True, gc=False):
    """Synthetic level changes made by uncrossing after the message at ``offset``."""

    ticker: str
    changes: list[LevelChange]
    offset: int


class BookResync(Struct, frozen=True, gc=False):
    """The book of ``ticker`` is being rebuilt; it is not trusted until the next snapshot."""

    ticker: str
    reason: str


class Quote(Struct, frozen=True, gc=False):
    """Top of book after the message at ``offset`` (integer keys; ``None`` for an empty side)."""

    ticker: str
    bid_price: int | None
    bid_size: int | None
    ask_price: int | None
    ask_size: int | None
    offset: int


class TradeEvent(Struct, frozen=True, gc=False):
    """Public trades of ``ticker`` (taker side), oldest first; ``snapshot`` for the subscribe history."""

    ticker: str
    trades: list[Trade]
    snapshot: bool


class OraclePriceEvent(Struct, frozen=True, gc=False):
    """A new oracle price of ``ticker`` (from ``v4_markets``), effective at ``height``."""

    ticker: str
    price: Decimal
    effective_at: datetime | None
    height: int | None


class FundingRateEvent(Struct, frozen=True, gc=False):
    """The predicted 1-hour funding rate of ``ticker`` changed."""

    ticker: str
    next_funding_rate: Decimal


class CandleEvent(Struct, frozen=True, gc=False):
    """A candle of ``ticker`` at ``resolution`` was created or updated; ``snapshot`` for the history."""

    ticker: str
    resolution: str
    candle: Candle
    snapshot: bool


class BlockHeightEvent(Struct, frozen=True, gc=False):
    """The indexer processed block ``height``."""

    height: int
    time: datetime


class StreamStatusEvent(Struct, frozen=True, gc=False):
    """The WebSocket dropped (``reconnecting``), came back (``reconnected``), or lost messages
    (``gap``: the books of that connection are resynced)."""

    status: str
    detail: str


BookEvent: TypeAlias = BookSnapshot | BookDeltas | BookRepair | BookResync | Quote
MarketDataEvent: TypeAlias = (
    BookEvent
    | TradeEvent
    | OraclePriceEvent
    | FundingRateEvent
    | CandleEvent
    | BlockHeightEvent
    | StreamStatusEvent
)
EventHandler = Callable[[MarketDataEvent], None]


@dataclass(slots=True)
class DataMetrics:
    """Counters of a :class:`DataClient`."""

    messages: int = 0
    book_messages: int = 0
    snapshots: int = 0
    repairs: int = 0
    resyncs: int = 0
    quotes: int = 0
    audits: int = 0
    audit_mismatches: int = 0
    audit_resyncs: int = 0
    decode_errors: int = 0
    handler_errors: int = 0


class _MarketSource(Protocol):
    """Where the tick and step size of a market come from (an InstrumentProvider, or REST)."""

    async def increments(self, ticker: str) -> tuple[Decimal, Decimal]: ...


class _RestMarkets:
    def __init__(self, http: HttpClient) -> None:
        self._http = http

    async def increments(self, ticker: str) -> tuple[Decimal, Decimal]:
        try:
            markets = (await self._http.get_perpetual_markets(ticker)).markets
        except BadRequestError as exc:
            if not exc.concerns("ticker"):
                raise
            raise NotFoundError(
                f"market {ticker!r} not found", status=exc.status, errors=exc.errors
            ) from None
        market = markets.get(ticker)
        if market is None:
            raise NotFoundError(f"market {ticker!r} not found", status=404)
        return market.tick_size, market.step_size


class _State(enum.Enum):
    SUBSCRIBING = "subscribing"
    SYNCED = "synced"
    RESYNCING = "resyncing"


_SYNCED = _State.SYNCED


@dataclass(slots=True)
class _Book:
    ticker: str
    book: OrderBook
    state: _State
    top: tuple[int | None, int | None, int | None, int | None] = (None, None, None, None)
    mismatches: int = 0


class DataClient:
    """The market-data service: verified books and typed events.

    Args:
        http: the REST client (snapshots for audits, market parameters).
        ws: the WebSocket client (the stream).
        markets: where tick and step sizes come from; defaults to asking REST.
        batched: subscribe to books, trades and candles with ``batched: true``.
        audit_interval: seconds between audits of every synced book against the REST snapshot;
            ``None`` disables audits.
        audit_depth: levels per side compared by an audit.
        audit_tolerance: consecutive mismatching audits tolerated (REST lags the stream slightly)
            before a resync.
        owns_transports: close ``http`` and ``ws`` in :meth:`close`.
        high_water: queued events behind the consumer at which a warning is logged (no event is
            ever dropped).

    Example::

        async with DataClient.from_config(DydxConfig.local()) as data:
            await data.subscribe_book("BTC-USD")
            async for event in data:
                if isinstance(event, Quote):
                    book = data.book(event.ticker)
                    top = book.format_price(event.bid_price), book.format_price(event.ask_price)
    """

    def __init__(
        self,
        http: HttpClient,
        ws: WsClient,
        *,
        markets: _MarketSource | None = None,
        batched: bool = False,
        audit_interval: float | None = 30.0,
        audit_depth: int = 25,
        audit_tolerance: int = 2,
        owns_transports: bool = False,
        high_water: int = 100_000,
    ) -> None:
        if audit_interval is not None and audit_interval <= 0:
            raise ConfigError("DataClient: audit_interval must be > 0 or None")
        if audit_depth < 1 or audit_tolerance < 0:
            raise ConfigError("DataClient: audit_depth must be >= 1 and audit_tolerance >= 0")
        self.http = http
        self.ws = ws
        self._markets = markets or _RestMarkets(http)
        self._batched = batched
        self._audit_interval = audit_interval
        self._audit_depth = audit_depth
        self._audit_tolerance = audit_tolerance
        self._owns = owns_transports
        self._books: dict[str, _Book] = {}
        self._subscribing: dict[str, asyncio.Future[OrderBook]] = {}
        self._resync_tasks: set[asyncio.Task[None]] = set()
        # The entries whose state is SYNCED, keyed as the wire names them: the per-message test
        # "do we apply this update?" is one lookup. Kept in step with every state change.
        self._synced: dict[str | None, _Book] = {}
        self._handlers: list[EventHandler] = []
        self._queue: asyncio.Queue[MarketDataEvent | None] = asyncio.Queue()
        self._high_water = max(1, high_water)
        self._iterators = 0
        # Events are queued for iterators, and when no handler takes them (as _emit explains).
        self._queueing = True
        self._remove_ws_callback: Callable[[], None] | None = None
        self._audit_task: asyncio.Task[None] | None = None
        self._closed = False
        self.metrics = DataMetrics()
        self._dispatch: dict[type, Callable[[MarketStreamMsg], None]] = {
            OrderbookSubscribed: self._on_book_snapshot,  # type: ignore[dict-item]
            OrderbookBatch: self._on_book_batch,  # type: ignore[dict-item]
            TradesSubscribed: self._on_trades,  # type: ignore[dict-item]
            TradesUpdate: self._on_trades,  # type: ignore[dict-item]
            TradesBatch: self._on_trades,  # type: ignore[dict-item]
            MarketsUpdate: self._on_markets,  # type: ignore[dict-item]
            MarketsBatch: self._on_markets,  # type: ignore[dict-item]
            CandlesSubscribed: self._on_candles,  # type: ignore[dict-item]
            CandlesUpdate: self._on_candles,  # type: ignore[dict-item]
            CandlesBatch: self._on_candles,  # type: ignore[dict-item]
            BlockHeightSubscribed: self._on_block_height,  # type: ignore[dict-item]
            BlockHeightUpdate: self._on_block_height,  # type: ignore[dict-item]
            BlockHeightBatch: self._on_block_height,  # type: ignore[dict-item]
            StreamError: self._on_error,  # type: ignore[dict-item]
            Reconnecting: self._on_reconnecting,  # type: ignore[dict-item]
            Reconnected: self._on_reconnected,  # type: ignore[dict-item]
            MessageGap: self._on_gap,  # type: ignore[dict-item]
        }

    @classmethod
    def from_config(cls, config: DydxConfig, **kwargs: object) -> DataClient:
        """A client with its own HttpClient and WsClient built from ``config`` (closed with it)."""
        http = HttpClient.from_config(config)
        ws = WsClient.from_config(config)
        return cls(http, ws, owns_transports=True, **kwargs)  # type: ignore[arg-type]

    # -- lifecycle ---------------------------------------------------------------------------------

    async def __aenter__(self) -> DataClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Connect the WebSocket and start the audit loop. Idempotent."""
        if self._closed:
            raise ConfigError("DataClient is closed")
        if self._remove_ws_callback is None:
            self._remove_ws_callback = self.ws.add_callback(self.feed)
        try:
            await self.ws.connect()
        except BaseException:
            # ``async with`` never reaches __aexit__ when start fails: release what we own now.
            await self.close()
            raise
        if self._audit_interval is not None and self._audit_task is None:
            self._audit_task = asyncio.create_task(self._audit_loop(), name="dydx-book-audit")

    async def close(self) -> None:
        """Stop auditing, detach from the WebSocket, end iteration; close owned transports."""
        if self._closed:
            return
        self._closed = True
        pending: list[asyncio.Future[OrderBook] | asyncio.Task[None]] = [
            *self._subscribing.values(),
            *self._resync_tasks,
        ]
        for future in pending:
            future.cancel()
        if self._audit_task is not None:
            self._audit_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._audit_task
        if self._remove_ws_callback is not None:
            self._remove_ws_callback()
        if self._owns:
            await self.ws.close()
            await self.http.close()
        self._queue.put_nowait(None)

    # -- subscriptions -----------------------------------------------------------------------------

    async def subscribe_book(self, ticker: str) -> OrderBook:
        """Maintain the book of ``ticker``; returns it (empty until the snapshot arrives).

        Concurrent calls for one ticker share one subscription and return the same book; a
        caller cancelled while it waits does not cancel the subscription for the others.

        Raises:
            NotFoundError: the venue lists no such market.
            SubscriptionError: the server refused the subscription.
            TransportError: the market lookup or the WebSocket failed.
        """
        entry = self._books.get(ticker)
        if entry is not None:
            return entry.book
        pending = self._subscribing.get(ticker)
        if pending is None:
            pending = asyncio.ensure_future(self._subscribe_book(ticker))
            self._subscribing[ticker] = pending
            pending.add_done_callback(partial(self._subscribed_book, ticker))
        return await asyncio.shield(pending)

    async def _subscribe_book(self, ticker: str) -> OrderBook:
        tick, step = await self._markets.increments(ticker)
        entry = self._books.get(ticker)
        if entry is not None:  # track_book() made one meanwhile: subscribe it
            book = entry.book
        else:
            book = OrderBook(tick, step, market=ticker)
            entry = self._books[ticker] = _Book(ticker, book, _State.SUBSCRIBING)
        try:
            await self.ws.subscribe(Channel.ORDERBOOK, ticker, batched=self._batched)
        except BaseException:
            if self._books.get(ticker) is entry:
                del self._books[ticker]
                self._synced.pop(ticker, None)
            raise
        return book

    def _subscribed_book(self, ticker: str, task: asyncio.Future[OrderBook]) -> None:
        self._subscribing.pop(ticker, None)
        if not task.cancelled():
            task.exception()  # retrieved here too: every waiter may have been cancelled

    async def subscribe_trades(self, ticker: str) -> None:
        await self.ws.subscribe(Channel.TRADES, ticker, batched=self._batched)

    async def subscribe_markets(self) -> None:
        """Oracle prices and funding-rate changes of every market."""
        await self.ws.subscribe(Channel.MARKETS, batched=self._batched)

    async def subscribe_candles(self, ticker: str, resolution: str) -> None:
        await self.ws.subscribe(Channel.CANDLES, f"{ticker}/{resolution}", batched=self._batched)

    async def subscribe_block_height(self) -> None:
        await self.ws.subscribe(Channel.BLOCK_HEIGHT)

    def track_book(self, ticker: str, tick_size: Decimal | str, step_size: Decimal | str) -> OrderBook:
        """Keep a book for ``ticker`` without subscribing (for :meth:`feed`-driven replays).

        Returns:
            The (empty) book; the next ``v4_orderbook`` snapshot fed for ``ticker`` builds it.
        """
        entry = self._books.get(ticker)
        if entry is None:
            entry = self._books[ticker] = _Book(
                ticker, OrderBook(tick_size, step_size, market=ticker), _State.SUBSCRIBING
            )
        return entry.book

    def feed(self, msg: MarketStreamMsg) -> None:
        """Process one decoded stream message as if it came from the WebSocket.

        The live client calls this for every message; call it yourself to replay a recorded stream
        (decode each frame with :class:`~nautilus_dydx.core.stream.StreamProtocol`) through the same
        verified book pipeline, e.g. in a backtest or a benchmark.
        """
        metrics = self.metrics
        metrics.messages += 1
        if type(msg) is OrderbookUpdate:
            # The bulk of the traffic, inlined: one book call, one event, and the top of book only
            # looked at when a write reached it.
            ticker = msg.id
            entry = self._synced.get(ticker)
            if entry is None:
                return  # not tracked, before the snapshot, or during a resync: the snapshot will carry it
            metrics.book_messages += 1
            offset = msg.message_id
            contents = msg.contents
            book = entry.book
            try:
                touched = book.apply_sides(contents, offset)
            except DydxError as exc:
                self._bad_update(entry.ticker, exc)
                return
            event = BookDeltas(entry.ticker, contents, offset, msg.connection_id, book)
            for handler in self._handlers:
                try:
                    handler(event)
                except Exception:
                    self._handler_failed(handler)
            if self._queueing:
                self._enqueue(event)
            if touched:
                self._top_moved(entry.ticker, entry, offset)
            return
        on_message = self._dispatch.get(type(msg))
        if on_message is not None:
            on_message(msg)

    def book(self, ticker: str) -> OrderBook:
        """The local book of a subscribed market.

        Raises:
            ConfigError: the market's book is not subscribed.
        """
        entry = self._books.get(ticker)
        if entry is None:
            raise ConfigError(f"no book subscribed for {ticker!r}; call subscribe_book first")
        return entry.book

    def is_synced(self, ticker: str) -> bool:
        """Whether the book of ``ticker`` is built and trusted (not awaiting a snapshot)."""
        entry = self._books.get(ticker)
        return entry is not None and entry.state is _State.SYNCED

    async def resync(self, ticker: str, reason: str = "requested") -> None:
        """Announce a resync and rebuild the book of ``ticker`` from a fresh subscription snapshot."""
        entry = self._books.get(ticker)
        if entry is None:
            raise ConfigError(f"no book subscribed for {ticker!r}")
        self._begin_resync(ticker, entry, reason)
        sub = Subscription.orderbook(ticker)
        await self.ws.unsubscribe(sub.channel, sub.id)
        await self.ws.subscribe(sub.channel, sub.id, batched=self._batched)

    # -- delivery ----------------------------------------------------------------------------------

    def add_handler(self, handler: EventHandler) -> Callable[[], None]:
        """Call ``handler`` with every event, in order, on the event loop; returns a remover."""
        self._handlers.append(handler)
        self._update_queueing()

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._handlers.remove(handler)
            self._update_queueing()

        return remove

    def _update_queueing(self) -> None:
        self._queueing = bool(self._iterators or not self._handlers)

    def __aiter__(self) -> AsyncIterator[MarketDataEvent]:
        if self._iterators:
            # Two loops would split the events between them; more consumers use add_handler().
            raise ConfigError("DataClient: one `async for` at a time; use add_handler() for more consumers")
        self._iterators += 1
        self._update_queueing()
        return QueueIterator(self._queue, None, lambda: self._closed, self._release_iterator)

    def _release_iterator(self) -> None:
        self._iterators -= 1
        self._update_queueing()

    def _emit(self, event: MarketDataEvent) -> None:
        # feed() inlines this for BookDeltas: keep the two in step.
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                self._handler_failed(handler)
        if self._queueing:
            self._enqueue(event)

    def _handler_failed(self, handler: EventHandler) -> None:
        self.metrics.handler_errors += 1
        _log.exception("DataClient handler %r failed", handler)

    def _enqueue(self, event: MarketDataEvent) -> None:
        # Unbounded on purpose: an event is never dropped. A consumer that falls far behind is
        # reported (once per crossing of the high-water mark) instead of silently losing data.
        self._queue.put_nowait(event)
        size = self._queue.qsize()
        if size >= self._high_water and size % self._high_water == 0:
            _log.warning("DataClient consumer is %d events behind", size)

    # -- stream handling ---------------------------------------------------------------------------

    def _on_book_snapshot(self, msg: OrderbookSubscribed) -> None:
        ticker = msg.id or ""
        entry = self._books.get(ticker)
        if entry is None:
            return
        self.metrics.book_messages += 1
        book = entry.book
        reason = "subscribed" if entry.state is _State.SUBSCRIBING else "resync"
        contents = msg.contents
        try:
            repairs = book.apply_snapshot(contents.bids, contents.asks, msg.message_id)
        except DydxError as exc:
            self.metrics.decode_errors += 1
            _log.error("bad %s snapshot (%s); resubscribing", ticker, exc)
            self._schedule_resync(ticker, f"bad snapshot: {exc}")
            return
        entry.state = _State.SYNCED
        self._synced[ticker] = entry
        entry.mismatches = 0
        self.metrics.snapshots += 1
        bids, asks = book.top(len(book))
        self._emit(BookSnapshot(ticker, bids, asks, msg.message_id, reason, msg.connection_id))
        if repairs:
            self.metrics.repairs += 1
            self._emit(BookRepair(ticker, repairs, msg.message_id))
        self._quote(ticker, entry, msg.message_id)

    def _on_book_batch(self, msg: OrderbookBatch) -> None:
        # channel_data (OrderbookUpdate) takes the inlined copy of this in feed().
        entry = self._synced.get(msg.id)
        if entry is None:
            return  # not tracked, before the snapshot, or during a resync: the snapshot will carry it
        ticker = entry.ticker
        self.metrics.book_messages += 1
        offset = msg.message_id
        book = entry.book
        apply_sides = book.apply_sides
        touched = False
        try:
            for contents in msg.contents:
                if apply_sides(contents, offset):
                    touched = True
        except DydxError as exc:
            self._bad_update(ticker, exc)
            return
        self._emit(BookDeltas(ticker, msg.contents, offset, msg.connection_id, book))
        if touched:
            self._top_moved(ticker, entry, offset)

    def _bad_update(self, ticker: str, exc: DydxError) -> None:
        # The levels before the bad one are applied: the book is not trusted until rebuilt.
        self.metrics.decode_errors += 1
        _log.error("bad %s update (%s); resyncing", ticker, exc)
        self._schedule_resync(ticker, f"bad update: {exc}")

    def _top_moved(self, ticker: str, entry: _Book, offset: int) -> None:
        """A write of the message at ``offset`` reached the top of book: uncross, then quote.

        Writes below the top can neither cross an uncrossed book nor change its top, so this is
        all a message needs after its writes.
        """
        book = entry.book
        repairs = book.uncross()
        if repairs:
            self.metrics.repairs += 1
            self._emit(BookRepair(ticker, repairs, offset))
        self._quote(ticker, entry, offset)

    def _quote(self, ticker: str, entry: _Book, offset: int) -> None:
        top = entry.book.top_of_book()
        if top != entry.top:
            entry.top = top
            self.metrics.quotes += 1
            self._emit(Quote(ticker, top[0], top[1], top[2], top[3], offset))

    def _begin_resync(self, ticker: str, entry: _Book, reason: str) -> None:
        if entry.state is _State.RESYNCING:
            return
        entry.state = _State.RESYNCING
        self._synced.pop(ticker, None)
        entry.top = (None, None, None, None)
        self.metrics.resyncs += 1
        _log.warning("resyncing %s book: %s", ticker, reason)
        self._emit(BookResync(ticker, reason))

    def _schedule_resync(self, ticker: str, reason: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # fed without a loop (a replay): the next snapshot fed rebuilds the book
        task = loop.create_task(self._safe_resync(ticker, reason))
        # The loop holds tasks weakly: keep each until it is done.
        self._resync_tasks.add(task)
        task.add_done_callback(self._resync_tasks.discard)

    async def _safe_resync(self, ticker: str, reason: str) -> None:
        try:
            await self.resync(ticker, reason)
        except DydxError as exc:
            # A failed resubscribe is retried by the WebSocket's reconnect/replay logic.
            _log.warning("resync of %s failed: %s", ticker, exc)

    def _on_error(self, msg: StreamError) -> None:
        error = SubscriptionError(msg.message, channel=msg.channel, id=msg.id)
        if error.is_internal and msg.channel == Channel.ORDERBOOK.value and msg.id in self._books:
            # The indexer dropped the subscription; the WsClient subscribes again and the next
            # snapshot rebuilds the book.
            self._begin_resync(msg.id, self._books[msg.id], "indexer internal error")

    def _on_reconnecting(self, msg: Reconnecting) -> None:
        # Only the books on the socket that dropped lose updates, and only their subscriptions are
        # replayed (with a fresh snapshot each); the books on the other sockets stay in sync.
        for entry in self._books_of(msg.subscriptions):
            self._begin_resync(entry.ticker, entry, "reconnect")
        self._emit(StreamStatusEvent("reconnecting", msg.reason))

    def _on_gap(self, msg: MessageGap) -> None:
        # Messages were lost: any book of the connection may have missed an absolute update, and
        # nothing but a fresh snapshot can tell. Rebuild each one the gap may have touched.
        detail = f"ids {msg.expected}..{msg.received - 1} lost on {msg.connection_id}"
        for entry in self._books_of(msg.subscriptions):
            if entry.state is not _State.RESYNCING:
                self._begin_resync(entry.ticker, entry, f"message gap: {detail}")
                self._schedule_resync(entry.ticker, "message gap")
        self._emit(StreamStatusEvent("gap", detail))

    def _books_of(self, subscriptions: tuple[tuple[Channel, str | None], ...]) -> list[_Book]:
        """The tracked books among ``(channel, id)`` subscriptions."""
        books = (self._books.get(id) for channel, id in subscriptions if channel is Channel.ORDERBOOK and id)
        return [entry for entry in books if entry is not None]

    def _on_reconnected(self, msg: Reconnected) -> None:
        self._emit(StreamStatusEvent("reconnected", msg.connection_id))

    def _on_trades(self, msg: TradesSubscribed | TradesUpdate | TradesBatch) -> None:
        ticker = msg.id or ""
        if isinstance(msg, TradesSubscribed):
            # The snapshot lists newest first; events go oldest first.
            self._emit(TradeEvent(ticker, list(reversed(msg.contents.trades)), True))
        elif isinstance(msg, TradesUpdate):
            self._emit(TradeEvent(ticker, msg.contents.trades, False))
        else:
            for contents in msg.contents:
                self._emit(TradeEvent(ticker, contents.trades, False))

    def _on_markets(self, msg: MarketsUpdate | MarketsBatch) -> None:
        batch: list[MarketsUpdateContents] = msg.contents if isinstance(msg, MarketsBatch) else [msg.contents]
        for contents in batch:
            for ticker, oracle in (contents.oracle_prices or {}).items():
                self._emit(
                    OraclePriceEvent(
                        ticker, oracle.oracle_price, oracle.effective_at, oracle.effective_at_height
                    )
                )
            for ticker, trading in (contents.trading or {}).items():
                if trading.next_funding_rate is not None:
                    self._emit(FundingRateEvent(ticker, trading.next_funding_rate))

    def _on_candles(self, msg: CandlesSubscribed | CandlesUpdate | CandlesBatch) -> None:
        ticker, _, resolution = (msg.id or "").partition("/")
        if isinstance(msg, CandlesSubscribed):
            for candle in reversed(msg.contents.candles):
                self._emit(CandleEvent(ticker, resolution, candle, True))
        elif isinstance(msg, CandlesUpdate):
            self._emit(CandleEvent(ticker, resolution, msg.contents, False))
        else:
            for candle in msg.contents:
                self._emit(CandleEvent(ticker, resolution, candle, False))

    def _on_block_height(self, msg: BlockHeightSubscribed | BlockHeightUpdate | BlockHeightBatch) -> None:
        if isinstance(msg, BlockHeightSubscribed):
            self._emit(BlockHeightEvent(msg.contents.height, msg.contents.time))
        elif isinstance(msg, BlockHeightUpdate):
            self._emit(BlockHeightEvent(msg.contents.block_height, msg.contents.time))
        else:
            for contents in msg.contents:
                self._emit(BlockHeightEvent(contents.block_height, contents.time))

    # -- audit -------------------------------------------------------------------------------------

    async def audit(self, ticker: str) -> bool:
        """Compare the local book of ``ticker`` with the REST snapshot; returns whether they agree.

        A mismatch is tolerated ``audit_tolerance`` times in a row (REST reads a replica and lags the
        stream); one more triggers a resync, counted in ``metrics.audit_resyncs``.
        """
        entry = self._books.get(ticker)
        if entry is None or entry.state is not _State.SYNCED:
            return True
        rest = await self.http.get_orderbook(ticker)
        if not self.is_synced(ticker):
            return True  # a resync started while we waited
        self.metrics.audits += 1
        reference = OrderBook(
            price_decimals=entry.book.price_decimals, size_decimals=entry.book.size_decimals
        )
        reference.apply_snapshot(
            [(format(level.price, "f"), format(level.size, "f")) for level in rest.bids],
            [(format(level.price, "f"), format(level.size, "f")) for level in rest.asks],
            0,
        )
        if reference.checksum(self._audit_depth) == entry.book.checksum(self._audit_depth):
            entry.mismatches = 0
            return True
        self.metrics.audit_mismatches += 1
        entry.mismatches += 1
        if entry.mismatches > self._audit_tolerance:
            self.metrics.audit_resyncs += 1
            await self.resync(ticker, f"audit: {entry.mismatches} consecutive mismatches with REST")
        return False

    async def _audit_loop(self) -> None:
        assert self._audit_interval is not None
        while True:
            await asyncio.sleep(self._audit_interval)
            for ticker in list(self._books):
                try:
                    await self.audit(ticker)
                except DydxError as exc:
                    _log.warning("audit of %s failed: %s", ticker, exc)
