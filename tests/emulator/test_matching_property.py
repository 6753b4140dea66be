"""Property tests of the engine's matching against a naive reference matcher written here.

The reference keeps a flat list of resting orders and, for each taker, sorts the crossing ones by
(price, arrival): O(n^2) and obviously right. Random flows of short-term limit / IOC / post-only /
reduce-only orders and cancels must give exactly the same fills, the same book, and the same
rejections; the book is never crossed; USDC is conserved and positions net to zero.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.engine import ChainEngine, EngineError
from nautilus_dydx.emulator.events import SHORT_TERM, ChainEvent, FillCommitted, OrderKey, OrderSnapshot

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
BTC = 0
TICK = 100_000
STEP = 1_000_000
MID = 50_000  # ticks
OWNERS = ("alice", "bob", "carol")


@dataclass
class RefOrder:
    key: OrderKey
    side: str
    ticks: int
    quantums: int
    seq: int
    filled: int = 0

    @property
    def remaining(self) -> int:
        return self.quantums - self.filled


@dataclass
class Reference:
    """The naive matcher: price-time priority, maker price, self-trade cancels the maker."""

    book: list[RefOrder] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)
    fills: list[tuple[OrderKey, OrderKey, int, int]] = field(default_factory=list)
    seq: int = 0

    def place(
        self, key: OrderKey, side: str, ticks: int, quantums: int, tif: str, reduce_only: bool
    ) -> int | None:
        """Apply one order; returns the clob error code the venue answers with, or None."""
        owner = key.owner
        position = self.positions.get(owner, 0)
        if reduce_only and (position >= 0 if side == "BUY" else position <= 0):
            return 2001

        def crosses(o: RefOrder) -> bool:
            return o.side != side and (o.ticks <= ticks if side == "BUY" else o.ticks >= ticks)

        if tif == "POST_ONLY" and any(crosses(o) and o.key.owner != owner for o in self.book):
            return 2003
        self.seq += 1
        taker = RefOrder(key, side, ticks, quantums, self.seq)
        makers = sorted(
            (o for o in self.book if crosses(o)),
            key=lambda o: (o.ticks if side == "BUY" else -o.ticks, o.seq),
        )
        for maker in makers:
            if taker.remaining == 0:
                break
            if maker.key.owner == owner:
                self.book.remove(maker)
                continue
            quantity = min(taker.remaining, maker.remaining)
            if reduce_only:
                reducible = abs(self.positions.get(owner, 0))
                if reducible == 0:
                    break
                quantity = min(quantity, reducible)
            sign = 1 if side == "BUY" else -1
            self.positions[owner] = self.positions.get(owner, 0) + sign * quantity
            self.positions[maker.key.owner] = self.positions.get(maker.key.owner, 0) - sign * quantity
            taker.filled += quantity
            maker.filled += quantity
            self.fills.append((maker.key, key, maker.ticks * TICK, quantity))
            if maker.remaining == 0:
                self.book.remove(maker)
        if taker.remaining and tif != "IOC":
            self.book.append(taker)
        return None

    def cancel(self, key: OrderKey) -> None:
        self.book = [o for o in self.book if o.key != key]

    def levels(self) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        def side_levels(side: str, best_high: bool) -> list[tuple[int, int]]:
            totals: dict[int, int] = {}
            for o in self.book:
                if o.side == side:
                    totals[o.ticks * TICK] = totals.get(o.ticks * TICK, 0) + o.remaining
            return sorted(totals.items(), reverse=best_high)

        return side_levels("BUY", True), side_levels("SELL", False)


place_op = st.tuples(
    st.just("place"),
    st.integers(0, len(OWNERS) - 1),
    st.sampled_from(["BUY", "SELL"]),
    st.sampled_from(["GTT", "GTT", "IOC", "POST_ONLY", "REDUCE_ONLY"]),
    st.integers(MID - 4, MID + 4),
    st.integers(1, 5),
)
cancel_op = st.tuples(st.just("cancel"), st.integers(0, 10_000))
operations = st.lists(st.one_of(place_op, place_op, place_op, cancel_op), min_size=1, max_size=60)


def make_engine() -> tuple[ChainEngine, list[ChainEvent]]:
    engine = ChainEngine(markets=["BTC-USD"], start_time=START, oracle_step_ppm=0)
    events: list[ChainEvent] = []
    engine.add_sink(events.append)
    engine.set_oracle_price(BTC, MID * TICK)
    engine.start()
    for owner in OWNERS:
        engine.deposit(owner, 0, 1_000_000_000_000)
    engine.produce_block()
    return engine, events


def attempt(call: Callable[[], None]) -> EngineError | None:
    """Run an engine call; the venue's rejection, or None when accepted."""
    try:
        call()
    except EngineError as exc:
        return exc
    return None


def assert_uncrossed(engine: ChainEngine, clob_pair_id: int) -> None:
    bids, asks = engine.book(clob_pair_id)
    if bids and asks:
        assert bids[0][0] < asks[0][0], (bids[0], asks[0])


@settings(max_examples=200, deadline=None)
@given(operations)
def test_engine_matches_reference(ops: list[tuple[object, ...]]) -> None:
    engine, events = make_engine()
    reference = Reference()
    placed: list[OrderSnapshot] = []
    gtb = engine.height + 40
    for n, op in enumerate(ops):
        if op[0] == "place":
            _, owner_index, side, kind, ticks, steps = op
            tif = "IOC" if kind == "REDUCE_ONLY" else kind
            order = order_snapshot(
                OWNERS[owner_index],  # type: ignore[index]
                n + 1,
                side,  # type: ignore[arg-type]
                steps * STEP,  # type: ignore[operator]
                ticks * TICK,  # type: ignore[operator]
                clob=BTC,
                flags=SHORT_TERM,
                gtb=gtb,
                tif=tif,  # type: ignore[arg-type]
                reduce_only=kind == "REDUCE_ONLY",
            )
            expected = reference.place(order.key, order.side, ticks, order.quantums, tif, order.reduce_only)  # type: ignore[arg-type]
            error = attempt(lambda order=order: engine.place_order(order))  # type: ignore[misc]
            assert (error.code if error else None) == expected, error
            if error is None:
                placed.append(order)
        elif placed:
            target = placed[int(op[1]) % len(placed)]  # type: ignore[call-overload]
            error = attempt(lambda key=target.key: engine.cancel_order(key, good_til_block=gtb))  # type: ignore[misc]
            assert error is None or error.code == 9, error  # 9: cancelled twice
            reference.cancel(target.key)
        assert engine.book(BTC) == reference.levels()
        assert_uncrossed(engine, BTC)
    engine.produce_block()
    fills = [(f.maker, f.taker, f.subticks, f.quantums) for f in events if isinstance(f, FillCommitted)]
    assert fills == reference.fills
    for owner in OWNERS:
        state = engine.subaccount(owner, 0)
        assert state is not None
        position = next((p.quantums for p in state.positions), 0)
        assert position == reference.positions.get(owner, 0)
    assert engine.usdc_supply() == engine.minted_usdc
    assert sum(reference.positions.values()) == 0


flow_op = st.one_of(
    st.tuples(
        st.just("place"),
        st.integers(0, len(OWNERS) - 1),
        st.sampled_from([0, 1]),  # BTC-USD, ETH-USD
        st.sampled_from(["BUY", "SELL"]),
        st.sampled_from(["GTT", "IOC", "POST_ONLY"]),
        st.integers(-6, 6),
        st.integers(1, 50),
        st.integers(1, 8),
    ),
    st.tuples(st.just("block")),
)


@settings(max_examples=100, deadline=None)
@given(st.lists(flow_op, min_size=1, max_size=50), st.integers(0, 2**16))
def test_usdc_conserved_and_positions_net_to_zero_with_oracle_and_funding(
    ops: list[tuple[object, ...]], seed: int
) -> None:
    engine = ChainEngine(
        markets=["BTC-USD", "ETH-USD"],
        seed=seed,
        start_time=START,
        oracle_step_ppm=2_000,
        funding_interval_blocks=2,
        funding_rate_ppm={"BTC-USD": 37, "ETH-USD": -51},
    )
    engine.start()
    for owner in OWNERS:
        engine.deposit(owner, 0, 50_000_000)  # 50 USDC: collateral checks do bind here
    for n, op in enumerate(ops):
        if op[0] == "block":
            engine.produce_block()
        else:
            _, owner_index, clob, side, tif, offset, steps, gtb_ahead = op
            market = engine.markets[clob]  # type: ignore[index]
            ticks = int(engine.oracle_subticks(clob)) // market.subticks_per_tick + offset  # type: ignore[arg-type, operator]
            order = order_snapshot(
                OWNERS[owner_index],  # type: ignore[index]
                n + 1,
                side,  # type: ignore[arg-type]
                steps * market.step_base_quantums,  # type: ignore[operator]
                max(1, ticks) * market.subticks_per_tick,
                clob=clob,  # type: ignore[arg-type]
                flags=SHORT_TERM,
                gtb=engine.height + gtb_ahead,  # type: ignore[operator]
                tif=tif,  # type: ignore[arg-type]
            )
            error = attempt(lambda order=order: engine.place_order(order))  # type: ignore[misc]
            assert error is None or error.code == 2003, error
        for clob in engine.markets:
            assert_uncrossed(engine, clob)
        assert engine.usdc_supply() == engine.minted_usdc
        for clob in engine.markets:
            net = sum(p.quantums for s in engine.subaccounts() for p in s.positions if p.clob_pair_id == clob)
            assert net == 0
