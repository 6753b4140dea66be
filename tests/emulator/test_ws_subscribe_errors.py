"""How the emulated socket refuses requests, as the venue's socks server does.

Facts (protocol reference §4.3 and §4.7, read against socks in dydxprotocol/v4-chain at 84d4664,
``websocket/index.ts``, ``lib/subscription.ts``, ``lib/rate-limit.ts``):

* a subscribe that names a known channel (and a string id where the channel needs one) takes the
  next ``message_id`` on arrival; whatever the outcome, its reply carries that id, errors included.
  The checks before that (channel, id presence) and the invalid-message errors take none;
* then, in this order: the id is valid for the channel; the per-connection limit, the request
  counting alongside what is held; the attempt rate per channel and id; the snapshot; not already
  subscribed. So an invalid id or a full channel never counts as an attempt;
* only "already subscribed" and the snapshot-fetch "Internal error" name the subscription (``channel``
  and the ``id`` as the client sent it); every other error has neither field;
* the rate limits count per key in a fixed window opened by the first attempt: the third attempt
  within one second of that first one is refused;
* an unsubscribe ack echoes the request's id as it was, so none when the request had none.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.indexer import ws as ws_module
from nautilus_dydx.emulator.indexer.ws import FixedWindowLimit

TOO_MANY = "Too many subscribe attempts for channel {}. Please  reconnect and try again."


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(block_time=3600, synthetic=False, markets=["BTC-USD", "ETH-USD"]) as e:
        yield e


async def recv(ws: aiohttp.ClientWebSocketResponse) -> dict[str, Any]:
    msg = await ws.receive(timeout=5)
    assert msg.type == aiohttp.WSMsgType.TEXT, msg
    data: dict[str, Any] = json.loads(msg.data)
    return data


async def connect(http: aiohttp.ClientSession, emu: Emulator) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(emu.ws_url)
    hello = await recv(ws)
    assert hello["type"] == "connected"
    return ws, hello["connection_id"]


async def ask(ws: aiohttp.ClientWebSocketResponse, request: dict[str, Any]) -> dict[str, Any]:
    await ws.send_json(request)
    return await recv(ws)


def sub(channel: str, id: str | None = None) -> dict[str, Any]:
    request = {"type": "subscribe", "channel": channel}
    if id is not None:
        request["id"] = id
    return request


def error(cid: str, message_id: int, message: str, **echo: Any) -> dict[str, Any]:
    return {"type": "error", "message": message, "connection_id": cid, "message_id": message_id, **echo}


async def test_a_refused_subscribe_takes_a_message_id_and_names_no_subscription(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    assert (await ask(ws, sub("v4_block_height")))["message_id"] == 1
    # The limit (1) is checked before "already subscribed".
    limit = await ask(ws, sub("v4_block_height"))
    assert limit == error(cid, 2, "Per-connection subscription limit reached for v4_block_height (limit=1).")
    invalid = await ask(ws, sub("v4_orderbook", "NOPE-USD"))
    assert invalid == error(cid, 3, "Invalid subscription id for channel: (v4_orderbook-NOPE-USD)")
    book = await ask(ws, sub("v4_orderbook", "BTC-USD"))
    assert (book["type"], book["message_id"]) == ("subscribed", 4)
    again = await ask(ws, sub("v4_orderbook", "BTC-USD"))
    assert again == error(
        cid,
        5,
        "Invalid subscribe message: already subscribed (v4_orderbook-BTC-USD)",
        channel="v4_orderbook",
        id="BTC-USD",
    )
    assert list(again) == ["type", "message", "connection_id", "message_id", "channel", "id"]
    markets = await ask(ws, sub("v4_markets"))
    assert (markets["type"], markets["message_id"]) == ("subscribed", 6)
    # v4_markets is named after its channel, and the error has no id because the request had none.
    assert await ask(ws, sub("v4_markets")) == error(
        cid, 7, "Invalid subscribe message: already subscribed (v4_markets-v4_markets)", channel="v4_markets"
    )
    ack = await ask(ws, {"type": "unsubscribe", "channel": "v4_orderbook", "id": "BTC-USD"})
    assert (ack["type"], ack["message_id"]) == ("unsubscribed", 8)
    await ws.close()


async def test_the_checks_before_the_message_id_is_taken(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await connect(http, emu)
    cases = [
        (sub("v4_trades") | {"channel": ""}, "Invalid subscribe message: channel is required"),
        ({"type": "unsubscribe"}, "Invalid subscribe message: channel is required"),
        (sub("v4_nope"), "Invalid channel: v4_nope"),
        (sub("v4_trades"), "Invalid id: undefined"),
        (sub("v4_trades") | {"id": None}, "Invalid id: null"),
        (sub("v4_candles") | {"id": ["BTC-USD/1MIN"]}, "Invalid id: BTC-USD/1MIN"),
        (sub("v4_orderbook") | {"id": 7}, "Invalid id: 7"),
        (
            {"type": "unsubscribe", "channel": "v4_trades", "id": {"t": "BTC-USD"}},
            "Invalid id: [object Object]",
        ),
    ]
    for request, text in cases:
        assert await ask(ws, request) == error(cid, 0, text), request
    assert (await ask(ws, sub("v4_trades", "BTC-USD")))["message_id"] == 1
    await ws.close()


async def test_invalid_ids_and_a_full_channel_are_not_subscribe_attempts(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    for n in range(1, 4):
        assert await ask(ws, sub("v4_trades", "NOPE-USD")) == error(
            cid, n, "Invalid subscription id for channel: (v4_trades-NOPE-USD)"
        )
    assert (await ask(ws, sub("v4_block_height")))["type"] == "subscribed"
    for n in range(5, 8):
        assert (await ask(ws, sub("v4_block_height")))["message_id"] == n  # the limit, not the rate
    assert (await ask(ws, sub("v4_markets")))["type"] == "subscribed"  # the socket is still open
    await ws.close()


async def test_the_rate_is_checked_before_already_subscribed(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    assert (await ask(ws, sub("v4_trades", "BTC-USD")))["type"] == "subscribed"
    assert "already subscribed" in (await ask(ws, sub("v4_trades", "BTC-USD")))["message"]
    refused = await ask(ws, sub("v4_trades", "BTC-USD"))
    assert refused == error(cid, 3, TOO_MANY.format("v4_trades-BTC-USD"))
    closing = await ws.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1008)
    assert json.loads(closing.extra) == {"message": "Rate limited"}


async def test_an_id_less_channel_is_rate_limited_under_its_own_name(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    for _ in range(2):
        await ask(ws, sub("v4_markets"))
    assert await ask(ws, sub("v4_markets")) == error(cid, 3, TOO_MANY.format("v4_markets-v4_markets"))
    closing = await ws.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1008)


def test_the_rate_limit_is_a_window_opened_by_the_first_attempt() -> None:
    limit = FixedWindowLimit(points=2, window=1.0)
    assert [limit.refuse("k", t) for t in (0.0, 0.6)] == [False, False]
    # 1.0 s after the first attempt a new window opens, although 0.6 was 0.4 s ago: a sliding
    # window would refuse the attempt at 1.3 (0.6, 1.0 and 1.3 within one second).
    assert [limit.refuse("k", t) for t in (1.0, 1.3)] == [False, False]
    assert limit.refuse("k", 1.5)  # the third in the window opened at 1.0
    assert not limit.refuse("other", 1.5)  # per key
    limit.forget_expired(2.0)
    assert len(limit) == 1  # "k" (window from 1.0) has passed; "other" (from 1.5) has not


async def test_subscribe_attempts_count_in_a_window_from_the_first(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    # The module's own clock only (the event loop keeps the real one).
    monkeypatch.setattr(ws_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    ws, cid = await connect(http, emu)
    replies = []
    for at in (0.0, 0.6, 1.0, 1.3, 1.5):
        clock[0] = 1000.0 + at
        replies.append(await ask(ws, sub("v4_trades", "BTC-USD")))
    assert [r["type"] for r in replies] == ["subscribed", "error", "error", "error", "error"]
    assert [r["message"] for r in replies[1:4]] == [
        "Invalid subscribe message: already subscribed (v4_trades-BTC-USD)"
    ] * 3
    assert replies[4] == error(cid, 5, TOO_MANY.format("v4_trades-BTC-USD"))


async def test_invalid_messages_count_in_a_window_from_the_first(
    emu: Emulator, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(ws_module, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    ws, cid = await connect(http, emu)
    for at in (0.0, 0.6, 1.0, 1.3):
        clock[0] = 1000.0 + at
        assert await ask(ws, {"type": "dance"}) == error(cid, 0, "Invalid message type: dance")
    clock[0] = 1001.5
    assert (await ask(ws, {"type": "dance"}))["message"] == (
        "Too many invalid messages. Please reconnect and try again."
    )
    closing = await ws.receive(timeout=5)
    assert (closing.type, closing.data) == (aiohttp.WSMsgType.CLOSE, 1008)


async def test_malformed_frames(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await connect(http, emu)
    # The venue's parser refuses NaN; a falsy type is no type.
    await ws.send_str('{"type": NaN}')
    assert await recv(ws) == error(cid, 0, "Invalid message: could not parse")
    assert await ask(ws, {"type": ""}) == error(cid, 0, "Invalid message: type is required")
    # A bare null fails the venue's handler itself: a plain "Internal error", outside the
    # invalid-message limit (a fourth invalid message would be the third in the window).
    for _ in range(3):
        await ws.send_str("null")
        assert await recv(ws) == error(cid, 0, "Internal error")
    assert (await ask(ws, sub("v4_markets")))["type"] == "subscribed"
    await ws.close()


async def test_unsubscribe_acks_echo_the_request_id_as_it_was(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    await ask(ws, sub("v4_block_height"))
    plain = await ask(ws, {"type": "unsubscribe", "channel": "v4_block_height"})
    assert plain == {
        "type": "unsubscribed",
        "connection_id": cid,
        "message_id": 2,
        "channel": "v4_block_height",
    }
    # The subscription is gone: subscribing again is accepted.
    assert (await ask(ws, sub("v4_block_height")))["type"] == "subscribed"
    named = await ask(ws, {"type": "unsubscribe", "channel": "v4_block_height", "id": "v4_block_height"})
    assert named["id"] == "v4_block_height"
    null = await ask(ws, {"type": "unsubscribe", "channel": "v4_block_height", "id": None})
    assert "id" in null
    assert null["id"] is None
    markets = await ask(ws, {"type": "unsubscribe", "channel": "v4_markets", "id": "x"})
    assert "id" not in markets
    await ws.close()


async def test_internal_error_names_the_subscription_as_it_was_requested(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws, cid = await connect(http, emu)
    await ask(ws, sub("v4_block_height"))
    await ask(ws, sub("v4_trades", "BTC-USD"))
    for channel, id in (("v4_block_height", None), ("v4_trades", "BTC-USD")):
        async with http.post(
            emu.indexer_url + "/emulator/faults/ws/internal-error", json={"channel": channel, "id": id}
        ) as resp:
            assert (await resp.json())["affected"] == [cid]
        echo = {"channel": channel} if id is None else {"channel": channel, "id": id}
        assert await recv(ws) == error(
            cid, 2, f"Internal error, could not fetch data for subscription: {channel}.", **echo
        )
    await ws.close()
