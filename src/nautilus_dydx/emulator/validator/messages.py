"""Transaction messages: their stateless checks, signers, and the engine call each one makes.

The messages a trading client sends (protocol reference §5.1) map onto the
:class:`~..engine.chain.ChainEngine` as follows:

* ``MsgPlaceOrder`` -> :meth:`ChainEngine.place_order` with an :class:`~..events.OrderSnapshot`
  (``good_til_block`` xor ``good_til_block_time``; time in force 0/1/2/3 -> GTT/IOC/POST_ONLY/FOK;
  condition type 0/1/2 -> UNSPECIFIED/STOP_LOSS/TAKE_PROFIT);
* ``MsgCancelOrder`` -> :meth:`ChainEngine.cancel_order`;
* ``MsgBatchCancel`` -> :meth:`ChainEngine.batch_cancel`, whose succeeded / failed ids become the
  ``MsgBatchCancelResponse``;
* ``MsgDepositToSubaccount`` -> :meth:`ChainEngine.deposit` from the sender's wallet (to any
  subaccount);
* ``MsgWithdrawFromSubaccount`` -> :meth:`ChainEngine.withdraw`;
* ``MsgCreateTransfer`` -> :meth:`ChainEngine.transfer`.

Engine rejections (:class:`~..engine.errors.EngineError`) propagate unchanged, so a broadcast gets
exactly the ``(codespace, code, raw_log)`` the engine decided.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from google.protobuf import any_pb2  # type: ignore[import-untyped,unused-ignore]
from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx
from v4_proto.dydxprotocol.sending import transfer_pb2
from v4_proto.dydxprotocol.sending import tx_pb2 as sending_tx

from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.engine.validation import (
    validate_batch_cancel_basic,
    validate_cancel_basic,
    validate_order_basic,
)
from nautilus_dydx.emulator.events import (
    SHORT_TERM,
    ConditionType,
    OrderKey,
    OrderSnapshot,
    Side,
    SubaccountRef,
    TimeInForce,
)

__all__ = [
    "MESSAGE_TYPES",
    "apply_messages",
    "is_clob",
    "is_short_term_clob",
    "order_from_proto",
    "order_key",
    "signers",
    "skips_sequence",
    "type_url",
    "validate_basic",
    "validate_clob_tx",
]

log = logging.getLogger(__name__)

MAX_SUBACCOUNT_NUMBER = 128_000
USDC_ASSET_ID = 0

_SIDES: dict[int, str] = {order_pb2.Order.SIDE_BUY: "BUY", order_pb2.Order.SIDE_SELL: "SELL"}
_TIFS: dict[int, str] = {
    order_pb2.Order.TIME_IN_FORCE_UNSPECIFIED: "GTT",
    order_pb2.Order.TIME_IN_FORCE_IOC: "IOC",
    order_pb2.Order.TIME_IN_FORCE_POST_ONLY: "POST_ONLY",
    order_pb2.Order.TIME_IN_FORCE_FILL_OR_KILL: "FOK",
}
_CONDITIONS: dict[int, str] = {
    order_pb2.Order.CONDITION_TYPE_UNSPECIFIED: "UNSPECIFIED",
    order_pb2.Order.CONDITION_TYPE_STOP_LOSS: "STOP_LOSS",
    order_pb2.Order.CONDITION_TYPE_TAKE_PROFIT: "TAKE_PROFIT",
}


def type_url(message: Any) -> str:
    """The ``Any`` type URL of a message: ``"/" + full proto name``."""
    return "/" + str(message.DESCRIPTOR.full_name)


#: Message classes the emulated validator accepts, by type URL.
MESSAGE_TYPES: dict[str, Any] = {
    "/" + cls.DESCRIPTOR.full_name: cls
    for cls in (
        clob_tx.MsgPlaceOrder,
        clob_tx.MsgCancelOrder,
        clob_tx.MsgBatchCancel,
        transfer_pb2.MsgDepositToSubaccount,
        transfer_pb2.MsgWithdrawFromSubaccount,
        sending_tx.MsgCreateTransfer,
    )
}


# --- classification ---------------------------------------------------------------------------------


def is_clob(msg: Any) -> bool:
    """A clob message (place, cancel, batch cancel): the chain's free-gas clob ante path."""
    return isinstance(msg, clob_tx.MsgPlaceOrder | clob_tx.MsgCancelOrder | clob_tx.MsgBatchCancel)


def is_short_term_clob(msg: Any) -> bool:
    """A clob message protected by its GoodTilBlock instead of the account sequence."""
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        return int(msg.order.order_id.order_flags) == SHORT_TERM
    if isinstance(msg, clob_tx.MsgCancelOrder):
        return int(msg.order_id.order_flags) == SHORT_TERM
    return isinstance(msg, clob_tx.MsgBatchCancel)


def skips_sequence(msgs: Sequence[Any]) -> bool:
    """Every message is a short-term clob message: the sequence is neither checked nor incremented."""
    return all(is_short_term_clob(m) for m in msgs)


def signers(msgs: Sequence[Any]) -> list[str]:
    """The distinct signer addresses of ``msgs``, in message order."""
    seen: dict[str, None] = {}
    for msg in msgs:
        seen[_signer(msg)] = None
    return list(seen)


def _signer(msg: Any) -> str:
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        return str(msg.order.order_id.subaccount_id.owner)
    if isinstance(msg, clob_tx.MsgCancelOrder):
        return str(msg.order_id.subaccount_id.owner)
    if isinstance(msg, clob_tx.MsgBatchCancel):
        return str(msg.subaccount_id.owner)
    if isinstance(msg, transfer_pb2.MsgDepositToSubaccount):
        return str(msg.sender)
    if isinstance(msg, transfer_pb2.MsgWithdrawFromSubaccount):
        return str(msg.sender.owner)
    if isinstance(msg, sending_tx.MsgCreateTransfer):
        return str(msg.transfer.sender.owner)
    raise TypeError(f"unsupported message {type(msg).__name__}")


# --- stateless validation ---------------------------------------------------------------------------


def _valid_address(address: str) -> bool:
    # Imported here: tx imports this module at load time.
    from nautilus_dydx.emulator.validator.tx import address_bytes

    return address_bytes(address) is not None


def _validate_subaccount(subaccount: Any) -> None:
    if not _valid_address(subaccount.owner):
        raise EngineError("subaccounts", 201, "subaccount id owner is an invalid address")
    if subaccount.number > MAX_SUBACCOUNT_NUMBER:
        raise EngineError("subaccounts", 200, f"subaccount id number cannot exceed {MAX_SUBACCOUNT_NUMBER}")


def _go_subaccount(subaccount: Any) -> str:
    # gogoproto's compact text form, as the chain prints a SubaccountId with %s.
    text = f'owner:"{subaccount.owner}" '
    return text + (f"number:{subaccount.number} " if subaccount.number else "")


def validate_basic(msg: Any) -> None:
    """The message's ``ValidateBasic`` (run before any ante decorator).

    Raises:
        EngineError: clob, subaccounts or sending codes of the stateless checks.
    """
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        _validate_subaccount(msg.order.order_id.subaccount_id)
        validate_order_basic(order_from_proto(msg.order))
    elif isinstance(msg, clob_tx.MsgCancelOrder):
        _validate_subaccount(msg.order_id.subaccount_id)
        gtb, gtbt = _good_til(msg)
        validate_cancel_basic(order_key(msg.order_id), gtb, gtbt)
    elif isinstance(msg, clob_tx.MsgBatchCancel):
        _validate_subaccount(msg.subaccount_id)
        validate_batch_cancel_basic(
            [(int(b.clob_pair_id), [int(c) for c in b.client_ids]) for b in msg.short_term_cancels]
        )
    elif isinstance(msg, transfer_pb2.MsgDepositToSubaccount):
        if not _valid_address(msg.sender):
            raise EngineError("sending", 6, "Account address is invalid")
        _validate_subaccount(msg.recipient)
        _validate_amount(msg.asset_id, msg.quantums)
    elif isinstance(msg, transfer_pb2.MsgWithdrawFromSubaccount):
        _validate_subaccount(msg.sender)
        if not _valid_address(msg.recipient):
            raise EngineError("sending", 6, "Account address is invalid")
        _validate_amount(msg.asset_id, msg.quantums)
    elif isinstance(msg, sending_tx.MsgCreateTransfer):
        transfer = msg.transfer
        _validate_subaccount(transfer.sender)
        _validate_subaccount(transfer.recipient)
        if transfer.sender == transfer.recipient:
            raise EngineError(
                "sending",
                1,
                f"Sender is the same as recipient ({_go_subaccount(transfer.sender)}): "
                "Sender is the same as recipient",
            )
        _validate_amount(transfer.asset_id, transfer.amount)


def _validate_amount(asset_id: int, quantums: int) -> None:
    if asset_id != USDC_ASSET_ID:
        raise EngineError("sending", 1101, "Non-USDC asset transfer not implemented")
    if quantums == 0:
        raise EngineError("sending", 2, "Invalid transfer amount")


def validate_clob_tx(msgs: Sequence[Any], timeout_height: int = 0) -> None:
    """``ValidateMsgsInClobTx``: what may share a transaction with clob messages (sdk 18).

    A short-term message must be alone; stateful ones may be batched together with at most one
    ``MsgCreateTransfer`` (used to fund an isolated subaccount) and nothing else. A short-term
    placement in a transaction whose non-zero timeout height is below its GoodTilBlock is refused
    too (the chain's HOTFIX rule).
    """
    from nautilus_dydx.emulator.validator.tx import sdk_error

    short_term = any(is_short_term_clob(m) for m in msgs)
    transfers = sum(1 for m in msgs if isinstance(m, sending_tx.MsgCreateTransfer))
    other = any(not is_clob(m) and not isinstance(m, sending_tx.MsgCreateTransfer) for m in msgs)
    if short_term and len(msgs) > 1:
        raise sdk_error(18, "a transaction containing short term order may not contain more than one message")
    if transfers > 1:
        raise sdk_error(
            18, "a transaction containing stateful orders can only be accompanied by 1 transfer msg"
        )
    if other:
        raise sdk_error(
            18, "a transaction containing stateful orders cannot be accompanied by non transfer msgs"
        )
    for msg in msgs:
        if (
            isinstance(msg, clob_tx.MsgPlaceOrder)
            and is_short_term_clob(msg)
            and 0 < timeout_height < msg.order.good_til_block
        ):
            raise sdk_error(
                18,
                "timeout height (if non-zero) may not be less than `goodTilBlock` for a short-term place order",
            )


# --- proto -> engine values -------------------------------------------------------------------------


def order_key(order_id: Any) -> OrderKey:
    """An engine :class:`OrderKey` from a proto ``OrderId``."""
    return OrderKey(
        owner=str(order_id.subaccount_id.owner),
        subaccount_number=int(order_id.subaccount_id.number),
        client_id=int(order_id.client_id),
        clob_pair_id=int(order_id.clob_pair_id),
        order_flags=int(order_id.order_flags),
    )


def _good_til(msg: Any) -> tuple[int | None, int | None]:
    which = msg.WhichOneof("good_til_oneof")
    if which == "good_til_block":
        return int(msg.good_til_block), None
    if which == "good_til_block_time":
        return None, int(msg.good_til_block_time)
    return None, None


def order_from_proto(order: Any) -> OrderSnapshot:
    """An engine :class:`OrderSnapshot` from a proto ``Order``.

    Enum values the engine does not know are passed as descriptive strings, so that its validation
    answers the venue's code (3 for an unspecified side, 44 for an unknown time in force, 6000 for an
    unknown condition type).
    """
    gtb, gtbt = _good_til(order)
    side = _SIDES.get(order.side, "UNSPECIFIED")
    tif = _TIFS.get(order.time_in_force, f"TIME_IN_FORCE({order.time_in_force})")
    condition = _CONDITIONS.get(order.condition_type, f"CONDITION_TYPE({order.condition_type})")
    return OrderSnapshot(
        key=order_key(order.order_id),
        side=cast(Side, side),
        quantums=int(order.quantums),
        subticks=int(order.subticks),
        good_til_block=gtb,
        good_til_block_time=gtbt,
        time_in_force=cast(TimeInForce, tif),
        reduce_only=bool(order.reduce_only),
        client_metadata=int(order.client_metadata),
        condition_type=cast(ConditionType, condition),
        trigger_subticks=int(order.conditional_order_trigger_subticks),
    )


def _batches(pairs: Sequence[tuple[int, int]]) -> list[Any]:
    grouped: dict[int, list[int]] = {}
    for clob_pair_id, client_id in pairs:
        grouped.setdefault(clob_pair_id, []).append(client_id)
    return [clob_tx.OrderBatch(clob_pair_id=c, client_ids=ids) for c, ids in grouped.items()]


# --- execution --------------------------------------------------------------------------------------


def apply_messages(engine: ChainEngine, msgs: Sequence[Any], tx_hash: str) -> list[Any]:
    """Run ``msgs`` on the engine in order; returns one response message per message.

    All or nothing, as the chain discards the whole CheckTx branch on an error: when a message is
    rejected, the engine is rolled back to before the first one (:meth:`ChainEngine.atomic`).

    Raises:
        EngineError: the engine's rejection of the first message that failed.
    """
    if len(msgs) == 1:  # a single engine call is all-or-nothing already; skip the snapshot
        return [_apply(engine, msgs[0], tx_hash)]
    with engine.atomic():
        return [_apply(engine, msg, tx_hash) for msg in msgs]


def _apply(engine: ChainEngine, msg: Any, tx_hash: str) -> Any:
    if isinstance(msg, clob_tx.MsgPlaceOrder):
        engine.place_order(order_from_proto(msg.order), tx_hash=tx_hash)
        return clob_tx.MsgPlaceOrderResponse()
    if isinstance(msg, clob_tx.MsgCancelOrder):
        gtb, gtbt = _good_til(msg)
        engine.cancel_order(
            order_key(msg.order_id), good_til_block=gtb, good_til_block_time=gtbt, tx_hash=tx_hash
        )
        return clob_tx.MsgCancelOrderResponse()
    if isinstance(msg, clob_tx.MsgBatchCancel):
        succeeded, failed = engine.batch_cancel(
            SubaccountRef(msg.subaccount_id.owner, int(msg.subaccount_id.number)),
            [(int(b.clob_pair_id), [int(c) for c in b.client_ids]) for b in msg.short_term_cancels],
            int(msg.good_til_block),
        )
        return clob_tx.MsgBatchCancelResponse(
            short_term_succeeded=_batches(succeeded), short_term_failed=_batches(failed)
        )
    if isinstance(msg, transfer_pb2.MsgDepositToSubaccount):
        engine.deposit(
            msg.recipient.owner,
            int(msg.recipient.number),
            int(msg.quantums),
            tx_hash=tx_hash,
            sender=msg.sender,
        )
        return sending_tx.MsgDepositToSubaccountResponse()
    if isinstance(msg, transfer_pb2.MsgWithdrawFromSubaccount):
        engine.withdraw(
            msg.sender.owner,
            int(msg.sender.number),
            int(msg.quantums),
            recipient=msg.recipient,
            tx_hash=tx_hash,
        )
        return sending_tx.MsgWithdrawFromSubaccountResponse()
    if isinstance(msg, sending_tx.MsgCreateTransfer):
        transfer = msg.transfer
        sender = SubaccountRef(transfer.sender.owner, int(transfer.sender.number))
        recipient = SubaccountRef(transfer.recipient.owner, int(transfer.recipient.number))
        engine.transfer(sender, recipient, int(transfer.amount), tx_hash=tx_hash)
        return sending_tx.MsgCreateTransferResponse()
    raise TypeError(f"unsupported message {type(msg).__name__}")


def pack(message: Any) -> Any:
    """``message`` in an ``Any`` with its canonical type URL."""
    return any_pb2.Any(type_url=type_url(message), value=message.SerializeToString())
