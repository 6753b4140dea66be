"""The emulated indexer REST API (comlink) under ``/v4``.

Shapes, validation texts, pagination and ordering quirks follow the real server; see
``docs/emulator.md`` for what is simplified.
"""

from __future__ import annotations

import datetime as dt
import itertools
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec
from aiohttp import web

from nautilus_dydx.emulator import events as ev
from nautilus_dydx.emulator.indexer import fmt
from nautilus_dydx.emulator.indexer.store import FillRow, IndexerStore, OrderRow, PnlTick, TradeRow

__all__ = ["RestApi", "RestFaults", "RestRateLimiter", "json_response"]

log = logging.getLogger(__name__)

Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

API_LIMIT = 1000
MAX_SUBACCOUNT_NUMBER = 128000
MAX_PARENT_NUMBER = 127
_ADDRESS_RE = re.compile(r"^[a-zA-Z0-9]{1,90}$")
_INT_RE = re.compile(r"^[0-9]+$")
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_ENCODER = msgspec.json.Encoder()

CACHE_SHORT = "public, max-age=1"
CACHE_LONG = "public, max-age=10"
CACHE_NONE = "no-cache, no-store, no-transform"

ORDER_TYPES = (
    "LIMIT",
    "MARKET",
    "STOP_LIMIT",
    "STOP_MARKET",
    "TRAILING_STOP",
    "TAKE_PROFIT",
    "TAKE_PROFIT_MARKET",
    "TWAP",
    "TWAP_SUBORDER",
)
ORDER_STATUSES = ("OPEN", "FILLED", "CANCELED", "BEST_EFFORT_CANCELED", "UNTRIGGERED", "BEST_EFFORT_OPENED")
FILL_TYPES = ("LIMIT", "LIQUIDATED", "LIQUIDATION", "DELEVERAGED", "OFFSETTING", "TWAP_SUBORDER")


def json_response(body: Any, status: int = 200, cache: str | None = CACHE_SHORT) -> web.Response:
    """A JSON response encoded with msgspec (dict key order is kept)."""
    resp = web.Response(body=_ENCODER.encode(body), status=status, content_type="application/json")
    if cache is not None:
        resp.headers["Cache-Control"] = cache
    return resp


class ValidationFailed(Exception):
    def __init__(self, errors: list[Json]) -> None:
        super().__init__("validation failed")
        self.errors = errors


class NotFound(Exception):
    pass


class _Query:
    """Reads declared parameters and collects express-validator-v6-style errors."""

    def __init__(self, request: web.Request) -> None:
        self.request = request
        self.q = request.query
        self.errors: list[Json] = []

    def fail(self, name: str, msg: str, location: str = "query") -> None:
        src = self.q if location == "query" else self.request.match_info
        err: Json = {}
        if name in src:
            err["value"] = src[name]
        err.update({"msg": msg, "param": name, "location": location})
        self.errors.append(err)

    def raw(self, name: str, location: str = "query") -> str | None:
        if location == "params":
            return self.request.match_info.get(name)
        return self.q.get(name)

    def address(self, name: str = "address", location: str = "query") -> str:
        value = self.raw(name, location)
        if value is None or not _ADDRESS_RE.match(value):
            self.fail(name, "address must be a valid dydx address", location)
            return ""
        return value

    def int_in(
        self, name: str, low: int, high: int, msg: str, *, required: bool, location: str = "query"
    ) -> int | None:
        value = self.raw(name, location)
        if value is None:
            if required:
                self.fail(name, msg, location)
            return None
        if not _INT_RE.match(value) or not low <= int(value) <= high:
            self.fail(name, msg, location)
            return None
        return int(value)

    def subaccount_number(self, location: str = "query") -> int:
        n = self.int_in(
            "subaccountNumber",
            0,
            MAX_SUBACCOUNT_NUMBER,
            f"subaccountNumber must be a non-negative integer less than {MAX_SUBACCOUNT_NUMBER + 1}",
            required=True,
            location=location,
        )
        return n if n is not None else 0

    def parent_number(self, location: str = "query") -> int:
        n = self.int_in(
            "parentSubaccountNumber",
            0,
            MAX_PARENT_NUMBER,
            f"parentSubaccountNumber must be a non-negative integer less than {MAX_PARENT_NUMBER + 1}",
            required=True,
            location=location,
        )
        return n if n is not None else 0

    def limit(self) -> int:
        n = self.int_in(
            "limit",
            1,
            API_LIMIT,
            f"limit must be a positive integer that is not greater than max: {API_LIMIT}",
            required=False,
        )
        return API_LIMIT if n is None else n

    def page(self) -> int | None:
        return self.int_in("page", 1, 2**31, "page must be a non-negative integer", required=False)

    def height(self, name: str) -> int | None:
        return self.int_in(name, 0, 2**63, f"{name} must be a non-negative integer", required=False)

    def iso(self, name: str) -> dt.datetime | None:
        value = self.raw(name)
        if value is None:
            return None
        try:
            return fmt.from_iso(value)
        except ValueError:
            self.fail(name, f"{name} must be a valid ISO 8601 date")
            return None

    def boolean(self, name: str) -> bool | None:
        value = self.raw(name)
        if value is None:
            return None
        if value not in ("true", "false", "1", "0"):
            self.fail(name, f"{name} must be a boolean")
            return None
        return value in ("true", "1")

    def one_of(self, name: str, allowed: tuple[str, ...], msg: str, *, required: bool = False) -> str | None:
        value = self.raw(name)
        if value is None:
            if required:
                self.fail(name, msg)
            return None
        if value not in allowed:
            self.fail(name, msg)
            return None
        return value

    def array(self, name: str, allowed: tuple[str, ...]) -> list[str] | None:
        values = self.q.getall(name, [])
        if not values:
            return None
        items = [v.strip().upper() for raw in values for v in raw.split(",") if v.strip()]
        if any(v not in allowed for v in items):
            self.fail(name, f"{name} must be a subset of {','.join(allowed)}")
            return None
        return items

    def check(self) -> None:
        if self.errors:
            raise ValidationFailed(self.errors)


@dataclass(slots=True)
class RestFaults:
    """The next ``count`` REST requests under ``/v4`` answer ``status``."""

    status: int = 0
    count: int = 0

    def take(self) -> int | None:
        if self.count <= 0:
            return None
        self.count -= 1
        return self.status


class RestRateLimiter:
    """Fixed-window per-client limits, keyed like the real server but falling back to the peer IP."""

    def __init__(self, points: int, window: float) -> None:
        self.points = points
        self.window_ms = int(window * 1000)
        self._windows: dict[tuple[str, str], tuple[int, int]] = {}

    @staticmethod
    def client_key(request: web.Request) -> str:
        cf = request.headers.get("cf-connecting-ip")
        if cf:
            return cf
        fwd = request.headers.get("x-forwarded-for")
        if fwd:
            return fwd.split(",")[0].strip()
        return request.remote or "unknown"

    def hit(self, group: str, client: str) -> tuple[bool, int, int, int]:
        """Count one request: ``(allowed, limit, remaining, reset_epoch_ms)``."""
        # The real candles limiter allows ten times the default (1000 vs 100 per window).
        limit = self.points * 10 if group == "candles" else self.points
        now = int(time.time() * 1000)
        start, count = self._windows.get((group, client), (0, 0))
        if now - start >= self.window_ms:
            start, count = now, 0
            if len(self._windows) > 10000:
                self._windows = {k: v for k, v in self._windows.items() if now - v[0] < self.window_ms}
        count += 1
        self._windows[(group, client)] = (start, count)
        return count <= limit, limit, max(limit - count, 0), start + self.window_ms


def _group(path: str) -> str | None:
    if path.startswith("/v4/candles"):
        return "candles"
    if path.startswith("/v4/orders/") and not path.startswith("/v4/orders/parentSubaccountNumber"):
        return None  # /orders/{id} has no limiter
    for prefix, group in (
        ("/v4/orders", "orders"),
        ("/v4/fills", "fills"),
        ("/v4/sparklines", "sparklines"),
        ("/v4/historical-pnl", "pnl"),
        ("/v4/", "default"),
    ):
        if path.startswith(prefix):
            return group
    return None


def _error(msg: str, status: int) -> web.Response:
    return json_response({"errors": [{"msg": msg}]}, status, cache=None)


class RestApi:
    """Routes and middleware of the indexer REST server.

    Args:
        store: the indexer tables.
        rate_limit: ``(points, window_seconds)`` per client, or ``None`` for no limit.
    """

    def __init__(self, store: IndexerStore, rate_limit: tuple[int, float] | None) -> None:
        self.store = store
        self.faults = RestFaults()
        self.limiter = RestRateLimiter(*rate_limit) if rate_limit is not None else None

    # --- middleware ---------------------------------------------------------------------------

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        started = time.perf_counter()
        headers: dict[str, str] = {}
        routed = request.match_info.http_exception is None
        if routed and path == "/v4/ws":
            # The socket owns its upgraded connection: an HTTP error response written here would
            # land on the WebSocket stream as garbage frames. The hub handles its own failures.
            return await handler(request)
        if routed and path.startswith("/v4/"):
            forced = self.faults.take()
            if forced is not None:
                if forced == 429:
                    resp = _error("Too many requests", 429)
                    resp.headers["Retry-After"] = "10000"
                    return resp
                return _error("Internal Server Error", forced)
            group = _group(path)
            if self.limiter is not None and group is not None:
                ok, limit, remaining, reset = self.limiter.hit(group, self.limiter.client_key(request))
                headers = {
                    "RateLimit-Limit": str(limit),
                    "RateLimit-Remaining": str(remaining),
                    "RateLimit-Reset": str(reset),
                }
                if not ok:
                    resp = _error("Too many requests", 429)
                    resp.headers.update(headers)
                    resp.headers["Retry-After"] = str(max(reset - int(time.time() * 1000), 0))
                    return resp
        try:
            response = await handler(request)
        except ValidationFailed as exc:
            response = json_response({"errors": exc.errors}, 400, cache=None)
        except NotFound as exc:
            response = _error(str(exc), 404)
        except web.HTTPNotFound:
            response = json_response({"error": "Not Found", "errorCode": 404}, 404, cache=None)
        except web.HTTPMethodNotAllowed:
            response = json_response({"error": "Not Found", "errorCode": 404}, 404, cache=None)
        except web.HTTPException:
            raise
        except Exception:
            log.exception("indexer REST handler failed on %s", path)
            response = _error("Internal Server Error", 500)
        if not response.prepared:
            response.headers.update(headers)
            response.headers["X-Request-Id"] = str(uuid.uuid4())
            response.headers["X-Response-Time"] = f"{(time.perf_counter() - started) * 1000:.3f}ms"
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/health", self.health)
        r.add_get("/v4/time", self.time)
        r.add_get("/v4/height", self.height)
        r.add_get("/v4/perpetualMarkets", self.perpetual_markets)
        r.add_get("/v4/orderbooks/perpetualMarket/{ticker}", self.orderbook)
        r.add_get("/v4/trades/perpetualMarket/{ticker}", self.trades)
        r.add_get("/v4/candles/perpetualMarkets/{ticker}", self.candles)
        r.add_get("/v4/historicalFunding/{ticker}", self.historical_funding)
        r.add_get("/v4/sparklines", self.sparklines)
        r.add_get("/v4/addresses/{address}", self.address)
        r.add_get("/v4/addresses/{address}/subaccountNumber/{subaccountNumber}", self.subaccount)
        r.add_get("/v4/addresses/{address}/parentSubaccountNumber/{parentSubaccountNumber}", self.parent)
        r.add_get("/v4/perpetualPositions", self.positions)
        r.add_get("/v4/perpetualPositions/parentSubaccountNumber", self.positions_parent)
        r.add_get("/v4/assetPositions", self.asset_positions)
        r.add_get("/v4/assetPositions/parentSubaccountNumber", self.asset_positions_parent)
        r.add_get("/v4/orders", self.orders)
        r.add_get("/v4/orders/parentSubaccountNumber", self.orders_parent)
        r.add_get("/v4/orders/{orderId}", self.order)
        r.add_get("/v4/fills", self.fills)
        r.add_get("/v4/fills/parentSubaccountNumber", self.fills_parent)
        r.add_get("/v4/transfers", self.transfers)
        r.add_get("/v4/transfers/parentSubaccountNumber", self.transfers_parent)
        r.add_get("/v4/historical-pnl", self.historical_pnl)
        r.add_get("/v4/historical-pnl/parentSubaccountNumber", self.historical_pnl_parent)
        r.add_get("/v4/screen", self.screen)
        r.add_get("/v4/compliance/screen/{address}", self.compliance)

    # --- helpers ------------------------------------------------------------------------------

    def _market(self, q: _Query, name: str = "ticker", location: str = "params") -> ev.MarketInfo | None:
        ticker = q.raw(name, location)
        return self.store.by_ticker.get(ticker) if ticker is not None else None

    def _not_found_market(self, ticker: str) -> NotFound:
        return NotFound(f"{ticker} not found in markets of type PERPETUAL")

    @staticmethod
    def _paged(key: str, rows: list[Json], page: int | None, limit: int) -> Json:
        if page is None:
            return {key: rows[:limit]}
        offset = (page - 1) * limit
        return {
            key: rows[offset : offset + limit],
            "pageSize": limit,
            "totalResults": len(rows),
            "offset": offset,
        }

    def _refs(self, address: str, number: int | None, parent: int | None) -> list[ev.SubaccountRef]:
        if number is not None:
            return [ev.SubaccountRef(address, number)]
        assert parent is not None
        return [s.ref for s in self.store.children(address, parent)]

    # --- market data --------------------------------------------------------------------------

    async def health(self, request: web.Request) -> web.Response:
        return json_response({"ok": True}, cache=None)

    async def time(self, request: web.Request) -> web.Response:
        now = dt.datetime.now(dt.UTC)
        epoch_ms = int(now.timestamp() * 1000)
        # JS numbers: epoch seconds with millisecond decimals.
        return json_response({"iso": fmt.iso(now), "epoch": epoch_ms / 1000}, cache=CACHE_NONE)

    async def height(self, request: web.Request) -> web.Response:
        if self.store.time is None:
            raise NotFound("No blocks found")
        return json_response({"height": str(self.store.height), "time": fmt.iso(self.store.time)})

    async def perpetual_markets(self, request: web.Request) -> web.Response:
        q = _Query(request)
        limit = q.limit()
        ticker = q.raw("ticker")
        market = q.raw("market")
        if ticker is not None and market is not None:
            return json_response(
                {"errors": [{"msg": "Only one of ticker or market may be provided"}]}, 400, None
            )
        wanted = ticker if ticker is not None else market
        name = "ticker" if ticker is not None else "market"
        if wanted is not None and wanted not in self.store.by_ticker:
            q.fail(name, f"{name} must be a valid ticker")
        q.check()
        body = self.store.render_markets([wanted] if wanted is not None else None)
        body["markets"] = dict(list(body["markets"].items())[:limit])
        return json_response(body)

    async def orderbook(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        market = self.store.by_ticker.get(ticker)
        if market is None:
            raise self._not_found_market(ticker)
        bids, asks = self.store.book_levels(market.clob_pair_id)
        return json_response(
            {
                "bids": [{"price": fmt.dec(p), "size": fmt.dec(s)} for p, s in bids],
                "asks": [{"price": fmt.dec(p), "size": fmt.dec(s)} for p, s in asks],
            }
        )

    def trades_body(
        self,
        market: ev.MarketInfo,
        limit: int = API_LIMIT,
        page: int | None = None,
        before_height: int | None = None,
        before: dt.datetime | None = None,
    ) -> Json:
        table = self.store.trades.get(market.clob_pair_id, ())
        if page is None and before_height is None and before is None:
            # Rows are appended in chain order, so newest first is a reverse walk of `limit` rows.
            newest = [self.store.render_trade(t) for t in itertools.islice(reversed(table), limit)]
            return {"trades": newest}
        rows: list[TradeRow] = [
            t
            for t in table
            if (before_height is None or t.height <= before_height) and (before is None or t.time <= before)
        ]
        if page is None:
            rows.sort(key=lambda t: (t.height, t.seq), reverse=True)
        else:
            rows.sort(key=lambda t: (t.id, -t.seq))
        return self._paged("trades", [self.store.render_trade(t) for t in rows], page, limit)

    async def trades(self, request: web.Request) -> web.Response:
        q = _Query(request)
        limit, page = q.limit(), q.page()
        cbh, cb = q.height("createdBeforeOrAtHeight"), q.iso("createdBeforeOrAt")
        q.check()
        ticker = request.match_info["ticker"]
        market = self.store.by_ticker.get(ticker)
        if market is None:
            raise self._not_found_market(ticker)
        return json_response(self.trades_body(market, limit, page, cbh, cb))

    def candles_body(
        self,
        market: ev.MarketInfo,
        resolution: str,
        limit: int = API_LIMIT,
        start: dt.datetime | None = None,
        end: dt.datetime | None = None,
    ) -> Json:
        series = self.store.candles.get((market.clob_pair_id, resolution), {})
        out: list[Json] = []
        for candle in reversed(series.values()):
            if (start is not None and candle.started_at < start) or (
                end is not None and candle.started_at >= end
            ):
                continue
            out.append(self.store.render_candle(candle))
            if len(out) >= limit:
                break
        return {"candles": out}

    async def candles(self, request: web.Request) -> web.Response:
        q = _Query(request)
        res_msg = f"resolution must be a valid Candle Resolution, one of {','.join(fmt.RESOLUTIONS)}"
        resolution = q.one_of("resolution", tuple(fmt.RESOLUTIONS), res_msg, required=True)
        limit = q.limit()
        start, end = q.iso("fromISO"), q.iso("toISO")
        ticker = request.match_info["ticker"]
        market = self.store.by_ticker.get(ticker)
        if market is None:
            q.fail("ticker", "ticker must be a valid ticker", "params")
        q.check()
        assert market is not None
        assert resolution is not None
        return json_response(self.candles_body(market, resolution, limit, start, end))

    async def historical_funding(self, request: web.Request) -> web.Response:
        q = _Query(request)
        limit = q.limit()
        before_h = q.height("effectiveBeforeOrAtHeight")
        before = q.iso("effectiveBeforeOrAt")
        ticker = request.match_info["ticker"]
        market = self.store.by_ticker.get(ticker)
        if market is None:
            q.fail("ticker", "ticker must be a valid ticker", "params")
        q.check()
        assert market is not None
        rows = [
            {
                "ticker": market.ticker,
                "rate": fmt.dec(f.rate),
                "price": fmt.dec(f.price),
                "effectiveAtHeight": str(f.height),
                "effectiveAt": fmt.iso(f.time),
            }
            for f in reversed(self.store.funding.get(market.clob_pair_id, []))
            if (before_h is None or f.height <= before_h) and (before is None or f.time <= before)
        ]
        return json_response({"historicalFunding": rows[:limit]}, cache=CACHE_LONG)

    async def sparklines(self, request: web.Request) -> web.Response:
        q = _Query(request)
        period = q.one_of(
            "timePeriod",
            ("ONE_DAY", "SEVEN_DAYS"),
            "timePeriod must be one of ONE_DAY,SEVEN_DAYS",
            required=True,
        )
        q.check()
        resolution, span = (
            ("1HOUR", dt.timedelta(days=1)) if period == "ONE_DAY" else ("4HOURS", dt.timedelta(days=7))
        )
        now = self.store.time or dt.datetime.now(dt.UTC)
        body: Json = {}
        for m in sorted(self.store.markets.values(), key=lambda m: m.perpetual_id):
            series = self.store.candles.get((m.clob_pair_id, resolution), {})
            body[m.ticker] = [
                fmt.dec(c.close) for c in reversed(series.values()) if c.started_at >= now - span
            ]
        return json_response(body, cache=CACHE_LONG)

    # --- accounts -----------------------------------------------------------------------------

    def _sub_or_404(self, address: str, number: int) -> Any:
        sub = self.store.subaccounts.get(ev.SubaccountRef(address, number))
        if sub is None:
            raise NotFound(f"No subaccount found with address {address} and subaccountNumber {number}")
        return sub

    async def address(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address = q.address(location="params")
        q.check()
        subs = self.store.by_address.get(address)
        if not subs:
            raise NotFound(f"No subaccounts found for address {address}")
        return json_response(
            {
                "subaccounts": [self.store.render_subaccount(s) for _, s in sorted(subs.items())],
                "totalTradingRewards": "0",
            }
        )

    async def subaccount(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address = q.address(location="params")
        number = q.subaccount_number(location="params")
        q.check()
        return json_response({"subaccount": self.store.render_subaccount(self._sub_or_404(address, number))})

    def parent_body(self, address: str, parent: int) -> Json | None:
        children = self.store.children(address, parent)
        if not children:
            return None
        return {
            "address": address,
            "parentSubaccountNumber": parent,
            "equity": fmt.dec(sum((self.store.equity(c) for c in children), Decimal(0))),
            "freeCollateral": fmt.dec(sum((self.store.free_collateral(c) for c in children), Decimal(0))),
            "childSubaccounts": [self.store.render_subaccount(c) for c in children],
        }

    async def parent(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address = q.address(location="params")
        parent = q.parent_number(location="params")
        q.check()
        body = self.parent_body(address, parent)
        if body is None:
            raise NotFound(f"No subaccount found with address {address} and parentSubaccountNumber {parent}")
        return json_response({"subaccount": body})

    def _positions(self, request: web.Request, parent: bool) -> web.Response:
        q = _Query(request)
        address = q.address()
        number = None if parent else q.subaccount_number()
        parent_n = q.parent_number() if parent else None
        statuses = q.array("status", ("OPEN", "CLOSED", "LIQUIDATED"))
        limit = q.limit()
        cbh, cb = q.height("createdBeforeOrAtHeight"), q.iso("createdBeforeOrAt")
        q.check()
        rows: list[tuple[int, int, Json]] = []
        for ref in self._refs(address, number, parent_n):
            sub = self.store.subaccounts.get(ref)
            if sub is None:
                continue
            for pos in [*sub.positions.values(), *sub.closed]:
                status = "CLOSED" if pos.closed_height is not None else "OPEN"
                if statuses is not None and status not in statuses:
                    continue
                if (cbh is not None and pos.created_height > cbh) or (
                    cb is not None and pos.created_time > cb
                ):
                    continue
                rows.append((pos.created_height, len(rows), self.store.render_position(ref, pos)))
        rows.sort(key=lambda r: (r[0], r[1]), reverse=True)
        return json_response({"positions": [r[2] for r in rows[:limit]]})

    async def positions(self, request: web.Request) -> web.Response:
        return self._positions(request, parent=False)

    async def positions_parent(self, request: web.Request) -> web.Response:
        return self._positions(request, parent=True)

    async def asset_positions(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address, number = q.address(), q.subaccount_number()
        q.check()
        sub = self._sub_or_404(address, number)
        return json_response({"positions": list(self.store.render_asset_positions(sub).values())})

    async def asset_positions_parent(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address, parent = q.address(), q.parent_number()
        q.check()
        out: list[Json] = []
        for sub in self.store.children(address, parent):
            out.extend(self.store.render_asset_positions(sub).values())
        return json_response({"positions": out})

    # --- orders -------------------------------------------------------------------------------

    def _orders(self, request: web.Request, parent: bool) -> web.Response:
        q = _Query(request)
        address = q.address()
        number = None if parent else q.subaccount_number()
        parent_n = q.parent_number() if parent else None
        limit = q.limit()
        ticker = q.raw("ticker")
        side = q.one_of("side", ("BUY", "SELL"), "side must be one of BUY,SELL")
        otype = q.one_of("type", ORDER_TYPES, f"type must be one of {','.join(ORDER_TYPES)}")
        include = q.array("includeTypes", ORDER_TYPES)
        exclude = q.array("excludeTypes", ORDER_TYPES)
        statuses = q.array("status", ORDER_STATUSES)
        gtb_before = q.height("goodTilBlockBeforeOrAt")
        gtb_after = q.height("goodTilBlockAfter")
        gtbt_before = q.iso("goodTilBlockTimeBeforeOrAt")
        gtbt_after = q.iso("goodTilBlockTimeAfter")
        if ticker is not None and ticker not in self.store.by_ticker:
            q.fail("ticker", "ticker must be a valid ticker")
        if (gtb_before is not None or gtb_after is not None) and (
            gtbt_before is not None or gtbt_after is not None
        ):
            q.fail(
                "goodTilBlockBeforeOrAt",
                "Cannot filter by good til block and good til block time at the same time",
            )
        q.check()
        latest = "returnLatestOrders" in request.query
        rows: list[OrderRow] = []
        for ref in self._refs(address, number, parent_n):
            for row in self.store.orders_by_sub.get(ref, {}).values():
                if not row.in_db and otype is not None and otype != "LIMIT":
                    continue
                rendered_type = {"STOP_LOSS": "STOP_LIMIT", "TAKE_PROFIT": "TAKE_PROFIT"}.get(
                    row.condition_type, "LIMIT"
                )
                if ticker is not None and row.market.ticker != ticker:
                    continue
                if side is not None and row.side != side:
                    continue
                if otype is not None and rendered_type != otype:
                    continue
                if include is not None and rendered_type not in include:
                    continue
                if exclude is not None and rendered_type in exclude:
                    continue
                if statuses is not None and row.status not in statuses:
                    continue
                if gtb_before is not None or gtb_after is not None:
                    if row.good_til_block is None:
                        continue
                    if gtb_before is not None and row.good_til_block > gtb_before:
                        continue
                    if gtb_after is not None and row.good_til_block <= gtb_after:
                        continue
                if gtbt_before is not None or gtbt_after is not None:
                    if row.good_til_block_time is None:
                        continue
                    if gtbt_before is not None and row.good_til_block_time > gtbt_before.timestamp():
                        continue
                    if gtbt_after is not None and row.good_til_block_time <= gtbt_after.timestamp():
                        continue
                rows.append(row)

        # Ascending: GTB orders by GTB, then GTBT orders by GTBT; absent flag -> the reverse (QUIRK:
        # any value of returnLatestOrders, even "true", yields ascending).
        def sort_key(r: OrderRow) -> tuple[int, int, int]:
            if r.good_til_block is not None:
                return (0, r.good_til_block, r.seq)
            return (1, r.good_til_block_time or 0, r.seq)

        rows.sort(key=sort_key, reverse=not latest)
        return json_response([self.store.render_order(r) for r in rows[:limit]])

    async def orders(self, request: web.Request) -> web.Response:
        return self._orders(request, parent=False)

    async def orders_parent(self, request: web.Request) -> web.Response:
        return self._orders(request, parent=True)

    async def order(self, request: web.Request) -> web.Response:
        order_id = request.match_info["orderId"]
        if not _UUID_RE.match(order_id):
            q = _Query(request)
            q.fail("orderId", "orderId must be a valid uuid", "params")
            q.check()
        row = self.store.orders.get(order_id.lower())
        if row is None:
            raise NotFound(f"Unable to find order id {order_id}")
        return json_response(self.store.render_order(row))

    # --- fills, transfers, pnl ----------------------------------------------------------------

    def _fills(self, request: web.Request, parent: bool) -> web.Response:
        q = _Query(request)
        address = q.address()
        number = None if parent else q.subaccount_number()
        parent_n = q.parent_number() if parent else None
        limit, page = q.limit(), q.page()
        include = q.array("includeTypes", FILL_TYPES)
        exclude = q.array("excludeTypes", FILL_TYPES)
        cbh, cb = q.height("createdBeforeOrAtHeight"), q.iso("createdBeforeOrAt")
        market_name = None if parent else q.raw("market")
        market_type = None if parent else q.raw("marketType")
        if (market_name is None) != (market_type is None):
            q.fail(
                "marketType" if market_type is None else "market",
                "market and marketType must be provided together",
            )
        elif market_type is not None and market_type not in ("PERPETUAL", "SPOT"):
            q.fail("marketType", "marketType must be one of PERPETUAL,SPOT")
        q.check()
        if market_name is not None and market_name not in self.store.by_ticker:
            raise NotFound(f"{market_name} not found in markets of type {market_type}")
        rows: list[FillRow] = []
        for ref in self._refs(address, number, parent_n):
            for f in self.store.fills.get(ref, ()):
                if market_name is not None and f.market.ticker != market_name:
                    continue
                if include is not None and f.type not in include:
                    continue
                if exclude is not None and f.type in exclude:
                    continue
                if (cbh is not None and f.height > cbh) or (cb is not None and f.time > cb):
                    continue
                rows.append(f)
        if page is None:
            rows.sort(key=lambda f: (f.height, f.seq), reverse=True)
        else:
            rows.sort(key=lambda f: (f.event_id, f.seq))
        return json_response(self._paged("fills", [self.store.render_fill(f) for f in rows], page, limit))

    async def fills(self, request: web.Request) -> web.Response:
        return self._fills(request, parent=False)

    async def fills_parent(self, request: web.Request) -> web.Response:
        return self._fills(request, parent=True)

    def _transfers(self, request: web.Request, parent: bool) -> web.Response:
        q = _Query(request)
        address = q.address()
        number = None if parent else q.subaccount_number()
        parent_n = q.parent_number() if parent else None
        limit, page = q.limit(), q.page()
        cbh, cb = q.height("createdBeforeOrAtHeight"), q.iso("createdBeforeOrAt")
        q.check()
        if number is not None:
            self._sub_or_404(address, number)
        seen: set[str] = set()
        rows: list[tuple[Any, Json]] = []
        for ref in self._refs(address, number, parent_n):
            for t in self.store.transfers.get(ref, ()):
                e = t.event
                if parent_n is not None:
                    both = (e.sender, e.recipient)
                    if all(
                        r is not None and r.address == address and r.number % 128 == parent_n for r in both
                    ):
                        continue
                if t.id in seen:
                    continue
                if (cbh is not None and e.height > cbh) or (cb is not None and e.time > cb):
                    continue
                seen.add(t.id)
                body = self.store.render_transfer(t, ref)
                if parent_n is not None:
                    for side in ("sender", "recipient"):
                        party = body[side]
                        if "subaccountNumber" in party:
                            party["parentSubaccountNumber"] = party.pop("subaccountNumber") % 128
                rows.append(((e.event_id, e.height, t.seq), body))
        if page is None:
            rows.sort(key=lambda r: (r[0][1], r[0][2]), reverse=True)
        else:
            rows.sort(key=lambda r: (r[0][0], r[0][2]), reverse=True)
        return json_response(self._paged("transfers", [r[1] for r in rows], page, limit))

    async def transfers(self, request: web.Request) -> web.Response:
        return self._transfers(request, parent=False)

    async def transfers_parent(self, request: web.Request) -> web.Response:
        return self._transfers(request, parent=True)

    @staticmethod
    def _render_tick(t: PnlTick) -> Json:
        return {
            "equity": fmt.dec(t.equity),
            "totalPnl": fmt.dec(t.total_pnl),
            "netTransfers": fmt.dec(t.net_transfers),
            "createdAt": fmt.iso(t.time),
            "blockHeight": str(t.height),
            "blockTime": fmt.iso(t.time),
        }

    def _pnl_filters(
        self, q: _Query
    ) -> tuple[int, int | None, dt.datetime | None, int | None, dt.datetime | None]:
        limit = q.limit()
        return (
            limit,
            q.height("createdBeforeOrAtHeight"),
            q.iso("createdBeforeOrAt"),
            q.height("createdOnOrAfterHeight"),
            q.iso("createdOnOrAfter"),
        )

    @staticmethod
    def _tick_ok(
        t: PnlTick, cbh: int | None, cb: dt.datetime | None, coh: int | None, co: dt.datetime | None
    ) -> bool:
        return not (
            (cbh is not None and t.height > cbh)
            or (cb is not None and t.time > cb)
            or (coh is not None and t.height < coh)
            or (co is not None and t.time < co)
        )

    async def historical_pnl(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address, number = q.address(), q.subaccount_number()
        limit, cbh, cb, coh, co = self._pnl_filters(q)
        page = q.page()
        q.check()
        sub = self._sub_or_404(address, number)
        ticks = [self._render_tick(t) for t in reversed(sub.pnl) if self._tick_ok(t, cbh, cb, coh, co)]
        return json_response(self._paged("historicalPnl", ticks, page, limit), cache=CACHE_LONG)

    async def historical_pnl_parent(self, request: web.Request) -> web.Response:
        q = _Query(request)
        address, parent = q.address(), q.parent_number()
        limit, cbh, cb, coh, co = self._pnl_filters(q)
        q.check()
        hours: dict[int, PnlTick] = {}
        for sub in self.store.children(address, parent):
            for t in sub.pnl:
                if not self._tick_ok(t, cbh, cb, coh, co):
                    continue
                hour = int(t.time.timestamp()) // 3600
                acc = hours.get(hour)
                if acc is None:
                    hours[hour] = PnlTick(t.equity, t.total_pnl, t.net_transfers, t.height, t.time)
                else:
                    acc.equity += t.equity
                    acc.total_pnl += t.total_pnl
                    acc.net_transfers += t.net_transfers
                    acc.height = max(acc.height, t.height)
        ticks = [self._render_tick(hours[h]) for h in sorted(hours, reverse=True)]
        return json_response({"historicalPnl": ticks[:limit]}, cache=CACHE_LONG)

    async def screen(self, request: web.Request) -> web.Response:
        q = _Query(request)
        q.address()
        q.check()
        return json_response({"restricted": False, "reason": ""})

    async def compliance(self, request: web.Request) -> web.Response:
        q = _Query(request)
        q.address(location="params")
        q.check()
        return json_response({"status": "COMPLIANT"})
