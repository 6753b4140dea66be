"""Captured real Indexer REST bodies (../shared/fixtures/dydx-real) decode into the REST Structs.

The folder is absent in a fresh clone; every test here then skips through the ``shared_fixtures``
fixture, which says why.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from nautilus_dydx.schemas.rest import (
    AddressResponse,
    AssetPositionsResponse,
    CandlesResponse,
    FillsResponse,
    HeightResponse,
    HistoricalFundingResponse,
    Order,
    OrderBookResponse,
    OrdersResponse,
    PerpetualMarketsResponse,
    PerpetualPositionsResponse,
    SubaccountResponse,
    TimeResponse,
    TradesResponse,
    TransfersResponse,
    decode,
    encode,
)

# Each captured file, mapped to the route it came from (see fixtures/dydx-real/SOURCES.md).
LEGACY_HTTP: dict[str, Any] = {
    "addresses.json": AddressResponse,  # GET /v4/addresses/{address}
    "asset_positions.json": AssetPositionsResponse,  # GET /v4/assetPositions
    "conditional_order.json": Order,  # GET /v4/orders/{id}
    "fills.json": FillsResponse,  # GET /v4/fills
    "list_perpetual_markets.json": PerpetualMarketsResponse,  # GET /v4/perpetualMarkets
    "list_perpetual_markets_empty_oracle_price.json": PerpetualMarketsResponse,
    "list_perpetual_markets_v8.json": PerpetualMarketsResponse,
    "list_perpetual_positions.json": PerpetualPositionsResponse,  # GET /v4/perpetualPositions
    "order.json": Order,  # GET /v4/orders/{id}
    "orders.json": OrdersResponse,  # GET /v4/orders
    "subaccount.json": SubaccountResponse,  # GET /v4/addresses/{a}/subaccountNumber/{n}
    "v4_fills.json": FillsResponse,  # GET /v4/fills
}

RUST_HTTP: dict[str, Any] = {
    "http_get_block_height.json": HeightResponse,
    "http_get_candles.json": CandlesResponse,
    "http_get_fills.json": FillsResponse,
    "http_get_historical_funding.json": HistoricalFundingResponse,
    "http_get_orderbook.json": OrderBookResponse,
    "http_get_orders.json": OrdersResponse,
    "http_get_perpetual_markets.json": PerpetualMarketsResponse,
    "http_get_subaccount.json": SubaccountResponse,
    "http_get_time.json": TimeResponse,
    "http_get_trades.json": TradesResponse,
    "http_get_transfers.json": TransfersResponse,
}


def _legacy(shared: Path) -> Path:
    return shared / "dydx-real" / "python-legacy" / "http"


def _rust(shared: Path) -> Path:
    return shared / "dydx-real" / "rust"


def test_every_captured_http_file_is_mapped(shared_fixtures: Path) -> None:
    assert {p.name for p in _legacy(shared_fixtures).glob("*.json")} == set(LEGACY_HTTP)
    assert {p.name for p in _rust(shared_fixtures).glob("http_*.json")} == set(RUST_HTTP)


@pytest.mark.parametrize("name", sorted(LEGACY_HTTP))
def test_legacy_body_decodes(shared_fixtures: Path, name: str) -> None:
    body = (_legacy(shared_fixtures) / name).read_bytes()
    value = decode(body, LEGACY_HTTP[name])
    assert json.loads(encode(value)) == json.loads(body)


@pytest.mark.parametrize("name", sorted(RUST_HTTP))
def test_rust_result_decodes(shared_fixtures: Path, name: str) -> None:
    envelope = json.loads((_rust(shared_fixtures) / name).read_bytes())
    # The capture wraps the indexer body in {"requestId", "status", "isoTimestamp", "result"}.
    body = envelope["result"]
    value = decode(json.dumps(body).encode(), RUST_HTTP[name])
    assert json.loads(encode(value)) == body


def test_market_without_oracle_price(shared_fixtures: Path) -> None:
    body = (_legacy(shared_fixtures) / "list_perpetual_markets_empty_oracle_price.json").read_bytes()
    markets = decode(body, PerpetualMarketsResponse).markets
    unpriced = [m for m in markets.values() if m.oracle_price is None]
    assert len(unpriced) == 1
    assert unpriced[0].status == "INITIALIZING"
    assert all(isinstance(m.atomic_resolution, int) for m in markets.values())


def test_captured_values_are_exact(shared_fixtures: Path) -> None:
    envelope = json.loads((_rust(shared_fixtures) / "http_get_perpetual_markets.json").read_bytes())
    btc = decode(json.dumps(envelope["result"]).encode(), PerpetualMarketsResponse).markets["BTC-USD"]
    assert btc.next_funding_rate == Decimal("0.00000254545454545455")
    assert btc.clob_pair_id == 0
    assert btc.subticks_per_tick == 100000
    positions = decode(
        (_legacy(shared_fixtures) / "list_perpetual_positions.json").read_bytes(), PerpetualPositionsResponse
    )
    assert positions.positions[0].entry_price == Decimal("3177.76666666666666666667")
    assert positions.positions[0].exit_price is None
    transfers = json.loads((_rust(shared_fixtures) / "http_get_transfers.json").read_bytes())["result"]
    transfer = decode(json.dumps(transfers).encode(), TransfersResponse).transfers[0]
    assert transfer.quantity == Decimal("45.334703")
    assert transfer.type == "DEPOSIT"
