"""The official ``dydx-v4-client`` (PyPI) drives the emulator's indexer and faucet.

The official client pins an older v4-proto than this project, so it gets a virtualenv of its own,
cached in ``.venv-official/`` at the repository root, and runs the script in
``tests/emulator/official_client/`` as a subprocess against an in-process Emulator.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.app import Emulator

ROOT = Path(__file__).resolve().parents[2]
VENV = ROOT / ".venv-official"
SCRIPT = Path(__file__).resolve().parent / "official_client" / "drive_indexer.py"
ADDRESS = "dydx1official0000000000000000000000000000"
_BIN = "Scripts" if os.name == "nt" else "bin"


def _python() -> Path:
    return VENV / _BIN / ("python.exe" if os.name == "nt" else "python")


def _installed() -> bool:
    check = subprocess.run(
        [str(_python()), "-c", "import dydx_v4_client.indexer.socket.websocket"], capture_output=True
    )
    return check.returncode == 0


@pytest.fixture(scope="module")
def official_python() -> Path:
    """The official client's interpreter; creates and fills the cached virtualenv on first use."""
    if not _python().exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not _installed():
        pip = subprocess.run(
            [str(_python()), "-m", "pip", "install", "-q", "dydx-v4-client"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if pip.returncode != 0:
            unreachable = ("Could not find a version", "No matching distribution", "connection", "resolve")
            if any(text in pip.stderr for text in unreachable):
                pytest.skip(f"pip cannot reach the registry to install dydx-v4-client: {pip.stderr[-300:]}")
            raise AssertionError(f"pip install dydx-v4-client failed:\n{pip.stderr}")
    return _python()


async def _run(python: Path, *args: str) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        str(python), str(SCRIPT), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), 90)
    assert proc.returncode == 0, err.decode()
    result: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return result


async def until(predicate: Callable[[], bool]) -> None:
    for _ in range(600):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached within 30 s")


# The first run creates the virtualenv and installs from PyPI: allow for a slow registry.
@pytest.mark.timeout(900)
async def test_official_client_reads_the_emulator(official_python: Path) -> None:
    async with Emulator(block_time=0.1, seed=3, markets=["BTC-USD", "ETH-USD"], batch_interval=0.1) as emu:
        args = (emu.indexer_url, emu.ws_url, ADDRESS)
        funded = await _run(official_python, "fund", *args)
        assert funded == {"status": 202}
        await until(lambda: ADDRESS in emu.indexer.by_address)  # the deposit commits in the next block
        # Part 1 has no gRPC: the test places the account's orders through the engine.
        await until(lambda: bool(emu.engine.book(0)[1]))
        best_ask = emu.engine.book(0)[1][0][0]
        gtb = emu.engine.height + 20
        below_ask = (best_ask // 100_000 - 500) * 100_000
        taker = order_snapshot(ADDRESS, 1, "BUY", 1_000_000, best_ask, gtb=gtb, tif="IOC", client_metadata=2)
        resting = order_snapshot(ADDRESS, 2, "BUY", 1_000_000, below_ask, gtb=gtb, client_metadata=2)
        emu.engine.place_order(taker)  # takes liquidity
        emu.engine.place_order(resting)  # rests
        height = emu.engine.height
        await until(lambda: emu.indexer.height > height)
        result = await _run(official_python, "read", *args)

    assert result["market"]["ticker"] == "BTC-USD"
    assert result["market"]["quantums_0_001"] == 10_000_000
    assert result["market"]["subticks_50000"] == 5_000_000_000
    assert result["book"]["bids"] > 0
    assert result["book"]["asks"] > 0
    assert result["trades"] > 0
    assert result["candles"] > 0
    assert int(result["height"]) > 0
    assert float(result["equity"]) > 0
    assert result["positions"] == ["BTC-USD"]
    assert ("2", "BEST_EFFORT_OPENED") in [tuple(o) for o in result["orders"]]
    assert ("1", "FILLED") in [tuple(o) for o in result["orders"]]
    assert [tuple(f) for f in result["fills"]] == [("BUY", "0.0001", "TAKER")]
    assert result["order_lookup"] is True
    assert result["transfers"] == ["DEPOSIT"]
    stream = result["stream"]
    assert stream["complete"], stream
    assert stream["messages"]["connected:"] == 1
