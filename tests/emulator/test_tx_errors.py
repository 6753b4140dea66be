"""Every venue error code a trading client meets, each provoked by a signed, broadcast transaction."""

from __future__ import annotations

import pytest
from tests.emulator import txutil as tu
from tests.emulator.txutil import LONG_TERM, Harness, Key
from v4_proto.cosmos.base.abci.v1beta1 import abci_pb2
from v4_proto.dydxprotocol.clob import tx_pb2 as clob_tx

from nautilus_dydx.emulator.events import TransferCommitted
from nautilus_dydx.emulator.params import BlockRateLimit, BlockRateLimits

IOC, POST_ONLY, FOK = 1, 2, 3


@pytest.fixture
def key() -> Key:
    return Key.from_mnemonic(tu.MNEMONIC_2)


@pytest.fixture
def chain(key: Key) -> Harness:
    return Harness.with_funds(key, 1_000)  # equity tier: up to 10 open stateful orders


def rejected(response: object, codespace: str, code: int) -> str:
    assert (response.codespace, response.code) == (codespace, code), response  # type: ignore[attr-defined]
    return response.raw_log  # type: ignore[attr-defined,no-any-return]


def test_fill_or_kill_is_deprecated_48(chain: Harness, key: Key) -> None:
    log = rejected(chain.send(key, tu.place(key.address, 1, gtb=chain.height + 5, tif=FOK)), "clob", 48)
    assert log == "Fill-or-kill has been deprecated: This field has been deprecated"


def test_good_til_block_window_10_11_with_configurable_short_block_window(key: Key) -> None:
    chain = Harness(short_block_window=20)
    chain.fund(key)
    h = chain.height
    low = rejected(chain.send(key, tu.place(key.address, 1, gtb=h)), "clob", 10)
    assert low == (
        f"GoodTilBlock {h} is less than the current blockHeight {h + 1}: "
        "The next block height is greater than the GoodTilBlock of the message"
    )
    high = rejected(chain.send(key, tu.place(key.address, 1, gtb=h + 22)), "clob", 11)
    assert "ShortBlockWindow 20" in high
    assert chain.send(key, tu.place(key.address, 1, gtb=h + 21)).code == 0
    assert chain.send(key, tu.place(key.address, 2, gtb=h + 1)).code == 0
    # with the current window (40) the same GTB is fine
    wide = Harness.with_funds(key)
    assert wide.send(key, tu.place(key.address, 1, gtb=wide.height + 41)).code == 0


def test_tick_and_step_multiples_12(chain: Harness, key: Key) -> None:
    gtb = chain.height + 5
    tick = rejected(chain.send(key, tu.place(key.address, 1, gtb=gtb, subticks=5_000_000_001)), "clob", 12)
    assert tick.endswith(": MsgPlaceOrder is invalid")
    assert "SubticksPerTick 100000" in tick
    step = rejected(chain.send(key, tu.place(key.address, 1, gtb=gtb, quantums=1_500_000)), "clob", 12)
    assert "StepBaseQuantums 1000000" in step


def test_good_til_block_time_window_3003_3004(chain: Harness, key: Key) -> None:
    now = chain.gtbt(0)
    past = rejected(chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=now)), "clob", 3003)
    assert past.endswith("The block time is greater than the GoodTilBlockTime of the message")
    far = now + 95 * 86_400 + 1
    rejected(chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=far)), "clob", 3004)
    assert chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=far - 1)).code == 0
    assert chain.sequence(key) == 1  # only the accepted one consumed a sequence number


def test_duplicate_stateful_order_3005(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 7, flags=LONG_TERM, gtbt=chain.gtbt())
    assert chain.send(key, msg).code == 0
    rejected(chain.send(key, msg), "clob", 3005)  # uncommitted
    chain.engine.produce_block()
    log = rejected(
        chain.send(key, tu.place(key.address, 7, flags=LONG_TERM, gtbt=chain.gtbt(7200))), "clob", 3005
    )
    assert log.endswith("Existing stateful order has higher-or-equal priority than the new one")


def test_reduce_only_needs_ioc_9003(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 1, gtb=chain.height + 5, reduce_only=True)
    log = rejected(chain.send(key, msg), "clob", 9003)
    assert log == (
        "reduce only orders must be short term IOC orders: Reduce-only is currently disabled for non-IOC orders"
    )


def test_long_term_ioc_3002(chain: Harness, key: Key) -> None:
    log = rejected(
        chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt(), tif=IOC)), "clob", 3002
    )
    assert log == "Stateful orders cannot require immediate execution"
    assert chain.sequence(key) == 0


def test_short_term_cancel_blocks_replacement_7_and_needs_higher_gtb_9(chain: Harness, key: Key) -> None:
    h = chain.height
    assert chain.send(key, tu.cancel(key.address, 3, gtb=h + 10)).code == 0  # unknown order: still fine
    rejected(chain.send(key, tu.place(key.address, 3, gtb=h + 10)), "clob", 7)
    assert chain.send(key, tu.cancel(key.address, 3, gtb=h + 10)).code == 19  # the same bytes
    rejected(chain.send(key, tu.cancel(key.address, 3, gtb=h + 10), memo="again"), "clob", 9)
    rejected(chain.send(key, tu.cancel(key.address, 3, gtb=h + 9)), "clob", 9)
    assert chain.send(key, tu.place(key.address, 3, gtb=h + 11)).code == 0


def test_stateful_cancel_29_and_3006(chain: Harness, key: Key) -> None:
    gtbt = chain.gtbt(3600)
    missing = rejected(chain.send(key, tu.cancel(key.address, 9, flags=LONG_TERM, gtbt=gtbt)), "clob", 3006)
    assert missing.endswith("Stateful order does not exist")
    assert chain.sequence(key) == 0
    assert chain.send(key, tu.place(key.address, 9, flags=LONG_TERM, gtbt=gtbt)).code == 0
    chain.engine.produce_block()
    rejected(chain.send(key, tu.cancel(key.address, 9, flags=LONG_TERM, gtbt=gtbt - 1)), "clob", 29)
    assert chain.send(key, tu.cancel(key.address, 9, flags=LONG_TERM, gtbt=gtbt)).code == 0
    assert chain.sequence(key) == 2


def test_batch_cancel_45_46_and_response(chain: Harness, key: Key) -> None:
    h = chain.height
    duplicate = rejected(chain.send(key, tu.batch_cancel(key.address, [(0, [1, 1])], h + 5)), "clob", 45)
    assert duplicate.endswith("Invalid batch cancel message")
    too_many = tu.batch_cancel(key.address, [(0, list(range(60))), (1, list(range(41)))], h + 5)
    rejected(chain.send(key, too_many), "clob", 45)
    # A GTB outside the window is refused at once, as the chain's rate-limit step checks it first.
    rejected(chain.send(key, tu.batch_cancel(key.address, [(0, [1, 2])], h)), "clob", 10)
    rejected(chain.send(key, tu.batch_cancel(key.address, [(0, [1, 2])], h + 500)), "clob", 11)

    assert chain.send(key, tu.place(key.address, 1, gtb=h + 5)).code == 0
    assert chain.send(key, tu.cancel(key.address, 2, gtb=h + 8)).code == 0
    ok = chain.send(key, tu.batch_cancel(key.address, [(0, [1, 2]), (1, [5])], h + 6))
    assert ok.code == 0
    data = abci_pb2.TxMsgData.FromString(bytes.fromhex(ok.data))
    (any_response,) = data.msg_responses
    assert any_response.type_url == "/dydxprotocol.clob.MsgBatchCancelResponse"
    response = clob_tx.MsgBatchCancelResponse.FromString(any_response.value)
    succeeded = {(b.clob_pair_id, c) for b in response.short_term_succeeded for c in b.client_ids}
    failed = {(b.clob_pair_id, c) for b in response.short_term_failed for c in b.client_ids}
    assert succeeded == {(0, 1), (1, 5)}
    assert failed == {(0, 2)}  # an earlier cancel with a higher GTB exists (9)
    # 46 only when no id at all could be cancelled.
    rejected(chain.send(key, tu.batch_cancel(key.address, [(0, [2])], h + 7)), "clob", 46)


def test_equity_tier_limit_10001(key: Key) -> None:
    chain = Harness.with_funds(key, 20)  # $20: one open stateful order
    assert chain.send(key, tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt())).code == 0
    log = rejected(
        chain.send(key, tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt())), "clob", 10001
    )
    assert log.endswith("Subaccount cannot open more orders due to equity tier limit.")
    assert chain.sequence(key) == 1


def test_block_rate_limit_5001(key: Key) -> None:
    limits = BlockRateLimits(
        max_short_term_orders_per_n_blocks=(BlockRateLimit(1, 3),),
        max_stateful_orders_per_n_blocks=(BlockRateLimit(1, 2), BlockRateLimit(100, 20)),
        max_short_term_order_cancellations_per_n_blocks=(BlockRateLimit(1, 200),),
    )
    chain = Harness(block_rate_limits=limits)
    chain.fund(key, 10_000)
    for client_id in range(2):
        assert chain.send(key, tu.place(key.address, client_id, flags=LONG_TERM, gtbt=chain.gtbt())).code == 0
    log = rejected(
        chain.send(key, tu.place(key.address, 9, flags=LONG_TERM, gtbt=chain.gtbt())), "clob", 5001
    )
    assert log.endswith("Block rate limit exceeded")
    for client_id in range(3):
        assert (
            chain.send(
                key, tu.place(key.address, 100 + client_id, gtb=chain.height + 5, subticks=100_000)
            ).code
            == 0
        )
    rejected(
        chain.send(key, tu.place(key.address, 200, gtb=chain.height + 5, subticks=100_000)), "clob", 5001
    )
    chain.engine.produce_block()
    assert chain.send(key, tu.place(key.address, 9, flags=LONG_TERM, gtbt=chain.gtbt())).code == 0


def test_sequence_mismatch_32(chain: Harness, key: Key) -> None:
    msg = tu.place(key.address, 1, flags=LONG_TERM, gtbt=chain.gtbt())
    log = rejected(chain.send(key, msg, sequence=5), "sdk", 32)
    assert log == "account sequence mismatch, expected 0, got 5: incorrect account sequence"
    assert chain.send(key, msg, sequence=0).code == 0
    log = rejected(
        chain.send(key, tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt()), sequence=0), "sdk", 32
    )
    assert log == "account sequence mismatch, expected 1, got 0: incorrect account sequence"


def test_duplicate_tx_bytes_19(chain: Harness, key: Key) -> None:
    signed = chain.sign(key, [tu.place(key.address, 1, gtb=chain.height + 5)])
    first = chain.servicer.broadcast(signed.raw)
    assert first.code == 0
    again = chain.servicer.broadcast(signed.raw)
    assert (again.codespace, again.code, again.txhash) == ("sdk", 19, signed.hash)
    # a rejected tx is not cached: fixing the state lets the same bytes through
    stateful = chain.sign(key, [tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt())], sequence=1)
    assert chain.servicer.broadcast(stateful.raw).code == 32
    assert chain.send(key, tu.place(key.address, 3, flags=LONG_TERM, gtbt=chain.gtbt())).code == 0
    assert chain.servicer.broadcast(stateful.raw).code == 0


def test_clob_message_mix_18(chain: Harness, key: Key) -> None:
    other = Key.from_mnemonic(tu.MNEMONIC_3)
    short = tu.place(key.address, 1, gtb=chain.height + 5)
    two_short = rejected(chain.send(key, short, tu.place(key.address, 2, gtb=chain.height + 5)), "sdk", 18)
    assert two_short == (
        "a transaction containing short term MsgCancelOrder or MsgPlaceOrder may not contain more than "
        "one message: invalid request"
    )
    transfer = tu.transfer(key.address, key.address, 5 * tu.USDC, to_number=1)
    rejected(chain.send(key, short, transfer), "sdk", 18)
    stateful = tu.place(key.address, 3, flags=LONG_TERM, gtbt=chain.gtbt())
    log = rejected(chain.send(key, transfer, transfer, stateful), "sdk", 18)
    assert (
        log
        == "a transaction containing stateful orders can only be accompanied by 1 transfer msg: invalid request"
    )
    withdraw = tu.withdraw(key.address, tu.USDC)
    log = rejected(chain.send(key, stateful, withdraw), "sdk", 18)
    assert log.startswith(
        "a transaction containing stateful orders cannot be accompanied by non transfer msgs"
    )
    assert chain.sequence(key) == 0
    # the isolated-margin pattern: fund subaccount 1 and place from it, in one tx
    funded = tu.transfer(key.address, key.address, 50 * tu.USDC, to_number=1)
    isolated = tu.place(key.address, 4, flags=LONG_TERM, gtbt=chain.gtbt(), number=1)
    assert chain.send(key, funded, isolated).code == 0
    assert chain.sequence(key) == 1
    state = chain.engine.subaccount(key.address, 1)
    assert state is not None
    assert state.usdc_quantums == 50 * tu.USDC
    assert other.address != key.address


def test_rejected_order_after_transfer_undoes_the_transfer(chain: Harness, key: Key) -> None:
    funded = tu.transfer(key.address, key.address, 50 * tu.USDC, to_number=1)
    bad = tu.place(key.address, 4, flags=LONG_TERM, gtbt=chain.gtbt(), number=1, subticks=123)
    rejected(chain.send(key, funded, bad), "clob", 12)
    state = chain.engine.subaccount(key.address, 0)
    assert state is not None
    assert state.usdc_quantums == 1_000 * tu.USDC
    assert chain.sequence(key) == 0
    # rolled back, not reversed: no transfer (nor a reverse one) is committed, subaccount 1 never existed
    assert chain.engine.subaccount(key.address, 1) is None
    events: list[object] = []
    chain.engine.add_sink(events.append)
    chain.engine.produce_block()
    assert not [e for e in events if isinstance(e, TransferCommitted) and e.type == "TRANSFER"]
