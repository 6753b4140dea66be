"""``python -m benchmarks [name ...] [options]``: list or run benchmarks.

With no name (or ``--list``) the benchmarks are listed. Names come first; every argument after the
names is passed to each named benchmark's ``main(argv)``::

    python -m benchmarks
    python -m benchmarks book_pipeline --frames 50000 --repeat 3
    python -m benchmarks all --skip-nautilus
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# name -> module exposing DESCRIPTION and main(argv) -> int; imported only when run.
BENCHMARKS: dict[str, str] = {
    "book_pipeline": "benchmarks.book_pipeline",
    "broadcast": "benchmarks.broadcast",
    "first_update": "benchmarks.first_update",
}


def _describe(module_name: str) -> str:
    description: str = getattr(importlib.import_module(module_name), "DESCRIPTION", "")
    return description


def main(argv: Sequence[str] | None = None) -> int:
    """List the benchmarks, or run the named ones with the remaining arguments."""
    args = list(sys.argv[1:] if argv is None else argv)
    names: list[str] = []
    while args and (args[0] in BENCHMARKS or args[0] == "all"):
        name = args.pop(0)
        names.extend(BENCHMARKS if name == "all" else [name])
    if not names:
        if args and args[0] not in ("--list", "-l", "--help", "-h"):
            print(f"unknown benchmark {args[0]!r}", file=sys.stderr)
        print("usage: python -m benchmarks [name ...|all] [options passed to each]\n\nbenchmarks:")
        for name, module_name in BENCHMARKS.items():
            print(f"  {name:<16} {_describe(module_name)}")
        return 0 if not args or args[0] in ("--list", "-l", "--help", "-h") else 2
    status = 0
    for name in dict.fromkeys(names):
        module = importlib.import_module(BENCHMARKS[name])
        code: int = module.main(args)
        status = status or code
    return status


if __name__ == "__main__":
    sys.exit(main())
