"""The official ``dydx-v4-client`` NodeClient against the emulator's validator gRPC.

The client runs in its own virtualenv (``.venv-official/``, created by the fixture of
``test_official_client.py``) as a subprocess, connecting insecurely to ``emu.grpc_target`` the way it
connects to a local node. It queries the chain, then trades: a short-term IOC order that fills against
the synthetic book, a long-term limit order that rests and is cancelled, a conditional stop order that
triggers when the oracle is moved through the control API, and a batch cancel. Every outcome is
confirmed through the emulator's indexer REST, and the IOC fill through the WebSocket too.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from tests.emulator.test_official_client import official_python  # noqa: F401 (fixture)

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.params import EQUITY_TIERS

SCRIPT = Path(__file__).resolve().parent / "official_client" / "drive_node.py"
# First public test account of the official clients (protocol reference §6.1).
MNEMONIC = (
    "mandate glove carry despair area gloom sting round toddler deal face vague receive shallow confirm "
    "south green cup rain drill monkey method tongue fence"
)
ADDRESS = "dydx1wldnytkerzs39rs28djn0p9vvqer2x2k5x8hjy"


async def drive(python: Path, emu: Emulator, command: str, *args: object) -> dict[str, Any]:
    assert emu.grpc_target is not None
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(SCRIPT),
        command,
        emu.indexer_url,
        emu.grpc_target,
        MNEMONIC,
        *(str(a) for a in args),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def until(predicate: Callable[[], Awaitable[Any]], what: str) -> Any:
    for _ in range(600):
        value = await predicate()
        if value:
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached within 30 s: {what}")


async def rest(http: aiohttp.ClientSession, emu: Emulator, path: str) -> Any:
    async with http.get(emu.indexer_url + path) as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def order_status(http: aiohttp.ClientSession, emu: Emulator, client_id: int) -> str | None:
    orders = await rest(http, emu, f"/v4/orders?address={ADDRESS}&subaccountNumber=0&limit=1000")
    found = [o["status"] for o in orders if o["clientId"] == str(client_id)]
    return found[0] if found else None


def _ok(result: dict[str, Any]) -> None:
    assert result["code"] == 0, result


@pytest.mark.timeout(900)
async def test_official_node_client_queries_and_trades(official_python: Path) -> None:  # noqa: F811
    async with (
        Emulator(
            block_time=0.1, seed=5, markets=["BTC-USD", "ETH-USD"], batch_interval=0.1, rate_limit=None
        ) as emu,
        aiohttp.ClientSession() as http,
    ):
        await until(lambda: _has_asks(emu), "synthetic asks on BTC-USD")

        # --- queries --------------------------------------------------------------------------
        queried = await drive(official_python, emu, "query")
        assert queried["address"] == ADDRESS
        assert queried["faucet"] == 202
        assert queried["chain_id"] == queried["network"] == "localdydxprotocol"
        assert 0 < queried["height"] <= emu.engine.height
        account = emu.engine.account(ADDRESS)
        assert account is not None
        assert queried["account"] == {"address": ADDRESS, "number": account.account_number, "sequence": 0}
        markets = (await rest(http, emu, "/v4/perpetualMarkets"))["markets"]
        assert queried["clob_pairs"] == [
            {
                "id": int(m["clobPairId"]),
                "step": m["stepBaseQuantums"],
                "spt": m["subticksPerTick"],
                "qce": m["quantumConversionExponent"],
            }
            for m in sorted(markets.values(), key=lambda m: int(m["clobPairId"]))
        ]
        assert queried["clob_pair_0"] == markets["BTC-USD"]["subticksPerTick"]
        assert queried["fee_tiers"][0] == ["1", -110, 500]
        assert queried["user_fee_tier"] == {"index": 0, "name": "1"}
        assert queried["price"]["id"] == 0
        assert queried["price"]["exponent"] == -5
        assert queried["perpetuals"] == ["BTC-USD", "ETH-USD"]
        assert queried["equity_tiers"] == [[t.usd_tnc_required, t.limit] for t in EQUITY_TIERS]
        # The faucet deposit is credited at once on chain (the indexer sees it in the next block).
        assert queried["subaccount"] == {"owner": ADDRESS, "usdc": [5_000_000_000], "positions": []}

        # --- a short-term IOC buy fills against the synthetic asks (REST and WS) ----------------
        async with http.ws_connect(emu.ws_url) as ws:
            assert (await ws.receive_json(timeout=5))["type"] == "connected"
            await ws.send_json({"type": "subscribe", "channel": "v4_subaccounts", "id": f"{ADDRESS}/0"})
            assert (await ws.receive_json(timeout=5))["type"] == "subscribed"
            best_ask = await _best_ask(http, emu)
            result = await drive(official_python, emu, "ioc", 1001, best_ask * 1.01)
            _ok(result)
            fills = await _ws_fills(ws, "1001")
        assert fills[0]["side"] == "BUY"
        assert fills[0]["liquidity"] == "TAKER"
        await until(lambda: _is(http, emu, 1001, "FILLED"), "IOC order FILLED in REST")
        positions = await until(lambda: _positions(http, emu), "BTC-USD position in REST")
        assert positions["BTC-USD"]["side"] == "LONG"

        # --- a long-term limit buy rests, then is cancelled ------------------------------------
        gtbt = int(time.time()) + 3600
        far_bid = round(best_ask * 0.8)
        _ok(await drive(official_python, emu, "place", 2002, far_bid, gtbt))
        await until(lambda: _is(http, emu, 2002, "OPEN"), "long-term order OPEN")
        assert any(
            o["clientId"] == "2002"
            for o in await rest(http, emu, f"/v4/orders?address={ADDRESS}&subaccountNumber=0&status=OPEN")
        )
        assert account.sequence == 1  # the stateful placement consumed one sequence number
        _ok(await drive(official_python, emu, "cancel", 2002, gtbt))
        await until(lambda: _is(http, emu, 2002, "CANCELED"), "long-term order CANCELED")
        assert account.sequence == 2

        # --- a conditional stop-loss sell triggers when the oracle falls through it --------------
        oracle = emu.engine.oracle_price(0) / 10**5
        trigger = round(oracle * 0.95)
        _ok(await drive(official_python, emu, "stop", 3003, trigger, round(oracle * 0.85), gtbt))
        await until(lambda: _is(http, emu, 3003, "UNTRIGGERED"), "stop order UNTRIGGERED")
        async with http.post(
            emu.indexer_url + "/emulator/oracle", json={"ticker": "BTC-USD", "price": str(trigger - 50)}
        ) as resp:
            assert resp.status == 200
        status = await until(lambda: _triggered(http, emu, 3003), "stop order triggered")
        assert status in ("OPEN", "FILLED")

        # --- two short-term orders rest, one batch cancel removes both ---------------------------
        low = round(emu.engine.oracle_price(0) / 10**5 * 0.7)
        batch = await drive(official_python, emu, "batch", 4004, 4005, low)
        for placed in batch["placed"]:
            _ok(placed)
        _ok(batch["cancel"])
        await until(lambda: _is(http, emu, 4004, "BEST_EFFORT_CANCELED"), "4004 cancelled")
        await until(lambda: _is(http, emu, 4005, "BEST_EFFORT_CANCELED"), "4005 cancelled")


async def _has_asks(emu: Emulator) -> bool:
    return bool(emu.engine.book(0)[1])


async def _best_ask(http: aiohttp.ClientSession, emu: Emulator) -> float:
    book = await rest(http, emu, "/v4/orderbooks/perpetualMarket/BTC-USD")
    return float(book["asks"][0]["price"])


async def _is(http: aiohttp.ClientSession, emu: Emulator, client_id: int, status: str) -> bool:
    return await order_status(http, emu, client_id) == status


async def _triggered(http: aiohttp.ClientSession, emu: Emulator, client_id: int) -> str | None:
    status = await order_status(http, emu, client_id)
    return status if status not in (None, "UNTRIGGERED") else None


async def _positions(http: aiohttp.ClientSession, emu: Emulator) -> dict[str, Any] | None:
    sub = (await rest(http, emu, f"/v4/addresses/{ADDRESS}/subaccountNumber/0"))["subaccount"]
    positions: dict[str, Any] = sub["openPerpetualPositions"]
    return positions or None


async def _ws_fills(ws: aiohttp.ClientWebSocketResponse, client_id: str) -> list[dict[str, Any]]:
    """Read subaccount messages until the order ``client_id`` has fills; returns them."""
    order_ids: set[str] = set()
    for _ in range(200):
        message = await ws.receive_json(timeout=10)
        contents = message.get("contents") or {}
        batches = contents if isinstance(contents, list) else [contents]
        for body in batches:
            for order in body.get("orders") or []:
                if order.get("clientId") == client_id:
                    order_ids.add(order["id"])
            fills = [f for f in body.get("fills") or [] if f.get("orderId") in order_ids]
            if fills:
                return fills
    raise AssertionError("no WS fill for the IOC order")
