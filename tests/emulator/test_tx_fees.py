"""Fees and gas of transactions without clob messages: the node's minimum gas prices (sdk 13), the
gas the transaction size costs (sdk 11), the gas limit bound (sdk 18), fee coin validity and where
those checks sit among the other ante checks. Clob transactions stay free."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import grpc
import pytest
from tests.emulator import txutil as tu
from tests.emulator.cliutil import emulator_process
from tests.emulator.txutil import LONG_TERM, Harness, Key
from v4_proto.cosmos.tx.v1beta1 import service_pb2, service_pb2_grpc

from nautilus_dydx.emulator.app import Emulator, EmulatorConfig
from nautilus_dydx.emulator.params import NATIVE_DENOM, USDC_DENOM
from nautilus_dydx.emulator.validator.tx import (
    DEFAULT_MIN_GAS_PRICES,
    MAX_GAS_WANTED,
    format_min_gas_prices,
    parse_min_gas_prices,
    required_fee,
)

REQUIRED_AT_1M = f"25000000000000000{NATIVE_DENOM},25000{USDC_DENOM}"


@pytest.fixture
def key() -> Key:
    return Key.from_mnemonic(tu.MNEMONIC_1)


@pytest.fixture
def chain(key: Key) -> Harness:
    """The venue's default minimum gas prices; ``key`` has 1000 USDC in subaccount 0, 50 USDC and
    native tokens in its wallet."""
    harness = Harness.with_funds(key)
    harness.engine.withdraw(key.address, 0, 50 * tu.USDC)
    harness.fund_gas(key)
    return harness


def balances(chain: Harness, key: Key) -> dict[str, int]:
    account = chain.engine.account(key.address)
    assert account is not None
    return dict(account.balances)


def outcome(response: Any) -> tuple[str, int, str]:
    return response.codespace, response.code, response.raw_log


def non_clob_messages(key: Key) -> list[Any]:
    other = Key.from_mnemonic(tu.MNEMONIC_2).address
    return [
        tu.transfer(key.address, other, 5 * tu.USDC),
        tu.withdraw(key.address, 5 * tu.USDC),
        tu.deposit(key.address, 5 * tu.USDC),
    ]


# --- the minimum gas prices ---------------------------------------------------------------------------


@pytest.mark.parametrize("index", [0, 1, 2], ids=["transfer", "withdraw", "deposit"])
def test_a_zero_fee_is_insufficient_for_a_transaction_without_clob_messages(
    chain: Harness, key: Key, index: int
) -> None:
    msg = non_clob_messages(key)[index]
    before = balances(chain, key)
    response = chain.send(key, msg, gas_limit=1_000_000, fee=())
    assert outcome(response) == (
        "sdk",
        13,
        f"insufficient fees; got:  required: {REQUIRED_AT_1M}: insufficient fee",
    )
    assert chain.sequence(key) == 0
    assert balances(chain, key) == before
    assert chain.engine.fee_collector_quantums == 0


def test_the_fee_must_reach_the_minimum_in_one_denom(chain: Harness, key: Key) -> None:
    msg = tu.transfer(key.address, Key.from_mnemonic(tu.MNEMONIC_2).address, tu.USDC)
    short_usdc = chain.send(key, msg, fee=[(USDC_DENOM, 24_999)])
    assert outcome(short_usdc) == (
        "sdk",
        13,
        f"insufficient fees; got: 24999{USDC_DENOM} required: {REQUIRED_AT_1M}: insufficient fee",
    )
    short_both = chain.send(key, msg, fee=[(NATIVE_DENOM, 25 * 10**15 - 1), (USDC_DENOM, 24_999)])
    assert short_both.code == 13
    assert short_both.raw_log.startswith(f"insufficient fees; got: {25 * 10**15 - 1}{NATIVE_DENOM},24999")
    other_denom = chain.send(key, msg, fee=[("uatom", 10**18)])
    assert outcome(other_denom)[1] == 13
    assert chain.sequence(key) == 0

    before = balances(chain, key)
    assert chain.send(key, msg, fee=[(USDC_DENOM, 25_000)]).code == 0
    assert balances(chain, key)[USDC_DENOM] == before[USDC_DENOM] - 25_000
    assert chain.engine.fee_collector_quantums == 25_000
    # one denom at its minimum is enough; the whole fee is charged
    assert chain.send(key, msg, fee=[(NATIVE_DENOM, 25 * 10**15), (USDC_DENOM, 1)]).code == 0
    after = balances(chain, key)
    assert after[NATIVE_DENOM] == before[NATIVE_DENOM] - 25 * 10**15
    assert after[USDC_DENOM] == before[USDC_DENOM] - 25_001
    assert chain.sequence(key) == 2


def test_the_required_fee_is_the_ceiling_of_gas_times_price(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    # 0.025 * 1 000 001 = 25 000.025 -> 25 001
    low = chain.send(key, msg, gas_limit=1_000_001, fee=[(USDC_DENOM, 25_000)])
    assert outcome(low) == (
        "sdk",
        13,
        f"insufficient fees; got: 25000{USDC_DENOM} required: "
        f"25000025000000000{NATIVE_DENOM},25001{USDC_DENOM}: insufficient fee",
    )
    assert chain.send(key, msg, gas_limit=1_000_001, fee=[(USDC_DENOM, 25_001)]).code == 0
    assert required_fee(40, parse_min_gas_prices(DEFAULT_MIN_GAS_PRICES)) == {
        NATIVE_DENOM: 1_000_000_000_000,
        USDC_DENOM: 1,
    }


def test_clob_transactions_pay_no_fee_and_need_no_gas(chain: Harness, key: Key) -> None:
    before = balances(chain, key)
    short = tu.place(key.address, 1, gtb=chain.height + 5)
    assert chain.send(key, short, fee=(), gas_limit=0).code == 0
    stateful = tu.place(key.address, 2, flags=LONG_TERM, gtbt=chain.gtbt())
    assert chain.send(key, stateful, fee=(), gas_limit=1).code == 0
    # a stateful order with the transfer that funds it is a clob transaction too: free
    funded = tu.place(key.address, 3, number=1, flags=LONG_TERM, gtbt=chain.gtbt())
    transfer = tu.transfer(key.address, key.address, 500 * tu.USDC, to_number=1)
    assert chain.send(key, transfer, funded, fee=()).code == 0
    assert balances(chain, key) == before
    assert chain.sequence(key) == 2


def test_simulate_asks_no_minimum_fee(chain: Harness, key: Key) -> None:
    signed = chain.sign(key, [tu.withdraw(key.address, tu.USDC)], fee=(), gas_limit=1)
    gas_info, _ = chain.servicer.simulate(signed.raw)
    assert gas_info.gas_used > 50_000


def test_prices_are_configurable_and_can_be_switched_off(key: Key) -> None:
    free = Harness(min_gas_prices={})
    free.fund(key)
    assert free.send(key, tu.withdraw(key.address, tu.USDC), fee=()).code == 0

    custom = Harness(min_gas_prices=parse_min_gas_prices(f"0.5{USDC_DENOM}"))
    custom.fund(key)
    custom.engine.withdraw(key.address, 0, 10 * tu.USDC)
    msg = tu.withdraw(key.address, tu.USDC)
    low = custom.send(key, msg, gas_limit=100_000, fee=[(USDC_DENOM, 49_999)])
    assert low.raw_log == (
        f"insufficient fees; got: 49999{USDC_DENOM} required: 50000{USDC_DENOM}: insufficient fee"
    )
    native = custom.send(key, msg, gas_limit=100_000, fee=tu.NATIVE_FEE)
    assert native.code == 13  # a denom the node does not price never counts
    assert custom.send(key, msg, gas_limit=100_000, fee=[(USDC_DENOM, 50_000)]).code == 0


def test_a_negative_minimum_gas_price_is_refused(key: Key) -> None:
    with pytest.raises(ValueError, match="must be a finite number >= 0"):
        Harness(min_gas_prices={USDC_DENOM: Decimal("-0.1")})


# --- parsing the node's setting -----------------------------------------------------------------------


def test_parse_min_gas_prices_reads_the_node_format() -> None:
    assert parse_min_gas_prices(DEFAULT_MIN_GAS_PRICES) == {
        NATIVE_DENOM: Decimal(25_000_000_000),
        USDC_DENOM: Decimal("0.025"),
    }
    assert parse_min_gas_prices(" 0.5 uusdc , .25adv4tnt,0stake") == {
        "adv4tnt": Decimal("0.25"),
        "uusdc": Decimal("0.5"),
    }
    assert parse_min_gas_prices("") == {}
    assert parse_min_gas_prices("   ") == {}
    assert parse_min_gas_prices("0.000000000000000001abc") == {"abc": Decimal("1E-18")}
    text = format_min_gas_prices(parse_min_gas_prices(DEFAULT_MIN_GAS_PRICES))
    assert text == f"25000000000{NATIVE_DENOM},0.025{USDC_DENOM}"
    assert parse_min_gas_prices(text) == parse_min_gas_prices(DEFAULT_MIN_GAS_PRICES)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("0.025", "invalid decimal coin expression"),
        ("uusdc", "invalid decimal coin expression"),
        ("-1uusdc", "invalid decimal coin expression"),
        ("1.uusdc", "invalid decimal coin expression"),
        ("1ab", "invalid decimal coin expression"),
        ("1uusdc,", "invalid decimal coin expression"),
        ("0.0000000000000000001uusdc", "too much precision"),
        ("1uusdc,2uusdc", "duplicate denomination uusdc"),
    ],
)
def test_parse_min_gas_prices_refuses_what_the_node_refuses(text: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        parse_min_gas_prices(text)


# --- gas --------------------------------------------------------------------------------------------


def test_a_gas_limit_below_the_size_cost_is_out_of_gas(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    # The smallest gas limit that covers 10 gas per byte of the transaction that carries it.
    gas = 1_000
    while True:
        signed = chain.sign(key, [msg], gas_limit=gas, fee=[(USDC_DENOM, -(-gas * 25 // 1000))])
        if gas >= 10 * len(signed.raw):
            break
        gas = 10 * len(signed.raw)
    short = chain.sign(key, [msg], gas_limit=gas - 1, fee=[(USDC_DENOM, gas)])
    size_gas = 10 * len(short.raw)
    assert gas - 1 < size_gas
    response = chain.servicer.broadcast(short.raw)
    assert outcome(response) == (
        "sdk",
        11,
        f"out of gas in location: txSize; gasWanted: {gas - 1}, gasUsed: {size_gas}: out of gas",
    )
    assert chain.sequence(key) == 0
    assert chain.servicer.broadcast(signed.raw).code == 0


def test_out_of_gas_comes_before_the_fee_check(chain: Harness, key: Key) -> None:
    response = chain.send(key, tu.withdraw(key.address, tu.USDC), gas_limit=0, fee=())
    assert (response.codespace, response.code) == ("sdk", 11)
    assert response.raw_log.startswith("out of gas in location: txSize; gasWanted: 0, gasUsed: ")


def test_a_gas_limit_above_int64_is_an_invalid_request(chain: Harness, key: Key) -> None:
    for msg in (tu.withdraw(key.address, tu.USDC), tu.place(key.address, 1, gtb=chain.height + 5)):
        response = chain.send(key, msg, gas_limit=MAX_GAS_WANTED + 1, fee=tu.USDC_FEE)
        assert outcome(response) == (
            "sdk",
            18,
            f"invalid gas supplied; {MAX_GAS_WANTED + 1} > {MAX_GAS_WANTED}: invalid request",
        )


# --- fee coins ----------------------------------------------------------------------------------------


def test_fee_coins_must_be_sorted_positive_and_non_negative(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    unsorted = chain.send(key, msg, fee=[(USDC_DENOM, 25_000), (NATIVE_DENOM, 1)])
    assert outcome(unsorted) == (
        "sdk",
        13,
        f"invalid fee amount: 25000{USDC_DENOM},1{NATIVE_DENOM}: insufficient fee",
    )
    with_zero = chain.send(key, msg, fee=[(NATIVE_DENOM, 0), (USDC_DENOM, 25_000)])
    assert with_zero.raw_log == f"invalid fee amount: 0{NATIVE_DENOM},25000{USDC_DENOM}: insufficient fee"
    twice = chain.send(key, msg, fee=[(USDC_DENOM, 25_000), (USDC_DENOM, 1)])
    assert twice.code == 13
    negative = chain.send(key, msg, fee=[(NATIVE_DENOM, -1), (USDC_DENOM, 25_000)])
    assert outcome(negative) == (
        "sdk",
        13,
        f"invalid fee provided: -1{NATIVE_DENOM},25000{USDC_DENOM}: insufficient fee",
    )
    assert chain.sequence(key) == 0


def test_an_unknown_fee_payer_is_refused_at_the_fee_step(key: Key) -> None:
    free = Harness(min_gas_prices={})
    response = free.send(key, tu.withdraw(key.address, tu.USDC), fee=())
    assert outcome(response) == (
        "sdk",
        9,
        f"fee payer address: {key.address} does not exist: unknown address",
    )


# --- where the fee check sits among the ante checks -----------------------------------------------------


def test_the_fee_is_checked_after_memo_and_timeout(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    assert chain.send(key, msg, fee=(), memo="x" * 257).code == 12
    assert chain.send(key, msg, fee=(), timeout_height=chain.height).code == 30


def test_the_fee_is_checked_before_sequence_and_signature(chain: Harness, key: Key) -> None:
    msg = tu.withdraw(key.address, tu.USDC)
    assert chain.send(key, msg, fee=[(USDC_DENOM, 1)], sequence=7).code == 13
    assert chain.send(key, msg, fee=[(USDC_DENOM, 1)], chain_id="another-chain").code == 13
    # with the fee paid, the later checks answer
    assert chain.send(key, msg, fee=tu.USDC_FEE, sequence=7).code == 32
    assert chain.send(key, msg, fee=tu.USDC_FEE, chain_id="another-chain").code == 4
    # the balance is checked before the sequence too
    broke = chain.send(key, msg, fee=[(USDC_DENOM, 10**12)], sequence=7)
    assert (broke.codespace, broke.code) == ("sdk", 5)


# --- the emulator's setting -----------------------------------------------------------------------------


async def broadcast(target: str, raw: bytes) -> Any:
    async with grpc.aio.insecure_channel(target) as channel:
        stub = service_pb2_grpc.ServiceStub(channel)
        request = service_pb2.BroadcastTxRequest(tx_bytes=raw, mode=service_pb2.BROADCAST_MODE_SYNC)
        return (await stub.BroadcastTx(request)).tx_response


def zero_fee_withdraw(emu: Emulator, key: Key) -> bytes:
    account = emu.engine.account(key.address)
    number, sequence = (account.account_number, account.sequence) if account is not None else (0, 0)
    msg = tu.withdraw(key.address, tu.USDC)
    signed = tu.sign_tx(
        key, [msg], sequence=sequence, account_number=number, chain_id=emu.config.chain_id, fee=()
    )
    return signed.raw


async def test_the_emulator_asks_the_venue_minimum_over_grpc(key: Key) -> None:
    async with Emulator(block_time=0.5, synthetic=False, ws_ping_interval=0, rate_limit=None) as emu:
        assert emu.config.min_gas_prices == DEFAULT_MIN_GAS_PRICES
        emu.engine.deposit(key.address, 0, 100 * tu.USDC)
        assert emu.grpc_target is not None
        response = await broadcast(emu.grpc_target, zero_fee_withdraw(emu, key))
        assert outcome(response) == (
            "sdk",
            13,
            f"insufficient fees; got:  required: {REQUIRED_AT_1M}: insufficient fee",
        )


async def test_the_emulator_without_minimum_gas_prices_takes_a_zero_fee(key: Key) -> None:
    config = EmulatorConfig(synthetic=False, ws_ping_interval=0, rate_limit=None, min_gas_prices="")
    async with Emulator.from_config(config) as emu:
        assert emu.config == config
        emu.engine.deposit(key.address, 0, 100 * tu.USDC)
        assert emu.grpc_target is not None
        assert (await broadcast(emu.grpc_target, zero_fee_withdraw(emu, key))).code == 0


def test_a_malformed_setting_stops_the_emulator_at_construction() -> None:
    with pytest.raises(ValueError, match=re.escape("invalid decimal coin expression: '0.025'")):
        Emulator(min_gas_prices="0.025")


async def test_the_command_line_option_reaches_the_validator(key: Key) -> None:
    async with emulator_process("--min-gas-prices", f"0.001{USDC_DENOM}") as (_, line):
        match = re.search(r" grpc (127\.0\.0\.1:\d+) ", line)
        assert match, line
        msg = tu.withdraw(key.address, tu.USDC)
        signed = tu.sign_tx(key, [msg], chain_id="localdydxprotocol", fee=())
        response = await broadcast(match.group(1), signed.raw)
    assert response.raw_log == f"insufficient fees; got:  required: 1000{USDC_DENOM}: insufficient fee"
