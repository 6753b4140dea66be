"""The ``nautilus-dydx`` command line.

Each subcommand lives in its own module (``nautilus_dydx.cli.book``, ``.demo``; the emulator's in
``nautilus_dydx.emulator.cli``) and exposes ``add_arguments(parser)`` and ``run(args) -> int``;
this module only wires them together.

What is imported when: importing this module loads the ``nautilus_dydx`` package (its ``__init__``
brings the client layers, hence aiohttp and msgspec). :func:`build_parser` then imports every
subcommand module, because each declares its own arguments. Those modules import only the client
package at module level and keep their heavy imports (the emulator application, and with it grpc
and the chain engine) inside ``run()``, which only the chosen subcommand executes; ``--help`` and
argument errors therefore never load the emulator or grpc.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

__all__ = ["main"]

# name -> (module, help)
_COMMANDS: dict[str, tuple[str, str]] = {
    "emulator": (
        "nautilus_dydx.emulator.cli",
        "run the local dYdX v4 emulator (indexer REST + WS, validator gRPC)",
    ),
    "book": (
        "nautilus_dydx.cli.book",
        "live order book of one market (embedded emulator by default; --network testnet|mainnet)",
    ),
    "demo": (
        "nautilus_dydx.cli.demo",
        "stream two markets' books, trades and oracle prices from an embedded emulator",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nautilus-dydx", description="dYdX v4 trading toolkit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in _COMMANDS.items():
        module = importlib.import_module(module_name)
        command_parser = sub.add_parser(name, help=help_text, description=help_text)
        module.add_arguments(command_parser)
        command_parser.set_defaults(_module=module)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``nautilus-dydx`` command."""
    try:
        args = build_parser().parse_args(argv)
        code: int = args._module.run(args)
    except KeyboardInterrupt:
        # Ctrl-C before a command installed its own handler (while its modules load): still a
        # clean stop, exit 0, as documented.
        return 0
    return code


if __name__ == "__main__":
    sys.exit(main())
