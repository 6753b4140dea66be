"""The TxServicer over a real grpc.aio server on 127.0.0.1 (BroadcastTx, Simulate, GetTx, faults)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from tests.emulator import txutil as tu
from tests.emulator.txutil import LONG_TERM, Harness, Key
from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc

SYNC = service_pb2.BROADCAST_MODE_SYNC


@pytest.fixture
def key() -> Key:
    return Key.from_mnemonic(tu.MNEMONIC_1)


@pytest.fixture
def chain(key: Key) -> Harness:
    return Harness.with_funds(key, account_number=12345)


@pytest.fixture
async def stub(chain: Harness) -> AsyncIterator[Any]:
    server = grpc.aio.server()
    service_pb2_grpc.add_ServiceServicer_to_server(chain.servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield service_pb2_grpc.ServiceStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


async def test_known_answer_tx_over_grpc(stub: Any, chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 123456, gtb=1_000_020)
    signed = tu.sign_tx(key, [msg], sequence=0, account_number=12345)
    reply = await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC))
    assert reply.tx_response.code == 0
    assert reply.tx_response.txhash == "4A3D9C86A823EF9E8E4802F5C1CC91F0CC16068A13E9C61E48FA8B9BAA25D552"
    again = await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC))
    assert (again.tx_response.codespace, again.tx_response.code) == ("sdk", 19)


async def test_rejections_travel_in_the_tx_response_with_grpc_ok(stub: Any, chain: Harness, key: Key) -> None:
    signed = chain.sign(key, [tu.place(key.address, 1, gtb=chain.height + 5, tif=3)])
    reply = await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC))
    response = reply.tx_response
    assert (response.codespace, response.code, response.height) == ("clob", 48, 0)
    assert response.raw_log == "Fill-or-kill has been deprecated: This field has been deprecated"
    assert response.txhash == signed.hash


async def test_request_errors_are_grpc_statuses(stub: Any, chain: Harness, key: Key) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=b"", mode=SYNC))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    signed = chain.sign(key, [tu.place(key.address, 1, gtb=chain.height + 5)])
    with pytest.raises(grpc.aio.AioRpcError) as block:
        await stub.BroadcastTx(
            service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=service_pb2.BROADCAST_MODE_BLOCK)
        )
    assert block.value.code() == grpc.StatusCode.UNKNOWN
    assert "supported types: sync, async" in (block.value.details() or "")
    assert chain.engine.open_orders(tu_ref(key)) == []


def tu_ref(key: Key) -> Any:
    from nautilus_dydx.emulator.events import SubaccountRef

    return SubaccountRef(key.address, 0)


async def test_async_mode_answers_the_hash_only(stub: Any, chain: Harness, key: Key) -> None:
    bad = chain.sign(key, [tu.place(key.address, 1, gtb=chain.height + 5, tif=3)])
    reply = await stub.BroadcastTx(
        service_pb2.BroadcastTxRequest(tx_bytes=bad.raw, mode=service_pb2.BROADCAST_MODE_ASYNC)
    )
    assert (reply.tx_response.code, reply.tx_response.txhash) == (0, bad.hash)


async def test_get_tx_and_simulate_over_grpc(stub: Any, chain: Harness, key: Key) -> None:
    signed = chain.sign(key, [tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt())])
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetTx(service_pb2.GetTxRequest(hash=signed.hash))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    assert missing.value.details() == f"tx not found: {signed.hash}"

    simulated = await stub.Simulate(service_pb2.SimulateRequest(tx_bytes=signed.raw))
    assert simulated.gas_info.gas_wanted == 1_000_000
    assert simulated.gas_info.gas_used > 0
    assert chain.sequence(key) == 0

    reply = await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC))
    assert reply.tx_response.code == 0
    height = chain.engine.produce_block()
    found = await stub.GetTx(service_pb2.GetTxRequest(hash=signed.hash))
    assert (found.tx_response.height, found.tx_response.txhash) == (height, signed.hash)

    with pytest.raises(grpc.aio.AioRpcError) as stale:
        await stub.Simulate(service_pb2.SimulateRequest(tx_bytes=signed.raw))  # sequence now 1
    assert stale.value.code() == grpc.StatusCode.UNKNOWN
    assert (stale.value.details() or "").startswith("account sequence mismatch, expected 1, got 0")


async def test_broadcast_delay_fault_lands_the_tx_before_answering(
    stub: Any, chain: Harness, key: Key
) -> None:
    chain.servicer.faults.broadcast_delay = 5.0
    signed = chain.sign(key, [tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt())])
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC), timeout=0.05)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert chain.sequence(key) == 1  # it landed: a retry of the same bytes is a duplicate
    chain.servicer.faults.broadcast_delay = 0.0
    retry = await stub.BroadcastTx(service_pb2.BroadcastTxRequest(tx_bytes=signed.raw, mode=SYNC))
    assert retry.tx_response.code == 19
