"""Ctrl-C, SIGTERM and ``--seconds`` end ``nautilus-dydx book`` while its start-up is stalled.

The command runs as a child process (real signals, real exit code, everything it writes to stderr)
against a local venue that never finishes answering: one that accepts TCP and never answers the
WebSocket handshake, one whose WebSocket says ``connected`` but whose REST never answers the market
check. Each signal is sent once the server has seen the request the client is stuck on, so the stop
lands in that phase. A clean stop is exit 0 with nothing at all on stderr (no error line, no
unclosed-session or pending-task warning); the 10 s bounds only guard against a hang.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from nautilus_dydx.cli import _view
from nautilus_dydx.core.errors import ConfigError

pytestmark = pytest.mark.skipif(os.name != "posix", reason="POSIX signals")

HANG_GUARD = 10.0
COMMAND = "import sys; from nautilus_dydx.cli import main; sys.exit(main())"  # the installed script


@contextlib.asynccontextmanager
async def silent_venue() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """A server that accepts connections and never sends a byte; yields its URL and an event set
    at the first connection."""
    accepted = asyncio.Event()
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)
        accepted.set()
        await reader.read()  # until the client goes away

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}", accepted
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


@contextlib.asynccontextmanager
async def mute_rest_venue() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An indexer whose WebSocket says ``connected`` and whose REST routes never answer; yields
    its URL and an event set when the first REST request arrives."""
    asked = asyncio.Event()
    release = asyncio.Event()

    async def ws(request: web.Request) -> web.WebSocketResponse:
        sock = web.WebSocketResponse()
        await sock.prepare(request)
        await sock.send_str('{"type":"connected","connection_id":"c1","message_id":0}')
        async for _ in sock:
            pass
        return sock

    async def never(request: web.Request) -> web.Response:
        asked.set()
        await release.wait()
        return web.Response(status=503)

    app = web.Application()
    app.router.add_get("/v4/ws", ws)
    app.router.add_get("/v4/{tail:.*}", never)
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", asked
    finally:
        release.set()
        await runner.cleanup()


VENUES = {"ws-handshake": silent_venue, "market-check": mute_rest_venue}


async def book(url: str, *options: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-W",
        "always::ResourceWarning",  # an unclosed socket or session is reported, not ignored
        "-c",
        COMMAND,
        "book",
        "BTC-USD",
        "--indexer-url",
        url,
        *options,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def finish(proc: asyncio.subprocess.Process) -> tuple[int, str, str]:
    try:
        out, err = await asyncio.wait_for(proc.communicate(), HANG_GUARD)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the command was still running 10 s after it should have stopped") from None
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("phase", list(VENUES))
async def test_signal_during_a_stalled_start_up_exits_0(phase: str, sig: signal.Signals) -> None:
    async with VENUES[phase]() as (url, reached):
        proc = await book(url, "--seconds", "600")
        try:
            await asyncio.wait_for(reached.wait(), HANG_GUARD)
        finally:
            if proc.returncode is None:
                proc.send_signal(sig)
        code, out, err = await finish(proc)
    assert (code, err) == (0, "")
    assert out == ""  # stopped before the stream began: nothing to draw


@pytest.mark.parametrize("phase", list(VENUES))
async def test_seconds_counts_the_stalled_start_up(phase: str) -> None:
    async with VENUES[phase]() as (url, reached):
        proc = await book(url, "--json", "--seconds", "1")
        code, out, err = await finish(proc)
        assert reached.is_set()  # the deadline did fall in that phase
    assert (code, out, err) == (0, "", "")


# -- until_stopped, the start-up's race against the stop event ----------------------------------


async def test_until_stopped_cancels_the_work_and_lets_it_unwind() -> None:
    stop = asyncio.Event()
    started, unwound = asyncio.Event(), asyncio.Event()

    async def stalled() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0)  # cleanup that itself awaits
            unwound.set()

    racing = asyncio.create_task(_view.until_stopped(stalled(), stop))
    await started.wait()
    stop.set()
    assert await racing is False
    assert unwound.is_set()


async def test_until_stopped_returns_true_or_raises_what_the_work_raised() -> None:
    stop = asyncio.Event()

    async def done() -> None:
        await asyncio.sleep(0)

    async def failing() -> None:
        await asyncio.sleep(0)
        raise ConfigError("no such market")

    assert await _view.until_stopped(done(), stop) is True
    with pytest.raises(ConfigError, match="no such market"):
        await _view.until_stopped(failing(), stop)


async def test_until_stopped_with_stop_already_set_returns_false_at_once() -> None:
    stop = asyncio.Event()
    stop.set()
    cancelled = False

    async def stalled() -> None:
        nonlocal cancelled
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled = True
            raise

    assert await _view.until_stopped(stalled(), stop) is False
    assert cancelled
