"""Subcommands of the ``nautilus-dydx`` command line (each exposes ``add_arguments`` and ``run``)."""

from __future__ import annotations

__all__: list[str] = []
