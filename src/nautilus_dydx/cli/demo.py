"""``nautilus-dydx demo``: the two-command start.

Starts an embedded dYdX v4 emulator (in-process, ephemeral port, synthetic traders) and streams the
books of two markets side by side with their last trades and oracle prices, through the same
``DataClient`` a trading program uses.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from nautilus_dydx.cli import _view
from nautilus_dydx.core.errors import ConfigError
from nautilus_dydx.services.data import DataClient, MarketDataEvent

__all__ = ["add_arguments", "run"]


_depth = _view.int_in(1, 50)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``demo`` command's options on ``parser``."""
    parser.add_argument(
        "--seconds", type=_view.positive_float, default=None, help="stop after N seconds (exit 0)"
    )
    parser.add_argument(
        "--markets", default="BTC-USD,ETH-USD", help="comma-separated tickers (default BTC-USD,ETH-USD)"
    )
    parser.add_argument("--depth", type=_depth, default=8, help="levels shown per side (default 8)")
    parser.add_argument(
        "--refresh", type=_view.positive_float, default=0.25, help="seconds between redraws (default 0.25)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the emulator's synthetic market")


def _tickers(text: str) -> list[str]:
    tickers = list(dict.fromkeys(t.strip().upper() for t in text.split(",") if t.strip()))
    if not tickers:
        raise ConfigError("--markets needs at least one ticker, e.g. BTC-USD,ETH-USD")
    return tickers


async def _main(args: argparse.Namespace, stop: asyncio.Event, factory: _view.EmulatorFactory) -> None:
    tickers = _tickers(args.markets)
    loop = asyncio.get_running_loop()
    tracker = _view.Tracker(tickers, loop.time)
    screen = _view.Screen(sys.stdout)
    style = screen.style

    def on_event(data: DataClient, event: MarketDataEvent) -> None:
        tracker.on_event(event)

    async with _view.venue(args, factory) as (config, where):
        header = [
            style.bold("nautilus-dydx demo") + f" - live books from the embedded dYdX v4 emulator ({where})",
            style.dim(
                f"synthetic traders, no network. Real venue: {_view.TESTNET_HINT}"
                + ("" if args.seconds else "   Ctrl-C to quit")
            ),
            "",
        ]

        def on_tick(data: DataClient, final: bool) -> None:
            now = loop.time()
            blocks = [
                _view.render_market(
                    ticker,
                    data.book(ticker),
                    tracker.markets[ticker],
                    depth=args.depth,
                    synced=data.is_synced(ticker),
                    now=now,
                    style=style,
                )
                for ticker in tickers
            ]
            body = _view.side_by_side(blocks, gap="   |   ", width=screen.width())
            feed = f"events {data.metrics.messages}  stream {tracker.status}"
            screen.draw([*header, *body, "", style.dim(feed)], now, final=final)

        try:
            await _view.stream(
                config,
                tickers,
                on_event=on_event,
                on_tick=on_tick,
                refresh=args.refresh,
                stop=stop,
            )
        finally:
            screen.restore()


def run(args: argparse.Namespace) -> int:
    """Run the demo until Ctrl-C or ``--seconds``; 0 on a clean stop, 1 on an error."""
    deadline = _view.deadline_after(args.seconds)  # counted from here, start-up included
    from nautilus_dydx.emulator.app import Emulator  # layer rule: only the commands that start it

    # The emulator lists its default set plus any other market it knows that was asked for; a ticker
    # it does not know is then reported by the market check as one clear error.
    def factory() -> _view.EmbeddedVenue:
        from nautilus_dydx.emulator.params import DEFAULT_MARKETS, MARKETS

        try:
            wanted = _tickers(args.markets)
        except ConfigError:
            wanted = []
        markets = list(dict.fromkeys([*DEFAULT_MARKETS, *(t for t in wanted if t in MARKETS)]))
        return Emulator(port=0, block_time=_view.EMBEDDED_BLOCK_TIME, seed=args.seed, markets=markets)

    return _view.run_command("demo", lambda stop: _main(args, stop, factory), deadline=deadline)
