"""HttpClient over real sockets against a small local aiohttp indexer started on 127.0.0.1:0."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

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
    is_retryable,
)
from nautilus_dydx.core.retry import ExponentialBackoff, NoRetry
from nautilus_dydx.schemas.rest import (
    AddressResponse,
    AssetPositionsResponse,
    CandleResolution,
    CandlesResponse,
    ComplianceScreenResponse,
    FillsResponse,
    HeightResponse,
    HistoricalFundingResponse,
    HistoricalPnlResponse,
    Order,
    OrderBookResponse,
    OrderStatus,
    ParentSubaccountResponse,
    PerpetualMarketsResponse,
    PerpetualPositionsResponse,
    ScreenResponse,
    SparklineTimePeriod,
    SubaccountResponse,
    TimeResponse,
    TradesResponse,
    TransfersResponse,
)
from nautilus_dydx.transport.http import HttpClient, paginate_by_height, render_query
from nautilus_dydx.transport.ratelimit import AsyncRateLimiter

REST_FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rest"
ADDRESS = "dydx1testaddress0000000000000000000000000"

Responder = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    text = body if isinstance(body, str) else json.dumps(body)
    return web.Response(text=text, status=status, content_type="application/json", headers=headers)


@dataclass
class FakeIndexer:
    """Records every request and answers from per-path scripts."""

    base_url: str = ""
    seen: list[str] = field(default_factory=list)
    scripts: dict[str, list[Responder]] = field(default_factory=dict)
    release: asyncio.Event = field(default_factory=asyncio.Event)

    def serve(self, path: str, *responders: Responder) -> None:
        """Answer ``path`` with the responders in turn; the last one repeats."""
        self.scripts[path] = list(responders)

    def serve_file(self, path: str, name: str) -> None:
        body = (REST_FIXTURES / name).read_text()
        self.serve(path, lambda _r: _async(_json(body)))

    def count(self, path: str) -> int:
        return sum(1 for raw in self.seen if raw.split("?", 1)[0] == path)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(request.raw_path)
        script = self.scripts.get(request.path)
        if not script:
            return _json({"error": "Not Found", "errorCode": 404}, status=404)
        responder = script.pop(0) if len(script) > 1 else script[0]
        return await responder(request)


async def _async(response: web.StreamResponse) -> web.StreamResponse:
    return response


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Responder:
    async def respond(_request: web.Request) -> web.StreamResponse:
        return _json(body, status, headers)

    return respond


@pytest.fixture
async def indexer() -> AsyncIterator[FakeIndexer]:
    fake = FakeIndexer()
    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.5)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    host, port = runner.addresses[0][:2]
    fake.base_url = f"http://{host}:{port}"
    try:
        yield fake
    finally:
        fake.release.set()
        await runner.cleanup()


def fast_retry(max_attempts: int = 3) -> ExponentialBackoff:
    return ExponentialBackoff(initial=0.0, jitter=False, max_attempts=max_attempts, budget=None)


@pytest.fixture
async def client(indexer: FakeIndexer) -> AsyncIterator[HttpClient]:
    async with HttpClient(indexer.base_url, retry=fast_retry(), timeout=5.0) as c:
        yield c


# --------------------------------------------------------------------------------------------------
# Every route: path, query and decoded type

Call = Callable[[HttpClient], Awaitable[Any]]

ROUTES: list[tuple[str, Call, str, str, Any]] = [
    ("time", lambda c: c.get_time(), "/v4/time", "time.json", TimeResponse),
    ("height", lambda c: c.get_height(), "/v4/height", "height.json", HeightResponse),
    (
        "markets",
        lambda c: c.get_perpetual_markets(),
        "/v4/perpetualMarkets",
        "perpetual_markets.json",
        PerpetualMarketsResponse,
    ),
    (
        "market",
        lambda c: c.get_perpetual_markets("BTC-USD"),
        "/v4/perpetualMarkets?ticker=BTC-USD",
        "perpetual_markets.json",
        PerpetualMarketsResponse,
    ),
    (
        "orderbook",
        lambda c: c.get_orderbook("BTC-USD"),
        "/v4/orderbooks/perpetualMarket/BTC-USD",
        "orderbook.json",
        OrderBookResponse,
    ),
    (
        "trades",
        lambda c: c.get_trades("BTC-USD", limit=2, created_before_or_at_height=41200317),
        "/v4/trades/perpetualMarket/BTC-USD?limit=2&createdBeforeOrAtHeight=41200317",
        "trades.json",
        TradesResponse,
    ),
    (
        "candles",
        lambda c: c.get_candles(
            "BTC-USD",
            CandleResolution.ONE_MINUTE,
            limit=2,
            from_iso=datetime(2025, 3, 14, 9, 0, tzinfo=UTC),
        ),
        "/v4/candles/perpetualMarkets/BTC-USD?resolution=1MIN&limit=2&fromISO=2025-03-14T09%3A00%3A00.000Z",
        "candles.json",
        CandlesResponse,
    ),
    (
        "funding",
        lambda c: c.get_historical_funding("BTC-USD", effective_before_or_at_height=41198000),
        "/v4/historicalFunding/BTC-USD?effectiveBeforeOrAtHeight=41198000",
        "historical_funding.json",
        HistoricalFundingResponse,
    ),
    (
        "sparklines",
        lambda c: c.get_sparklines(SparklineTimePeriod.SEVEN_DAYS),
        "/v4/sparklines?timePeriod=SEVEN_DAYS",
        "sparklines.json",
        dict,
    ),
    (
        "address",
        lambda c: c.get_address(ADDRESS),
        f"/v4/addresses/{ADDRESS}",
        "address.json",
        AddressResponse,
    ),
    (
        "subaccount",
        lambda c: c.get_subaccount(ADDRESS, 0),
        f"/v4/addresses/{ADDRESS}/subaccountNumber/0",
        "subaccount.json",
        SubaccountResponse,
    ),
    (
        "parent_subaccount",
        lambda c: c.get_parent_subaccount(ADDRESS, 0),
        f"/v4/addresses/{ADDRESS}/parentSubaccountNumber/0",
        "parent_subaccount.json",
        ParentSubaccountResponse,
    ),
    (
        "positions",
        lambda c: c.get_perpetual_positions(ADDRESS, 0, status=["OPEN", "CLOSED"]),
        f"/v4/perpetualPositions?address={ADDRESS}&subaccountNumber=0&status=OPEN,CLOSED",
        "perpetual_positions.json",
        PerpetualPositionsResponse,
    ),
    (
        "parent_positions",
        lambda c: c.get_parent_perpetual_positions(ADDRESS, 1),
        f"/v4/perpetualPositions/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=1",
        "perpetual_positions.json",
        PerpetualPositionsResponse,
    ),
    (
        "assets",
        lambda c: c.get_asset_positions(ADDRESS, 0),
        f"/v4/assetPositions?address={ADDRESS}&subaccountNumber=0",
        "asset_positions.json",
        AssetPositionsResponse,
    ),
    (
        "parent_assets",
        lambda c: c.get_parent_asset_positions(ADDRESS, 0),
        f"/v4/assetPositions/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=0",
        "asset_positions.json",
        AssetPositionsResponse,
    ),
    (
        "orders",
        lambda c: c.get_orders(ADDRESS, 0, ticker="BTC-USD"),
        f"/v4/orders?address={ADDRESS}&subaccountNumber=0&ticker=BTC-USD",
        "orders.json",
        list,
    ),
    (
        "parent_orders",
        lambda c: c.get_parent_orders(ADDRESS, 0, status="OPEN"),
        f"/v4/orders/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=0&status=OPEN",
        "orders.json",
        list,
    ),
    (
        "order",
        lambda c: c.get_order("0a1b2c3d-4e5f-5a6b-8c7d-9e0f1a2b3c4d"),
        "/v4/orders/0a1b2c3d-4e5f-5a6b-8c7d-9e0f1a2b3c4d",
        "order.json",
        Order,
    ),
    (
        "fills",
        lambda c: c.get_fills(ADDRESS, 0, market="BTC-USD", page=1),
        f"/v4/fills?address={ADDRESS}&subaccountNumber=0&market=BTC-USD&marketType=PERPETUAL&page=1",
        "fills.json",
        FillsResponse,
    ),
    (
        "parent_fills",
        lambda c: c.get_parent_fills(ADDRESS, 0, include_types=["LIMIT", "LIQUIDATED"]),
        f"/v4/fills/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=0"
        "&includeTypes=LIMIT,LIQUIDATED",
        "fills.json",
        FillsResponse,
    ),
    (
        "transfers",
        lambda c: c.get_transfers(ADDRESS, 0, limit=5),
        f"/v4/transfers?address={ADDRESS}&subaccountNumber=0&limit=5",
        "transfers.json",
        TransfersResponse,
    ),
    (
        "parent_transfers",
        lambda c: c.get_parent_transfers(ADDRESS, 0, page=1, limit=10),
        f"/v4/transfers/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=0&limit=10&page=1",
        "parent_transfers.json",
        TransfersResponse,
    ),
    (
        "pnl",
        lambda c: c.get_historical_pnl(ADDRESS, 0, created_on_or_after_height=41195000),
        f"/v4/historical-pnl?address={ADDRESS}&subaccountNumber=0&createdOnOrAfterHeight=41195000",
        "historical_pnl.json",
        HistoricalPnlResponse,
    ),
    (
        "parent_pnl",
        lambda c: c.get_parent_historical_pnl(ADDRESS, 0),
        f"/v4/historical-pnl/parentSubaccountNumber?address={ADDRESS}&parentSubaccountNumber=0",
        "historical_pnl.json",
        HistoricalPnlResponse,
    ),
    ("screen", lambda c: c.screen(ADDRESS), f"/v4/screen?address={ADDRESS}", "screen.json", ScreenResponse),
    (
        "compliance",
        lambda c: c.get_compliance_screen(ADDRESS),
        f"/v4/compliance/screen/{ADDRESS}",
        "compliance_screen.json",
        ComplianceScreenResponse,
    ),
]


@pytest.mark.parametrize(
    ("call", "raw", "fixture", "tp"), [r[1:] for r in ROUTES], ids=[r[0] for r in ROUTES]
)
async def test_route(
    indexer: FakeIndexer, client: HttpClient, call: Call, raw: str, fixture: str, tp: Any
) -> None:
    indexer.serve_file(raw.split("?", 1)[0], fixture)
    result = await call(client)
    assert isinstance(result, tp)
    assert indexer.seen == [raw]


async def test_decoded_values(indexer: FakeIndexer, client: HttpClient) -> None:
    indexer.serve_file("/v4/orderbooks/perpetualMarket/BTC-USD", "orderbook.json")
    book = await client.get_orderbook("BTC-USD")
    assert book.bids[0].price == Decimal("83010")
    assert book.asks[0].size == Decimal("0.0003")
    indexer.serve_file("/v4/orders", "orders.json")
    orders = await client.get_orders(ADDRESS, 0)
    assert [o.status for o in orders] == [
        OrderStatus.BEST_EFFORT_OPENED,
        OrderStatus.OPEN,
        OrderStatus.UNTRIGGERED,
    ]


# --------------------------------------------------------------------------------------------------
# Query strings


async def test_query_rendering_reaches_the_server_intact(indexer: FakeIndexer, client: HttpClient) -> None:
    received: dict[str, str] = {}

    async def capture(request: web.Request) -> web.StreamResponse:
        received.update(request.query)
        return _json([])

    indexer.serve("/v4/orders", capture)
    await client.get_orders(
        ADDRESS,
        3,
        limit=10,
        ticker="BTC-USD",
        status=[OrderStatus.OPEN, "UNTRIGGERED"],
        good_til_block_time_before_or_at=datetime(2025, 3, 14, 9, 26, 53, 589123, tzinfo=UTC),
        return_latest_orders=True,
    )
    assert indexer.seen[-1] == (
        f"/v4/orders?address={ADDRESS}&subaccountNumber=3&limit=10&ticker=BTC-USD&status=OPEN,UNTRIGGERED"
        "&goodTilBlockTimeBeforeOrAt=2025-03-14T09%3A26%3A53.589Z&returnLatestOrders=true"
    )
    assert received["status"] == "OPEN,UNTRIGGERED"
    assert received["goodTilBlockTimeBeforeOrAt"] == "2025-03-14T09:26:53.589Z"
    assert received["returnLatestOrders"] == "true"


async def test_path_segments_are_percent_encoded(indexer: FakeIndexer, client: HttpClient) -> None:
    indexer.serve_file("/v4/orderbooks/perpetualMarket/A B/&C?", "orderbook.json")
    await client.get_orderbook("A B/&C?")
    assert indexer.seen == ["/v4/orderbooks/perpetualMarket/A%20B%2F%26C%3F"]


def test_render_query_rules() -> None:
    assert render_query({"a": None, "b": False, "c": True, "d": 0}) == "b=false&c=true&d=0"
    assert render_query({"x": Decimal("1E-7"), "y": Decimal("-2.50")}) == "x=0.0000001&y=-2.50"
    assert render_query({"s": ["A B", "C&D"], "e": []}) == "s=A%20B,C%26D"
    assert render_query({"t": CandleResolution.FOUR_HOURS}) == "t=4HOURS"
    assert render_query({"q": "a=b+c"}) == "q=a%3Db%2Bc"
    with pytest.raises(ConfigError, match="naive"):
        render_query({"t": datetime(2025, 1, 1)})
    with pytest.raises(ConfigError):
        render_query({"n": Decimal("NaN")})


async def refused_before_sending(indexer: FakeIndexer, client: HttpClient, call: Call) -> None:
    """``call`` raises ConfigError, and no request reached the indexer."""
    with pytest.raises(ConfigError):
        await call(client)
    assert indexer.seen == []


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_trades("BTC-USD", limit=0),
        lambda c: c.get_trades("BTC-USD", limit=1001),
        lambda c: c.get_fills(ADDRESS, 0, page=0),
        lambda c: c.get_subaccount(ADDRESS, 128001),
        lambda c: c.get_parent_subaccount(ADDRESS, 128),
        lambda c: c.get_orderbook(""),
        lambda c: c.get_fills(ADDRESS, 0, market_type="PERPETUAL"),
        lambda c: c.get_orders(
            ADDRESS,
            0,
            good_til_block_after=5,
            good_til_block_time_after=datetime(2025, 1, 1, tzinfo=UTC),
        ),
        lambda c: c.get_candles("BTC-USD", "1MIN", to_iso=datetime(2025, 1, 1)),
    ],
)
async def test_invalid_arguments_raise_config_error_without_a_request(
    indexer: FakeIndexer, client: HttpClient, call: Call
) -> None:
    await refused_before_sending(indexer, client, call)


_SUBACCOUNT_ROUTES = [
    "get_subaccount",
    "get_perpetual_positions",
    "get_asset_positions",
    "get_orders",
    "get_fills",
    "get_transfers",
    "get_historical_pnl",
]
_PARENT_ROUTES = [
    "get_parent_subaccount",
    "get_parent_perpetual_positions",
    "get_parent_asset_positions",
    "get_parent_orders",
    "get_parent_fills",
    "get_parent_transfers",
    "get_parent_historical_pnl",
]


@pytest.mark.parametrize(
    ("route", "number"),
    [(r, n) for r in _SUBACCOUNT_ROUTES for n in (-1, 128_001)]
    + [(r, n) for r in _PARENT_ROUTES for n in (-1, 128)],
)
async def test_every_account_route_checks_its_subaccount_number(
    indexer: FakeIndexer, client: HttpClient, route: str, number: int
) -> None:
    # Subaccounts are 0..128000 and parents 0..127 on the venue; each twin route checks its own.
    await refused_before_sending(indexer, client, lambda c: getattr(c, route)(ADDRESS, number))


@pytest.mark.parametrize("url", ["indexer.dydx.trade", "https://indexer.dydx.trade/v4", "ftp://x"])
def test_bad_base_url(url: str) -> None:
    with pytest.raises(ConfigError):
        HttpClient(url)


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://127.0.0.1:99999", "port"),
        ("http://127.0.0.1:abc", "port"),
        ("http://[::1", "IPv6"),
        ("http://exa mple.com", "host"),
        ("http://a\x00b", "host"),
        ("http://:80", "host"),
        ("http://indexer.example?x=1", "query"),
        ("http://indexer.example#top", "fragment"),
    ],
)
def test_malformed_base_url_is_refused_by_the_constructor(url: str, words: str) -> None:
    # These used to construct fine and fail only at the first request, some with a bare ValueError.
    with pytest.raises(ConfigError, match=f"(?i){words}"):
        HttpClient(url)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "https://exämple.invalid", "http://h:1/prefix"])
def test_unusual_but_valid_base_urls_are_accepted(url: str) -> None:
    assert HttpClient(url).base_url == url


@pytest.mark.parametrize(
    "call",
    [
        lambda c: c.get_orderbook("BTC\ud800"),
        lambda c: c.get_perpetual_markets("BTC\ud800"),
        lambda c: c.get_address("dydx1\udfff"),
    ],
)
async def test_unencodable_text_in_a_url_is_config_error(
    indexer: FakeIndexer, client: HttpClient, call: Call
) -> None:
    # A lone surrogate cannot be UTF-8 percent-encoded; it used to escape as UnicodeEncodeError.
    await refused_before_sending(indexer, client, call)


def test_render_query_refuses_unencodable_text() -> None:
    with pytest.raises(ConfigError):
        render_query({"ticker": "BTC\ud800"})


# --------------------------------------------------------------------------------------------------
# Retries, rate limits and errors


@dataclass
class RecordingPolicy:
    """Retries retryable errors at once, up to ``max_attempts``, and keeps what it saw."""

    max_attempts: int = 3
    errors: list[BaseException] = field(default_factory=list)

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        self.errors.append(error)
        if not is_retryable(error) or attempt >= self.max_attempts:
            return None
        return 0.0


@dataclass
class FakeTime:
    now: float = 0.0
    sleeps: list[float] = field(default_factory=list)

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_429_penalizes_the_limiter_and_then_succeeds(indexer: FakeIndexer) -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=fake.sleep)
    policy = RecordingPolicy()
    indexer.serve(
        "/v4/time",
        reply({"errors": [{"msg": "Too many requests"}]}, 429, {"Retry-After": "1500"}),
        reply({"iso": "2025-03-14T09:26:53.589Z", "epoch": 1741944413.589}),
    )
    async with HttpClient(indexer.base_url, retry=policy, rate_limiter=limiter) as client:
        result = await client.get_time()
    assert result.epoch == 1741944413.589
    assert indexer.count("/v4/time") == 2
    (error,) = policy.errors
    assert isinstance(error, RateLimitedError)
    assert error.retry_after == pytest.approx(1.5)
    # The shared limiter was held back for the venue's delay before the retry went out.
    assert fake.sleeps
    assert fake.now >= 1.5


async def test_429_retry_after_is_honoured_by_the_default_policy(indexer: FakeIndexer) -> None:
    indexer.serve(
        "/v4/height",
        reply({"errors": [{"msg": "Too many requests"}]}, 429, {"Retry-After": "20"}),
        reply({"height": "7", "time": "2025-03-14T09:26:52.004Z"}),
    )
    async with HttpClient(indexer.base_url, retry=ExponentialBackoff(initial=0.0, budget=None)) as client:
        assert (await client.get_height()).height == 7
    assert indexer.count("/v4/height") == 2


async def test_429_without_retries_carries_retry_after(indexer: FakeIndexer) -> None:
    indexer.serve("/v4/time", reply({"errors": [{"msg": "Too many requests"}]}, 429, {"Retry-After": "250"}))
    async with HttpClient(indexer.base_url, retry=NoRetry()) as client:
        with pytest.raises(RateLimitedError) as info:
            await client.get_time()
    assert info.value.retry_after == pytest.approx(0.25)


async def test_5xx_then_success(indexer: FakeIndexer, client: HttpClient) -> None:
    indexer.serve(
        "/v4/height",
        reply({"errors": [{"msg": "Internal Server Error"}]}, 500),
        reply("<html>bad gateway</html>", 502),
        reply({"height": "41200317", "time": "2025-03-14T09:26:52.004Z"}),
    )
    result = await client.get_height()
    assert result.height == 41200317
    assert indexer.count("/v4/height") == 3


async def test_retry_budget_exhausted_raises_the_last_typed_error(indexer: FakeIndexer) -> None:
    indexer.serve("/v4/height", reply("unavailable", 503))
    async with HttpClient(indexer.base_url, retry=fast_retry(max_attempts=4)) as client:
        with pytest.raises(HttpError) as info:
            await client.get_height()
    assert info.value.status == 503
    assert info.value.body == b"unavailable"
    assert indexer.count("/v4/height") == 4


@pytest.mark.parametrize(
    "body",
    [
        "{not json",
        json.dumps({"height": 12.5, "time": "2025-03-14T09:26:52.004Z"}),
        json.dumps({"time": "2025-03-14T09:26:52.004Z"}),
        json.dumps([1, 2]),
    ],
)
async def test_malformed_or_schema_violating_json_is_a_decode_error(
    indexer: FakeIndexer, client: HttpClient, body: str
) -> None:
    indexer.serve("/v4/height", reply(body))
    with pytest.raises(DecodeError) as info:
        await client.get_height()
    assert info.value.payload == body.encode()[:512]
    assert indexer.count("/v4/height") == 1


async def test_decode_error_payload_is_only_the_head(indexer: FakeIndexer, client: HttpClient) -> None:
    indexer.serve("/v4/time", reply("[" + "1," * 2000 + "oops"))
    with pytest.raises(DecodeError) as info:
        await client.get_time()
    assert len(info.value.payload) == 512


@pytest.mark.parametrize(
    ("status", "body", "cls", "first"),
    [
        (
            400,
            {
                "errors": [
                    {
                        "value": "0",
                        "msg": "limit must be a positive integer that is not greater than max: 1000",
                        "param": "limit",
                        "location": "query",
                    },
                    {"msg": "Only one of ticker or market may be provided"},
                ]
            },
            BadRequestError,
            ("limit must be a positive integer that is not greater than max: 1000", "limit", "query", "0"),
        ),
        (
            403,
            {"errors": [{"code": "GEOBLOCKED", "msg": "Because you appear to be a resident of ..."}]},
            ForbiddenError,
            ("Because you appear to be a resident of ...", None, None, None),
        ),
        (
            404,
            {"errors": [{"msg": f"No subaccount found with address {ADDRESS} and subaccountNumber 9"}]},
            NotFoundError,
            (f"No subaccount found with address {ADDRESS} and subaccountNumber 9", None, None, None),
        ),
        (404, {"error": "Not Found", "errorCode": 404}, NotFoundError, ("Not Found", None, None, None)),
        (418, {"errors": [{"msg": "teapot"}]}, VenueError, ("teapot", None, None, None)),
    ],
)
async def test_venue_errors_are_typed_and_never_retried(
    indexer: FakeIndexer,
    client: HttpClient,
    status: int,
    body: dict[str, Any],
    cls: type[VenueError],
    first: tuple[str, str | None, str | None, str | None],
) -> None:
    indexer.serve("/v4/addresses/x/subaccountNumber/9", reply(body, status))
    with pytest.raises(VenueError) as info:
        await client.get_subaccount("x", 9)
    assert type(info.value) is cls
    assert info.value.status == status
    item = info.value.errors[0]
    assert (item.msg, item.param, item.location, item.value) == first
    if status == 403:
        assert item.code == "GEOBLOCKED"
    if status == 400:
        assert len(info.value.errors) == 2
    assert indexer.count("/v4/addresses/x/subaccountNumber/9") == 1


async def test_unknown_route_is_not_found(client: HttpClient) -> None:
    with pytest.raises(NotFoundError) as info:
        await client.get_time()
    assert info.value.errors[0].msg == "Not Found"


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_connection_refused_is_connect_error() -> None:
    policy = RecordingPolicy(max_attempts=2)
    async with HttpClient(f"http://127.0.0.1:{_free_port()}", retry=policy) as client:
        with pytest.raises(ConnectError):
            await client.get_time()
    assert len(policy.errors) == 2
    assert all(isinstance(e, ConnectError) for e in policy.errors)


async def test_request_timeout_is_transport_timeout(indexer: FakeIndexer) -> None:
    async def stall(_request: web.Request) -> web.StreamResponse:
        await indexer.release.wait()
        return _json({})

    indexer.serve("/v4/time", stall)
    async with HttpClient(indexer.base_url, retry=NoRetry(), timeout=0.2) as client:
        with pytest.raises(TransportTimeout):
            await client.get_time()


async def test_dropped_connection_is_connect_error(indexer: FakeIndexer) -> None:
    async def drop(request: web.Request) -> web.StreamResponse:
        assert request.transport is not None
        request.transport.close()
        return _json({})

    indexer.serve("/v4/time", drop)
    async with HttpClient(indexer.base_url, retry=NoRetry()) as client:
        with pytest.raises(ConnectError):
            await client.get_time()


async def test_only_dydx_errors_escape_a_broken_session() -> None:
    def factory() -> aiohttp.ClientSession:
        raise OSError("no sockets today")

    async with HttpClient("http://127.0.0.1:1", retry=NoRetry(), session_factory=factory) as client:
        with pytest.raises(DydxError):
            await client.get_time()


# --------------------------------------------------------------------------------------------------
# The shared rate limiter


async def test_shared_limiter_spaces_requests_of_two_clients(indexer: FakeIndexer) -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter(2, 1.0, clock=fake.clock, sleep=fake.sleep)
    arrivals: list[float] = []

    async def stamp(_request: web.Request) -> web.StreamResponse:
        arrivals.append(fake.now)
        return _json({"iso": "2025-03-14T09:26:53.589Z", "epoch": 1.0})

    indexer.serve("/v4/time", stamp)
    async with (
        HttpClient(indexer.base_url, rate_limiter=limiter) as first,
        HttpClient(indexer.base_url, rate_limiter=limiter) as second,
    ):
        for _ in range(3):
            await first.get_time()
            await second.get_time()
        assert first.rate_limiter is second.rate_limiter
    assert len(arrivals) == 6
    # Two per second across both clients: the burst goes at once, then the limiter's (fake) sleeps
    # space the rest so that no 1 s window holds more than two requests.
    assert arrivals[:2] == [0.0, 0.0]
    assert all(later - earlier >= 1.0 - 1e-9 for earlier, later in zip(arrivals, arrivals[2:], strict=False))
    assert fake.sleeps
    assert fake.now >= 2.0 - 1e-9


TOO_MANY = {"errors": [{"msg": "Too many requests"}]}
# Generous guards against a hang; nothing here waits for them to expire.
HANG_GUARD = 30.0


async def test_a_penalty_beyond_the_retry_budget_fails_the_next_request_at_once(indexer: FakeIndexer) -> None:
    indexer.serve(
        "/v4/time", reply(TOO_MANY, 429, {"Retry-After": "60000"}), reply({"iso": "x", "epoch": 1.0})
    )
    async with HttpClient(indexer.base_url, timeout=1.0, retry=ExponentialBackoff(budget=2.0)) as client:
        with pytest.raises(RateLimitedError) as first:
            await client.get_time()
        assert first.value.retry_after == pytest.approx(60.0)
        # The limiter is held back for 60 s: a request that may spend 2 s is refused, not parked.
        with pytest.raises(RateLimitedError, match=r"GET /v4/time: rate limit") as info:
            await asyncio.wait_for(client.get_time(), HANG_GUARD)
    assert info.value.retry_after is not None
    assert 50.0 < info.value.retry_after <= 60.0
    assert is_retryable(info.value)
    assert indexer.count("/v4/time") == 1  # nothing was sent


async def test_a_penalty_beyond_the_timeout_fails_a_request_without_budget(indexer: FakeIndexer) -> None:
    indexer.serve("/v4/time", reply(TOO_MANY, 429, {"Retry-After": "60000"}))
    async with HttpClient(indexer.base_url, timeout=1.0, retry=NoRetry()) as client:
        with pytest.raises(RateLimitedError):
            await client.get_time()
        with pytest.raises(RateLimitedError, match="rate limit") as info:
            await asyncio.wait_for(client.get_time(), HANG_GUARD)
    assert info.value.retry_after is not None
    assert info.value.retry_after > 50.0
    assert indexer.count("/v4/time") == 1


@pytest.mark.parametrize(("period", "sent"), [(20.0, 2), (40.0, 1)])
async def test_the_limiter_wait_is_kept_within_the_retry_budget(
    indexer: FakeIndexer, period: float, sent: int
) -> None:
    fake = FakeTime()
    limiter = AsyncRateLimiter(1, period, clock=fake.clock, sleep=fake.sleep)
    indexer.serve_file("/v4/time", "time.json")
    async with HttpClient(
        indexer.base_url, rate_limiter=limiter, retry=ExponentialBackoff(budget=30.0)
    ) as client:
        await client.get_time()
        if sent == 2:  # the next slot, 20 s away, fits the 30 s budget: waited for
            await client.get_time()
            assert fake.sleeps == [pytest.approx(20.0)]
        else:  # 40 s away: refused at once, without sleeping
            with pytest.raises(RateLimitedError) as info:
                await client.get_time()
            assert info.value.retry_after == pytest.approx(40.0)
            assert fake.sleeps == []
    assert indexer.count("/v4/time") == sent


async def test_close_ends_a_request_waiting_on_the_limiter(indexer: FakeIndexer) -> None:
    sleeping = asyncio.Event()

    async def signalling_sleep(seconds: float) -> None:
        sleeping.set()
        await asyncio.sleep(seconds)

    limiter = AsyncRateLimiter(100, 10.0, sleep=signalling_sleep)
    indexer.serve("/v4/time", reply(TOO_MANY, 429, {"Retry-After": "60000"}))
    made: list[aiohttp.ClientSession] = []
    refused = HttpClient(indexer.base_url, retry=NoRetry(), rate_limiter=limiter)
    # No budget and a long timeout: this one is willing to wait out the penalty.
    waiting = HttpClient(
        indexer.base_url,
        timeout=120.0,
        retry=ExponentialBackoff(budget=None),
        rate_limiter=limiter,
        session_factory=_tracking_factory(made),
    )
    with pytest.raises(RateLimitedError):
        await refused.get_time()
    task = asyncio.create_task(waiting.get_time())
    await asyncio.wait_for(sleeping.wait(), HANG_GUARD)
    await waiting.close()
    with pytest.raises(TransportError, match="closed") as info:
        await asyncio.wait_for(task, HANG_GUARD)
    assert not isinstance(info.value, RateLimitedError)
    assert not is_retryable(info.value)
    assert indexer.count("/v4/time") == 1
    assert made == []  # it never opened a session
    # the other client sharing the limiter is untouched: still held back
    with pytest.raises(RateLimitedError, match="rate limit"):
        await refused.get_time()
    await refused.close()


async def test_closing_one_client_leaves_the_other_clients_waiting_in_line(indexer: FakeIndexer) -> None:
    fake = FakeTime()
    sleeping = asyncio.Event()
    gate = asyncio.Event()

    async def gated_sleep(seconds: float) -> None:
        sleeping.set()
        await gate.wait()
        await fake.sleep(seconds)

    limiter = AsyncRateLimiter(100, 10.0, clock=fake.clock, sleep=gated_sleep)
    limiter.penalize(60.0)
    indexer.serve_file("/v4/time", "time.json")
    patient = ExponentialBackoff(budget=None)
    first = HttpClient(indexer.base_url, timeout=120.0, retry=patient, rate_limiter=limiter)
    second = HttpClient(indexer.base_url, timeout=120.0, retry=patient, rate_limiter=limiter)
    ahead = asyncio.create_task(first.get_time())
    await asyncio.wait_for(sleeping.wait(), HANG_GUARD)
    behind = asyncio.create_task(second.get_time())
    for _ in range(5):
        await asyncio.sleep(0)
    sleeping.clear()
    await first.close()
    with pytest.raises(TransportError, match="closed"):
        await asyncio.wait_for(ahead, HANG_GUARD)
    # the second client's request moved to the head of the line and waits out the penalty
    await asyncio.wait_for(sleeping.wait(), HANG_GUARD)
    assert not behind.done()
    gate.set()
    result = await asyncio.wait_for(behind, HANG_GUARD)
    assert result.epoch > 0
    assert fake.sleeps == [60.0]
    assert indexer.count("/v4/time") == 1
    await second.close()


async def test_close_cuts_a_long_wait_between_retries_short(indexer: FakeIndexer) -> None:
    indexer.serve("/v4/time", reply({"errors": [{"msg": "Internal Server Error"}]}, status=500))
    policy = SignallingPolicy(delay=3600.0)
    client = HttpClient(indexer.base_url, retry=policy)
    task = asyncio.create_task(client.get_time())
    await asyncio.wait_for(policy.retrying.wait(), HANG_GUARD)
    await asyncio.sleep(0)  # let it start the wait
    await client.close()
    with pytest.raises(TransportError, match="closed") as info:
        await asyncio.wait_for(task, HANG_GUARD)
    assert not is_retryable(info.value)
    assert indexer.count("/v4/time") == 1


# --------------------------------------------------------------------------------------------------
# Pagination


def _fill(i: int, height: int) -> dict[str, Any]:
    return {
        "id": f"fill-{i:04d}",
        "side": "BUY",
        "liquidity": "TAKER",
        "type": "LIMIT",
        "market": "BTC-USD",
        "marketType": "PERPETUAL",
        "price": "100",
        "size": "1",
        "fee": "0",
        "createdAt": "2025-03-14T09:00:00.000Z",
        "createdAtHeight": str(height),
        "subaccountNumber": 0,
    }


def _paged_fills(rows: list[dict[str, Any]]) -> Responder:
    async def respond(request: web.Request) -> web.StreamResponse:
        limit = int(request.query.get("limit", "1000"))
        page = int(request.query["page"])
        offset = (page - 1) * limit
        return _json(
            {
                "fills": rows[offset : offset + limit],
                "pageSize": limit,
                "totalResults": len(rows),
                "offset": offset,
            }
        )

    return respond


@pytest.mark.parametrize("count", [0, 5, 6, 7])
async def test_iter_fills_walks_pages(indexer: FakeIndexer, client: HttpClient, count: int) -> None:
    rows = [_fill(i, 100 + i) for i in range(count)]
    indexer.serve("/v4/fills", _paged_fills(rows))
    got = [fill.id async for fill in client.iter_fills(ADDRESS, 0, limit=3)]
    assert got == [row["id"] for row in rows]
    pages = [raw.rsplit("page=", 1)[1] for raw in indexer.seen]
    assert pages == [str(p) for p in range(1, max(1, -(-count // 3)) + 1)]


async def test_iter_transfers_and_pnl_and_trades_walk_pages(indexer: FakeIndexer, client: HttpClient) -> None:
    transfers = json.loads((REST_FIXTURES / "transfers.json").read_text())["transfers"]
    ticks = json.loads((REST_FIXTURES / "historical_pnl.json").read_text())["historicalPnl"]
    trades = json.loads((REST_FIXTURES / "trades.json").read_text())["trades"]

    def paged(key: str, rows: list[dict[str, Any]]) -> Responder:
        async def respond(request: web.Request) -> web.StreamResponse:
            page = int(request.query["page"])
            return _json({key: rows[page - 1 : page], "pageSize": 1, "totalResults": len(rows)})

        return respond

    indexer.serve("/v4/height", reply({"height": "41200000", "time": "2025-03-14T09:00:00.000Z"}))
    indexer.serve("/v4/transfers", paged("transfers", transfers))
    indexer.serve("/v4/historical-pnl", paged("historicalPnl", ticks))
    indexer.serve("/v4/trades/perpetualMarket/BTC-USD", paged("trades", trades))
    assert [t.id async for t in client.iter_transfers(ADDRESS, 0, limit=1)] == [t["id"] for t in transfers]
    assert [t.block_height async for t in client.iter_historical_pnl(ADDRESS, 0, limit=1)] == [
        int(t["blockHeight"]) for t in ticks
    ]
    assert [t.id async for t in client.iter_trades("BTC-USD", limit=1)] == [t["id"] for t in trades]


@dataclass
class GrowingLedger:
    """A newest-first offset-paged route whose ledger gains a row, one block higher, after every page.

    ``honour_height`` False plays a server that ignores ``createdBeforeOrAtHeight``: only the
    client's id guard can then keep the walk free of duplicates.
    """

    key: str
    make: Callable[[int, int], dict[str, Any]]
    height_of: Callable[[dict[str, Any]], int]
    honour_height: bool = True
    rows: list[dict[str, Any]] = field(default_factory=list)
    cursors: list[str | None] = field(default_factory=list)
    serial: int = 0

    def add(self, height: int) -> None:
        self.rows.insert(0, self.make(self.serial, height))
        self.serial += 1

    @property
    def top(self) -> int:
        return max(self.height_of(row) for row in self.rows)

    async def height(self, _request: web.Request) -> web.StreamResponse:
        return _json({"height": str(self.top), "time": "2025-03-14T09:00:00.000Z"})

    async def page(self, request: web.Request) -> web.StreamResponse:
        limit = int(request.query["limit"])
        page = int(request.query["page"])
        cursor = request.query.get("createdBeforeOrAtHeight")
        self.cursors.append(cursor)
        rows = self.rows
        if cursor is not None and self.honour_height:
            rows = [row for row in rows if self.height_of(row) <= int(cursor)]
        offset = (page - 1) * limit
        body = {self.key: rows[offset : offset + limit], "pageSize": limit, "totalResults": len(rows)}
        self.add(self.top + 1)  # activity lands between this page and the next
        return _json(body)


def _transfer(i: int, height: int) -> dict[str, Any]:
    account = {"address": ADDRESS, "subaccountNumber": 0}
    return {
        "id": f"transfer-{i:04d}",
        "sender": account,
        "recipient": account,
        "size": "1",
        "symbol": "USDC",
        "createdAt": "2025-03-14T09:00:00.000Z",
        "createdAtHeight": str(height),
        "type": "TRANSFER_IN",
        "transactionHash": f"{i:064X}",
    }


def _pnl_tick(i: int, height: int) -> dict[str, Any]:
    return {
        "equity": str(i),
        "totalPnl": "0",
        "netTransfers": "0",
        "createdAt": f"2025-03-14T{i % 24:02d}:00:00.000Z",
        "blockHeight": str(height),
        "blockTime": "2025-03-14T09:00:00.000Z",
    }


def _ledger(key: str, honour_height: bool) -> GrowingLedger:
    if key == "transfers":
        ledger = GrowingLedger(key, _transfer, lambda row: int(row["createdAtHeight"]), honour_height)
    else:
        ledger = GrowingLedger(key, _pnl_tick, lambda row: int(row["blockHeight"]), honour_height)
    for height in range(100, 107):
        ledger.add(height)
    return ledger


@pytest.mark.parametrize("honour_height", [True, False])
async def test_offset_walks_are_pinned_while_rows_arrive(
    indexer: FakeIndexer, client: HttpClient, honour_height: bool
) -> None:
    transfers = _ledger("transfers", honour_height)
    ticks = _ledger("historicalPnl", honour_height)
    expected_transfers = [row["id"] for row in transfers.rows]
    expected_ticks = [int(row["blockHeight"]) for row in ticks.rows]
    indexer.serve("/v4/height", transfers.height)
    indexer.serve("/v4/transfers", transfers.page)
    got = [t.id async for t in client.iter_transfers(ADDRESS, 0, limit=2)]
    assert got == expected_transfers
    assert transfers.cursors == ["106"] * len(transfers.cursors)

    indexer.serve("/v4/height", ticks.height)
    indexer.serve("/v4/historical-pnl", ticks.page)
    got_ticks = [t.block_height async for t in client.iter_historical_pnl(ADDRESS, 0, limit=2)]
    assert got_ticks == expected_ticks
    assert ticks.cursors == ["106"] * len(ticks.cursors)
    assert indexer.count("/v4/height") == 2  # read once per walk


async def test_offset_walk_keeps_the_callers_height_and_asks_none(
    indexer: FakeIndexer, client: HttpClient
) -> None:
    transfers = _ledger("transfers", True)
    indexer.serve("/v4/transfers", transfers.page)
    got = [t.id async for t in client.iter_transfers(ADDRESS, 0, limit=2, created_before_or_at_height=103)]
    assert got == ["transfer-0003", "transfer-0002", "transfer-0001", "transfer-0000"]
    assert set(transfers.cursors) == {"103"}
    assert indexer.count("/v4/height") == 0


def _height_cursor_fills(rows: list[dict[str, Any]]) -> Responder:
    ordered = sorted(rows, key=lambda r: (-int(r["createdAtHeight"]), r["id"]))

    async def respond(request: web.Request) -> web.StreamResponse:
        limit = int(request.query.get("limit", "1000"))
        cursor = request.query.get("createdBeforeOrAtHeight")
        chosen = [r for r in ordered if cursor is None or int(r["createdAtHeight"]) <= int(cursor)]
        return _json({"fills": chosen[:limit]})

    return respond


async def test_height_cursor_has_no_duplicates_at_boundaries(
    indexer: FakeIndexer, client: HttpClient
) -> None:
    heights = [20, 20, 20, 19, 19, 18, 17, 17, 17, 15, 12, 12, 11]
    rows = [_fill(i, h) for i, h in enumerate(heights)]
    indexer.serve("/v4/fills", _height_cursor_fills(rows))
    got = [f.id async for f in client.iter_fills_before_height(ADDRESS, 0, limit=4)]
    expected = [r["id"] for r in sorted(rows, key=lambda r: (-int(r["createdAtHeight"]), r["id"]))]
    assert got == expected
    cursors = [
        raw.split("createdBeforeOrAtHeight=")[1] if "createdBefore" in raw else None for raw in indexer.seen
    ]
    assert cursors == [None, "19", "17", "15", "11"]


async def test_trades_height_cursor_starts_where_asked(indexer: FakeIndexer, client: HttpClient) -> None:
    trades = []
    for i, h in enumerate([9, 8, 8, 7, 5]):
        trades.append(
            {
                "id": f"{h:016x}{i:08x}",
                "side": "SELL",
                "size": "1",
                "price": "2",
                "type": "LIMIT",
                "createdAt": "2025-03-14T09:00:00.000Z",
                "createdAtHeight": str(h),
            }
        )

    async def respond(request: web.Request) -> web.StreamResponse:
        limit = int(request.query["limit"])
        cursor = int(request.query.get("createdBeforeOrAtHeight", "1000"))
        return _json({"trades": [t for t in trades if int(t["createdAtHeight"]) <= cursor][:limit]})

    indexer.serve("/v4/trades/perpetualMarket/ETH-USD", respond)
    got = [
        t.created_at_height
        async for t in client.iter_trades_before_height("ETH-USD", start_height=8, limit=2)
    ]
    assert got == [8, 8, 7, 5]
    assert indexer.seen[0].endswith("limit=2&createdBeforeOrAtHeight=8")


@pytest.mark.parametrize(
    "walk",
    [
        lambda c: c.iter_trades_before_height("BTC-USD", limit=0),
        lambda c: c.iter_trades_before_height("BTC-USD", limit=1001),
        lambda c: c.iter_trades_before_height("BTC-USD", start_height=-1),
        lambda c: c.iter_trades_before_height(""),
        lambda c: c.iter_fills_before_height(ADDRESS, 0, limit=0),
        lambda c: c.iter_fills_before_height(ADDRESS, 0, start_height=-1),
        lambda c: c.iter_fills_before_height(ADDRESS, -1),
        lambda c: c.iter_fills_before_height(ADDRESS, 128_001),
        lambda c: c.iter_fills_before_height(ADDRESS, 0, market_type="PERPETUAL"),
        lambda c: c.iter_trades("BTC-USD", limit=0),
        lambda c: c.iter_fills(ADDRESS, 0, limit=0),
        lambda c: c.iter_transfers(ADDRESS, 0, limit=0),
        lambda c: c.iter_historical_pnl(ADDRESS, 0, limit=0),
        lambda c: c.iter_trades(""),
        lambda c: c.iter_fills(ADDRESS, -1),
        lambda c: c.iter_fills(ADDRESS, 0, market_type="PERPETUAL"),
        lambda c: c.iter_transfers(ADDRESS, 128_001),
        lambda c: c.iter_historical_pnl(ADDRESS, -1),
    ],
)
async def test_walk_argument_errors_raise_at_the_call(
    indexer: FakeIndexer, client: HttpClient, walk: Callable[[HttpClient], AsyncIterator[Any]]
) -> None:
    # At the call itself, before the iterator is read: not on the first read.
    with pytest.raises(ConfigError):
        walk(client)
    assert indexer.seen == []


def test_paginate_by_height_checks_its_arguments_at_the_call() -> None:
    fetched: list[int | None] = []

    async def fetch(cursor: int | None, size: int) -> Sequence[tuple[int, str]]:
        fetched.append(cursor)
        return []

    def walk(**kwargs: Any) -> AsyncIterator[tuple[int, str]]:
        return paginate_by_height(fetch, height=lambda r: r[0], ident=lambda r: r[1], **kwargs)

    for bad in ({"limit": 0}, {"limit": 1001}, {"start_height": -1}):
        with pytest.raises(ConfigError):
            walk(**bad)

    async def read(walker: AsyncIterator[tuple[int, str]]) -> list[tuple[int, str]]:
        return [r async for r in walker]

    good = walk(start_height=0, limit=1)
    assert fetched == []  # nothing is fetched before the first read
    assert asyncio.run(read(good)) == []
    assert fetched == [0]


@settings(max_examples=150, deadline=None)
@given(
    heights=st.lists(st.integers(min_value=0, max_value=30), max_size=40),
    limit=st.integers(min_value=1, max_value=8),
)
def test_paginate_by_height_yields_every_row_once(heights: list[int], limit: int) -> None:
    rows = sorted(((h, f"id{i}") for i, h in enumerate(heights)), key=lambda r: (-r[0], r[1]))
    per_height: dict[int, int] = {}
    for h, _ in rows:
        per_height[h] = per_height.get(h, 0) + 1
    calls: list[int | None] = []

    async def fetch(cursor: int | None, size: int) -> Sequence[tuple[int, str]]:
        calls.append(cursor)
        assert len(calls) <= len(rows) + 40, "the walk does not terminate"
        return [r for r in rows if cursor is None or r[0] <= cursor][:size]

    async def walk() -> list[tuple[int, str]]:
        return [
            r
            async for r in paginate_by_height(fetch, height=lambda r: r[0], ident=lambda r: r[1], limit=limit)
        ]

    got = asyncio.run(walk())
    assert len(got) == len(set(got)), "duplicates"
    assert got == sorted(got, key=lambda r: (-r[0], r[1]))
    if all(count < limit for count in per_height.values()):
        assert got == rows
    else:
        # Rows beyond the page limit at one crowded height are unreachable by a height cursor; every
        # other height is complete.
        crowded = {h for h, count in per_height.items() if count >= limit}
        assert [r for r in got if r[0] not in crowded] == [r for r in rows if r[0] not in crowded]


# --------------------------------------------------------------------------------------------------
# Session lifecycle


async def test_one_session_per_client_and_closed_on_exit(indexer: FakeIndexer) -> None:
    made: list[aiohttp.ClientSession] = []

    def factory() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        made.append(session)
        return session

    indexer.serve_file("/v4/time", "time.json")
    client = HttpClient(indexer.base_url, session_factory=factory)
    assert client.closed
    async with client:
        await client.get_time()
        await client.get_time()
        assert len(made) == 1
        assert not client.closed
    assert client.closed
    assert made[0].closed
    # A closed client opens a fresh session on demand, and close() can be called twice.
    await client.get_time()
    assert len(made) == 2
    await client.close()
    await client.close()
    assert all(s.closed for s in made)


@dataclass
class SignallingPolicy:
    """Retries every retryable error after ``delay``, and sets ``retrying`` before each wait."""

    delay: float = 0.05
    max_attempts: int = 5
    retrying: asyncio.Event = field(default_factory=asyncio.Event)

    def next_delay(self, attempt: int, error: BaseException, elapsed: float) -> float | None:
        if not is_retryable(error) or attempt >= self.max_attempts:
            return None
        self.retrying.set()
        return self.delay


def _tracking_factory(made: list[aiohttp.ClientSession]) -> Callable[[], aiohttp.ClientSession]:
    def factory() -> aiohttp.ClientSession:
        session = aiohttp.ClientSession()
        made.append(session)
        return session

    return factory


async def test_close_between_retries_stops_the_request_without_reopening(indexer: FakeIndexer) -> None:
    indexer.serve("/v4/time", reply({"errors": [{"msg": "Internal Server Error"}]}, status=500))
    made: list[aiohttp.ClientSession] = []
    policy = SignallingPolicy()
    client = HttpClient(indexer.base_url, retry=policy, session_factory=_tracking_factory(made))
    task = asyncio.create_task(client.get_time())
    # The policy signals before the retry's sleep, so close() lands before the next attempt.
    await policy.retrying.wait()
    await client.close()
    with pytest.raises(TransportError, match="closed") as info:
        await task
    assert not is_retryable(info.value)
    assert indexer.count("/v4/time") == 1
    assert client.closed
    assert len(made) == 1
    assert all(session.closed for session in made)


async def test_close_during_an_attempt_ends_the_request_with_the_closed_error(indexer: FakeIndexer) -> None:
    arrived = asyncio.Event()

    async def hang(_request: web.Request) -> web.StreamResponse:
        arrived.set()
        await indexer.release.wait()
        return _json({"iso": "2025-03-14T09:26:53.589Z", "epoch": 1.0})

    indexer.serve("/v4/time", hang)
    made: list[aiohttp.ClientSession] = []
    client = HttpClient(indexer.base_url, retry=SignallingPolicy(), session_factory=_tracking_factory(made))
    task = asyncio.create_task(client.get_time())
    await arrived.wait()
    await client.close()
    with pytest.raises(TransportError, match="closed"):
        await task
    assert indexer.count("/v4/time") == 1
    assert len(made) == 1
    assert all(session.closed for session in made)


async def test_a_request_started_after_close_still_reopens(indexer: FakeIndexer) -> None:
    indexer.serve_file("/v4/time", "time.json")
    made: list[aiohttp.ClientSession] = []
    client = HttpClient(indexer.base_url, session_factory=_tracking_factory(made))
    await client.get_time()
    await client.close()
    await client.close()
    await client.get_time()
    assert len(made) == 2
    await client.close()
    assert all(session.closed for session in made)


async def test_default_session_sends_user_agent_and_closes(indexer: FakeIndexer) -> None:
    agents: list[str] = []

    async def capture(request: web.Request) -> web.StreamResponse:
        agents.append(request.headers.get("User-Agent", ""))
        return _json({"restricted": False})

    indexer.serve("/v4/screen", capture)
    async with HttpClient(indexer.base_url, user_agent="tests/1.0", ssl=False) as client:
        assert (await client.screen(ADDRESS)).restricted is False
        session = client._session
    assert agents == ["tests/1.0"]
    assert session is not None
    assert session.closed
