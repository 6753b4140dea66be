"""nautilus-dydx: an async-first dYdX v4 trading toolkit and NautilusTrader adapter."""

from __future__ import annotations

from nautilus_dydx.core.book import OrderBook
from nautilus_dydx.core.config import DydxConfig, Secret
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
from nautilus_dydx.core.stream import StreamProtocol, Subscription
from nautilus_dydx.core.units import MarketParams, Rounding
from nautilus_dydx.schemas.stream import Channel
from nautilus_dydx.services.data import (
    BookDeltas,
    BookRepair,
    BookResync,
    BookSnapshot,
    DataClient,
    Quote,
)
from nautilus_dydx.services.instruments import Instrument, InstrumentProvider
from nautilus_dydx.transport.http import HttpClient
from nautilus_dydx.transport.ratelimit import AsyncRateLimiter, RateLimiterRegistry
from nautilus_dydx.transport.ws import WsClient

__version__ = "0.1.0"

__all__ = [
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
    "Subscription",
    "SubscriptionError",
    "TransportError",
    "TransportTimeout",
    "VenueError",
    "WebSocketError",
    "WsClient",
    "__version__",
]
