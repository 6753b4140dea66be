"""The synthetic market: deterministic for a seed, books two-sided and trading after warm-up."""

from __future__ import annotations

import datetime as dt

import pytest

from nautilus_dydx.emulator.engine import ChainEngine, SyntheticMarket
from nautilus_dydx.emulator.events import BlockCommitted, ChainEvent, FillCommitted, OrderPlaced

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


def run(seed: int, blocks: int, **kwargs: int) -> tuple[ChainEngine, list[ChainEvent]]:
    engine = ChainEngine(seed=seed, start_time=START)
    events: list[ChainEvent] = []
    engine.add_sink(events.append)
    engine.start()
    market = SyntheticMarket(engine, seed=seed, **kwargs)
    for _ in range(blocks):
        market.step()
        engine.produce_block()
    return engine, events


def test_same_seed_same_event_stream() -> None:
    _, first = run(7, 40)
    _, second = run(7, 40)
    assert len(first) > 500
    assert first == second
    _, other = run(8, 40)
    assert other != first


def test_books_are_two_sided_and_trading_after_warm_up() -> None:
    engine, events = run(3, 30, levels=4)
    for clob_pair_id, market in engine.markets.items():
        bids, asks = engine.book(clob_pair_id)
        assert len(bids) >= 3, market.ticker
        assert len(asks) >= 3, market.ticker
        assert bids[0][0] < asks[0][0]
        oracle = engine.oracle_subticks(clob_pair_id)
        # Quotes sit around the oracle: within 2% of it.
        assert abs(bids[0][0] - oracle) * 50 < oracle
        assert abs(asks[0][0] - oracle) * 50 < oracle
    fills = [e for e in events if isinstance(e, FillCommitted)]
    assert len({f.height for f in fills}) >= 5  # trades in many blocks
    assert {f.clob_pair_id for f in fills} <= set(engine.markets)
    assert engine.usdc_supply() == engine.minted_usdc
    assert sum(isinstance(e, BlockCommitted) for e in events) == 31


def test_agents_are_ordinary_funded_subaccounts() -> None:
    engine, events = run(1, 3, makers_per_market=2, takers=1)
    market = SyntheticMarket(engine, seed=1)
    assert len(market.agents) == 4
    for ref in market.agents[:2]:
        assert ref.address.startswith("dydx1")
        state = engine.subaccount(ref.address, ref.number)
        assert state is not None
        assert state.equity > 0
    makers = {e.order.key.owner for e in events if isinstance(e, OrderPlaced)}
    assert makers >= set(market.makers)


def test_rejects_settings_outside_the_client_id_space() -> None:
    engine = ChainEngine(start_time=START)
    with pytest.raises(ValueError, match="makers_per_market"):
        SyntheticMarket(engine, seed=0, makers_per_market=7)
    with pytest.raises(ValueError, match="refresh_every"):
        SyntheticMarket(engine, seed=0, refresh_every=0)
