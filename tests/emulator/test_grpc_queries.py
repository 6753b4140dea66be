"""The validator's gRPC query services over a real socket: shapes, values against the engine and the
indexer, SerializableInt bytes, NOT_FOUND / INVALID_ARGUMENT / UNIMPLEMENTED, pagination."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import aiohttp
import grpc
import pytest
from tests.emulator.orders import order_snapshot
from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_q
from v4_proto.cosmos.auth.v1beta1 import query_pb2_grpc as auth_g
from v4_proto.cosmos.bank.v1beta1 import query_pb2 as bank_q
from v4_proto.cosmos.bank.v1beta1 import query_pb2_grpc as bank_g
from v4_proto.cosmos.base.query.v1beta1 import pagination_pb2
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_q
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2_grpc as tm_g
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
from v4_proto.dydxprotocol.clob import clob_pair_pb2
from v4_proto.dydxprotocol.clob import query_pb2 as clob_q
from v4_proto.dydxprotocol.clob import query_pb2_grpc as clob_g
from v4_proto.dydxprotocol.feetiers import query_pb2 as fee_q
from v4_proto.dydxprotocol.feetiers import query_pb2_grpc as fee_g
from v4_proto.dydxprotocol.perpetuals import perpetual_pb2
from v4_proto.dydxprotocol.perpetuals import query_pb2 as perp_q
from v4_proto.dydxprotocol.perpetuals import query_pb2_grpc as perp_g
from v4_proto.dydxprotocol.prices import query_pb2 as prices_q
from v4_proto.dydxprotocol.prices import query_pb2_grpc as prices_g
from v4_proto.dydxprotocol.subaccounts import query_pb2 as sub_q
from v4_proto.dydxprotocol.subaccounts import query_pb2_grpc as sub_g

from nautilus_dydx.emulator.app import Emulator
from nautilus_dydx.emulator.params import EQUITY_TIERS, FEE_TIERS, LIQUIDITY_TIERS, USDC_DENOM
from nautilus_dydx.emulator.validator.queries import serializable_int

# Public test accounts of the official clients (protocol reference §6.1).
ALICE = "dydx1wldnytkerzs39rs28djn0p9vvqer2x2k5x8hjy"
ALICE_PUBKEY = bytes.fromhex("0291d1d9fd23334f3d53c3a5b50b56317d8964692320d73d22d7a0b115d5eb574f")
BOB = "dydx14zzueazeh0hj67cghhf9jypslcf9sh2n5k6art"
CAROL = "dydx18sukah44zfkjndlhcdmhkjnarl2sevhwf894vh"


def decode_serializable_int(raw: bytes) -> int:
    """Reference decoder of Go big.Int gob bytes, written independently of the server's encoder."""
    assert raw, "a SerializableInt is never empty"
    assert raw[0] in (2, 3), raw
    magnitude = int.from_bytes(raw[1:], "big")
    assert raw[1:2] != b"\x00", "no leading zero bytes"
    return -magnitude if raw[0] == 3 else magnitude


@pytest.fixture
async def emu() -> AsyncIterator[Emulator]:
    async with Emulator(
        block_time=3600, synthetic=False, rate_limit=None, markets=["BTC-USD", "ETH-USD", "EIGEN-USD"]
    ) as emulator:
        yield emulator


@pytest.fixture
async def channel(emu: Emulator) -> AsyncIterator[grpc.aio.Channel]:
    assert emu.grpc_target is not None
    async with grpc.aio.insecure_channel(emu.grpc_target) as ch:
        yield ch


async def _code(call: Any) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call
    return info.value.code(), info.value.details() or ""


def _trade(emu: Emulator) -> None:
    """BOB sells 0.0001 BTC at 50 000 to ALICE; committed by the next block."""
    emu.engine.deposit(ALICE, 0, 10_000_000_000)
    emu.engine.deposit(BOB, 0, 10_000_000_000)
    gtb = emu.engine.height + 10
    emu.engine.place_order(order_snapshot(BOB, 1, "SELL", 1_000_000, 5_000_000_000, gtb=gtb))
    emu.engine.place_order(order_snapshot(ALICE, 2, "BUY", 1_000_000, 5_000_000_000, gtb=gtb, tif="IOC"))
    emu.produce_block()


async def test_latest_block_and_node_info(emu: Emulator, channel: grpc.aio.Channel) -> None:
    emu.produce_block()
    emu.produce_block()
    stub = tm_g.ServiceStub(channel)
    block = await stub.GetLatestBlock(tm_q.GetLatestBlockRequest())
    assert block.block.header.height == emu.engine.height
    assert block.sdk_block.header.height == emu.engine.height
    assert block.block.header.chain_id == "localdydxprotocol"
    assert block.block.header.time.ToDatetime(tzinfo=dt.UTC) == emu.engine.block_time
    assert len(block.block_id.hash) == 32
    assert block.sdk_block.header.proposer_address.startswith("dydxvalcons1")
    emu.produce_block()
    later = await stub.GetLatestBlock(tm_q.GetLatestBlockRequest())
    assert later.block.header.height == block.block.header.height + 1
    assert later.block.header.last_block_id.hash == block.block_id.hash

    info = await stub.GetNodeInfo(tm_q.GetNodeInfoRequest())
    assert info.default_node_info.network == "localdydxprotocol"
    assert info.application_version.app_name == "dydxprotocold"


async def test_chain_id_is_configurable() -> None:
    async with Emulator(block_time=3600, synthetic=False, chain_id="dydx-testnet-4") as emulator:
        assert emulator.grpc_target is not None
        async with grpc.aio.insecure_channel(emulator.grpc_target) as ch:
            info = await tm_g.ServiceStub(ch).GetNodeInfo(tm_q.GetNodeInfoRequest())
    assert info.default_node_info.network == "dydx-testnet-4"


async def test_account_lifecycle(emu: Emulator, channel: grpc.aio.Channel) -> None:
    stub = auth_g.QueryStub(channel)
    code, details = await _code(stub.Account(auth_q.QueryAccountRequest(address=ALICE)))
    assert code == grpc.StatusCode.NOT_FOUND
    assert details == f"account {ALICE} not found"
    assert (await _code(stub.Account(auth_q.QueryAccountRequest(address="dydx1nope"))))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (await _code(stub.Account(auth_q.QueryAccountRequest(address=""))))[
        0
    ] == grpc.StatusCode.INVALID_ARGUMENT

    emu.engine.ensure_account(BOB)
    emu.engine.ensure_account(ALICE)
    response = await stub.Account(auth_q.QueryAccountRequest(address=ALICE))
    assert response.account.type_url == "/cosmos.auth.v1beta1.BaseAccount"
    account = auth_pb2.BaseAccount()
    assert response.account.Unpack(account)
    assert (account.address, account.account_number, account.sequence) == (ALICE, 1, 0)
    assert not account.HasField("pub_key")

    emu.engine.set_pub_key(ALICE, ALICE_PUBKEY)
    emu.engine.increment_sequence(ALICE)
    response = await stub.Account(auth_q.QueryAccountRequest(address=ALICE))
    assert response.account.Unpack(account)
    assert account.sequence == 1
    assert account.pub_key.type_url == "/cosmos.crypto.secp256k1.PubKey"
    key = keys_pb2.PubKey()
    assert account.pub_key.Unpack(key)
    assert key.key == ALICE_PUBKEY


async def test_bank_balances(emu: Emulator, channel: grpc.aio.Channel) -> None:
    stub = bank_g.QueryStub(channel)
    empty = await stub.Balance(bank_q.QueryBalanceRequest(address=CAROL, denom=USDC_DENOM))
    assert (empty.balance.denom, empty.balance.amount) == (USDC_DENOM, "0")
    emu.engine.fund_wallet(CAROL, USDC_DENOM, 123_000_000)
    emu.engine.fund_wallet(CAROL, "adv4tnt", 10**18)
    one = await stub.Balance(bank_q.QueryBalanceRequest(address=CAROL, denom=USDC_DENOM))
    assert one.balance.amount == "123000000"
    every = await stub.AllBalances(bank_q.QueryAllBalancesRequest(address=CAROL))
    assert [(c.denom, c.amount) for c in every.balances] == [
        ("adv4tnt", str(10**18)),
        (USDC_DENOM, "123000000"),
    ]
    code, _ = await _code(stub.Balance(bank_q.QueryBalanceRequest(address=CAROL, denom="")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_clob_pairs_match_the_indexer_markets(emu: Emulator, channel: grpc.aio.Channel) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.indexer_url}/v4/perpetualMarkets") as resp:
            markets = (await resp.json())["markets"]
    clob = clob_g.QueryStub(channel)
    perps = perp_g.QueryStub(channel)
    pairs = (await clob.ClobPairAll(clob_q.QueryAllClobPairRequest())).clob_pair
    assert [p.id for p in pairs] == [0, 1, 300]
    perpetuals = {
        p.params.id: p for p in (await perps.AllPerpetuals(perp_q.QueryAllPerpetualsRequest())).perpetual
    }
    for pair in pairs:
        # Join clob pair -> perpetual -> ticker as a client must (ids need not be equal).
        perpetual = perpetuals[pair.perpetual_clob_metadata.perpetual_id]
        market = markets[perpetual.params.ticker]
        assert str(pair.id) == market["clobPairId"]
        assert pair.step_base_quantums == market["stepBaseQuantums"]
        assert pair.subticks_per_tick == market["subticksPerTick"]
        assert pair.quantum_conversion_exponent == market["quantumConversionExponent"]
        assert pair.status == clob_pair_pb2.ClobPair.STATUS_ACTIVE
        assert perpetual.params.atomic_resolution == market["atomicResolution"]
        expected_type = "ISOLATED" if market["marketType"] == "ISOLATED" else "CROSS"
        assert perpetual_pb2.PerpetualMarketType.Name(perpetual.params.market_type).endswith(expected_type)
        one = await clob.ClobPair(clob_q.QueryGetClobPairRequest(id=pair.id))
        assert one.clob_pair == pair
    code, _ = await _code(clob.ClobPair(clob_q.QueryGetClobPairRequest(id=7)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_clob_pair_status_follows_the_engine(emu: Emulator, channel: grpc.aio.Channel) -> None:
    emu.engine.set_market_status(1, "FINAL_SETTLEMENT")
    emu.produce_block()
    pair = (await clob_g.QueryStub(channel).ClobPair(clob_q.QueryGetClobPairRequest(id=1))).clob_pair
    assert pair.status == clob_pair_pb2.ClobPair.STATUS_FINAL_SETTLEMENT


async def test_pagination(emu: Emulator, channel: grpc.aio.Channel) -> None:
    clob = clob_g.QueryStub(channel)
    first = await clob.ClobPairAll(
        clob_q.QueryAllClobPairRequest(pagination=pagination_pb2.PageRequest(limit=2, count_total=True))
    )
    assert [p.id for p in first.clob_pair] == [0, 1]
    assert first.pagination.total == 3
    assert first.pagination.next_key
    rest = await clob.ClobPairAll(
        clob_q.QueryAllClobPairRequest(
            pagination=pagination_pb2.PageRequest(key=first.pagination.next_key, limit=2)
        )
    )
    assert [p.id for p in rest.clob_pair] == [300]
    assert not rest.pagination.next_key
    offset = await clob.ClobPairAll(
        clob_q.QueryAllClobPairRequest(pagination=pagination_pb2.PageRequest(offset=1))
    )
    assert [p.id for p in offset.clob_pair] == [1, 300]
    reverse = await clob.ClobPairAll(
        clob_q.QueryAllClobPairRequest(pagination=pagination_pb2.PageRequest(reverse=True))
    )
    assert [p.id for p in reverse.clob_pair] == [300, 1, 0]
    code, _ = await _code(
        clob.ClobPairAll(
            clob_q.QueryAllClobPairRequest(pagination=pagination_pb2.PageRequest(key=b"\x00", offset=1))
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_equity_tiers_and_block_rate_limits(channel: grpc.aio.Channel) -> None:
    clob = clob_g.QueryStub(channel)
    config = (
        await clob.EquityTierLimitConfiguration(clob_q.QueryEquityTierLimitConfigurationRequest())
    ).equity_tier_limit_config
    assert not config.short_term_order_equity_tiers
    tiers = [
        (decode_serializable_int(t.usd_tnc_required), t.limit) for t in config.stateful_order_equity_tiers
    ]
    assert tiers == [(t.usd_tnc_required, t.limit) for t in EQUITY_TIERS]
    assert config.stateful_order_equity_tiers[0].usd_tnc_required == b"\x02"
    assert config.stateful_order_equity_tiers[1].usd_tnc_required == b"\x02" + (20_000_000).to_bytes(4, "big")

    limits = (
        await clob.BlockRateLimitConfiguration(clob_q.QueryBlockRateLimitConfigurationRequest())
    ).block_rate_limit_config
    assert [(r.num_blocks, r.limit) for r in limits.max_stateful_orders_per_n_blocks] == [(1, 2), (100, 20)]
    assert [(r.num_blocks, r.limit) for r in limits.max_short_term_orders_per_n_blocks] == [(1, 200)]
    assert [(r.num_blocks, r.limit) for r in limits.max_short_term_order_cancellations_per_n_blocks] == [
        (1, 200)
    ]


async def test_fee_tiers(emu: Emulator, channel: grpc.aio.Channel) -> None:
    stub = fee_g.QueryStub(channel)
    params = (await stub.PerpetualFeeParams(fee_q.QueryPerpetualFeeParamsRequest())).params
    assert [
        (t.name, t.absolute_volume_requirement, t.maker_fee_ppm, t.taker_fee_ppm) for t in params.tiers
    ] == [(t.name, t.absolute_volume_requirement, t.maker_fee_ppm, t.taker_fee_ppm) for t in FEE_TIERS]
    assert params.tiers[0].maker_fee_ppm == -110  # sint32: negative rebates survive the wire
    user = await stub.UserFeeTier(fee_q.QueryUserFeeTierRequest(user=ALICE))
    assert (user.index, user.tier.name, user.tier.taker_fee_ppm) == (0, "1", 500)
    code, _ = await _code(stub.UserFeeTier(fee_q.QueryUserFeeTierRequest(user="not-an-address")))
    assert code == grpc.StatusCode.INVALID_ARGUMENT


async def test_prices_match_engine_and_indexer(emu: Emulator, channel: grpc.aio.Channel) -> None:
    emu.engine.set_oracle_price(0, 3_012_350_000)  # 30123.5 at exponent -5
    emu.produce_block()
    stub = prices_g.QueryStub(channel)
    price = (await stub.MarketPrice(prices_q.QueryMarketPriceRequest(id=0))).market_price
    assert (price.id, price.exponent, price.price) == (0, -5, 3_012_350_000)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{emu.indexer_url}/v4/perpetualMarkets?ticker=BTC-USD") as resp:
            oracle = (await resp.json())["markets"]["BTC-USD"]["oraclePrice"]
    assert Decimal(price.price).scaleb(price.exponent) == Decimal(oracle) == Decimal("30123.5")
    every = (await stub.AllMarketPrices(prices_q.QueryAllMarketPricesRequest())).market_prices
    assert [(p.id, p.price) for p in every] == [(m, emu.engine.oracle_price(m)) for m in (0, 1, 300)]
    params = (await stub.AllMarketParams(prices_q.QueryAllMarketParamsRequest())).market_params
    assert [(p.id, p.pair, p.exponent) for p in params] == [
        (0, "BTC-USD", -5),
        (1, "ETH-USD", -6),
        (300, "EIGEN-USD", -9),
    ]
    assert params[0].min_price_change_ppm == 1_000
    code, _ = await _code(stub.MarketPrice(prices_q.QueryMarketPriceRequest(id=42)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_liquidity_tiers(channel: grpc.aio.Channel) -> None:
    response = await perp_g.QueryStub(channel).AllLiquidityTiers(perp_q.QueryAllLiquidityTiersRequest())
    got = [
        (t.id, t.name, t.initial_margin_ppm, t.maintenance_fraction_ppm, t.impact_notional)
        for t in response.liquidity_tiers
    ]
    assert got == [
        (t.id, t.name, t.initial_margin_ppm, t.maintenance_fraction_ppm, t.impact_notional)
        for t in LIQUIDITY_TIERS.values()
    ]
    assert response.liquidity_tiers[4].open_interest_upper_cap == 1_000_000_000_000


async def test_subaccount_positions_decode_from_serializable_int(
    emu: Emulator, channel: grpc.aio.Channel
) -> None:
    stub = sub_g.QueryStub(channel)
    empty = (await stub.Subaccount(sub_q.QueryGetSubaccountRequest(owner=CAROL, number=3))).subaccount
    assert (empty.id.owner, empty.id.number) == (CAROL, 3)
    assert not empty.asset_positions
    assert not empty.perpetual_positions

    _trade(emu)
    for owner, sign in ((ALICE, 1), (BOB, -1)):
        sub = (await stub.Subaccount(sub_q.QueryGetSubaccountRequest(owner=owner, number=0))).subaccount
        truth = emu.engine.subaccount(owner, 0)
        assert truth is not None
        [usdc] = sub.asset_positions
        assert usdc.asset_id == 0
        assert decode_serializable_int(usdc.quantums) == truth.usdc_quantums
        [position] = sub.perpetual_positions
        assert position.perpetual_id == 0
        assert decode_serializable_int(position.quantums) == sign * 1_000_000
        assert position.quantums[0] == (2 if sign > 0 else 3)
        assert position.funding_index == b"\x02"

    perpetual = (await perp_g.QueryStub(channel).Perpetual(perp_q.QueryPerpetualRequest(id=0))).perpetual
    assert decode_serializable_int(perpetual.open_interest) == 1_000_000
    code, _ = await _code(perp_g.QueryStub(channel).Perpetual(perp_q.QueryPerpetualRequest(id=9)))
    assert code == grpc.StatusCode.NOT_FOUND

    everything = await stub.SubaccountAll(
        sub_q.QueryAllSubaccountRequest(pagination=pagination_pb2.PageRequest(count_total=True))
    )
    ids = [(s.id.owner, s.id.number) for s in everything.subaccount]
    assert ids == sorted([(ALICE, 0), (BOB, 0)])
    assert everything.pagination.total == 2


def test_serializable_int_encoding() -> None:
    assert serializable_int(0) == b"\x02"
    assert serializable_int(1) == b"\x02\x01"
    assert serializable_int(-1) == b"\x03\x01"
    assert serializable_int(256) == b"\x02\x01\x00"
    assert serializable_int(-(10**20)) == b"\x03" + (10**20).to_bytes(9, "big")
    for value in (0, 5, -5, 2**64, -(2**64) + 1, 123_456_789_012):
        assert decode_serializable_int(serializable_int(value)) == value


async def test_unimplemented_methods_and_services(channel: grpc.aio.Channel) -> None:
    code, details = await _code(clob_g.QueryStub(channel).StatefulOrder(clob_q.QueryStatefulOrderRequest()))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert details == "unknown method StatefulOrder for service dydxprotocol.clob.Query"
    raw = channel.unary_unary("/cosmos.staking.v1beta1.Query/Validators")
    code, details = await _code(raw(b""))
    assert code == grpc.StatusCode.UNIMPLEMENTED
    assert details == "unknown service cosmos.staking.v1beta1.Query"
