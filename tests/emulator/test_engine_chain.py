"""Unit tests of the emulator's chain engine: validation codes, lifecycle, matching rules, events."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction

import pytest
from tests.emulator.chainutil import BTC, FUNDS, PRICE, START, STEP, TICK, Chain, expect

from nautilus_dydx.emulator.engine import ChainEngine, EngineError, event_id
from nautilus_dydx.emulator.events import (
    CONDITIONAL,
    LONG_TERM,
    SHORT_TERM,
    BlockCommitted,
    FillCommitted,
    FundingUpdated,
    MarketListed,
    OraclePriceUpdated,
    OrderKey,
    OrderPlaced,
    OrderRemoved,
    OrderTriggered,
    OrderUpdated,
    SubaccountRef,
    SubaccountUpdated,
    TransferCommitted,
)
from nautilus_dydx.emulator.params import BlockRateLimit, BlockRateLimits


@pytest.fixture
def chain() -> Chain:
    c = Chain()
    c.fund("alice", "bob", "carol")
    c.engine.produce_block()
    c.take()
    return c


# --- markets and start ----------------------------------------------------------------------------


def test_default_markets_have_real_parameters() -> None:
    engine = ChainEngine(start_time=START)
    by_ticker = {m.ticker: m for m in engine.markets.values()}
    assert set(by_ticker) == {"BTC-USD", "ETH-USD", "SOL-USD", "EIGEN-USD"}
    btc = by_ticker["BTC-USD"]
    assert (btc.atomic_resolution, btc.quantum_conversion_exponent, btc.step_base_quantums) == (
        -10,
        -9,
        1_000_000,
    )
    assert (btc.subticks_per_tick, btc.initial_margin_ppm, btc.market_type) == (100_000, 50_000, "CROSS")
    eigen = by_ticker["EIGEN-USD"]
    assert eigen.market_type == "ISOLATED"
    assert (eigen.clob_pair_id, eigen.liquidity_tier, eigen.open_interest_upper_cap) == (
        300,
        4,
        1_000_000_000_000,
    )
    assert all(m.status == "ACTIVE" for m in engine.markets.values())


def test_unknown_ticker_lists_available_markets() -> None:
    with pytest.raises(ValueError, match="available") as info:
        ChainEngine(markets=["BTC-USD", "DOGE-XYZ"])
    assert "ETH-USD" in str(info.value)
    engine = ChainEngine(markets=["ETH-USD"], start_time=START)
    assert [m.ticker for m in engine.markets.values()] == ["ETH-USD"]
    expect(8, engine.market, "BTC-USD")


def test_start_emits_markets_prices_then_block_and_is_idempotent() -> None:
    c = Chain(start_height=7)
    kinds = [type(e) for e in c.events]
    assert kinds == [MarketListed] * 4 + [OraclePriceUpdated] * 4 + [BlockCommitted]
    assert c.events[-1] == BlockCommitted(7, START)
    assert c.engine.height == 7
    c.engine.start()
    assert len(c.events) == 9


def test_blocks_advance_height_and_time() -> None:
    c = Chain(block_interval=dt.timedelta(seconds=2))
    assert c.engine.produce_block() == 2
    assert c.engine.block_time == START + dt.timedelta(seconds=2)
    later = START + dt.timedelta(minutes=1)
    assert c.engine.produce_block(later) == 3
    assert c.engine.block_time == later
    assert c.events[-1] == BlockCommitted(3, later)


# --- stateless and stateful validation codes ------------------------------------------------------


def test_validation_codes(chain: Chain) -> None:
    e = chain.engine
    h = e.height
    expect(48, chain.place, "alice", "BUY", STEP, PRICE, tif="FOK")
    expect(3, chain.place, "alice", "HOLD", STEP, PRICE)
    expect(4, chain.place, "alice", "BUY", 0, PRICE)
    expect(5, chain.place, "alice", "BUY", STEP, PRICE, gtb=0)
    expect(6, chain.place, "alice", "BUY", STEP, 0)
    expect(3000, chain.place, "alice", "BUY", STEP, PRICE, flags=16, gtbt=0)
    expect(3001, chain.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM, gtbt=0)
    expect(3002, chain.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM, tif="IOC")
    expect(9003, chain.place, "alice", "BUY", STEP, PRICE, reduce_only=True)
    expect(6000, chain.place, "alice", "BUY", STEP, PRICE, flags=CONDITIONAL)
    expect(6001, chain.place, "alice", "BUY", STEP, PRICE, flags=CONDITIONAL, condition="STOP_LOSS")
    expect(8, chain.place, "alice", "BUY", STEP, PRICE, clob=77)
    err = expect(12, chain.place, "alice", "BUY", STEP, PRICE + 1)
    assert err.raw_log == (
        f"Order subticks {PRICE + 1} must be a multiple of the ClobPair's SubticksPerTick {TICK}: "
        "MsgPlaceOrder is invalid"
    )
    expect(12, chain.place, "alice", "BUY", STEP + 1, PRICE)
    err = expect(10, chain.place, "alice", "BUY", STEP, PRICE, gtb=h)
    assert err.raw_log == (
        f"GoodTilBlock {h} is less than the current blockHeight {h + 1}: "
        "The next block height is greater than the GoodTilBlock of the message"
    )
    chain.place("alice", "BUY", STEP, PRICE, gtb=h + 1 + 40)
    expect(11, chain.place, "alice", "BUY", STEP, PRICE, gtb=h + 2 + 40)
    now = int(e.block_time.timestamp())
    expect(3003, chain.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM, gtbt=now)
    chain.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM, gtbt=now + 95 * 86400)
    expect(3004, chain.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM, gtbt=now + 95 * 86400 + 1)


def test_short_block_window_is_configurable() -> None:
    c = Chain(short_block_window=20)
    c.fund("alice")
    h = c.engine.height
    c.place("alice", "BUY", STEP, PRICE, gtb=h + 21)
    expect(11, c.place, "alice", "BUY", STEP, PRICE, gtb=h + 22)


def test_duplicate_stateful_order_is_3005_pending_or_committed(chain: Chain) -> None:
    order = chain.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM)
    expect(3005, chain.engine.place_order, order)
    chain.engine.produce_block()
    expect(3005, chain.engine.place_order, order)


def test_equity_tier_limit_10001() -> None:
    c = Chain()
    c.fund("poor", amount=10_000_000)  # 10 USDC: below the first tier (20 USDC -> 1 order)
    c.fund("small", amount=50_000_000)  # 50 USDC: one stateful order
    c.engine.produce_block()
    expect(10001, c.place, "poor", "BUY", STEP, PRICE, flags=LONG_TERM)
    c.place("small", "BUY", STEP, TICK * 10, flags=LONG_TERM)
    expect(10001, c.place, "small", "BUY", STEP, TICK * 10, flags=LONG_TERM)


def test_long_term_order_needs_collateral_for_its_full_size_3007() -> None:
    c = Chain()
    c.fund("thin", amount=100_000_000)  # 100 USDC: at 5% IMF, 0.04 BTC (2000 USDC) at the oracle
    c.engine.produce_block()
    c.take()
    err = expect(3007, c.place, "thin", "BUY", 401 * STEP, PRICE, flags=LONG_TERM)
    assert err.raw_log.startswith("PlaceStatefulOrder: order ({OrderId:{SubaccountId:{Owner:thin Number:0}")
    assert err.raw_log.endswith(
        "result (NewlyUndercollateralized): Stateful order collateralization check failed"
    )
    expect(3007, c.place, "thin", "SELL", 401 * STEP, PRICE, flags=LONG_TERM)
    # Checked at the order's own price: a bid 2% over the oracle pays the difference out of equity.
    expect(3007, c.place, "thin", "BUY", 300 * STEP, PRICE + 1000 * TICK, flags=LONG_TERM)
    # 400 steps need exactly the 100 USDC it has; the maker rebate is counted in its favour.
    order = c.place("thin", "BUY", 400 * STEP, PRICE, flags=LONG_TERM)
    # Conditional orders are not checked when placed.
    stop = c.place(
        "thin", "BUY", 4000 * STEP, PRICE, flags=CONDITIONAL, condition="STOP_LOSS", trigger=PRICE + TICK
    )
    c.engine.produce_block()
    placed = [x.order.key for x in c.take() if isinstance(x, OrderPlaced)]
    assert placed == [order.key, stop.key]


def test_long_term_order_breaking_isolation_is_2005(chain: Chain) -> None:
    eigen, eigen_step, eigen_price = 300, 1_000_000, 4_973_000_000  # 1 EIGEN at 4.973 USD
    chain.fund("dave", "erin")
    chain.place("bob", "SELL", STEP, PRICE)
    chain.place("alice", "BUY", STEP, PRICE, tif="IOC")  # alice holds a cross position
    chain.place("dave", "SELL", eigen_step, eigen_price, clob=eigen)
    chain.place("erin", "BUY", eigen_step, eigen_price, clob=eigen, tif="IOC")  # erin an isolated one
    err = expect(2005, chain.place, "alice", "BUY", eigen_step, eigen_price, clob=eigen, flags=LONG_TERM)
    assert err.raw_log.endswith(
        "result (ViolatesIsolatedSubaccountConstraints): Order would violate isolated subaccount constraints."
    )
    expect(2005, chain.place, "erin", "BUY", STEP, PRICE - TICK, flags=LONG_TERM)
    chain.place("erin", "SELL", eigen_step, eigen_price + eigen_step, clob=eigen, flags=LONG_TERM)
    chain.place("carol", "BUY", eigen_step, eigen_price - eigen_step, clob=eigen, flags=LONG_TERM)  # flat


def test_block_rate_limits_5001() -> None:
    limits = BlockRateLimits(
        max_short_term_orders_per_n_blocks=(BlockRateLimit(1, 2),),
        max_stateful_orders_per_n_blocks=(BlockRateLimit(1, 2), BlockRateLimit(3, 3)),
        max_short_term_order_cancellations_per_n_blocks=(BlockRateLimit(1, 1),),
    )
    c = Chain(block_rate_limits=limits)
    c.fund("alice")
    c.engine.produce_block()
    c.place("alice", "BUY", STEP, PRICE)
    c.place("alice", "BUY", STEP, PRICE)
    expect(5001, c.place, "alice", "BUY", STEP, PRICE)
    c.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM)
    c.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM)
    expect(5001, c.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM)
    c.engine.produce_block()
    c.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM)  # 3 over the last 3 blocks
    expect(5001, c.place, "alice", "BUY", STEP, PRICE, flags=LONG_TERM)
    c.place("alice", "BUY", STEP, PRICE)  # the short-term window is one block: fresh again
    key = OrderKey("alice", 0, 999, BTC, SHORT_TERM)
    c.engine.cancel_order(key, good_til_block=c.engine.height + 5)
    expect(5001, c.engine.cancel_order, OrderKey("alice", 0, 998, BTC, 0), good_til_block=c.engine.height + 5)


# --- cancellation ---------------------------------------------------------------------------------


def test_short_term_cancel_blocks_replacement_and_needs_higher_gtb(chain: Chain) -> None:
    e = chain.engine
    order = chain.place("alice", "BUY", STEP, PRICE - TICK)
    chain.take()
    e.cancel_order(order.key, good_til_block=order.good_til_block)
    [removed] = chain.removed(order.key)
    assert (removed.status, removed.reason) == ("BEST_EFFORT_CANCELED", "ORDER_REMOVAL_REASON_USER_CANCELED")
    assert removed.height == e.height  # off-chain: at once, stamped with the latest block
    assert e.book(BTC)[0] == []
    expect(7, e.place_order, order)
    expect(9, e.cancel_order, order.key, good_til_block=order.good_til_block)
    # An unknown order can be cancelled (best effort), with the GTB window checks.
    e.cancel_order(OrderKey("alice", 0, 12345, BTC, 0), good_til_block=e.height + 3)
    expect(10, e.cancel_order, OrderKey("alice", 0, 12346, BTC, 0), good_til_block=e.height)
    expect(5, e.cancel_order, OrderKey("alice", 0, 12346, BTC, 0), good_til_block=0)
    # A later order GTB than the cancel's may be placed again.
    e.place_order(
        chain.order(
            "alice", "BUY", STEP, PRICE - TICK, client_id=order.key.client_id, gtb=order.good_til_block + 1
        )
    )  # type: ignore[operator]
    assert e.book(BTC)[0] == [(PRICE - TICK, STEP)]


def test_stateful_cancel_rules(chain: Chain) -> None:
    e = chain.engine
    order = chain.place("alice", "BUY", STEP, PRICE - TICK, flags=LONG_TERM)
    assert order.good_til_block_time is not None
    expect(29, e.cancel_order, order.key, good_til_block_time=order.good_til_block_time - 1)
    expect(
        3006,
        e.cancel_order,
        OrderKey("alice", 0, 4242, BTC, LONG_TERM),
        good_til_block_time=order.good_til_block_time,
    )
    expect(3001, e.cancel_order, order.key, good_til_block_time=0)
    e.cancel_order(order.key, good_til_block_time=order.good_til_block_time)
    expect(32, e.cancel_order, order.key, good_til_block_time=order.good_til_block_time + 1)
    expect(3008, e.place_order, order)
    chain.take()
    e.produce_block()
    placed = [x for x in chain.events if isinstance(x, OrderPlaced)]
    [removed] = chain.removed(order.key)
    assert placed[0].status == "OPEN"
    assert (removed.status, removed.reason, removed.height) == (
        "CANCELED",
        "ORDER_REMOVAL_REASON_USER_CANCELED",
        e.height,
    )
    assert e.open_orders(SubaccountRef("alice", 0)) == []
    expect(3000, e.cancel_order, OrderKey("alice", 0, 1, BTC, 8), good_til_block=e.height + 1)


def test_batch_cancel(chain: Chain) -> None:
    e = chain.engine
    a = chain.place("alice", "BUY", STEP, PRICE - TICK)
    b = chain.place("alice", "SELL", STEP, PRICE + TICK)
    ref = SubaccountRef("alice", 0)
    # A cancel GTB below the order's records the cancel but leaves the order on the book.
    ok, failed = e.batch_cancel(ref, [(BTC, [a.key.client_id, b.key.client_id, 777])], e.height + 5)
    assert sorted(ok) == sorted([(BTC, a.key.client_id), (BTC, b.key.client_id), (BTC, 777)])
    assert failed == []
    assert e.book(BTC) == ([(PRICE - TICK, STEP)], [(PRICE + TICK, STEP)])
    e.batch_cancel(ref, [(BTC, [a.key.client_id, b.key.client_id])], e.height + 10)
    assert e.book(BTC) == ([], [])
    # The same ids again with the same GTB: every cancel fails (9) -> 46.
    expect(46, e.batch_cancel, ref, [(BTC, [a.key.client_id])], e.height + 10)
    ok, failed = e.batch_cancel(ref, [(BTC, [a.key.client_id, 778])], e.height + 10)
    assert (ok, failed) == ([(BTC, 778)], [(BTC, a.key.client_id)])
    expect(45, e.batch_cancel, ref, [], e.height + 5)
    expect(45, e.batch_cancel, ref, [(BTC, [1]), (BTC, [2])], e.height + 5)
    expect(45, e.batch_cancel, ref, [(BTC, [1, 1])], e.height + 5)
    expect(45, e.batch_cancel, ref, [(BTC, [])], e.height + 5)
    expect(45, e.batch_cancel, ref, [(BTC, list(range(60))), (1, list(range(41)))], e.height + 5)
    e.batch_cancel(ref, [(BTC, list(range(1000, 1060))), (1, list(range(40)))], e.height + 5)


# --- replacement ----------------------------------------------------------------------------------


def test_short_term_replacement_rules(chain: Chain) -> None:
    e = chain.engine
    h = e.height
    first = chain.place("alice", "BUY", STEP, PRICE - 5 * TICK, gtb=h + 5, client_id=1)
    replace = chain.order("alice", "BUY", 3 * STEP, PRICE - 4 * TICK, gtb=h + 6, client_id=1)
    e.place_order(replace)
    assert e.book(BTC)[0] == [(PRICE - 4 * TICK, 3 * STEP)]
    assert e.order(first.key) == replace
    expect(30, e.place_order, replace)
    expect(20, e.place_order, chain.order("alice", "BUY", STEP, PRICE, gtb=h + 5, client_id=1))
    expect(20, e.place_order, chain.order("alice", "SELL", STEP, PRICE + TICK, gtb=h + 7, client_id=1))
    expect(
        20, e.place_order, chain.order("alice", "BUY", STEP, PRICE, gtb=h + 7, client_id=1, tif="POST_ONLY")
    )
    # A partly filled order keeps its fills across a replacement; replacing below them is 24.
    chain.place("bob", "SELL", STEP, PRICE - 4 * TICK, tif="IOC")
    assert e.filled_amount(replace.key) == STEP
    expect(24, e.place_order, chain.order("alice", "BUY", STEP, PRICE - 4 * TICK, gtb=h + 8, client_id=1))
    e.place_order(chain.order("alice", "BUY", 2 * STEP, PRICE - 4 * TICK, gtb=h + 8, client_id=1))
    assert e.book(BTC)[0] == [(PRICE - 4 * TICK, STEP)]


def test_replacement_reports_the_replaced_order_removed_first(chain: Chain) -> None:
    e = chain.engine
    h = e.height
    first = chain.place("alice", "BUY", 2 * STEP, PRICE - TICK, gtb=h + 5, client_id=1)
    chain.place("bob", "SELL", STEP, PRICE - TICK, tif="IOC")  # fills half of it
    chain.take()
    second = chain.order("alice", "BUY", 3 * STEP, PRICE - 2 * TICK, gtb=h + 6, client_id=1)
    e.place_order(second)
    removed, placed = chain.take()
    assert isinstance(removed, OrderRemoved)
    assert (removed.key, removed.status, removed.reason, removed.total_filled_quantums, removed.height) == (
        first.key,
        "BEST_EFFORT_CANCELED",
        "ORDER_REMOVAL_REASON_REPLACED",
        STEP,
        h,
    )
    assert isinstance(placed, OrderPlaced)
    assert (placed.status, placed.order.subticks, placed.order.total_filled_quantums) == (
        "BEST_EFFORT_OPENED",
        PRICE - 2 * TICK,
        STEP,
    )
    assert e.book(BTC)[0] == [(PRICE - 2 * TICK, 2 * STEP)]
    expect(20, e.place_order, chain.order("alice", "BUY", 3 * STEP, PRICE, gtb=h + 5, client_id=1))
    assert chain.take() == []  # a refused replacement removes nothing
    # An id that no longer rests is placed afresh: nothing to report replaced.
    e.cancel_order(first.key, good_til_block=h + 6)
    chain.take()
    chain.place("alice", "BUY", 3 * STEP, PRICE - 2 * TICK, gtb=h + 7, client_id=1)
    assert [type(x) for x in chain.take()] == [OrderPlaced]


def test_stateful_orders_are_not_replaced(chain: Chain) -> None:
    order = chain.place("alice", "BUY", STEP, PRICE - TICK, flags=LONG_TERM, client_id=5)
    chain.engine.produce_block()
    assert order.good_til_block_time is not None
    expect(
        3005,
        chain.place,
        "alice",
        "BUY",
        STEP,
        PRICE - TICK,
        flags=LONG_TERM,
        client_id=5,
        gtbt=order.good_til_block_time + 10,
    )


# --- matching rules -------------------------------------------------------------------------------


def test_match_at_maker_price_with_fees_and_events(chain: Chain) -> None:
    e = chain.engine
    maker = chain.place("alice", "SELL", 2 * STEP, PRICE)
    taker = chain.place("bob", "BUY", STEP, PRICE + 10 * TICK, tif="IOC")
    offchain = chain.take()
    assert [type(x) for x in offchain] == [OrderPlaced, OrderPlaced, OrderUpdated, OrderUpdated]
    assert all(x.height == e.height for x in offchain)  # type: ignore[union-attr]
    assert offchain[0].status == "BEST_EFFORT_OPENED"  # type: ignore[union-attr]
    e.produce_block()
    [fill] = chain.fills()
    quote = STEP * PRICE // 10**9  # 5 USDC
    assert (fill.maker, fill.taker, fill.subticks, fill.quantums) == (maker.key, taker.key, PRICE, STEP)
    assert (fill.taker_fee, fill.maker_fee) == (quote * 500 // 10**6, -(quote * 110 // 10**6))
    assert fill.event_id == event_id(e.height, 1, 0)
    assert fill.height == e.height
    assert fill.time == e.block_time
    [taker_removed] = chain.removed(taker.key)
    assert (taker_removed.status, taker_removed.reason) == ("FILLED", "ORDER_REMOVAL_REASON_FULLY_FILLED")
    updates = {u.subaccount.address: u for u in chain.events if isinstance(u, SubaccountUpdated)}
    assert updates["bob"].usdc_quantums == FUNDS - quote - fill.taker_fee
    assert updates["alice"].usdc_quantums == FUNDS + quote - fill.maker_fee
    assert [p.quantums for p in updates["bob"].positions] == [STEP]
    assert updates["bob"].positions[0].open_event_id == fill.event_id
    assert updates["bob"].positions[0].created_time == e.block_time
    assert isinstance(chain.events[-1], BlockCommitted)
    assert e.fee_collector_quantums == fill.taker_fee + fill.maker_fee
    assert e.usdc_supply() == e.minted_usdc


def test_price_time_priority(chain: Chain) -> None:
    first = chain.place("alice", "SELL", STEP, PRICE)
    second = chain.place("carol", "SELL", STEP, PRICE)
    better = chain.place("carol", "SELL", STEP, PRICE + TICK, client_id=50)
    cheaper = chain.place("alice", "SELL", STEP, PRICE - TICK)
    chain.place("bob", "BUY", 3 * STEP, PRICE, tif="IOC")
    chain.engine.produce_block()
    assert [f.maker for f in chain.fills()] == [cheaper.key, first.key, second.key]
    assert chain.engine.book(BTC)[1] == [(PRICE + TICK, STEP)]
    assert better.key in {o.key for o in chain.engine.open_orders(SubaccountRef("carol", 0))}


def test_replacement_rules_apply_only_to_a_resting_order(chain: Chain) -> None:
    e = chain.engine
    h = e.height
    # Cancelled: a later GTB than the cancel's is a fresh placement, side and TIF may differ.
    first = chain.place("alice", "BUY", STEP, PRICE - 5 * TICK, gtb=h + 5, client_id=1)
    e.cancel_order(first.key, good_til_block=h + 6)
    expect(7, e.place_order, chain.order("alice", "SELL", STEP, PRICE + 5 * TICK, gtb=h + 6, client_id=1))
    again = chain.order("alice", "SELL", STEP, PRICE + 5 * TICK, gtb=h + 7, client_id=1, tif="POST_ONLY")
    e.place_order(again)
    assert e.book(BTC)[1] == [(PRICE + 5 * TICK, STEP)]
    # IOC remainder removed after a partial fill: not resting, so a GTT BUY with the id is accepted
    # for the unfilled rest, while a size within the fills is still 24.
    chain.place("bob", "SELL", STEP, PRICE, client_id=2)
    chain.place("alice", "BUY", 3 * STEP, PRICE, gtb=h + 5, client_id=3, tif="IOC", reduce_only=False)
    assert e.filled_amount(OrderKey("alice", 0, 3, BTC, 0)) == STEP
    expect(24, e.place_order, chain.order("alice", "BUY", STEP, PRICE - TICK, gtb=h + 4, client_id=3))
    e.place_order(chain.order("alice", "BUY", 2 * STEP, PRICE - TICK, gtb=h + 4, client_id=3))
    assert e.book(BTC)[0] == [(PRICE - TICK, STEP)]
    # Self-trade removed the maker: its id may come back on the other side.
    maker = chain.place("carol", "SELL", STEP, PRICE + TICK, gtb=h + 5, client_id=4)
    chain.place("carol", "BUY", STEP, PRICE + TICK, gtb=h + 5, client_id=5, tif="IOC")
    assert chain.removed(maker.key)
    e.place_order(chain.order("carol", "BUY", STEP, PRICE - 2 * TICK, gtb=h + 5, client_id=4))


def test_closed_position_keeps_its_opening_cost(chain: Chain) -> None:
    e = chain.engine
    chain.place("bob", "SELL", 2 * STEP, PRICE)
    chain.place("alice", "BUY", 2 * STEP, PRICE, tif="IOC")
    chain.place("bob", "SELL", STEP, PRICE + 3 * TICK)
    chain.place("alice", "BUY", STEP, PRICE + 3 * TICK, tif="IOC")
    chain.place("carol", "BUY", 3 * STEP, PRICE + 9 * TICK)
    chain.place("alice", "SELL", 3 * STEP, PRICE + 9 * TICK, tif="IOC")
    e.produce_block()
    [closed] = [
        p
        for u in chain.events
        if isinstance(u, SubaccountUpdated) and u.subaccount == SubaccountRef("alice", 0)
        for p in u.closed_positions
    ]
    # 0.0002 BTC at 50 000 and 0.0001 at 50 003 USD, in USDC quantums (1e-6).
    assert closed.open_quote_quantums == 10_000_000 + 5_000_300
    assert closed.entry_quote_quantums == 0
    assert closed.sum_open == 3 * STEP


def test_ioc_remainder_is_removed(chain: Chain) -> None:
    chain.place("alice", "SELL", STEP, PRICE)
    taker = chain.place("bob", "BUY", 3 * STEP, PRICE, tif="IOC")
    [removed] = chain.removed(taker.key)
    assert (removed.status, removed.reason) == (
        "BEST_EFFORT_CANCELED",
        "ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK",
    )
    assert removed.total_filled_quantums == STEP
    assert chain.engine.book(BTC) == ([], [])


def test_post_only_short_term_cross_is_2003_and_leaves_nothing(chain: Chain) -> None:
    chain.place("alice", "SELL", STEP, PRICE)
    chain.take()
    err = expect(2003, chain.place, "bob", "BUY", STEP, PRICE, tif="POST_ONLY")
    assert err.raw_log.endswith(": Post-only order would cross one or more maker orders")
    assert chain.events == []
    chain.place("bob", "BUY", STEP, PRICE - TICK, tif="POST_ONLY")
    assert chain.engine.book(BTC) == ([(PRICE - TICK, STEP)], [(PRICE, STEP)])


def test_post_only_stateful_cross_is_removed_in_the_next_block(chain: Chain) -> None:
    chain.place("alice", "SELL", STEP, PRICE)
    order = chain.place("bob", "BUY", STEP, PRICE, flags=LONG_TERM, tif="POST_ONLY")
    placed_in = chain.engine.produce_block()  # placed; meets the book after this commit
    assert chain.removed(order.key) == []
    chain.engine.produce_block()
    [removed] = chain.removed(order.key)
    assert (removed.status, removed.reason, removed.height) == (
        "CANCELED",
        "ORDER_REMOVAL_REASON_POST_ONLY_WOULD_CROSS_MAKER_ORDER",
        placed_in + 1,
    )
    assert chain.fills() == []


def test_self_trade_cancels_the_maker_and_continues(chain: Chain) -> None:
    own = chain.place("bob", "SELL", STEP, PRICE - TICK)
    other = chain.place("alice", "SELL", STEP, PRICE)
    taker = chain.place("bob", "BUY", STEP, PRICE, tif="IOC")
    [removed] = chain.removed(own.key)
    assert (removed.status, removed.reason) == (
        "BEST_EFFORT_CANCELED",
        "ORDER_REMOVAL_REASON_SELF_TRADE_ERROR",
    )
    chain.engine.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker) == (other.key, taker.key)


def test_post_only_cancels_own_crossed_orders_then_rests(chain: Chain) -> None:
    own = chain.place("bob", "SELL", STEP, PRICE - TICK)
    chain.place("bob", "BUY", STEP, PRICE, tif="POST_ONLY")
    assert chain.removed(own.key)[0].reason == "ORDER_REMOVAL_REASON_SELF_TRADE_ERROR"
    assert chain.engine.book(BTC) == ([(PRICE, STEP)], [])


def test_reduce_only_resize_and_2001(chain: Chain) -> None:
    expect(2001, chain.place, "bob", "SELL", STEP, PRICE, tif="IOC", reduce_only=True)  # flat
    chain.place("alice", "SELL", 2 * STEP, PRICE)
    chain.place("bob", "BUY", 2 * STEP, PRICE, tif="IOC")
    assert chain.position("bob") == 2 * STEP
    expect(2001, chain.place, "bob", "BUY", STEP, PRICE, tif="IOC", reduce_only=True)  # would increase
    chain.place("carol", "BUY", 5 * STEP, PRICE - TICK)
    chain.take()
    closing = chain.place("bob", "SELL", 5 * STEP, PRICE - 5 * TICK, tif="IOC", reduce_only=True)
    assert chain.position("bob") == 0  # never flips
    [removed] = chain.removed(closing.key)
    assert (removed.reason, removed.total_filled_quantums) == (
        "ORDER_REMOVAL_REASON_REDUCE_ONLY_RESIZE",
        2 * STEP,
    )
    assert chain.engine.book(BTC)[0] == [(PRICE - TICK, 3 * STEP)]


def test_undercollateralized_taker_is_removed_before_the_fill() -> None:
    c = Chain()
    c.fund("rich")
    c.fund("thin", amount=100_000_000)  # 100 USDC: 5% IMF allows ~2000 USDC of BTC
    c.engine.produce_block()
    c.place("rich", "SELL", 10 * STEP, PRICE)  # 10 x 5 USDC
    c.place("rich", "SELL", 1000 * STEP, PRICE + TICK)  # 5000 USDC
    taker = c.place("thin", "BUY", 1010 * STEP, PRICE + TICK, tif="IOC")
    [removed] = c.removed(taker.key)
    assert removed.reason == "ORDER_REMOVAL_REASON_UNDERCOLLATERALIZED"
    assert removed.total_filled_quantums == 10 * STEP
    state = c.engine.subaccount("thin", 0)
    assert state is not None
    assert state.free_collateral >= 0
    assert c.engine.book(BTC)[1] == [(PRICE + TICK, 1000 * STEP)]


def test_undercollateralized_maker_is_removed_and_matching_continues() -> None:
    c = Chain()
    c.fund("rich", "taker")
    c.fund("thin", amount=10_000_000)  # 10 USDC
    c.engine.produce_block()
    thin = c.place("thin", "SELL", 100 * STEP, PRICE)  # 500 USDC short needs 25 USDC margin
    c.place("rich", "SELL", 100 * STEP, PRICE + TICK)
    c.place("taker", "BUY", 100 * STEP, PRICE + TICK, tif="IOC")
    assert c.removed(thin.key)[0].reason == "ORDER_REMOVAL_REASON_UNDERCOLLATERALIZED"
    assert c.position("taker") == 100 * STEP


def test_long_term_order_rests_and_matches_from_its_block(chain: Chain) -> None:
    e = chain.engine
    order = chain.place("alice", "BUY", 2 * STEP, PRICE, flags=LONG_TERM)
    assert e.book(BTC) == ([], [])  # not before its block
    assert not any(isinstance(x, OrderPlaced) for x in chain.take())
    e.produce_block()
    [placed] = [x for x in chain.take() if isinstance(x, OrderPlaced)]
    assert (placed.status, placed.height) == ("OPEN", e.height)
    assert e.book(BTC)[0] == [(PRICE, 2 * STEP)]
    chain.place("bob", "SELL", STEP, PRICE, tif="IOC")
    updates = [x for x in chain.take() if isinstance(x, OrderUpdated)]
    assert {u.key for u in updates} == {order.key} | {u.key for u in updates if u.key.owner == "bob"}
    e.produce_block()
    assert [f.maker for f in chain.fills()] == [order.key]


def test_long_term_order_meets_the_book_after_its_block_commits(chain: Chain) -> None:
    e = chain.engine
    maker = chain.place("alice", "SELL", STEP, PRICE, gtb=e.height + 10)
    chain.take()
    taker = chain.place("bob", "BUY", STEP, PRICE, flags=LONG_TERM)
    n = e.produce_block()
    events = chain.take()
    commit = next(i for i, x in enumerate(events) if isinstance(x, BlockCommitted))
    in_block, after = events[:commit], events[commit + 1 :]
    assert [(x.status, x.height) for x in in_block if isinstance(x, OrderPlaced)] == [("OPEN", n)]
    assert not any(isinstance(x, FillCommitted | OrderRemoved) for x in in_block)
    # Matched on the memclob once block N is committed: optimistic updates at once, fills in N+1.
    assert {(x.key, x.total_filled_quantums) for x in after if isinstance(x, OrderUpdated)} == {
        (maker.key, STEP),
        (taker.key, STEP),
    }
    assert chain.position("bob") == STEP
    e.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker, fill.height) == (maker.key, taker.key, n + 1)
    assert [(r.status, r.height) for r in chain.removed(taker.key)] == [("FILLED", n + 1)]


def test_long_term_post_only_orders_of_a_block_rest_before_the_others_match(chain: Chain) -> None:
    e = chain.engine
    taker = chain.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM)  # first in the block
    maker = chain.place("bob", "SELL", STEP, PRICE, flags=LONG_TERM, tif="POST_ONLY")
    e.produce_block()
    e.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker) == (maker.key, taker.key)


# --- expiry ---------------------------------------------------------------------------------------


def test_short_term_order_expires_with_the_block_of_its_gtb(chain: Chain) -> None:
    e = chain.engine
    order = chain.place("alice", "BUY", STEP, PRICE, gtb=e.height + 2)
    e.produce_block()  # height < GTB: still live
    assert e.book(BTC)[0] == [(PRICE, STEP)]
    chain.take()
    e.produce_block()  # block GTB committed: purged with it
    [removed] = chain.removed(order.key)
    assert (removed.status, removed.reason, removed.height) == (
        "CANCELED",
        "ORDER_REMOVAL_REASON_EXPIRED",
        e.height,
    )
    assert e.book(BTC) == ([], [])


def test_block_gtb_is_the_last_to_hold_a_short_term_fill(chain: Chain) -> None:
    e = chain.engine
    maker = chain.place("alice", "SELL", STEP, PRICE, gtb=e.height + 1)
    e.produce_block()  # block GTB committed: the maker is purged with it
    assert e.order(maker.key) is None
    assert e.book(BTC) == ([], [])
    assert [(r.reason, r.height) for r in chain.removed(maker.key)] == [
        ("ORDER_REMOVAL_REASON_EXPIRED", e.height)
    ]
    chain.take()
    chain.place("bob", "BUY", STEP, PRICE, tif="IOC")
    e.produce_block()
    assert chain.fills() == []
    # Matched before block GTB is committed, it fills, in that block.
    maker = chain.place("alice", "SELL", STEP, PRICE, gtb=e.height + 1)
    taker = chain.place("bob", "BUY", STEP, PRICE, tif="IOC")
    e.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker, fill.height) == (maker.key, taker.key, maker.good_til_block)


def test_a_filled_short_term_id_stays_filled_until_gtb_plus_the_window() -> None:
    c = Chain(short_block_window=5, short_term_blocks=3)
    c.fund("alice", "bob")
    e = c.engine
    gtb = e.height + 2
    order = c.place("alice", "BUY", STEP, PRICE, gtb=gtb, client_id=7)
    c.place("bob", "SELL", STEP, PRICE, tif="IOC")
    while e.height < gtb + 5 - 1:
        e.produce_block()
    assert e.filled_amount(order.key) == STEP  # the venue prunes it in block GTB + ShortBlockWindow
    expect(24, c.place, "alice", "BUY", STEP, PRICE, gtb=e.height + 1, client_id=7)
    e.produce_block()
    assert e.filled_amount(order.key) == 0
    c.place("alice", "BUY", STEP, PRICE, gtb=e.height + 1, client_id=7)
    assert e.book(BTC)[0] == [(PRICE, STEP)]


def test_stateful_order_expires_at_its_gtbt(chain: Chain) -> None:
    e = chain.engine
    gtbt = int(e.block_time.timestamp()) + 10
    order = chain.place("alice", "BUY", STEP, PRICE, flags=LONG_TERM, gtbt=gtbt)
    e.produce_block(dt.datetime.fromtimestamp(gtbt - 1, dt.UTC))
    assert e.book(BTC)[0] == [(PRICE, STEP)]
    e.produce_block(dt.datetime.fromtimestamp(gtbt, dt.UTC))
    [removed] = chain.removed(order.key)
    assert removed.reason == "ORDER_REMOVAL_REASON_EXPIRED"
    assert e.book(BTC) == ([], [])


# --- conditional orders ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "side", "direction"),
    [
        ("STOP_LOSS", "BUY", +1),  # fires when the oracle rises to >= trigger
        ("STOP_LOSS", "SELL", -1),  # fires at <= trigger
        ("TAKE_PROFIT", "BUY", -1),
        ("TAKE_PROFIT", "SELL", +1),
    ],
)
def test_conditional_triggers(chain: Chain, condition: str, side: str, direction: int) -> None:
    e = chain.engine
    oracle = int(e.oracle_subticks(BTC))
    trigger = oracle + direction * 100 * TICK
    limit = PRICE - 1000 * TICK if side == "BUY" else PRICE + 1000 * TICK
    order = chain.place("alice", side, STEP, limit, flags=CONDITIONAL, condition=condition, trigger=trigger)
    e.produce_block()
    [placed] = [x for x in chain.take() if isinstance(x, OrderPlaced)]
    assert placed.status == "UNTRIGGERED"
    assert e.order_status(order.key) == "UNTRIGGERED"
    e.set_oracle_price(BTC, trigger - direction * TICK)  # closer, not there yet
    e.produce_block()
    assert not [x for x in chain.take() if isinstance(x, OrderTriggered)]
    assert e.order_status(order.key) == "UNTRIGGERED"
    e.set_oracle_price(BTC, trigger)  # exactly at the trigger price
    e.produce_block()
    [triggered] = [x for x in chain.take() if isinstance(x, OrderTriggered)]
    assert (triggered.key, triggered.height) == (order.key, e.height)
    # On the book once the trigger block is committed (the venue's PrepareCheckState).
    assert e.order_status(order.key) == "RESTING"
    assert e.book(BTC) == (([(limit, STEP)], []) if side == "BUY" else ([], [(limit, STEP)]))


def test_conditional_orders_trigger_on_the_blocks_trade_prices_clamped_near_the_oracle(
    chain: Chain,
) -> None:
    e = chain.engine
    assert e.oracle_subticks(BTC) == PRICE  # 50 000; BTC-USD min_price_change 1000 ppm: band of 250 USD
    chain.fund("dave", "erin")

    def conditional(owner: str, condition: str, trigger_usd: int) -> OrderKey:
        limit = PRICE + 2000 * TICK
        trigger = trigger_usd * TICK
        return chain.place(
            owner, "SELL", STEP, limit, flags=CONDITIONAL, condition=condition, trigger=trigger
        ).key

    stop_hit = conditional("alice", "STOP_LOSS", 49_800)  # at or below 49 800
    stop_clamped = conditional("alice", "STOP_LOSS", 49_700)  # the band ends at 49 750
    stop_edge = conditional("dave", "STOP_LOSS", 49_750)
    profit_hit = conditional("erin", "TAKE_PROFIT", 50_150)  # at or above 50 150
    e.produce_block()
    e.produce_block()
    assert not [x for x in chain.take() if isinstance(x, OrderTriggered)]
    # Two trades committed in the next block: 40 000 (clamped to 49 750) and 50 150.
    chain.place("bob", "BUY", STEP, 40_000 * TICK)
    chain.place("carol", "SELL", STEP, 40_000 * TICK, tif="IOC")
    chain.place("bob", "SELL", STEP, 50_150 * TICK)
    chain.place("carol", "BUY", STEP, 50_150 * TICK, tif="IOC")
    n = e.produce_block()
    assert e.oracle_subticks(BTC) == PRICE
    assert sorted(f.subticks for f in chain.fills()) == [40_000 * TICK, 50_150 * TICK]
    triggered = {x.key: x.height for x in chain.events if isinstance(x, OrderTriggered)}
    assert triggered == {stop_hit: n, stop_edge: n, profit_hit: n}
    assert e.order_status(stop_clamped) == "UNTRIGGERED"
    # The prices of one block trigger only in that block.
    late = conditional("dave", "STOP_LOSS", 49_800)
    e.produce_block()
    e.produce_block()
    assert e.order_status(late) == "UNTRIGGERED"


def test_triggered_conditional_trades_as_taker(chain: Chain) -> None:
    e = chain.engine
    oracle = int(e.oracle_subticks(BTC)) // TICK * TICK
    maker = chain.place("bob", "SELL", STEP, oracle + 5 * TICK, flags=LONG_TERM)
    stop = chain.place(
        "alice",
        "BUY",
        STEP,
        oracle + 20 * TICK,
        flags=CONDITIONAL,
        condition="STOP_LOSS",
        trigger=oracle + 3 * TICK,
        tif="IOC",
    )
    e.produce_block()
    e.set_oracle_price(BTC, oracle + 3 * TICK)
    trigger_block = e.produce_block()
    assert chain.position("alice") == STEP  # matched right after the trigger block commits
    assert chain.fills() == []
    e.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker, fill.subticks, fill.height) == (
        maker.key,
        stop.key,
        oracle + 5 * TICK,
        trigger_block + 1,
    )


def test_triggered_conditional_rests_for_takers_before_the_next_block(chain: Chain) -> None:
    e = chain.engine
    oracle = int(e.oracle_subticks(BTC)) // TICK * TICK
    stop = chain.place(
        "alice", "SELL", STEP, oracle + 10 * TICK, flags=CONDITIONAL, condition="TAKE_PROFIT", trigger=oracle
    )
    trigger_block = e.produce_block()  # placed, and triggered at once by the oracle at the trigger
    assert e.order_status(stop.key) == "RESTING"
    taker = chain.place("bob", "BUY", STEP, oracle + 10 * TICK, tif="IOC")
    e.produce_block()
    [fill] = chain.fills()
    assert (fill.maker, fill.taker, fill.height) == (stop.key, taker.key, trigger_block + 1)


# --- transfers, accounts, funding -----------------------------------------------------------------


def test_accounts_and_transfers() -> None:
    c = Chain()
    e = c.engine
    assert e.account("dave") is None
    c.fund("dave", amount=5_000_000)
    c.fund("erin", amount=1_000_000)
    e.produce_block()
    dave = e.account("dave")
    assert dave is not None
    assert dave.account_number == 0
    assert e.ensure_account("erin").account_number == 1
    assert e.increment_sequence("dave") == 1
    e.set_pub_key("dave", b"\x02" * 33)
    assert e.account("dave") == type(dave)("dave", 0, 1, b"\x02" * 33, {})
    e.withdraw("dave", 0, 2_000_000)
    assert e.account("dave").balances[e.usdc_denom] == 2_000_000  # type: ignore[union-attr]
    e.transfer(SubaccountRef("dave", 0), SubaccountRef("dave", 1), 1_000_000)
    e.deposit("dave", 0, 500_000, from_wallet=True)
    with pytest.raises(EngineError) as info:
        e.withdraw("dave", 0, 10_000_000)
    assert (info.value.codespace, info.value.code) == ("subaccounts", 102)
    with pytest.raises(EngineError) as info:
        e.deposit("dave", 0, 10**12, from_wallet=True)
    assert (info.value.codespace, info.value.code) == ("sdk", 5)
    c.take()
    e.produce_block()
    transfers = [x for x in c.events if isinstance(x, TransferCommitted)]
    assert [t.type for t in transfers] == ["WITHDRAWAL", "TRANSFER", "DEPOSIT"]
    assert [t.event_id for t in transfers] == [event_id(e.height, i, 0) for i in range(3)]
    subs = {(u.subaccount.number): u.usdc_quantums for u in c.events if isinstance(u, SubaccountUpdated)}
    assert subs == {0: 2_500_000, 1: 1_000_000}
    assert e.usdc_supply() == e.minted_usdc


def test_equity_and_free_collateral_follow_the_oracle(chain: Chain) -> None:
    e = chain.engine
    chain.place("alice", "SELL", 10_000 * STEP, PRICE)  # 1 BTC
    chain.place("bob", "BUY", 10_000 * STEP, PRICE, tif="IOC")
    fee = 50_000 * 10**6 * 500 // 10**6
    e.set_oracle_price(BTC, 5_100_000_000)  # 51 000 USD with price exponent -5
    e.produce_block()
    state = e.subaccount("bob", 0)
    assert state is not None
    assert state.usdc_quantums == FUNDS - 50_000 * 10**6 - fee
    assert state.equity == FUNDS - fee + 1_000 * 10**6
    assert state.initial_requirement == 51_000 * 10**6 * 5 // 100
    assert state.free_collateral == state.equity - state.initial_requirement
    assert state.maintenance_requirement == state.initial_requirement * 6 // 10


def test_funding_settles_into_usdc_and_conserves() -> None:
    c = Chain(funding_interval_blocks=3, funding_rate_ppm={"BTC-USD": 100})
    c.fund("alice", "bob")
    c.engine.produce_block()
    c.place("alice", "SELL", 3 * STEP, PRICE)
    c.place("bob", "BUY", 3 * STEP, PRICE, tif="IOC")
    c.engine.produce_block()  # height 3: funding block
    funding = [x for x in c.events if isinstance(x, FundingUpdated) and x.clob_pair_id == BTC]
    assert [f.rate_ppm for f in funding] == [100]
    bob = c.engine.subaccount("bob", 0)
    alice = c.engine.subaccount("alice", 0)
    assert bob is not None
    assert alice is not None
    oracle = c.engine.oracle_price(BTC)
    # 3 steps = 0.0003 BTC at the oracle, x 100 ppm: the long pays the ceiling, the short gets the floor.
    owed = 3 * STEP * oracle * 100  # in 1e-(10+5-6) x 1e-6 units
    exact = Fraction(owed, 10**15)
    [bob_pos] = bob.positions
    [alice_pos] = alice.positions
    assert bob_pos.net_funding == -int(-(-owed // 10**15))
    assert alice_pos.net_funding == owed // 10**15
    assert abs(bob_pos.net_funding + exact) < 1
    assert abs(alice_pos.net_funding - exact) < 1
    assert c.engine.usdc_supply() == c.engine.minted_usdc
    assert c.engine.funding_rate(BTC) == 100


def test_default_funding_rate_is_the_8h_rate_per_hour() -> None:
    engine = ChainEngine(start_time=START)
    assert engine.funding_rate(BTC) == 100 // 8
    assert engine.funding_interval_blocks == 7200


def test_oracle_walk_is_seeded_and_bounded() -> None:
    def path(seed: int) -> list[int]:
        engine = ChainEngine(seed=seed, start_time=START, oracle_step_ppm=500)
        prices = []
        for _ in range(50):
            before = engine.oracle_price(BTC)
            engine.produce_block()
            after = engine.oracle_price(BTC)
            assert abs(after - before) * 10**6 <= 500 * before + 10**6
            prices.append(after)
        return prices

    assert path(1) == path(1)
    assert path(1) != path(2)


def test_set_oracle_price_is_effective_next_block(chain: Chain) -> None:
    e = chain.engine
    before = e.oracle_price(BTC)
    e.set_oracle_price(BTC, before + 12345)
    assert e.oracle_price(BTC) == before
    e.produce_block()
    assert e.oracle_price(BTC) == before + 12345
    [update] = [x for x in chain.events if isinstance(x, OraclePriceUpdated) and x.clob_pair_id == BTC]
    assert (update.price, update.height, update.time) == (before + 12345, e.height, e.block_time)
    with pytest.raises(EngineError):
        e.set_oracle_price(BTC, 0)
    expect(8, e.oracle_price, 99)


def test_event_id_layout() -> None:
    assert event_id(0xEEF1, 2, 0x4D).hex() == "0000eef1000000020000004d"
    assert len(event_id(1, 0, 0)) == 12


def test_onchain_events_precede_block_committed(chain: Chain) -> None:
    e = chain.engine
    chain.place("alice", "SELL", STEP, PRICE)
    chain.place("bob", "BUY", STEP, PRICE, tif="IOC")
    chain.take()
    e.produce_block()
    heights = {getattr(x, "height", None) for x in chain.events}
    assert heights == {e.height}
    assert isinstance(chain.events[-1], BlockCommitted)
    assert all(getattr(x, "time", e.block_time) == e.block_time for x in chain.events)


def test_position_lifecycle_pnl_and_flip(chain: Chain) -> None:
    e = chain.engine
    chain.place("alice", "SELL", 2 * STEP, PRICE)
    chain.place("bob", "BUY", 2 * STEP, PRICE, tif="IOC")
    e.produce_block()
    opened_at = e.height
    chain.take()
    chain.place("carol", "BUY", 3 * STEP, PRICE + 10 * TICK)
    chain.place("bob", "SELL", 3 * STEP, PRICE + 10 * TICK, tif="IOC")  # closes 2 steps, opens 1 short
    e.produce_block()
    [update] = [u for u in chain.events if isinstance(u, SubaccountUpdated) and u.subaccount.address == "bob"]
    [closed] = update.closed_positions
    assert (closed.quantums, closed.sum_open, closed.sum_close, closed.max_size) == (
        0,
        2 * STEP,
        2 * STEP,
        2 * STEP,
    )
    assert closed.realized_pnl == 2 * STEP * 10 * TICK // 10**9  # 10 USD per BTC on 0.0002 BTC
    assert closed.exit_quote_quantums == 2 * STEP * (PRICE + 10 * TICK) // 10**9
    assert (closed.created_height, closed.closed_height, closed.closed_time) == (
        opened_at,
        e.height,
        e.block_time,
    )
    [short] = update.positions
    assert (short.quantums, short.entry_quote_quantums) == (-STEP, STEP * (PRICE + 10 * TICK) // 10**9)
    assert short.open_event_id[:4] == e.height.to_bytes(4, "big")
    assert short.created_height == e.height
