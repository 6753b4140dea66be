"""The emulator's control API: true book, checksum records, fault injection, driving, faucet."""

from __future__ import annotations

import asyncio
import json
import zlib
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.app import Emulator

ALICE = "dydx1alice000000000000000000000000000000000"


def canonical(value: Decimal) -> str:
    if value == 0:
        return "0"
    return format(value.normalize(), "f")


class ClientBook:
    """The test's own applier: absolute levels aged by message_id, uncrossed by recency."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, tuple[Decimal, int]] = {}
        self.asks: dict[Decimal, tuple[Decimal, int]] = {}

    def apply(self, msg: dict[str, Any]) -> None:
        mid = msg["message_id"]
        if msg["type"] == "subscribed":
            self.bids = {Decimal(x["price"]): (Decimal(x["size"]), mid) for x in msg["contents"]["bids"]}
            self.asks = {Decimal(x["price"]): (Decimal(x["size"]), mid) for x in msg["contents"]["asks"]}
        else:
            updates = msg["contents"] if isinstance(msg["contents"], list) else [msg["contents"]]
            for update in updates:
                for key, side in (("bids", self.bids), ("asks", self.asks)):
                    for price_text, size_text in update.get(key, []):
                        price, size = Decimal(price_text), Decimal(size_text)
                        if size == 0:
                            side.pop(price, None)
                        else:
                            side[price] = (size, mid)
        while self.bids and self.asks and max(self.bids) >= min(self.asks):
            bp, ap = max(self.bids), min(self.asks)
            (bs, ba), (as_, aa) = self.bids[bp], self.asks[ap]
            if ba != aa:
                del (self.bids if ba < aa else self.asks)[bp if ba < aa else ap]
            elif bs == as_:
                del self.bids[bp], self.asks[ap]
            elif bs < as_:
                del self.bids[bp]
                self.asks[ap] = (as_ - bs, aa)
            else:
                del self.asks[ap]
                self.bids[bp] = (bs - as_, ba)

    def checksum(self, depth: int = 25) -> int:
        bids = ",".join(
            f"{canonical(p)}:{canonical(self.bids[p][0])}" for p in sorted(self.bids, reverse=True)[:depth]
        )
        asks = ",".join(f"{canonical(p)}:{canonical(self.asks[p][0])}" for p in sorted(self.asks)[:depth])
        return zlib.crc32(f"{bids}|{asks}".encode())


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(block_time=0.05, seed=7, markets=["BTC-USD", "ETH-USD"], batch_interval=0.05) as e:
        yield e


async def call(
    http: aiohttp.ClientSession, emu: Emulator, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    async with http.request(method, emu.indexer_url + path, json=body) as resp:
        return resp.status, await resp.json()


async def subscribe_book(
    http: aiohttp.ClientSession, emu: Emulator, batched: bool = False
) -> tuple[aiohttp.ClientWebSocketResponse, str]:
    ws = await http.ws_connect(emu.ws_url)
    hello = json.loads((await ws.receive(timeout=5)).data)
    await ws.send_json({"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD", "batched": batched})
    return ws, hello["connection_id"]


async def collect(ws: aiohttp.ClientWebSocketResponse, count: int) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    while len(out) < count:
        msg = await ws.receive(timeout=5)
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        data = json.loads(msg.data)
        if data.get("channel") == "v4_orderbook":
            out.append(data)
    return out


@pytest.mark.parametrize("batched", [False, True])
async def test_checksum_records_match_a_replay(
    emu: Emulator, http: aiohttp.ClientSession, batched: bool
) -> None:
    ws, cid = await subscribe_book(http, emu, batched)
    messages = await collect(ws, 40)
    status, records = await call(http, emu, "GET", f"/emulator/ws/{cid}/checksums?ticker=BTC-USD&depth=25")
    assert status == 200
    by_id = {r["message_id"]: r["checksum"] for r in records}
    book = ClientBook()
    for msg in messages:
        book.apply(msg)
        assert by_id[msg["message_id"]] == book.checksum(), msg["message_id"]
    assert messages[0]["type"] == "subscribed"
    if batched:
        assert all(m["type"] == "channel_batch_data" for m in messages[1:])
    last = messages[-1]["message_id"]
    status, later = await call(http, emu, "GET", f"/emulator/ws/{cid}/checksums?ticker=BTC-USD&after={last}")
    assert all(r["message_id"] > last for r in later)
    await ws.close()


async def test_true_book_and_checksum(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await asyncio.sleep(0.3)
    await call(http, emu, "POST", "/emulator/market/pause")
    await asyncio.sleep(0.2)  # let the synthetic agents' last orders land
    status, body = await call(http, emu, "GET", "/emulator/book/BTC-USD?depth=5")
    assert status == 200
    assert set(body) == {"bids", "asks", "checksum", "height"}
    assert len(body["bids"]) <= 5
    text = "|".join(
        ",".join(f"{canonical(Decimal(p))}:{canonical(Decimal(s))}" for p, s in body[side])
        for side in ("bids", "asks")
    )
    assert body["checksum"] == zlib.crc32(text.encode())
    bids, _asks = emu.engine.book(0)
    assert len(body["bids"]) == min(5, len(bids))
    assert (await call(http, emu, "GET", "/emulator/book/NOPE-USD"))[0] == 404


async def test_connections_drop_and_records_survive(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await subscribe_book(http, emu)
    await collect(ws, 3)
    status, conns = await call(http, emu, "GET", "/emulator/ws/connections")
    assert {"connection_id": cid, "subscriptions": [["v4_orderbook", "BTC-USD"]]} in conns
    status, body = await call(http, emu, "POST", "/emulator/faults/ws/drop", {"connection_id": cid})
    assert body == {"dropped": [cid]}
    msg = await ws.receive(timeout=5)
    while msg.type == aiohttp.WSMsgType.TEXT:
        msg = await ws.receive(timeout=5)
    # Abrupt: no close frame from the server, the client sees the stream end.
    assert msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSE)
    assert msg.type != aiohttp.WSMsgType.CLOSE or msg.data != 1000
    status, records = await call(http, emu, "GET", f"/emulator/ws/{cid}/checksums?ticker=BTC-USD")
    assert status == 200
    assert len(records) >= 3
    status, conns = await call(http, emu, "GET", "/emulator/ws/connections")
    assert all(c["connection_id"] != cid for c in conns)


async def test_stall_keeps_queued_messages(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await subscribe_book(http, emu)
    first = await collect(ws, 2)
    await call(http, emu, "POST", "/emulator/faults/ws/stall", {"connection_id": cid, "seconds": 0.5})
    await asyncio.sleep(0.25)
    # While stalled the server queues instead of sending.
    assert len(emu.hub.connections[cid].outbox) > 0
    rest = await collect(ws, 30)
    ids = [m["message_id"] for m in first + rest]
    assert ids == list(range(ids[0], ids[0] + len(ids)))  # nothing lost, nothing reordered
    await ws.close()


async def test_lose_fault_skips_message_ids(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await subscribe_book(http, emu)
    first = await collect(ws, 2)
    status, body = await call(
        http, emu, "POST", "/emulator/faults/ws/lose", {"connection_id": cid, "count": 2}
    )
    assert (status, body) == (200, {"affected": [cid]})
    # Messages already queued before the fault still go out; the next two generated are lost.
    rest = await collect(ws, 40)
    ids = [m["message_id"] for m in first + rest]
    skipped = [i for i in range(ids[0], ids[-1] + 1) if i not in set(ids)]
    assert len(skipped) == 2
    # The server's checksum records still hold the lost messages (it sent them, as far as it knows).
    _status, records = await call(http, emu, "GET", f"/emulator/ws/{cid}/checksums?ticker=BTC-USD")
    recorded = {r["message_id"] for r in records}
    assert set(range(ids[0], ids[-1] + 1)) <= recorded
    for bad in ({"count": 0}, {"count": "2"}, {"count": True}):
        status, _body = await call(http, emu, "POST", "/emulator/faults/ws/lose", bad)
        assert status == 400
    await ws.close()


async def test_internal_error_fault(emu: Emulator, http: aiohttp.ClientSession) -> None:
    ws, cid = await subscribe_book(http, emu)
    await collect(ws, 1)
    status, body = await call(
        http, emu, "POST", "/emulator/faults/ws/internal-error", {"channel": "v4_orderbook", "id": "BTC-USD"}
    )
    assert status == 200
    assert body == {"affected": [cid]}
    while True:
        data = json.loads((await ws.receive(timeout=5)).data)
        if data["type"] == "error":
            break
    assert data["message"] == "Internal error, could not fetch data for subscription: v4_orderbook."
    assert (data["channel"], data["id"]) == ("v4_orderbook", "BTC-USD")
    _status, conns = await call(http, emu, "GET", "/emulator/ws/connections")
    assert next(c for c in conns if c["connection_id"] == cid)["subscriptions"] == []
    await ws.close()


async def test_crossed_level_fault(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=3600, synthetic=False, markets=["BTC-USD"]) as emu:
        await crossed_scenario(http, emu)


async def crossed_scenario(http: aiohttp.ClientSession, emu: Emulator) -> None:
    await call(
        http, emu, "POST", "/faucet/tokens", {"address": ALICE, "subaccountNumber": 0, "amount": 10000}
    )
    emu.produce_block()
    dollars = emu.engine.oracle_price(0) // 100_000
    for i, (side, offset) in enumerate([("BUY", -2), ("BUY", -3), ("SELL", 2), ("SELL", 3)]):
        quantums, subticks = 1_000_000 * (i + 1), (dollars + offset) * 100_000
        emu.engine.place_order(order_snapshot(ALICE, i, side, quantums, subticks, gtb=emu.engine.height + 10))
    ws, cid = await subscribe_book(http, emu)
    messages = await collect(ws, 1)
    status, body = await call(http, emu, "POST", "/emulator/faults/ws/crossed-level", {"ticker": "BTC-USD"})
    assert status == 200, body
    assert body["affected"] == [cid]
    book = ClientBook()
    book.apply(messages[0])
    best_ask = min(book.asks)
    stale, refresh = await collect(ws, 2)
    messages += [stale, refresh]
    (stale_level,) = stale["contents"]["bids"]
    assert Decimal(stale_level[0]) > best_ask  # a bid above the best ask: crossed
    book.apply(stale)
    # The stale bid is newer than the resting asks: a correct client drops the crossed asks for now.
    assert best_ask not in book.asks
    assert next(Decimal(p) for p, _ in refresh["contents"]["asks"]) == best_ask
    book.apply(refresh)
    assert Decimal(stale_level[0]) not in book.bids
    assert best_ask in book.asks
    replay = ClientBook()
    for m in messages:
        replay.apply(m)
    # After the refresh the stale bid is gone and the view agrees with the truth and the records.
    assert not replay.bids or not replay.asks or max(replay.bids) < min(replay.asks)
    status, truth = await call(http, emu, "GET", "/emulator/book/BTC-USD?depth=25")
    assert replay.checksum() == truth["checksum"]
    status, records = await call(http, emu, "GET", f"/emulator/ws/{cid}/checksums?ticker=BTC-USD")
    assert records[-1] == {"message_id": messages[-1]["message_id"], "checksum": replay.checksum()}
    await ws.close()


async def test_rest_fault(emu: Emulator, http: aiohttp.ClientSession) -> None:
    assert (await call(http, emu, "POST", "/emulator/faults/rest", {"status": 500, "count": 2}))[0] == 200
    assert await call(http, emu, "GET", "/v4/height") == (500, {"errors": [{"msg": "Internal Server Error"}]})
    assert (await call(http, emu, "GET", "/v4/height"))[0] == 500
    assert (await call(http, emu, "GET", "/v4/height"))[0] == 200
    await call(http, emu, "POST", "/emulator/faults/rest", {"status": 429, "count": 1})
    async with http.get(emu.indexer_url + "/v4/time") as resp:
        assert resp.status == 429
        assert int(resp.headers["Retry-After"]) > 0
    assert (await call(http, emu, "POST", "/emulator/faults/rest", {"status": 404}))[0] == 400


async def test_driving_routes(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=3600, synthetic=False, markets=["BTC-USD"]) as emu:
        status, state = await call(http, emu, "GET", "/emulator/state")
        assert state["markets"] == ["BTC-USD"]
        assert state["connections"] == 0
        h = state["height"]
        assert await call(http, emu, "POST", "/emulator/block") == (200, {"height": h + 1})
        status, _body = await call(
            http, emu, "POST", "/emulator/oracle", {"ticker": "BTC-USD", "price": "30123.5"}
        )
        assert status == 200
        await call(http, emu, "POST", "/emulator/block")  # the override takes effect in the next block
        assert emu.engine.oracle_price(0) == 3_012_350_000  # BTC-USD prices are in units of 1e-5
        status, markets = await call(http, emu, "GET", "/v4/perpetualMarkets")
        assert markets["markets"]["BTC-USD"]["oraclePrice"] == "30123.5"
        assert (
            await call(http, emu, "POST", "/emulator/oracle", {"ticker": "BTC-USD", "price": "1.000001"})
        )[0] == 400
        assert (await call(http, emu, "POST", "/emulator/oracle", {"ticker": "X", "price": "1"}))[0] == 400
        assert await call(http, emu, "POST", "/emulator/market/pause") == (200, {"paused": True})
        assert (await call(http, emu, "GET", "/emulator/state"))[1]["paused"] is True
        assert await call(http, emu, "POST", "/emulator/market/resume") == (200, {"paused": False})


async def test_faucet(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=3600, synthetic=False, markets=["BTC-USD"]) as emu:
        status, body = await call(
            http, emu, "POST", "/faucet/tokens", {"address": ALICE, "subaccountNumber": 3, "amount": 2000}
        )
        assert status == 202
        assert body["amount"] == "2000"
        await call(http, emu, "POST", "/emulator/block")
        status, body = await call(http, emu, "GET", f"/v4/addresses/{ALICE}/subaccountNumber/3")
        assert body["subaccount"]["equity"] == "2000"
        assert (await call(http, emu, "POST", "/faucet/native-token", {"address": ALICE}))[0] == 202
        assert (await call(http, emu, "POST", "/faucet/tokens", {"address": ALICE, "amount": -1}))[0] == 400
        assert (await call(http, emu, "POST", "/faucet/tokens", {"amount": 5}))[0] == 400
