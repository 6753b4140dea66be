"""``nautilus-dydx emulator`` errors: a bad option value is a usage error (exit 2) found before
anything is bound; a failure to start is one line on stderr and exit 1, stdout left to the ready line.
"""

from __future__ import annotations

import argparse
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from nautilus_dydx.emulator.cli import add_arguments


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="nautilus-dydx emulator")
    add_arguments(parser)
    return parser.parse_args(argv)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "argument --port: must be a port number in [0, 65535]; got 70000"),
        (["--port", "-1"], "argument --port: must be a port number in [0, 65535]; got -1"),
        (["--port", "http"], "argument --port: not an integer: 'http'"),
        (["--grpc-port", "65536"], "argument --grpc-port: must be a port number in [0, 65535]; got 65536"),
        (["--block-time", "0"], "argument --block-time: must be > 0; got 0"),
        (["--block-time", "nan"], "argument --block-time: not a finite number: 'nan'"),
        (["--flow-interval", "-0.5"], "argument --flow-interval: must be >= 0; got -0.5"),
        (["--flow-interval", "inf"], "argument --flow-interval: not a finite number: 'inf'"),
        (["--checksum-history", "0"], "argument --checksum-history: must be >= 1; got 0"),
        (
            ["--min-gas-prices", "0.025"],
            "argument --min-gas-prices: invalid decimal coin expression: '0.025'",
        ),
        (["--min-gas-prices", "1uusdc,2uusdc"], "argument --min-gas-prices: duplicate denomination uusdc"),
    ],
)
def test_a_value_out_of_range_is_a_usage_error(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    with pytest.raises(SystemExit) as exc:
        parse(*argv)
    assert exc.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == f"nautilus-dydx emulator: error: {message}"


def test_the_limits_themselves_are_accepted() -> None:
    args = parse("--port", "65535", "--grpc-port", "0", "--flow-interval", "0", "--checksum-history", "1")
    assert (args.port, args.grpc_port, args.flow_interval, args.checksum_history) == (65535, 0, 0.0, 1)
    args = parse("--port", "0", "--block-time", "0.01")
    assert (args.port, args.block_time) == (0, 0.01)
    args = parse()
    assert (args.port, args.grpc_port, args.block_time, args.flow_interval) == (3002, None, 0.5, 0.1)
    assert args.checksum_history == 4096
    assert args.min_gas_prices is None  # the emulator's default: the venue's prices
    assert parse("--min-gas-prices", "").min_gas_prices == ""
    assert parse("--min-gas-prices", " 1.5uusdc ").min_gas_prices == " 1.5uusdc "


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port of 127.0.0.1 on which something else listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def emulator(*options: str) -> subprocess.CompletedProcess[str]:
    command = "import sys; from nautilus_dydx.cli import main; sys.exit(main())"  # the installed script
    return subprocess.run(
        [sys.executable, "-c", command, "emulator", "--no-synthetic", *options],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_indexer_port_in_use_is_one_line_on_stderr_and_exit_1(busy_port: int) -> None:
    done = emulator("--port", str(busy_port), "--grpc-port", "0")
    assert done.returncode == 1
    assert done.stdout == ""  # a script reading the ready line reads nothing, not the error
    [line] = done.stderr.splitlines()
    assert line.startswith("nautilus-dydx emulator: error: ")
    assert str(busy_port) in line


def test_grpc_port_in_use_is_reported_on_stderr_with_exit_1(busy_port: int) -> None:
    done = emulator("--port", "0", "--grpc-port", str(busy_port))
    assert done.returncode == 1
    assert done.stdout == ""
    # grpc's C core may log its own line first; ours is the last.
    last = done.stderr.splitlines()[-1]
    assert last.startswith("nautilus-dydx emulator: error: cannot bind the gRPC server")
    assert str(busy_port) in last


def test_unknown_market_is_one_line_on_stderr_and_exit_1() -> None:
    done = emulator("--port", "0", "--markets", "BTC-USD,NOPE-USD")
    assert done.returncode == 1
    assert done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("nautilus-dydx emulator: error: ")
    assert "NOPE-USD" in line


def test_port_out_of_range_on_the_command_line_exits_2_without_a_traceback() -> None:
    done = emulator("--port", "70000")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.splitlines()[-1] == (
        "nautilus-dydx emulator: error: argument --port: must be a port number in [0, 65535]; got 70000"
    )
