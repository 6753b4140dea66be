"""NautilusTrader 1.221.0's pure-Python dYdX order-book path, timed on a cached frame stream.

This script runs INSIDE NautilusTrader's own virtualenv (``.bench-venvs/nautilus``, made by
``book_pipeline.py``); nautilus-dydx is not installed there. It reads the frames that
``benchmarks.streamgen`` cached, feeds them through NautilusTrader's own code, and writes one JSON
document with its timings on stdout (anything NautilusTrader itself prints is sent to stderr).

Two paths are measured, both calling NautilusTrader's functions and classes, none re-implemented:

``adapter``
    The production per-frame path of ``nautilus_trader.adapters.dydx``: a real ``DYDXDataClient``
    (with its ``DYDXWebsocketClient``) is built offline, the instrument is put in its cache and an
    L2 ``OrderBook`` in its book map (what ``_subscribe_order_book_deltas`` does), a sink is
    registered on the message bus as ``DataEngine.process``, and every frame is handed to
    ``DYDXWebsocketClient._handle_msg`` - the callback the WebSocket transport calls per frame.
    That runs the general decode, ``DYDXDataClient._handle_ws_message`` (second general decode and
    dispatch), ``_handle_orderbook`` / ``_handle_orderbook_batched`` / ``_handle_orderbook_snapshot``
    / ``_handle_trade`` (typed decode, ``parse_to_deltas`` / ``parse_to_snapshot`` /
    ``parse_to_trade_tick``), ``_handle_deltas`` (``_resolve_crossed_order_book`` applying the
    deltas to the book, then the ``QuoteTick`` derived from the book's best levels) and the
    message-bus sends.

``core``
    The minimum any use of NautilusTrader's dYdX schemas has to pay, without the data client's
    plumbing: one ``DYDXWsMessageGeneral`` decode for routing, the typed decoder of the frame's
    kind, its ``parse_to_deltas`` / ``parse_to_snapshot`` / ``parse_to_trade_tick``,
    ``OrderBook.apply_deltas``, ``best_bid_price``/``best_ask_price``/``best_bid_size``/
    ``best_ask_size`` and a ``QuoteTick`` when the top of book changed. It is faster than
    ``adapter`` and so the stricter baseline.

Usage::

    .bench-venvs/nautilus/bin/python benchmarks/nautilus_baseline.py --frames-file F [--repeat 5]
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import io
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

# The repository root, so that the stdlib-only helpers import from this venv too.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._util import environment, measure_memory, time_repeated
from benchmarks.streamgen import load_frames, read_stream_meta

log = logging.getLogger("benchmarks.nautilus_baseline")

PATHS = ("adapter", "core")

# A syntactically plausible address that identifies no one; required by the provider's constructor.
_PLACEHOLDER_ADDRESS = "dydx1" + "q" * 38


def _market_body(ticker: str, tick_size: str, step_size: str) -> bytes:
    """A REST ``/v4/perpetualMarkets`` market object for the stream's market.

    Written by hand with mainnet-like BTC-USD parameters; only the tick and step sizes matter to the
    book, and they come from the stream's spec.
    """
    market = {
        "clobPairId": "0",
        "ticker": ticker,
        "status": "ACTIVE",
        "oraclePrice": "65000",
        "priceChange24H": "0",
        "volume24H": "0",
        "trades24H": 0,
        "nextFundingRate": "0",
        "initialMarginFraction": "0.02",
        "maintenanceMarginFraction": "0.012",
        "openInterest": "0",
        "atomicResolution": -10,
        "quantumConversionExponent": -9,
        "tickSize": tick_size,
        "stepSize": step_size,
        "stepBaseQuantums": 1000000,
        "subticksPerTick": 100000,
        "marketType": "CROSS",
        "baseOpenInterest": "0",
    }
    return json.dumps(market).encode()


class _Sink:
    """Counts what the data client publishes; stands in for the DataEngine."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: collections.Counter[str] = collections.Counter()

    def __call__(self, msg: object) -> None:
        self.counts[type(msg).__name__] += 1


class _NautilusPaths:
    """Builds each path's fresh state; NautilusTrader is imported here, in its own venv."""

    def __init__(self, meta: dict[str, Any]) -> None:
        import msgspec
        import nautilus_trader
        from nautilus_trader.adapters.dydx.endpoints.market.instruments_info import (
            DYDXPerpetualMarketResponseObject,
        )

        spec = meta["spec"]
        self.version = nautilus_trader.__version__
        market = msgspec.json.decode(
            _market_body(spec["ticker"], spec["tick_size"], spec["step_size"]),
            type=DYDXPerpetualMarketResponseObject,
        )
        self.instrument = market.parse_to_instrument(
            base_currency=market.parse_base_currency(),
            quote_currency=market.parse_quote_currency(),
            maker_fee=Decimal(0),
            taker_fee=Decimal(0),
            ts_event=0,
            ts_init=0,
        )
        self.loop = asyncio.new_event_loop()

    def adapter(self, frames: Sequence[bytes]) -> tuple[Callable[[], object], Callable[[], dict[str, Any]]]:
        from nautilus_trader.adapters.dydx.config import DYDXDataClientConfig
        from nautilus_trader.adapters.dydx.data import DYDXDataClient
        from nautilus_trader.adapters.dydx.http.client import DYDXHttpClient
        from nautilus_trader.adapters.dydx.providers import DYDXInstrumentProvider
        from nautilus_trader.cache.cache import Cache
        from nautilus_trader.common.component import LiveClock, MessageBus
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.enums import BookType
        from nautilus_trader.model.identifiers import TraderId

        clock = LiveClock()
        msgbus = MessageBus(trader_id=TraderId("BENCH-001"), clock=clock)
        cache = Cache()
        # Never used: nothing in the per-frame path touches HTTP, gRPC or the network.
        http = DYDXHttpClient(clock=clock, base_url="http://127.0.0.1:9")
        # The wallet address is only used to query fee tiers, which the per-frame path never does.
        provider = DYDXInstrumentProvider(
            client=http,
            grpc_account_client=None,
            clock=clock,
            wallet_address=_PLACEHOLDER_ADDRESS,
        )
        client = DYDXDataClient(
            loop=self.loop,
            client=http,
            msgbus=msgbus,
            cache=cache,
            clock=clock,
            instrument_provider=provider,
            ws_base_url="ws://127.0.0.1:9/v4/ws",
            config=DYDXDataClientConfig(),
            name=None,
        )
        cache.add_instrument(self.instrument)
        instrument_id = self.instrument.id
        book = OrderBook(instrument_id, BookType.L2_MBP)
        # What DYDXDataClient._subscribe_order_book_deltas does before the snapshot arrives.
        client._books[instrument_id] = book
        sink = _Sink()
        msgbus.register(endpoint="DataEngine.process", handler=sink)
        handle = client._ws_client._handle_msg

        def run() -> None:
            for raw in frames:
                handle(raw)

        def summary() -> dict[str, Any]:
            return {
                "published": dict(sink.counts),
                "quotes": sink.counts.get("QuoteTick", 0),
                "final": _top_of_book(book),
            }

        return run, summary

    def core(self, frames: Sequence[bytes]) -> tuple[Callable[[], object], Callable[[], dict[str, Any]]]:
        import msgspec
        from nautilus_trader.adapters.dydx.schemas.ws import (
            DYDXWsMessageGeneral,
            DYDXWsOrderbookBatchedData,
            DYDXWsOrderbookChannelData,
            DYDXWsOrderbookSnapshotChannelData,
            DYDXWsTradeChannelData,
        )
        from nautilus_trader.common.component import LiveClock
        from nautilus_trader.model.book import OrderBook
        from nautilus_trader.model.data import QuoteTick
        from nautilus_trader.model.enums import BookType

        instrument = self.instrument
        instrument_id = instrument.id
        price_precision = instrument.price_precision
        size_precision = instrument.size_precision
        clock = LiveClock()
        book = OrderBook(instrument_id, BookType.L2_MBP)
        decode_general = msgspec.json.Decoder(DYDXWsMessageGeneral).decode
        decoders = {
            ("v4_orderbook", "channel_data"): msgspec.json.Decoder(DYDXWsOrderbookChannelData).decode,
            ("v4_orderbook", "channel_batch_data"): msgspec.json.Decoder(DYDXWsOrderbookBatchedData).decode,
            ("v4_orderbook", "subscribed"): msgspec.json.Decoder(DYDXWsOrderbookSnapshotChannelData).decode,
        }
        decode_trades = msgspec.json.Decoder(DYDXWsTradeChannelData).decode
        state: dict[str, Any] = {"quotes": 0, "deltas": 0, "trades": 0, "last": None}

        def run() -> None:
            last: Any = None
            quotes = deltas_count = trades = 0
            for raw in frames:
                head = decode_general(raw)
                key = (head.channel, head.type)
                decode = decoders.get(key)
                ts = clock.timestamp_ns()
                if decode is not None:
                    msg = decode(raw)
                    if head.type == "subscribed":
                        deltas = msg.parse_to_snapshot(instrument_id, price_precision, size_precision, ts, ts)
                    else:
                        deltas = msg.parse_to_deltas(instrument_id, price_precision, size_precision, ts, ts)
                    book.apply_deltas(deltas)
                    deltas_count += 1
                    bid_price = book.best_bid_price()
                    ask_price = book.best_ask_price()
                    bid_size = book.best_bid_size()
                    ask_size = book.best_ask_size()
                    if bid_price is None or ask_price is None:
                        continue
                    if (
                        last is None
                        or last.bid_price != bid_price
                        or last.ask_price != ask_price
                        or last.bid_size != bid_size
                        or last.ask_size != ask_size
                    ):
                        last = QuoteTick(instrument_id, bid_price, ask_price, bid_size, ask_size, ts, ts)
                        quotes += 1
                elif key == ("v4_trades", "channel_data"):
                    for trade in decode_trades(raw).contents.trades:
                        trade.parse_to_trade_tick(instrument_id, price_precision, size_precision, ts)
                        trades += 1
            state.update(quotes=quotes, deltas=deltas_count, trades=trades, last=last)

        def summary() -> dict[str, Any]:
            return {
                "published": {
                    "OrderBookDeltas": state["deltas"],
                    "QuoteTick": state["quotes"],
                    "TradeTick": state["trades"],
                },
                "quotes": state["quotes"],
                "final": _top_of_book(book),
            }

        return run, summary


def _top_of_book(book: Any) -> dict[str, Any]:
    """The final top of book as normalized decimal strings, comparable with the generator's."""

    def norm(value: object) -> str | None:
        return None if value is None else format(Decimal(str(value)).normalize(), "f")

    return {
        "best_bid": norm(book.best_bid_price()),
        "best_bid_size": norm(book.best_bid_size()),
        "best_ask": norm(book.best_ask_price()),
        "best_ask_size": norm(book.best_ask_size()),
        "bid_levels": len(book.bids()),
        "ask_levels": len(book.asks()),
    }


_Builder = Callable[[Sequence[bytes]], tuple[Callable[[], object], Callable[[], dict[str, Any]]]]


def _measure_path(build: _Builder, frames: Sequence[bytes], repeat: int, memory: bool) -> dict[str, Any]:
    summaries: list[Callable[[], dict[str, Any]]] = []

    def make_run() -> Callable[[], object]:
        run, summary = build(frames)
        summaries[:] = [summary]
        return run

    timing, _ = time_repeated(make_run, frames=len(frames), repeat=repeat)
    # The summary of the last timed run: the state that run left is still held by `summaries`.
    entry: dict[str, Any] = {"timing": timing.to_dict(), "summary": summaries[0]()}
    if memory:
        entry["memory"] = measure_memory(lambda: build(frames)[0]).to_dict()
    return entry


def run_baseline(frames_file: Path, repeat: int, paths: Sequence[str], memory: bool) -> dict[str, Any]:
    """Time the requested NautilusTrader paths over the cached frames.

    Args:
        frames_file: A stream file written by ``benchmarks.streamgen.load_or_generate``.
        repeat: Timed runs per path (after one warm-up run).
        paths: Any of ``"adapter"`` and ``"core"``.
        memory: Also measure each path's memory in an extra run.

    Returns:
        The JSON document described in ``docs/benchmarks.md``.
    """
    frames = load_frames(frames_file)
    meta = read_stream_meta(frames_file)
    nt = _NautilusPaths(meta)
    results: dict[str, Any] = {}
    for name in paths:
        results[name] = _measure_path(getattr(nt, name), frames, repeat, memory)
    return {
        "nautilus_trader": nt.version,
        "frames": len(frames),
        "sha256": meta["sha256"],
        "environment": environment(),
        "paths": results,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry; prints the results as one JSON document on the original stdout."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames-file", type=Path, required=True)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS))
    parser.add_argument("--no-memory", action="store_true", help="skip the memory measurement runs")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    # NautilusTrader's own logging may write to fd 1; keep a private copy of stdout for the result
    # and point fd 1 at stderr, so the JSON document is the only thing the parent reads.
    result_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = io.TextIOWrapper(os.fdopen(os.dup(2), "wb"), write_through=True)
    payload = run_baseline(args.frames_file, args.repeat, args.paths, memory=not args.no_memory)
    with os.fdopen(result_fd, "w") as out:
        out.write(json.dumps(payload) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
