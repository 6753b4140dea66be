"""``cosmos.tx.v1beta1.Service``: BroadcastTx, Simulate and GetTx of the emulated validator.

``BroadcastTx`` answers as a node does in ``BROADCAST_MODE_SYNC`` (protocol reference §6.5): the gRPC
status is OK and the outcome of CheckTx is in ``TxResponse`` (``code`` 0, or ``codespace`` / ``code``
/ ``raw_log`` of the rejection), ``height`` is 0. ``ASYNC`` runs the same checks but answers only the
hash, as the node answers before CheckTx reports. Other modes are refused as the SDK refuses them.

The checks are :mod:`.tx`'s (decode, signature, replay, ante rules) followed by :mod:`.messages`
(engine calls). Identical bytes already accepted get sdk 19 with an empty ``raw_log``, as CometBFT's
mempool cache answers. On success, ``data`` carries the hex of a ``TxMsgData`` with one response per
message (for ``MsgBatchCancel`` the succeeded / failed ids) — an emulator convenience: a real node's
CheckTx leaves it empty.

``GetTx`` finds transactions that are in a block: stateful transactions once the block after their
acceptance is produced. Short-term order transactions never enter a block (they live in the memclob),
so ``GetTx`` does not find them, as on the venue.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import grpc  # type: ignore[import-untyped,unused-ignore]
from google.protobuf import any_pb2  # type: ignore[import-untyped,unused-ignore]
from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2
from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc

from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.events import BlockCommitted, ChainEvent
from nautilus_dydx.emulator.validator.messages import apply_messages, is_clob, pack
from nautilus_dydx.emulator.validator.tx import (
    AnteHandler,
    AnteOutcome,
    DecodedTx,
    decode_tx,
    tx_hash,
)

__all__ = ["MEMPOOL_CACHE_SIZE", "TxFaults", "TxServicer", "estimate_gas"]

log = logging.getLogger(__name__)

#: CometBFT's default mempool cache size (hashes of transactions already seen).
MEMPOOL_CACHE_SIZE = 10_000
#: Transactions kept for GetTx.
TX_HISTORY_SIZE = 100_000
#: x/auth defaults: gas per byte of transaction, per secp256k1 signature verification.
TX_SIZE_COST_PER_BYTE = 10
SIG_VERIFY_COST_SECP256K1 = 1_000
#: A flat cost per executed non-clob message (the emulator does not meter store access).
MESSAGE_GAS = 50_000


def estimate_gas(tx: DecodedTx) -> int:
    """A deterministic gas figure: size and signature costs of the ante handler, plus a flat cost for
    every message that runs a message server (clob messages are handled in the ante handler)."""
    executed = sum(1 for m in tx.messages if not is_clob(m))
    return (
        TX_SIZE_COST_PER_BYTE * len(tx.raw)
        + SIG_VERIFY_COST_SECP256K1 * max(1, len(tx.signatures))
        + MESSAGE_GAS * executed
    )


@dataclass
class TxFaults:
    """Faults of the broadcast path, mutated by the control API.

    Attributes:
        broadcast_delay: seconds to wait before answering a BroadcastTx (the transaction is checked
            and applied first, so a client that times out must find out whether it landed).
        force_sequence_mismatch: the next N transactions that reach the sequence check (stateful
            ones) fail with sdk 32, whatever their sequence; the account's sequence is unchanged.
    """

    broadcast_delay: float = 0.0
    force_sequence_mismatch: int = 0


@dataclass(slots=True)
class _Included:
    tx: DecodedTx
    height: int
    data: str
    gas_wanted: int
    gas_used: int


class TxServicer(service_pb2_grpc.ServiceServicer):  # type: ignore[misc]
    """The transaction service of the emulated validator.

    Args:
        engine: the chain that accounts, sequences and messages are checked against.
        chain_id: the chain id signatures must commit to.
        faults: injected faults (a fresh :class:`TxFaults` when None); the object is kept, so the
            control API can change it at run time.
        min_gas_prices: the node's minimum gas prices by denom, per unit of gas, that a transaction
            without clob messages must pay in CheckTx; None for the venue's defaults, empty for none
            (see :class:`~nautilus_dydx.emulator.validator.tx.AnteHandler`).
    """

    def __init__(
        self,
        engine: ChainEngine,
        *,
        chain_id: str,
        faults: TxFaults | None = None,
        min_gas_prices: Mapping[str, Decimal] | None = None,
    ) -> None:
        self.engine = engine
        self.chain_id = chain_id
        self.faults = faults if faults is not None else TxFaults()
        self.ante = AnteHandler(engine, chain_id=chain_id, min_gas_prices=min_gas_prices)
        self._cache: OrderedDict[str, None] = OrderedDict()
        self._included: OrderedDict[str, _Included] = OrderedDict()
        self._block_times: OrderedDict[int, dt.datetime] = OrderedDict()
        engine.add_sink(self._on_event)

    # --- the sans-I/O core, usable without a server -------------------------------------------------

    def broadcast(self, raw: bytes) -> Any:
        """Check and apply one transaction as CheckTx does; returns its ``TxResponse`` (SYNC form)."""
        hash_ = tx_hash(raw)
        if hash_ in self._cache:
            self._cache.move_to_end(hash_)
            return abci_pb2.TxResponse(txhash=hash_, codespace="sdk", code=19)
        try:
            tx = decode_tx(raw)
            outcome = self.ante.run(tx, force_sequence_mismatch=self._consume_forced_mismatch)
            responses = apply_messages(self.engine, tx.messages, hash_)
        except EngineError as exc:
            log.debug("tx %s rejected: %s %d %s", hash_, exc.codespace, exc.code, exc.raw_log)
            return abci_pb2.TxResponse(
                txhash=hash_, codespace=exc.codespace, code=exc.code, raw_log=exc.raw_log
            )
        self.ante.commit(outcome)
        self._remember(hash_)
        data = abci_pb2.TxMsgData(msg_responses=[pack(r) for r in responses]).SerializeToString()
        data_hex = data.hex().upper()
        if not outcome.short_term:
            self._include(outcome, data_hex)
        log.debug("tx %s accepted (%d messages)", hash_, len(tx.messages))
        return abci_pb2.TxResponse(txhash=hash_, data=data_hex)

    def simulate(self, raw: bytes) -> tuple[Any, Any]:
        """``(GasInfo, Result)`` of a transaction, checked without its signature or clob effects.

        Raises:
            EngineError: a rejection of the decode, message or replay checks.
        """
        tx = decode_tx(raw)
        outcome = self.ante.run(tx, simulate=True)
        gas_info = abci_pb2.GasInfo(gas_wanted=outcome.gas_wanted, gas_used=estimate_gas(tx))
        return gas_info, abci_pb2.Result()

    # --- gRPC -----------------------------------------------------------------------------------------

    async def BroadcastTx(self, request: Any, context: Any) -> Any:
        """``/cosmos.tx.v1beta1.Service/BroadcastTx``: SYNC (and ASYNC) broadcast."""
        if not request.tx_bytes:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid empty tx")
        mode = request.mode
        if mode not in (service_pb2.BROADCAST_MODE_SYNC, service_pb2.BROADCAST_MODE_ASYNC):
            await context.abort(
                grpc.StatusCode.UNKNOWN, "unsupported return type unspecified; supported types: sync, async"
            )
        response = self.broadcast(bytes(request.tx_bytes))
        if mode == service_pb2.BROADCAST_MODE_ASYNC and response.code != 19:
            response = abci_pb2.TxResponse(txhash=response.txhash)
        if self.faults.broadcast_delay > 0:
            await asyncio.sleep(self.faults.broadcast_delay)
        return service_pb2.BroadcastTxResponse(tx_response=response)

    async def Simulate(self, request: Any, context: Any) -> Any:
        """``/cosmos.tx.v1beta1.Service/Simulate``: gas of a transaction (no clob validation)."""
        raw = bytes(request.tx_bytes)
        if not raw and request.HasField("tx"):
            raw = request.tx.SerializeToString()
        if not raw:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "empty txBytes is not allowed")
        try:
            gas_info, result = self.simulate(raw)
        except EngineError as exc:
            await context.abort(grpc.StatusCode.UNKNOWN, f"{exc.raw_log} with gas used: '0'")
            raise  # unreachable: abort raises
        return service_pb2.SimulateResponse(gas_info=gas_info, result=result)

    async def GetTx(self, request: Any, context: Any) -> Any:
        """``/cosmos.tx.v1beta1.Service/GetTx``: a transaction that is in a block, by hash."""
        if not request.hash:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tx hash cannot be empty")
        found = self.lookup(request.hash)
        if found is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"tx not found: {request.hash}")
        return found

    def lookup(self, hash_: str) -> Any | None:
        """The ``GetTxResponse`` of a transaction in a committed block, or None."""
        included = self._included.get(hash_.upper())
        if included is None or included.height > self.engine.height:
            return None
        tx = included.tx.to_tx()
        response = abci_pb2.TxResponse(
            height=included.height,
            txhash=included.tx.hash,
            data=included.data,
            gas_wanted=included.gas_wanted,
            gas_used=included.gas_used,
            tx=any_pb2.Any(type_url="/cosmos.tx.v1beta1.Tx", value=tx.SerializeToString()),
        )
        time = self._block_times.get(included.height)
        if time is not None:
            response.timestamp = time.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        return service_pb2.GetTxResponse(tx=tx, tx_response=response)

    # --- helpers --------------------------------------------------------------------------------------

    def _consume_forced_mismatch(self) -> bool:
        if self.faults.force_sequence_mismatch > 0:
            self.faults.force_sequence_mismatch -= 1
            return True
        return False

    def _remember(self, hash_: str) -> None:
        self._cache[hash_] = None
        if len(self._cache) > MEMPOOL_CACHE_SIZE:
            self._cache.popitem(last=False)

    def _include(self, outcome: AnteOutcome, data: str) -> None:
        tx = outcome.tx
        self._included[tx.hash] = _Included(
            tx=tx,
            height=self.engine.height + 1,
            data=data,
            gas_wanted=outcome.gas_wanted,
            gas_used=estimate_gas(tx),
        )
        while len(self._included) > TX_HISTORY_SIZE:
            self._included.popitem(last=False)

    def _on_event(self, event: ChainEvent) -> None:
        if isinstance(event, BlockCommitted):
            self._block_times[event.height] = event.time
            while len(self._block_times) > TX_HISTORY_SIZE:
                self._block_times.popitem(last=False)

    def __repr__(self) -> str:
        return f"TxServicer(chain_id={self.chain_id!r}, faults={dataclasses.asdict(self.faults)})"
