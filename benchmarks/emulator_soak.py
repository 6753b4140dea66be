"""Soak the emulator: many WebSocket clients and a REST poller for N minutes.

Starts ``python -m nautilus_dydx.emulator`` as a subprocess (0.25 s blocks, 3 markets, synthetic
traders, no REST rate limit) so the load generator does not share its event loop, then runs 20
aiohttp WebSocket clients (orderbook + trades + markets per client, half of them batched) and a REST
poller (4 concurrent loops over market-data routes). Prints WebSocket messages/s received (= sent),
REST requests/s served, errors, and the emulator's RSS sampled at start, middle and end.

Usage: ``python benchmarks/emulator_soak.py [--minutes 10] [--clients 20]``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import sys
import time
from dataclasses import dataclass, field

import aiohttp

MARKETS = ("BTC-USD", "ETH-USD", "SOL-USD")
REST_PATHS = (
    "/v4/orderbooks/perpetualMarket/BTC-USD",
    "/v4/trades/perpetualMarket/ETH-USD?limit=100",
    "/v4/perpetualMarkets",
    "/v4/height",
    "/v4/candles/perpetualMarkets/SOL-USD?resolution=1MIN&limit=50",
)


@dataclass
class Stats:
    ws_messages: int = 0
    ws_errors: int = 0
    ws_disconnects: int = 0
    rest_ok: int = 0
    rest_errors: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


async def ws_client(url: str, index: int, stats: Stats, stop: asyncio.Event) -> None:
    batched = index % 2 == 0
    async with aiohttp.ClientSession() as session:
        while not stop.is_set():
            try:
                async with session.ws_connect(url, heartbeat=None) as ws:
                    ticker = MARKETS[index % len(MARKETS)]
                    for sub in (
                        {"channel": "v4_orderbook", "id": ticker, "batched": batched},
                        {"channel": "v4_trades", "id": ticker, "batched": batched},
                        {"channel": "v4_markets", "batched": batched},
                    ):
                        await ws.send_json({"type": "subscribe", **sub})
                    while not stop.is_set():
                        try:
                            msg = await ws.receive(timeout=1.0)
                        except TimeoutError:
                            continue
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            stats.ws_disconnects += 1
                            break
                        stats.ws_messages += 1
                        if '"type":"error"' in msg.data:
                            stats.ws_errors += 1
            except aiohttp.ClientError:
                stats.ws_errors += 1
                await asyncio.sleep(0.5)


async def rest_poller(base: str, stats: Stats, stop: asyncio.Event, offset: int) -> None:
    async with aiohttp.ClientSession() as session:
        i = offset
        while not stop.is_set():
            path = REST_PATHS[i % len(REST_PATHS)]
            i += 1
            try:
                async with session.get(base + path) as resp:
                    await resp.read()
                    if resp.status == 200:
                        stats.rest_ok += 1
                    else:
                        stats.rest_errors += 1
            except aiohttp.ClientError:
                stats.rest_errors += 1
                await asyncio.sleep(0.1)


async def wait_ready(base: str) -> None:
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(base + "/health") as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("emulator did not come up")


async def soak(minutes: float, clients: int, block_time: float) -> int:
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nautilus_dydx.emulator",
        "--port",
        str(port),
        "--grpc-port",
        str(free_port()),
        "--block-time",
        str(block_time),
        "--markets",
        ",".join(MARKETS),
        "--no-rate-limit",
        stdout=asyncio.subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    stats = Stats()
    stop = asyncio.Event()
    try:
        await wait_ready(base)
        stats.rss.append((0.0, rss_kib(proc.pid)))
        tasks = [
            asyncio.create_task(ws_client(f"ws://127.0.0.1:{port}/v4/ws", i, stats, stop))
            for i in range(clients)
        ]
        tasks += [asyncio.create_task(rest_poller(base, stats, stop, k)) for k in range(4)]
        duration = minutes * 60
        started = time.monotonic()
        next_report = started + duration / 2
        while (elapsed := time.monotonic() - started) < duration:
            await asyncio.sleep(min(1.0, duration - elapsed))
            if time.monotonic() >= next_report:
                stats.rss.append((time.monotonic() - started, rss_kib(proc.pid)))
                next_report = float("inf")
        elapsed = time.monotonic() - started
        stats.rss.append((elapsed, rss_kib(proc.pid)))
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        if proc.returncode is None:
            proc.send_signal(2)  # SIGINT: the CLI stops cleanly with exit code 0
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()
    report = {
        "minutes": round(elapsed / 60, 2),
        "ws_clients": clients,
        "ws_messages_per_s": round(stats.ws_messages / elapsed, 1),
        "ws_errors": stats.ws_errors,
        "ws_disconnects": stats.ws_disconnects,
        "rest_requests_per_s": round(stats.rest_ok / elapsed, 1),
        "rest_errors": stats.rest_errors,
        "rss_kib": {
            label: kib for label, (_, kib) in zip(("start", "middle", "end"), stats.rss, strict=False)
        },
        "emulator_exit_code": proc.returncode,
    }
    print(json.dumps(report, indent=2))
    return 0 if proc.returncode == 0 and stats.rest_errors == 0 and stats.ws_errors == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--block-time", type=float, default=0.25)
    args = parser.parse_args()
    if os.name != "posix":
        print("RSS sampling reads /proc: Linux only", file=sys.stderr)
    return asyncio.run(soak(args.minutes, args.clients, args.block_time))


if __name__ == "__main__":
    sys.exit(main())
