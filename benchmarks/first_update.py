"""Time from the WebSocket handshake to the first order-book message, on the embedded emulator.

For each trial a fresh ``WsClient`` connects (the handshake ends when the server's ``connected``
arrives), subscribes to ``v4_orderbook`` BTC-USD, and the delays to the snapshot (``subscribed``) and
to the first update (``channel_data``) are recorded. Reported as percentiles over the trials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from collections.abc import Sequence

DESCRIPTION = "WS handshake -> first BTC-USD book snapshot / update latency on the emulator"


async def _trial(ws_url: str) -> tuple[float, float]:
    from nautilus_dydx.schemas.stream import MarketStreamMsg, OrderbookSubscribed, OrderbookUpdate
    from nautilus_dydx.transport.ws import WsClient

    loop = asyncio.get_running_loop()
    marks: dict[str, float] = {}
    done = asyncio.Event()

    def on_message(msg: MarketStreamMsg) -> None:
        if isinstance(msg, OrderbookSubscribed) and "snapshot" not in marks:
            marks["snapshot"] = loop.time()
        elif isinstance(msg, OrderbookUpdate) and "update" not in marks:
            marks["update"] = loop.time()
            done.set()

    ws = WsClient(ws_url)
    ws.add_callback(on_message)
    await ws.connect()
    handshake = loop.time()
    await ws.subscribe("v4_orderbook", "BTC-USD")
    await asyncio.wait_for(done.wait(), 10)
    await ws.close()
    return marks["snapshot"] - handshake, marks["update"] - handshake


async def run(trials: int, block_time: float) -> dict[str, object]:
    from nautilus_dydx.emulator.app import Emulator

    async with Emulator(port=0, block_time=block_time, seed=1, rate_limit=None) as emu:
        await asyncio.sleep(1.0)  # let the synthetic market fill the book
        results = [await _trial(emu.ws_url) for _ in range(trials)]
    snap = sorted(r[0] * 1000 for r in results)
    upd = sorted(r[1] * 1000 for r in results)

    def pct(values: list[float], q: float) -> float:
        return round(values[min(len(values) - 1, int(q * len(values)))], 3)

    return {
        "trials": trials,
        "block_time_s": block_time,
        "snapshot_ms": {
            "p50": round(statistics.median(snap), 3),
            "p95": pct(snap, 0.95),
            "max": round(snap[-1], 3),
        },
        "first_update_ms": {
            "p50": round(statistics.median(upd), 3),
            "p95": pct(upd, 0.95),
            "max": round(upd[-1], 3),
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks first_update", description=__doc__)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--block-time", type=float, default=0.5, help="emulator block interval (default 0.5)")
    args = parser.parse_args(list(argv or []))
    print(json.dumps(asyncio.run(run(args.trials, args.block_time)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
