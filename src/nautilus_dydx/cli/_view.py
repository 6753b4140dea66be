"""Shared plumbing of the ``book`` and ``demo`` commands.

- venue selection: an embedded emulator (the default) or a real indexer (``--network``/URLs);
- the streaming loop: a :class:`~nautilus_dydx.services.data.DataClient` feeding a handler, with a
  periodic redraw; Ctrl-C, SIGTERM and the ``--seconds`` deadline (counted from the command's start)
  stop it cleanly in any phase, a stalled start-up included;
- event -> JSON records (prices and sizes as exact decimal strings, a ``type`` field);
- terminal rendering: ANSI home/clear frames on a TTY, plain periodic prints otherwise.

This is a command module: it writes to stdout/stderr. It never imports the emulator; the commands
that start one import it lazily and hand a factory in (layer rule).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol, TextIO

import msgspec

from nautilus_dydx.core.book import Change, LevelChange, OrderBook, Side
from nautilus_dydx.core.config import DydxConfig
from nautilus_dydx.core.errors import ConfigError, DydxError
from nautilus_dydx.schemas.stream import Trade
from nautilus_dydx.services.data import (
    BlockHeightEvent,
    BookDeltas,
    BookRepair,
    BookResync,
    BookSnapshot,
    DataClient,
    FundingRateEvent,
    MarketDataEvent,
    OraclePriceEvent,
    Quote,
    StreamStatusEvent,
    TradeEvent,
)

__all__ = [
    "EmbeddedVenue",
    "MarketStats",
    "Screen",
    "Tracker",
    "add_venue_arguments",
    "deadline_after",
    "event_record",
    "render_market",
    "run_command",
    "side_by_side",
    "stream",
    "until_stopped",
    "venue",
]

NETWORKS = ("local", "testnet", "mainnet")
WARMUP_BLOCKS = 40
"""Blocks produced by an embedded emulator before the client connects, so the first snapshot is a book."""
EMBEDDED_BLOCK_TIME = 0.25
TESTNET_HINT = "nautilus-dydx book BTC-USD --network testnet"


class EmbeddedVenue(Protocol):
    """What the commands need of an embedded emulator (``nautilus_dydx.emulator.app.Emulator``)."""

    @property
    def indexer_url(self) -> str: ...

    @property
    def ws_url(self) -> str: ...

    def produce_block(self) -> int: ...

    async def __aenter__(self) -> Any: ...

    async def __aexit__(self, *exc_info: Any) -> None: ...


EmulatorFactory = Callable[[], EmbeddedVenue]


# -- options and venue ---------------------------------------------------------------------------


def positive_float(text: str) -> float:
    """An argparse type: a number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
    return value


def int_in(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in ``[low, high]``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in [{low}, {high}]; got {text}")
        return value

    return parse


def add_venue_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare ``--network``, ``--indexer-url`` and ``--ws-url`` on ``parser``."""
    parser.add_argument(
        "--network",
        choices=NETWORKS,
        default=None,
        help="connect to a venue instead of the embedded emulator: local (an emulator already "
        "running on 127.0.0.1:3002), testnet or mainnet",
    )
    parser.add_argument("--indexer-url", default=None, help="indexer REST URL (overrides --network)")
    parser.add_argument(
        "--ws-url", default=None, help="indexer WebSocket URL (default: derived from --indexer-url)"
    )


def wants_embedded(args: argparse.Namespace) -> bool:
    """True when no venue option was given: the command runs on an embedded emulator."""
    return args.network is None and args.indexer_url is None and args.ws_url is None


def config_from_args(args: argparse.Namespace) -> DydxConfig:
    """The config the venue options name (only meaningful when not :func:`wants_embedded`).

    Raises:
        ConfigError: ``--ws-url`` without ``--indexer-url``, or a malformed URL.
    """
    config = DydxConfig.preset(args.network or "local")
    if args.ws_url is not None and args.indexer_url is None:
        raise ConfigError("--ws-url needs --indexer-url")
    if args.indexer_url is not None:
        config = config.with_indexer(args.indexer_url, args.ws_url)
    return config


@contextlib.asynccontextmanager
async def venue(
    args: argparse.Namespace, emulator_factory: EmulatorFactory | None
) -> AsyncIterator[tuple[DydxConfig, str]]:
    """Yield ``(config, description)`` of the venue to stream from.

    With ``emulator_factory`` an embedded emulator is started (and warmed up with a few blocks so the
    book is two-sided on arrival) for the duration of the block; otherwise the options name the venue.
    """
    if emulator_factory is None:
        config = config_from_args(args)
        yield config, f"{config.network} indexer {config.indexer_http_url}"
        return
    async with emulator_factory() as emulator:
        for _ in range(WARMUP_BLOCKS):
            emulator.produce_block()
        config = DydxConfig.local().with_indexer(emulator.indexer_url, emulator.ws_url)
        yield config, f"embedded emulator {emulator.indexer_url}"


# -- streaming loop --------------------------------------------------------------------------------


async def check_markets(data: DataClient, tickers: Sequence[str]) -> None:
    """Raise a clear :class:`ConfigError` when a ticker is not listed by the venue."""
    listed = (await data.http.get_perpetual_markets()).markets
    unknown = [t for t in tickers if t not in listed]
    if unknown:
        known = sorted(listed)
        shown = ", ".join(known[:12]) + (", ..." if len(known) > 12 else "")
        raise ConfigError(f"unknown market {', '.join(map(repr, unknown))}; the venue lists: {shown}")


async def stream(
    config: DydxConfig,
    tickers: Sequence[str],
    *,
    on_event: Callable[[DataClient, MarketDataEvent], None],
    on_tick: Callable[[DataClient, bool], None] | None,
    refresh: float,
    stop: asyncio.Event,
) -> None:
    """Stream books, trades and oracle prices of ``tickers`` until ``stop`` is set.

    ``on_event`` sees every event as it arrives (synchronously, on the loop); ``on_tick(data, final)``
    runs every ``refresh`` seconds and once more, with ``final=True``, at the end. ``stop`` also ends
    the start-up (connect, market check, subscribes) at once, however long the venue takes to answer;
    nothing is drawn then, since nothing was streamed.
    """
    if stop.is_set():
        return
    data = DataClient.from_config(config)
    try:
        # Not ``async with``: a failed first connect must still close the transports' sessions.
        if not await until_stopped(_subscribe(data, tickers, on_event), stop):
            return
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), refresh)
            if on_tick is not None and not stop.is_set():
                on_tick(data, False)
        if on_tick is not None:
            on_tick(data, True)
    finally:
        await data.close()


async def _subscribe(
    data: DataClient, tickers: Sequence[str], on_event: Callable[[DataClient, MarketDataEvent], None]
) -> None:
    await data.start()
    await check_markets(data, tickers)
    data.add_handler(lambda event: on_event(data, event))
    for ticker in tickers:
        await data.subscribe_book(ticker)
        await data.subscribe_trades(ticker)
    await data.subscribe_markets()


async def until_stopped(work: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``work`` unless ``stop`` is set first; then cancel it, let it unwind, and return False.

    True when ``work`` completed; its exception, if it raised before ``stop``, propagates.
    """
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    stopped = False
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        if not task.done():
            stopped = True
            task.cancel()
        # Both unwind before we go on: the work's own cleanup (closing a half-open socket) runs
        # now, not as a task left pending when the loop closes.
        await asyncio.wait({task, waiter})
    if stopped:
        if not task.cancelled():
            task.exception()  # an error raised while unwinding is moot: the user asked to stop
        return False
    task.result()
    return True


def run_command(
    name: str, main: Callable[[asyncio.Event], Awaitable[None]], *, deadline: float | None = None
) -> int:
    """Run ``main(stop)`` on a fresh event loop; map the outcome to an exit code.

    Ctrl-C (SIGINT), SIGTERM and ``deadline`` (a :func:`time.monotonic` instant: the command's start
    plus ``--seconds``) set ``stop``, in every phase, start-up included; ``main`` ends promptly on
    it (exit 0). A :class:`DydxError` (venue, network, config) prints one line to stderr and exits 1
    — never a traceback.
    """

    async def guarded() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        installed: list[signal.Signals] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
        timer = None if deadline is None else loop.call_later(max(deadline - time.monotonic(), 0.0), stop.set)
        try:
            await main(stop)
        finally:
            if timer is not None:
                timer.cancel()
            for sig in installed:
                loop.remove_signal_handler(sig)

    try:
        asyncio.run(guarded())
    except KeyboardInterrupt:
        return 0
    except DydxError as exc:
        _error(name, exc)
        return 1
    except OSError as exc:  # binding the embedded emulator, a closed terminal
        if isinstance(exc, BrokenPipeError):
            _quiet_stdout()
            return 0
        _error(name, exc)
        return 1
    return 0


def deadline_after(seconds: float | None) -> float | None:
    """The :func:`run_command` deadline ``seconds`` from now (None: no deadline)."""
    return None if seconds is None else time.monotonic() + seconds


def _error(name: str, exc: BaseException) -> None:
    text = " ".join(str(exc).split()) or type(exc).__name__
    print(f"nautilus-dydx {name}: error: {text}", file=sys.stderr)


def _quiet_stdout() -> None:
    # The reader went away (`| head`): stop the interpreter's final flush from failing too.
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


# -- JSON records ----------------------------------------------------------------------------------

_encoder = msgspec.json.Encoder()
_SIDES = {Side.BID: "bid", Side.ASK: "ask"}
_CHANGES = {
    Change.UNCHANGED: "unchanged",
    Change.ADDED: "added",
    Change.UPDATED: "updated",
    Change.DELETED: "deleted",
}


def _dec(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _levels(book: OrderBook, levels: Iterable[tuple[int, int]]) -> list[list[str]]:
    return [[book.format_price(p), book.format_size(s)] for p, s in levels]


def _changes(book: OrderBook, changes: Iterable[LevelChange]) -> list[dict[str, str]]:
    return [
        {
            "side": _SIDES[c.side],
            "price": book.format_price(c.price),
            "size": book.format_size(c.size),
            "change": _CHANGES[c.change],
        }
        for c in changes
    ]


def _writes(book: OrderBook, levels: Iterable[tuple[Side, int, int]]) -> list[dict[str, str]]:
    # A BookDeltas reports the writes as sent (not classified added/updated): "set" or "deleted".
    return [
        {
            "side": _SIDES[side],
            "price": book.format_price(price),
            "size": book.format_size(size),
            "change": "set" if size else "deleted",
        }
        for side, price, size in levels
    ]


def _trade(trade: Trade) -> dict[str, object]:
    return {
        "id": trade.id,
        "side": trade.side,
        "price": _dec(trade.price),
        "size": _dec(trade.size),
        "created_at": trade.created_at,
        "height": trade.created_at_height,
    }


def event_record(data: DataClient, event: MarketDataEvent) -> dict[str, object]:
    """One event as a JSON-ready dict: a ``type`` field, prices and sizes as exact decimal strings."""
    if isinstance(event, Quote):
        book = data.book(event.ticker)
        return {
            "type": "quote",
            "ticker": event.ticker,
            "bid_price": None if event.bid_price is None else book.format_price(event.bid_price),
            "bid_size": None if event.bid_size is None else book.format_size(event.bid_size),
            "ask_price": None if event.ask_price is None else book.format_price(event.ask_price),
            "ask_size": None if event.ask_size is None else book.format_size(event.ask_size),
            "offset": event.offset,
        }
    if isinstance(event, BookDeltas):
        book = data.book(event.ticker)
        return {
            "type": "book_deltas",
            "ticker": event.ticker,
            "offset": event.offset,
            "changes": _writes(book, event.levels),
        }
    if isinstance(event, BookSnapshot):
        book = data.book(event.ticker)
        return {
            "type": "book_snapshot",
            "ticker": event.ticker,
            "offset": event.offset,
            "reason": event.reason,
            "bids": _levels(book, event.bids),
            "asks": _levels(book, event.asks),
            "checksum": book.checksum(),
        }
    if isinstance(event, BookRepair):
        book = data.book(event.ticker)
        return {
            "type": "book_repair",
            "ticker": event.ticker,
            "offset": event.offset,
            "changes": _changes(book, event.changes),
        }
    if isinstance(event, BookResync):
        return {"type": "book_resync", "ticker": event.ticker, "reason": event.reason}
    if isinstance(event, TradeEvent):
        return {
            "type": "trades",
            "ticker": event.ticker,
            "snapshot": event.snapshot,
            "trades": [_trade(t) for t in event.trades],
        }
    if isinstance(event, OraclePriceEvent):
        return {
            "type": "oracle_price",
            "ticker": event.ticker,
            "price": _dec(event.price),
            "effective_at": event.effective_at,
            "height": event.height,
        }
    if isinstance(event, FundingRateEvent):
        return {
            "type": "funding_rate",
            "ticker": event.ticker,
            "next_funding_rate": _dec(event.next_funding_rate),
        }
    if isinstance(event, StreamStatusEvent):
        return {"type": "stream_status", "status": event.status, "detail": event.detail}
    if isinstance(event, BlockHeightEvent):
        return {"type": "block_height", "height": event.height, "time": event.time}
    # CandleEvent, the last kind of MarketDataEvent.
    return {
        "type": "candle",
        "ticker": event.ticker,
        "resolution": event.resolution,
        "candle": msgspec.to_builtins(event.candle),
        "snapshot": event.snapshot,
    }


def encode_record(record: dict[str, object]) -> bytes:
    """``record`` as one JSON line (no trailing newline)."""
    return _encoder.encode(record)


def event_ticker(event: MarketDataEvent) -> str | None:
    """The market an event is about, or None for connection-wide events."""
    ticker = getattr(event, "ticker", None)
    return ticker if isinstance(ticker, str) else None


# -- per-market state shown by the views -----------------------------------------------------------


@dataclass(slots=True)
class MarketStats:
    """What the views show about one market besides the book itself."""

    book_messages: int = 0
    last_update: float | None = None
    resyncs: int = 0
    repairs: int = 0
    oracle: Decimal | None = None
    trades: deque[Trade] = field(default_factory=lambda: deque(maxlen=5))
    samples: deque[tuple[float, int]] = field(default_factory=deque)

    def rate(self, now: float, window: float = 2.0) -> float:
        """Book messages per second over the last ``window`` seconds (display only)."""
        self.samples.append((now, self.book_messages))
        while len(self.samples) > 1 and now - self.samples[0][0] > window:
            self.samples.popleft()
        t0, n0 = self.samples[0]
        return (self.book_messages - n0) / (now - t0) if now > t0 else 0.0


class Tracker:
    """Folds events into :class:`MarketStats` per ticker."""

    def __init__(self, tickers: Iterable[str], clock: Callable[[], float]) -> None:
        self.markets = {t: MarketStats() for t in tickers}
        start = clock()
        for stats in self.markets.values():
            stats.samples.append((start, 0))  # the first frame already shows a rate
        self.status = "connected"
        self._clock = clock

    def on_event(self, event: MarketDataEvent) -> None:
        if isinstance(event, StreamStatusEvent):
            self.status = event.status
            return
        ticker = event_ticker(event)
        stats = self.markets.get(ticker) if ticker is not None else None
        if stats is None:
            return
        if isinstance(event, BookDeltas | BookSnapshot):
            stats.book_messages += 1
            stats.last_update = self._clock()
        elif isinstance(event, BookRepair):
            stats.repairs += 1
        elif isinstance(event, BookResync):
            stats.resyncs += 1
        elif isinstance(event, TradeEvent):
            stats.trades.extend(event.trades)
        elif isinstance(event, OraclePriceEvent):
            stats.oracle = event.price


# -- rendering -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Style:
    """ANSI styling, or none (not a TTY, or ``NO_COLOR`` set)."""

    color: bool

    def _wrap(self, code: str, text: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color else text

    def bid(self, text: str) -> str:
        return self._wrap("32", text)

    def ask(self, text: str) -> str:
        return self._wrap("31", text)

    def bold(self, text: str) -> str:
        return self._wrap("1", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)


def _visible_len(text: str) -> int:
    length, i = 0, 0
    while i < len(text):
        if text[i] == "\x1b":
            end = text.find("m", i)
            i = len(text) if end < 0 else end + 1
            continue
        length += 1
        i += 1
    return length


def _pad(text: str, width: int, right: bool = False) -> str:
    gap = " " * max(width - _visible_len(text), 0)
    return gap + text if right else text + gap


def _align(values: list[str]) -> list[str]:
    """Pad decimal strings on the right so that, right-aligned, their decimal points line up."""
    fracs = [len(v) - v.index(".") - 1 if "." in v else -1 for v in values]
    widest = max(fracs, default=-1)
    return [v + " " * (widest - f) for v, f in zip(values, fracs, strict=True)]


def render_market(
    ticker: str,
    book: OrderBook,
    stats: MarketStats,
    *,
    depth: int,
    synced: bool,
    now: float,
    style: Style,
    show_trades: bool = True,
) -> list[str]:
    """Lines showing one market: header, ``depth`` levels a side, spread/mid, feed health, trades."""
    bids, asks = book.top(depth)
    bid_sizes = _align([book.format_size(s) for _, s in bids])
    bid_prices = _align([book.format_price(p) for p, _ in bids])
    ask_prices = _align([book.format_price(p) for p, _ in asks])
    ask_sizes = _align([book.format_size(s) for _, s in asks])
    bid_rows = list(zip(bid_sizes, bid_prices, strict=True))
    ask_rows = list(zip(ask_prices, ask_sizes, strict=True))
    w_bs = max([len("bid size")] + [len(r[0]) for r in bid_rows])
    w_bp = max([len("bid")] + [len(r[1]) for r in bid_rows])
    w_ap = max([len("ask")] + [len(r[0]) for r in ask_rows])
    w_as = max([len("ask size")] + [len(r[1]) for r in ask_rows])
    state = style.bid("synced") if synced else style.ask("NOT SYNCED")
    lines = [
        f"{style.bold(ticker)}  {state}  checksum {book.checksum():08x}",
        style.dim(
            f"{_pad('bid size', w_bs, True)} {_pad('bid', w_bp, True)} | {_pad('ask', w_ap, True)} {_pad('ask size', w_as, True)}"
        ),
    ]
    for i in range(depth):
        left = (
            f"{_pad(bid_rows[i][0], w_bs, True)} {style.bid(_pad(bid_rows[i][1], w_bp, True))}"
            if i < len(bid_rows)
            else " " * (w_bs + 1 + w_bp)
        )
        right = (
            f"{style.ask(_pad(ask_rows[i][0], w_ap, True))} {_pad(ask_rows[i][1], w_as, True)}"
            if i < len(ask_rows)
            else " " * (w_ap + 1 + w_as)
        )
        lines.append(f"{left} | {right}")
    spread, mid = book.spread, book.mid
    oracle = "-" if stats.oracle is None else format(stats.oracle, "f")
    lines.append(
        f"spread {'-' if spread is None else format(spread, 'f')}  "
        f"mid {'-' if mid is None else format(mid, 'f')}  oracle {oracle}"
    )
    age = "-" if stats.last_update is None else f"{max(now - stats.last_update, 0.0) * 1000:.0f} ms"
    lines.append(
        f"rate {stats.rate(now):.1f} msgs/s  age {age}  resyncs {stats.resyncs}  repairs {stats.repairs}"
    )
    if show_trades:
        lines.append(style.dim("recent trades"))
        if not stats.trades:
            lines.append("  -")
        for trade in reversed(stats.trades):
            side = style.bid("BUY ") if trade.side.upper() == "BUY" else style.ask("SELL")
            when = trade.created_at.strftime("%H:%M:%S.%f")[:-3]
            lines.append(f"  {when} {side} {_dec(trade.size)} @ {_dec(trade.price)}")
    return lines


def side_by_side(blocks: Sequence[list[str]], gap: str = "   ", width: int | None = None) -> list[str]:
    """Lay blocks of lines out in columns, wrapping to new rows when ``width`` is exceeded."""
    widths = [max((_visible_len(line) for line in block), default=0) for block in blocks]
    rows: list[list[int]] = [[]]
    used = 0
    for index, w in enumerate(widths):
        extra = w + (len(gap) if rows[-1] else 0)
        if rows[-1] and width is not None and used + extra > width:
            rows.append([])
            used, extra = 0, w
        rows[-1].append(index)
        used += extra
    out: list[str] = []
    for row in rows:
        if out:
            out.append("")
        height = max(len(blocks[i]) for i in row)
        for n in range(height):
            parts = [_pad(blocks[i][n] if n < len(blocks[i]) else "", widths[i]) for i in row]
            out.append(gap.join(parts).rstrip())
    return out


class Screen:
    """Draws frames: in place with ANSI home/clear on a TTY, as plain periodic prints otherwise."""

    def __init__(self, out: TextIO, *, plain_interval: float = 1.0) -> None:
        self.out = out
        self.tty = bool(getattr(out, "isatty", lambda: False)())
        self.style = Style(color=self.tty and "NO_COLOR" not in os.environ)
        self._plain_interval = plain_interval
        self._last_plain: float | None = None
        self._started = False

    def width(self) -> int | None:
        return shutil.get_terminal_size((120, 40)).columns if self.tty else None

    def draw(self, lines: Sequence[str], now: float, *, final: bool = False) -> None:
        """Show ``lines``; off a TTY, at most once per ``plain_interval`` (always when ``final``)."""
        if self.tty:
            prefix = "\x1b[?25l\x1b[2J\x1b[H" if not self._started else "\x1b[H"
            self._started = True
            body = "".join(f"{line}\x1b[K\n" for line in lines)
            self.out.write(prefix + body + "\x1b[J" + ("\x1b[?25h" if final else ""))
            self.out.flush()
            return
        if not final and self._last_plain is not None and now - self._last_plain < self._plain_interval:
            return
        self._last_plain = now
        self.out.write("\n".join(lines) + "\n\n")
        self.out.flush()

    def restore(self) -> None:
        """Show the cursor again (a TTY only)."""
        if self.tty and self._started:
            self.out.write("\x1b[?25h")
            self.out.flush()
