"""The error tree: its drawn shape, is_retryable for every branch, chain error lookups."""

from __future__ import annotations

import copy
import pickle
import re

import pytest

from nautilus_dydx.core import errors
from nautilus_dydx.core.errors import (
    BadRequestError,
    BelowIncrementError,
    ChainError,
    ConfigError,
    ConnectError,
    DecodeError,
    DydxError,
    ForbiddenError,
    GrpcError,
    HttpError,
    NonPositiveValueError,
    NotFoundError,
    QuantizationError,
    RateLimitedError,
    RetryAction,
    SequenceMismatchError,
    SubscriptionError,
    TransportError,
    TransportTimeout,
    VenueErrorItem,
    WebSocketError,
    chain_error_info,
    is_retryable,
    retry_after,
)


def _drawn_tree() -> dict[str, str]:
    """Parent of each class as drawn in the module docstring."""
    doc = errors.__doc__ or ""
    parents: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in doc.splitlines():
        match = re.match(r"^[\s│]*(?:├── |└── )?(\w+)(?:\s|$)", line)
        if not match or not isinstance(getattr(errors, match.group(1), None), type):
            continue
        name = match.group(1)
        depth = line.index(name)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        if stack:
            parents[name] = stack[-1][1]
        stack.append((depth, name))
    return parents


def test_drawn_tree_matches_the_classes() -> None:
    drawn = _drawn_tree()
    assert len(drawn) >= 19, drawn
    for child, parent in drawn.items():
        child_cls = getattr(errors, child)
        parent_cls = getattr(errors, parent)
        assert child_cls.__bases__[0] is parent_cls, f"{child} should derive from {parent}"
    exported = {
        name
        for name in errors.__all__
        if isinstance(getattr(errors, name), type) and issubclass(getattr(errors, name), DydxError)
    }
    assert exported - {"DydxError"} == set(drawn), "every exported error appears in the drawn tree"


def test_value_errors_are_also_valueerrors() -> None:
    for cls in (ConfigError, DecodeError, QuantizationError, NonPositiveValueError, BelowIncrementError):
        assert issubclass(cls, ValueError)


def test_exports_exist() -> None:
    for name in errors.__all__:
        assert hasattr(errors, name), name


# --------------------------------------------------------------------------------------------------
# is_retryable: every branch


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (RateLimitedError("slow down", retry_after=1.5), True),
        (RateLimitedError("slow down"), True),
        (ConnectError("refused"), True),
        (TransportTimeout("deadline"), True),
        (HttpError("boom", status=500), True),
        (HttpError("bad gateway", status=502), True),
        (HttpError("unavailable", status=503), True),
        (HttpError("timeout", status=408), True),
        (HttpError("too early", status=425), True),
        (HttpError("too many", status=429), True),
        (HttpError("teapot", status=418), False),
        (HttpError("redirect", status=302), False),
        (SubscriptionError("Internal error, could not fetch data for subscription: v4_orderbook"), True),
        (SubscriptionError("Invalid subscription id for channel: v4_orderbook-XYZ"), False),
        (WebSocketError("closed", close_code=1011), True),
        (WebSocketError("rate limited", close_code=1008), True),
        (WebSocketError("restart", close_code=1012), True),
        (WebSocketError("reset"), True),
        (WebSocketError("protocol error", close_code=1002), False),
        (GrpcError("x", code="UNAVAILABLE"), True),
        (GrpcError("x", code="DEADLINE_EXCEEDED"), True),
        (GrpcError("x", code="RESOURCE_EXHAUSTED"), True),
        (GrpcError("x", code="ABORTED"), True),
        (GrpcError("x", code="INVALID_ARGUMENT"), False),
        (GrpcError("x", code="NOT_FOUND"), False),
        (GrpcError("x", code="INTERNAL"), False),
        (ChainError("sdk", 20, "mempool is full"), True),
        (ChainError("clob", 47, "clob not initialized"), True),
        (ChainError("clob", 5001, "block rate limit"), True),
        (ChainError("sdk", 32, "account sequence mismatch"), False),
        (ChainError("sdk", 19, "tx already in mempool"), False),
        (ChainError("clob", 10, "height exceeds GTB"), False),
        (ChainError("clob", 3005, "stateful order already exists"), False),
        (ChainError("clob", 2003, "post-only would cross"), False),
        (ChainError("wasm", 1, "unknown"), False),
        (BadRequestError("bad", status=400), False),
        (ForbiddenError("geo", status=403), False),
        (NotFoundError("nope", status=404), False),
        (ConfigError("bad config"), False),
        (DecodeError("bad bytes"), False),
        (QuantizationError("bad size"), False),
        (TransportError("generic"), False),
        (DydxError("root"), False),
        (ValueError("foreign"), False),
        (KeyError("foreign"), False),
    ],
)
def test_is_retryable(exc: BaseException, expected: bool) -> None:
    assert is_retryable(exc) is expected


def test_retry_after() -> None:
    assert retry_after(RateLimitedError("x", retry_after=2.5)) == 2.5
    assert retry_after(RateLimitedError("x")) is None
    assert retry_after(HttpError("x", status=503)) is None
    assert retry_after(ValueError()) is None


# --------------------------------------------------------------------------------------------------
# Chain errors


@pytest.mark.parametrize(
    ("codespace", "code", "name", "action"),
    [
        ("sdk", 3, "ErrInvalidSequence", RetryAction.REFRESH_SEQUENCE),
        ("sdk", 32, "ErrWrongSequence", RetryAction.REFRESH_SEQUENCE),
        ("sdk", 19, "ErrTxInMempoolCache", RetryAction.DUPLICATE),
        ("sdk", 20, "ErrMempoolIsFull", RetryAction.RETRY),
        ("sdk", 4, "ErrUnauthorized", RetryAction.FATAL),
        ("sdk", 5, "ErrInsufficientFunds", RetryAction.FATAL),
        ("sdk", 13, "ErrInsufficientFee", RetryAction.FATAL),
        ("sdk", 30, "ErrTxTimeoutHeight", RetryAction.REBUILD_EXPIRY),
        ("clob", 10, "ErrHeightExceedsGoodTilBlock", RetryAction.REBUILD_EXPIRY),
        ("clob", 11, "ErrGoodTilBlockExceedsShortBlockWindow", RetryAction.REBUILD_EXPIRY),
        ("clob", 47, "ErrClobNotInitialized", RetryAction.WAIT_BLOCKS),
        ("clob", 5001, "ErrBlockRateLimitExceeded", RetryAction.WAIT_BLOCKS),
        ("clob", 7, "ErrOrderIsCanceled", RetryAction.NEW_CLIENT_ID),
        ("clob", 20, "ErrInvalidReplacement", RetryAction.NEW_CLIENT_ID),
        ("clob", 3005, "ErrStatefulOrderAlreadyExists", RetryAction.NEW_CLIENT_ID),
        ("clob", 3008, "ErrStatefulOrderPreviouslyCancelled", RetryAction.NEW_CLIENT_ID),
        ("clob", 3009, "ErrStatefulOrderPreviouslyRemoved", RetryAction.NEW_CLIENT_ID),
        ("clob", 2003, "ErrPostOnlyWouldCrossMakerOrder", RetryAction.FATAL),
        ("clob", 2001, "ErrReduceOnlyWouldIncreasePositionSize", RetryAction.FATAL),
        ("clob", 2002, "ErrReduceOnlyWouldChangePositionSide", RetryAction.FATAL),
        ("clob", 3007, "ErrStatefulOrderCollateralizationCheckFailed", RetryAction.FATAL),
        ("clob", 10001, "ErrOrderWouldExceedMaxOpenOrdersEquityTierLimit", RetryAction.FATAL),
        ("clob", 12, "ErrInvalidPlaceOrder", RetryAction.FATAL),
        ("clob", 34, "ErrOrderConflictsWithClobPairStatus", RetryAction.FATAL),
        ("clob", 9003, "ErrReduceOnlyDisabled", RetryAction.FATAL),
        ("clob", 48, "ErrDeprecatedField", RetryAction.FATAL),
    ],
)
def test_chain_error_table_follows_the_protocol_guidance(
    codespace: str, code: int, name: str, action: RetryAction
) -> None:
    info = chain_error_info(codespace, code)
    assert (info.codespace, info.code, info.name, info.action) == (codespace, code, name, action)
    assert info.description


def test_unknown_chain_errors_are_fatal() -> None:
    for codespace, code in (("clob", 99999), ("sdk", 1), ("perpetuals", 2)):
        info = chain_error_info(codespace, code)
        assert info.name == "Unknown"
        assert info.action is RetryAction.FATAL
        assert f"{codespace} error {code}" in info.description


def test_chain_error_fields_and_message() -> None:
    e = ChainError("clob", 2003, "post-only order would cross", txhash="ABCD")
    assert (e.codespace, e.code, e.raw_log, e.txhash) == ("clob", 2003, "post-only order would cross", "ABCD")
    assert e.action is RetryAction.FATAL
    assert str(e) == "clob 2003 (ErrPostOnlyWouldCrossMakerOrder): post-only order would cross"


@pytest.mark.parametrize("code", [3, 32])
def test_from_response_builds_sequence_mismatch(code: int) -> None:
    e = ChainError.from_response("sdk", code, "account sequence mismatch, expected 5, got 4", txhash="FF")
    assert type(e) is SequenceMismatchError
    assert isinstance(e, ChainError)
    assert e.action is RetryAction.REFRESH_SEQUENCE
    assert e.txhash == "FF"


@pytest.mark.parametrize(("codespace", "code"), [("sdk", 19), ("clob", 3), ("clob", 32), ("other", 32)])
def test_from_response_other_codes_are_plain_chain_errors(codespace: str, code: int) -> None:
    e = ChainError.from_response(codespace, code, "x")
    assert type(e) is ChainError


# --------------------------------------------------------------------------------------------------
# Attributes, truncation, pickling


def test_attributes_and_truncation() -> None:
    d = DecodeError("bad", payload=b"x" * 2000)
    assert len(d.payload) == 512
    h = HttpError("boom", status=503, body=b"y" * 5000)
    assert (h.status, len(h.body)) == (503, 2048)
    s = SubscriptionError("Internal error, could not fetch data", channel="v4_trades", id="BTC-USD")
    assert (s.channel, s.id, s.is_internal, s.close_code) == ("v4_trades", "BTC-USD", True, None)
    g = GrpcError("unavailable", code="UNAVAILABLE", details="connection reset")
    assert (g.code, g.details) == ("UNAVAILABLE", "connection reset")
    item = VenueErrorItem(msg="limit must be a positive integer", param="limit", location="query", value="0")
    v = BadRequestError("bad", status=400, errors=(item,))
    assert v.errors[0].param == "limit"
    assert v.status == 400


@pytest.mark.parametrize(
    "exc",
    [
        HttpError("boom", status=503, body=b"oops"),
        SubscriptionError("Internal error", channel="v4_trades", id="ETH-USD"),
        GrpcError("x", code="UNAVAILABLE", details="d"),
        RateLimitedError("slow", retry_after=3.0),
        ForbiddenError("geo", status=403, errors=(VenueErrorItem(msg="blocked", code="GEOBLOCKED"),)),
        ChainError.from_response("sdk", 32, "seq", txhash="AB"),
        ChainError("clob", 2003, "cross"),
        DecodeError("bad", payload=b"{"),
        ConfigError("plain"),
    ],
)
def test_errors_survive_pickle_and_copy(exc: DydxError) -> None:
    for clone in (pickle.loads(pickle.dumps(exc)), copy.copy(exc), copy.deepcopy(exc)):
        assert type(clone) is type(exc)
        assert str(clone) == str(exc)
        assert vars(clone) == vars(exc)
        assert is_retryable(clone) == is_retryable(exc)


def test_bad_request_concerns_a_parameter() -> None:
    from nautilus_dydx.core.errors import BadRequestError, VenueErrorItem

    about_ticker = BadRequestError("400", status=400, errors=(VenueErrorItem("invalid", param="ticker"),))
    about_limit = BadRequestError("400", status=400, errors=(VenueErrorItem("invalid", param="limit"),))
    unnamed = BadRequestError("400", status=400)
    assert about_ticker.concerns("ticker")
    assert not about_limit.concerns("ticker")
    assert unnamed.concerns("ticker")
