"""Indexer WebSocket of the emulator over real sockets: messages, message_id rules, limits, heartbeat."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.events import OrderKey

ALICE = "dydx1alice000000000000000000000000000000000"
BOB = "dydx1bob00000000000000000000000000000000000"


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(
        block_time=3600, synthetic=False, markets=["BTC-USD", "ETH-USD"], batch_interval=0.05
    ) as e:
        yield e


async def recv(ws: aiohttp.ClientWebSocketResponse, wait: float = 5.0) -> dict[str, Any]:
    msg = await ws.receive(timeout=wait)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def connect(
    http: aiohttp.ClientSession, emu: Emulator, **kwargs: Any
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(emu.ws_url, **kwargs)
    hello = await recv(ws)
    assert list(hello) == ["type", "connection_id", "message_id"]
    assert hello["type"] == "connected"
    assert hello["message_id"] == 0
    return ws


async def fund(http: aiohttp.ClientSession, emu: Emulator, address: str) -> None:
    async with http.post(
        emu.indexer_url + "/faucet/tokens", json={"address": address, "subaccountNumber": 0, "amount": 10000}
    ) as resp:
        assert resp.status == 202
    emu.produce_block()


def price(emu: Emulator, offset: int) -> int:
    return (emu.engine.oracle_price(0) // 100_000 + offset) * 100_000


async def test_subscribe_orderbook_message_ids(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    ws = await connect(http, emu)
    await ws.send_json({"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD"})
    sub = await recv(ws)
    assert list(sub) == ["type", "connection_id", "message_id", "channel", "id", "contents"]
    assert sub["message_id"] == 1
    assert sub["contents"] == {"bids": [], "asks": []}
    h = emu.engine.height
    emu.engine.place_order(order_snapshot(ALICE, 1, "BUY", 1_000_000, price(emu, -5), gtb=h + 10))
    emu.engine.place_order(order_snapshot(ALICE, 2, "BUY", 1_000_000, price(emu, -5), gtb=h + 10))
    first = await recv(ws)
    second = await recv(ws)
    assert first["type"] == "channel_data"
    assert list(first) == ["type", "connection_id", "message_id", "id", "channel", "version", "contents"]
    assert first["version"] == "1.0.0"
    assert (first["message_id"], second["message_id"]) == (2, 3)
    level = str(emu.engine.oracle_price(0) // 100_000 - 5)
    assert first["contents"] == {"bids": [[level, "0.0001"]]}
    assert second["contents"] == {"bids": [[level, "0.0002"]]}  # absolute size, not a delta
    emu.engine.cancel_order(OrderKey(ALICE, 0, 1, 0, 0), good_til_block=h + 10)
    third = await recv(ws)
    assert third["contents"] == {"bids": [[level, "0.0001"]]}
    await ws.send_str("not json")
    err = await recv(ws)
    assert err == {
        "type": "error",
        "message": "Invalid message: could not parse",
        "connection_id": sub["connection_id"],
        "message_id": 4,  # errors reuse the current value
    }
    await ws.send_json({"type": "unsubscribe", "channel": "v4_orderbook", "id": "BTC-USD"})
    ack = await recv(ws)
    assert ack == {
        "type": "unsubscribed",
        "connection_id": sub["connection_id"],
        "message_id": 5,
        "channel": "v4_orderbook",
        "id": "BTC-USD",
    }
    await ws.close()


async def test_markets_and_block_height_quirks(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    await ws.send_json({"type": "subscribe", "channel": "v4_markets"})
    markets = await recv(ws)
    assert "id" not in markets
    assert set(markets["contents"]["markets"]) == {"BTC-USD", "ETH-USD"}
    await ws.send_json({"type": "subscribe", "channel": "v4_block_height"})
    height = await recv(ws)
    assert height["id"] == "v4_block_height"
    assert set(height["contents"]) == {"height", "time"}
    emu.produce_block()
    seen: dict[str, dict[str, Any]] = {}
    market_keys: set[str] = set()
    while "v4_block_height" not in seen:
        msg = await recv(ws)
        seen[msg["channel"]] = msg
        if msg["channel"] == "v4_markets":
            assert "id" not in msg
            market_keys |= set(msg["contents"])
    assert set(seen["v4_block_height"]["contents"]) == {"blockHeight", "time"}
    assert seen["v4_block_height"]["contents"]["blockHeight"] == str(emu.engine.height)
    assert "oraclePrices" in market_keys
    await ws.send_json({"type": "subscribe", "channel": "v4_block_height"})
    err = await recv(ws)
    # The limit (1) is checked before "already subscribed", and its error names no subscription.
    assert err["message"] == "Per-connection subscription limit reached for v4_block_height (limit=1)."
    assert "channel" not in err
    await ws.close()


async def test_validation_errors(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    cases = [
        ({"type": "subscribe"}, "Invalid subscribe message: channel is required"),
        ({"type": "subscribe", "channel": "v4_nope"}, "Invalid channel: v4_nope"),
        ({"type": "subscribe", "channel": "v4_trades"}, "Invalid id: undefined"),
        (
            {"type": "subscribe", "channel": "v4_trades", "id": "NOPE-USD"},
            "Invalid subscription id for channel: (v4_trades-NOPE-USD)",
        ),
        (
            {"type": "subscribe", "channel": "v4_candles", "id": "BTC-USD/2MINS"},
            "Invalid subscription id for channel: (v4_candles-BTC-USD/2MINS)",
        ),
        (
            {"type": "subscribe", "channel": "v4_parent_subaccounts", "id": f"{ALICE}/128"},
            f"Invalid subscription id for channel: (v4_parent_subaccounts-{ALICE}/128)",
        ),
    ]
    for request, text in cases:
        await ws.send_json(request)
        assert (await recv(ws))["message"] == text
    await ws.send_json({"type": "ping"})  # ignored: nothing comes back
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{BOB}/0"})
    snapshot = await recv(ws)
    assert snapshot["type"] == "subscribed"  # the ping produced no message before it
    assert snapshot["contents"] == {}  # no such subaccount yet
    await ws.close()


async def test_invalid_message_rate_closes_1008(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    await ws.send_json({"no": "type"})
    assert (await recv(ws))["message"] == "Invalid message: type is required"
    await ws.send_json({"type": "dance"})
    assert (await recv(ws))["message"] == "Invalid message type: dance"
    await ws.send_str("{")
    assert (await recv(ws))["message"] == "Too many invalid messages. Please reconnect and try again."
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == 1008
    assert json.loads(closing.extra) == {"message": "Rate limited"}


async def test_subscribe_attempt_rate(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    for _ in range(2):
        await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"})
    assert (await recv(ws))["type"] == "subscribed"
    assert "already subscribed" in (await recv(ws))["message"]
    await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"})
    err = await recv(ws)
    assert err["message"] == (
        "Too many subscribe attempts for channel v4_trades-BTC-USD. Please  reconnect and try again."
    )
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == 1008


async def test_per_connection_limit(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    for n in range(256):
        await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ALICE}/{n}"})
    for n in range(256):
        msg = await recv(ws)
        assert msg["type"] == "subscribed"
        assert msg["message_id"] == n + 1
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ALICE}/999"})
    err = await recv(ws)
    assert err["message"] == "Per-connection subscription limit reached for v4_subaccounts (limit=256)."
    assert err["message_id"] == 257  # a refused subscribe takes its message_id too
    # The id is checked before the limit, and the limit before "already subscribed".
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ALICE}/128000"})
    err = await recv(ws)
    assert err["message"] == f"Invalid subscription id for channel: (v4_subaccounts-{ALICE}/128000)"
    assert err["message_id"] == 258
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ALICE}/0"})
    err = await recv(ws)
    assert err["message"] == "Per-connection subscription limit reached for v4_subaccounts (limit=256)."
    assert err["message_id"] == 259
    await ws.close()


async def test_batched_orderbook(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    ws = await connect(http, emu)
    await ws.send_json({"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD", "batched": True})
    assert (await recv(ws))["type"] == "subscribed"
    h = emu.engine.height
    for i in range(3):
        emu.engine.place_order(
            order_snapshot(ALICE, 10 + i, "SELL", 1_000_000, price(emu, 5 + i), gtb=h + 10)
        )
    batch = await recv(ws)
    assert batch["type"] == "channel_batch_data"
    assert batch["message_id"] == 2
    assert isinstance(batch["contents"], list)
    assert len(batch["contents"]) == 3
    assert all(list(c) == ["asks"] for c in batch["contents"])
    await ws.close()


async def test_subaccount_lifecycle_messages(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    await fund(http, emu, BOB)
    ws = await connect(http, emu)
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{BOB}/0"})
    snap = await recv(ws)
    assert set(snap["contents"]) == {"subaccount", "orders", "blockHeight"}
    assert snap["contents"]["subaccount"]["equity"] == "10000"
    h = emu.engine.height
    emu.engine.place_order(order_snapshot(ALICE, 1, "SELL", 1_000_000, price(emu, 0), gtb=h + 10))
    emu.engine.place_order(order_snapshot(BOB, 7, "BUY", 1_000_000, price(emu, 0), gtb=h + 10, tif="IOC"))
    opened = await recv(ws)
    assert opened["version"] == "3.0.0"
    (o,) = opened["contents"]["orders"]
    assert o["status"] == "BEST_EFFORT_OPENED"
    assert o["clientId"] == "7"
    emu.produce_block()
    statuses: list[str] = []
    fills: list[dict[str, Any]] = []
    positions: list[dict[str, Any]] = []
    while not fills:
        msg = await recv(ws)
        contents = msg["contents"]
        statuses += [x["status"] for x in contents.get("orders", [])]
        fills += contents.get("fills", [])
        positions += contents.get("perpetualPositions", [])
    (fill,) = fills
    assert fill["liquidity"] == "TAKER"
    assert len(fill["eventId"]) == 24
    int(fill["eventId"], 16)
    assert "FILLED" in statuses
    assert positions[0]["side"] == "LONG"
    assert msg["contents"]["blockHeight"] == str(emu.engine.height)
    await ws.close()


async def test_transfer_message_is_single_object(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws = await connect(http, emu)
    await ws.send_json({"type": "subscribe", "channel": "v4_parent_subaccounts", "id": f"{ALICE}/0"})
    assert (await recv(ws))["contents"] == {}
    await fund(http, emu, ALICE)
    transfer = None
    while transfer is None:
        msg = await recv(ws)
        assert msg["subaccountNumber"] == 0
        transfer = msg["contents"].get("transfers")
    assert isinstance(transfer, dict)
    assert transfer["type"] == "DEPOSIT"
    assert transfer["size"] == "10000"
    await ws.close()


async def test_heartbeat_timeout_closes_1011(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=3600, synthetic=False, ws_ping_interval=0.1, ws_pong_timeout=0.2) as emu:
        # autoping=False: the client never answers the server's ping frames.
        ws = await connect(http, emu, autoping=False)
        ping = await ws.receive(timeout=5)
        assert ping.type == aiohttp.WSMsgType.PING
        closing = await ws.receive(timeout=5)
        assert closing.type == aiohttp.WSMsgType.CLOSE
        assert closing.data == 1011
        assert closing.extra == "Heartbeat timeout"
        # A client that answers stays connected across several ping periods.
        ok = await connect(http, emu)
        await ok.send_json({"type": "subscribe", "channel": "v4_block_height"})
        assert (await recv(ok))["type"] == "subscribed"
        await asyncio.sleep(0.6)
        assert not ok.closed
        await ok.close()


async def test_shutdown_closes_1012(http: aiohttp.ClientSession) -> None:
    emu = Emulator(block_time=3600, synthetic=False)
    await emu.start()
    ws = await connect(http, emu)
    await emu.stop()
    closing = await ws.receive(timeout=5)
    assert closing.type == aiohttp.WSMsgType.CLOSE
    assert closing.data == 1012
    assert json.loads(closing.extra) == {"message": "Service restarting"}


async def test_non_string_fields_are_answered_and_the_socket_kept(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws = await connect(http, emu)
    cases = [
        ({"type": "subscribe", "channel": ["v4_orderbook"]}, "Invalid channel: v4_orderbook"),
        ({"type": "subscribe", "channel": {"a": 1}, "id": "x"}, "Invalid channel: [object Object]"),
        ({"type": "subscribe", "channel": 7}, "Invalid channel: 7"),
        ({"type": "subscribe", "channel": "v4_candles", "id": ["BTC-USD/1MIN"]}, "Invalid id: BTC-USD/1MIN"),
        (
            {"type": "unsubscribe", "channel": "v4_trades", "id": {"t": "BTC-USD"}},
            "Invalid id: [object Object]",
        ),
    ]
    for request, text in cases:
        await ws.send_json(request)
        assert (await recv(ws))["message"] == text
    # batched follows JavaScript truthiness; a string "false" is true.
    await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD", "batched": "false"})
    assert (await recv(ws))["type"] == "subscribed"
    conn = next(iter(emu.hub.connections.values()))
    assert conn.subs[("v4_trades", "BTC-USD")].batched
    assert not ws.closed
    await ws.close()


async def test_unexpected_handler_failure_is_answered_not_fatal(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws = await connect(http, emu)

    def boom(channel: str, sub_id: str | None) -> bool:
        raise RuntimeError("boom")

    monkeypatch.setattr(emu.hub, "valid_id", boom)
    await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"})
    err = await recv(ws)
    assert err["type"] == "error"
    monkeypatch.undo()
    await ws.send_json({"type": "subscribe", "channel": "v4_trades", "id": "BTC-USD"})
    assert (await recv(ws))["type"] == "subscribed"
    await ws.close()


async def test_subscribe_attempt_history_is_bounded_to_the_window(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    from nautilus_dydx.emulator.indexer import ws as ws_module

    clock = [1000.0]
    # The module's own clock only (the event loop keeps the real one).
    monkeypatch.setattr(ws_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    ws = await connect(http, emu)
    conn = next(iter(emu.hub.connections.values()))
    for n in range(50):
        # Valid ids: an invalid one is refused before it counts as an attempt.
        await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ALICE}/{n}"})
        assert (await recv(ws))["type"] == "subscribed"
        clock[0] += 0.3
    assert len(conn._attempts) <= 5  # only ids attempted within the last second
    await ws.close()


@pytest.mark.parametrize("error", [ConnectionResetError("reset"), RuntimeError("closing")])
async def test_writer_and_pinger_end_cleanly_when_the_peer_is_gone(
    http: aiohttp.ClientSession, error: Exception
) -> None:
    async with Emulator(block_time=3600, synthetic=False, ws_ping_interval=0.05) as emu:
        ws = await connect(http, emu)
        conn = next(iter(emu.hub.connections.values()))

        async def fail(*args: Any, **kwargs: Any) -> None:
            raise error

        conn.ws.send_str = fail  # type: ignore[method-assign]
        conn.ws.ping = fail  # type: ignore[method-assign]
        conn.send({"type": "probe"})
        for _ in range(100):
            if all(task.done() for task in conn.tasks):
                break
            await asyncio.sleep(0.01)
        assert all(task.done() for task in conn.tasks)
        assert all(task.cancelled() or task.exception() is None for task in conn.tasks)
        assert conn.id not in emu.hub.connections
        await ws.close()
