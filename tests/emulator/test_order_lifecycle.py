"""What a client sees of an order's life, over the emulator's real WebSocket: the venue's timing."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.app import Emulator

ALICE = "dydx1alice000000000000000000000000000000000"
BOB = "dydx1bob00000000000000000000000000000000000"
LOT = 1_000_000  # 0.0001 BTC
USD = 100_000  # BTC-USD subticks of one dollar


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    # Blocks only when the test produces one; no batching delay worth waiting for.
    async with Emulator(
        block_time=3600, synthetic=False, rate_limit=None, markets=["BTC-USD"], batch_interval=0.01
    ) as e:
        for owner in (ALICE, BOB):
            e.engine.deposit(owner, 0, 100_000 * 1_000_000)
        e.engine.set_oracle_price(0, 5_000_000_000)  # 50 000 USD
        e.produce_block()
        yield e


async def subscribe(
    http: aiohttp.ClientSession, emu: Emulator, address: str
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(emu.ws_url)
    assert json.loads((await ws.receive()).data)["type"] == "connected"
    await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{address}/0"})
    assert json.loads((await ws.receive()).data)["type"] == "subscribed"
    return ws


async def drain(ws: aiohttp.ClientWebSocketResponse, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Every message until the socket stays quiet for ``quiet`` seconds (contents only)."""
    out: list[dict[str, Any]] = []
    while True:
        try:
            msg = await ws.receive(timeout=quiet)
        except TimeoutError:
            return out
        out.append(json.loads(msg.data)["contents"])


async def test_replacing_a_resting_order_sends_its_removal_first(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    ws = await subscribe(http, emu, ALICE)
    h = emu.engine.height
    emu.engine.place_order(order_snapshot(ALICE, 5, "BUY", LOT, 40_000 * USD, gtb=h + 5))
    emu.engine.place_order(order_snapshot(ALICE, 5, "BUY", 2 * LOT, 40_100 * USD, gtb=h + 6))
    orders = [o for c in await drain(ws) for o in c.get("orders", [])]
    assert [(o["status"], o.get("removalReason"), o["price"], o["size"]) for o in orders] == [
        ("BEST_EFFORT_OPENED", None, "40000", "0.0001"),
        ("BEST_EFFORT_CANCELED", "ORDER_REMOVAL_REASON_REPLACED", "40000", "0.0001"),
        ("BEST_EFFORT_OPENED", None, "40100", "0.0002"),
    ]
    assert len({o["id"] for o in orders}) == 1
    async with http.get(f"{emu.indexer_url}/v4/orders?address={ALICE}&subaccountNumber=0") as resp:
        rows = await resp.json()
    assert [(r["status"], r["price"]) for r in rows] == [("BEST_EFFORT_OPENED", "40100")]
    async with http.get(f"{emu.indexer_url}/v4/orderbooks/perpetualMarket/BTC-USD") as resp:
        book = await resp.json()
    assert book["bids"] == [{"price": "40100", "size": "0.0002"}]
    await ws.close()


async def test_long_term_order_is_open_in_its_block_and_fills_in_the_next(
    emu: Emulator, http: aiohttp.ClientSession
) -> None:
    emu.engine.place_order(order_snapshot(ALICE, 1, "SELL", LOT, 50_000 * USD, gtb=emu.engine.height + 10))
    emu.produce_block()
    ws = await subscribe(http, emu, BOB)
    gtbt = int(emu.engine.block_time.timestamp()) + 86400  # blocks are an hour apart here
    emu.engine.place_order(order_snapshot(BOB, 7, "BUY", LOT, 50_000 * USD, flags=64, gtbt=gtbt))
    n = emu.produce_block()
    placed = await drain(ws)
    assert [
        (c["blockHeight"], [o["status"] for o in c.get("orders", [])], c.get("fills", [])) for c in placed
    ] == [(str(n), ["OPEN"], [])]
    emu.produce_block()
    filled = [c for c in await drain(ws) if "fills" in c]
    assert [(c["blockHeight"], [f["createdAtHeight"] for f in c["fills"]]) for c in filled] == [
        (str(n + 1), [str(n + 1)])
    ]
    assert [o["status"] for c in filled for o in c.get("orders", [])][-1] == "FILLED"
    await ws.close()
