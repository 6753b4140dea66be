"""The running emulator: chain engine, indexer (REST and WebSocket on one port), control API and the
validator gRPC server (on its own port).

Example:
    >>> async with Emulator(block_time=0.05) as emu:   # doctest: +SKIP
    ...     print(emu.indexer_url, emu.ws_url, emu.grpc_target)
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from aiohttp import web

from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.indexer.control import ControlApi
from nautilus_dydx.emulator.indexer.rest import RestApi
from nautilus_dydx.emulator.indexer.store import IndexerStore
from nautilus_dydx.emulator.indexer.ws import CHECKSUM_HISTORY, WsHub
from nautilus_dydx.emulator.params import CHAIN_ID
from nautilus_dydx.emulator.validator.server import ValidatorServer
from nautilus_dydx.emulator.validator.tx import DEFAULT_MIN_GAS_PRICES, parse_min_gas_prices

__all__ = ["Emulator", "EmulatorConfig"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class EmulatorConfig:
    """Settings of one emulator instance (see :class:`Emulator` for their meaning)."""

    host: str = "127.0.0.1"
    port: int = 0
    grpc_port: int = 0
    grpc_tls: bool = False
    chain_id: str = CHAIN_ID
    block_time: float = 0.5
    seed: int = 0
    markets: tuple[str, ...] | None = None
    synthetic: bool = True
    rate_limit: tuple[int, float] | None = (100, 10.0)
    ws_ping_interval: float = 30.0
    ws_pong_timeout: float = 10.0
    batch_interval: float = 0.25
    short_block_window: int = 40
    checksum_history: int = CHECKSUM_HISTORY
    flow_interval: float = 0.1
    min_gas_prices: str = DEFAULT_MIN_GAS_PRICES


class Emulator:
    """A local dYdX v4 venue: chain engine, indexer REST + WebSocket, validator gRPC, control API, faucet.

    Args:
        host: interface to bind.
        port: port of the indexer (REST and WS on one server); 0 picks a free one.
        grpc_port: port of the validator gRPC server; 0 picks a free one (see ``grpc_target``).
        grpc_tls: serve gRPC over TLS with a self-signed certificate made at start
            (``grpc_certificate_pem`` is what clients must trust).
        chain_id: chain id of the emulated network (what signatures must commit to).
        block_time: seconds between blocks.
        seed: seeds the engine's oracle walk and the synthetic traders.
        markets: tickers to list (engine default when None).
        synthetic: run the synthetic market makers/takers once per block.
        rate_limit: REST limit ``(points, window seconds)`` per client, or None to disable.
        ws_ping_interval: seconds between protocol pings on each socket (0 disables).
        ws_pong_timeout: seconds without a pong before closing 1011 "Heartbeat timeout".
        batch_interval: flush period of ``batched`` subscriptions.
        short_block_window: ShortBlockWindow of the engine.
        checksum_history: book messages per (connection, ticker) whose checksum the control API
            keeps for verification (16 bytes each; the oldest are forgotten).
        flow_interval: seconds between the synthetic makers' between-blocks re-quotes
            (``SyntheticMarket.flow``: short-term orders stream off-chain, so the book moves between
            blocks as on the real venue); 0 disables. Skipped while the market or blocks are paused.
        min_gas_prices: the validator's ``minimum-gas-prices``, in the node's format
            (comma-separated ``<decimal price per gas><denom>``): in CheckTx a transaction without
            clob messages must pay ``ceil(gas_limit * price)`` in one of these denoms, else sdk 13.
            Default: the venue's ``0.025`` USDC and ``25000000000adv4tnt``; ``""`` for no minimum.

    Raises:
        ValueError: ``block_time`` or ``flow_interval`` out of range, or ``min_gas_prices`` malformed.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        grpc_port: int = 0,
        grpc_tls: bool = False,
        chain_id: str = CHAIN_ID,
        block_time: float = 0.5,
        seed: int = 0,
        markets: Sequence[str] | None = None,
        synthetic: bool = True,
        rate_limit: tuple[int, float] | None = (100, 10.0),
        ws_ping_interval: float = 30.0,
        ws_pong_timeout: float = 10.0,
        batch_interval: float = 0.25,
        short_block_window: int = 40,
        checksum_history: int = CHECKSUM_HISTORY,
        flow_interval: float = 0.1,
        min_gas_prices: str = DEFAULT_MIN_GAS_PRICES,
    ) -> None:
        if block_time <= 0:
            raise ValueError("block_time must be positive")
        if flow_interval < 0:
            raise ValueError("flow_interval must be >= 0")
        gas_prices = parse_min_gas_prices(min_gas_prices)
        self.config = EmulatorConfig(
            host=host,
            port=port,
            grpc_port=grpc_port,
            grpc_tls=grpc_tls,
            chain_id=chain_id,
            block_time=block_time,
            seed=seed,
            markets=tuple(markets) if markets is not None else None,
            synthetic=synthetic,
            rate_limit=rate_limit,
            ws_ping_interval=ws_ping_interval,
            ws_pong_timeout=ws_pong_timeout,
            batch_interval=batch_interval,
            short_block_window=short_block_window,
            checksum_history=checksum_history,
            flow_interval=flow_interval,
            min_gas_prices=min_gas_prices,
        )
        self.engine = ChainEngine(
            markets=list(markets) if markets is not None else None,
            seed=seed,
            block_interval=dt.timedelta(seconds=block_time),
            short_block_window=short_block_window,
        )
        self.indexer = IndexerStore()
        self.rest = RestApi(self.indexer, rate_limit)
        self.hub = WsHub(
            self.indexer,
            self.rest,
            ping_interval=ws_ping_interval,
            pong_timeout=ws_pong_timeout,
            batch_interval=batch_interval,
            checksum_history=checksum_history,
        )
        self.validator = ValidatorServer(
            self.engine,
            host=host,
            port=grpc_port,
            chain_id=chain_id,
            tls=grpc_tls,
            min_gas_prices=gas_prices,
        )
        self.control = ControlApi(self, self.indexer, self.rest, self.hub)
        self.engine.add_sink(self.indexer.apply)
        self.synthetic: Any = None
        self.paused = False
        self.blocks_paused = False
        self.grpc_target: str | None = None
        self.port: int | None = None
        self._runner: web.AppRunner | None = None
        self._block_task: asyncio.Task[None] | None = None
        self._flow_task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: EmulatorConfig) -> Emulator:
        """Build an emulator from an :class:`EmulatorConfig`."""
        return cls(**{f.name: getattr(config, f.name) for f in dataclasses.fields(config)})

    # --- URLs ---------------------------------------------------------------------------------

    @property
    def indexer_url(self) -> str:
        """``http://HOST:PORT`` (the official client's ``rest_indexer``; paths start with ``/v4``)."""
        return f"http://{self.config.host}:{self._require_port()}"

    @property
    def ws_url(self) -> str:
        """``ws://HOST:PORT/v4/ws``."""
        return f"ws://{self.config.host}:{self._require_port()}/v4/ws"

    @property
    def grpc_certificate_pem(self) -> bytes | None:
        """The self-signed certificate of the gRPC server in TLS mode (None in plaintext mode)."""
        return self.validator.certificate_pem

    def _require_port(self) -> int:
        if self.port is None:
            raise RuntimeError("the emulator is not started")
        return self.port

    # --- lifecycle ----------------------------------------------------------------------------

    def build_app(self) -> web.Application:
        app = web.Application(middlewares=[self.rest.middleware], client_max_size=1 << 20)
        app.router.add_get("/v4/ws", self.hub.handler)
        self.rest.add_routes(app)
        self.control.add_routes(app)
        return app

    async def start(self) -> None:
        """Start the chain, bind the server and begin producing blocks."""
        if self._runner is not None:
            return
        self.engine.start()
        if self.config.synthetic:
            from nautilus_dydx.emulator.engine.synthetic import SyntheticMarket

            self.synthetic = SyntheticMarket(self.engine, seed=self.config.seed)
        runner = web.AppRunner(self.build_app(), access_log=None, handle_signals=False, shutdown_timeout=1.0)
        await runner.setup()
        site = web.TCPSite(runner, self.config.host, self.config.port)
        await site.start()
        self._runner = runner
        server = site._server
        assert server is not None
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else self.config.port
        try:
            await self.validator.start()
        except BaseException:
            await runner.cleanup()
            self._runner = None
            raise
        self.grpc_target = self.validator.target
        self.hub.start()
        self._block_task = asyncio.get_running_loop().create_task(self._block_loop())
        if self.synthetic is not None and self.config.flow_interval > 0:
            self._flow_task = asyncio.get_running_loop().create_task(self._flow_loop())
        log.info("emulator up: %s (ws %s, grpc %s)", self.indexer_url, self.ws_url, self.grpc_target)

    def produce_block(self) -> int:
        """Produce one block now (and let the synthetic traders act unless paused)."""
        height: int = self.engine.produce_block()
        if self.synthetic is not None and not self.paused:
            self.synthetic.step()
        return height

    async def _block_loop(self) -> None:
        loop = asyncio.get_running_loop()
        next_at = loop.time()
        while True:
            next_at += self.config.block_time
            await asyncio.sleep(max(next_at - loop.time(), 0))
            if self.blocks_paused:
                continue
            try:
                self.produce_block()
            except Exception:
                log.exception("block production failed at height %d", self.engine.height)
            if loop.time() - next_at > self.config.block_time * 10:
                next_at = loop.time()  # far behind (debugger, suspended host): do not burst

    async def _flow_loop(self) -> None:
        """Between blocks, let the makers re-quote a few slots every ``flow_interval`` seconds."""
        interval = self.config.flow_interval
        while True:
            await asyncio.sleep(interval)
            if self.synthetic is None or self.paused or self.blocks_paused:
                continue
            try:
                self.synthetic.flow()
            except Exception:
                log.exception("synthetic flow failed at height %d", self.engine.height)

    async def stop(self) -> None:
        """Stop producing blocks, close sockets with 1012 and release the port."""
        if self._flow_task is not None:
            self._flow_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flow_task
            self._flow_task = None
        if self._block_task is not None:
            self._block_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._block_task
            self._block_task = None
        await self.validator.stop()
        self.grpc_target = None
        await self.hub.shutdown()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Emulator:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
