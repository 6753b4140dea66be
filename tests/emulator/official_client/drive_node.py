"""Drive the emulator's validator gRPC with the official ``dydx-v4-client`` NodeClient.

Runs in the official client's own virtualenv (``.venv-official/``), so it imports only that client,
its dependencies and the standard library. Every command prints one JSON object on its last line.

Usage::

    python drive_node.py query   INDEXER_URL GRPC_TARGET MNEMONIC
    python drive_node.py ioc     INDEXER_URL GRPC_TARGET MNEMONIC CLIENT_ID PRICE
    python drive_node.py place   INDEXER_URL GRPC_TARGET MNEMONIC CLIENT_ID PRICE GTBT
    python drive_node.py cancel  INDEXER_URL GRPC_TARGET MNEMONIC CLIENT_ID GTBT
    python drive_node.py stop    INDEXER_URL GRPC_TARGET MNEMONIC CLIENT_ID TRIGGER PRICE GTBT
    python drive_node.py batch   INDEXER_URL GRPC_TARGET MNEMONIC CLIENT_ID CLIENT_ID PRICE

``query`` funds the account through the faucet first (USDC into subaccount 0), as a new user does.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from dydx_v4_client import OrderFlags
from dydx_v4_client.faucet_client import FaucetClient
from dydx_v4_client.indexer.rest.constants import OrderExecution, OrderType
from dydx_v4_client.indexer.rest.indexer_client import IndexerClient
from dydx_v4_client.key_pair import KeyPair
from dydx_v4_client.network import make_local
from dydx_v4_client.node.client import NodeClient
from dydx_v4_client.node.market import Market
from dydx_v4_client.wallet import Wallet
from v4_proto.dydxprotocol.clob.order_pb2 import Order
from v4_proto.dydxprotocol.clob.tx_pb2 import OrderBatch
from v4_proto.dydxprotocol.subaccounts.subaccount_pb2 import SubaccountId

TICKER = "BTC-USD"
BUY = Order.Side.SIDE_BUY
SHORT_TERM, LONG_TERM = OrderFlags.SHORT_TERM, OrderFlags.LONG_TERM


def big_int(raw: Any) -> int:
    """SerializableInt bytes (a list of ints after the client's JSON transcoding, or bytes)."""
    data = bytes(raw)
    magnitude = int.from_bytes(data[1:], "big")
    return -magnitude if data[0] == 3 else magnitude


def address_of(mnemonic: str) -> str:
    return Wallet(KeyPair.from_mnemonic(mnemonic), 0, 0).address


async def connect(indexer_url: str, target: str) -> NodeClient:
    # make_local builds an insecure channel, as the client does for a local node.
    network = make_local(rest_indexer=indexer_url, websocket_indexer="", node_url=target)
    return await NodeClient.connect(network.node)


async def market(indexer_url: str) -> Market:
    markets = await IndexerClient(indexer_url).markets.get_perpetual_markets(TICKER)
    return Market(markets["markets"][TICKER])


async def trader(indexer_url: str, target: str, mnemonic: str) -> tuple[NodeClient, Wallet, Market]:
    """A node connection, the mnemonic's wallet on it and the BTC-USD market: what every order command needs."""
    node = await connect(indexer_url, target)
    wallet = await Wallet.from_mnemonic(node, mnemonic, address_of(mnemonic))
    return node, wallet, await market(indexer_url)


def small_order(
    btc: Market, wallet: Wallet, client_id: int, flags: Any, kind: Any, side: Any, **kw: Any
) -> Any:
    """A 0.0001 BTC order of the wallet's subaccount 0, not reduce-only, with no time in force unless
    ``kw`` names one; ``kw`` has its price and expiry too."""
    kw.setdefault("time_in_force", Order.TimeInForce.TIME_IN_FORCE_UNSPECIFIED)
    order_id = btc.order_id(wallet.address, 0, client_id, flags)
    return btc.order(order_id, kind, side, size=0.0001, reduce_only=False, **kw)


def tx_result(response: Any) -> dict[str, Any]:
    tx = response.tx_response
    return {"code": tx.code, "codespace": tx.codespace, "raw_log": tx.raw_log, "txhash": tx.txhash}


async def query(indexer_url: str, target: str, mnemonic: str) -> dict[str, Any]:
    address = address_of(mnemonic)
    funded = await FaucetClient(indexer_url).fill(address, 0, 5000)
    node = await connect(indexer_url, target)
    out: dict[str, Any] = {"address": address, "faucet": funded.status_code}
    out["height"] = await node.latest_block_height()
    block = await node.latest_block()
    out["chain_id"] = block.block.header.chain_id
    out["network"] = (await node.get_node_info()).default_node_info.network
    account = await node.get_account(address)
    out["account"] = {
        "address": account.address,
        "number": account.account_number,
        "sequence": account.sequence,
    }
    pairs = await node.get_clob_pairs()
    out["clob_pairs"] = [
        {
            "id": p.id,
            "step": p.step_base_quantums,
            "spt": p.subticks_per_tick,
            "qce": p.quantum_conversion_exponent,
        }
        for p in pairs.clob_pair
    ]
    out["clob_pair_0"] = (await node.get_clob_pair(0)).subticks_per_tick
    out["fee_tiers"] = [
        (t.name, t.maker_fee_ppm, t.taker_fee_ppm) for t in (await node.get_fee_tiers()).params.tiers
    ]
    user_tier = await node.get_user_fee_tier(address)
    out["user_fee_tier"] = {"index": user_tier.index, "name": user_tier.tier.name}
    price = await node.get_price(0)
    out["price"] = {"id": price.id, "exponent": price.exponent, "price": price.price}
    out["perpetuals"] = [p.params.ticker for p in (await node.get_perpetuals()).perpetual]
    tiers = await node.get_equity_tier_limit_config()
    out["equity_tiers"] = [(big_int(t.usd_tnc_required), t.limit) for t in tiers.stateful_order_equity_tiers]
    subaccount = await node.get_subaccount(address, 0)
    out["subaccount"] = {
        "owner": subaccount.id.owner,
        "usdc": [big_int(a.quantums) for a in subaccount.asset_positions],
        "positions": [(p.perpetual_id, big_int(p.quantums)) for p in subaccount.perpetual_positions],
    }
    balances = await node.get_account_balances(address)
    out["balances"] = len(balances.balances)
    return out


async def ioc(indexer_url: str, target: str, mnemonic: str, client_id: int, price: float) -> dict[str, Any]:
    node, wallet, btc = await trader(indexer_url, target, mnemonic)
    order = small_order(
        btc,
        wallet,
        client_id,
        SHORT_TERM,
        OrderType.MARKET,
        BUY,
        price=price,
        time_in_force=Order.TimeInForce.TIME_IN_FORCE_IOC,
        good_til_block=await node.latest_block_height() + 10,
    )
    return tx_result(await node.place_order(wallet, order))


async def place(
    indexer_url: str, target: str, mnemonic: str, client_id: int, price: float, gtbt: int
) -> dict[str, Any]:
    node, wallet, btc = await trader(indexer_url, target, mnemonic)
    order = small_order(
        btc, wallet, client_id, LONG_TERM, OrderType.LIMIT, BUY, price=price, good_til_block_time=gtbt
    )
    result = tx_result(await node.place_order(wallet, order))
    result["sequence_before"] = wallet.sequence
    return result


async def cancel(indexer_url: str, target: str, mnemonic: str, client_id: int, gtbt: int) -> dict[str, Any]:
    node, wallet, btc = await trader(indexer_url, target, mnemonic)
    order_id = btc.order_id(wallet.address, 0, client_id, LONG_TERM)
    return tx_result(await node.cancel_order(wallet, order_id, good_til_block_time=gtbt))


async def stop(
    indexer_url: str, target: str, mnemonic: str, client_id: int, trigger: float, price: float, gtbt: int
) -> dict[str, Any]:
    node, wallet, btc = await trader(indexer_url, target, mnemonic)
    order = small_order(
        btc,
        wallet,
        client_id,
        OrderFlags.CONDITIONAL,
        OrderType.STOP_LIMIT,
        Order.Side.SIDE_SELL,
        price=price,
        good_til_block_time=gtbt,
        execution=OrderExecution.DEFAULT,
        # The client maps STOP_LIMIT to an unspecified condition; its examples pass it explicitly.
        condition_type=Order.ConditionType.CONDITION_TYPE_STOP_LOSS,
        conditional_order_trigger_subticks=btc.calculate_subticks(trigger),
    )
    return tx_result(await node.place_order(wallet, order))


async def batch(
    indexer_url: str, target: str, mnemonic: str, first: int, second: int, price: float
) -> dict[str, Any]:
    node, wallet, btc = await trader(indexer_url, target, mnemonic)
    height = await node.latest_block_height()
    placed = []
    for client_id in (first, second):
        order = small_order(
            btc, wallet, client_id, SHORT_TERM, OrderType.LIMIT, BUY, price=price, good_til_block=height + 20
        )
        placed.append(tx_result(await node.place_order(wallet, order)))
    response = await node.batch_cancel_orders(
        wallet,
        SubaccountId(owner=wallet.address, number=0),
        [OrderBatch(clob_pair_id=int(btc.market["clobPairId"]), client_ids=[first, second])],
        height + 20,
    )
    return {"placed": placed, "cancel": tx_result(response)}


def main(argv: list[str]) -> int:
    command, indexer_url, target, mnemonic, *rest = argv
    if command == "query":
        result = asyncio.run(query(indexer_url, target, mnemonic))
    elif command == "ioc":
        result = asyncio.run(ioc(indexer_url, target, mnemonic, int(rest[0]), float(rest[1])))
    elif command == "place":
        result = asyncio.run(place(indexer_url, target, mnemonic, int(rest[0]), float(rest[1]), int(rest[2])))
    elif command == "cancel":
        result = asyncio.run(cancel(indexer_url, target, mnemonic, int(rest[0]), int(rest[1])))
    elif command == "stop":
        result = asyncio.run(
            stop(indexer_url, target, mnemonic, int(rest[0]), float(rest[1]), float(rest[2]), int(rest[3]))
        )
    elif command == "batch":
        result = asyncio.run(batch(indexer_url, target, mnemonic, int(rest[0]), int(rest[1]), float(rest[2])))
    else:
        print(f"unknown command {command}", file=sys.stderr)
        return 2
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
