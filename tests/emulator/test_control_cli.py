"""``python -m nautilus_dydx.emulator``: one ready line, serves, stops on SIGINT/SIGTERM with exit 0."""

from __future__ import annotations

import asyncio
import os
import re
import signal

import aiohttp
import pytest
from tests.emulator.cliutil import emulator_process

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
async def test_cli_ready_line_and_clean_stop(sig: signal.Signals) -> None:
    async with emulator_process() as (proc, line):
        match = re.search(r"indexer (http://127\.0\.0\.1:\d+) ws (ws://127\.0\.0\.1:\d+/v4/ws)", line)
        assert match, line
        async with aiohttp.ClientSession() as http:
            async with http.get(match.group(1) + "/v4/perpetualMarkets") as resp:
                assert resp.status == 200
                assert list((await resp.json())["markets"]) == ["BTC-USD"]
            async with http.ws_connect(match.group(2)) as ws:
                assert (await ws.receive_json(timeout=5))["type"] == "connected"
                proc.send_signal(sig)
                closing = await ws.receive(timeout=10)
                assert closing.type == aiohttp.WSMsgType.CLOSE
                assert closing.data == 1012
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert proc.stdout is not None
        rest = (await proc.stdout.read()).decode()
        assert rest == ""  # exactly one line printed
