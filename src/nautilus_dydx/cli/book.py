"""``nautilus-dydx book TICKER``: a live top-of-book and depth view of one market, or its events as JSON.

Without a venue option it runs against an embedded emulator (in-process, ephemeral port); with
``--network testnet|mainnet`` (or ``--indexer-url``) it reads the real indexer.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from nautilus_dydx.cli import _view
from nautilus_dydx.services.data import DataClient, MarketDataEvent

__all__ = ["add_arguments", "run"]


_depth = _view.int_in(1, 100)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``book`` command's options on ``parser``."""
    parser.add_argument("ticker", help="market ticker, e.g. BTC-USD")
    parser.add_argument("--depth", type=_depth, default=10, help="levels shown per side (default 10)")
    parser.add_argument("--json", action="store_true", help="print every event as one JSON line instead")
    parser.add_argument(
        "--seconds", type=_view.positive_float, default=None, help="stop after N seconds (exit 0)"
    )
    parser.add_argument(
        "--refresh", type=_view.positive_float, default=0.25, help="seconds between redraws (default 0.25)"
    )
    _view.add_venue_arguments(parser)


async def _main(args: argparse.Namespace, stop: asyncio.Event, factory: _view.EmulatorFactory | None) -> None:
    ticker: str = args.ticker.strip().upper()
    loop = asyncio.get_running_loop()
    out = sys.stdout
    tracker = _view.Tracker([ticker], loop.time)
    screen = _view.Screen(out)

    def on_json(data: DataClient, event: MarketDataEvent) -> None:
        event_ticker = _view.event_ticker(event)
        if event_ticker is not None and event_ticker != ticker:
            return  # the markets channel reports every market
        try:
            out.write(_view.encode_record(_view.event_record(data, event)).decode() + "\n")
            out.flush()
        except BrokenPipeError:
            stop.set()

    def on_view_event(data: DataClient, event: MarketDataEvent) -> None:
        tracker.on_event(event)

    async with _view.venue(args, factory) as (config, where):
        header = [
            f"nautilus-dydx book {ticker} on {where}"
            + (f"  (real venue: {_view.TESTNET_HINT})" if factory is not None else ""),
            "",
        ]

        def on_tick(data: DataClient, final: bool) -> None:
            now = loop.time()
            lines = _view.render_market(
                ticker,
                data.book(ticker),
                tracker.markets[ticker],
                depth=args.depth,
                synced=data.is_synced(ticker),
                now=now,
                style=screen.style,
            )
            status = "" if tracker.status != "reconnecting" else "  " + screen.style.ask("(reconnecting)")
            screen.draw([*header, *lines, f"events {data.metrics.messages}{status}"], now, final=final)

        try:
            await _view.stream(
                config,
                [ticker],
                on_event=on_json if args.json else on_view_event,
                on_tick=None if args.json else on_tick,
                refresh=args.refresh,
                stop=stop,
            )
        finally:
            screen.restore()


def run(args: argparse.Namespace) -> int:
    """Stream the book until Ctrl-C or ``--seconds``; 0 on a clean stop, 1 on a venue/network error."""
    deadline = _view.deadline_after(args.seconds)  # counted from here, start-up included
    factory: _view.EmulatorFactory | None = None
    if _view.wants_embedded(args):
        from nautilus_dydx.emulator.app import Emulator  # layer rule: only the commands that start it

        def factory() -> _view.EmbeddedVenue:
            return Emulator(port=0, block_time=_view.EMBEDDED_BLOCK_TIME)

    return _view.run_command("book", lambda stop: _main(args, stop, factory), deadline=deadline)
