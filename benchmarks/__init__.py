"""Benchmarks of nautilus-dydx: run them with ``python -m benchmarks [name ...]``.

The package is not part of the distributed library; it lives beside ``src/`` and is run from the
repository root. See ``docs/benchmarks.md``.
"""
