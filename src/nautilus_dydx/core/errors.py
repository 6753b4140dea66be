"""The one exception tree of nautilus-dydx.

Every public method raises only subclasses of :class:`DydxError`; library exceptions (aiohttp, grpc,
msgspec, ``KeyError`` ...) are mapped to these at the transport seam and nowhere else::

    DydxError
    ├── ConfigError                    a config value is missing or malformed
    ├── DecodeError                    bytes from the venue do not match the expected schema
    ├── QuantizationError              a human value cannot become a chain integer
    │   ├── NonPositiveValueError      zero or negative size / price
    │   └── BelowIncrementError        smaller than one step (size) or one tick (price)
    ├── TransportError                 the request did not get a usable answer
    │   ├── ConnectError               refused, DNS, TLS handshake, reset before a response
    │   ├── TransportTimeout           no answer within the deadline
    │   ├── HttpError                  HTTP status outside 2xx/4xx (5xx, unexpected codes)
    │   ├── WebSocketError             the socket closed or failed
    │   │   └── SubscriptionError      the server refused or failed a subscription
    │   ├── GrpcError                  a non-OK gRPC status
    │   └── RateLimitedError           429 / RESOURCE_EXHAUSTED, carries the delay to wait
    ├── VenueError                     the indexer answered 4xx with its error list
    │   ├── BadRequestError            400: validation failed
    │   ├── ForbiddenError             403: geo- or compliance-blocked
    │   └── NotFoundError              404
    └── ChainError                     a transaction was rejected: (codespace, code, raw_log)
        └── SequenceMismatchError      sdk 32 / 3: refresh the sequence, re-sign, resend

:func:`is_retryable` is the single decision of whether the same request may be sent again.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "BadRequestError",
    "BelowIncrementError",
    "ChainError",
    "ChainErrorInfo",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "DydxError",
    "ForbiddenError",
    "GrpcError",
    "HttpError",
    "NonPositiveValueError",
    "NotFoundError",
    "QuantizationError",
    "RateLimitedError",
    "RetryAction",
    "SequenceMismatchError",
    "SubscriptionError",
    "TransportError",
    "TransportTimeout",
    "VenueError",
    "VenueErrorItem",
    "WebSocketError",
    "chain_error_info",
    "is_retryable",
    "retry_after",
]


def _rebuild_error(cls: type[DydxError], args: tuple[object, ...], state: dict[str, object]) -> DydxError:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(state)
    return error


class DydxError(Exception):
    """Root of every exception raised by nautilus-dydx."""

    def __reduce__(self) -> tuple[object, ...]:
        # Subclasses take keyword-only attributes that the default (cls(*args)) reconstruction would
        # drop, breaking pickling and copy.copy (process pools, some log handlers).
        return (_rebuild_error, (type(self), self.args, dict(self.__dict__)))


class ConfigError(DydxError, ValueError):
    """A configuration value is missing, malformed or inconsistent."""


class DecodeError(DydxError, ValueError):
    """Bytes received from the venue do not decode into the expected schema.

    Attributes:
        payload: the first bytes of the offending payload (at most 512), for diagnostics.
    """

    def __init__(self, message: str, *, payload: bytes = b"") -> None:
        super().__init__(message)
        self.payload = payload[:512]


class QuantizationError(DydxError, ValueError):
    """A human price or size cannot be turned into chain integers."""


class NonPositiveValueError(QuantizationError):
    """The value is zero or negative where a positive value is required."""


class BelowIncrementError(QuantizationError):
    """The value is below one increment (one step for sizes, one tick for prices)."""


class TransportError(DydxError):
    """The request did not get a usable answer from the network."""


class ConnectError(TransportError):
    """The connection could not be made or broke before an answer (refused, DNS, TLS, reset)."""


class TransportTimeout(TransportError):
    """No answer arrived within the deadline."""


class HttpError(TransportError):
    """The server answered with an HTTP status that is neither success nor a venue 4xx error.

    Attributes:
        status: the HTTP status code.
        body: the first bytes of the response body.
    """

    def __init__(self, message: str, *, status: int, body: bytes = b"") -> None:
        super().__init__(message)
        self.status = status
        self.body = body[:2048]


class WebSocketError(TransportError):
    """The WebSocket closed or failed.

    Attributes:
        close_code: the close code when the server closed the socket, else ``None``.
    """

    def __init__(self, message: str, *, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


class SubscriptionError(WebSocketError):
    """The indexer answered a subscription with an ``error`` message.

    Attributes:
        channel: the channel named by the error, when it names one.
        id: the subscription id named by the error, when it names one.
    """

    def __init__(self, message: str, *, channel: str | None = None, id: str | None = None) -> None:
        super().__init__(message)
        self.channel = channel
        self.id = id

    @property
    def is_internal(self) -> bool:
        """True for the indexer's transient "Internal error, could not fetch data" failure."""
        return str(self).startswith("Internal error")


class GrpcError(TransportError):
    """A gRPC call ended with a non-OK status.

    Attributes:
        code: the name of the gRPC status code (``"UNAVAILABLE"``, ``"NOT_FOUND"``, ...).
        details: the status details sent by the server.
    """

    def __init__(self, message: str, *, code: str, details: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.details = details


class RateLimitedError(TransportError):
    """The venue (or our own limiter) asks us to slow down.

    Attributes:
        retry_after: seconds to wait before trying again, when known.
    """

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class VenueErrorItem:
    """One entry of the indexer's ``{"errors": [...]}`` list."""

    msg: str
    param: str | None = None
    location: str | None = None
    value: object = None
    code: str | None = None


class VenueError(DydxError):
    """The indexer answered with a 4xx status and its error list.

    Attributes:
        status: the HTTP status code.
        errors: the decoded ``errors`` entries, in order.
    """

    def __init__(self, message: str, *, status: int, errors: tuple[VenueErrorItem, ...] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.errors = errors


class BadRequestError(VenueError):
    """400: the indexer rejected the request parameters."""

    def concerns(self, param: str) -> bool:
        """Whether the rejection is about ``param`` (or names no parameter at all).

        The indexer answers a lookup of an unknown ticker with 400 ``ticker must be a valid
        ticker`` rather than 404; ``concerns("ticker")`` tells that case from other bad parameters.
        """
        return not self.errors or any(e.param == param for e in self.errors)


class ForbiddenError(VenueError):
    """403: the address or the caller's region is blocked (``GEOBLOCKED`` / ``COMPLIANCE_BLOCKED``)."""


class NotFoundError(VenueError):
    """404: the route or the entity does not exist."""


class RetryAction(enum.Enum):
    """What a client should do after a chain error."""

    RETRY = "retry"
    """Send the same transaction again after a back-off."""
    WAIT_BLOCKS = "wait_blocks"
    """Wait one or more blocks, then send again."""
    REFRESH_SEQUENCE = "refresh_sequence"
    """Refresh the account sequence, re-sign and resend (stateful transactions)."""
    REBUILD_EXPIRY = "rebuild_expiry"
    """Refresh the block height, rebuild with a new good-til-block and resend."""
    NEW_CLIENT_ID = "new_client_id"
    """Never resend this order id; place again under a new client id."""
    DUPLICATE = "duplicate"
    """The identical transaction is already known: treat as accepted."""
    FATAL = "fatal"
    """Not retryable as it is: fix the parameters or the account state."""


@dataclass(frozen=True, slots=True)
class ChainErrorInfo:
    """What a ``(codespace, code)`` pair means and how to react to it."""

    codespace: str
    code: int
    name: str
    description: str
    action: RetryAction


def _table(codespace: str, rows: tuple[tuple[int, str, str, RetryAction], ...]) -> dict[int, ChainErrorInfo]:
    return {code: ChainErrorInfo(codespace, code, name, desc, action) for code, name, desc, action in rows}


_A = RetryAction

_SDK = _table(
    "sdk",
    (
        (2, "ErrTxDecode", "tx parse error", _A.FATAL),
        (3, "ErrInvalidSequence", "invalid sequence", _A.REFRESH_SEQUENCE),
        (4, "ErrUnauthorized", "unauthorized (signature verification failed)", _A.FATAL),
        (5, "ErrInsufficientFunds", "insufficient funds", _A.FATAL),
        (7, "ErrInvalidAddress", "invalid address", _A.FATAL),
        (8, "ErrInvalidPubKey", "invalid pubkey", _A.FATAL),
        (9, "ErrUnknownAddress", "unknown address", _A.FATAL),
        (11, "ErrOutOfGas", "out of gas", _A.FATAL),
        (12, "ErrMemoTooLarge", "memo too large", _A.FATAL),
        (13, "ErrInsufficientFee", "insufficient fee", _A.FATAL),
        (18, "ErrInvalidRequest", "invalid request", _A.FATAL),
        (19, "ErrTxInMempoolCache", "tx already in mempool", _A.DUPLICATE),
        (20, "ErrMempoolIsFull", "mempool is full", _A.RETRY),
        (21, "ErrTxTooLarge", "tx too large", _A.FATAL),
        (30, "ErrTxTimeoutHeight", "tx timeout height", _A.REBUILD_EXPIRY),
        (32, "ErrWrongSequence", "incorrect account sequence", _A.REFRESH_SEQUENCE),
    ),
)

_CLOB = _table(
    "clob",
    (
        (2, "ErrOrderDoesNotExist", "order does not exist in the memclob", _A.FATAL),
        (3, "ErrInvalidOrderSide", "invalid order side", _A.FATAL),
        (4, "ErrInvalidOrderQuantums", "invalid order quantums", _A.FATAL),
        (5, "ErrInvalidOrderGoodTilBlock", "invalid order good-til-block", _A.FATAL),
        (6, "ErrInvalidOrderSubticks", "invalid order subticks", _A.FATAL),
        (7, "ErrOrderIsCanceled", "order is already canceled", _A.NEW_CLIENT_ID),
        (8, "ErrInvalidClob", "clob pair id does not reference a known clob pair", _A.FATAL),
        (
            9,
            "ErrCancelGoodTilBlockNotIncreasing",
            "a cancel with a greater or equal good-til-block exists",
            _A.FATAL,
        ),
        (10, "ErrHeightExceedsGoodTilBlock", "next block height exceeds good-til-block", _A.REBUILD_EXPIRY),
        (
            11,
            "ErrGoodTilBlockExceedsShortBlockWindow",
            "good-til-block beyond ShortBlockWindow",
            _A.REBUILD_EXPIRY,
        ),
        (12, "ErrInvalidPlaceOrder", "MsgPlaceOrder is invalid (tick / step multiples)", _A.FATAL),
        (
            17,
            "ErrOrderWouldExceedMaxOpenOrdersPerClobAndSide",
            "too many open orders per clob and side",
            _A.FATAL,
        ),
        (20, "ErrInvalidReplacement", "invalid order replacement", _A.NEW_CLIENT_ID),
        (24, "ErrOrderFullyFilled", "order is fully filled", _A.NEW_CLIENT_ID),
        (29, "ErrInvalidStatefulOrderCancellation", "stateful cancel expiry before the order's", _A.FATAL),
        (30, "ErrOrderReprocessed", "order has already been processed", _A.DUPLICATE),
        (
            32,
            "ErrStatefulOrderCancellationAlreadyExists",
            "a cancel for this stateful order exists",
            _A.DUPLICATE,
        ),
        (34, "ErrOrderConflictsWithClobPairStatus", "order conflicts with the clob pair status", _A.FATAL),
        (44, "ErrInvalidTimeInForce", "invalid time in force", _A.FATAL),
        (45, "ErrInvalidBatchCancel", "invalid batch cancel", _A.FATAL),
        (46, "ErrBatchCancelFailed", "batch cancel failed: no order was cancelled", _A.FATAL),
        (47, "ErrClobNotInitialized", "clob not initialized", _A.WAIT_BLOCKS),
        (48, "ErrDeprecatedField", "deprecated field (fill-or-kill)", _A.FATAL),
        (50, "ErrInvalidBuilderCode", "invalid builder code", _A.FATAL),
        (2000, "ErrFokOrderCouldNotBeFullyFilled", "fill-or-kill order not fully filled", _A.FATAL),
        (2001, "ErrReduceOnlyWouldIncreasePositionSize", "reduce-only would increase the position", _A.FATAL),
        (
            2002,
            "ErrReduceOnlyWouldChangePositionSide",
            "reduce-only would change the position side",
            _A.FATAL,
        ),
        (2003, "ErrPostOnlyWouldCrossMakerOrder", "post-only order would cross", _A.FATAL),
        (2004, "ErrImmediateExecutionOrderAlreadyFilled", "IOC order already filled", _A.NEW_CLIENT_ID),
        (2005, "ErrWouldViolateIsolatedSubaccountConstraints", "isolated subaccount constraint", _A.FATAL),
        (3000, "ErrInvalidOrderFlag", "invalid order flags", _A.FATAL),
        (3001, "ErrInvalidStatefulOrderGoodTilBlockTime", "invalid good-til-block-time", _A.FATAL),
        (
            3002,
            "ErrLongTermOrdersCannotRequireImmediateExecution",
            "stateful order cannot be IOC/FOK",
            _A.FATAL,
        ),
        (3003, "ErrTimeExceedsGoodTilBlockTime", "block time exceeds good-til-block-time", _A.REBUILD_EXPIRY),
        (
            3004,
            "ErrGoodTilBlockTimeExceedsStatefulOrderTimeWindow",
            "good-til-block-time beyond 95 days",
            _A.FATAL,
        ),
        (3005, "ErrStatefulOrderAlreadyExists", "stateful order already exists", _A.NEW_CLIENT_ID),
        (3006, "ErrStatefulOrderDoesNotExist", "stateful order does not exist", _A.FATAL),
        (3007, "ErrStatefulOrderCollateralizationCheckFailed", "collateralization check failed", _A.FATAL),
        (
            3008,
            "ErrStatefulOrderPreviouslyCancelled",
            "stateful order previously cancelled",
            _A.NEW_CLIENT_ID,
        ),
        (3009, "ErrStatefulOrderPreviouslyRemoved", "stateful order previously removed", _A.NEW_CLIENT_ID),
        (3010, "ErrStatefulOrderCancellationFailedForAlreadyRemovedOrder", "order already removed", _A.FATAL),
        (5001, "ErrBlockRateLimitExceeded", "block rate limit exceeded", _A.WAIT_BLOCKS),
        (6000, "ErrInvalidConditionType", "invalid condition type", _A.FATAL),
        (6001, "ErrInvalidConditionalOrderTriggerSubticks", "invalid trigger subticks", _A.FATAL),
        (6002, "ErrConditionalOrderUntriggered", "conditional order untriggered", _A.FATAL),
        (9003, "ErrReduceOnlyDisabled", "reduce-only orders must be short-term IOC orders", _A.FATAL),
        (10001, "ErrOrderWouldExceedMaxOpenOrdersEquityTierLimit", "equity tier limit reached", _A.FATAL),
        (11000, "ErrInvalidOrderRouterAddress", "invalid order router address", _A.FATAL),
    ),
)

_TABLES: Mapping[str, Mapping[int, ChainErrorInfo]] = {"sdk": _SDK, "clob": _CLOB}


def chain_error_info(codespace: str, code: int) -> ChainErrorInfo:
    """The meaning of a ``(codespace, code)`` pair; unknown pairs are fatal."""
    info = _TABLES.get(codespace, {}).get(code)
    if info is not None:
        return info
    return ChainErrorInfo(codespace, code, "Unknown", f"unknown {codespace} error {code}", RetryAction.FATAL)


class ChainError(DydxError):
    """The chain rejected a transaction.

    Attributes:
        codespace: the module that rejected it (``"sdk"``, ``"clob"``, ...).
        code: the module's error code.
        raw_log: the node's text, e.g. ``"GoodTilBlock 10 is less than ...: invalid GTB"``.
        txhash: the transaction hash when known.
    """

    def __init__(self, codespace: str, code: int, raw_log: str, *, txhash: str | None = None) -> None:
        self.codespace = codespace
        self.code = code
        self.raw_log = raw_log
        self.txhash = txhash
        self.info = chain_error_info(codespace, code)
        super().__init__(f"{codespace} {code} ({self.info.name}): {raw_log}")

    @property
    def action(self) -> RetryAction:
        """How a client should react."""
        return self.info.action

    @classmethod
    def from_response(
        cls, codespace: str, code: int, raw_log: str, *, txhash: str | None = None
    ) -> ChainError:
        """Build the most specific subclass for a failed ``TxResponse``."""
        if codespace == "sdk" and code in (3, 32):
            return SequenceMismatchError(codespace, code, raw_log, txhash=txhash)
        return cls(codespace, code, raw_log, txhash=txhash)


class SequenceMismatchError(ChainError):
    """The account sequence in the transaction did not match the chain's (sdk 32 or 3)."""


_RETRYABLE_GRPC = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "ABORTED"})


def is_retryable(exc: BaseException) -> bool:
    """Whether sending the *same* request again, after a back-off, may succeed.

    This is the one place that decides it; the retry loops of every transport call it. Chain errors
    whose remedy is to rebuild the transaction (new sequence, new expiry, new client id) are not
    retryable here: the caller must change the request first.
    """
    if isinstance(exc, RateLimitedError | ConnectError | TransportTimeout):
        return True
    if isinstance(exc, HttpError):
        return exc.status >= 500 or exc.status in (408, 425, 429)
    if isinstance(exc, SubscriptionError):
        return exc.is_internal
    if isinstance(exc, WebSocketError):
        # 1008 (policy: rate limited) and 1011 (heartbeat timeout) are survivable with a new connection.
        return exc.close_code != 1002
    if isinstance(exc, GrpcError):
        return exc.code in _RETRYABLE_GRPC
    if isinstance(exc, ChainError):
        return exc.action in (RetryAction.RETRY, RetryAction.WAIT_BLOCKS)
    return False


def retry_after(exc: BaseException) -> float | None:
    """The delay in seconds the venue asked for, if the error carries one."""
    if isinstance(exc, RateLimitedError):
        return exc.retry_after
    return None
