"""The public API of the top-level package is pinned: adding or removing a name is a decision."""

from __future__ import annotations

import nautilus_dydx

EXPECTED = {
    "AsyncRateLimiter",
    "BadRequestError",
    "BelowIncrementError",
    "BookDeltas",
    "BookRepair",
    "BookResync",
    "BookSnapshot",
    "ChainError",
    "Channel",
    "ConfigError",
    "ConnectError",
    "DataClient",
    "DecodeError",
    "DydxConfig",
    "DydxError",
    "ExponentialBackoff",
    "ForbiddenError",
    "GrpcError",
    "HttpClient",
    "HttpError",
    "Instrument",
    "InstrumentProvider",
    "MarketParams",
    "NoRetry",
    "NonPositiveValueError",
    "NotFoundError",
    "OrderBook",
    "QuantizationError",
    "Quote",
    "RateLimitedError",
    "RateLimiterRegistry",
    "RetryPolicy",
    "Rounding",
    "Secret",
    "SequenceMismatchError",
    "StreamProtocol",
    "SubscriptionError",
    "Subscription",
    "TransportError",
    "TransportTimeout",
    "VenueError",
    "WebSocketError",
    "WsClient",
    "__version__",
}


def test_all_is_pinned() -> None:
    assert set(nautilus_dydx.__all__) == EXPECTED


def test_every_exported_name_exists() -> None:
    missing = [name for name in nautilus_dydx.__all__ if not hasattr(nautilus_dydx, name)]
    assert missing == []


def test_every_public_error_derives_from_dydx_error() -> None:
    for name in nautilus_dydx.__all__:
        obj = getattr(nautilus_dydx, name)
        if isinstance(obj, type) and issubclass(obj, Exception):
            assert issubclass(obj, nautilus_dydx.DydxError), name


def test_the_package_does_not_import_the_emulator_or_nautilus_trader() -> None:
    import subprocess
    import sys

    code = (
        "import sys, nautilus_dydx; "
        "bad = [m for m in sys.modules if m.startswith(('nautilus_dydx.emulator', 'nautilus_trader'))]; "
        "print(','.join(bad)); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout
