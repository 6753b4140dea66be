"""Timing, memory and reporting helpers shared by the benchmarks.

Standard library only: this module is also imported by ``nautilus_baseline.py``, which runs with the
Python of NautilusTrader's own virtualenv, where nautilus-dydx is not installed.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TypeVar

__all__ = [
    "MemoryUsage",
    "Timing",
    "environment",
    "format_bytes",
    "format_rate",
    "markdown_table",
    "measure_memory",
    "rss_bytes",
    "time_repeated",
    "write_json",
]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock times of repeated runs of one path over the same frames.

    Attributes:
        frames: Frames processed per run.
        times_ns: Duration of each run, in nanoseconds (``time.perf_counter_ns``).
    """

    frames: int
    times_ns: tuple[int, ...]

    @property
    def best_ns(self) -> int:
        """The fastest run: the least disturbed by other load on the machine."""
        return min(self.times_ns)

    @property
    def median_ns(self) -> int:
        """The median run."""
        return int(statistics.median(self.times_ns))

    @property
    def best_fps(self) -> int:
        """Frames per second of the fastest run (integer, rounded down)."""
        return self.frames * 1_000_000_000 // max(self.best_ns, 1)

    @property
    def median_fps(self) -> int:
        """Frames per second of the median run."""
        return self.frames * 1_000_000_000 // max(self.median_ns, 1)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view, including the derived rates."""
        return {
            "frames": self.frames,
            "times_ns": list(self.times_ns),
            "best_ns": self.best_ns,
            "median_ns": self.median_ns,
            "best_fps": self.best_fps,
            "median_fps": self.median_fps,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Timing:
        """Inverse of :meth:`to_dict` (derived fields are recomputed, not trusted)."""
        return cls(frames=int(data["frames"]), times_ns=tuple(int(t) for t in data["times_ns"]))


@dataclass(frozen=True, slots=True)
class MemoryUsage:
    """Memory taken by one run of a path.

    Attributes:
        tracemalloc_peak: Peak of Python-heap allocations during the run (``tracemalloc``); it does
            not see memory that C or Rust extensions allocate outside the Python allocator.
        rss_delta: Growth of the resident set size across the run, in bytes (includes everything,
            but is coarse: freed memory is not always returned to the OS).
    """

    tracemalloc_peak: int
    rss_delta: int

    def to_dict(self) -> dict[str, int]:
        """A JSON-ready view."""
        return asdict(self)


def rss_bytes() -> int:
    """The current resident set size of this process, in bytes.

    Reads ``/proc/self/statm`` where it exists (Linux); elsewhere falls back to the peak RSS reported
    by ``getrusage``, which can only grow.
    """
    try:
        with open("/proc/self/statm", "rb") as fh:
            resident_pages = int(fh.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # ru_maxrss is in kilobytes on Linux and in bytes on macOS.
        return peak if sys.platform == "darwin" else peak * 1024


def time_repeated(
    make_run: Callable[[], Callable[[], T]],
    frames: int,
    repeat: int,
    warmup: int = 1,
) -> tuple[Timing, T]:
    """Time ``repeat`` runs of a path, each on fresh state.

    Args:
        make_run: Builds fresh state (a new book, new decoders...) and returns the zero-argument
            callable to time; the build itself is not timed.
        frames: Number of frames one run processes (for the rate).
        repeat: Timed runs (at least one).
        warmup: Untimed runs first (imports, caches, branch predictors).

    Returns:
        The timings and what the last timed run returned.
    """
    if repeat < 1:
        raise ValueError("repeat must be >= 1")
    for _ in range(warmup):
        make_run()()
    times: list[int] = []
    last: list[T] = []
    for _ in range(repeat):
        run = make_run()
        # Collect garbage left by the previous run so it is not billed to this one.
        gc.collect()
        start = time.perf_counter_ns()
        outcome = run()
        times.append(time.perf_counter_ns() - start)
        last[:] = [outcome]
    return Timing(frames=frames, times_ns=tuple(times)), last[0]


def measure_memory(make_run: Callable[[], Callable[[], object]]) -> MemoryUsage:
    """Measure the memory one run takes, in a separate untimed run (tracing slows it down a lot).

    Args:
        make_run: As for :func:`time_repeated`.

    Returns:
        Peak traced allocations and RSS growth of that run.
    """
    run = make_run()
    gc.collect()
    rss_before = rss_bytes()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    rss_after = rss_bytes()
    return MemoryUsage(tracemalloc_peak=peak, rss_delta=max(rss_after - rss_before, 0))


def environment() -> dict[str, str]:
    """What the numbers were measured on, to store beside them."""
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": str(os.cpu_count()),
        "executable": sys.executable,
    }


def format_rate(fps: int) -> str:
    """``1234567`` -> ``"1,234,567"``."""
    return f"{fps:,}"


def format_bytes(count: int) -> str:
    """Bytes in binary units with one decimal, computed with integers only."""
    units = ("B", "KiB", "MiB", "GiB")
    scaled, unit = count * 10, 0
    while scaled >= 10 * 1024 and unit < len(units) - 1:
        scaled //= 1024
        unit += 1
    return f"{scaled // 10}.{scaled % 10} {units[unit]}" if unit else f"{count} B"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured Markdown table with right-aligned columns after the first."""
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:], strict=True)]
        return "| " + " | ".join(parts) + " |"

    rule = "|" + "|".join(["-" * (widths[0] + 2)] + ["-" * (w + 1) + ":" for w in widths[1:]]) + "|"
    return "\n".join([line(headers), rule, *(line(r) for r in rows)])


def write_json(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` as indented JSON, creating the parent directory; atomic by rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)
