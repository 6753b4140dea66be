"""``nautilus-dydx emulator``: run the local dYdX v4 emulator until Ctrl-C (SIGINT) or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import math
import signal
import sys
import tempfile
from pathlib import Path

__all__ = ["add_arguments", "run"]


# Option types: a bad value is a usage error (argparse prints it under the usage line, exit 2)
# before anything is bound; what only fails at run time (a port in use) is run()'s error, exit 1.


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number: {text!r}")
    return value


def _port(text: str) -> int:
    value = _integer(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be a port number in [0, 65535]; got {text}")
    return value


def _positive(text: str) -> float:
    value = _number(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0; got {text}")
    return value


def _non_negative(text: str) -> float:
    value = _number(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0; got {text}")
    return value


def _at_least_one(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1; got {text}")
    return value


def _gas_prices(text: str) -> str:
    # Imported here, as in _serve: parsing an option must not load the emulator for other commands.
    from nautilus_dydx.emulator.validator.tx import parse_min_gas_prices

    try:
        parse_min_gas_prices(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the emulator's options on ``parser``."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=_port, default=3002, help="indexer REST + WS port (default 3002)")
    parser.add_argument(
        "--grpc-port",
        type=_port,
        default=None,
        help="validator gRPC port (default 9090; a free port when --port is 0)",
    )
    parser.add_argument(
        "--grpc-tls",
        action="store_true",
        help="serve gRPC over TLS with a self-signed certificate for localhost/127.0.0.1",
    )
    parser.add_argument(
        "--grpc-cert-out",
        default=None,
        help="with --grpc-tls: where to write the certificate PEM (default: a file in the temp directory)",
    )
    parser.add_argument("--block-time", type=_positive, default=0.5, help="seconds per block (default 0.5)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the oracle walk and synthetic traders")
    parser.add_argument("--markets", default=None, help="comma-separated tickers, e.g. BTC-USD,ETH-USD")
    parser.add_argument(
        "--flow-interval",
        type=_non_negative,
        default=0.1,
        help="seconds between the synthetic makers' between-blocks re-quotes (default 0.1; 0 disables)",
    )
    parser.add_argument("--no-synthetic", action="store_true", help="do not run synthetic traders")
    parser.add_argument("--no-rate-limit", action="store_true", help="disable the REST rate limit")
    parser.add_argument(
        "--checksum-history",
        type=_at_least_one,
        default=4096,
        help="book messages per connection and ticker whose checksum the control API keeps (default 4096)",
    )
    parser.add_argument(
        "--min-gas-prices",
        type=_gas_prices,
        default=None,
        help=(
            "the validator's minimum gas prices, as a node's minimum-gas-prices: comma-separated "
            "<price per gas><denom> (default: the venue's 0.025 USDC and 25000000000adv4tnt; '' for none)"
        ),
    )
    parser.add_argument("--log-level", default="WARNING", help="logging level (default WARNING)")


def _grpc_port(args: argparse.Namespace) -> int:
    """The explicit ``--grpc-port``, else 9090 (a local node's port), else 0 when ``--port`` is 0: a
    caller asking for free ports gets them for both servers."""
    if args.grpc_port is not None:
        return int(args.grpc_port)
    return 0 if args.port == 0 else 9090


async def _serve(args: argparse.Namespace) -> None:
    markets = [t.strip() for t in args.markets.split(",") if t.strip()] if args.markets else None
    # Imported here so that `nautilus-dydx --help` and the other commands never load the emulator.
    from nautilus_dydx.emulator.app import Emulator
    from nautilus_dydx.emulator.validator.tx import DEFAULT_MIN_GAS_PRICES

    emulator = Emulator(
        host=args.host,
        port=args.port,
        grpc_port=_grpc_port(args),
        grpc_tls=args.grpc_tls,
        block_time=args.block_time,
        seed=args.seed,
        markets=markets,
        synthetic=not args.no_synthetic,
        rate_limit=None if args.no_rate_limit else (100, 10.0),
        checksum_history=args.checksum_history,
        flow_interval=args.flow_interval,
        min_gas_prices=DEFAULT_MIN_GAS_PRICES if args.min_gas_prices is None else args.min_gas_prices,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with emulator:
        grpc = str(emulator.grpc_target)
        pem = emulator.grpc_certificate_pem
        if pem is not None:
            default = Path(tempfile.gettempdir()) / f"nautilus-dydx-emulator-{emulator.validator.port}.pem"
            cert_path = Path(args.grpc_cert_out) if args.grpc_cert_out else default
            cert_path.write_bytes(pem)
            grpc += f" (tls, certificate {cert_path})"
        print(
            f"dYdX v4 emulator ready: indexer {emulator.indexer_url} ws {emulator.ws_url} grpc {grpc} "
            f"control {emulator.indexer_url}/emulator/state",
            flush=True,
        )
        await stop.wait()


def run(args: argparse.Namespace) -> int:
    """Run the emulator until SIGINT/SIGTERM: 0 then, 1 when it cannot start (a port in use, an
    unknown market), with one line on stderr; stdout carries only the ready line."""
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING))
    try:
        asyncio.run(_serve(args))
    except KeyboardInterrupt:
        pass
    except (ValueError, OSError) as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        print(f"nautilus-dydx emulator: error: {text}", file=sys.stderr)
        return 1
    return 0
