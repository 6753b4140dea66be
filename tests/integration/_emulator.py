"""Helpers for the integration tests that run against the emulator."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp

from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.emulator.app import Emulator


async def control(emu: Emulator, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """Call the emulator's control API and return the decoded JSON answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, emu.indexer_url + path, json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        return await resp.json()


def local_config(emu: Emulator) -> DydxConfig:
    """A config pointing at the running emulator."""
    port = int(emu.indexer_url.rsplit(":", 1)[1])
    return DydxConfig.local(port=port)


async def until(predicate: Callable[[], object], limit: float = 15.0) -> None:
    """Wait until ``predicate()`` is true, looking every 20 ms; fail after ``limit`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.02)
