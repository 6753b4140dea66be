"""The synthetic market: deterministic for a seed, books two-sided and trading after warm-up."""

from __future__ import annotations

import datetime as dt

import pytest

from nautilus_dydx.emulator.engine import ChainEngine, SyntheticMarket
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.events import (
    BlockCommitted,
    ChainEvent,
    FillCommitted,
    OrderPlaced,
    OrderSnapshot,
)

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


def run_with_flow(
    seed: int, blocks: int, flows_per_block: int, **kwargs: int
) -> tuple[ChainEngine, list[ChainEvent], list[EngineError]]:
    """Like :func:`run`, with ``flows_per_block`` calls of ``flow()`` between blocks; returns the
    EngineErrors that flow's placements raised (step's own are not counted)."""
    engine = ChainEngine(seed=seed, start_time=START)
    events: list[ChainEvent] = []
    engine.add_sink(events.append)
    engine.start()
    market = SyntheticMarket(engine, seed=seed, **kwargs)
    errors: list[EngineError] = []
    in_flow = False
    place = engine.place_order

    def counting_place(order: OrderSnapshot, *, tx_hash: str = "") -> None:
        try:
            place(order, tx_hash=tx_hash)
        except EngineError as exc:
            if in_flow:
                errors.append(exc)
            raise

    engine.place_order = counting_place  # type: ignore[method-assign]
    for _ in range(blocks):
        market.step()
        engine.produce_block()
        in_flow = True
        for _ in range(flows_per_block):
            market.flow()
        in_flow = False
    return engine, events, errors


def test_flow_changes_the_book_between_blocks_without_producing_blocks() -> None:
    engine = ChainEngine(seed=4, start_time=START)
    engine.start()
    market = SyntheticMarket(engine, seed=4)
    assert market.flow() == 0  # nothing before the first step (agents not funded yet)
    for _ in range(6):
        market.step()
        engine.produce_block()
    events: list[ChainEvent] = []
    engine.add_sink(events.append)
    height = engine.height
    books = {c: engine.book(c) for c in engine.markets}
    placed = [market.flow() for _ in range(5)]
    assert engine.height == height
    assert not any(isinstance(e, BlockCommitted) for e in events)
    assert all(n == market.flow_slots for n in placed)
    flowed = [e for e in events if isinstance(e, OrderPlaced)]
    assert len(flowed) == sum(placed)
    assert {e.order.key.clob_pair_id for e in flowed} == set(engine.markets)  # every market moves
    assert all(e.order.good_til_block == height + market.refresh_every + 3 for e in flowed)
    assert {c: engine.book(c) for c in engine.markets} != books


def test_flow_is_never_rejected_and_books_stay_two_sided_and_uncrossed() -> None:
    for flows in (1, 5, 40):  # 40 calls x 4 slots: every slot is due twice per block
        engine, _, errors = run_with_flow(6, 60, flows)
        assert errors == [], (flows, errors[:3])
        for clob_pair_id, market in engine.markets.items():
            bids, asks = engine.book(clob_pair_id)
            assert bids, market.ticker
            assert asks, market.ticker
            assert bids[0][0] < asks[0][0], market.ticker
        # GTBs stay a few blocks ahead instead of creeping towards the window's end.
        ahead = [
            (o.good_til_block or 0) - engine.height
            for s in engine.subaccounts()
            for o in engine.open_orders(s.subaccount)
        ]
        assert ahead
        assert max(ahead) <= 6
        assert engine.usdc_supply() == engine.minted_usdc


def test_flow_round_robin_refreshes_every_slot() -> None:
    engine = ChainEngine(seed=2, start_time=START)
    engine.start()
    market = SyntheticMarket(engine, seed=2)
    market.step()
    engine.produce_block()
    slots = len(market.makers) * len(engine.markets) * 2 * market.levels
    events: list[ChainEvent] = []
    engine.add_sink(events.append)
    for _ in range(slots // market.flow_slots):
        market.flow()
        engine.produce_block()
    requoted = {
        (e.order.key.owner, e.order.key.client_id // 1_000)
        for e in events
        if isinstance(e, OrderPlaced) and e.order.time_in_force == "POST_ONLY"
    }
    assert len(requoted) >= slots * 9 // 10  # a few may be skipped (would cross), none starved


def test_flow_is_deterministic_for_a_seed() -> None:
    _, first, _ = run_with_flow(9, 20, 3)
    _, second, _ = run_with_flow(9, 20, 3)
    assert first == second
    _, without, _ = run_with_flow(9, 20, 0)
    _, plain = run(9, 20)
    assert without == plain  # never calling flow() leaves step()'s stream exactly as it was
