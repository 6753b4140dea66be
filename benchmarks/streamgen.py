"""Deterministic generator of realistic dYdX v4 indexer WebSocket frames.

The frames are byte-exact to what the indexer's socks service writes on the wire (compact
``JSON.stringify`` output, key order as the server builds its messages):

* one ``connected`` frame (``message_id`` 0),
* one ``subscribed`` ``v4_orderbook`` frame whose ``contents`` is the REST order-book body
  (``{"bids":[{"price","size"}...],"asks":[...]}``, best level first),
* then ``StreamSpec.updates`` frames, each a ``channel_data`` order-book update
  (``{"bids":[["price","size"],...]}`` or ``{"asks":...}``, absolute level sizes, ``"0"`` deletes),
  or, in the proportions asked for, a ``channel_batch_data`` order-book frame or a ``v4_trades``
  ``channel_data`` frame.

The generator keeps its own integer book (prices in ticks, sizes in steps) and a mid price that
random-walks, so levels appear and disappear as the market moves. It never crosses the book
unless ``crossed_ppm`` asks it to (the real indexer does send crossed books, see protocol doc §4.8).

Frames are cached as newline-delimited files in ``benchmarks/out/`` (compact JSON never contains a
raw newline), so a subprocess running in another virtualenv reads the identical bytes.
"""

from __future__ import annotations

import bisect
import hashlib
import json
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path

import msgspec

__all__ = [
    "DEFAULT_OUT_DIR",
    "DEFAULT_SEED",
    "ExpectedBook",
    "GeneratedStream",
    "StreamSpec",
    "format_scaled",
    "generate",
    "load_frames",
    "load_or_generate",
    "read_stream_meta",
    "stream_path",
]

DEFAULT_OUT_DIR = Path(__file__).resolve().parent / "out"

_PPM = 1_000_000
DEFAULT_SEED = 20240724
# Wall-clock origin of the synthetic trade timestamps: fixed so that the stream is reproducible.
_EPOCH_MS = 1_721_848_355_705  # 2024-07-24T19:12:35.705Z


@dataclass(frozen=True, slots=True)
class StreamSpec:
    """What to generate. Equal specs give byte-identical streams.

    Probabilities are integers in parts per million so that no float enters the generator.

    Attributes:
        updates: Number of frames after ``connected`` and ``subscribed``.
        seed: Seed of the private ``random.Random``.
        ticker: Market ticker, used as the subscription ``id``.
        tick_size: Price tick as a decimal string; must be a power of ten (dYdX markets use those).
        step_size: Size step as a decimal string; a power of ten.
        mid_ticks: Initial mid price, in ticks.
        depth: Levels per side in the snapshot (the book is kept near this depth).
        delete_ppm: Chance that one level change is a delete of an existing level.
        move_ppm: Chance per frame that the mid price moves.
        batch_ppm: Chance that a frame is a ``channel_batch_data`` frame.
        trades_ppm: Chance that a frame is a ``v4_trades`` frame.
        crossed_ppm: Chance that a new level is placed through the opposite best (crossing the book).
        connection_id: The constant ``connection_id`` of every frame.
    """

    updates: int = 200_000
    seed: int = DEFAULT_SEED
    ticker: str = "BTC-USD"
    tick_size: str = "1"
    step_size: str = "0.0001"
    mid_ticks: int = 65_000
    depth: int = 100
    delete_ppm: int = 100_000
    move_ppm: int = 150_000
    batch_ppm: int = 0
    trades_ppm: int = 0
    crossed_ppm: int = 0
    connection_id: str = "3fcea53b-7e50-48a5-a887-e67e76a10886"

    def __post_init__(self) -> None:
        if self.updates < 0:
            raise ValueError("updates must be >= 0")
        if self.depth < 2:
            raise ValueError("depth must be >= 2")
        if self.mid_ticks <= 4 * self.depth:
            raise ValueError("mid_ticks must leave room for the book above zero")
        for name in ("delete_ppm", "move_ppm", "batch_ppm", "trades_ppm", "crossed_ppm"):
            value = getattr(self, name)
            if not 0 <= value <= _PPM:
                raise ValueError(f"{name} must be within [0, {_PPM}]")
        if self.batch_ppm + self.trades_ppm > _PPM:
            raise ValueError("batch_ppm + trades_ppm must not exceed 1 000 000")
        _power_of_ten_exponent(self.tick_size)
        _power_of_ten_exponent(self.step_size)

    def key(self) -> str:
        """A short stable digest of the spec, used to name the cache file."""
        blob = json.dumps(asdict(self), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True, slots=True)
class ExpectedBook:
    """The book the stream implies after its last frame, for cross-checking a pipeline.

    Attributes:
        best_bid: Best bid price as the wire writes it, or ``None`` for an empty side.
        best_bid_size: Size at the best bid.
        best_ask: Best ask price, or ``None``.
        best_ask_size: Size at the best ask.
        bid_levels: Number of bid levels.
        ask_levels: Number of ask levels.
        crossed: Whether the final book is crossed (only possible with ``crossed_ppm``).
    """

    best_bid: str | None
    best_bid_size: str | None
    best_ask: str | None
    best_ask_size: str | None
    bid_levels: int
    ask_levels: int
    crossed: bool


@dataclass(frozen=True, slots=True)
class GeneratedStream:
    """A generated stream and what it contains.

    Attributes:
        spec: The spec it was generated from.
        frames: Every frame, in order, as the bytes a WebSocket would deliver.
        expected: The book implied after the last frame.
        counts: Number of frames per kind (``connected``, ``subscribed``, ``book_update``,
            ``book_batch``, ``trades``) and of level changes (``level_changes``, ``level_deletes``).
        sha256: Digest of the frames (joined by newlines), to prove two processes read the same bytes.
        path: The cache file, when the stream was written to or read from one.
    """

    spec: StreamSpec
    frames: list[bytes]
    expected: ExpectedBook
    counts: dict[str, int]
    sha256: str
    path: Path | None = None


def _power_of_ten_exponent(value: str) -> int:
    """Exponent ``e`` with ``Decimal(value) == 10**e``; raises ``ValueError`` otherwise."""
    dec = Decimal(value)
    if dec <= 0:
        raise ValueError(f"{value!r} is not positive")
    normal = dec.normalize()
    _sign, digits, exponent = normal.as_tuple()
    if digits != (1,) or not isinstance(exponent, int):
        raise ValueError(f"{value!r} is not a power of ten")
    return exponent


def format_scaled(units: int, exponent: int) -> str:
    """Render ``units * 10**exponent`` the way the indexer does: plain, no trailing zeros.

    Args:
        units: Integer count of ticks or steps (>= 0).
        exponent: Power of ten of one unit.

    Returns:
        For example ``format_scaled(12340, -4) == "1.234"``, ``format_scaled(0, -4) == "0"``,
        ``format_scaled(65, 1) == "650"``.
    """
    if exponent >= 0:
        return str(units * 10**exponent) if units else "0"
    digits = str(units)
    places = -exponent
    if len(digits) <= places:
        digits = "0" * (places - len(digits) + 1) + digits
    whole, frac = digits[:-places], digits[-places:].rstrip("0")
    return f"{whole}.{frac}" if frac else whole


class _Side:
    """One side of the generator's book: a sorted price list plus a price -> size map."""

    __slots__ = ("prices", "sizes")

    def __init__(self) -> None:
        self.prices: list[int] = []
        self.sizes: dict[int, int] = {}

    def set(self, price: int, size: int) -> None:
        if size == 0:
            if price in self.sizes:
                del self.sizes[price]
                self.prices.pop(bisect.bisect_left(self.prices, price))
            return
        if price not in self.sizes:
            bisect.insort(self.prices, price)
        self.sizes[price] = size


class _Generator:
    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        self.price_exp = _power_of_ten_exponent(spec.tick_size)
        self.size_exp = _power_of_ten_exponent(spec.step_size)
        self.bids = _Side()
        self.asks = _Side()
        self.mid = spec.mid_ticks
        self.message_id = 0
        self.clock_ms = _EPOCH_MS
        self.trade_seq = 0
        self.encode = msgspec.json.Encoder().encode
        self.counts = {
            "connected": 0,
            "subscribed": 0,
            "book_update": 0,
            "book_batch": 0,
            "trades": 0,
            "level_changes": 0,
            "level_deletes": 0,
        }

    # -- numbers -------------------------------------------------------------------------------

    def price(self, ticks: int) -> str:
        return format_scaled(ticks, self.price_exp)

    def size(self, steps: int) -> str:
        return format_scaled(steps, self.size_exp)

    def random_size(self) -> int:
        # Mostly small resting sizes with an occasional large one, as on a real book.
        if self.rng.randrange(10) == 0:
            return self.rng.randrange(10_000, 200_000)
        return self.rng.randrange(1, 20_000)

    def distance(self) -> int:
        # A uniform draw below a uniform bound concentrates activity near the top of the book.
        bound = self.rng.randrange(1, 2 * self.spec.depth)
        return 1 + self.rng.randrange(bound)

    # -- book dynamics -------------------------------------------------------------------------

    def snapshot_book(self) -> None:
        spread = self.rng.randrange(1, 4)
        best_bid = self.mid - spread // 2 - 1 if spread > 1 else self.mid - 1
        best_ask = best_bid + spread
        bid_price, ask_price = best_bid, best_ask
        for _ in range(self.spec.depth):
            self.bids.set(bid_price, self.random_size())
            self.asks.set(ask_price, self.random_size())
            bid_price -= self.rng.randrange(1, 3)
            ask_price += self.rng.randrange(1, 3)

    def change_level(self, is_bid: bool, taken: set[int]) -> tuple[int, int] | None:
        """Choose one level change on one side and apply it; ``None`` when nothing fits."""
        side, other = (self.bids, self.asks) if is_bid else (self.asks, self.bids)
        rng = self.rng
        spec = self.spec
        # Levels left on the wrong side of a moving mid disappear first: that is how a walking
        # market removes them, and it keeps the generator's book near the mid.
        if side.prices:
            edge = side.prices[-1] if is_bid else side.prices[0]
            stale = edge >= self.mid if is_bid else edge <= self.mid
            if stale and edge not in taken and len(side.prices) > 1:
                return edge, 0
        # Keep the depth bounded by trimming the far end.
        if len(side.prices) > spec.depth + spec.depth // 2:
            far = side.prices[0] if is_bid else side.prices[-1]
            if far not in taken:
                return far, 0
        if rng.randrange(_PPM) < spec.delete_ppm and len(side.prices) > spec.depth // 2:
            price = side.prices[rng.randrange(len(side.prices))]
            if price not in taken:
                return price, 0
        if spec.crossed_ppm and other.prices and rng.randrange(_PPM) < spec.crossed_ppm:
            best_other = other.prices[0] if is_bid else other.prices[-1]
            offset = rng.randrange(3)
            price = best_other + offset if is_bid else best_other - offset
        else:
            price = self.mid - self.distance() if is_bid else self.mid + self.distance()
            if other.prices:
                # Never place through the opposite best: the generator's book stays uncrossed.
                if is_bid and price >= other.prices[0]:
                    price = other.prices[0] - 1
                elif not is_bid and price <= other.prices[-1]:
                    price = other.prices[-1] + 1
        if price <= 0 or price in taken:
            return None
        return price, self.random_size()

    def level_changes(self, is_bid: bool, count: int) -> list[list[str]]:
        side = self.bids if is_bid else self.asks
        taken: set[int] = set()
        levels: list[list[str]] = []
        for _ in range(count):
            change = self.change_level(is_bid, taken)
            if change is None:
                continue
            price, size = change
            taken.add(price)
            side.set(price, size)
            levels.append([self.price(price), self.size(size)])
            self.counts["level_changes"] += 1
            if size == 0:
                self.counts["level_deletes"] += 1
        if not levels:
            # A frame always changes something: refresh the size of the best level.
            price = side.prices[-1] if is_bid else side.prices[0]
            size = self.random_size()
            side.set(price, size)
            levels.append([self.price(price), self.size(size)])
            self.counts["level_changes"] += 1
        return levels

    def maybe_move(self) -> None:
        if self.rng.randrange(_PPM) < self.spec.move_ppm:
            self.mid += self.rng.choice((-2, -1, -1, 1, 1, 2))

    def update_contents(self) -> dict[str, list[list[str]]]:
        self.maybe_move()
        is_bid = self.rng.randrange(2) == 0
        count = self.rng.choice((1, 1, 1, 1, 1, 1, 2, 2, 2, 3))
        return {"bids" if is_bid else "asks": self.level_changes(is_bid, count)}

    # -- frames --------------------------------------------------------------------------------

    def connected(self) -> bytes:
        self.counts["connected"] += 1
        return self.encode({"type": "connected", "connection_id": self.spec.connection_id, "message_id": 0})

    def subscribed(self) -> bytes:
        # The subscribe request increments the counter; the snapshot carries that value.
        self.message_id += 1
        self.snapshot_book()
        bids = [
            {"price": self.price(p), "size": self.size(self.bids.sizes[p])}
            for p in reversed(self.bids.prices)
        ]
        asks = [{"price": self.price(p), "size": self.size(self.asks.sizes[p])} for p in self.asks.prices]
        self.counts["subscribed"] += 1
        return self.encode(
            {
                "type": "subscribed",
                "connection_id": self.spec.connection_id,
                "message_id": self.message_id,
                "channel": "v4_orderbook",
                "id": self.spec.ticker,
                "contents": {"bids": bids, "asks": asks},
            }
        )

    def channel_frame(self, kind: str, channel: str, version: str, contents: object) -> bytes:
        self.message_id += 1
        return self.encode(
            {
                "type": kind,
                "connection_id": self.spec.connection_id,
                "message_id": self.message_id,
                "id": self.spec.ticker,
                "channel": channel,
                "version": version,
                "contents": contents,
            }
        )

    def book_update(self) -> bytes:
        self.counts["book_update"] += 1
        contents = self.update_contents()
        return self.channel_frame("channel_data", "v4_orderbook", "1.0.0", contents)

    def book_batch(self) -> bytes:
        self.counts["book_batch"] += 1
        # A 250 ms flush holds a handful of single-level updates (see the real batched capture).
        batch = []
        for _ in range(self.rng.randrange(2, 11)):
            self.maybe_move()
            is_bid = self.rng.randrange(2) == 0
            batch.append({"bids" if is_bid else "asks": self.level_changes(is_bid, 1)})
        return self.channel_frame("channel_batch_data", "v4_orderbook", "1.0.0", batch)

    def trades(self) -> bytes:
        self.counts["trades"] += 1
        self.clock_ms += self.rng.randrange(1, 2_000)
        seconds, millis = divmod(self.clock_ms, 1000)
        stamp = _iso_utc(seconds, millis)
        trades = []
        for _ in range(self.rng.randrange(1, 4)):
            self.trade_seq += 1
            is_buy = self.rng.randrange(2) == 0
            # Takers hit the opposite best; fall back to the mid if that side is empty.
            if is_buy:
                ticks = self.asks.prices[0] if self.asks.prices else self.mid
            else:
                ticks = self.bids.prices[-1] if self.bids.prices else self.mid
            trades.append(
                {
                    "id": f"{self.trade_seq:024x}",
                    "size": self.size(self.rng.randrange(1, 5_000)),
                    "price": self.price(ticks),
                    "side": "BUY" if is_buy else "SELL",
                    "createdAt": stamp,
                    "type": "LIMIT",
                }
            )
        return self.channel_frame("channel_data", "v4_trades", "2.1.0", {"trades": trades})

    def frames(self) -> Iterator[bytes]:
        yield self.connected()
        yield self.subscribed()
        spec = self.spec
        for _ in range(spec.updates):
            draw = self.rng.randrange(_PPM)
            if draw < spec.batch_ppm:
                yield self.book_batch()
            elif draw < spec.batch_ppm + spec.trades_ppm:
                yield self.trades()
            else:
                yield self.book_update()

    def expected(self) -> ExpectedBook:
        bid = self.bids.prices[-1] if self.bids.prices else None
        ask = self.asks.prices[0] if self.asks.prices else None
        return ExpectedBook(
            best_bid=None if bid is None else self.price(bid),
            best_bid_size=None if bid is None else self.size(self.bids.sizes[bid]),
            best_ask=None if ask is None else self.price(ask),
            best_ask_size=None if ask is None else self.size(self.asks.sizes[ask]),
            bid_levels=len(self.bids.prices),
            ask_levels=len(self.asks.prices),
            crossed=bid is not None and ask is not None and bid >= ask,
        )


def _iso_utc(seconds: int, millis: int) -> str:
    """``YYYY-MM-DDTHH:MM:SS.mmmZ`` from integer epoch seconds, as the indexer renders times."""
    days, rem = divmod(seconds, 86_400)
    hour, rem = divmod(rem, 3_600)
    minute, second = divmod(rem, 60)
    # Civil-from-days (proleptic Gregorian), integer only.
    z = days + 719_468
    era = z // 146_097
    doe = z - era * 146_097
    yoe = (doe - doe // 1_460 + doe // 36_524 - doe // 146_096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + 3 if mp < 10 else mp - 9
    year = yoe + era * 400 + (1 if month <= 2 else 0)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}.{millis:03d}Z"


def _digest(frames: Sequence[bytes]) -> str:
    hasher = hashlib.sha256()
    for frame in frames:
        hasher.update(frame)
        hasher.update(b"\n")
    return hasher.hexdigest()


def generate(spec: StreamSpec) -> GeneratedStream:
    """Generate a stream in memory.

    Args:
        spec: What to generate.

    Returns:
        The frames, the book they imply at the end, and per-kind counts.
    """
    gen = _Generator(spec)
    frames = list(gen.frames())
    return GeneratedStream(
        spec=spec,
        frames=frames,
        expected=gen.expected(),
        counts=dict(gen.counts),
        sha256=_digest(frames),
    )


def stream_path(spec: StreamSpec, out_dir: Path = DEFAULT_OUT_DIR) -> Path:
    """The cache file of a spec: ``<out_dir>/stream-<key>.jsonl`` (meta beside it as ``.meta.json``)."""
    return out_dir / f"stream-{spec.key()}.jsonl"


def _meta_path(path: Path) -> Path:
    return path.with_suffix(".meta.json")


def load_frames(path: Path) -> list[bytes]:
    """Read a cached stream: one frame per line.

    Args:
        path: A file written by :func:`load_or_generate`.

    Returns:
        The frames, byte-identical to the generated ones.
    """
    data = path.read_bytes()
    if not data:
        return []
    return data.removesuffix(b"\n").split(b"\n")


def read_stream_meta(path: Path) -> dict[str, object]:
    """The metadata written beside a cached stream (spec, counts, expected book, sha256)."""
    meta: dict[str, object] = json.loads(_meta_path(path).read_text())
    return meta


def load_or_generate(spec: StreamSpec, out_dir: Path = DEFAULT_OUT_DIR) -> GeneratedStream:
    """Read the spec's stream from the cache, generating and writing it first if absent.

    The cache is checked against the digest in its metadata; a damaged file is regenerated.

    Args:
        spec: What to generate.
        out_dir: The cache directory (created if needed).

    Returns:
        The stream, with ``path`` set to the cache file.
    """
    path = stream_path(spec, out_dir)
    meta_file = _meta_path(path)
    if path.is_file() and meta_file.is_file():
        meta = json.loads(meta_file.read_text())
        frames = load_frames(path)
        if meta.get("sha256") == _digest(frames) and meta.get("spec") == asdict(spec):
            return GeneratedStream(
                spec=spec,
                frames=frames,
                expected=ExpectedBook(**meta["expected"]),
                counts={str(k): int(v) for k, v in meta["counts"].items()},
                sha256=str(meta["sha256"]),
                path=path,
            )
    stream = generate(spec)
    out_dir.mkdir(parents=True, exist_ok=True)
    # Write then rename, so that a concurrent reader never sees half a file.
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with tmp.open("wb") as fh:
        for frame in stream.frames:
            fh.write(frame)
            fh.write(b"\n")
    os.replace(tmp, path)
    meta_out = {
        "spec": asdict(spec),
        "counts": stream.counts,
        "expected": asdict(stream.expected),
        "sha256": stream.sha256,
        "frames": len(stream.frames),
    }
    tmp_meta = meta_file.with_suffix(f".tmp{os.getpid()}")
    tmp_meta.write_text(json.dumps(meta_out, indent=2, sort_keys=True))
    os.replace(tmp_meta, meta_file)
    return GeneratedStream(
        spec=spec,
        frames=stream.frames,
        expected=stream.expected,
        counts=stream.counts,
        sha256=stream.sha256,
        path=path,
    )
