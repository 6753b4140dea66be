"""The emulator's control API (``/emulator/...``) and the testnet-style faucet (``/faucet/...``).

Not part of dYdX: these routes let tests read the true state, inject faults and drive the chain.
Every route is documented in ``docs/emulator.md``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web

from nautilus_dydx.emulator.indexer import fmt
from nautilus_dydx.emulator.indexer.rest import json_response
from nautilus_dydx.emulator.indexer.store import IndexerStore
from nautilus_dydx.emulator.indexer.ws import book_checksum

if TYPE_CHECKING:
    from nautilus_dydx.emulator.indexer.rest import RestApi
    from nautilus_dydx.emulator.indexer.ws import WsHub
    from nautilus_dydx.emulator.validator.server import ValidatorServer

__all__ = ["ControlApi", "ControlHost"]

log = logging.getLogger(__name__)

Json = dict[str, Any]
MAX_FAUCET_USDC = Decimal(10_000_000)


class ControlHost(Protocol):
    """What the control API needs from the running emulator."""

    @property
    def engine(self) -> Any: ...

    paused: bool
    blocks_paused: bool

    @property
    def validator(self) -> ValidatorServer: ...

    def produce_block(self) -> int: ...


def _bad(msg: str, status: int = 400) -> web.Response:
    return json_response({"error": msg}, status, cache=None)


async def _body(request: web.Request) -> Json:
    if not request.can_read_body:
        return {}
    try:
        data = json.loads(await request.read() or b"{}")
    except ValueError as exc:
        raise web.HTTPBadRequest(
            text='{"error":"body must be JSON"}', content_type="application/json"
        ) from exc
    if not isinstance(data, dict):
        raise web.HTTPBadRequest(
            text='{"error":"body must be a JSON object"}', content_type="application/json"
        )
    return data


def _engine_error(exc: Exception) -> web.Response | None:
    if type(exc).__name__ != "EngineError":
        return None
    return json_response(
        {
            "error": getattr(exc, "raw_log", str(exc)),
            "codespace": getattr(exc, "codespace", ""),
            "code": getattr(exc, "code", 0),
        },
        400,
        cache=None,
    )


class ControlApi:
    """Routes under ``/emulator`` and ``/faucet``."""

    def __init__(self, host: ControlHost, store: IndexerStore, rest: RestApi, hub: WsHub) -> None:
        self.host = host
        self.store = store
        self.rest = rest
        self.hub = hub

    def add_routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/emulator/state", self.state)
        r.add_get("/emulator/book/{ticker}", self.book)
        r.add_get("/emulator/ws/connections", self.connections)
        r.add_get("/emulator/ws/{connection_id}/checksums", self.checksums)
        r.add_post("/emulator/faults/ws/drop", self.fault_drop)
        r.add_post("/emulator/faults/ws/stall", self.fault_stall)
        r.add_post("/emulator/faults/ws/internal-error", self.fault_internal_error)
        r.add_post("/emulator/faults/ws/crossed-level", self.fault_crossed)
        r.add_post("/emulator/faults/ws/lose", self.fault_lose)
        r.add_post("/emulator/faults/rest", self.fault_rest)
        r.add_post("/emulator/faults/grpc", self.fault_grpc)
        r.add_post("/emulator/faults/broadcast-delay", self.fault_broadcast_delay)
        r.add_post("/emulator/faults/sequence-mismatch", self.fault_sequence_mismatch)
        r.add_get("/emulator/grpc/certificate", self.grpc_certificate)
        r.add_post("/emulator/blocks/pause", self.blocks_pause)
        r.add_post("/emulator/blocks/resume", self.blocks_resume)
        r.add_post("/emulator/market/pause", self.pause)
        r.add_post("/emulator/market/resume", self.resume)
        r.add_post("/emulator/oracle", self.oracle)
        r.add_post("/emulator/block", self.block)
        r.add_post("/faucet/tokens", self.faucet_tokens)
        r.add_post("/faucet/native-token", self.faucet_native)

    # --- reads --------------------------------------------------------------------------------

    async def state(self, request: web.Request) -> web.Response:
        engine = self.host.engine
        return json_response(
            {
                "height": engine.height,
                "indexerHeight": self.store.height,
                "markets": sorted(m.ticker for m in self.store.markets.values()),
                "connections": len(self.hub.connections),
                "paused": self.host.paused,
                "blocksPaused": self.host.blocks_paused,
                "grpcTarget": self.host.validator.target if self.host.validator.port is not None else None,
            },
            cache=None,
        )

    async def book(self, request: web.Request) -> web.Response:
        ticker = request.match_info["ticker"]
        market = self.store.by_ticker.get(ticker)
        if market is None:
            return _bad(f"unknown ticker {ticker}", 404)
        try:
            depth = int(request.query.get("depth", "25"))
        except ValueError:
            return _bad("depth must be an integer")
        if depth < 1:
            return _bad("depth must be positive")
        engine = self.host.engine
        true_bids, true_asks = engine.book(market.clob_pair_id)
        bids = [(self.store.price(market, p), self.store.size(market, q)) for p, q in true_bids[:depth]]
        asks = [(self.store.price(market, p), self.store.size(market, q)) for p, q in true_asks[:depth]]
        return json_response(
            {
                "bids": [[fmt.dec(p), fmt.dec(s)] for p, s in bids],
                "asks": [[fmt.dec(p), fmt.dec(s)] for p, s in asks],
                "checksum": book_checksum(bids, asks, depth),
                "height": engine.height,
            },
            cache=None,
        )

    async def connections(self, request: web.Request) -> web.Response:
        return json_response(
            [
                {
                    "connection_id": c.id,
                    "subscriptions": [[s.channel, s.id] for s in c.subs.values()],
                }
                for c in self.hub.connections.values()
            ],
            cache=None,
        )

    async def checksums(self, request: web.Request) -> web.Response:
        q = request.query
        ticker = q.get("ticker")
        if not ticker:
            return _bad("ticker is required")
        try:
            depth = int(q.get("depth", "25"))
            after = int(q.get("after", "-1"))
        except ValueError:
            return _bad("depth and after must be integers")
        try:
            records = self.hub.checksums(request.match_info["connection_id"], ticker, depth, after)
        except ValueError as exc:  # a depth other than the one the records were taken at
            return _bad(str(exc))
        if records is None:
            return _bad("unknown connection", 404)
        return json_response(records, cache=None)

    # --- faults -------------------------------------------------------------------------------

    async def fault_drop(self, request: web.Request) -> web.Response:
        body = await _body(request)
        targets = self.hub.targets(body.get("connection_id"))
        for conn in targets:
            self.hub.drop(conn)
        return json_response({"dropped": [c.id for c in targets]}, cache=None)

    async def fault_stall(self, request: web.Request) -> web.Response:
        body = await _body(request)
        try:
            seconds = float(body["seconds"])
        except (KeyError, TypeError, ValueError):
            return _bad("seconds is required")
        targets = self.hub.targets(body.get("connection_id"))
        now = asyncio.get_running_loop().time()
        for conn in targets:
            conn.stalled_until = now + seconds
        return json_response({"stalled": [c.id for c in targets]}, cache=None)

    async def fault_lose(self, request: web.Request) -> web.Response:
        body = await _body(request)
        count = body.get("count", 1)
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return _bad("count must be an integer >= 1")
        targets = self.hub.targets(body.get("connection_id"))
        for conn in targets:
            conn.lose += count
        return json_response({"affected": [c.id for c in targets]}, cache=None)

    async def fault_internal_error(self, request: web.Request) -> web.Response:
        body = await _body(request)
        channel = body.get("channel")
        if not isinstance(channel, str):
            return _bad("channel is required")
        sub_id = body.get("id")
        if channel == "v4_block_height":
            sub_id = "v4_block_height"
        targets = [c for c in self.hub.targets(body.get("connection_id")) if (channel, sub_id) in c.subs]
        for conn in targets:
            self.hub.internal_error(conn, channel, sub_id)
        return json_response({"affected": [c.id for c in targets]}, cache=None)

    async def fault_crossed(self, request: web.Request) -> web.Response:
        body = await _body(request)
        ticker = body.get("ticker")
        if not isinstance(ticker, str) or ticker not in self.store.by_ticker:
            return _bad("a known ticker is required")
        affected = [
            c.id for c in self.hub.targets(body.get("connection_id")) if self.hub.inject_crossed(c, ticker)
        ]
        if not affected:
            return _bad("no subscribed connection or no ask level to cross", 409)
        return json_response({"affected": affected}, cache=None)

    async def fault_rest(self, request: web.Request) -> web.Response:
        body = await _body(request)
        status, count = body.get("status"), body.get("count", 1)
        if status not in (429, 500, 502, 503) or not isinstance(count, int) or count < 0:
            return _bad("status must be 429 or 5xx and count a non-negative integer")
        self.rest.faults.status = status
        self.rest.faults.count = count
        return json_response({"status": status, "count": count}, cache=None)

    async def fault_grpc(self, request: web.Request) -> web.Response:
        body = await _body(request)
        status, count = body.get("status"), body.get("count", 1)
        if status not in ("UNAVAILABLE", "RESOURCE_EXHAUSTED"):
            return _bad("status must be UNAVAILABLE or RESOURCE_EXHAUSTED")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return _bad("count must be a non-negative integer")
        faults = self.host.validator.faults
        faults.status = status
        faults.count = count
        return json_response({"status": status, "count": count}, cache=None)

    async def fault_broadcast_delay(self, request: web.Request) -> web.Response:
        body = await _body(request)
        seconds = body.get("seconds")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not 0 <= seconds <= 600:
            return _bad("seconds must be a number in [0, 600]")
        self.host.validator.tx_faults.broadcast_delay = float(seconds)
        return json_response({"seconds": float(seconds)}, cache=None)

    async def fault_sequence_mismatch(self, request: web.Request) -> web.Response:
        body = await _body(request)
        count = body.get("count", 1)
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            return _bad("count must be a non-negative integer")
        self.host.validator.tx_faults.force_sequence_mismatch = count
        return json_response({"count": count}, cache=None)

    async def grpc_certificate(self, request: web.Request) -> web.Response:
        pem = self.host.validator.certificate_pem
        if pem is None:
            return _bad("the gRPC server is not serving TLS", 404)
        return web.Response(body=pem, content_type="application/x-pem-file")

    # --- driving ------------------------------------------------------------------------------

    async def blocks_pause(self, request: web.Request) -> web.Response:
        self.host.blocks_paused = True
        return json_response({"blocksPaused": True, "height": self.host.engine.height}, cache=None)

    async def blocks_resume(self, request: web.Request) -> web.Response:
        self.host.blocks_paused = False
        return json_response({"blocksPaused": False, "height": self.host.engine.height}, cache=None)

    async def pause(self, request: web.Request) -> web.Response:
        self.host.paused = True
        return json_response({"paused": True}, cache=None)

    async def resume(self, request: web.Request) -> web.Response:
        self.host.paused = False
        return json_response({"paused": False}, cache=None)

    async def oracle(self, request: web.Request) -> web.Response:
        body = await _body(request)
        market = self.store.by_ticker.get(str(body.get("ticker")))
        if market is None:
            return _bad("a known ticker is required")
        try:
            human = Decimal(str(body["price"]))
        except (KeyError, InvalidOperation):
            return _bad("price must be a decimal string")
        units = human.scaleb(-market.price_exponent)
        if units <= 0 or units != units.to_integral_value():
            return _bad(f"price must be a positive multiple of 1e{market.price_exponent}")
        try:
            self.host.engine.set_oracle_price(market.clob_pair_id, int(units))
        except Exception as exc:
            mapped = _engine_error(exc)
            if mapped is None:
                raise
            return mapped
        return json_response({"ticker": market.ticker, "price": fmt.dec(human)}, cache=None)

    async def block(self, request: web.Request) -> web.Response:
        return json_response({"height": self.host.produce_block()}, cache=None)

    async def faucet_tokens(self, request: web.Request) -> web.Response:
        body = await _body(request)
        address = body.get("address")
        number = body.get("subaccountNumber", 0)
        if not isinstance(address, str) or not address:
            return _bad("address is required")
        if not isinstance(number, int) or not 0 <= number <= 128000:
            return _bad("subaccountNumber must be an integer in [0, 128000]")
        try:
            amount = Decimal(str(body.get("amount")))
        except InvalidOperation:
            return _bad("amount must be a number of USDC")
        if not amount.is_finite() or amount <= 0 or amount > MAX_FAUCET_USDC:
            return _bad(f"amount must be in (0, {MAX_FAUCET_USDC}] USDC")
        quantums = amount.scaleb(6)
        if quantums != quantums.to_integral_value():
            return _bad("amount has more than 6 decimals")
        try:
            self.host.engine.ensure_account(address)
            self.host.engine.deposit(address, number, int(quantums))
        except Exception as exc:
            mapped = _engine_error(exc)
            if mapped is None:
                raise
            return mapped
        log.info("faucet: %s/%d +%s USDC", address, number, amount)
        return json_response(
            {"address": address, "subaccountNumber": number, "amount": fmt.dec(amount)}, 202, cache=None
        )

    async def faucet_native(self, request: web.Request) -> web.Response:
        body = await _body(request)
        address = body.get("address")
        if not isinstance(address, str) or not address:
            return _bad("address is required")
        try:
            self.host.engine.ensure_account(address)
        except Exception as exc:
            mapped = _engine_error(exc)
            if mapped is None:
                raise
            return mapped
        return json_response({"address": address}, 202, cache=None)
