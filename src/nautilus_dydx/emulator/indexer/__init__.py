"""The emulated dYdX indexer: tables fed by chain events, REST (comlink), WebSocket (socks), control API."""

from __future__ import annotations

from nautilus_dydx.emulator.indexer.control import ControlApi
from nautilus_dydx.emulator.indexer.rest import RestApi
from nautilus_dydx.emulator.indexer.store import IndexerStore
from nautilus_dydx.emulator.indexer.ws import WsHub, book_checksum

__all__ = ["ControlApi", "IndexerStore", "RestApi", "WsHub", "book_checksum"]
