"""Replay protection (sequence, timestamp nonces), faults, transfers and fees, GetTx and Simulate."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.emulator import txutil as tu
from tests.emulator.txutil import LONG_TERM, Harness, Key

from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.params import NATIVE_DENOM, USDC_DENOM
from nautilus_dydx.emulator.validator import TxFaults
from nautilus_dydx.emulator.validator.tx import MAX_TIMESTAMP_NONCES, TimestampNonces


@pytest.fixture
def key() -> Key:
    return Key.from_mnemonic(tu.MNEMONIC_3)


@pytest.fixture
def chain(key: Key) -> Harness:
    harness = Harness.with_funds(key)
    harness.fund_gas(key)  # fees of the transactions without clob messages, in the native token
    return harness


def block_ms(chain: Harness) -> int:
    return int(chain.engine.block_time.timestamp() * 1000)


def test_short_term_txs_ignore_the_sequence(chain: Harness, key: Key) -> None:
    for client_id, sequence in enumerate([0, 999, 3, 2**40 + 5]):
        response = chain.send(key, tu.place(key.address, client_id, gtb=chain.height + 5), sequence=sequence)
        assert response.code == 0
    assert chain.send(key, tu.cancel(key.address, 0, gtb=chain.height + 6), sequence=77).code == 0
    assert chain.send(key, tu.batch_cancel(key.address, [(0, [1])], chain.height + 6), sequence=12).code == 0
    assert chain.sequence(key) == 0


def test_stateful_txs_need_and_increment_the_sequence(chain: Harness, key: Key) -> None:
    for n in range(3):
        assert chain.send(key, tu.place(key.address, n, flags=LONG_TERM, gtbt=chain.gtbt())).code == 0
        assert chain.sequence(key) == n + 1
        chain.engine.produce_block()
    assert chain.send(key, tu.cancel(key.address, 0, flags=LONG_TERM, gtbt=chain.gtbt(7200))).code == 0
    assert chain.send(key, tu.withdraw(key.address, tu.USDC), fee=tu.NATIVE_FEE).code == 0
    assert chain.sequence(key) == 5
    # a rejected stateful tx does not consume its sequence number
    assert chain.send(key, tu.withdraw(key.address, 10**12), fee=tu.NATIVE_FEE).code == 102
    assert chain.sequence(key) == 5


def test_timestamp_nonce_accepted_within_window_and_not_incremented(chain: Harness, key: Key) -> None:
    now = block_ms(chain)
    for n, nonce in enumerate([now, now - 30_000, now + 30_000]):
        assert chain.send(key, tu.withdraw(key.address, n + 1), sequence=nonce, fee=tu.NATIVE_FEE).code == 0
    assert chain.sequence(key) == 0
    reused = chain.send(key, tu.withdraw(key.address, 10), sequence=now, fee=tu.NATIVE_FEE)
    assert (reused.codespace, reused.code, reused.raw_log) == (
        "sdk",
        32,
        f"timestamp nonce {now} rejected: incorrect account sequence",
    )
    for nonce in (now - 30_001, now + 30_001):
        late = chain.send(key, tu.withdraw(key.address, 11), sequence=nonce, fee=tu.NATIVE_FEE)
        assert (
            late.raw_log
            == f"timestamp nonce {nonce} not within valid time window: incorrect account sequence"
        )
    # stateful orders take timestamp nonces too; the ordinary sequence still works alongside
    assert (
        chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt()), sequence=now + 1).code
        == 0
    )
    assert chain.send(key, tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt()), sequence=0).code == 0
    assert chain.sequence(key) == 1


def test_timestamp_nonces_forget_old_ones_but_never_go_back(chain: Harness, key: Key) -> None:
    now = block_ms(chain)
    first = now - 20_000
    assert chain.send(key, tu.withdraw(key.address, tu.USDC), sequence=first, fee=tu.NATIVE_FEE).code == 0
    chain.engine.produce_block(chain.engine.block_time + dt.timedelta(seconds=15))
    # first is now 35 s old: ejected at the next check, and anything <= it stays refused
    newer = block_ms(chain) - 29_000
    assert chain.send(key, tu.withdraw(key.address, tu.USDC), sequence=newer, fee=tu.NATIVE_FEE).code == 0
    assert chain.servicer.ante.nonces.remembered(key.address) == (newer,)
    stale = chain.send(key, tu.withdraw(key.address, 2 * tu.USDC), sequence=first, fee=tu.NATIVE_FEE)
    assert stale.code == 32


def test_timestamp_nonce_book_keeps_twenty_and_replaces_the_smallest() -> None:
    book = TimestampNonces()
    base = 2**41
    for n in range(MAX_TIMESTAMP_NONCES):
        book.store("a", book.check("a", base + 10 * n, base))
    assert len(book.remembered("a")) == MAX_TIMESTAMP_NONCES
    with pytest.raises(EngineError) as smaller:
        book.check("a", base - 1, base)
    assert smaller.value.code == 32
    book.store("a", book.check("a", base + 5, base))  # replaces base + 0
    assert base not in book.remembered("a")
    assert base + 5 in book.remembered("a")
    with pytest.raises(EngineError):
        book.check("a", base, base)  # <= the largest ejected nonce


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(min_value=-40_000, max_value=40_000), min_size=1, max_size=40))
def test_timestamp_nonces_never_accept_twice(offsets: list[int]) -> None:
    book = TimestampNonces()
    now = 2**41
    accepted: set[int] = set()
    for offset in offsets:
        nonce = now + offset
        try:
            state = book.check("a", nonce, now)
        except EngineError as exc:
            codes = {exc.code}
            assert codes == {32}
            continue
        assert abs(offset) <= 30_000
        assert nonce not in accepted
        accepted.add(nonce)
        book.store("a", state)
        assert len(book.remembered("a")) <= MAX_TIMESTAMP_NONCES


def test_forced_sequence_mismatch_fault(key: Key) -> None:
    faults = TxFaults(force_sequence_mismatch=2)
    chain = Harness(faults=faults)
    chain.fund(key)
    assert chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5)).code == 0  # short-term unaffected
    stateful = tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt())
    first = chain.send(key, stateful)
    assert first.raw_log == "account sequence mismatch, expected 1, got 0: incorrect account sequence"
    second = chain.send(key, stateful, memo="retry")
    assert second.code == 32
    assert faults.force_sequence_mismatch == 0
    assert chain.sequence(key) == 0
    assert chain.send(key, stateful, memo="third").code == 0
    assert chain.sequence(key) == 1


def test_deposit_withdraw_transfer_and_fees(chain: Harness, key: Key) -> None:
    other = Key.from_mnemonic(tu.MNEMONIC_1)
    chain.fund(other, 1)
    account = chain.engine.account(key.address)
    assert account is not None
    native = account.balances[NATIVE_DENOM]
    # The wallet holds no USDC yet: the first fee is paid in the native token.
    assert chain.send(key, tu.withdraw(key.address, 100 * tu.USDC), fee=tu.NATIVE_FEE).code == 0
    assert account.balances[USDC_DENOM] == 100 * tu.USDC
    assert account.balances[NATIVE_DENOM] == native - tu.NATIVE_FEE[0][1]
    deposit = tu.deposit(key.address, 40 * tu.USDC, number=2)
    assert chain.send(key, deposit, fee=tu.USDC_FEE).code == 0
    assert account.balances[USDC_DENOM] == 60 * tu.USDC - 25_000
    assert chain.engine.fee_collector_quantums == 25_000
    sub2 = chain.engine.subaccount(key.address, 2)
    assert sub2 is not None
    assert sub2.usdc_quantums == 40 * tu.USDC
    move = tu.transfer(key.address, other.address, 7 * tu.USDC, number=2)
    assert chain.send(key, move, fee=tu.USDC_FEE).code == 0
    received = chain.engine.subaccount(other.address, 0)
    assert received is not None
    assert received.usdc_quantums == 8 * tu.USDC
    broke = chain.send(key, tu.withdraw(key.address, tu.USDC), fee=[(USDC_DENOM, 10**12)])
    assert (broke.codespace, broke.code, broke.raw_log) == (
        "sdk",
        5,
        f"spendable balance 59950000{USDC_DENOM} is smaller than 1000000000000{USDC_DENOM}: "
        "insufficient funds: insufficient funds",
    )
    assert chain.sequence(key) == 3
    assert chain.engine.usdc_supply() == chain.engine.minted_usdc
    same = chain.send(key, tu.transfer(key.address, key.address, 1), fee=tu.USDC_FEE)
    assert (same.codespace, same.code) == ("sending", 1)
    assert chain.send(key, tu.withdraw(key.address, 0), fee=tu.USDC_FEE).raw_log == "Invalid transfer amount"


def test_clob_txs_pay_no_fee(chain: Harness, key: Key) -> None:
    account = chain.engine.account(key.address)
    assert account is not None
    native = account.balances[NATIVE_DENOM]
    msg = tu.place(key.address, 1, gtb=chain.height + 5)
    assert chain.send(key, msg, fee=[(NATIVE_DENOM, 100)]).code == 0
    assert account.balances[NATIVE_DENOM] == native


def test_get_tx_finds_stateful_txs_once_in_a_block(chain: Harness, key: Key) -> None:
    signed = chain.sign(key, [tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt())])
    assert chain.servicer.broadcast(signed.raw).code == 0
    assert chain.servicer.lookup(signed.hash) is None  # in the mempool only
    height = chain.engine.produce_block()
    found = chain.servicer.lookup(signed.hash.lower())
    assert found is not None
    assert found.tx_response.height == height
    assert found.tx_response.txhash == signed.hash
    assert found.tx.SerializeToString() == signed.raw
    assert found.tx_response.timestamp.startswith(chain.engine.block_time.strftime("%Y-%m-%dT%H:%M:%S"))
    short = chain.sign(key, [tu.place(key.address, 2, gtb=chain.height + 5)])
    assert chain.servicer.broadcast(short.raw).code == 0
    chain.engine.produce_block()
    assert chain.servicer.lookup(short.hash) is None  # short-term orders never enter a block


def test_simulate_reports_gas_and_checks_sequence_but_not_signature(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    signed = chain.sign(key, [msg], chain_id="some-other-chain")  # signature not checked
    gas_info, _ = chain.servicer.simulate(signed.raw)
    assert gas_info.gas_wanted == 1_000_000
    assert gas_info.gas_used > 50_000
    with pytest.raises(EngineError) as bad:
        chain.servicer.simulate(chain.sign(key, [msg], sequence=9).raw)
    assert bad.value.code == 32
    assert chain.sequence(key) == 0  # nothing applied
    state = chain.engine.subaccount(key.address, 0)
    assert state is not None
    assert state.usdc_quantums == 1_000 * tu.USDC
