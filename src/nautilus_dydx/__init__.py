"""nautilus-dydx: an async-first dYdX v4 trading toolkit and NautilusTrader adapter."""

from __future__ import annotations

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
    SequenceMismatchError,
    SubscriptionError,
    TransportError,
    TransportTimeout,
    VenueError,
    WebSocketError,
)
from nautilus_dydx.core.retry import ExponentialBackoff, NoRetry, RetryPolicy

__version__ = "0.1.0"

__all__ = [
    "BadRequestError",
    "BelowIncrementError",
    "ChainError",
    "ConfigError",
    "ConnectError",
    "DecodeError",
    "DydxError",
    "ExponentialBackoff",
    "ForbiddenError",
    "GrpcError",
    "HttpError",
    "NoRetry",
    "NonPositiveValueError",
    "NotFoundError",
    "QuantizationError",
    "RateLimitedError",
    "RetryPolicy",
    "SequenceMismatchError",
    "SubscriptionError",
    "TransportError",
    "TransportTimeout",
    "VenueError",
    "WebSocketError",
    "__version__",
]
