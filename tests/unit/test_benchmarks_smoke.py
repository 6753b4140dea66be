"""Smoke tests of the benchmark harness: the stream generator, the floor path, the report helpers.

No timing is asserted anywhere: the benchmarks measure, the tests only check that what is measured
is the right thing (valid, wire-exact frames; a book that stays uncrossed; paths that agree).
"""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[2]
# The benchmarks package lives beside src/ and is not installed; make it importable from pytest.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks._util import Timing, format_bytes, markdown_table, time_repeated  # noqa: E402
from benchmarks.book_pipeline import (  # noqa: E402
    LADDER_STAGES,
    OursUnavailable,
    _ratio,
    check_book,
    run_floor,
    run_ladder,
    run_ours,
    run_untyped,
)
from benchmarks.streamgen import (  # noqa: E402
    ExpectedBook,
    StreamSpec,
    format_scaled,
    generate,
    load_frames,
    load_or_generate,
    stream_path,
)

SMALL = StreamSpec(updates=400, seed=7)
MIXED = StreamSpec(updates=400, seed=11, batch_ppm=100_000, trades_ppm=100_000)


def _compact(obj: object) -> bytes:
    """What ``JSON.stringify`` writes for ``obj`` (no spaces, insertion order)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


class _NaiveBook:
    """Reference book with Decimal keys: the simplest thing that can be right."""

    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}

    def snapshot(self, contents: dict[str, Any]) -> None:
        self.bids = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in contents["bids"]}
        self.asks = {Decimal(lv["price"]): Decimal(lv["size"]) for lv in contents["asks"]}

    def update(self, contents: dict[str, Any]) -> None:
        for key, side in (("bids", self.bids), ("asks", self.asks)):
            for price, size in contents.get(key, []):
                if Decimal(size) == 0:
                    side.pop(Decimal(price), None)
                else:
                    side[Decimal(price)] = Decimal(size)

    def crossed(self) -> bool:
        return bool(self.bids and self.asks and max(self.bids) >= min(self.asks))


def _replay(frames: list[bytes], on_book_frame: Any = None) -> _NaiveBook:
    book = _NaiveBook()
    for raw in frames:
        msg = json.loads(raw)
        if msg.get("channel") != "v4_orderbook":
            continue
        if msg["type"] == "subscribed":
            book.snapshot(msg["contents"])
        elif msg["type"] == "channel_data":
            book.update(msg["contents"])
        elif msg["type"] == "channel_batch_data":
            for contents in msg["contents"]:
                book.update(contents)
        if on_book_frame is not None:
            on_book_frame(book)
    return book


# -- generator -----------------------------------------------------------------------------------


def test_generator_is_deterministic_and_seeded() -> None:
    first = generate(MIXED)
    second = generate(MIXED)
    assert first.frames == second.frames
    assert first.sha256 == second.sha256
    assert first.expected == second.expected
    other = generate(StreamSpec(updates=400, seed=12, batch_ppm=100_000, trades_ppm=100_000))
    assert other.frames[2:] != first.frames[2:]


def test_connected_and_snapshot_frames_are_wire_exact() -> None:
    stream = generate(SMALL)
    connected = json.loads(stream.frames[0])
    assert list(connected) == ["type", "connection_id", "message_id"]
    assert connected["type"] == "connected"
    assert connected["message_id"] == 0
    assert stream.frames[0] == _compact(connected)

    snap = json.loads(stream.frames[1])
    assert list(snap) == ["type", "connection_id", "message_id", "channel", "id", "contents"]
    assert (snap["type"], snap["channel"], snap["id"], snap["message_id"]) == (
        "subscribed",
        "v4_orderbook",
        "BTC-USD",
        1,
    )
    assert stream.frames[1] == _compact(snap)
    bids, asks = snap["contents"]["bids"], snap["contents"]["asks"]
    assert len(bids) == len(asks) == SMALL.depth
    assert all(list(level) == ["price", "size"] for level in bids + asks)
    bid_prices = [Decimal(level["price"]) for level in bids]
    ask_prices = [Decimal(level["price"]) for level in asks]
    assert bid_prices == sorted(bid_prices, reverse=True)
    assert ask_prices == sorted(ask_prices)
    assert bid_prices[0] < ask_prices[0]


def test_update_frames_have_the_channel_data_shape() -> None:
    stream = generate(SMALL)
    connection_id = json.loads(stream.frames[0])["connection_id"]
    previous_id = 1
    levels = deletes = 0
    for raw in stream.frames[2:]:
        msg = json.loads(raw)
        assert raw == _compact(msg), "not byte-exact compact JSON in wire key order"
        assert list(msg) == ["type", "connection_id", "message_id", "id", "channel", "version", "contents"]
        assert msg["type"] == "channel_data"
        assert msg["channel"] == "v4_orderbook"
        assert msg["version"] == "1.0.0"
        assert msg["connection_id"] == connection_id
        assert msg["message_id"] == previous_id + 1
        previous_id = msg["message_id"]
        (side,) = msg["contents"]  # one side per update message
        assert side in ("bids", "asks")
        entries = msg["contents"][side]
        assert 1 <= len(entries) <= 3
        assert len({price for price, _size in entries}) == len(entries)
        for price, size in entries:
            assert isinstance(price, str)
            assert isinstance(size, str)
            # Canonical human numbers at the market's precision: tick 1, step 0.0001.
            assert Decimal(price) == Decimal(price).to_integral_value()
            assert "." not in price
            assert format(Decimal(size).normalize(), "f") == size
            assert Decimal(size).as_tuple().exponent >= -4  # type: ignore[operator]
            levels += 1
            deletes += size == "0"
    # About 15% deletes; wide bounds on a few hundred frames, but a generator without deletes fails.
    assert 0.05 * levels < deletes < 0.30 * levels


def test_batch_and_trade_frames_have_their_shapes() -> None:
    stream = generate(MIXED)
    kinds = {"batch": 0, "trades": 0}
    for raw in stream.frames[2:]:
        msg = json.loads(raw)
        assert raw == _compact(msg)
        if msg["type"] == "channel_batch_data":
            kinds["batch"] += 1
            assert msg["channel"] == "v4_orderbook"
            assert msg["version"] == "1.0.0"
            assert isinstance(msg["contents"], list)
            assert len(msg["contents"]) >= 2
            for contents in msg["contents"]:
                (side,) = contents
                assert side in ("bids", "asks")
                assert len(contents[side]) == 1
        elif msg["channel"] == "v4_trades":
            kinds["trades"] += 1
            assert msg["type"] == "channel_data"
            assert msg["version"] == "2.1.0"
            for trade in msg["contents"]["trades"]:
                assert list(trade) == ["id", "size", "price", "side", "createdAt", "type"]
                assert len(trade["id"]) == 24
                assert trade["side"] in ("BUY", "SELL")
                assert trade["createdAt"].endswith("Z")
                assert len(trade["createdAt"]) == 24
    assert kinds["batch"] == stream.counts["book_batch"] > 0
    assert kinds["trades"] == stream.counts["trades"] > 0


@pytest.mark.parametrize("spec", [SMALL, MIXED], ids=["updates", "mixed"])
def test_implied_book_is_never_crossed_and_matches_expected(spec: StreamSpec) -> None:
    stream = generate(spec)

    def check(book: _NaiveBook) -> None:
        assert not book.crossed()
        assert book.bids
        assert book.asks

    book = _replay(stream.frames, check)
    expected = stream.expected
    assert not expected.crossed
    best_bid, best_ask = max(book.bids), min(book.asks)
    assert Decimal(expected.best_bid or "nan") == best_bid
    assert Decimal(expected.best_ask or "nan") == best_ask
    assert Decimal(expected.best_bid_size or "nan") == book.bids[best_bid]
    assert Decimal(expected.best_ask_size or "nan") == book.asks[best_ask]
    assert (expected.bid_levels, expected.ask_levels) == (len(book.bids), len(book.asks))


def test_crossing_happens_only_when_asked() -> None:
    stream = generate(StreamSpec(updates=400, seed=7, crossed_ppm=200_000))
    seen: list[bool] = []
    _replay(stream.frames, lambda book: seen.append(book.crossed()))
    assert any(seen)


def test_snapshot_and_updates_match_the_real_captures(shared_fixtures: Path) -> None:
    ws = shared_fixtures / "dydx-real" / "python-legacy" / "ws"
    real_update = json.loads((ws / "v4_orderbook.json").read_text())
    real_snapshot = json.loads((ws / "v4_orderbook_snapshot.json").read_text())
    real_batch = json.loads((ws / "v4_orderbook_batched_data.json").read_text())
    real_trades = json.loads((ws / "v4_trades.json").read_text())
    stream = generate(MIXED)
    ours = [json.loads(raw) for raw in stream.frames]
    update = next(m for m in ours if m["type"] == "channel_data" and m["channel"] == "v4_orderbook")
    batch = next(m for m in ours if m["type"] == "channel_batch_data")
    trades = next(m for m in ours if m.get("channel") == "v4_trades")
    # The captures were re-serialized with sorted keys, so compare key sets, then value shapes.
    assert set(update) == set(real_update)
    assert set(batch) == set(real_batch)
    assert set(ours[1]) == set(real_snapshot)
    assert set(trades) == set(real_trades)
    assert set(trades["contents"]["trades"][0]) == set(real_trades["contents"]["trades"][0])
    assert set(ours[1]["contents"]["bids"][0]) == set(real_snapshot["contents"]["asks"][0])
    assert update["version"] == real_update["version"]
    real_level = next(iter(real_update["contents"].values()))[0]
    level = next(iter(update["contents"].values()))[0]
    assert [type(x) for x in level] == [type(x) for x in real_level] == [str, str]


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=0, max_value=10**15), st.integers(min_value=-9, max_value=3))
def test_format_scaled_is_the_canonical_decimal(units: int, exponent: int) -> None:
    text = format_scaled(units, exponent)
    value = Decimal(units).scaleb(exponent)
    assert Decimal(text) == value
    canonical = "0" if value == 0 else format(value.normalize(), "f")
    assert text == canonical


def test_spec_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        StreamSpec(tick_size="0.25")
    with pytest.raises(ValueError):
        StreamSpec(batch_ppm=600_000, trades_ppm=600_000)
    with pytest.raises(ValueError):
        StreamSpec(depth=1)


# -- cache ---------------------------------------------------------------------------------------


def test_cache_round_trip_and_repair(tmp_path: Path) -> None:
    written = load_or_generate(SMALL, tmp_path)
    assert written.path == stream_path(SMALL, tmp_path)
    assert written.path.is_file()
    assert load_frames(written.path) == written.frames
    read = load_or_generate(SMALL, tmp_path)
    assert read.frames == written.frames
    assert read.expected == written.expected
    # A damaged cache is detected by its digest and regenerated, not trusted.
    written.path.write_bytes(b'{"type":"connected"}\n')
    repaired = load_or_generate(SMALL, tmp_path)
    assert repaired.frames == written.frames


# -- paths and report ----------------------------------------------------------------------------


def test_floor_path_decodes_every_frame() -> None:
    stream = generate(MIXED)
    summary = run_floor(stream.frames)
    assert summary["last_message_id"] == json.loads(stream.frames[-1])["message_id"]
    with pytest.raises(Exception):  # noqa: B017 - any decode error will do: the floor must not skip frames
        run_floor([*stream.frames, b"not json"])


def test_untyped_decode_reads_every_frame() -> None:
    stream = generate(MIXED)
    assert (
        run_untyped(stream.frames) == run_floor(stream.frames) == {"last_message_id": len(stream.frames) - 1}
    )


def test_ours_agrees_with_the_generator_when_available() -> None:
    stream = generate(MIXED)
    try:
        summary = run_ours(stream.frames)
    except OursUnavailable as exc:
        pytest.skip(f"our pipeline is not importable yet: {exc}")
    assert check_book(summary["final"], stream.expected) == "match"
    assert summary["book_frames"] == 1 + stream.counts["book_update"] + stream.counts["book_batch"]
    assert summary["quotes"] >= 1


@pytest.mark.parametrize("stage", LADDER_STAGES)
@pytest.mark.parametrize("spec", [SMALL, StreamSpec(updates=400, seed=3, tick_size="0.1", step_size="0.001")])
def test_every_ladder_rung_keeps_the_right_book(stage: str, spec: StreamSpec) -> None:
    # The rungs are bounds, not pipelines, but each must still do the work: its final book is
    # the generator's, and every rung past "store" hands one event per update to its handler.
    stream = generate(spec)
    summary = run_ladder(stream.frames, stage, spec.tick_size, spec.step_size)
    assert check_book(summary["final"], stream.expected) == "match"
    assert summary["events"] == (0 if stage == "store" else stream.counts["book_update"])


def test_ladder_keys_rung_rejects_what_the_book_rejects() -> None:
    stream = generate(SMALL)
    update = stream.frames[2]
    assert b'"0"]]' in update
    for size in (b"0.00001", b"1e3", b"-1", b" 1"):  # 5 decimals at a 0.0001 step; not decimals
        bad = update.replace(b'"0"]]', b'"' + size + b'"]]')
        with pytest.raises(ValueError, match="invalid size"):
            run_ladder([*stream.frames[:2], bad], "keys", SMALL.tick_size, SMALL.step_size)
    with pytest.raises(ValueError, match="unknown ladder stage"):
        run_ladder(stream.frames, "sorted")


def test_check_book_spots_a_wrong_final_book() -> None:
    expected = ExpectedBook("65000", "1.5", "65001", "0.25", 100, 100, crossed=False)
    good = {
        "best_bid": "65000",
        "best_bid_size": "1.5",
        "best_ask": "65001",
        "best_ask_size": "0.25",
        "bid_levels": 100,
        "ask_levels": 100,
    }
    assert check_book(good, expected) == "match"
    assert check_book({**good, "best_ask_size": "0.3"}, expected).startswith("MISMATCH: best_ask_size")
    assert check_book({**good, "bid_levels": 99}, expected).startswith("MISMATCH: bid_levels")


def test_report_helpers() -> None:
    timing, last = time_repeated(lambda: lambda: 42, frames=10, repeat=3, warmup=0)
    assert last == 42
    assert len(timing.times_ns) == 3
    fixed = Timing(frames=1_000, times_ns=(2_000_000, 1_000_000, 4_000_000))
    assert (fixed.best_fps, fixed.median_fps) == (1_000_000, 500_000)
    assert Timing.from_dict(fixed.to_dict()) == fixed
    assert _ratio(400, 100) == "4.00"
    assert _ratio(1, 3) == "0.33"
    assert _ratio(1, 0) == "-"
    assert format_bytes(512) == "512 B"
    assert format_bytes(1536) == "1.5 KiB"
    table = markdown_table(["path", "fps"], [["floor", "1,000"], ["ours", "10"]]).splitlines()
    assert table[0] == "| path  |   fps |"
    assert table[1] == "|-------|------:|"
    assert table[3] == "| ours  |    10 |"
