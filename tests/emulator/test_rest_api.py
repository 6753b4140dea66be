"""Indexer REST of the emulator over real sockets: shapes, validation, 404s, pagination, quirks."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.events import SubaccountRef

ALICE = "dydx1alice000000000000000000000000000000000"
BOB = "dydx1bob00000000000000000000000000000000000"
NS = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    # Hour-long blocks: nothing happens unless the test produces a block.
    async with Emulator(
        block_time=3600, synthetic=False, rate_limit=None, markets=["BTC-USD", "ETH-USD"]
    ) as e:
        yield e


async def get(http: aiohttp.ClientSession, emu: Emulator, path: str) -> tuple[int, Any]:
    async with http.get(emu.indexer_url + path) as resp:
        return resp.status, await resp.json()


async def fund(http: aiohttp.ClientSession, emu: Emulator, address: str, amount: int = 10_000) -> None:
    async with http.post(
        emu.indexer_url + "/faucet/tokens", json={"address": address, "subaccountNumber": 0, "amount": amount}
    ) as resp:
        assert resp.status == 202
    emu.produce_block()


def btc_subticks(emu: Emulator, offset_dollars: int) -> int:
    # BTC-USD: 1e5 subticks per dollar, ticks of 1e5; oracle price in units of 1e-5.
    oracle_dollars = emu.engine.oracle_price(0) // 100_000
    return (oracle_dollars + offset_dollars) * 100_000


async def test_time_height_health(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await get(http, emu, "/v4/time")
    assert status == 200
    assert set(body) == {"iso", "epoch"}
    assert isinstance(body["epoch"], float)
    assert body["iso"].endswith("Z")
    assert len(body["iso"]) == 24
    status, body = await get(http, emu, "/v4/height")
    assert status == 200
    assert body["height"] == str(emu.engine.height)
    assert await get(http, emu, "/health") == (200, {"ok": True})
    async with http.get(emu.indexer_url + "/v4/time") as resp:
        assert resp.headers["Cache-Control"] == "no-cache, no-store, no-transform"


async def test_unknown_route(emu: Emulator, http: aiohttp.ClientSession) -> None:
    assert await get(http, emu, "/v4/nothing/here") == (404, {"error": "Not Found", "errorCode": 404})


async def test_perpetual_markets(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await get(http, emu, "/v4/perpetualMarkets")
    assert status == 200
    assert list(body["markets"]) == ["BTC-USD", "ETH-USD"]
    btc = body["markets"]["BTC-USD"]
    assert btc["clobPairId"] == "0"
    for key in (
        "atomicResolution",
        "quantumConversionExponent",
        "stepBaseQuantums",
        "subticksPerTick",
        "trades24H",
    ):
        assert isinstance(btc[key], int), key
    assert btc["tickSize"] == "1"
    assert btc["stepSize"] == "0.0001"
    assert Decimal(btc["oraclePrice"]) > 0
    status, body = await get(http, emu, "/v4/perpetualMarkets?ticker=ETH-USD")
    assert list(body["markets"]) == ["ETH-USD"]
    status, body = await get(http, emu, "/v4/perpetualMarkets?ticker=ETH-USD&market=BTC-USD")
    assert (status, body) == (400, {"errors": [{"msg": "Only one of ticker or market may be provided"}]})
    status, body = await get(http, emu, "/v4/perpetualMarkets?limit=0")
    assert status == 400
    assert body == {
        "errors": [
            {
                "value": "0",
                "msg": "limit must be a positive integer that is not greater than max: 1000",
                "param": "limit",
                "location": "query",
            }
        ]
    }


async def test_orderbook_sorted_and_404(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    gtb = emu.engine.height + 10
    for i, off in enumerate((-3, -1, -2)):
        emu.engine.place_order(
            order_snapshot(ALICE, 10 + i, "BUY", 1_000_000, btc_subticks(emu, off), gtb=gtb)
        )
    for i, off in enumerate((3, 1, 2)):
        emu.engine.place_order(
            order_snapshot(ALICE, 20 + i, "SELL", 2_000_000, btc_subticks(emu, off), gtb=gtb)
        )
    status, body = await get(http, emu, "/v4/orderbooks/perpetualMarket/BTC-USD")
    assert status == 200
    bids = [Decimal(level["price"]) for level in body["bids"]]
    asks = [Decimal(level["price"]) for level in body["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert len(bids) == 3
    assert asks == sorted(asks)
    assert body["asks"][0]["size"] == "0.0002"
    assert await get(http, emu, "/v4/orderbooks/perpetualMarket/NOPE-USD") == (
        404,
        {"errors": [{"msg": "NOPE-USD not found in markets of type PERPETUAL"}]},
    )


async def test_subaccount_routes(emu: Emulator, http: aiohttp.ClientSession) -> None:
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}/subaccountNumber/0")
    assert (status, body) == (
        404,
        {"errors": [{"msg": f"No subaccount found with address {ALICE} and subaccountNumber 0"}]},
    )
    await fund(http, emu, ALICE, 1234)
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}/subaccountNumber/0")
    assert status == 200
    sub = body["subaccount"]
    assert sub["subaccountNumber"] == 0
    assert sub["equity"] == "1234"
    assert sub["assetPositions"]["USDC"] == {
        "size": "1234",
        "symbol": "USDC",
        "side": "LONG",
        "assetId": "0",
        "subaccountNumber": 0,
    }
    assert sub["marginEnabled"] is True
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}")
    assert status == 200
    assert body["totalTradingRewards"] == "0"
    assert [s["subaccountNumber"] for s in body["subaccounts"]] == [0]
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}/parentSubaccountNumber/0")
    assert body["subaccount"]["parentSubaccountNumber"] == 0
    assert len(body["subaccount"]["childSubaccounts"]) == 1
    status, body = await get(http, emu, f"/v4/addresses/{BOB}")
    assert (status, body) == (404, {"errors": [{"msg": f"No subaccounts found for address {BOB}"}]})
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}/subaccountNumber/128001")
    assert status == 400
    assert body["errors"][0]["msg"] == "subaccountNumber must be a non-negative integer less than 128001"
    assert body["errors"][0]["location"] == "params"
    status, body = await get(http, emu, f"/v4/assetPositions?address={ALICE}&subaccountNumber=0")
    assert body == {
        "positions": [
            {"size": "1234", "symbol": "USDC", "side": "LONG", "assetId": "0", "subaccountNumber": 0}
        ]
    }
    status, body = await get(http, emu, f"/v4/perpetualPositions?address={BOB}&subaccountNumber=0")
    assert (status, body) == (200, {"positions": []})
    status, body = await get(http, emu, f"/v4/transfers?address={ALICE}&subaccountNumber=0")
    assert status == 200
    (transfer,) = body["transfers"]
    assert transfer["type"] == "DEPOSIT"
    assert transfer["size"] == "1234"
    assert transfer["symbol"] == "USDC"
    assert transfer["recipient"] == {"address": ALICE, "subaccountNumber": 0}
    assert "pageSize" not in body
    status, body = await get(http, emu, f"/v4/transfers?address={BOB}&subaccountNumber=0")
    assert status == 404
    status, body = await get(http, emu, f"/v4/historical-pnl?address={ALICE}&subaccountNumber=0")
    assert status == 200
    assert set(body["historicalPnl"][0]) == {
        "equity",
        "totalPnl",
        "netTransfers",
        "createdAt",
        "blockHeight",
        "blockTime",
    }


async def test_orders_bare_array_sorting_and_lookup(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    h = emu.engine.height
    emu.engine.place_order(order_snapshot(ALICE, 1, "BUY", 1_000_000, btc_subticks(emu, -50), gtb=h + 5))
    emu.engine.place_order(order_snapshot(ALICE, 2, "BUY", 1_000_000, btc_subticks(emu, -51), gtb=h + 9))
    gtbt = int(emu.engine.block_time.timestamp()) + 86400
    emu.engine.place_order(
        order_snapshot(ALICE, 3, "BUY", 1_000_000, btc_subticks(emu, -52), flags=64, gtbt=gtbt)
    )
    emu.produce_block()
    base = f"/v4/orders?address={ALICE}&subaccountNumber=0"
    status, body = await get(http, emu, base)
    assert status == 200
    assert isinstance(body, list)
    # Without returnLatestOrders: descending, GTBT orders first, then GTB desc.
    assert [o["clientId"] for o in body] == ["3", "2", "1"]
    status, body = await get(http, emu, base + "&returnLatestOrders=true")
    assert [o["clientId"] for o in body] == ["1", "2", "3"]  # QUIRK: "true" still means ascending
    status, body = await get(http, emu, base + "&limit=1")
    assert len(body) == 1
    best_effort = next(o for o in (await get(http, emu, base))[1] if o["clientId"] == "1")
    assert best_effort["status"] == "BEST_EFFORT_OPENED"
    assert best_effort["totalFilled"] == "0"
    assert "createdAtHeight" not in best_effort
    status, all_orders = await get(http, emu, base)
    stateful = next(o for o in all_orders if o["clientId"] == "3")
    assert stateful["status"] == "OPEN"
    assert stateful["orderFlags"] == "64"
    assert stateful["goodTilBlockTime"].endswith("Z")
    assert isinstance(stateful["subaccountNumber"], int)
    sub_id = str(uuid.uuid5(NS, f"{ALICE}-0"))
    assert stateful["subaccountId"] == sub_id
    assert stateful["id"] == str(uuid.uuid5(NS, f"{sub_id}-3-0-64"))
    assert await get(http, emu, f"/v4/orders/{stateful['id']}") == (200, stateful)
    missing = str(uuid.uuid4())
    assert await get(http, emu, f"/v4/orders/{missing}") == (
        404,
        {"errors": [{"msg": f"Unable to find order id {missing}"}]},
    )
    status, body = await get(http, emu, "/v4/orders/not-a-uuid")
    assert status == 400
    assert body["errors"][0]["param"] == "orderId"
    status, body = await get(http, emu, base + "&status=OPEN")
    assert [o["clientId"] for o in body] == ["3"]
    status, body = await get(http, emu, base + "&status=open,best_effort_opened")
    assert len(body) == 3
    status, body = await get(http, emu, f"/v4/orders?address={BOB}&subaccountNumber=0")
    assert (status, body) == (200, [])


async def test_fills_trades_pagination(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    await fund(http, emu, BOB)
    for i in range(3):
        h = emu.engine.height
        price = btc_subticks(emu, 0)
        emu.engine.place_order(order_snapshot(ALICE, 100 + i, "SELL", 1_000_000, price, gtb=h + 5))
        emu.engine.place_order(order_snapshot(BOB, 200 + i, "BUY", 1_000_000, price, gtb=h + 5, tif="IOC"))
        emu.produce_block()
    status, body = await get(http, emu, f"/v4/fills?address={BOB}&subaccountNumber=0")
    assert status == 200
    fills = body["fills"]
    assert len(fills) == 3
    assert [f["liquidity"] for f in fills] == ["TAKER"] * 3
    heights = [int(f["createdAtHeight"]) for f in fills]
    assert heights == sorted(heights, reverse=True)
    assert isinstance(fills[0]["subaccountNumber"], int)
    assert fills[0]["marketType"] == "PERPETUAL"
    status, paged = await get(http, emu, f"/v4/fills?address={BOB}&subaccountNumber=0&page=1&limit=2")
    assert paged["pageSize"] == 2
    assert paged["totalResults"] == 3
    assert paged["offset"] == 0
    assert [f["id"] for f in paged["fills"]] == [f["id"] for f in reversed(fills)][:2]  # eventId ASC
    status, paged = await get(http, emu, f"/v4/fills?address={BOB}&subaccountNumber=0&page=2&limit=2")
    assert paged["offset"] == 2
    assert len(paged["fills"]) == 1
    status, body = await get(http, emu, f"/v4/fills?address={BOB}&subaccountNumber=0&page=0")
    assert body["errors"][0]["msg"] == "page must be a non-negative integer"
    status, body = await get(http, emu, "/v4/trades/perpetualMarket/BTC-USD")
    trades = body["trades"]
    assert len(trades) == 3
    assert all(len(t["id"]) == 24 for t in trades)
    assert trades[0]["side"] == "BUY"
    status, paged = await get(http, emu, "/v4/trades/perpetualMarket/BTC-USD?page=1")
    assert [t["id"] for t in paged["trades"]] == sorted(t["id"] for t in trades)
    status, body = await get(http, emu, "/v4/candles/perpetualMarkets/BTC-USD?resolution=1MIN")
    assert status == 200
    candle = body["candles"][0]
    assert isinstance(candle["trades"], int)
    assert "id" not in candle
    status, body = await get(http, emu, "/v4/candles/perpetualMarkets/BTC-USD?resolution=2MINS")
    assert status == 400
    assert body["errors"][0]["msg"].startswith("resolution must be a valid Candle Resolution, one of 1MIN,")
    status, body = await get(http, emu, "/v4/sparklines?timePeriod=ONE_DAY")
    assert set(body) == {"BTC-USD", "ETH-USD"}
    status, body = await get(http, emu, f"/v4/perpetualPositions?address={BOB}&subaccountNumber=0")
    (position,) = body["positions"]
    assert position["side"] == "LONG"
    assert position["size"] == "0.0003"
    assert position["closedAt"] is None
    status, body = await get(http, emu, "/v4/historicalFunding/BTC-USD")
    assert status == 200
    assert body["historicalFunding"]
    assert set(body["historicalFunding"][0]) == {
        "ticker",
        "rate",
        "price",
        "effectiveAtHeight",
        "effectiveAt",
    }


async def test_rate_limit_headers_and_429(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=3600, synthetic=False, rate_limit=(3, 60.0)) as emu:
        remaining = []
        for _ in range(3):
            async with http.get(emu.indexer_url + "/v4/height") as resp:
                assert resp.status == 200
                assert resp.headers["RateLimit-Limit"] == "3"
                remaining.append(int(resp.headers["RateLimit-Remaining"]))
                reset = int(resp.headers["RateLimit-Reset"])
                assert reset > time.time() * 1000  # epoch milliseconds
        assert remaining == [2, 1, 0]
        async with http.get(emu.indexer_url + "/v4/height") as resp:
            assert resp.status == 429
            assert await resp.json() == {"errors": [{"msg": "Too many requests"}]}
            retry_ms = int(resp.headers["Retry-After"])
            assert 1000 < retry_ms <= 60_000  # milliseconds, not seconds
        # Keyed by cf-connecting-ip / x-forwarded-for when present.
        async with http.get(
            emu.indexer_url + "/v4/height", headers={"x-forwarded-for": "10.0.0.9, 1.2.3.4"}
        ) as r:
            assert r.status == 200
        # Candles have ten times the allowance; /orders/{id} has no limiter at all.
        async with http.get(emu.indexer_url + "/v4/candles/perpetualMarkets/BTC-USD?resolution=1MIN") as r:
            assert r.headers["RateLimit-Limit"] == "30"
        async with http.get(emu.indexer_url + f"/v4/orders/{uuid.uuid4()}") as r:
            assert r.status == 404
            assert "RateLimit-Limit" not in r.headers


async def test_no_rate_limit(emu: Emulator, http: aiohttp.ClientSession) -> None:
    for _ in range(120):
        async with http.get(emu.indexer_url + "/v4/height") as resp:
            assert resp.status == 200
            assert "RateLimit-Limit" not in resp.headers


async def test_parent_subaccount_routes(emu: Emulator, http: aiohttp.ClientSession) -> None:
    for number in (0, 128):
        async with http.post(
            emu.indexer_url + "/faucet/tokens",
            json={"address": ALICE, "subaccountNumber": number, "amount": 100},
        ) as resp:
            assert resp.status == 202
    emu.produce_block()
    emu.engine.transfer(SubaccountRef(ALICE, 0), SubaccountRef(ALICE, 128), 5_000_000)
    emu.produce_block()
    status, body = await get(http, emu, f"/v4/addresses/{ALICE}/parentSubaccountNumber/0")
    parent = body["subaccount"]
    assert [c["subaccountNumber"] for c in parent["childSubaccounts"]] == [0, 128]
    assert parent["equity"] == "200"
    q = f"?address={ALICE}&parentSubaccountNumber=0"
    status, body = await get(http, emu, "/v4/transfers/parentSubaccountNumber" + q)
    assert status == 200
    # The transfer between two children of the same parent is not listed; sender/recipient carry parents.
    assert [t["type"] for t in body["transfers"]] == ["DEPOSIT", "DEPOSIT"]
    assert body["transfers"][0]["recipient"] == {"address": ALICE, "parentSubaccountNumber": 0}
    status, body = await get(http, emu, f"/v4/transfers?address={ALICE}&subaccountNumber=128")
    assert {t["type"] for t in body["transfers"]} == {"DEPOSIT", "TRANSFER_IN"}
    status, body = await get(http, emu, "/v4/assetPositions/parentSubaccountNumber" + q)
    assert sorted(p["size"] for p in body["positions"]) == ["105", "95"]
    for route in ("orders", "fills", "perpetualPositions", "historical-pnl"):
        status, body = await get(http, emu, f"/v4/{route}/parentSubaccountNumber" + q)
        assert status == 200, route
    status, body = await get(
        http, emu, f"/v4/orders/parentSubaccountNumber?address={ALICE}&parentSubaccountNumber=128"
    )
    assert status == 400
    assert body["errors"][0]["msg"] == "parentSubaccountNumber must be a non-negative integer less than 128"
    assert await get(http, emu, f"/v4/screen?address={ALICE}") == (200, {"restricted": False, "reason": ""})
    assert await get(http, emu, f"/v4/compliance/screen/{ALICE}") == (200, {"status": "COMPLIANT"})


async def test_candle_window_and_sparklines(emu: Emulator, http: aiohttp.ClientSession) -> None:
    await fund(http, emu, ALICE)
    await fund(http, emu, BOB)
    for i in range(3):  # hour-long blocks: one 1MIN candle per block
        h = emu.engine.height
        price = btc_subticks(emu, 0)
        emu.engine.place_order(order_snapshot(ALICE, 300 + i, "SELL", 1_000_000, price, gtb=h + 5))
        emu.engine.place_order(order_snapshot(BOB, 400 + i, "BUY", 1_000_000, price, gtb=h + 5, tif="IOC"))
        emu.produce_block()
    base = "/v4/candles/perpetualMarkets/BTC-USD?resolution=1MIN"
    status, body = await get(http, emu, base)
    starts = [c["startedAt"] for c in body["candles"]]
    assert len(starts) == 3
    assert starts == sorted(starts, reverse=True)
    status, body = await get(http, emu, base + f"&fromISO={starts[1]}&toISO={starts[0]}")
    assert [c["startedAt"] for c in body["candles"]] == [starts[1]]  # fromISO inclusive, toISO exclusive
    status, body = await get(http, emu, "/v4/sparklines?timePeriod=SEVEN_DAYS")
    assert status == 200
    assert len(body["BTC-USD"]) >= 1
    assert body["ETH-USD"] == []
    status, body = await get(http, emu, "/v4/sparklines?timePeriod=ONE_WEEK")
    assert status == 400
    assert body["errors"][0]["param"] == "timePeriod"
    status, body = await get(http, emu, "/v4/historicalFunding/NOPE-USD")
    assert status == 400
