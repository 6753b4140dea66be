"""Acceptance benchmark of the order-book pipeline: frames/s of decode -> book -> quote.

One run times these paths over the same generated stream (``benchmarks.streamgen``) and reports
their ratios, all measured in that run:

``floor``
    ``msgspec.json.Decoder(_FloorFrame).decode`` of every frame, contents included, into typed
    Structs in one pass: the least any consumer that reads the data must pay.
``untyped decode``
    ``msgspec.json.decode(frame)`` into dicts, for reference (slower than the typed floor).
``ladder: store|event|prices|keys``
    :func:`run_ladder`: the floor plus the least pure-Python work of each further stage of a book
    (a dict write per level; one event to a handler; integer price keys; validated integer sizes),
    cumulatively: where 3x of the floor sits for any pure-Python book.
``ours``
    :func:`run_ours`: nautilus-dydx's real pipeline, ``StreamProtocol().receive`` then
    ``DataClient.feed`` (book, uncrossing, ``BookDeltas``/``BookRepair``/``Quote`` events) with
    one event handler.
``nt-adapter`` / ``nt-core``
    NautilusTrader 1.221.0's pure-Python dYdX adapter, run by ``nautilus_baseline.py`` in its own
    virtualenv on the same cached bytes (see that module and ``docs/benchmarks.md``).

Targets: ours at least 4x NautilusTrader's path, and at most 3x slower than the floor.

Usage::

    python -m benchmarks book_pipeline [--frames 200000] [--repeat 5] [--profile]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import subprocess
import sys
import venv
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import msgspec

from benchmarks._util import (
    MemoryUsage,
    Timing,
    environment,
    format_bytes,
    format_rate,
    markdown_table,
    measure_memory,
    time_repeated,
    write_json,
)
from benchmarks.streamgen import (
    DEFAULT_OUT_DIR,
    DEFAULT_SEED,
    ExpectedBook,
    GeneratedStream,
    StreamSpec,
    load_or_generate,
)

__all__ = [
    "DESCRIPTION",
    "LADDER_STAGES",
    "NAUTILUS_VERSION",
    "BenchmarkSetupError",
    "OursUnavailable",
    "PathResult",
    "ensure_nautilus_venv",
    "main",
    "run_floor",
    "run_ladder",
    "run_nautilus",
    "run_ours",
    "run_untyped",
]

log = logging.getLogger("benchmarks.book_pipeline")

DESCRIPTION = "order-book pipeline frames/s: bare decode floor vs ours vs NautilusTrader 1.221.0"
NAUTILUS_VERSION = "1.221.0"
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_NAUTILUS_VENV = ROOT / ".bench-venvs" / "nautilus"
BASELINE_SCRIPT = Path(__file__).resolve().parent / "nautilus_baseline.py"

TARGET_VS_NAUTILUS = 4
TARGET_VS_FLOOR = 3


class BenchmarkSetupError(Exception):
    """Something the benchmark needs could not be prepared (a virtualenv, a subprocess)."""


class OursUnavailable(Exception):
    """Our pipeline's modules are not importable yet or lack what :func:`run_ours` uses."""


# -- (a) the floor --------------------------------------------------------------------------------


class _FloorLevel(msgspec.Struct, gc=False):
    price: str
    size: str


class _FloorTrade(msgspec.Struct, gc=False):
    side: str
    size: str
    price: str
    createdAt: str
    id: str | None = None
    type: str | None = None


class _FloorContents(msgspec.Struct, gc=False):
    bids: list[tuple[str, str] | _FloorLevel] = []
    asks: list[tuple[str, str] | _FloorLevel] = []
    trades: list[_FloorTrade] = []


class _FloorFrame(msgspec.Struct, gc=False):
    """Every frame decoded in one pass into typed Structs, contents included, and nothing more:
    the least work any consumer that reads the data must do."""

    type: str
    message_id: int
    connection_id: str
    channel: str | None = None
    id: str | None = None
    version: str | None = None
    contents: _FloorContents | list[_FloorContents] | None = None


_FLOOR_DECODER = msgspec.json.Decoder(_FloorFrame)


def run_floor(frames: Sequence[bytes]) -> dict[str, Any]:
    """Decode every frame, contents included, into typed Structs and do nothing else.

    Args:
        frames: The stream.

    Returns:
        ``{"last_message_id": ...}`` (so the work cannot be skipped).
    """
    decode = _FLOOR_DECODER.decode
    last = None
    for raw in frames:
        last = decode(raw)
    return {"last_message_id": None if last is None else last.message_id}


def run_untyped(frames: Sequence[bytes]) -> dict[str, Any]:
    """``msgspec.json.decode(frame)`` with no type: dicts, lists and strings, nothing else.

    Reported beside the floor for reference only: it is slower than the typed decode (building
    dicts costs more than filling Structs), so the targets are judged against the typed floor.

    Returns:
        ``{"last_message_id": ...}`` (so the work cannot be skipped).
    """
    decode = msgspec.json.decode
    last: Any = None
    for raw in frames:
        last = decode(raw)
    return {"last_message_id": None if last is None else last["message_id"]}


# -- (b) the pure-Python ladder -------------------------------------------------------------------
#
# Reference consumers, each the floor plus the least pure-Python work of one more pipeline stage,
# cumulatively. They are not pipelines (no sorted prices, no uncrossing, no sequencing, no quotes,
# batch frames skipped); they show how much of the 3x budget the bare interpreter work of keeping a
# book costs, measured in the same run. The loops are written out per side on purpose: a shared
# helper or a loop over the sides costs ~150 ns a frame, and a bound must not carry overhead.

LADDER_STAGES = ("store", "event", "prices", "keys")


class _LadderEvent(msgspec.Struct, frozen=True, gc=False):
    """As small as an event can be: the market, the update and its message id."""

    ticker: str | None
    contents: _FloorContents
    offset: int


def run_ladder(
    frames: Sequence[bytes], stage: str, tick_size: str = "1", step_size: str = "0.0001"
) -> dict[str, Any]:
    """One rung of the ladder over the stream: the snapshot, then the single ``channel_data`` updates.

    Args:
        frames: The stream.
        stage: ``store``: the floor, then each level written into a dict per side keyed by the
            price *string* (size ``"0"`` deletes): the least state a book can keep. ``event``:
            ``store`` plus one event Struct per frame handed to one handler. ``prices``: ``event``
            with integer price keys (through a string->int cache, as ``OrderBook.apply_sides``
            does) and the size strings kept as sent, unchecked. ``keys``: ``prices`` with the
            sizes validated and scaled to integers inline, as ``OrderBook.apply_sides`` does.
        tick_size: The market's tick size (the price precision of ``prices`` and ``keys``).
        step_size: The market's step size (the size precision of ``keys``).

    Returns:
        ``{"events", "final"}``: events handled, and the final top of book and level counts in
        the form :func:`check_book` compares (so the work cannot be skipped, and must be right).

    Raises:
        ValueError: an unknown stage, or a size the ``keys`` rung cannot convert.
    """
    if stage not in LADDER_STAGES:
        raise ValueError(f"unknown ladder stage {stage!r}; one of {LADDER_STAGES}")
    events = [0]

    def handler(event: _LadderEvent) -> None:
        events[0] += 1

    on_event = handler if stage != "store" else None
    price_places = len(tick_size.partition(".")[2].rstrip("0"))
    size_places = len(step_size.partition(".")[2].rstrip("0"))
    bids: dict[Any, Any] = {}
    asks: dict[Any, Any] = {}
    if stage == "keys":
        _ladder_keys(frames, on_event, bids, asks, price_places, size_places)
    else:
        price_key = str if stage != "prices" else (lambda text: int(Decimal(text).scaleb(price_places)))
        _ladder_store(frames, on_event, bids, asks, price_key)

    def human(value: Any, places: int) -> str:
        return _norm(value if isinstance(value, str) else str(Decimal(value).scaleb(-places))) or ""

    def best(side: dict[Any, Any], pick: Callable[..., Any]) -> Any:
        return pick(side, key=lambda k: Decimal(human(k, price_places)), default=None)

    top_bid, top_ask = best(bids, max), best(asks, min)
    final = {
        "best_bid": None if top_bid is None else human(top_bid, price_places),
        "best_bid_size": None if top_bid is None else human(bids[top_bid], size_places),
        "best_ask": None if top_ask is None else human(top_ask, price_places),
        "best_ask_size": None if top_ask is None else human(asks[top_ask], size_places),
        "bid_levels": len(bids),
        "ask_levels": len(asks),
    }
    return {"events": events[0], "final": final}


def _ladder_snapshot(
    frame: _FloorFrame,
    bids: dict[Any, Any],
    asks: dict[Any, Any],
    price_key: Callable[[str], Any],
    size_value: Callable[[str], Any],
) -> None:
    """Load a ``subscribed`` order-book snapshot (once per stream: not part of the bound)."""
    contents = frame.contents
    if frame.type != "subscribed" or not isinstance(contents, _FloorContents):
        return
    for side, levels in ((bids, contents.bids), (asks, contents.asks)):
        for level in levels:
            price, size = (level.price, level.size) if isinstance(level, _FloorLevel) else level
            side[price_key(price)] = size_value(size)


def _ladder_store(
    frames: Sequence[bytes],
    handler: Callable[[_LadderEvent], None] | None,
    bids: dict[Any, str],
    asks: dict[Any, str],
    price_key: Callable[[str], Any],
) -> None:
    """``store`` and ``event`` (price_key ``str``: no cache lookup at all) and ``prices``."""
    decode = _FLOOR_DECODER.decode
    cache = price_key is not str
    prices: dict[str, Any] = {}
    for raw in frames:
        frame = decode(raw)
        update = frame.contents
        if frame.type != "channel_data" or type(update) is not _FloorContents:
            _ladder_snapshot(frame, bids, asks, price_key, str)
            continue
        for price, size in update.bids:  # type: ignore[misc]
            p = price
            if cache and (p := prices.get(price)) is None:
                p = prices[price] = price_key(price)
            if size == "0":
                bids.pop(p, None)
            else:
                bids[p] = size
        for price, size in update.asks:  # type: ignore[misc]
            p = price
            if cache and (p := prices.get(price)) is None:
                p = prices[price] = price_key(price)
            if size == "0":
                asks.pop(p, None)
            else:
                asks[p] = size
        if handler is not None:
            handler(_LadderEvent(frame.id, update, frame.message_id))


def _ladder_keys(
    frames: Sequence[bytes],
    handler: Callable[[_LadderEvent], None] | None,
    bids: dict[int, int],
    asks: dict[int, int],
    price_places: int,
    size_places: int,
) -> None:
    """``keys``: integer prices through the cache, sizes validated and scaled inline."""
    decode = _FLOOR_DECODER.decode
    prices: dict[str, int] = {}
    pow10 = tuple(10**k for k in range(size_places + 1))

    def price_key(text: str) -> int:
        return int(Decimal(text).scaleb(price_places))

    def size_value(text: str) -> int:
        return int(Decimal(text).scaleb(size_places))

    for raw in frames:
        frame = decode(raw)
        update = frame.contents
        if frame.type != "channel_data" or type(update) is not _FloorContents:
            _ladder_snapshot(frame, bids, asks, price_key, size_value)
            continue
        for price, size in update.bids:  # type: ignore[misc]
            p = prices.get(price)
            if p is None:
                p = prices[price] = price_key(price)
            whole, _, frac = size.partition(".")
            n = len(frac)
            if not (n <= size_places and whole and (digits := whole + frac).isdigit() and size.isascii()):
                raise ValueError(f"invalid size {size!r}")
            if q := int(digits) * pow10[size_places - n]:
                bids[p] = q
            else:
                bids.pop(p, None)
        for price, size in update.asks:  # type: ignore[misc]
            p = prices.get(price)
            if p is None:
                p = prices[price] = price_key(price)
            whole, _, frac = size.partition(".")
            n = len(frac)
            if not (n <= size_places and whole and (digits := whole + frac).isdigit() and size.isascii()):
                raise ValueError(f"invalid size {size!r}")
            if q := int(digits) * pow10[size_places - n]:
                asks[p] = q
            else:
                asks.pop(p, None)
        if handler is not None:
            handler(_LadderEvent(frame.id, update, frame.message_id))


# -- (c) ours -------------------------------------------------------------------------------------


def _ticker_of(frames: Sequence[bytes]) -> str:
    """The market of the stream's order-book subscription."""
    for raw in frames[:8]:
        head = msgspec.json.decode(raw)
        if head.get("channel") == "v4_orderbook" and head.get("id"):
            return str(head["id"])
    return "BTC-USD"


def run_ours(frames: Sequence[bytes], tick_size: str = "1", step_size: str = "0.0001") -> dict[str, Any]:
    """Our order-book pipeline over a stream: decode, apply to the book, uncross, derive the quote.

    Every frame goes through ``StreamProtocol().receive`` and ``DataClient.feed``, the entry the
    live WebSocket uses; one handler counts the events.

    Args:
        frames: The stream (one market).
        tick_size: The market's tick size.
        step_size: The market's step size.

    Returns:
        ``{"pipeline", "book_frames", "quotes", "trades", "final"}`` where ``quotes`` counts top-of-book
        changes and ``final`` is the last top of book as normalized decimal strings.

    Raises:
        OursUnavailable: ``nautilus_dydx``'s stream protocol or data client is not importable.
    """
    try:
        from nautilus_dydx.core.stream import StreamProtocol
        from nautilus_dydx.services.data import DataClient, Quote, TradeEvent
        from nautilus_dydx.transport.http import HttpClient
        from nautilus_dydx.transport.ws import WsClient
    except ImportError as exc:
        raise OursUnavailable(f"{exc}") from exc

    # The real DataClient pipeline, fed frame by frame: StreamProtocol decode -> DataClient ->
    # OrderBook (apply, uncross) -> BookDeltas / BookRepair / Quote events to a handler. The
    # transports are built but never connected: feed() is the same entry the live socket uses.
    data = DataClient(
        HttpClient("http://127.0.0.1:9"), WsClient("ws://127.0.0.1:9/v4/ws"), audit_interval=None
    )
    ticker = _ticker_of(frames)
    book = data.track_book(ticker, tick_size, step_size)
    counts = {"quotes": 0, "trades": 0}

    def on_event(event: object) -> None:
        kind = type(event)
        if kind is Quote:
            counts["quotes"] += 1
        elif kind is TradeEvent:
            counts["trades"] += len(event.trades)  # type: ignore[attr-defined]

    data.add_handler(on_event)
    receive = StreamProtocol().receive
    feed = data.feed
    for raw in frames:
        feed(receive(raw))
    quotes, trades = counts["quotes"], counts["trades"]
    book_frames = data.metrics.book_messages
    bb, ba = book.best_bid(), book.best_ask()
    final = {
        "best_bid": None if bb is None else _norm(book.format_price(bb[0])),
        "best_bid_size": None if bb is None else _norm(book.format_size(bb[1])),
        "best_ask": None if ba is None else _norm(book.format_price(ba[0])),
        "best_ask_size": None if ba is None else _norm(book.format_size(ba[1])),
        "bid_levels": book.bid_count,
        "ask_levels": book.ask_count,
    }
    return {
        "pipeline": "core.stream.StreamProtocol.receive + services.data.DataClient.feed",
        "book_frames": book_frames,
        "quotes": quotes,
        "trades": trades,
        "final": final,
    }


def _norm(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return format(Decimal(value).normalize(), "f")
    except InvalidOperation:
        return value


# -- (b) NautilusTrader ---------------------------------------------------------------------------


def _venv_python(venv_dir: Path) -> Path:
    return venv_dir / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _nautilus_version(python: Path) -> str | None:
    """The NautilusTrader version importable (with its dYdX adapter) by ``python``, if any."""
    probe = "import nautilus_trader, nautilus_trader.adapters.dydx.data; print(nautilus_trader.__version__)"
    try:
        out = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def ensure_nautilus_venv(venv_dir: Path = DEFAULT_NAUTILUS_VENV, version: str = NAUTILUS_VERSION) -> Path:
    """Return the python of a virtualenv with ``nautilus_trader[dydx]==version``, creating it if needed.

    The virtualenv is reused when it already imports that version with its dYdX adapter.

    Args:
        venv_dir: Where the virtualenv lives (``.bench-venvs/nautilus``, gitignored).
        version: The exact NautilusTrader version.

    Returns:
        The path of the virtualenv's python.

    Raises:
        BenchmarkSetupError: the virtualenv cannot be created or pip cannot install NautilusTrader.
    """
    python = _venv_python(venv_dir)
    if python.exists() and _nautilus_version(python) == version:
        return python
    log.info("creating %s with nautilus_trader[dydx]==%s (one-off, takes a minute)", venv_dir, version)
    try:
        venv.EnvBuilder(with_pip=True, clear=python.exists()).create(venv_dir)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise BenchmarkSetupError(f"cannot create the virtualenv {venv_dir}: {exc}") from exc
    # The dydx extra brings grpcio, v4-proto, bech32... which the adapter imports at module load.
    cmd = [
        str(python),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        f"nautilus_trader[dydx]=={version}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
        raise BenchmarkSetupError(
            f"pip could not install nautilus_trader[dydx]=={version} into {venv_dir} "
            f"(a wheel for Python {sys.version_info.major}.{sys.version_info.minor} on this platform is "
            f"needed; pass --nautilus-python to use another interpreter's venv, or --skip-nautilus):\n{tail}"
        )
    found = _nautilus_version(python)
    if found != version:
        raise BenchmarkSetupError(
            f"{venv_dir} imports nautilus_trader {found!r} after install, not {version}"
        )
    return python


def run_nautilus(
    python: Path,
    frames_file: Path,
    repeat: int,
    memory: bool,
    paths: Sequence[str] = ("adapter", "core"),
    timeout: float | None = None,
) -> dict[str, Any]:
    """Run ``nautilus_baseline.py`` in NautilusTrader's venv and return its JSON report.

    Args:
        python: The venv's python (see :func:`ensure_nautilus_venv`).
        frames_file: The cached stream; the subprocess reads the same bytes.
        repeat: Timed runs per path.
        memory: Also measure memory.
        paths: Which NautilusTrader paths to time.
        timeout: Seconds before the subprocess is killed (``None``: no limit).

    Returns:
        The decoded report (see ``docs/benchmarks.md``).

    Raises:
        BenchmarkSetupError: the subprocess failed or printed no report.
    """
    cmd = [
        str(python),
        str(BASELINE_SCRIPT),
        "--frames-file",
        str(frames_file),
        "--repeat",
        str(repeat),
        "--paths",
        *paths,
    ]
    if not memory:
        cmd.append("--no-memory")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired as exc:
        raise BenchmarkSetupError(f"nautilus_baseline.py timed out after {timeout} s") from exc
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-20:])
        raise BenchmarkSetupError(f"nautilus_baseline.py exited with {proc.returncode}:\n{tail}")
    try:
        report: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise BenchmarkSetupError(
            f"nautilus_baseline.py printed no JSON report: {proc.stdout[:300]!r}"
        ) from exc
    return report


# -- the run --------------------------------------------------------------------------------------


@dataclass
class PathResult:
    """One path's outcome in one run.

    Attributes:
        name: ``floor``, ``ours``, ``nt-adapter`` or ``nt-core``.
        status: ``ok``, ``unavailable`` or ``failed``.
        reason: Why it is not ``ok``.
        timing: Its timings, when it ran.
        memory: Its memory use, when measured.
        summary: What the path reported (quotes, final top of book...).
        book_check: ``match``/``MISMATCH: ...`` against the generator's final book, or ``n/a``.
    """

    name: str
    status: str = "ok"
    reason: str = ""
    timing: Timing | None = None
    memory: MemoryUsage | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    book_check: str = "n/a"

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view."""
        return {
            "name": self.name,
            "status": self.status,
            "reason": self.reason,
            "timing": None if self.timing is None else self.timing.to_dict(),
            "memory": None if self.memory is None else self.memory.to_dict(),
            "summary": self.summary,
            "book_check": self.book_check,
        }


def check_book(final: dict[str, Any] | None, expected: ExpectedBook) -> str:
    """Compare a path's final top of book with the one the generator implies.

    Returns:
        ``"match"`` or ``"MISMATCH: <field> <got> != <expected>"``; ``"n/a"`` for a crossed stream
        (each pipeline uncrosses by its own rules, so no single expected book exists).
    """
    if final is None:
        return "n/a"
    if expected.crossed:
        return "n/a (crossed stream)"
    want = asdict(expected)
    for key in ("best_bid", "best_bid_size", "best_ask", "best_ask_size", "bid_levels", "ask_levels"):
        got = final.get(key)
        exp = want[key]
        if isinstance(exp, str):
            exp = _norm(exp)
        if got != exp:
            return f"MISMATCH: {key} {got!r} != {exp!r}"
    return "match"


def _in_process(
    name: str,
    fn: Callable[[Sequence[bytes]], dict[str, Any]],
    frames: Sequence[bytes],
    repeat: int,
    memory: bool,
    expected: ExpectedBook | None,
) -> PathResult:
    def make_run() -> Callable[[], dict[str, Any]]:
        return lambda: fn(frames)

    try:
        timing, summary = time_repeated(make_run, frames=len(frames), repeat=repeat)
    except OursUnavailable as exc:
        return PathResult(name, status="unavailable", reason=str(exc))
    except Exception as exc:
        # A path that breaks must not hide the others' numbers; the traceback goes to the log.
        log.exception("path %s failed", name)
        return PathResult(name, status="failed", reason=f"{type(exc).__name__}: {exc}"[:200])
    result = PathResult(name, timing=timing, summary=summary)
    if memory:
        result.memory = measure_memory(make_run)
    if expected is not None:
        result.book_check = check_book(summary.get("final"), expected)
    return result


def _nautilus_results(report: dict[str, Any], expected: ExpectedBook) -> list[PathResult]:
    results = []
    for path, entry in report["paths"].items():
        res = PathResult(
            f"nt-{path}",
            timing=Timing.from_dict(entry["timing"]),
            summary=entry["summary"],
        )
        if entry.get("memory"):
            res.memory = MemoryUsage(**entry["memory"])
        res.book_check = check_book(entry["summary"].get("final"), expected)
        results.append(res)
    return results


def _ratio(numerator: int, denominator: int) -> str:
    """``numerator / denominator`` to two decimals, integer arithmetic only."""
    if denominator <= 0:
        return "-"
    hundredths = (numerator * 100 + denominator // 2) // denominator
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def render_report(results: Sequence[PathResult], stream: GeneratedStream) -> str:
    """The Markdown report: one row per path, ratios computed from the best runs of this run."""
    by_name = {r.name: r for r in results if r.timing is not None}
    floor = by_name.get("floor")
    nt_paths = [r for r in results if r.name.startswith("nt-") and r.timing is not None]
    headers = ["path", "frames/s (best)", "frames/s (median)", "x slower than floor"]
    headers += [f"x faster than {r.name}" for r in nt_paths]
    headers += ["traced peak", "RSS delta", "final book"]
    rows = []
    for r in results:
        if r.timing is None:
            rows.append([r.name, f"not available: {r.reason}"] + [""] * (len(headers) - 2))
            continue
        fps = r.timing.best_fps
        row = [r.name, format_rate(fps), format_rate(r.timing.median_fps)]
        row.append(_ratio(floor.timing.best_fps, fps) if floor and floor.timing else "-")
        row += [_ratio(fps, nt.timing.best_fps) for nt in nt_paths if nt.timing is not None]
        row.append(format_bytes(r.memory.tracemalloc_peak) if r.memory else "-")
        row.append(format_bytes(r.memory.rss_delta) if r.memory else "-")
        row.append(r.book_check)
        rows.append(row)
    counts = stream.counts
    lines = [
        f"## Order-book pipeline, {len(stream.frames):,} frames",
        "",
        f"Stream: {counts['book_update']:,} updates, {counts['book_batch']:,} batches, "
        f"{counts['trades']:,} trade frames, {counts['level_changes']:,} level changes "
        f"({counts['level_deletes']:,} deletes); sha256 {stream.sha256[:16]}.",
        "",
        markdown_table(headers, rows),
        "",
    ]
    ours = by_name.get("ours")
    if ours is not None and ours.timing is not None:
        verdicts = []
        if floor is not None and floor.timing is not None:
            ok = ours.timing.best_fps * TARGET_VS_FLOOR >= floor.timing.best_fps
            verdicts.append(f"within {TARGET_VS_FLOOR}x of the floor: {'PASS' if ok else 'FAIL'}")
        for nt in nt_paths:
            if nt.timing is not None:
                ok = ours.timing.best_fps >= TARGET_VS_NAUTILUS * nt.timing.best_fps
                verdicts.append(f">= {TARGET_VS_NAUTILUS}x {nt.name}: {'PASS' if ok else 'FAIL'}")
        lines.append("Targets: " + "; ".join(verdicts) + ".")
    return "\n".join(lines)


def _ppm(text: str) -> int:
    try:
        value = Decimal(text)
    except InvalidOperation as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError("a fraction must be within [0, 1]")
    return int(value * 1_000_000)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The benchmark's options."""
    parser.add_argument("--frames", type=int, default=200_000, help="update frames after the snapshot")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per path (best and median kept)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--batch-fraction", type=_ppm, default=0, metavar="F", help="share of batch frames")
    parser.add_argument(
        "--trades-fraction", type=_ppm, default=0, metavar="F", help="share of v4_trades frames"
    )
    parser.add_argument("--skip-nautilus", action="store_true", help="do not run NautilusTrader's path")
    parser.add_argument("--nautilus-venv", type=Path, default=DEFAULT_NAUTILUS_VENV)
    parser.add_argument("--nautilus-python", type=Path, help="an existing python with nautilus_trader[dydx]")
    parser.add_argument("--no-memory", action="store_true", help="skip the (slow) memory measurement runs")
    parser.add_argument("--profile", action="store_true", help="write flame graphs of our pipeline")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT_DIR, help="results and stream cache")


def profile_ours(frames: Sequence[bytes], spec: StreamSpec, out_dir: Path, stamp: str) -> list[Path]:
    """Profile one run of :func:`run_ours` with pyinstrument; write HTML and speedscope JSON.

    Returns:
        The files written.

    Raises:
        BenchmarkSetupError: pyinstrument is not installed.
    """
    try:
        from pyinstrument import Profiler
        from pyinstrument.renderers import HTMLRenderer, SpeedscopeRenderer
    except ImportError as exc:
        raise BenchmarkSetupError("--profile needs pyinstrument: pip install 'pyinstrument>=4.6'") from exc
    # A 1 ms interval keeps the sampling overhead small on a multi-second run.
    profiler = Profiler(interval=0.001)
    profiler.start()
    run_ours(frames, spec.tick_size, spec.step_size)
    profiler.stop()
    session = profiler.last_session
    if session is None:
        raise BenchmarkSetupError("pyinstrument recorded no session")
    html = out_dir / f"book_pipeline-ours-{stamp}.html"
    speedscope = out_dir / f"book_pipeline-ours-{stamp}.speedscope.json"
    html.write_text(HTMLRenderer().render(session))
    speedscope.write_text(SpeedscopeRenderer().render(session))
    return [html, speedscope]


def run(args: argparse.Namespace) -> int:
    """Run the benchmark with parsed options; prints the Markdown report, writes the JSON results."""
    out_dir: Path = args.out
    spec = StreamSpec(
        updates=args.frames,
        seed=args.seed,
        batch_ppm=args.batch_fraction,
        trades_ppm=args.trades_fraction,
    )
    stream = load_or_generate(spec, out_dir)
    frames = stream.frames
    memory = not args.no_memory
    results = [
        _in_process("floor", run_floor, frames, args.repeat, memory, None),
        _in_process("untyped decode", run_untyped, frames, args.repeat, False, None),
    ]
    # The ladder's rungs keep real (unsorted) books, checked like ours; their memory is not of interest.
    for stage in LADDER_STAGES:
        results.append(
            _in_process(
                f"ladder: {stage}",
                lambda fr, stage=stage: run_ladder(fr, stage, spec.tick_size, spec.step_size),  # type: ignore[misc]
                frames,
                args.repeat,
                False,
                stream.expected,
            )
        )
    results += [
        _in_process(
            "ours",
            lambda fr: run_ours(fr, spec.tick_size, spec.step_size),
            frames,
            args.repeat,
            memory,
            stream.expected,
        ),
    ]
    nautilus_report: dict[str, Any] | None = None
    if args.skip_nautilus:
        results.append(PathResult("nt", status="unavailable", reason="skipped (--skip-nautilus)"))
    else:
        try:
            python = args.nautilus_python or ensure_nautilus_venv(args.nautilus_venv)
            assert stream.path is not None
            nautilus_report = run_nautilus(python, stream.path, args.repeat, memory)
            if nautilus_report.get("sha256") != stream.sha256:
                raise BenchmarkSetupError("NautilusTrader's subprocess read different frames")
            results.extend(_nautilus_results(nautilus_report, stream.expected))
        except BenchmarkSetupError as exc:
            log.error("%s", exc)
            results.append(PathResult("nt", status="failed", reason=str(exc).splitlines()[0]))

    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    report = render_report(results, stream)
    print(report)
    payload = {
        "benchmark": "book_pipeline",
        "created": stamp,
        "stream": {
            "spec": asdict(spec),
            "frames": len(frames),
            "counts": stream.counts,
            "sha256": stream.sha256,
            "expected": asdict(stream.expected),
            "file": str(stream.path),
        },
        "repeat": args.repeat,
        "environment": environment(),
        "nautilus_environment": None if nautilus_report is None else nautilus_report.get("environment"),
        "nautilus_trader": None if nautilus_report is None else nautilus_report.get("nautilus_trader"),
        "results": [r.to_dict() for r in results],
        "report_markdown": report,
    }
    for name in (f"book_pipeline-{stamp}.json", "book_pipeline-latest.json"):
        write_json(out_dir / name, payload)
    print(f"\nresults: {out_dir / f'book_pipeline-{stamp}.json'}")
    if args.profile:
        try:
            for path in profile_ours(frames, spec, out_dir, stamp):
                print(f"profile: {path}")
        except (BenchmarkSetupError, OursUnavailable) as exc:
            print(f"profile: not written: {exc}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry point (``python -m benchmarks book_pipeline`` or ``python -m benchmarks.book_pipeline``)."""
    parser = argparse.ArgumentParser(prog="benchmarks book_pipeline", description=DESCRIPTION)
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
