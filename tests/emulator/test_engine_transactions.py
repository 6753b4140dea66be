"""Engine features the transaction layer relies on: the chain's order of the rate-limit and window
checks, deposits from another wallet, chosen account numbers, and all-or-nothing ``atomic()``."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from tests.emulator import chainutil
from tests.emulator import txutil as tu
from tests.emulator.chainutil import BTC, PRICE, START, STEP, TICK, expect
from tests.emulator.txutil import Harness, Key

from nautilus_dydx.emulator.engine import ChainEngine, EngineError, event_id
from nautilus_dydx.emulator.events import (
    CONDITIONAL,
    LONG_TERM,
    SHORT_TERM,
    ChainEvent,
    FillCommitted,
    OrderKey,
    OrderPlaced,
    SubaccountRef,
    TransferCommitted,
)
from nautilus_dydx.emulator.params import USDC_DENOM, BlockRateLimit, BlockRateLimits


class Chain(chainutil.Chain):
    """The engine one block in, with short-term orders good for five blocks unless told."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(short_term_blocks=5, **kwargs)
        self.engine.produce_block()


def limits(short_term: int = 200, stateful: int = 200, cancels: int = 200) -> BlockRateLimits:
    return BlockRateLimits(
        max_short_term_orders_per_n_blocks=(BlockRateLimit(1, short_term),),
        max_stateful_orders_per_n_blocks=(BlockRateLimit(1, stateful),),
        max_short_term_order_cancellations_per_n_blocks=(BlockRateLimit(1, cancels),),
    )


# --- 1. order of the checks (x/clob ante: rate-limit decorator before the clob decorator) ---------


def test_short_term_gtb_window_is_checked_before_the_rate_limit_and_the_rest_after() -> None:
    c = Chain(block_rate_limits=limits(short_term=2))
    c.fund("alice")
    h = c.engine.height
    c.place("alice", subticks=PRICE - TICK)
    # A rejection after the rate check does not use the budget (the engine counts accepted orders).
    expect(12, c.place, "alice", subticks=PRICE + 1)
    c.place("alice", subticks=PRICE - TICK)
    # At the limit: the GTB window still answers first (10/11) ...
    expect(10, c.place, "alice", gtb=h)
    expect(11, c.place, "alice", gtb=h + 2 + c.engine.short_block_window)
    # ... and the rate limit answers before the clob pair's tick / step / status checks.
    err = expect(5001, c.place, "alice", subticks=PRICE + 1)
    assert err.raw_log == (
        "Rate of 3 exceeds configured block rate limit of {NumBlocks:1 Limit:2} for "
        "MaxShortTermOrdersPerNBlocks and key alice: Block rate limit exceeded"
    )
    expect(5001, c.place, "alice", quantums=STEP + 1)
    # An unknown clob pair is not rate limited (the chain skips it): 8.
    bad = dataclasses.replace(c.order("alice"), key=OrderKey("alice", 0, 999, 77, SHORT_TERM))
    expect(8, c.engine.place_order, bad)
    c.engine.produce_block()
    c.place("alice", subticks=PRICE - TICK)


def test_stateful_rate_limit_comes_before_the_window_duplicate_and_tier_checks() -> None:
    c = Chain(block_rate_limits=limits(stateful=1))
    c.fund("alice")
    first = c.place("alice", subticks=PRICE - TICK, flags=LONG_TERM)
    now = int(c.engine.block_time.timestamp())
    expect(5001, c.engine.place_order, first)  # not 3005
    expect(5001, c.place, "alice", flags=LONG_TERM, gtbt=now)  # not 3003
    expect(5001, c.place, "alice", subticks=PRICE + 1, flags=LONG_TERM)  # not 12
    err = expect(5001, c.place, "alice", flags=LONG_TERM)
    assert "for MaxStatefulOrdersPerNBlocks and key alice" in err.raw_log
    c.engine.produce_block()
    expect(3005, c.engine.place_order, first)


def test_multi_block_window_5001_text_has_no_key_prefix() -> None:
    rates = dataclasses.replace(
        limits(), max_stateful_orders_per_n_blocks=(BlockRateLimit(1, 5), BlockRateLimit(10, 1))
    )
    c = Chain(block_rate_limits=rates)
    c.fund("alice")
    c.place("alice", subticks=PRICE - TICK, flags=LONG_TERM)
    err = expect(5001, c.place, "alice", flags=LONG_TERM)
    assert "{NumBlocks:10 Limit:1} for MaxStatefulOrdersPerNBlocks and alice:" in err.raw_log


def test_market_checks_in_the_chain_order_tick_before_status_trigger_after_window() -> None:
    c = Chain()
    c.fund("alice")
    c.engine.set_market_status(BTC, "FINAL_SETTLEMENT")
    c.engine.produce_block()
    expect(12, c.place, "alice", subticks=PRICE + 1)  # 12 before 34
    expect(34, c.place, "alice")
    c = Chain()
    c.fund("alice")
    now = int(c.engine.block_time.timestamp())
    conditional = dict(flags=CONDITIONAL, condition="STOP_LOSS")
    # The trigger's tick check comes after the GTBT window and the duplicate check.
    expect(3003, c.place, "alice", trigger=PRICE + 1, gtbt=now, **conditional)
    order = c.place("alice", trigger=PRICE + TICK, **conditional)
    expect(3005, c.engine.place_order, dataclasses.replace(order, trigger_subticks=PRICE + 1))
    err = expect(12, c.place, "alice", trigger=PRICE + 1, **conditional)
    assert err.raw_log.startswith(f"Conditional order trigger subticks {PRICE + 1} must be a multiple")


def test_short_term_cancel_window_before_rate_limit() -> None:
    c = Chain(block_rate_limits=limits(cancels=1))
    h = c.engine.height
    key = OrderKey("alice", 0, 1, BTC, SHORT_TERM)
    c.engine.cancel_order(key, good_til_block=h + 5)
    expect(10, c.engine.cancel_order, key, good_til_block=h)
    expect(11, c.engine.cancel_order, key, good_til_block=h + 100)
    expect(5001, c.engine.cancel_order, key, good_til_block=h + 6)


def test_batch_cancel_is_one_rate_charge_of_weight_two() -> None:
    c = Chain(block_rate_limits=limits(cancels=5))
    h = c.engine.height
    ref = SubaccountRef("alice", 0)
    ok, failed = c.engine.batch_cancel(ref, [(BTC, list(range(1, 101)))], h + 5)  # 100 ids: weight 2
    assert (len(ok), failed) == (100, [])
    c.engine.batch_cancel(ref, [(BTC, [200])], h + 5)  # 4
    c.engine.cancel_order(OrderKey("alice", 0, 300, BTC, SHORT_TERM), good_til_block=h + 5)  # 5
    err = expect(5001, c.engine.batch_cancel, ref, [(BTC, [400])], h + 5)
    assert err.raw_log.startswith("Rate of 7 exceeds")
    # A batch that cancels nothing (46) is not charged; neither is one that is rate limited.
    c.engine.produce_block()
    c.engine.batch_cancel(ref, [(BTC, [500])], c.engine.height + 5)
    expect(46, c.engine.batch_cancel, ref, [(BTC, [500])], c.engine.height + 5)
    c.engine.batch_cancel(ref, [(BTC, [501])], c.engine.height + 5)


def test_batch_cancel_with_an_unknown_clob_pair_is_27() -> None:
    c = Chain(markets=["BTC-USD"])
    err = expect(
        27, c.engine.batch_cancel, SubaccountRef("alice", 0), [(BTC, [1]), (5, [2])], c.engine.height + 5
    )
    assert err.raw_log == "Invalid clob pair id 5: Invalid ClobPair parameter"


# --- 2. deposit sender and recipient ----------------------------------------------------------------


def test_deposit_from_another_wallet_and_withdraw_to_another_wallet() -> None:
    c = Chain()
    e = c.engine
    e.fund_wallet("bob", USDC_DENOM, 10_000_000)
    e.deposit("alice", 3, 4_000_000, sender="bob", tx_hash="AB")
    assert e.account("bob").balances[USDC_DENOM] == 6_000_000  # type: ignore[union-attr]
    assert e.subaccount("alice", 3).usdc_quantums == 4_000_000  # type: ignore[union-attr]
    with pytest.raises(EngineError) as info:
        e.deposit("alice", 0, 7_000_000, sender="bob")
    assert (info.value.codespace, info.value.code) == ("sdk", 5)
    with pytest.raises(EngineError):
        e.deposit("alice", 0, 1, sender="nobody")
    assert e.account("nobody") is None  # a failed deposit creates no account
    e.withdraw("alice", 3, 1_000_000, recipient="carol")
    assert e.account("carol").balances[USDC_DENOM] == 1_000_000  # type: ignore[union-attr]
    # the defaults are unchanged: minted, or from the owner's own wallet
    e.deposit("bob", 0, 2_000_000, from_wallet=True)
    e.deposit("dave", 0, 5)
    c.take()
    e.produce_block()
    transfers = [x for x in c.events if isinstance(x, TransferCommitted)]
    assert [(t.type, t.sender_wallet, t.recipient, t.recipient_wallet) for t in transfers] == [
        ("DEPOSIT", "bob", SubaccountRef("alice", 3), None),
        ("WITHDRAWAL", None, None, "carol"),
        ("DEPOSIT", "bob", SubaccountRef("bob", 0), None),
        ("DEPOSIT", "dave", SubaccountRef("dave", 0), None),
    ]
    assert e.usdc_supply() == e.minted_usdc


def test_tx_deposit_to_another_owners_subaccount() -> None:
    payer, owner = Key.from_mnemonic(tu.MNEMONIC_1), Key.from_mnemonic(tu.MNEMONIC_2)
    chain = Harness.with_funds(payer, 100)
    chain.engine.withdraw(payer.address, 0, 50 * tu.USDC)  # 50 USDC into the payer's wallet
    msg = tu.deposit(payer.address, 20 * tu.USDC)
    msg.recipient.owner = owner.address
    msg.recipient.number = 7
    assert chain.send(payer, msg, fee=tu.USDC_FEE).code == 0
    state = chain.engine.subaccount(owner.address, 7)
    assert state is not None
    assert state.usdc_quantums == 20 * tu.USDC
    payer_account = chain.engine.account(payer.address)
    assert payer_account is not None
    assert payer_account.balances[USDC_DENOM] == 30 * tu.USDC - tu.USDC_FEE[0][1]


# --- 3. choosing an account number ------------------------------------------------------------------


def test_ensure_account_with_a_chosen_number() -> None:
    e = ChainEngine(start_time=START)
    assert e.ensure_account("a", account_number=1).account_number == 1
    assert e.ensure_account("b").account_number == 0
    assert e.ensure_account("c").account_number == 2  # skips the number already chosen
    assert e.ensure_account("a", account_number=1).account_number == 1  # idempotent
    with pytest.raises(ValueError, match="already taken"):
        e.ensure_account("d", account_number=2)
    with pytest.raises(ValueError, match="already has account number 1"):
        e.ensure_account("a", account_number=5)
    with pytest.raises(ValueError):
        e.ensure_account("d", account_number=-1)
    assert e.account("d") is None


def test_known_answer_tx_with_a_chosen_account_number() -> None:
    key = Key.from_mnemonic(tu.MNEMONIC_1)
    chain = Harness()
    chain.engine.ensure_account(key.address, account_number=12345)
    chain.fund(key)
    msg = tu.place(key.address, 123456, side=1, quantums=1_000_000, subticks=5_000_000_000, gtb=1_000_020)
    signed = tu.sign_tx(key, [msg], sequence=0, account_number=12345)
    response = chain.servicer.broadcast(signed.raw)
    assert (response.code, response.txhash) == (
        0,
        "4A3D9C86A823EF9E8E4802F5C1CC91F0CC16068A13E9C61E48FA8B9BAA25D552",
    )


# --- 4. atomic() -------------------------------------------------------------------------------------


def test_atomic_success_emits_the_held_events_in_order_on_exit() -> None:
    c = Chain()
    c.fund("alice", "bob")
    c.take()
    with c.engine.atomic():
        assert c.engine.in_atomic
        c.place("alice", "SELL", subticks=PRICE)
        c.place("bob", "BUY", subticks=PRICE)
        assert c.events == []
    assert not c.engine.in_atomic
    placed = [x for x in c.events if isinstance(x, OrderPlaced)]
    assert [p.order.key.owner for p in placed] == ["alice", "bob"]
    c.engine.produce_block()
    assert any(isinstance(x, FillCommitted) for x in c.events)


def test_atomic_failure_restores_state_and_drops_events() -> None:
    c = Chain(block_rate_limits=limits(short_term=3))
    e = c.engine
    c.fund("alice", "bob")
    c.place("alice", "SELL", subticks=PRICE)  # rests
    alice = e.account("alice")
    assert alice is not None
    e.fund_wallet("alice", USDC_DENOM, 1_000)
    e.produce_block()
    before = (e.book(BTC), e.subaccounts(), e.usdc_supply(), e.fee_collector_quantums, alice.balances.copy())
    c.take()

    def transaction() -> None:
        with e.atomic():
            e.transfer(SubaccountRef("alice", 0), SubaccountRef("carol", 1), 5_000_000)
            e.deposit("alice", 2, 1_000, sender="alice")
            e.ensure_account("zed", account_number=77)
            c.place("bob", "BUY", subticks=PRICE)  # fills against alice
            c.place("alice", flags=LONG_TERM, subticks=PRICE - TICK)
            e.cancel_order(OrderKey("bob", 0, 4242, BTC, SHORT_TERM), good_til_block=e.height + 5)
            e.set_oracle_price(BTC, 4_000_000_000)
            c.place("bob", subticks=PRICE + 1)  # 12: the whole block is undone

    with pytest.raises(EngineError) as info:
        transaction()
    assert info.value.code == 12
    assert c.events == []
    assert (e.book(BTC), e.subaccounts(), e.usdc_supply(), e.fee_collector_quantums) == before[:4]
    assert e.account("alice") is alice  # the same object, its fields restored
    assert alice.balances == before[4]
    assert e.account("zed") is None
    assert e.account("carol") is None
    assert e.ensure_account("zed", account_number=77).account_number == 77  # the number is free again
    e.transfer(SubaccountRef("alice", 0), SubaccountRef("bob", 0), 1)  # takes tx index 0 again
    e.cancel_order(OrderKey("bob", 0, 4242, BTC, SHORT_TERM), good_til_block=e.height + 5)  # no 9
    # Rate-limit charges are not undone (as on the chain): bob's fill inside counted, so 2 more fit.
    c.place("bob", subticks=PRICE - TICK)
    c.place("bob", subticks=PRICE - TICK)
    expect(5001, c.place, "bob", subticks=PRICE - TICK)
    c.take()
    e.produce_block()
    assert [x.event_id for x in c.events if isinstance(x, TransferCommitted)] == [event_id(e.height, 0, 0)]
    assert not [x for x in c.events if isinstance(x, FillCommitted | OrderPlaced)]
    assert e.oracle_price(BTC) == 5_000_000_000


def test_atomic_blocks_nest() -> None:
    c = Chain()
    e = c.engine
    c.fund("alice")
    e.produce_block()
    a, b = SubaccountRef("alice", 0), SubaccountRef("alice", 1)
    c.take()
    with e.atomic():
        e.transfer(a, b, 1_000_000)

        def inner() -> None:
            with e.atomic():
                e.transfer(a, b, 2_000_000)
                e.transfer(a, b, 10**15)  # 102

        with pytest.raises(EngineError):
            inner()
        assert e.subaccount("alice", 1).usdc_quantums == 1_000_000  # type: ignore[union-attr]
    e.produce_block()
    transfers = [x for x in c.events if isinstance(x, TransferCommitted)]
    assert [(t.quantums, t.event_id) for t in transfers] == [(1_000_000, event_id(e.height, 0, 0))]


def test_no_block_inside_atomic() -> None:
    c = Chain()
    with pytest.raises(RuntimeError), c.engine.atomic():
        c.engine.produce_block()


def test_tx_with_transfer_and_orders_is_all_or_nothing() -> None:
    key = Key.from_mnemonic(tu.MNEMONIC_2)
    chain = Harness.with_funds(key, 1_000)
    events: list[ChainEvent] = []
    chain.engine.add_sink(events.append)
    fund = tu.transfer(key.address, key.address, 50 * tu.USDC, to_number=1)
    good = tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt(), number=1)
    bad = tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt(), number=1, subticks=123)
    response = chain.send(key, fund, good, bad)
    assert (response.codespace, response.code) == ("clob", 12)
    assert chain.sequence(key) == 0
    chain.engine.produce_block()
    assert not [x for x in events if isinstance(x, OrderPlaced)]
    assert not [x for x in events if isinstance(x, TransferCommitted) and x.type == "TRANSFER"]
    assert chain.engine.subaccount(key.address, 1) is None
    # the same stateful order id is free: the failed tx left no pending placement (no 3005)
    assert chain.send(key, fund, good).code == 0
    chain.engine.produce_block()
    assert [x.order.key.client_id for x in events if isinstance(x, OrderPlaced)] == [1]
    assert [x.quantums for x in events if isinstance(x, TransferCommitted) and x.type == "TRANSFER"] == [
        50 * tu.USDC
    ]
