"""Fixtures shared by the emulator's tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain aiohttp session for talking to an emulator over real sockets."""
    async with aiohttp.ClientSession() as session:
        yield session
