"""The venue's rejections, as the engine raises them.

Every rejection carries what the chain puts in a ``TxResponse``: ``codespace``, ``code`` and
``raw_log``. Wrapped errors render as ``"<detail>: <registered message>"`` (cosmos-sdk
``errorsmod.Wrapf``); bare ones are the registered message alone. The registered messages below are
the venue's texts (dydxprotocol/v4-chain ``x/clob/types/errors.go``), so that a client reading
``raw_log`` sees what it would see on mainnet.
"""

from __future__ import annotations

__all__ = ["CLOB_MESSAGES", "EngineError", "clob_error", "subaccounts_error"]

#: Registered texts of the clob module errors the engine can raise, by code.
CLOB_MESSAGES: dict[int, str] = {
    2: "Order does not exist in memclob",
    3: "Invalid order side",
    4: "Invalid order quantums",
    5: "Invalid order goodTilBlock",
    6: "Invalid order subticks",
    7: "Attempt to place an order that is already canceled",
    8: "ClobPair ID does not reference a valid CLOB",
    9: "A cancel already exists in the memclob for this order with a greater than or equal GoodTilBlock",
    10: "The next block height is greater than the GoodTilBlock of the message",
    11: "The GoodTilBlock of the message is further than ShortBlockWindow blocks into the future",
    12: "MsgPlaceOrder is invalid",
    20: "Replacing an existing order failed",
    24: "Order is fully filled",
    27: "Invalid ClobPair parameter",
    29: "Invalid stateful order cancellation",
    30: "An order with the same `OrderId` and `OrderHash` has already been processed for this CLOB",
    32: "Existing stateful order cancellation has higher-or-equal priority than the new one",
    34: "Order conflicts with ClobPair status",
    44: "invalid time in force",
    45: "Invalid batch cancel message",
    46: "Batch cancel has failed",
    48: "This field has been deprecated",
    2001: "Reduce-only orders cannot increase the position size",
    2003: "Post-only order would cross one or more maker orders",
    2004: "IOC order is already filled, remaining size is cancelled.",
    2005: "Order would violate isolated subaccount constraints.",
    3000: "Invalid order flags",
    3001: "Invalid order goodTilBlockTime",
    3002: "Stateful orders cannot require immediate execution",
    3003: "The block time is greater than the GoodTilBlockTime of the message",
    3004: "The GoodTilBlockTime of the message is further than StatefulOrderTimeWindow into the future",
    3005: "Existing stateful order has higher-or-equal priority than the new one",
    3006: "Stateful order does not exist",
    3007: "Stateful order collateralization check failed",
    3008: "Stateful order was previously cancelled and therefore cannot be placed",
    5001: "Block rate limit exceeded",
    6000: "Conditional type is invalid",
    6001: "Conditional order trigger subticks is invalid",
    9003: "Reduce-only is currently disabled for non-IOC orders",
    10001: "Subaccount cannot open more orders due to equity tier limit.",
}

SUBACCOUNTS_MESSAGES: dict[int, str] = {
    102: "failed to apply subaccount updates",
}


class EngineError(Exception):
    """A place / cancel / transfer the venue rejects, with its ``(codespace, code, raw_log)``.

    Attributes:
        codespace: the cosmos module that rejected it (``"clob"``, ``"subaccounts"``, ``"sdk"``).
        code: the module's error code.
        raw_log: the text the venue returns in ``TxResponse.raw_log``.
    """

    def __init__(self, codespace: str, code: int, raw_log: str) -> None:
        super().__init__(f"{codespace} {code}: {raw_log}")
        self.codespace = codespace
        self.code = code
        self.raw_log = raw_log

    def __reduce__(self) -> tuple[type[EngineError], tuple[str, int, str]]:
        return (EngineError, (self.codespace, self.code, self.raw_log))


def clob_error(code: int, detail: str | None = None) -> EngineError:
    """A clob-module error; ``detail`` is the ``Wrapf`` text put before the registered message."""
    message = CLOB_MESSAGES[code]
    return EngineError("clob", code, f"{detail}: {message}" if detail else message)


def subaccounts_error(code: int, detail: str | None = None) -> EngineError:
    """A subaccounts-module error (collateral checks of transfers and withdrawals)."""
    message = SUBACCOUNTS_MESSAGES[code]
    return EngineError("subaccounts", code, f"{detail}: {message}" if detail else message)
