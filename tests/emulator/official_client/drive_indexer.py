"""Drive the emulator with the official ``dydx-v4-client`` (run in its own virtualenv).

Usage: ``python drive_indexer.py fund|read INDEXER_URL WS_URL ADDRESS``; prints one JSON object.
This script imports only the official client and the standard library: it runs under the official
client's pinned dependencies, not the project's.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from typing import Any

from dydx_v4_client.faucet_client import FaucetClient
from dydx_v4_client.indexer.candles_resolution import CandlesResolution
from dydx_v4_client.indexer.rest.indexer_client import IndexerClient
from dydx_v4_client.indexer.socket.websocket import IndexerSocket
from dydx_v4_client.node.market import Market


async def fund(url: str, address: str) -> dict[str, Any]:
    response = await FaucetClient(url).fill(address, 0, 5000)
    return {"status": response.status_code}


async def read(url: str, address: str) -> dict[str, Any]:
    client = IndexerClient(url)
    out: dict[str, Any] = {}
    markets = await client.markets.get_perpetual_markets("BTC-USD")
    btc = markets["markets"]["BTC-USD"]
    market = Market(btc)
    out["market"] = {
        "ticker": btc["ticker"],
        "quantums_0_001": market.calculate_quantums(0.001),
        "subticks_50000": market.calculate_subticks(50000),
    }
    book = await client.markets.get_perpetual_market_orderbook("BTC-USD")
    out["book"] = {"bids": len(book["bids"]), "asks": len(book["asks"])}
    trades = await client.markets.get_perpetual_market_trades("BTC-USD")
    out["trades"] = len(trades["trades"])
    candles = await client.markets.get_perpetual_market_candles("BTC-USD", CandlesResolution.ONE_MINUTE.value)
    out["candles"] = len(candles["candles"])
    out["height"] = (await client.utility.get_height())["height"]
    sub = await client.account.get_subaccount(address, 0)
    out["equity"] = sub["subaccount"]["equity"]
    out["positions"] = sorted(sub["subaccount"]["openPerpetualPositions"])
    orders = await client.account.get_subaccount_orders(address, 0)
    out["orders"] = sorted((o["clientId"], o["status"]) for o in orders)
    fills = await client.account.get_subaccount_fills(address, 0)
    out["fills"] = [(f["side"], f["size"], f["liquidity"]) for f in fills["fills"]]
    one = await client.account.get_order(orders[0]["id"])
    out["order_lookup"] = one["id"] == orders[0]["id"]
    transfers = await client.account.get_subaccount_transfers(address, 0)
    out["transfers"] = [t["type"] for t in transfers["transfers"]]
    return out


def stream(ws_url: str, address: str) -> dict[str, Any]:
    seen: dict[str, int] = {}
    done = threading.Event()

    def on_open(ws: IndexerSocket) -> None:
        ws.order_book.subscribe("BTC-USD")
        ws.trades.subscribe("BTC-USD")
        ws.markets.subscribe()
        ws.candles.subscribe("BTC-USD", CandlesResolution.ONE_MINUTE)
        ws.subaccounts.subscribe(address, 0)

    def on_message(ws: IndexerSocket, message: Any) -> None:
        key = f"{message['type']}:{message.get('channel', '')}"
        seen[key] = seen.get(key, 0) + 1
        wanted = (
            "subscribed:v4_orderbook",
            "channel_batch_data:v4_orderbook",
            "subscribed:v4_trades",
            "subscribed:v4_markets",
            "subscribed:v4_subaccounts",
            "subscribed:v4_candles",
        )
        if all(k in seen for k in wanted):
            done.set()
            ws.close()

    socket = IndexerSocket(ws_url, on_open=on_open, on_message=on_message)
    timer = threading.Timer(30.0, socket.close)
    timer.start()
    asyncio.run(socket.connect())
    timer.cancel()
    return {"messages": seen, "complete": done.is_set()}


def main() -> None:
    mode, url, ws_url, address = sys.argv[1:5]
    if mode == "fund":
        result = asyncio.run(fund(url, address))
    else:
        result = asyncio.run(read(url, address))
        result["stream"] = stream(ws_url, address)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
