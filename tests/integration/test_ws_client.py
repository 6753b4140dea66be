"""WsClient over real sockets against the emulator."""

from __future__ import annotations

import asyncio
import socket

import pytest
from _emulator import control, until

from nautilus_dydx.core.errors import ConfigError, ConnectError, SubscriptionError, TransportTimeout
from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.schemas.stream import (
    Channel,
    Connected,
    MarketStreamMsg,
    OrderbookSubscribed,
    OrderbookUpdate,
    Reconnected,
    Reconnecting,
    StreamError,
)
from nautilus_dydx.transport.ws import WsClient


def snapshots(events: list[MarketStreamMsg]) -> int:
    """How many order-book snapshots are among ``events``."""
    return sum(isinstance(e, OrderbookSubscribed) for e in events)


async def record_book(ws: WsClient, ticker: str) -> list[MarketStreamMsg]:
    """Record every message ``ws`` delivers, subscribe to ``ticker``'s book and wait for its snapshot."""
    events: list[MarketStreamMsg] = []
    ws.add_callback(events.append)
    await ws.subscribe(Channel.ORDERBOOK, ticker)
    await until(lambda: snapshots(events) >= 1)
    return events


@pytest.fixture
async def emu():  # type: ignore[no-untyped-def]
    async with Emulator(port=0, block_time=0.05, seed=7, rate_limit=None) as emulator:
        yield emulator


async def test_snapshot_then_updates_in_order(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
        received: list[MarketStreamMsg] = []
        async for msg in ws:
            received.append(msg)
            if len(received) >= 20:
                break
    assert isinstance(received[0], Connected)
    assert isinstance(received[1], OrderbookSubscribed)
    updates = [m for m in received if isinstance(m, OrderbookUpdate)]
    assert updates
    ids = [m.message_id for m in received[1:] if isinstance(m, OrderbookSubscribed | OrderbookUpdate)]
    assert ids == sorted(ids)


async def test_tcp_nodelay_is_on(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        conn = ws._connections[0]
        assert conn.ws is not None
        sock = conn.ws.get_extra_info("socket")
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0


async def test_reconnect_replays_subscriptions_after_drop(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        events = await record_book(ws, "BTC-USD")
        await control(emu, "POST", "/emulator/faults/ws/drop", {})
        await until(lambda: snapshots(events) >= 2)
        assert ws.stats.reconnects == 1
    kinds = [type(e) for e in events]
    assert Reconnecting in kinds
    assert Reconnected in kinds
    # The replayed snapshot comes after the reconnect announcement.
    assert kinds.index(Reconnecting) < len(kinds) - 1 - kinds[::-1].index(OrderbookSubscribed)
    # The announcement names the socket and what it carried (what a consumer must rebuild).
    (announced,) = [e for e in events if isinstance(e, Reconnecting)]
    assert announced.socket == 0
    assert announced.subscriptions == ((Channel.ORDERBOOK, "BTC-USD"),)
    (back,) = [e for e in events if isinstance(e, Reconnected)]
    assert back.socket == 0


async def test_a_reconnect_names_only_the_subscriptions_of_its_socket(emu: Emulator) -> None:
    async with WsClient(emu.ws_url, channel_limits={Channel.ORDERBOOK: 1}) as ws:
        events = await record_book(ws, "BTC-USD")
        await ws.subscribe(Channel.ORDERBOOK, "ETH-USD")
        await until(lambda: snapshots(events) >= 2)
        connections = await control(emu, "GET", "/emulator/ws/connections")
        (eth_socket,) = [
            c["connection_id"] for c in connections if ["v4_orderbook", "ETH-USD"] in c["subscriptions"]
        ]
        await control(emu, "POST", "/emulator/faults/ws/drop", {"connection_id": eth_socket})
        await until(lambda: snapshots(events) >= 3)
    (announced,) = [e for e in events if isinstance(e, Reconnecting)]
    assert announced.socket == 1
    assert announced.subscriptions == ((Channel.ORDERBOOK, "ETH-USD"),)
    replayed = [e.id for e in events[events.index(announced) :] if isinstance(e, OrderbookSubscribed)]
    assert replayed == ["ETH-USD"]


async def test_watchdog_reconnects_a_stalled_socket(emu: Emulator) -> None:
    async with WsClient(emu.ws_url, watchdog_timeout=0.4) as ws:
        events = await record_book(ws, "ETH-USD")
        await control(emu, "POST", "/emulator/faults/ws/stall", {"seconds": 3})
        await until(lambda: ws.stats.watchdog_trips >= 1)
        await until(lambda: snapshots(events) >= 2)


async def test_internal_error_resubscribes_on_the_same_socket(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        events = await record_book(ws, "BTC-USD")
        await control(
            emu, "POST", "/emulator/faults/ws/internal-error", {"channel": "v4_orderbook", "id": "BTC-USD"}
        )
        await until(lambda: snapshots(events) >= 2)
        assert ws.stats.resubscribes == 1
        assert ws.stats.reconnects == 0


async def test_rapid_resubscribe_keeps_to_the_server_rule(emu: Emulator) -> None:
    """Five subscribe attempts in a row would get the socket closed (1008) without the throttle."""
    events: list[MarketStreamMsg] = []
    async with WsClient(emu.ws_url) as ws:
        ws.add_callback(events.append)
        for _ in range(4):
            await ws.subscribe(Channel.TRADES, "BTC-USD")
            await ws.unsubscribe(Channel.TRADES, "BTC-USD")
        await ws.subscribe(Channel.TRADES, "BTC-USD")
        await asyncio.sleep(0.3)
        assert ws.stats.reconnects == 0
        assert not any(isinstance(e, Reconnecting) for e in events)


async def test_subscriptions_are_spread_over_sockets(emu: Emulator) -> None:
    events: list[MarketStreamMsg] = []
    async with WsClient(emu.ws_url, channel_limits={Channel.ORDERBOOK: 2}) as ws:
        ws.add_callback(events.append)
        for ticker in ("BTC-USD", "ETH-USD", "SOL-USD"):
            await ws.subscribe(Channel.ORDERBOOK, ticker)
        await until(lambda: snapshots(events) == 3)
        assert ws.connection_count == 2
        assert {e.id for e in events if isinstance(e, OrderbookSubscribed)} == {
            "BTC-USD",
            "ETH-USD",
            "SOL-USD",
        }


async def test_double_subscribe_is_a_typed_error(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
        with pytest.raises(SubscriptionError):
            await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")


async def test_bad_subscription_and_url_are_config_errors() -> None:
    with pytest.raises(ConfigError):
        WsClient("http://127.0.0.1:1/v4/ws")
    ws = WsClient("ws://127.0.0.1:1/v4/ws")
    with pytest.raises(ConfigError):
        await ws.subscribe("v4_nope", "BTC-USD")
    await ws.close()


async def test_connection_refused_is_a_connect_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = WsClient(f"ws://127.0.0.1:{port}/v4/ws")
    with pytest.raises(ConnectError):
        await ws.connect()
    await ws.close()


async def test_failing_callback_is_counted_not_raised(emu: Emulator) -> None:
    def boom(msg: MarketStreamMsg) -> None:
        raise RuntimeError("handler bug")

    async with WsClient(emu.ws_url) as ws:
        ws.add_callback(boom)
        await record_book(ws, "BTC-USD")
        assert ws.stats.callback_errors >= 1


async def test_iteration_ends_on_close(emu: Emulator) -> None:
    ws = WsClient(emu.ws_url)
    await ws.connect()
    await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")

    async def consume() -> int:
        n = 0
        async for _ in ws:
            n += 1
        return n

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    await ws.close()
    assert await asyncio.wait_for(task, 5) > 0


# -- regressions found in review -----------------------------------------------------------------


async def test_concurrent_first_subscribes_share_one_socket(emu: Emulator) -> None:
    events: list[MarketStreamMsg] = []
    ws = WsClient(emu.ws_url)
    ws.add_callback(events.append)
    await asyncio.gather(
        ws.subscribe(Channel.ORDERBOOK, "BTC-USD"), ws.subscribe(Channel.ORDERBOOK, "ETH-USD")
    )
    await until(lambda: snapshots(events) == 2)
    await asyncio.sleep(0.2)
    assert sum(isinstance(e, Connected) for e in events) == 1
    assert snapshots(events) == 2
    assert ws.connection_count == 1
    await ws.close()
    assert ws.connection_count == 0


async def test_failed_first_connect_leaves_nothing_half_open() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ws = WsClient(f"ws://127.0.0.1:{port}/v4/ws")
    for _ in range(2):  # the second attempt must fail too, not pretend to be connected
        with pytest.raises(ConnectError):
            await ws.connect()
    assert ws._session is None
    await ws.close()


async def test_connect_timeout_covers_the_handshake() -> None:
    async def never_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(30)

    server = await asyncio.start_server(never_answer, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        ws = WsClient(f"ws://127.0.0.1:{port}/v4/ws", connect_timeout=0.3)
        with pytest.raises(TransportTimeout):
            await ws.connect()
        await ws.close()
    finally:
        server.close()


async def test_an_undecodable_frame_heals_its_subscription_without_dropping_the_socket() -> None:
    from aiohttp import web

    state = {"connections": 0, "subscribes": 0}

    async def handler(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        state["connections"] += 1
        await sock.send_str('{"type":"connected","connection_id":"c1","message_id":0}')
        message_id = 0
        async for msg in sock:
            body = msg.json()
            if body["type"] != "subscribe":
                continue
            state["subscribes"] += 1
            message_id += 1
            await sock.send_str(
                '{"type":"subscribed","connection_id":"c1","message_id":' + str(message_id) + ","
                '"channel":"v4_orderbook","id":"BTC-USD","contents":{"bids":[],"asks":[]}}'
            )
            if state["subscribes"] == 1:
                message_id += 1
                # A frame of the subscription that our schema refuses (a level with three elements).
                await sock.send_str(
                    '{"type":"channel_data","connection_id":"c1","message_id":' + str(message_id) + ","
                    '"channel":"v4_orderbook","id":"BTC-USD","version":"1.0.0",'
                    '"contents":{"bids":[["1","2","3"]]}}'
                )
        return sock

    app = web.Application()
    app.router.add_get("/v4/ws", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    events: list[MarketStreamMsg] = []
    try:
        async with WsClient(f"ws://127.0.0.1:{port}/v4/ws") as ws:
            ws.add_callback(events.append)
            await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
            await until(lambda: state["subscribes"] == 2)
            await until(lambda: snapshots(events) == 2)
            assert ws.stats.decode_errors == 1
            assert ws.stats.reconnects == 0
            errors = [e for e in events if isinstance(e, StreamError)]
            assert len(errors) == 1
            assert errors[0].message.startswith("Internal error")
            assert errors[0].id == "BTC-USD"
        assert state["connections"] == 1
    finally:
        await runner.cleanup()


async def test_channel_limits_can_only_lower_the_servers() -> None:
    with pytest.raises(ConfigError):
        WsClient("ws://127.0.0.1:1/v4/ws", channel_limits={Channel.CANDLES: 33})


async def test_a_slow_consumer_is_not_taken_for_a_dead_socket(emu: Emulator) -> None:
    async with WsClient(emu.ws_url, watchdog_timeout=0.3, queue_size=5) as ws:
        await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
        iterator = aiter(ws)
        await anext(iterator)
        await asyncio.sleep(1.5)  # the queue fills and the reader waits for us
        for _ in range(20):
            await anext(iterator)
        assert ws.stats.watchdog_trips == 0
        assert ws.stats.reconnects == 0


async def test_a_second_concurrent_iterator_is_refused(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
        first = aiter(ws)
        await anext(first)
        with pytest.raises(ConfigError):
            await anext(aiter(ws))


async def test_a_new_loop_may_start_right_after_a_break(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
        seen: list[MarketStreamMsg] = []
        for _ in range(3):
            async for msg in ws:
                seen.append(msg)
                break
    assert [type(m) for m in seen[:2]] == [Connected, OrderbookSubscribed]
    assert len(seen) == 3


async def test_a_closed_client_refuses_subscribes_and_connects(emu: Emulator) -> None:
    ws = WsClient(emu.ws_url)
    await ws.subscribe(Channel.ORDERBOOK, "BTC-USD")
    await ws.close()
    with pytest.raises(ConfigError, match="closed"):
        await ws.subscribe(Channel.TRADES, "BTC-USD")
    with pytest.raises(ConfigError, match="closed"):
        await ws.connect()


@pytest.mark.parametrize(
    "url", ["ws://127.0.0.1:99999/v4/ws", "ws://", "ws://exa mple.com/v4/ws", "ws://[::1/v4/ws"]
)
def test_a_malformed_url_is_refused_by_the_constructor(url: str) -> None:
    # These used to construct fine and fail at connect() with a (retryable) WebSocketError.
    with pytest.raises(ConfigError):
        WsClient(url)


async def test_a_subscription_the_server_refuses_is_not_kept(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        events = await record_book(ws, "BTC-USD")
        await ws.subscribe(Channel.TRADES, "NOPE-USD")
        await until(lambda: any(isinstance(e, StreamError) and "NOPE-USD" in e.message for e in events))
        assert [str(s) for s in ws.subscriptions] == ["v4_orderbook-BTC-USD"]
        # A corrected subscribe is not blocked by the refused one, and a reconnect replays only
        # what the server accepted.
        await ws.subscribe(Channel.TRADES, "ETH-USD")
        await control(emu, "POST", "/emulator/faults/ws/drop", {})
        await until(lambda: snapshots(events) >= 2)
        held: list[list[str]] = []
        for _ in range(500):  # until the replay is through (a hang guard, not a timing)
            held = [
                s for c in await control(emu, "GET", "/emulator/ws/connections") for s in c["subscriptions"]
            ]
            if ["v4_trades", "ETH-USD"] in held:
                break
            await asyncio.sleep(0.02)
    assert sorted(held) == [["v4_orderbook", "BTC-USD"], ["v4_trades", "ETH-USD"]]


async def test_an_unsubscribe_while_a_replay_waits_on_the_rate_rule_wins(emu: Emulator) -> None:
    async with WsClient(emu.ws_url) as ws:
        events = await record_book(ws, "BTC-USD")
        # Two attempts in this second already (the subscribe, then this internal-error resubscribe):
        # a third one, from the replay after the drop, has to wait for the window.
        await control(
            emu, "POST", "/emulator/faults/ws/internal-error", {"channel": "v4_orderbook", "id": "BTC-USD"}
        )
        await until(lambda: snapshots(events) >= 2)
        await control(emu, "POST", "/emulator/faults/ws/drop", {})
        await until(lambda: any(isinstance(e, Reconnected) for e in events))
        await ws.unsubscribe(Channel.ORDERBOOK, "BTC-USD")
        await asyncio.sleep(1.2)  # past the window: a planned replay would have gone out by now
        connections = await control(emu, "GET", "/emulator/ws/connections")
    assert ws.subscriptions == []
    assert all(c["subscriptions"] == [] for c in connections)
