"""Order and cancel validation, one function per venue check, each raising the venue's answer.

Split as on the chain (protocol reference §5.3, §5.4): :func:`validate_order_basic` is the stateless
``ValidateBasic`` of ``MsgPlaceOrder``; the other functions need a piece of chain state that the
caller passes in. The later transaction layer calls the same functions so that a rejected broadcast
carries exactly the ``(codespace, code, raw_log)`` an order placed directly on the engine gets.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from v4_proto.dydxprotocol.clob import order_pb2
from v4_proto.dydxprotocol.subaccounts import subaccount_pb2

from nautilus_dydx.emulator.engine.errors import clob_error
from nautilus_dydx.emulator.events import (
    CONDITIONAL,
    LONG_TERM,
    SHORT_TERM,
    MarketInfo,
    OrderKey,
    OrderSnapshot,
)
from nautilus_dydx.emulator.params import MAX_BATCH_CANCEL_IDS

__all__ = [
    "KNOWN_ORDER_FLAGS",
    "go_order_id",
    "order_hash",
    "validate_batch_cancel_basic",
    "validate_cancel_basic",
    "validate_conditional_trigger",
    "validate_good_til_block",
    "validate_good_til_block_time",
    "validate_order_against_market",
    "validate_order_basic",
    "validate_replacement",
]

KNOWN_ORDER_FLAGS = frozenset({SHORT_TERM, CONDITIONAL, LONG_TERM})
_SIDES = {"BUY": order_pb2.Order.SIDE_BUY, "SELL": order_pb2.Order.SIDE_SELL}
_TIFS = {
    "GTT": order_pb2.Order.TIME_IN_FORCE_UNSPECIFIED,
    "IOC": order_pb2.Order.TIME_IN_FORCE_IOC,
    "POST_ONLY": order_pb2.Order.TIME_IN_FORCE_POST_ONLY,
    "FOK": order_pb2.Order.TIME_IN_FORCE_FILL_OR_KILL,
}
_CONDITIONS = {
    "UNSPECIFIED": order_pb2.Order.CONDITION_TYPE_UNSPECIFIED,
    "STOP_LOSS": order_pb2.Order.CONDITION_TYPE_STOP_LOSS,
    "TAKE_PROFIT": order_pb2.Order.CONDITION_TYPE_TAKE_PROFIT,
}


def go_order_id(key: OrderKey) -> str:
    """An OrderId as Go's ``%+v`` prints it (the venue puts that in its error details)."""
    return (
        f"{{SubaccountId:{{Owner:{key.owner} Number:{key.subaccount_number}}} ClientId:{key.client_id} "
        f"OrderFlags:{key.order_flags} ClobPairId:{key.clob_pair_id}}}"
    )


def order_hash(order: OrderSnapshot) -> bytes:
    """SHA-256 of the order's protobuf encoding: the chain's tie-break between equal-GTB replacements."""
    key = order.key
    message = order_pb2.Order(
        order_id=order_pb2.OrderId(
            subaccount_id=subaccount_pb2.SubaccountId(owner=key.owner, number=key.subaccount_number),
            client_id=key.client_id & 0xFFFFFFFF,
            order_flags=key.order_flags,
            clob_pair_id=key.clob_pair_id,
        ),
        side=_SIDES.get(order.side, 0),
        quantums=order.quantums,
        subticks=order.subticks,
        time_in_force=_TIFS.get(order.time_in_force, 0),
        reduce_only=order.reduce_only,
        client_metadata=order.client_metadata,
        condition_type=_CONDITIONS.get(order.condition_type, 0),
        conditional_order_trigger_subticks=order.trigger_subticks,
    )
    if order.good_til_block is not None:
        message.good_til_block = order.good_til_block
    if order.good_til_block_time is not None:
        message.good_til_block_time = order.good_til_block_time
    return hashlib.sha256(message.SerializeToString()).digest()


def validate_order_basic(order: OrderSnapshot) -> None:
    """``MsgPlaceOrder.ValidateBasic``, in the chain's order of checks (§5.3)."""
    if order.time_in_force == "FOK":
        raise clob_error(48, "Fill-or-kill has been deprecated")
    if order.time_in_force not in _TIFS:
        raise clob_error(44, f"invalid time in force ({order.time_in_force})")
    if order.condition_type not in _CONDITIONS:
        raise clob_error(6000, f"invalid condition type ({order.condition_type})")
    if order.side not in _SIDES:
        raise clob_error(3, "UNSPECIFIED is not a valid order side")
    if order.quantums <= 0:
        raise clob_error(4, "order size quantums cannot be 0")
    flags = order.key.order_flags
    if flags == SHORT_TERM:
        if not order.good_til_block:
            raise clob_error(5, "order goodTilBlock cannot be 0")
    elif flags in (CONDITIONAL, LONG_TERM):
        if not order.good_til_block_time:
            raise clob_error(3001, "stateful order goodTilBlockTime cannot be 0")
    else:
        raise clob_error(3000, f"invalid order flag {flags}")
    immediate = order.time_in_force == "IOC"
    if flags == LONG_TERM and immediate:
        raise clob_error(3002)
    if order.reduce_only and not immediate:
        raise clob_error(9003, "reduce only orders must be short term IOC orders")
    if order.subticks <= 0:
        raise clob_error(6, "order subticks cannot be 0 for this order type")
    if flags == CONDITIONAL:
        if order.condition_type == "UNSPECIFIED":
            raise clob_error(6000, "condition type cannot be unspecified")
        if order.trigger_subticks <= 0:
            raise clob_error(6001, "conditional order trigger subticks cannot be 0")
    else:
        if order.condition_type != "UNSPECIFIED":
            raise clob_error(6000, "condition type specified for non-conditional order")
        if order.trigger_subticks != 0:
            raise clob_error(
                6001, "conditional order trigger subticks greater than 0 for non-conditional order"
            )


def validate_order_against_market(
    order: OrderSnapshot, market: MarketInfo | None, *, include_trigger: bool = True
) -> MarketInfo:
    """The clob pair exists, price/size are tick/step multiples and its status allows the order.

    In the chain's order (``PerformStatefulOrderValidation``): 8, 12 (subticks), 12 (quantums), 34.
    The chain checks a conditional order's trigger subticks only after the stateful GTBT and
    duplicate checks; pass ``include_trigger=False`` and call :func:`validate_conditional_trigger`
    there to keep that order.
    """
    if market is None:
        raise clob_error(8, f"Clob {order.key.clob_pair_id} is not a valid clob")
    if order.subticks % market.subticks_per_tick:
        raise clob_error(
            12,
            f"Order subticks {order.subticks} must be a multiple of the ClobPair's SubticksPerTick "
            f"{market.subticks_per_tick}",
        )
    if order.quantums % market.step_base_quantums:
        raise clob_error(
            12,
            f"Order Quantums {order.quantums} must be a multiple of the ClobPair's StepBaseQuantums "
            f"{market.step_base_quantums}",
        )
    if market.status != "ACTIVE":
        allowed = (
            market.status == "INITIALIZING"
            and order.key.order_flags == SHORT_TERM
            and order.time_in_force == "POST_ONLY"
        )
        if not allowed:
            raise clob_error(
                34,
                f"Order {go_order_id(order.key)} conflicts with ClobPair status {market.status}",
            )
    if include_trigger:
        validate_conditional_trigger(order, market)
    return market


def validate_conditional_trigger(order: OrderSnapshot, market: MarketInfo) -> None:
    """A conditional order's trigger subticks are a multiple of the clob pair's SubticksPerTick (12)."""
    if order.key.order_flags == CONDITIONAL and order.trigger_subticks % market.subticks_per_tick:
        raise clob_error(
            12,
            f"Conditional order trigger subticks {order.trigger_subticks} must be a multiple of the "
            f"ClobPair's SubticksPerTick {market.subticks_per_tick}",
        )


def validate_good_til_block(good_til_block: int, height: int, short_block_window: int) -> None:
    """Short-term window ``H+1 <= GTB <= H+1+ShortBlockWindow`` against the latest height ``H``."""
    next_height = height + 1
    if good_til_block < next_height:
        raise clob_error(
            10, f"GoodTilBlock {good_til_block} is less than the current blockHeight {next_height}"
        )
    if good_til_block > next_height + short_block_window:
        raise clob_error(
            11,
            f"The GoodTilBlock {good_til_block} exceeds the current blockHeight {next_height} plus "
            f"ShortBlockWindow {short_block_window}",
        )


def validate_good_til_block_time(
    good_til_block_time: int, previous_block_time: dt.datetime, window: dt.timedelta
) -> None:
    """Stateful window ``prevBlockTime < GTBT <= prevBlockTime + StatefulOrderTimeWindow``."""
    previous = int(previous_block_time.timestamp())
    if good_til_block_time <= previous:
        raise clob_error(
            3003, f"GoodTilBlockTime {good_til_block_time} is less than the previous blockTime {previous}"
        )
    end = int((previous_block_time + window).timestamp())
    if good_til_block_time > end:
        raise clob_error(
            3004,
            f"GoodTilBlockTime {good_til_block_time} exceeds the previous blockTime plus "
            f"StatefulOrderTimeWindow {end}",
        )


def validate_replacement(existing: OrderSnapshot, new: OrderSnapshot) -> None:
    """Short-term replacement (§5.5): a strictly later (GTB, order hash), same side / TIF / reduce-only."""
    new_hash = order_hash(new)
    old_hash = order_hash(existing)
    if new_hash == old_hash:
        raise clob_error(30)
    if ((existing.good_til_block or 0), old_hash) >= ((new.good_til_block or 0), new_hash):
        raise clob_error(20, "New order cannot reduce the GoodTilBlock or GoodTilBlockTime of existing order")
    if existing.side != new.side:
        raise clob_error(20, "New order cannot change the Side of the existing order")
    if existing.time_in_force != new.time_in_force:
        raise clob_error(20, "New order cannot change the TimeInForce of the existing order")
    if existing.reduce_only != new.reduce_only:
        raise clob_error(20, "New order cannot change the ReduceOnly field of the existing order")


def validate_cancel_basic(key: OrderKey, good_til_block: int | None, good_til_block_time: int | None) -> None:
    """``MsgCancelOrder.ValidateBasic``."""
    if key.order_flags not in KNOWN_ORDER_FLAGS:
        raise clob_error(3000, f"orderId: {go_order_id(key)}")
    if key.order_flags == SHORT_TERM:
        if not good_til_block:
            raise clob_error(5, f"cancellation goodTilBlock cannot be 0, orderId {go_order_id(key)}")
    elif not good_til_block_time:
        raise clob_error(3001, f"stateful cancellation goodTilBlockTime cannot be 0, {go_order_id(key)}")


def validate_batch_cancel_basic(batches: list[tuple[int, list[int]]]) -> None:
    """``MsgBatchCancel.ValidateBasic``: distinct clob pairs, distinct ids, 1..100 ids in total."""
    if not batches:
        raise clob_error(45, "Batch cancel cannot have zero orders specified.")
    total = 0
    seen_pairs: set[int] = set()
    for clob_pair_id, client_ids in batches:
        if clob_pair_id in seen_pairs:
            raise clob_error(
                45, f"Batch cancel cannot have 2 order batches with the same clob pair id: {clob_pair_id}"
            )
        seen_pairs.add(clob_pair_id)
        if not client_ids:
            raise clob_error(45, "Order Batch cannot have zero client ids.")
        total += len(client_ids)
        seen_ids: set[int] = set()
        for client_id in client_ids:
            if client_id in seen_ids:
                raise clob_error(
                    45, f"Batch Cancel Clob pair id {clob_pair_id} has duplicate client ids: {client_id}"
                )
            seen_ids.add(client_id)
    if total > MAX_BATCH_CANCEL_IDS:
        raise clob_error(
            45, f"Batch cancel cannot have over {MAX_BATCH_CANCEL_IDS} orders. Order count: {total}"
        )
