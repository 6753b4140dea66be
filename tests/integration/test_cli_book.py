"""``nautilus-dydx book`` and ``nautilus-dydx demo`` run in-process over real sockets (embedded emulator)."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import signal
import threading
from decimal import Decimal

import pytest

from nautilus_dydx.cli import _view, build_parser, main
from nautilus_dydx.core.errors import ConfigError
from nautilus_dydx.emulator.app import Emulator

DECIMAL = re.compile(r"^\d+(\.\d+)?$")


def _records(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _check_json_stream(records: list[dict[str, object]], ticker: str) -> None:
    """Replays the JSON events into a naive book and checks every quote against it."""
    types = {r["type"] for r in records}
    assert types <= {
        "book_snapshot",
        "book_deltas",
        "book_repair",
        "book_resync",
        "quote",
        "trades",
        "oracle_price",
        "funding_rate",
        "stream_status",
    }
    book_records = [r for r in records if str(r["type"]).startswith("book_") or r["type"] == "quote"]
    assert book_records
    assert book_records[0]["type"] == "book_snapshot"
    assert all(r.get("ticker", ticker) == ticker for r in records)
    sides: dict[str, dict[Decimal, Decimal]] = {"bid": {}, "ask": {}}
    quotes = 0
    for r in book_records:
        if r["type"] == "book_snapshot":
            sides = {"bid": {}, "ask": {}}
            for key, name in (("bids", "bid"), ("asks", "ask")):
                for price, size in r[key]:  # type: ignore[attr-defined]
                    assert DECIMAL.match(price)
                    assert DECIMAL.match(size)
                    sides[name][Decimal(price)] = Decimal(size)
        elif r["type"] in ("book_deltas", "book_repair"):
            for change in r["changes"]:  # type: ignore[attr-defined]
                assert DECIMAL.match(change["price"])
                assert DECIMAL.match(change["size"])
                price, size = Decimal(change["price"]), Decimal(change["size"])
                if size == 0:
                    sides[change["side"]].pop(price, None)
                else:
                    sides[change["side"]][price] = size
        elif r["type"] == "quote":
            quotes += 1
            bid, ask = r["bid_price"], r["ask_price"]
            assert (Decimal(bid) if bid else None) == (max(sides["bid"]) if sides["bid"] else None)  # type: ignore[arg-type]
            assert (Decimal(ask) if ask else None) == (min(sides["ask"]) if sides["ask"] else None)  # type: ignore[arg-type]
            if bid is not None and ask is not None:
                assert Decimal(bid) < Decimal(ask)  # type: ignore[arg-type]
    assert quotes >= 1


def test_book_json_lines_replay_into_a_consistent_book(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["book", "BTC-USD", "--json", "--seconds", "2"]) == 0
    out, err = capsys.readouterr()
    records = _records(out)
    _check_json_stream(records, "BTC-USD")
    snapshot = next(r for r in records if r["type"] == "book_snapshot")
    assert snapshot["bids"]
    assert snapshot["asks"]
    assert isinstance(snapshot["checksum"], int)
    assert any(r["type"] == "oracle_price" and DECIMAL.match(str(r["price"])) for r in records)
    assert "Traceback" not in err


def test_book_view_renders_plain_frames_off_a_tty(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["book", "ETH-USD", "--seconds", "1", "--depth", "3", "--refresh", "0.1"]) == 0
    out, _ = capsys.readouterr()
    assert "\x1b" not in out  # no ANSI when stdout is not a terminal
    frame = out.split("nautilus-dydx book ETH-USD on ")[-1]  # the last frame
    for needle in (
        "ETH-USD",
        "synced",
        "checksum",
        "spread",
        "mid",
        "oracle",
        "msgs/s",
        "age",
        "resyncs 0",
        "repairs",
        "recent trades",
        "embedded emulator",
        "--network testnet",
    ):
        assert needle in out, needle
    rows = [
        line
        for line in frame.splitlines()
        if re.match(r"^\s*[\d.]+\s+[\d.]+\s+\|\s+[\d.]+\s+[\d.]+\s*$", line)
    ]
    assert 1 <= len(rows) <= 3
    for row in rows:
        _, bid, _, ask, _ = row.split()
        assert Decimal(bid) < Decimal(ask)


def test_demo_shows_both_markets_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seconds", "1.5"]) == 0
    out, err = capsys.readouterr()
    assert "embedded dYdX v4 emulator" in out
    assert "--network testnet" in out
    assert "BTC-USD" in out
    assert "ETH-USD" in out
    assert out.count("recent trades") >= 2
    assert "Traceback" not in err


def test_demo_other_markets(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--seconds", "1", "--markets", "sol-usd"]) == 0
    out, _ = capsys.readouterr()
    assert re.search(r"^SOL-USD +synced", out, re.MULTILINE)
    assert not re.search(r"^BTC-USD ", out, re.MULTILINE)


@pytest.mark.parametrize(
    "argv",
    [["book", "NOPE-USD", "--seconds", "5"], ["demo", "--markets", "BTC-USD,NOPE-USD", "--seconds", "5"]],
)
def test_unknown_ticker_is_one_clear_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 1
    _out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "unknown market 'NOPE-USD'" in lines[0]
    assert "BTC-USD" in lines[0]
    assert lines[0].startswith(f"nautilus-dydx {argv[0]}: error:")


def test_unreachable_venue_is_one_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port that nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    assert main(["book", "BTC-USD", "--indexer-url", f"http://127.0.0.1:{port}", "--seconds", "5"]) == 1
    _, err = capsys.readouterr()
    assert len(err.strip().splitlines()) == 1, err
    assert "error: connect" in err
    assert "Traceback" not in err


async def test_explicit_urls_use_that_indexer(capsys: pytest.CaptureFixture[str]) -> None:
    async with Emulator(port=0, block_time=0.05, markets=["BTC-USD"]) as emu:
        for _ in range(20):
            emu.produce_block()
        argv = [
            "book",
            "BTC-USD",
            "--json",
            "--seconds",
            "1",
            "--indexer-url",
            emu.indexer_url,
            "--ws-url",
            emu.ws_url,
        ]
        # main() runs its own event loop: give it a thread while this loop serves the emulator.
        code = await asyncio.to_thread(main, argv)
    assert code == 0
    out, _ = capsys.readouterr()
    _check_json_stream(_records(out), "BTC-USD")


def test_sigint_stops_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        code = main(["book", "BTC-USD", "--seconds", "30", "--refresh", "0.2"])
    finally:
        timer.cancel()
    assert code == 0
    out, err = capsys.readouterr()
    assert "BTC-USD" in out
    assert "spread" in out
    assert "Traceback" not in err


def test_network_option_parsing() -> None:
    parser = build_parser()
    args = parser.parse_args(["book", "BTC-USD"])
    assert _view.wants_embedded(args)
    assert args.depth == 10
    assert args.refresh == 0.25
    assert not args.json
    args = parser.parse_args(["book", "BTC-USD", "--network", "testnet"])
    assert not _view.wants_embedded(args)
    assert _view.config_from_args(args).indexer_ws_url == "wss://indexer.v4testnet.dydx.exchange/v4/ws"
    args = parser.parse_args(["book", "BTC-USD", "--network", "mainnet"])
    assert _view.config_from_args(args).indexer_http_url == "https://indexer.dydx.trade"
    args = parser.parse_args(["book", "BTC-USD", "--network", "local"])
    assert _view.config_from_args(args).indexer_http_url == "http://127.0.0.1:3002"
    args = parser.parse_args(["book", "BTC-USD", "--indexer-url", "http://127.0.0.1:4000"])
    config = _view.config_from_args(args)
    assert config.indexer_ws_url == "ws://127.0.0.1:4000/v4/ws"
    args = parser.parse_args(["book", "BTC-USD", "--ws-url", "ws://127.0.0.1:4000/v4/ws"])
    with pytest.raises(ConfigError, match="--indexer-url"):
        _view.config_from_args(args)
    for bad in (["--network", "devnet"], ["--depth", "0"], ["--seconds", "-1"], ["--refresh", "0"]):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["book", "BTC-USD", *bad])
        assert exc.value.code == 2


def test_option_type_errors_name_the_bad_value(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    for bad, message in (
        (["--depth", "x"], "argument --depth: not an integer: 'x'"),
        (["--depth", "101"], "argument --depth: must be in [1, 100]; got 101"),
        (["--seconds", "soon"], "argument --seconds: not a number: 'soon'"),
    ):
        with pytest.raises(SystemExit) as exc:
            parser.parse_args(["book", "BTC-USD", *bad])
        assert exc.value.code == 2
        assert capsys.readouterr().err.splitlines()[-1] == f"nautilus-dydx book: error: {message}"


def test_ws_url_without_indexer_url_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["book", "BTC-USD", "--ws-url", "ws://127.0.0.1:1/v4/ws"]) == 1
    assert "needs --indexer-url" in capsys.readouterr().err


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_screen_draws_in_place_on_a_tty(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    out = _Tty()
    screen = _view.Screen(out)
    screen.draw(["a", "b"], 0.0)
    screen.draw(["c"], 0.1, final=True)
    text = out.getvalue()
    assert text.startswith("\x1b[?25l\x1b[2J\x1b[H")
    assert text.count("\x1b[H") == 2
    assert text.endswith("\x1b[J\x1b[?25h")
    assert not screen.style.color


def test_plain_screen_throttles_frames() -> None:
    out = io.StringIO()
    screen = _view.Screen(out, plain_interval=1.0)
    screen.draw(["one"], 0.0)
    screen.draw(["two"], 0.5)
    screen.draw(["three"], 0.6, final=True)
    assert out.getvalue() == "one\n\nthree\n\n"


def test_side_by_side_and_decimal_alignment() -> None:
    assert _view._align(["1810.4", "1811", "1809.25"]) == ["1810.4 ", "1811   ", "1809.25"]
    assert _view.side_by_side([["ab", "c"], ["x"]], gap=" | ") == ["ab | x", "c  |"]
    assert _view.side_by_side([["ab"], ["x"]], gap=" | ", width=3) == ["ab", "", "x"]
