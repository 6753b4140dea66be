"""The validator gRPC server itself: TLS with the generated certificate, injected status faults,
tx-service faults and block pause/resume through the control API, the CLI's gRPC options."""

from __future__ import annotations

import asyncio
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from cryptography import x509
from tests.emulator.cliutil import emulator_process
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_q
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_g

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.validator.server import GrpcFaults, ValidatorServer


async def _height(channel: grpc.aio.Channel) -> int:
    block = await tm_g.ServiceStub(channel).GetLatestBlock(tm_q.GetLatestBlockRequest(), timeout=5)
    return int(block.block.header.height)


async def _post(emu: Emulator, path: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http:
        async with http.post(emu.indexer_url + path, json=body if body is not None else {}) as resp:
            return resp.status, await resp.json()


async def until(predicate: Callable[[], Any], attempts: int = 400) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.025)
    raise AssertionError("condition not reached")


async def test_tls_with_the_generated_certificate() -> None:
    async with Emulator(block_time=3600, synthetic=False, grpc_tls=True) as emu:
        pem = emu.grpc_certificate_pem
        assert pem is not None
        cert = x509.load_pem_x509_certificate(pem)
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "localhost" in names.get_values_for_type(x509.DNSName)
        assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]

        assert emu.grpc_target is not None
        credentials = grpc.ssl_channel_credentials(root_certificates=pem)
        async with grpc.aio.secure_channel(emu.grpc_target, credentials) as channel:
            assert await _height(channel) == emu.engine.height
        port = emu.grpc_target.rsplit(":", 1)[1]
        async with grpc.aio.secure_channel(f"localhost:{port}", credentials) as channel:
            assert await _height(channel) == emu.engine.height

        # Without trusting the certificate, or in plaintext, there is no service.
        async with grpc.aio.secure_channel(emu.grpc_target, grpc.ssl_channel_credentials()) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as untrusted:
                await _height(channel)
        assert untrusted.value.code() == grpc.StatusCode.UNAVAILABLE
        async with grpc.aio.insecure_channel(emu.grpc_target) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as plaintext:
                await _height(channel)
        assert plaintext.value.code() == grpc.StatusCode.UNAVAILABLE

        async with aiohttp.ClientSession() as http:
            async with http.get(emu.indexer_url + "/emulator/grpc/certificate") as resp:
                assert resp.status == 200
                assert await resp.read() == pem


async def test_plaintext_has_no_certificate() -> None:
    async with Emulator(block_time=3600, synthetic=False) as emu:
        assert emu.grpc_certificate_pem is None
        async with aiohttp.ClientSession() as http:
            async with http.get(emu.indexer_url + "/emulator/grpc/certificate") as resp:
                assert resp.status == 404


@pytest.mark.parametrize("status", ["UNAVAILABLE", "RESOURCE_EXHAUSTED"])
async def test_injected_status_faults(status: str) -> None:
    async with Emulator(block_time=3600, synthetic=False) as emu:
        assert emu.grpc_target is not None
        async with grpc.aio.insecure_channel(emu.grpc_target) as channel:
            assert await _height(channel) == emu.engine.height
            assert await _post(emu, "/emulator/faults/grpc", {"status": status, "count": 2}) == (
                200,
                {"status": status, "count": 2},
            )
            for _ in range(2):
                with pytest.raises(grpc.aio.AioRpcError) as failed:
                    await _height(channel)
                assert failed.value.code() == getattr(grpc.StatusCode, status)
            assert await _height(channel) == emu.engine.height
            # Any method counts, even one nobody serves.
            await _post(emu, "/emulator/faults/grpc", {"status": status, "count": 1})
            with pytest.raises(grpc.aio.AioRpcError) as unknown:
                await channel.unary_unary("/x.Y/Z")(b"")
            assert unknown.value.code() == getattr(grpc.StatusCode, status)
            with pytest.raises(grpc.aio.AioRpcError) as after:
                await channel.unary_unary("/x.Y/Z")(b"")
            assert after.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_fault_route_validation() -> None:
    async with Emulator(block_time=3600, synthetic=False) as emu:
        assert (await _post(emu, "/emulator/faults/grpc", {"status": "INTERNAL", "count": 1}))[0] == 400
        assert (await _post(emu, "/emulator/faults/grpc", {"status": "UNAVAILABLE", "count": -1}))[0] == 400
        assert (await _post(emu, "/emulator/faults/grpc", {"status": "UNAVAILABLE", "count": True}))[0] == 400
        assert emu.validator.faults.count == 0
        assert (await _post(emu, "/emulator/faults/broadcast-delay", {"seconds": "x"}))[0] == 400
        assert (await _post(emu, "/emulator/faults/broadcast-delay", {"seconds": -1}))[0] == 400
        assert (await _post(emu, "/emulator/faults/sequence-mismatch", {"count": 1.5}))[0] == 400


async def test_tx_fault_routes_set_the_tx_service_faults() -> None:
    async with Emulator(block_time=3600, synthetic=False) as emu:
        faults = emu.validator.tx_faults
        assert await _post(emu, "/emulator/faults/broadcast-delay", {"seconds": 0.25}) == (
            200,
            {"seconds": 0.25},
        )
        assert faults.broadcast_delay == 0.25
        assert await _post(emu, "/emulator/faults/sequence-mismatch", {"count": 3}) == (200, {"count": 3})
        assert faults.force_sequence_mismatch == 3
        await _post(emu, "/emulator/faults/broadcast-delay", {"seconds": 0})
        assert faults.broadcast_delay == 0


async def test_block_pause_and_resume() -> None:
    async with Emulator(block_time=0.02, synthetic=False) as emu:
        assert emu.grpc_target is not None
        async with grpc.aio.insecure_channel(emu.grpc_target) as channel:
            start = await _height(channel)
            await until(lambda: _grows(channel, start))
            status, body = await _post(emu, "/emulator/blocks/pause")
            assert status == 200
            assert body["blocksPaused"] is True
            paused_at = body["height"]
            # Ten block intervals pass without a block ...
            await asyncio.sleep(0.2)
            assert await _height(channel) == paused_at
            async with aiohttp.ClientSession() as http:
                async with http.get(emu.indexer_url + "/emulator/state") as resp:
                    state = await resp.json()
            assert state["blocksPaused"] is True
            assert state["grpcTarget"] == emu.grpc_target
            # ... but a block can still be produced on demand.
            assert await _post(emu, "/emulator/block") == (200, {"height": paused_at + 1})
            assert await _height(channel) == paused_at + 1
            status, body = await _post(emu, "/emulator/blocks/resume")
            assert (status, body["blocksPaused"]) == (200, False)
            await until(lambda: _grows(channel, paused_at + 1))


async def _grows(channel: grpc.aio.Channel, height: int) -> bool:
    return await _height(channel) > height


async def test_server_alone_and_restart() -> None:
    from nautilus_dydx.emulator.engine.chain import ChainEngine

    engine = ChainEngine(markets=["BTC-USD"])
    engine.start()
    server = ValidatorServer(engine)
    with pytest.raises(RuntimeError):
        _ = server.target
    await server.start()
    try:
        async with grpc.aio.insecure_channel(server.target) as channel:
            assert await _height(channel) == 1
    finally:
        await server.stop()
    # The port is released.
    again = ValidatorServer(engine, port=server.port or 0)
    await again.start()
    await again.stop()


async def test_bind_failure_is_an_os_error() -> None:
    from nautilus_dydx.emulator.engine.chain import ChainEngine

    engine = ChainEngine(markets=["BTC-USD"])
    first = ValidatorServer(engine)
    await first.start()
    try:
        with pytest.raises(OSError, match="cannot bind"):
            await ValidatorServer(engine, port=first.port or 0).start()
    finally:
        await first.stop()


def test_grpc_faults_take() -> None:
    faults = GrpcFaults()
    assert faults.take() is None
    faults.status, faults.count = "RESOURCE_EXHAUSTED", 2
    assert [faults.take(), faults.take(), faults.take()] == ["RESOURCE_EXHAUSTED", "RESOURCE_EXHAUSTED", None]


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
async def test_cli_serves_grpc_over_tls(tmp_path: Path) -> None:
    cert_path = tmp_path / "node.pem"
    tls = ("--grpc-port", "0", "--grpc-tls", "--grpc-cert-out", str(cert_path))
    async with emulator_process(*tls) as (proc, line):
        match = re.search(r" grpc (127\.0\.0\.1:\d+) \(tls, certificate (\S+)\) control ", line)
        assert match, line
        assert match.group(2) == str(cert_path)
        credentials = grpc.ssl_channel_credentials(root_certificates=cert_path.read_bytes())
        async with grpc.aio.secure_channel(match.group(1), credentials) as channel:
            info = await tm_g.ServiceStub(channel).GetNodeInfo(tm_q.GetNodeInfoRequest(), timeout=5)
            assert info.default_node_info.network == "localdydxprotocol"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
