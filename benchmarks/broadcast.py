"""Order entry on the emulator: BroadcastTx over gRPC, and the chain engine's matching alone.

Part 1 (gRPC): the emulator runs as a subprocess (``python -m nautilus_dydx.emulator``) so that the
server does not share an interpreter with its clients. ``--clients`` worker processes each sign and
broadcast short-term BTC-USD orders one at a time (closed loop, SYNC mode) on their own channel:
alternately a resting limit order a few ticks away from the mid and an IOC order crossing it, so the
other clients' resting orders are matched. Reported: transactions per second over all clients, and
the p50/p99 latency of one BroadcastTx as the client sees it (signing excluded), plus any non-zero
codes (e.g. clob 5001 when the block rate limit is reached).

Part 2 (engine): the same order mix placed straight into a :class:`ChainEngine` (no gRPC, no
signing, no indexer), a block every ``--block-every`` orders; orders per second.

The transactions are signed by a small signer written here (SIGN_MODE_DIRECT, secp256k1, low-S), so
the benchmark depends on neither the client package nor the tests.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import re
import statistics
import sys
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

DESCRIPTION = "BroadcastTx txs/s and p50/p99 latency (4 clients, gRPC) and engine matching orders/s"

MID_SUBTICKS = 5_000_000_000  # 50 000 USD on BTC-USD
TICK = 100_000  # subticks per tick on BTC-USD
QUANTUMS = 1_000_000  # 0.0001 BTC


def _private_key(index: int) -> bytes:
    return hashlib.sha256(f"nautilus-dydx broadcast benchmark {index}".encode()).digest()


def _address(public: bytes) -> str:
    import bech32

    digest = hashlib.new("ripemd160", hashlib.sha256(public).digest()).digest()
    return str(bech32.bech32_encode("dydx", bech32.convertbits(digest, 8, 5) or []))


class _Signer:
    """Builds and signs single-message transactions for one account (SIGN_MODE_DIRECT)."""

    def __init__(self, private: bytes, chain_id: str, account_number: int) -> None:
        import coincurve

        self.key = coincurve.PrivateKey(private)
        self.public = self.key.public_key.format(compressed=True)
        self.address = _address(self.public)
        self.chain_id = chain_id
        self.account_number = account_number

    def sign(self, message: Any, sequence: int = 0) -> bytes:
        from google.protobuf import any_pb2
        from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
        from v4_proto.cosmos.tx.signing.v1beta1 import signing_pb2
        from v4_proto.cosmos.tx.v1beta1 import tx_pb2

        body = tx_pb2.TxBody(
            messages=[
                any_pb2.Any(type_url="/" + message.DESCRIPTOR.full_name, value=message.SerializeToString())
            ]
        ).SerializeToString()
        public_key = any_pb2.Any(
            type_url="/cosmos.crypto.secp256k1.PubKey",
            value=keys_pb2.PubKey(key=self.public).SerializeToString(),
        )
        auth_info = tx_pb2.AuthInfo(
            signer_infos=[
                tx_pb2.SignerInfo(
                    public_key=public_key,
                    mode_info=tx_pb2.ModeInfo(
                        single=tx_pb2.ModeInfo.Single(mode=signing_pb2.SIGN_MODE_DIRECT)
                    ),
                    sequence=sequence,
                )
            ],
            fee=tx_pb2.Fee(gas_limit=1_000_000),
        ).SerializeToString()
        sign_doc = tx_pb2.SignDoc(
            body_bytes=body,
            auth_info_bytes=auth_info,
            chain_id=self.chain_id,
            account_number=self.account_number,
        ).SerializeToString()
        # coincurve signs RFC 6979 and normalises to low-S; the recovery byte is dropped.
        signature = self.key.sign_recoverable(hashlib.sha256(sign_doc).digest(), hasher=None)[:64]
        raw: bytes = tx_pb2.TxRaw(
            body_bytes=body, auth_info_bytes=auth_info, signatures=[signature]
        ).SerializeToString()
        return raw


def _order_params(worker: int, n: int) -> tuple[int, int, int]:
    """(side, subticks, time_in_force) of order ``n`` of a worker: rest a few ticks out, then cross."""
    offset = 1 + (n // 2 + worker) % 5
    buy = (n // 2 + worker) % 2 == 0
    if n % 2 == 0:  # resting limit order
        return (1, MID_SUBTICKS - offset * TICK, 0) if buy else (2, MID_SUBTICKS + offset * TICK, 0)
    return (1, MID_SUBTICKS + 5 * TICK, 1) if buy else (2, MID_SUBTICKS - 5 * TICK, 1)


# --- part 1: gRPC ------------------------------------------------------------------------------------


async def _client(
    target: str, worker: int, account_number: int, chain_id: str, orders: int
) -> dict[str, Any]:
    import grpc
    from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_q
    from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_g
    from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc
    from v4_proto.dydxprotocol.clob import order_pb2
    from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
    from v4_proto.dydxprotocol.subaccounts import subaccount_pb2

    signer = _Signer(_private_key(worker), chain_id, account_number)
    latencies: list[int] = []
    codes: dict[str, int] = {}
    async with grpc.aio.insecure_channel(target) as channel:
        tx_stub = service_pb2_grpc.ServiceStub(channel)
        block_stub = tm_g.ServiceStub(channel)
        height = (await block_stub.GetLatestBlock(tm_q.GetLatestBlockRequest())).block.header.height
        start = time.monotonic()
        for n in range(orders):
            if n % 50 == 0:
                height = (await block_stub.GetLatestBlock(tm_q.GetLatestBlockRequest())).block.header.height
            side, subticks, tif = _order_params(worker, n)
            order = order_pb2.Order(
                order_id=order_pb2.OrderId(
                    subaccount_id=subaccount_pb2.SubaccountId(owner=signer.address, number=0),
                    client_id=n + 1,
                    order_flags=0,
                    clob_pair_id=0,
                ),
                side=side,
                quantums=QUANTUMS,
                subticks=subticks,
                good_til_block=height + 20,
                time_in_force=tif,
            )
            raw = signer.sign(clob_tx.MsgPlaceOrder(order=order))
            request = service_pb2.BroadcastTxRequest(tx_bytes=raw, mode=service_pb2.BROADCAST_MODE_SYNC)
            sent = time.perf_counter_ns()
            response = await tx_stub.BroadcastTx(request)
            latencies.append(time.perf_counter_ns() - sent)
            if response.tx_response.code:
                key = f"{response.tx_response.codespace}/{response.tx_response.code}"
                codes[key] = codes.get(key, 0) + 1
        end = time.monotonic()
    return {"start": start, "end": end, "latencies_ns": latencies, "codes": codes}


def _client_process(
    target: str, worker: int, account_number: int, chain_id: str, orders: int
) -> dict[str, Any]:
    return asyncio.run(_client(target, worker, account_number, chain_id, orders))


def _post(url: str, body: dict[str, Any]) -> None:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}, method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        response.read()


async def _account_number(target: str, address: str) -> int:
    import grpc
    from v4_proto.cosmos.auth.v1beta1 import auth_pb2
    from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_q
    from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_g

    async with grpc.aio.insecure_channel(target) as channel:
        response = await auth_g.QueryStub(channel).Account(auth_q.QueryAccountRequest(address=address))
    account = auth_pb2.BaseAccount()
    response.account.Unpack(account)
    return int(account.account_number)


def run_grpc(clients: int, orders: int, block_time: float) -> dict[str, Any]:
    """Start an emulator subprocess and broadcast ``orders`` per client from ``clients`` processes."""
    import subprocess

    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "nautilus_dydx.emulator",
            "--port",
            "0",
            "--grpc-port",
            "0",
            "--block-time",
            str(block_time),
            "--markets",
            "BTC-USD",
            "--no-synthetic",
            "--no-rate-limit",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"indexer (\S+) ws \S+ grpc (\S+) ", line)
        if match is None:
            raise RuntimeError(f"unexpected emulator output: {line!r}")
        indexer, target = match.group(1), match.group(2)
        numbers = []
        for worker in range(clients):
            import coincurve

            address = _address(coincurve.PrivateKey(_private_key(worker)).public_key.format(compressed=True))
            _post(
                f"{indexer}/faucet/tokens", {"address": address, "subaccountNumber": 0, "amount": 1_000_000}
            )
            numbers.append(asyncio.run(_account_number(target, address)))
        with ProcessPoolExecutor(max_workers=clients) as pool:
            futures = [
                pool.submit(_client_process, target, worker, numbers[worker], "localdydxprotocol", orders)
                for worker in range(clients)
            ]
            results = [f.result() for f in futures]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    latencies = sorted(ns for r in results for ns in r["latencies_ns"])
    codes: dict[str, int] = {}
    for r in results:
        for key, count in r["codes"].items():
            codes[key] = codes.get(key, 0) + count
    wall = max(r["end"] for r in results) - min(r["start"] for r in results)
    total = len(latencies)
    return {
        "clients": clients,
        "orders_per_client": orders,
        "block_time_s": block_time,
        "txs": total,
        "wall_s": round(wall, 3),
        "txs_per_s": round(total / wall, 1),
        "latency_ms": {
            "p50": round(statistics.median(latencies) / 1e6, 3),
            "p99": round(latencies[min(total - 1, int(0.99 * total))] / 1e6, 3),
            "max": round(latencies[-1] / 1e6, 3),
        },
        "rejected": codes,
    }


# --- part 2: engine only ------------------------------------------------------------------------------


def run_engine(orders: int, accounts: int, block_every: int) -> dict[str, Any]:
    """Place ``orders`` short-term orders from ``accounts`` owners straight into a ChainEngine."""
    import datetime as dt

    from nautilus_dydx.emulator.engine.chain import ChainEngine
    from nautilus_dydx.emulator.events import OrderKey, OrderSnapshot
    from nautilus_dydx.emulator.params import BlockRateLimit, BlockRateLimits

    unlimited = (BlockRateLimit(1, 10**9),)
    engine = ChainEngine(
        markets=["BTC-USD"],
        block_interval=dt.timedelta(seconds=1),
        block_rate_limits=BlockRateLimits(unlimited, unlimited, unlimited),
    )
    engine.start()
    owners = [f"dydx1benchmark{i:02d}" for i in range(accounts)]
    for owner in owners:
        engine.deposit(owner, 0, 10**14)
    engine.produce_block()
    tif_names = {0: "GTT", 1: "IOC"}
    snapshots = []
    for n in range(orders):
        worker = n % accounts
        side, subticks, tif = _order_params(worker, n // accounts)
        snapshots.append(
            OrderSnapshot(
                key=OrderKey(owners[worker], 0, n + 1, 0, 0),
                side="BUY" if side == 1 else "SELL",
                quantums=QUANTUMS,
                subticks=subticks,
                good_til_block=0,  # set per block below
                good_til_block_time=None,
                time_in_force=tif_names[tif],  # type: ignore[arg-type]
                reduce_only=False,
                client_metadata=0,
                condition_type="UNSPECIFIED",
                trigger_subticks=0,
            )
        )
    import dataclasses

    placed = rejected = 0
    place_ns = block_ns = 0
    for first in range(0, orders, block_every):
        gtb = engine.height + 20
        chunk = [dataclasses.replace(o, good_til_block=gtb) for o in snapshots[first : first + block_every]]
        started = time.perf_counter_ns()
        for order in chunk:
            try:
                engine.place_order(order)
                placed += 1
            except Exception:  # an EngineError: count it, the benchmark measures throughput
                rejected += 1
        place_ns += time.perf_counter_ns() - started
        started = time.perf_counter_ns()
        engine.produce_block()
        block_ns += time.perf_counter_ns() - started
    return {
        "orders": orders,
        "accounts": accounts,
        "block_every": block_every,
        "rejected": rejected,
        "orders_per_s": round(orders / (place_ns / 1e9), 1),
        "orders_per_s_with_blocks": round(orders / ((place_ns + block_ns) / 1e9), 1),
        "mean_place_us": round(place_ns / orders / 1e3, 2),
        # Each fill counts once for the maker and once for the taker.
        "matched_notional_usdc": sum(engine.volume(o) for o in owners) // 2 // 1_000_000,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks broadcast", description=__doc__)
    parser.add_argument("--clients", type=int, default=4, help="concurrent gRPC clients (processes)")
    parser.add_argument("--orders", type=int, default=1000, help="orders per gRPC client (default 1000)")
    parser.add_argument("--block-time", type=float, default=0.05, help="emulator block time (default 0.05)")
    parser.add_argument("--engine-orders", type=int, default=50_000, help="orders for the engine part")
    parser.add_argument("--block-every", type=int, default=500, help="engine part: orders per block")
    parser.add_argument("--skip-grpc", action="store_true", help="only the engine part")
    parser.add_argument("--json", default=None, help="also write the JSON result to this file")
    args = parser.parse_args(list(argv or []))

    result: dict[str, Any] = {"benchmark": "broadcast", "cpu_count": os.cpu_count()}
    if not args.skip_grpc:
        result["grpc"] = run_grpc(args.clients, args.orders, args.block_time)
    result["engine"] = run_engine(args.engine_orders, args.clients, args.block_every)
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as fh:
            fh.write(text + "\n")

    from benchmarks._util import markdown_table

    rows = []
    if "grpc" in result:
        g = result["grpc"]
        rows.append(
            [
                f"BroadcastTx, {g['clients']} clients",
                f"{g['txs_per_s']:,.0f} tx/s",
                f"{g['latency_ms']['p50']} ms",
                f"{g['latency_ms']['p99']} ms",
                str(sum(g["rejected"].values())),
            ]
        )
    e = result["engine"]
    rows.append(
        [
            f"engine place_order ({e['accounts']} owners)",
            f"{e['orders_per_s']:,.0f} orders/s",
            "-",
            "-",
            str(e["rejected"]),
        ]
    )
    rows.append(["engine incl. blocks", f"{e['orders_per_s_with_blocks']:,.0f} orders/s", "-", "-", "-"])
    print()
    print(markdown_table(["path", "throughput", "p50", "p99", "rejected"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
