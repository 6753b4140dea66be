"""``python -m nautilus_dydx.emulator``: the same as ``nautilus-dydx emulator``."""

from __future__ import annotations

import argparse
import sys

from nautilus_dydx.emulator.cli import add_arguments, run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nautilus_dydx.emulator", description=__doc__)
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
