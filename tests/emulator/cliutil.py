"""The emulator started as its command, ``python -m nautilus_dydx.emulator``, in a child process."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator


@contextlib.asynccontextmanager
async def emulator_process(*options: str) -> AsyncIterator[tuple[asyncio.subprocess.Process, str]]:
    """Start the command and yield it with its ready line; kill it at the end if it still runs.

    It serves BTC-USD alone on ephemeral ports, with 50 ms blocks and no synthetic traders;
    ``options`` are added to its command line.
    """
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "nautilus_dydx.emulator",
        "--port",
        "0",
        "--block-time",
        "0.05",
        "--markets",
        "BTC-USD",
        "--no-synthetic",
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
        yield proc, line
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
