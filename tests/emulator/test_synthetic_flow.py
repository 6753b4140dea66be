"""Between-blocks synthetic flow on the running emulator: a new book subscriber gets an update
before the next block (short-term orders stream off-chain, §5.2/§5.9), and only thanks to flow."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.events import BlockCommitted, ChainEvent, OrderPlaced

BLOCK_TIME = 0.5


async def just_after_a_block(emu: Emulator) -> int:
    """Wait until a block is produced; returns its height (the next one is ~BLOCK_TIME away)."""
    block = asyncio.Event()
    emu.engine.add_sink(lambda e: block.set() if isinstance(e, BlockCommitted) else None)
    await asyncio.wait_for(block.wait(), 5)
    return emu.engine.height


async def first_update(
    http: aiohttp.ClientSession, emu: Emulator, within: float
) -> tuple[float, int, int] | None:
    """Connect right after a block, subscribe to BTC-USD; (seconds from the handshake to the first
    ``channel_data``, height at subscription, height at arrival), or None after ``within`` s."""
    loop = asyncio.get_running_loop()
    height = await just_after_a_block(emu)
    async with http.ws_connect(emu.ws_url) as ws:
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "connected"
        start = loop.time()
        await ws.send_json({"type": "subscribe", "channel": "v4_orderbook", "id": "BTC-USD"})
        assert json.loads((await ws.receive(timeout=5)).data)["type"] == "subscribed"
        while (left := within - (loop.time() - start)) > 0:
            try:
                msg = await ws.receive(timeout=left)
            except TimeoutError:
                break
            if json.loads(msg.data)["type"] == "channel_data":
                return loop.time() - start, height, emu.engine.height
    return None


async def test_first_update_arrives_between_blocks_with_flow(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=BLOCK_TIME, seed=1, rate_limit=None) as emu:
        assert emu.config.flow_interval == 0.1
        await asyncio.sleep(1.0)  # let the makers fill the book
        for _ in range(3):
            got = await first_update(http, emu, within=5.0)
            assert got is not None
            elapsed, subscribed_at, arrived_at = got
            assert elapsed < BLOCK_TIME  # generous: flow runs every 0.1 s
            assert arrived_at == subscribed_at  # before the next block


async def test_without_flow_the_first_update_waits_for_a_block(http: aiohttp.ClientSession) -> None:
    async with Emulator(block_time=BLOCK_TIME, seed=1, rate_limit=None, flow_interval=0) as emu:
        await asyncio.sleep(1.0)
        assert await first_update(http, emu, within=0.3) is None


async def test_flow_pauses_with_the_market_and_with_blocks() -> None:
    async with Emulator(block_time=BLOCK_TIME, seed=1, rate_limit=None, flow_interval=0.02) as emu:
        await asyncio.sleep(0.8)
        for pause in ("paused", "blocks_paused"):
            setattr(emu, pause, True)
            await asyncio.sleep(0.05)  # let a flow step already under way finish
            seen: list[ChainEvent] = []
            emu.engine.add_sink(seen.append)
            await asyncio.sleep(0.3)
            assert not any(isinstance(e, OrderPlaced) for e in seen), pause
            setattr(emu, pause, False)


def test_rejects_a_negative_flow_interval() -> None:
    with pytest.raises(ValueError, match="flow_interval"):
        Emulator(flow_interval=-1)
