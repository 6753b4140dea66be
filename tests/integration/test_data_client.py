"""DataClient against the emulator: the book is verified message by message, also under faults."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pytest
from _emulator import control, local_config, until
from aiohttp import web

from nautilus_dydx.core.book import Side
from nautilus_dydx.core.errors import ConfigError, DydxError, NotFoundError
from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.schemas.stream import (
    Channel,
    MarketStreamMsg,
    MessageGap,
    OrderbookBatch,
    OrderbookSubscribed,
    OrderbookUpdate,
)
from nautilus_dydx.services.data import (
    BlockHeightEvent,
    BookDeltas,
    BookRepair,
    BookResync,
    BookSnapshot,
    CandleEvent,
    DataClient,
    MarketDataEvent,
    OraclePriceEvent,
    Quote,
    StreamStatusEvent,
    TradeEvent,
)
from nautilus_dydx.transport.http import HttpClient
from nautilus_dydx.transport.ws import WsClient

TICKERS = ("BTC-USD", "ETH-USD")


def _client(emu: Emulator, **kwargs: Any) -> DataClient:
    config = local_config(emu)
    http = HttpClient(config.indexer_http_url)
    ws = WsClient(config.indexer_ws_url, watchdog_timeout=0.5)
    return DataClient(http, ws, owns_transports=True, **kwargs)


class Recorder:
    """Records, after the DataClient handled each book message, the checksum of its book."""

    def __init__(self, data: DataClient) -> None:
        self.data = data
        self.checks: dict[str, list[tuple[str, int, int]]] = defaultdict(list)
        self.events: list[MarketDataEvent] = []
        data.add_handler(self.events.append)
        # Registered after the DataClient's own callback, so it sees the book after the message.
        data.ws.add_callback(self.on_message)

    def on_message(self, msg: MarketStreamMsg) -> None:
        if isinstance(msg, OrderbookSubscribed | OrderbookUpdate | OrderbookBatch):
            ticker = msg.id or ""
            if self.data.is_synced(ticker):
                self.checks[ticker].append(
                    (msg.connection_id, msg.message_id, self.data.book(ticker).checksum())
                )


async def _server_checksums(emu: Emulator, connection_id: str, ticker: str) -> dict[int, int]:
    records = await control(emu, "GET", f"/emulator/ws/{connection_id}/checksums?ticker={ticker}")
    return {r["message_id"]: r["checksum"] for r in records}


async def _assert_truth(emu: Emulator, data: DataClient, ticker: str, attempts: int = 100) -> None:
    """The client's book equals the engine's true book at a quiet moment (between two blocks)."""
    for _ in range(attempts):
        truth = await control(emu, "GET", f"/emulator/book/{ticker}?depth=25")
        await asyncio.sleep(0.01)  # let messages already sent for this state arrive
        if data.is_synced(ticker) and data.book(ticker).checksum() == truth["checksum"]:
            return
    raise AssertionError(f"{ticker}: the book never equalled the truth")


@pytest.mark.parametrize("seed", [11, 23, 37])
async def test_book_checksum_matches_emulator_under_faults(seed: int) -> None:
    loop_errors: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, ctx: loop_errors.append(ctx))
    async with Emulator(port=0, block_time=0.05, seed=seed, rate_limit=None) as emu:
        data = _client(emu, audit_interval=0.3)
        async with data:
            rec = Recorder(data)
            for ticker in TICKERS:
                await data.subscribe_book(ticker)
            await until(lambda: all(data.is_synced(t) for t in TICKERS))
            faults: list[tuple[str, dict[str, Any]]] = [
                ("/emulator/faults/ws/crossed-level", {"ticker": "BTC-USD"}),
                ("/emulator/faults/ws/internal-error", {"channel": "v4_orderbook", "id": "ETH-USD"}),
                ("/emulator/faults/rest", {"status": 500, "count": 8}),
                ("/emulator/faults/ws/drop", {}),
                ("/emulator/faults/ws/crossed-level", {"ticker": "ETH-USD"}),
                ("/emulator/faults/ws/lose", {"count": 1}),
                ("/emulator/faults/ws/stall", {"seconds": 1.5}),
                ("/emulator/faults/ws/crossed-level", {"ticker": "BTC-USD"}),
            ]
            for path, body in faults:
                await asyncio.sleep(0.4)
                seen = len(rec.events)
                await control(emu, "POST", path, body)
                if path.endswith("/lose"):  # the loss shows only when a later message arrives
                    await until(
                        lambda seen=seen: any(
                            isinstance(e, BookResync) and e.reason.startswith("message gap")
                            for e in rec.events[seen:]
                        )
                    )
                await until(lambda: all(data.is_synced(t) for t in TICKERS))
            await asyncio.sleep(0.4)

            # Every book message, on every connection, left the book equal to the emulator's record.
            compared = 0
            for ticker in TICKERS:
                by_connection: dict[str, list[tuple[int, int]]] = defaultdict(list)
                for connection_id, message_id, checksum in rec.checks[ticker]:
                    by_connection[connection_id].append((message_id, checksum))
                assert len(by_connection) >= 2, "the drop must have produced a second connection"
                for connection_id, ours in by_connection.items():
                    server = await _server_checksums(emu, connection_id, ticker)
                    mismatches = [(m, c, server.get(m)) for m, c in ours if server.get(m) != c]
                    assert not mismatches, f"{ticker} on {connection_id}: {mismatches[:5]}"
                    compared += len(ours)
            assert compared > 100

            # Every rebuild after the first one was announced by a resync event.
            for ticker in TICKERS:
                kinds = [type(e) for e in rec.events if getattr(e, "ticker", None) == ticker]
                snapshots = [i for i, k in enumerate(kinds) if k is BookSnapshot]
                assert len(snapshots) >= 2
                for index in snapshots[1:]:
                    assert BookResync in kinds[:index]
                    last_resync = max(i for i, k in enumerate(kinds[:index]) if k is BookResync)
                    assert last_resync > max((i for i in snapshots if i < index), default=-1)
            assert any(isinstance(e, BookRepair) for e in rec.events), "crossed levels must be repaired"
            assert any(isinstance(e, BookResync) and e.reason.startswith("message gap") for e in rec.events)

            # The events alone rebuild the book: a snapshot's levels, then each BookDeltas' levels
            # (converted on access) and each BookRepair's changes, in order, give every Quote.
            for ticker in TICKERS:
                sides: tuple[dict[int, int], dict[int, int]] = ({}, {})
                quotes = 0
                for e in rec.events:
                    if getattr(e, "ticker", None) != ticker:
                        continue
                    if isinstance(e, BookSnapshot):
                        sides = (dict(e.bids), dict(e.asks))
                    elif isinstance(e, BookDeltas | BookRepair):
                        writes = (
                            e.levels
                            if isinstance(e, BookDeltas)
                            else [(c.side, c.price, c.size) for c in e.changes]
                        )
                        for side, price, size in writes:
                            if size:
                                sides[side][price] = size
                            else:
                                sides[side].pop(price, None)
                    elif isinstance(e, Quote):
                        quotes += 1
                        bid = max(sides[Side.BID], default=None)
                        ask = min(sides[Side.ASK], default=None)
                        assert (e.bid_price, e.ask_price) == (bid, ask)
                        assert e.bid_size == (None if bid is None else sides[Side.BID][bid])
                        assert e.ask_size == (None if ask is None else sides[Side.ASK][ask])
                assert quotes > 10
            assert data.metrics.handler_errors == 0
            for event in rec.events:
                if isinstance(event, Quote) and event.bid_price is not None and event.ask_price is not None:
                    assert event.bid_price < event.ask_price, "a quote must never be crossed"

            # A resync ends with the book equal to the truth.
            for ticker in TICKERS:
                await data.resync(ticker, "test")
            await until(lambda: all(data.is_synced(t) for t in TICKERS))
            await asyncio.sleep(0.2)
            for ticker in TICKERS:
                await _assert_truth(emu, data, ticker)
    assert not [ctx for ctx in loop_errors if not isinstance(ctx.get("exception"), DydxError | None)]


async def test_audit_divergence_triggers_a_counted_resync() -> None:
    # Blocks are produced by hand here, so the venue's book stands still between them.
    async with Emulator(port=0, block_time=3600, seed=5, rate_limit=None) as emu:
        async with _client(emu, audit_interval=None, audit_tolerance=2) as data:
            events: list[MarketDataEvent] = []
            data.add_handler(events.append)
            book = await data.subscribe_book("BTC-USD")
            await until(lambda: data.is_synced("BTC-USD"))
            for _ in range(6):
                await control(emu, "POST", "/emulator/block")
            await until(lambda: book.best_bid() is not None and book.best_ask() is not None)
            await asyncio.sleep(0.2)
            assert await data.audit("BTC-USD")
            # Corrupt the local book behind the client's back: a level the venue never had.
            best_bid = book.best_bid()
            assert best_bid is not None
            book.apply_update(Side.BID, book.format_price(best_bid[0] - 1), "123", offset=10**9)
            assert not await data.audit("BTC-USD")
            assert not await data.audit("BTC-USD")
            assert data.metrics.audit_resyncs == 0
            assert not await data.audit("BTC-USD")
            assert data.metrics.audit_resyncs == 1
            assert any(isinstance(e, BookResync) and e.reason.startswith("audit") for e in events)
            await until(lambda: data.is_synced("BTC-USD"))
            await asyncio.sleep(0.1)
            await _assert_truth(emu, data, "BTC-USD")
            assert await data.audit("BTC-USD")


async def test_typed_events_for_trades_oracle_candles_and_height() -> None:
    async with Emulator(port=0, block_time=0.05, seed=9, rate_limit=None) as emu:
        async with _client(emu, audit_interval=None) as data:
            events: list[MarketDataEvent] = []
            data.add_handler(events.append)
            await data.subscribe_trades("BTC-USD")
            await data.subscribe_markets()
            await data.subscribe_candles("BTC-USD", "1MIN")
            await data.subscribe_block_height()
            await until(
                lambda: (
                    {TradeEvent, OraclePriceEvent, CandleEvent, BlockHeightEvent}
                    <= {type(e) for e in events if not (isinstance(e, TradeEvent) and e.snapshot)}
                )
            )
    heights = [e.height for e in events if isinstance(e, BlockHeightEvent)]
    assert heights == sorted(heights)
    live = [t for e in events if isinstance(e, TradeEvent) and not e.snapshot for t in e.trades]
    assert all(t.price > 0 and t.size > 0 for t in live)


async def test_first_book_update_arrives_soon_after_the_handshake() -> None:
    """Generous bound; the measured figure is in BENCHMARKS.md."""
    async with Emulator(port=0, block_time=0.05, seed=2, rate_limit=None) as emu:
        ws = WsClient(emu.ws_url)
        loop = asyncio.get_running_loop()
        first: list[float] = []
        ws.add_callback(
            lambda msg: (
                first.append(loop.time())
                if isinstance(msg, OrderbookSubscribed | OrderbookUpdate) and not first
                else None
            )
        )
        await ws.connect()
        handshake_done = loop.time()
        await ws.subscribe("v4_orderbook", "BTC-USD")
        await until(lambda: bool(first), limit=5)
        await ws.close()
    assert first[0] - handshake_done < 2.0


async def test_a_socket_reconnecting_resyncs_only_the_books_it_carried() -> None:
    # One book per socket (the limit is 32 on the venue; 1 here so that two books need two sockets).
    async with Emulator(port=0, block_time=0.05, seed=4, rate_limit=None) as emu:
        http = HttpClient(emu.indexer_url)
        ws = WsClient(emu.ws_url, channel_limits={Channel.ORDERBOOK: 1})
        async with DataClient(http, ws, audit_interval=None, owns_transports=True) as data:
            events: list[MarketDataEvent] = []
            data.add_handler(events.append)
            for ticker in TICKERS:
                await data.subscribe_book(ticker)
            await until(lambda: all(data.is_synced(t) for t in TICKERS))
            assert ws.connection_count == 2
            connections = await control(emu, "GET", "/emulator/ws/connections")
            (eth_socket,) = [
                c["connection_id"] for c in connections if ["v4_orderbook", "ETH-USD"] in c["subscriptions"]
            ]
            btc_unsynced: list[int] = []
            data.add_handler(lambda _e: btc_unsynced.append(1) if not data.is_synced("BTC-USD") else None)
            events.clear()
            await control(emu, "POST", "/emulator/faults/ws/drop", {"connection_id": eth_socket})
            await until(lambda: any(isinstance(e, BookResync) for e in events))
            await until(lambda: data.is_synced("ETH-USD"))
            deltas_after = len([e for e in events if isinstance(e, BookDeltas) and e.ticker == "BTC-USD"])
            await until(
                lambda: (
                    len([e for e in events if isinstance(e, BookDeltas) and e.ticker == "BTC-USD"])
                    > deltas_after
                )
            )
            await _assert_truth(emu, data, "BTC-USD")
            await _assert_truth(emu, data, "ETH-USD")
    resyncs = [e.ticker for e in events if isinstance(e, BookResync)]
    assert resyncs == ["ETH-USD"]
    assert btc_unsynced == []
    assert data.metrics.resyncs == 1


async def test_concurrent_subscribes_to_one_book_share_it() -> None:
    async with Emulator(port=0, block_time=0.05, seed=6, rate_limit=None) as emu:
        async with _client(emu, audit_interval=None) as data:
            first, second = await asyncio.gather(
                data.subscribe_book("BTC-USD"), data.subscribe_book("BTC-USD")
            )
            assert first is second is data.book("BTC-USD")
            await until(lambda: data.is_synced("BTC-USD") and len(first) > 0)
            # A caller cancelled while waiting does not take the subscription from the other.
            waiting = [asyncio.ensure_future(data.subscribe_book("ETH-USD")) for _ in range(2)]
            await asyncio.sleep(0)
            waiting[0].cancel()
            book = await waiting[1]
            assert book is data.book("ETH-USD")
            await until(lambda: data.is_synced("ETH-USD"))


async def test_subscribing_an_unknown_market_is_not_found() -> None:
    async with Emulator(port=0, block_time=0.05, seed=6, rate_limit=None) as emu:
        async with _client(emu, audit_interval=None) as data:
            for ticker in ("NOPE-USD", "btc-usd"):
                with pytest.raises(NotFoundError, match=ticker):
                    await data.subscribe_book(ticker)
                with pytest.raises(ConfigError):
                    data.book(ticker)


async def test_one_async_for_at_a_time_and_a_new_one_right_after_a_break() -> None:
    async with Emulator(port=0, block_time=0.05, seed=8, rate_limit=None) as emu:
        async with _client(emu, audit_interval=None) as data:
            await data.subscribe_book("BTC-USD")
            async for event in data:
                assert isinstance(event, BookSnapshot)
                with pytest.raises(ConfigError, match="one `async for`"):
                    async for _ in data:
                        pass
                break
            # The loop above was left with break: a new one may start at once and goes on in order.
            async for event in data:
                assert isinstance(event, Quote | BookDeltas | BookRepair)
                break
            consumer = asyncio.ensure_future(_count(data))
            await asyncio.sleep(0.05)
        # close() (leaving the block) ends the loop that is waiting.
        assert await asyncio.wait_for(consumer, 5) >= 0


async def _count(data: DataClient) -> int:
    n = 0
    async for _ in data:
        n += 1
    return n


class _LossyIndexer:
    """A WebSocket server that loses one order-book message on the first subscription.

    The emulator never loses messages; this server does exactly that once: snapshot (id 1) with a
    bid at 100, the deletion of that bid (id 2) lost in transit, then id 3. Every later subscribe
    gets a faithful snapshot of the true book and the stream goes on without loss.
    """

    def __init__(self) -> None:
        self.subscribes = 0
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def __aenter__(self) -> _LossyIndexer:
        app = web.Application()
        app.router.add_get("/v4/ws", self.handle)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"ws://127.0.0.1:{port}/v4/ws"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        ids = iter(range(10**6))
        base = {"connection_id": "c1"}
        await ws.send_json({"type": "connected", **base, "message_id": next(ids)})
        async for frame in ws:
            request_ = frame.json()
            kind, ticker = request_.get("type"), request_.get("id")
            if kind == "unsubscribe":
                await ws.send_json(
                    {
                        "type": "unsubscribed",
                        **base,
                        "message_id": next(ids),
                        "channel": "v4_orderbook",
                        "id": ticker,
                    }
                )
                continue
            if kind != "subscribe":
                continue
            self.subscribes += 1
            head = {"connection_id": "c1", "channel": "v4_orderbook", "id": ticker}
            if self.subscribes == 1:
                bids = [{"price": "100", "size": "1"}, {"price": "98", "size": "1"}]
            else:
                bids = [{"price": "99", "size": "1"}, {"price": "98", "size": "1"}]
            snapshot = {"bids": bids, "asks": [{"price": "101", "size": "1"}]}
            await ws.send_json({"type": "subscribed", **head, "message_id": next(ids), "contents": snapshot})
            if self.subscribes == 1:
                next(ids)  # {"bids": [["100", "0"]]} is lost
                await ws.send_json(
                    {
                        "type": "channel_data",
                        **head,
                        "message_id": next(ids),
                        "version": "1.0.0",
                        "contents": {"bids": [["99", "1"]]},
                    }
                )
        return ws


async def test_a_lost_message_resyncs_the_book() -> None:
    class Markets:
        async def increments(self, ticker: str) -> tuple[Decimal, Decimal]:
            return Decimal("1"), Decimal("1")

    async with _LossyIndexer() as server:
        ws = WsClient(server.url)
        stream: list[MarketStreamMsg] = []
        ws.add_callback(stream.append)
        data = DataClient(
            HttpClient("http://127.0.0.1:9"), ws, markets=Markets(), audit_interval=None, owns_transports=True
        )
        events: list[MarketDataEvent] = []
        data.add_handler(events.append)
        async with data:
            book = await data.subscribe_book("BTC-USD")
            await until(lambda: server.subscribes == 2 and data.is_synced("BTC-USD"))
            # Without the resync the book would keep the deleted bid at 100 for good.
            assert book.best_bid() == (99, 1)
            assert [p for p, _ in book.bids()] == [Decimal(99), Decimal(98)]
    (gap,) = [m for m in stream if isinstance(m, MessageGap)]
    assert (gap.expected, gap.received) == (2, 3)
    assert gap.subscriptions == ((Channel.ORDERBOOK, "BTC-USD"),)
    assert ws.stats.gaps == 1
    kinds = [type(e) for e in events]
    resync = next(e for e in events if isinstance(e, BookResync))
    assert resync.reason.startswith("message gap")
    assert kinds.index(BookResync) < len(kinds) - 1 - kinds[::-1].index(BookSnapshot)
    assert any(isinstance(e, StreamStatusEvent) and e.status == "gap" for e in events)
