"""``HttpClient``: the asyncio client of the dYdX v4 Indexer REST API, on aiohttp.

One method per trader-facing route, each returning the msgspec Structs of
:mod:`nautilus_dydx.schemas.rest`. Every request waits on a (shareable) rate limiter, goes through
:func:`~nautilus_dydx.transport.retry.run_with_retry` with the injected policy, and raises only
:class:`~nautilus_dydx.core.errors.DydxError` subclasses: library exceptions are mapped in
:func:`_map_exceptions` and nowhere else.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import ssl as ssl_module
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from enum import Enum
from importlib import metadata
from types import TracebackType
from typing import Any, Final, Self, TypeVar
from urllib.parse import quote

import aiohttp
import msgspec
from msgspec import UNSET, UnsetType
from yarl import URL

from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import (
    BadRequestError,
    ConfigError,
    ConnectError,
    DecodeError,
    DydxError,
    ForbiddenError,
    HttpError,
    NotFoundError,
    RateLimitedError,
    TransportError,
    TransportTimeout,
    VenueError,
    VenueErrorItem,
)
from nautilus_dydx.core.retry import ExponentialBackoff, RetryPolicy
from nautilus_dydx.schemas.rest import (
    DECODERS,
    AddressResponse,
    AssetPositionsResponse,
    CandleResolution,
    CandlesResponse,
    ComplianceScreenResponse,
    Fill,
    FillsResponse,
    HeightResponse,
    HistoricalFundingResponse,
    HistoricalPnlResponse,
    Order,
    OrderBookResponse,
    OrdersResponse,
    ParentSubaccountResponse,
    PerpetualMarketsResponse,
    PerpetualPositionsResponse,
    PnlTick,
    ScreenResponse,
    SparklinesResponse,
    SparklineTimePeriod,
    SubaccountResponse,
    TimeResponse,
    Trade,
    TradesResponse,
    Transfer,
    TransfersResponse,
    format_decimal,
    format_iso,
)
from nautilus_dydx.transport.ratelimit import AsyncRateLimiter
from nautilus_dydx.transport.retry import run_with_retry

__all__ = [
    "DEFAULT_USER_AGENT",
    "MAX_LIMIT",
    "HttpClient",
    "QueryValue",
    "paginate_by_height",
    "render_query",
]

_log = logging.getLogger(__name__)

T = TypeVar("T")
Item = TypeVar("Item")

MAX_LIMIT: Final = 1000
"""The indexer's largest (and default) ``limit``."""

_MAX_SUBACCOUNT_NUMBER: Final = 128_000
_MAX_PARENT_SUBACCOUNT_NUMBER: Final = 127
_PAYLOAD_HEAD: Final = 512


def _package_version() -> str:
    try:
        return metadata.version("nautilus-dydx")
    except metadata.PackageNotFoundError:
        return "0"


DEFAULT_USER_AGENT: Final = f"nautilus-dydx/{_package_version()}"

QueryScalar = str | int | bool | Decimal | datetime | Enum
QueryValue = QueryScalar | Sequence[QueryScalar] | None
"""What a query parameter may be; ``None`` drops the parameter."""


# --------------------------------------------------------------------------------------------------
# Query strings


def _render_scalar(name: str, value: QueryScalar) -> str:
    # bool before int: bool is an int subclass and the server's isBoolean is strict about the text.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, int):
        return str(int(value))
    if isinstance(value, Decimal):
        if not value.is_finite():
            raise ConfigError(f"query parameter {name!r}: {value} is not a finite number")
        return format_decimal(value)
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ConfigError(f"query parameter {name!r}: naive datetime {value!r}; give it a timezone")
        return format_iso(value)
    if isinstance(value, str):
        return value
    raise ConfigError(f"query parameter {name!r}: unsupported type {type(value).__name__}")


def render_query(params: Mapping[str, QueryValue]) -> str:
    """Render query parameters the way the indexer accepts them.

    ``None`` values are dropped, booleans become ``true``/``false``, sequences are comma-joined,
    datetimes become ISO-8601 UTC with milliseconds and ``Z``, Decimals plain notation, enums their
    value; every value is percent-encoded (the commas that join a list stay literal).

    Args:
        params: parameter names (wire spelling) to values.

    Returns:
        The query string without the leading ``?`` (empty when nothing is left).

    Raises:
        ConfigError: a value cannot be rendered (naive datetime, non-finite Decimal, other types).
    """
    parts: list[str] = []
    for name, value in params.items():
        if value is None:
            continue
        with _map_exceptions(f"query parameter {name!r}"):
            if isinstance(value, Sequence) and not isinstance(value, str):
                if not value:
                    continue
                rendered = ",".join(quote(_render_scalar(name, item), safe="") for item in value)
            else:
                rendered = quote(_render_scalar(name, value), safe="")
            parts.append(f"{quote(name, safe='')}={rendered}")
    return "&".join(parts)


def _segment(name: str, value: str) -> str:
    if not value:
        raise ConfigError(f"{name} must not be empty")
    with _map_exceptions(name):
        return quote(value, safe="")


def _check_limit(limit: int | None) -> None:
    if limit is not None and not 1 <= limit <= MAX_LIMIT:
        raise ConfigError(f"limit must be in [1, {MAX_LIMIT}], got {limit}")


def _check_page(page: int | None) -> None:
    if page is not None and page < 1:
        raise ConfigError(f"page must be >= 1, got {page}")


def _check_subaccount(number: int) -> None:
    if not 0 <= number <= _MAX_SUBACCOUNT_NUMBER:
        raise ConfigError(f"subaccount number must be in [0, {_MAX_SUBACCOUNT_NUMBER}], got {number}")


def _check_parent(number: int) -> None:
    if not 0 <= number <= _MAX_PARENT_SUBACCOUNT_NUMBER:
        raise ConfigError(
            f"parent subaccount number must be in [0, {_MAX_PARENT_SUBACCOUNT_NUMBER}], got {number}"
        )


# The account routes come in twins: ``/v4/X`` names one subaccount, ``/v4/X/parentSubaccountNumber``
# a parent and all its children. These give each twin its owner keys, the number checked first.


def _subaccount_query(address: str, number: int) -> dict[str, QueryValue]:
    _check_subaccount(number)
    return {"address": address, "subaccountNumber": number}


def _parent_query(address: str, number: int) -> dict[str, QueryValue]:
    _check_parent(number)
    return {"address": address, "parentSubaccountNumber": number}


# --------------------------------------------------------------------------------------------------
# Errors


@contextlib.contextmanager
def _map_exceptions(what: str) -> Iterator[None]:
    """The one place where aiohttp, asyncio and OS exceptions become ``DydxError``s."""
    try:
        yield
    except DydxError:
        raise
    # ServerTimeoutError is both a ClientError and a TimeoutError (asyncio.TimeoutError is TimeoutError
    # since 3.11): the timeout reading wins.
    except TimeoutError as exc:
        raise TransportTimeout(f"{what}: timed out") from exc
    except aiohttp.InvalidURL as exc:
        raise ConfigError(f"{what}: invalid URL {exc}") from exc
    except (aiohttp.ClientConnectionError, aiohttp.ClientPayloadError) as exc:
        raise ConnectError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except aiohttp.ClientError as exc:
        raise TransportError(f"{what}: {type(exc).__name__}: {exc}") from exc
    except OSError as exc:
        raise ConnectError(f"{what}: {type(exc).__name__}: {exc}") from exc
    # Building a URL from a bad value (a port out of range, text that is not UTF-8 encodable such as
    # a lone surrogate) raises these from yarl, urllib or aiohttp: the caller's input, not the network.
    except (ValueError, UnicodeError) as exc:
        raise ConfigError(f"{what}: {type(exc).__name__}: {exc}") from exc


class _ErrorItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    msg: str = ""
    param: str | None = None
    location: str | None = None
    value: Any = None
    code: str | None = None


class _ErrorBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=False):
    errors: list[_ErrorItem] | UnsetType = UNSET
    # The unknown-route 404 body is {"error": "Not Found", "errorCode": 404}.
    error: str | UnsetType = UNSET


_ERROR_DECODER: Final = msgspec.json.Decoder(_ErrorBody)


def _venue_items(body: bytes) -> tuple[VenueErrorItem, ...]:
    try:
        decoded = _ERROR_DECODER.decode(body)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ()
    if not isinstance(decoded.errors, UnsetType):
        return tuple(
            VenueErrorItem(msg=e.msg, param=e.param, location=e.location, value=e.value, code=e.code)
            for e in decoded.errors
        )
    if not isinstance(decoded.error, UnsetType):
        return (VenueErrorItem(msg=decoded.error),)
    return ()


def _retry_after_seconds(header: str | None) -> float | None:
    # The indexer sends Retry-After in milliseconds, not the seconds RFC 9110 specifies.
    if header is None:
        return None
    try:
        millis = float(header.strip())
    except ValueError:
        return None
    if not millis >= 0 or millis == float("inf"):
        return None
    return millis / 1000.0


_VENUE_ERRORS: Final[dict[int, type[VenueError]]] = {
    400: BadRequestError,
    403: ForbiddenError,
    404: NotFoundError,
}


def _error_for(what: str, status: int, headers: Mapping[str, str], body: bytes) -> DydxError:
    """The typed error for a non-2xx answer."""
    if status == 429:
        delay = _retry_after_seconds(headers.get("Retry-After"))
        return RateLimitedError(f"{what}: 429 Too Many Requests", retry_after=delay)
    # 408 and 425 ask for the same request again later, so they stay retryable HttpErrors.
    if 400 <= status < 500 and status not in (408, 425):
        items = _venue_items(body)
        detail = "; ".join(item.msg for item in items) or body[:200].decode("utf-8", "replace")
        cls = _VENUE_ERRORS.get(status, VenueError)
        return cls(f"{what}: {status}: {detail}", status=status, errors=items)
    return HttpError(f"{what}: HTTP {status}", status=status, body=body)


# --------------------------------------------------------------------------------------------------
# Pagination


def paginate_by_height(
    fetch: Callable[[int | None, int], Awaitable[Sequence[Item]]],
    *,
    height: Callable[[Item], int],
    ident: Callable[[Item], str],
    start_height: int | None = None,
    limit: int = MAX_LIMIT,
) -> AsyncIterator[Item]:
    """Walk a newest-first list downward with an inclusive ``createdBeforeOrAtHeight`` cursor.

    Each page is fetched with the lowest height of the previous full page as the new cursor; because
    the cursor is inclusive, rows at that boundary height come again and are dropped by id, so every
    row is yielded exactly once. The walk ends on a page shorter than ``limit``.

    If a whole page sits at one height, rows of that height beyond ``limit`` cannot be reached by a
    height cursor; the walk logs a warning and continues below that height.

    Args:
        fetch: ``fetch(cursor, limit)`` returns the page at or below ``cursor`` (``None``: newest).
        height: the height of an item.
        ident: the unique id of an item.
        start_height: the first cursor (``None`` starts at the newest row).
        limit: the page size.

    Returns:
        An async iterator of the items, newest first, without duplicates. Nothing is fetched until
        the first read.

    Raises:
        ConfigError: ``limit`` outside ``[1, 1000]`` or a negative ``start_height``, at the call.
    """
    # Checked here, not in the generator, so that a bad argument raises at the call.
    _check_limit(limit)
    if start_height is not None and start_height < 0:
        raise ConfigError(f"start_height must be >= 0, got {start_height}")
    return _walk_by_height(fetch, height=height, ident=ident, start_height=start_height, limit=limit)


async def _walk_by_height(
    fetch: Callable[[int | None, int], Awaitable[Sequence[Item]]],
    *,
    height: Callable[[Item], int],
    ident: Callable[[Item], str],
    start_height: int | None,
    limit: int,
) -> AsyncIterator[Item]:
    cursor = start_height
    boundary: int | None = None
    seen: set[str] = set()
    while cursor is None or cursor >= 0:
        page = await fetch(cursor, limit)
        for item in page:
            if height(item) == boundary and ident(item) in seen:
                continue
            yield item
        if len(page) < limit:
            return
        low = min(height(item) for item in page)
        if cursor is not None and low >= cursor:
            _log.warning(
                "height %d holds at least %d rows; rows beyond the page limit at that height are skipped",
                cursor,
                limit,
            )
            cursor = cursor - 1
            boundary = None
            seen = set()
            continue
        if low != boundary:
            boundary = low
            seen = set()
        seen.update(ident(item) for item in page if height(item) == low)
        cursor = low


async def _paginate_pages(
    fetch: Callable[[int], Awaitable[tuple[Sequence[Item], int | UnsetType]]],
    *,
    limit: int,
) -> AsyncIterator[Item]:
    # Walks page=1,2,... until totalResults is covered; without totalResults a short page ends it.
    page = 1
    delivered = 0
    while True:
        items, total = await fetch(page)
        for item in items:
            yield item
        delivered += len(items)
        if not items or len(items) < limit:
            return
        if not isinstance(total, UnsetType) and delivered >= total:
            return
        page += 1


# --------------------------------------------------------------------------------------------------
# The client

_SCHEME = re.compile(r"^https?://", re.IGNORECASE)
_BAD_HOST_CHARS = re.compile(r"[\s\x00-\x1f\x7f]")


def _check_base_url(given: str, base: str) -> None:
    """Refuse a base URL that could only fail later, at the first request (port, host, IPv6 form)."""
    try:
        url = URL(base)
        port = url.port
    except (ValueError, UnicodeError) as exc:
        raise ConfigError(f"base_url {given!r} is not a valid URL: {exc}") from None
    host = url.host
    if not host:
        raise ConfigError(f"base_url {given!r} has no host")
    if _BAD_HOST_CHARS.search(host):
        raise ConfigError(f"base_url {given!r}: the host contains whitespace or control characters")
    if port is None or not 0 < port <= 65535:
        raise ConfigError(f"base_url {given!r}: port {port} is not in [1, 65535]")
    if url.query_string or "?" in base:
        raise ConfigError(f"base_url {given!r} must not carry a query string")
    if url.fragment or "#" in base:
        raise ConfigError(f"base_url {given!r} must not carry a fragment")


class HttpClient:
    """Async client of the dYdX v4 Indexer REST API.

    Args:
        base_url: the indexer host without ``/v4`` (``"https://indexer.dydx.trade"``).
        timeout: seconds allowed for one attempt (connect, send and read the whole body).
        retry: the retry policy (default :class:`~nautilus_dydx.core.retry.ExponentialBackoff`).
        rate_limiter: the limiter every request waits on; pass the one from a shared
            :class:`~nautilus_dydx.transport.ratelimit.RateLimiterRegistry` to share a quota
            (default: a new 100 requests / 10 s limiter for this client alone).
        ssl: ``True`` verifies TLS with the system trust store (default), an ``SSLContext`` customises
            it, ``False`` disables verification (local emulator over https only).
        session_factory: makes the ``aiohttp.ClientSession`` (called lazily, once per open client);
            the seam for tests and for custom connectors.
        user_agent: the ``User-Agent`` header of the default session.

    Raises:
        ConfigError: the base URL or the timeout is invalid.

    Use it as ``async with HttpClient(url) as client: ...`` or call :meth:`close` when done.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        rate_limiter: AsyncRateLimiter | None = None,
        ssl: ssl_module.SSLContext | bool = True,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> None:
        base = base_url.strip().rstrip("/")
        if not _SCHEME.match(base):
            raise ConfigError(f"base_url must start with http:// or https://, got {base_url!r}")
        if base.lower().endswith("/v4"):
            raise ConfigError(f"base_url is the host without /v4, got {base_url!r}")
        _check_base_url(base_url, base)
        if not timeout > 0:
            raise ConfigError(f"timeout must be > 0, got {timeout}")
        self._base = base
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._retry: RetryPolicy = retry if retry is not None else ExponentialBackoff()
        self._limiter = rate_limiter if rate_limiter is not None else AsyncRateLimiter(100, 10.0)
        self._ssl = ssl
        self._session_factory = session_factory
        self._user_agent = user_agent
        self._session: aiohttp.ClientSession | None = None
        # Bumped by close(): a request remembers the generation it started in and stops at its next
        # attempt once that changed, instead of reopening a session nothing would close.
        self._generation = 0
        # Resolved by close(): wakes the requests of the generation waiting on the rate limiter or
        # between retries. Made by the first request that needs it (a future needs a running loop).
        self._closing: asyncio.Future[None] | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    @classmethod
    def from_config(
        cls,
        config: DydxConfig,
        *,
        timeout: float | None = None,
        retry: RetryPolicy | None = None,
        rate_limiter: AsyncRateLimiter | None = None,
        ssl: ssl_module.SSLContext | bool | None = None,
        user_agent: str = DEFAULT_USER_AGENT,
    ) -> HttpClient:
        """A client for ``config``'s indexer with its timeout, retry policy, rate limit and TLS choice.

        Keyword arguments override the config. ``rate_limiter`` defaults to a new limiter of
        ``config.rest_rate_limit``; pass one from a shared :class:`RateLimiterRegistry` to share
        the quota between clients.
        """
        requests, period = config.rest_rate_limit
        return cls(
            config.indexer_http_url,
            timeout=config.request_timeout if timeout is None else timeout,
            retry=config.retry if retry is None else retry,
            rate_limiter=rate_limiter if rate_limiter is not None else AsyncRateLimiter(requests, period),
            ssl=config.http_ssl if ssl is None else ssl,
            user_agent=user_agent,
        )

    @property
    def base_url(self) -> str:
        """The indexer host, without ``/v4``."""
        return self._base

    @property
    def rate_limiter(self) -> AsyncRateLimiter:
        """The limiter this client waits on."""
        return self._limiter

    @property
    def closed(self) -> bool:
        """True when no session is open (before the first request and after :meth:`close`)."""
        return self._session is None or self._session.closed

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the session; a later request opens a new one.

        Requests still running end with a :class:`~nautilus_dydx.core.errors.TransportError` saying
        the client was closed: at once when they wait on the rate limiter or between retries, as
        soon as the closed session tears their connection down when in an attempt. They are not
        retried and never reopen a session.
        """
        self._generation += 1
        closing, self._closing = self._closing, None
        if closing is not None and not closing.done():
            closing.set_result(None)
        session, self._session = self._session, None
        if session is not None and not session.closed:
            with _map_exceptions("close"):
                await session.close()

    def _ensure_session(self) -> aiohttp.ClientSession:
        session = self._session
        if session is None or session.closed:
            if self._session_factory is not None:
                session = self._session_factory()
            else:
                session = aiohttp.ClientSession(
                    timeout=self._timeout,
                    headers={"User-Agent": self._user_agent, "Accept": "application/json"},
                )
            self._session = session
        return session

    # -- the request path --------------------------------------------------------------------------

    def _closing_signal(self) -> asyncio.Future[None]:
        """The future :meth:`close` resolves for the requests of the current generation."""
        loop = asyncio.get_running_loop()
        closing = self._closing
        if closing is None or closing.get_loop() is not loop:
            closing = self._closing = loop.create_future()
        return closing

    async def _get(self, path: str, params: Mapping[str, QueryValue], tp: type[T]) -> T:
        query = render_query(params)
        text = f"{self._base}{path}?{query}" if query else f"{self._base}{path}"
        what = f"GET {path}"
        with _map_exceptions(what):
            url = URL(text, encoded=True)
        decoder: msgspec.json.Decoder[T] = DECODERS[tp]
        generation = self._generation
        closing = self._closing_signal()
        started = time.monotonic()
        # The policy's total time budget (ExponentialBackoff.budget), when it has one.
        budget = getattr(self._retry, "budget", None)
        if isinstance(budget, bool) or not isinstance(budget, int | float):
            budget = None
        timeout = self._timeout.total

        def closed_error() -> TransportError:
            return TransportError(f"{what}: the client was closed while the request was running")

        def max_wait() -> float | None:
            # How long this attempt may wait for the rate limiter: an attempt must start within the
            # retry budget; with no budget, an attempt waits no longer than it may run.
            if budget is not None:
                return max(budget - (time.monotonic() - started), 0.0)
            return timeout

        async def pause(delay: float) -> None:
            # The wait between attempts, which close() cuts short.
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(closing), delay)
            else:
                await asyncio.sleep(0)
            if self._generation != generation:
                raise closed_error()

        async def attempt() -> T:
            if self._generation != generation:
                raise closed_error()
            try:
                granted = await self._limiter.acquire(max_wait=max_wait(), abort=closing)
            except RateLimitedError as exc:
                # Our own limiter refused to wait that long: fail now, typed like a 429.
                raise RateLimitedError(f"{what}: {exc}", retry_after=exc.retry_after) from None
            if not granted or self._generation != generation:
                raise closed_error()
            try:
                with _map_exceptions(what):
                    session = self._ensure_session()
                    _log.debug("%s", text)
                    async with session.get(url, timeout=self._timeout, ssl=self._ssl) as response:
                        status = response.status
                        headers = response.headers
                        body = await response.read()
            except TransportError as exc:
                # close() tore the connection down under this attempt: say so, and do not retry.
                if self._generation != generation:
                    raise closed_error() from exc
                raise
            _log.debug(
                "%s -> %d (%d bytes, request id %s)", what, status, len(body), headers.get("X-Request-Id")
            )
            if not 200 <= status < 300:
                error = _error_for(what, status, headers, body)
                if isinstance(error, RateLimitedError) and error.retry_after is not None:
                    # The quota is per client IP: hold back every client that shares this limiter.
                    self._limiter.penalize(error.retry_after)
                raise error
            try:
                return decoder.decode(body)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                raise DecodeError(f"{what}: {exc}", payload=body[:_PAYLOAD_HEAD]) from exc

        return await run_with_retry(attempt, self._retry, what=what, sleep=pause)

    # -- market data -------------------------------------------------------------------------------

    async def get_time(self) -> TimeResponse:
        """``GET /v4/time``: the indexer's clock."""
        return await self._get("/v4/time", {}, TimeResponse)

    async def get_height(self) -> HeightResponse:
        """``GET /v4/height``: the latest block the indexer processed."""
        return await self._get("/v4/height", {}, HeightResponse)

    async def get_perpetual_markets(
        self, ticker: str | None = None, *, limit: int | None = None
    ) -> PerpetualMarketsResponse:
        """``GET /v4/perpetualMarkets``: all markets, or the one named by ``ticker``."""
        _check_limit(limit)
        return await self._get(
            "/v4/perpetualMarkets", {"ticker": ticker, "limit": limit}, PerpetualMarketsResponse
        )

    async def get_orderbook(self, ticker: str) -> OrderBookResponse:
        """``GET /v4/orderbooks/perpetualMarket/{ticker}``: up to 100 levels a side."""
        path = f"/v4/orderbooks/perpetualMarket/{_segment('ticker', ticker)}"
        return await self._get(path, {}, OrderBookResponse)

    async def get_trades(
        self,
        ticker: str,
        *,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        page: int | None = None,
    ) -> TradesResponse:
        """``GET /v4/trades/perpetualMarket/{ticker}``: public trades.

        Newest first without ``page``; oldest first (by event id) with ``page`` (an indexer quirk).
        """
        _check_limit(limit)
        _check_page(page)
        path = f"/v4/trades/perpetualMarket/{_segment('ticker', ticker)}"
        params: dict[str, QueryValue] = {
            "limit": limit,
            "createdBeforeOrAtHeight": created_before_or_at_height,
            "createdBeforeOrAt": created_before_or_at,
            "page": page,
        }
        return await self._get(path, params, TradesResponse)

    async def get_candles(
        self,
        ticker: str,
        resolution: CandleResolution | str,
        *,
        limit: int | None = None,
        from_iso: datetime | None = None,
        to_iso: datetime | None = None,
    ) -> CandlesResponse:
        """``GET /v4/candles/perpetualMarkets/{ticker}``: newest first; ``from_iso`` inclusive, ``to_iso`` not."""
        _check_limit(limit)
        path = f"/v4/candles/perpetualMarkets/{_segment('ticker', ticker)}"
        params: dict[str, QueryValue] = {
            "resolution": resolution,
            "limit": limit,
            "fromISO": from_iso,
            "toISO": to_iso,
        }
        return await self._get(path, params, CandlesResponse)

    async def get_historical_funding(
        self,
        ticker: str,
        *,
        limit: int | None = None,
        effective_before_or_at_height: int | None = None,
        effective_before_or_at: datetime | None = None,
    ) -> HistoricalFundingResponse:
        """``GET /v4/historicalFunding/{ticker}``: hourly funding rates, newest first."""
        _check_limit(limit)
        path = f"/v4/historicalFunding/{_segment('ticker', ticker)}"
        params: dict[str, QueryValue] = {
            "limit": limit,
            "effectiveBeforeOrAtHeight": effective_before_or_at_height,
            "effectiveBeforeOrAt": effective_before_or_at,
        }
        return await self._get(path, params, HistoricalFundingResponse)

    async def get_sparklines(
        self, time_period: SparklineTimePeriod | str = SparklineTimePeriod.ONE_DAY
    ) -> SparklinesResponse:
        """``GET /v4/sparklines``: close prices per ticker, newest first."""
        return await self._get("/v4/sparklines", {"timePeriod": time_period}, SparklinesResponse)

    # -- accounts ----------------------------------------------------------------------------------

    async def get_address(self, address: str) -> AddressResponse:
        """``GET /v4/addresses/{address}``: every subaccount of an address."""
        path = f"/v4/addresses/{_segment('address', address)}"
        return await self._get(path, {}, AddressResponse)

    async def get_subaccount(self, address: str, number: int) -> SubaccountResponse:
        """``GET /v4/addresses/{address}/subaccountNumber/{number}``."""
        _check_subaccount(number)
        path = f"/v4/addresses/{_segment('address', address)}/subaccountNumber/{int(number)}"
        return await self._get(path, {}, SubaccountResponse)

    async def get_parent_subaccount(self, address: str, parent_number: int) -> ParentSubaccountResponse:
        """``GET /v4/addresses/{address}/parentSubaccountNumber/{parent_number}``."""
        _check_parent(parent_number)
        path = f"/v4/addresses/{_segment('address', address)}/parentSubaccountNumber/{int(parent_number)}"
        return await self._get(path, {}, ParentSubaccountResponse)

    async def get_perpetual_positions(
        self,
        address: str,
        subaccount_number: int,
        *,
        status: Sequence[str] | str | None = None,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
    ) -> PerpetualPositionsResponse:
        """``GET /v4/perpetualPositions``: most recently opened first; ``status`` filters (OPEN, ...)."""
        return await self._positions(
            "/v4/perpetualPositions",
            _subaccount_query(address, subaccount_number),
            status,
            limit,
            created_before_or_at_height,
            created_before_or_at,
        )

    async def get_parent_perpetual_positions(
        self,
        address: str,
        parent_subaccount_number: int,
        *,
        status: Sequence[str] | str | None = None,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
    ) -> PerpetualPositionsResponse:
        """``GET /v4/perpetualPositions/parentSubaccountNumber``: positions of all the children."""
        return await self._positions(
            "/v4/perpetualPositions/parentSubaccountNumber",
            _parent_query(address, parent_subaccount_number),
            status,
            limit,
            created_before_or_at_height,
            created_before_or_at,
        )

    async def _positions(
        self,
        path: str,
        owner: dict[str, QueryValue],
        status: Sequence[str] | str | None,
        limit: int | None,
        created_before_or_at_height: int | None,
        created_before_or_at: datetime | None,
    ) -> PerpetualPositionsResponse:
        _check_limit(limit)
        params: dict[str, QueryValue] = {
            **owner,
            "status": status,
            "limit": limit,
            "createdBeforeOrAtHeight": created_before_or_at_height,
            "createdBeforeOrAt": created_before_or_at,
        }
        return await self._get(path, params, PerpetualPositionsResponse)

    async def get_asset_positions(self, address: str, subaccount_number: int) -> AssetPositionsResponse:
        """``GET /v4/assetPositions``: USDC, adjusted by unsettled funding."""
        params = _subaccount_query(address, subaccount_number)
        return await self._get("/v4/assetPositions", params, AssetPositionsResponse)

    async def get_parent_asset_positions(
        self, address: str, parent_subaccount_number: int
    ) -> AssetPositionsResponse:
        """``GET /v4/assetPositions/parentSubaccountNumber``."""
        params = _parent_query(address, parent_subaccount_number)
        return await self._get("/v4/assetPositions/parentSubaccountNumber", params, AssetPositionsResponse)

    # -- orders ------------------------------------------------------------------------------------

    async def get_orders(
        self,
        address: str,
        subaccount_number: int,
        *,
        limit: int | None = None,
        ticker: str | None = None,
        side: str | None = None,
        type: str | None = None,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        status: Sequence[str] | str | None = None,
        good_til_block_before_or_at: int | None = None,
        good_til_block_after: int | None = None,
        good_til_block_time_before_or_at: datetime | None = None,
        good_til_block_time_after: datetime | None = None,
        return_latest_orders: bool | None = None,
    ) -> OrdersResponse:
        """``GET /v4/orders``: the subaccount's orders (a bare list).

        The indexer sorts descending (latest expiry first) only when ``return_latest_orders`` is
        absent; any value, ``True`` included, sorts ascending (an indexer quirk). Filters on
        good-til-block and good-til-block-time cannot be combined.
        """
        return await self._orders(
            "/v4/orders",
            _subaccount_query(address, subaccount_number),
            {
                "limit": limit,
                "ticker": ticker,
                "side": side,
                "type": type,
                "includeTypes": include_types,
                "excludeTypes": exclude_types,
                "status": status,
                "goodTilBlockBeforeOrAt": good_til_block_before_or_at,
                "goodTilBlockAfter": good_til_block_after,
                "goodTilBlockTimeBeforeOrAt": good_til_block_time_before_or_at,
                "goodTilBlockTimeAfter": good_til_block_time_after,
                "returnLatestOrders": return_latest_orders,
            },
            limit,
        )

    async def get_parent_orders(
        self,
        address: str,
        parent_subaccount_number: int,
        *,
        limit: int | None = None,
        ticker: str | None = None,
        side: str | None = None,
        type: str | None = None,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        status: Sequence[str] | str | None = None,
        good_til_block_before_or_at: int | None = None,
        good_til_block_after: int | None = None,
        good_til_block_time_before_or_at: datetime | None = None,
        good_til_block_time_after: datetime | None = None,
        return_latest_orders: bool | None = None,
    ) -> OrdersResponse:
        """``GET /v4/orders/parentSubaccountNumber``: the orders of every child; filters as :meth:`get_orders`."""
        return await self._orders(
            "/v4/orders/parentSubaccountNumber",
            _parent_query(address, parent_subaccount_number),
            {
                "limit": limit,
                "ticker": ticker,
                "side": side,
                "type": type,
                "includeTypes": include_types,
                "excludeTypes": exclude_types,
                "status": status,
                "goodTilBlockBeforeOrAt": good_til_block_before_or_at,
                "goodTilBlockAfter": good_til_block_after,
                "goodTilBlockTimeBeforeOrAt": good_til_block_time_before_or_at,
                "goodTilBlockTimeAfter": good_til_block_time_after,
                "returnLatestOrders": return_latest_orders,
            },
            limit,
        )

    async def _orders(
        self,
        path: str,
        owner: dict[str, QueryValue],
        filters: dict[str, QueryValue],
        limit: int | None,
    ) -> OrdersResponse:
        _check_limit(limit)
        has_gtb = filters["goodTilBlockBeforeOrAt"] is not None or filters["goodTilBlockAfter"] is not None
        has_gtbt = (
            filters["goodTilBlockTimeBeforeOrAt"] is not None or filters["goodTilBlockTimeAfter"] is not None
        )
        if has_gtb and has_gtbt:
            raise ConfigError("good-til-block and good-til-block-time filters cannot be combined")
        return await self._get(path, {**owner, **filters}, OrdersResponse)

    async def get_order(self, order_id: str) -> Order:
        """``GET /v4/orders/{order_id}``: one order by its indexer UUID."""
        path = f"/v4/orders/{_segment('order_id', order_id)}"
        return await self._get(path, {}, Order)

    # -- fills, transfers, pnl ---------------------------------------------------------------------

    async def get_fills(
        self,
        address: str,
        subaccount_number: int,
        *,
        market: str | None = None,
        market_type: str | None = None,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        page: int | None = None,
    ) -> FillsResponse:
        """``GET /v4/fills``: the subaccount's fills.

        ``market`` needs ``market_type`` (``"PERPETUAL"``); when only ``market`` is given the type
        defaults to ``PERPETUAL``. Newest first without ``page``, oldest first with it.
        """
        owner = _subaccount_query(address, subaccount_number)
        _check_limit(limit)
        _check_page(page)
        if market_type is not None and market is None:
            raise ConfigError("market_type needs market")
        params: dict[str, QueryValue] = {
            **owner,
            "market": market,
            "marketType": market_type if market_type is not None or market is None else "PERPETUAL",
            "includeTypes": include_types,
            "excludeTypes": exclude_types,
            "limit": limit,
            "createdBeforeOrAtHeight": created_before_or_at_height,
            "createdBeforeOrAt": created_before_or_at,
            "page": page,
        }
        return await self._get("/v4/fills", params, FillsResponse)

    async def get_parent_fills(
        self,
        address: str,
        parent_subaccount_number: int,
        *,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        limit: int | None = None,
        page: int | None = None,
    ) -> FillsResponse:
        """``GET /v4/fills/parentSubaccountNumber``: the fills of every child."""
        owner = _parent_query(address, parent_subaccount_number)
        _check_limit(limit)
        _check_page(page)
        params: dict[str, QueryValue] = {
            **owner,
            "includeTypes": include_types,
            "excludeTypes": exclude_types,
            "limit": limit,
            "page": page,
        }
        return await self._get("/v4/fills/parentSubaccountNumber", params, FillsResponse)

    async def get_transfers(
        self,
        address: str,
        subaccount_number: int,
        *,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        page: int | None = None,
    ) -> TransfersResponse:
        """``GET /v4/transfers``: transfers, deposits and withdrawals of the subaccount."""
        return await self._transfers(
            "/v4/transfers",
            _subaccount_query(address, subaccount_number),
            limit,
            created_before_or_at_height,
            created_before_or_at,
            page,
        )

    async def get_parent_transfers(
        self,
        address: str,
        parent_subaccount_number: int,
        *,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        page: int | None = None,
    ) -> TransfersResponse:
        """``GET /v4/transfers/parentSubaccountNumber``: transfers between children are left out."""
        return await self._transfers(
            "/v4/transfers/parentSubaccountNumber",
            _parent_query(address, parent_subaccount_number),
            limit,
            created_before_or_at_height,
            created_before_or_at,
            page,
        )

    async def _transfers(
        self,
        path: str,
        owner: dict[str, QueryValue],
        limit: int | None,
        created_before_or_at_height: int | None,
        created_before_or_at: datetime | None,
        page: int | None,
    ) -> TransfersResponse:
        _check_limit(limit)
        _check_page(page)
        params: dict[str, QueryValue] = {
            **owner,
            "limit": limit,
            "createdBeforeOrAtHeight": created_before_or_at_height,
            "createdBeforeOrAt": created_before_or_at,
            "page": page,
        }
        return await self._get(path, params, TransfersResponse)

    async def get_historical_pnl(
        self,
        address: str,
        subaccount_number: int,
        *,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        created_on_or_after_height: int | None = None,
        created_on_or_after: datetime | None = None,
        page: int | None = None,
    ) -> HistoricalPnlResponse:
        """``GET /v4/historical-pnl``: PnL ticks, ``blockHeight`` descending."""
        owner = _subaccount_query(address, subaccount_number)
        _check_page(page)
        return await self._historical_pnl(
            "/v4/historical-pnl",
            {**owner, "page": page},
            limit,
            created_before_or_at_height,
            created_before_or_at,
            created_on_or_after_height,
            created_on_or_after,
        )

    async def get_parent_historical_pnl(
        self,
        address: str,
        parent_subaccount_number: int,
        *,
        limit: int | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        created_on_or_after_height: int | None = None,
        created_on_or_after: datetime | None = None,
    ) -> HistoricalPnlResponse:
        """``GET /v4/historical-pnl/parentSubaccountNumber``: children's ticks summed per hour (no paging)."""
        return await self._historical_pnl(
            "/v4/historical-pnl/parentSubaccountNumber",
            _parent_query(address, parent_subaccount_number),
            limit,
            created_before_or_at_height,
            created_before_or_at,
            created_on_or_after_height,
            created_on_or_after,
        )

    async def _historical_pnl(
        self,
        path: str,
        owner: dict[str, QueryValue],
        limit: int | None,
        created_before_or_at_height: int | None,
        created_before_or_at: datetime | None,
        created_on_or_after_height: int | None,
        created_on_or_after: datetime | None,
    ) -> HistoricalPnlResponse:
        _check_limit(limit)
        params: dict[str, QueryValue] = {
            **owner,
            "limit": limit,
            "createdBeforeOrAtHeight": created_before_or_at_height,
            "createdBeforeOrAt": created_before_or_at,
            "createdOnOrAfterHeight": created_on_or_after_height,
            "createdOnOrAfter": created_on_or_after,
        }
        return await self._get(path, params, HistoricalPnlResponse)

    # -- compliance --------------------------------------------------------------------------------

    async def screen(self, address: str) -> ScreenResponse:
        """``GET /v4/screen?address=...``: the legacy compliance check (``restricted``)."""
        if not address:
            raise ConfigError("address must not be empty")
        return await self._get("/v4/screen", {"address": address}, ScreenResponse)

    async def get_compliance_screen(self, address: str) -> ComplianceScreenResponse:
        """``GET /v4/compliance/screen/{address}``: compliance status (``COMPLIANT``, ``BLOCKED``, ...)."""
        path = f"/v4/compliance/screen/{_segment('address', address)}"
        return await self._get(path, {}, ComplianceScreenResponse)

    # -- iterators ---------------------------------------------------------------------------------

    def iter_fills(
        self,
        address: str,
        subaccount_number: int,
        *,
        market: str | None = None,
        market_type: str | None = None,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> AsyncIterator[Fill]:
        """Every fill, walking ``page=1,2,...``; oldest first (the indexer's paged order).

        Argument errors raise :class:`ConfigError` at the call, before anything is fetched.
        """
        _check_limit(limit)
        _check_subaccount(subaccount_number)
        if market_type is not None and market is None:
            raise ConfigError("market_type needs market")

        async def fetch(page: int) -> tuple[Sequence[Fill], int | UnsetType]:
            response = await self.get_fills(
                address,
                subaccount_number,
                market=market,
                market_type=market_type,
                include_types=include_types,
                exclude_types=exclude_types,
                limit=limit,
                created_before_or_at_height=created_before_or_at_height,
                created_before_or_at=created_before_or_at,
                page=page,
            )
            return response.fills, response.total_results

        return _paginate_pages(fetch, limit=limit)

    def iter_trades(
        self,
        ticker: str,
        *,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> AsyncIterator[Trade]:
        """Every public trade of a market, walking ``page=1,2,...``; oldest first.

        Argument errors raise :class:`ConfigError` at the call, before anything is fetched.
        """
        _check_limit(limit)
        _segment("ticker", ticker)

        async def fetch(page: int) -> tuple[Sequence[Trade], int | UnsetType]:
            response = await self.get_trades(
                ticker,
                limit=limit,
                created_before_or_at_height=created_before_or_at_height,
                created_before_or_at=created_before_or_at,
                page=page,
            )
            return response.trades, response.total_results

        return _paginate_pages(fetch, limit=limit)

    def iter_transfers(
        self,
        address: str,
        subaccount_number: int,
        *,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> AsyncIterator[Transfer]:
        """Every transfer of the subaccount, walking ``page=1,2,...``; newest first.

        The walk is pinned to one height so that transfers arriving meanwhile do not shift the pages:
        ``created_before_or_at_height``, or else the indexer's height read once at the start
        (:meth:`get_height`). Rows are also dropped by id if they come twice. Argument errors raise
        :class:`ConfigError` at the call, before anything is fetched.
        """
        _check_limit(limit)
        _check_subaccount(subaccount_number)

        async def fetch(height: int, page: int) -> tuple[Sequence[Transfer], int | UnsetType]:
            response = await self.get_transfers(
                address,
                subaccount_number,
                limit=limit,
                created_before_or_at_height=height,
                created_before_or_at=created_before_or_at,
                page=page,
            )
            return response.transfers, response.total_results

        return self._pinned_walk(
            fetch, created_before_or_at_height, ident=lambda transfer: transfer.id, limit=limit
        )

    def iter_historical_pnl(
        self,
        address: str,
        subaccount_number: int,
        *,
        created_before_or_at_height: int | None = None,
        created_before_or_at: datetime | None = None,
        created_on_or_after_height: int | None = None,
        created_on_or_after: datetime | None = None,
        limit: int = MAX_LIMIT,
    ) -> AsyncIterator[PnlTick]:
        """Every PnL tick of the subaccount, walking ``page=1,2,...``; newest first.

        Pinned like :meth:`iter_transfers`; a tick that comes twice (same block height and time) is
        dropped. Argument errors raise :class:`ConfigError` at the call, before anything is fetched.
        """
        _check_limit(limit)
        _check_subaccount(subaccount_number)

        async def fetch(height: int, page: int) -> tuple[Sequence[PnlTick], int | UnsetType]:
            response = await self.get_historical_pnl(
                address,
                subaccount_number,
                limit=limit,
                created_before_or_at_height=height,
                created_before_or_at=created_before_or_at,
                created_on_or_after_height=created_on_or_after_height,
                created_on_or_after=created_on_or_after,
                page=page,
            )
            return response.historical_pnl, response.total_results

        return self._pinned_walk(
            fetch,
            created_before_or_at_height,
            ident=lambda tick: (tick.block_height, tick.created_at),
            limit=limit,
        )

    async def _pinned_walk(
        self,
        fetch: Callable[[int, int], Awaitable[tuple[Sequence[Item], int | UnsetType]]],
        height: int | None,
        *,
        ident: Callable[[Item], object],
        limit: int,
    ) -> AsyncIterator[Item]:
        # Offset pages of a newest-first list shift by one for every row added at the top while the
        # walk runs (rows come twice); a fixed createdBeforeOrAtHeight keeps the list still. The id
        # set is the second guard, for a server that ignores the height.
        pinned = height if height is not None else (await self.get_height()).height

        async def page_at(page: int) -> tuple[Sequence[Item], int | UnsetType]:
            return await fetch(pinned, page)

        seen: set[object] = set()
        async for item in _paginate_pages(page_at, limit=limit):
            key = ident(item)
            if key in seen:
                continue
            seen.add(key)
            yield item

    def iter_trades_before_height(
        self, ticker: str, *, start_height: int | None = None, limit: int = MAX_LIMIT
    ) -> AsyncIterator[Trade]:
        """Public trades newest first, walking ``createdBeforeOrAtHeight`` down from ``start_height``.

        Unlike :meth:`iter_trades` this is stable while new trades arrive: the cursor only moves down.
        Argument errors raise :class:`ConfigError` at the call, before anything is fetched.
        """
        _segment("ticker", ticker)

        async def fetch(cursor: int | None, size: int) -> Sequence[Trade]:
            response = await self.get_trades(ticker, limit=size, created_before_or_at_height=cursor)
            return response.trades

        return paginate_by_height(
            fetch,
            height=lambda trade: trade.created_at_height,
            ident=lambda trade: trade.id,
            start_height=start_height,
            limit=limit,
        )

    def iter_fills_before_height(
        self,
        address: str,
        subaccount_number: int,
        *,
        market: str | None = None,
        market_type: str | None = None,
        include_types: Sequence[str] | None = None,
        exclude_types: Sequence[str] | None = None,
        start_height: int | None = None,
        limit: int = MAX_LIMIT,
    ) -> AsyncIterator[Fill]:
        """The subaccount's fills newest first, walking ``createdBeforeOrAtHeight`` downward.

        Argument errors raise :class:`ConfigError` at the call, before anything is fetched.
        """
        # The checks get_fills makes on every page, made once here so that they fail at the call.
        _check_subaccount(subaccount_number)
        if market_type is not None and market is None:
            raise ConfigError("market_type needs market")

        async def fetch(cursor: int | None, size: int) -> Sequence[Fill]:
            response = await self.get_fills(
                address,
                subaccount_number,
                market=market,
                market_type=market_type,
                include_types=include_types,
                exclude_types=exclude_types,
                limit=size,
                created_before_or_at_height=cursor,
            )
            return response.fills

        return paginate_by_height(
            fetch,
            height=lambda fill: fill.created_at_height,
            ident=lambda fill: fill.id,
            start_height=start_height,
            limit=limit,
        )
