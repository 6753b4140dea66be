"""The validator's gRPC query services, answered from the chain engine's state (protocol reference §7).

Each class serves one protobuf service; :attr:`SERVICE` is its descriptor and every ``async`` method
named after an RPC of that service is registered by :mod:`.server` (methods not written here answer
UNIMPLEMENTED). Values are read from the :class:`~..engine.chain.ChainEngine` at call time, so a query
sees the state after the latest block and after every transaction accepted since (the emulator's
CheckTx and DeliverTx states are the same).

Faithfulness points:

* ``cosmos.auth`` Account: ``Any(BaseAccount)`` with ``pub_key`` once the account signed a transaction;
  an address that never received funds is NOT_FOUND, a malformed one INVALID_ARGUMENT.
* SerializableInt fields (positions, funding index, open interest, equity-tier thresholds) are Go
  ``big.Int`` gob bytes: ``0x02`` (>= 0) or ``0x03`` (< 0), then the big-endian magnitude (§2.4).
* ``dydxprotocol.subaccounts`` Subaccount of an unknown subaccount is an empty subaccount, not an
  error, as the keeper's ``GetSubaccount`` returns a zero value.
* Unknown clob pair, perpetual or market ids are NOT_FOUND.
* List queries honour ``PageRequest`` offset/limit/count_total/key (the key is an opaque offset).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import bech32  # type: ignore[import-untyped,unused-ignore]
import grpc  # type: ignore[import-untyped,unused-ignore]
from google.protobuf import any_pb2, timestamp_pb2  # type: ignore[import-untyped,unused-ignore]
from v4_proto.cosmos.auth.v1beta1 import auth_pb2
from v4_proto.cosmos.auth.v1beta1 import query_pb2 as auth_query
from v4_proto.cosmos.bank.v1beta1 import query_pb2 as bank_query
from v4_proto.cosmos.base.query.v1beta1 import pagination_pb2
from v4_proto.cosmos.base.tendermint.v1beta1 import query_pb2 as tm_query
from v4_proto.cosmos.base.v1beta1 import coin_pb2
from v4_proto.cosmos.crypto.secp256k1 import keys_pb2
from v4_proto.dydxprotocol.clob import (
    block_rate_limit_config_pb2,
    clob_pair_pb2,
    equity_tier_limit_config_pb2,
)
from v4_proto.dydxprotocol.clob import query_pb2 as clob_query
from v4_proto.dydxprotocol.feetiers import params_pb2 as fee_params
from v4_proto.dydxprotocol.feetiers import query_pb2 as fee_query
from v4_proto.dydxprotocol.perpetuals import perpetual_pb2
from v4_proto.dydxprotocol.perpetuals import query_pb2 as perp_query
from v4_proto.dydxprotocol.prices import market_param_pb2, market_price_pb2
from v4_proto.dydxprotocol.prices import query_pb2 as prices_query
from v4_proto.dydxprotocol.subaccounts import asset_position_pb2, perpetual_position_pb2, subaccount_pb2
from v4_proto.dydxprotocol.subaccounts import query_pb2 as sub_query

from nautilus_dydx.emulator.events import MarketInfo
from nautilus_dydx.emulator.params import LIQUIDITY_TIERS, MARKETS, BlockRateLimit

if TYPE_CHECKING:
    from nautilus_dydx.emulator.engine.accounts import SubaccountState
    from nautilus_dydx.emulator.engine.chain import ChainEngine

__all__ = [
    "AuthQuery",
    "BankQuery",
    "ClobQuery",
    "FeeTiersQuery",
    "PerpetualsQuery",
    "PricesQuery",
    "SubaccountsQuery",
    "TendermintService",
    "query_servicers",
    "serializable_int",
]

Context = Any  # grpc.aio.ServicerContext (grpc ships no type information)
T = TypeVar("T")

USDC_ASSET_ID = 0
DEFAULT_PAGE_LIMIT = 100
ACCOUNT_PREFIX = "dydx"

_CLOB_STATUS = {
    "ACTIVE": clob_pair_pb2.ClobPair.STATUS_ACTIVE,
    "PAUSED": clob_pair_pb2.ClobPair.STATUS_PAUSED,
    "CANCEL_ONLY": clob_pair_pb2.ClobPair.STATUS_CANCEL_ONLY,
    "POST_ONLY": clob_pair_pb2.ClobPair.STATUS_POST_ONLY,
    "INITIALIZING": clob_pair_pb2.ClobPair.STATUS_INITIALIZING,
    "FINAL_SETTLEMENT": clob_pair_pb2.ClobPair.STATUS_FINAL_SETTLEMENT,
}
_MARKET_TYPE = {
    "CROSS": perpetual_pb2.PERPETUAL_MARKET_TYPE_CROSS,
    "ISOLATED": perpetual_pb2.PERPETUAL_MARKET_TYPE_ISOLATED,
}


def serializable_int(value: int) -> bytes:
    """Go ``big.Int.GobEncode`` of ``value``: sign byte 0x02/0x03 then the big-endian magnitude.

    Zero is the single byte ``0x02``.
    """
    magnitude = abs(value)
    sign = b"\x03" if value < 0 else b"\x02"
    if magnitude == 0:
        return sign
    return sign + magnitude.to_bytes((magnitude.bit_length() + 7) // 8, "big")


def _valid_address(address: str) -> bool:
    hrp, data = bech32.bech32_decode(address)
    return hrp == ACCOUNT_PREFIX and data is not None


async def _require_address(context: Context, address: str) -> None:
    if not address:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "Address cannot be empty")
    if not _valid_address(address):
        await context.abort(
            grpc.StatusCode.INVALID_ARGUMENT, f"invalid address {address!r}: decoding bech32 failed"
        )


async def _page(context: Context, request_page: Any, items: Sequence[T]) -> tuple[Sequence[T], Any]:
    """Slice ``items`` by a ``PageRequest``; returns the slice and the ``PageResponse``."""
    offset = int(request_page.offset)
    if request_page.key:
        if request_page.offset:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                "paginate: invalid request, either offset or key is expected, got both",
            )
        offset = int.from_bytes(request_page.key, "big")
    limit = int(request_page.limit) or DEFAULT_PAGE_LIMIT
    if request_page.reverse:
        items = list(reversed(items))
    chosen = items[offset : offset + limit]
    response = pagination_pb2.PageResponse()
    if offset + limit < len(items):
        response.next_key = (offset + limit).to_bytes(8, "big")
    if request_page.count_total:
        response.total = len(items)
    return chosen, response


class AuthQuery:
    """``cosmos.auth.v1beta1.Query``: Account."""

    SERVICE = auth_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    async def Account(self, request: Any, context: Context) -> Any:
        """The BaseAccount of an address (NOT_FOUND until it first received funds)."""
        await _require_address(context, request.address)
        account = self.engine.account(request.address)
        if account is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"account {request.address} not found")
        assert account is not None
        base = auth_pb2.BaseAccount(
            address=account.address, account_number=account.account_number, sequence=account.sequence
        )
        if account.pub_key is not None:
            base.pub_key.Pack(keys_pb2.PubKey(key=account.pub_key), type_url_prefix="/")
        packed = any_pb2.Any()
        packed.Pack(base, type_url_prefix="/")
        return auth_query.QueryAccountResponse(account=packed)


class BankQuery:
    """``cosmos.bank.v1beta1.Query``: Balance, AllBalances (wallet balances, not subaccounts)."""

    SERVICE = bank_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    def _balances(self, address: str) -> dict[str, int]:
        account = self.engine.account(address)
        return dict(account.balances) if account is not None else {}

    async def Balance(self, request: Any, context: Context) -> Any:
        """One denom's balance (zero for an unknown address or denom)."""
        await _require_address(context, request.address)
        if not request.denom:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid denom")
        amount = self._balances(request.address).get(request.denom, 0)
        return bank_query.QueryBalanceResponse(balance=coin_pb2.Coin(denom=request.denom, amount=str(amount)))

    async def AllBalances(self, request: Any, context: Context) -> Any:
        """Every non-zero balance, sorted by denom."""
        await _require_address(context, request.address)
        coins = [
            coin_pb2.Coin(denom=denom, amount=str(amount))
            for denom, amount in sorted(self._balances(request.address).items())
            if amount > 0
        ]
        chosen, page = await _page(context, request.pagination, coins)
        return bank_query.QueryAllBalancesResponse(balances=chosen, pagination=page)


class TendermintService:
    """``cosmos.base.tendermint.v1beta1.Service``: GetLatestBlock, GetNodeInfo."""

    SERVICE = tm_query.DESCRIPTOR.services_by_name["Service"]

    #: The emulator's one validator (20-byte consensus address, fixed).
    PROPOSER = hashlib.sha256(b"nautilus-dydx emulator validator").digest()[:20]

    def __init__(self, engine: ChainEngine, chain_id: str) -> None:
        self.engine = engine
        self.chain_id = chain_id

    def _block_hash(self, height: int) -> bytes:
        return hashlib.sha256(f"{self.chain_id}/{height}".encode()).digest()

    async def GetLatestBlock(self, request: Any, context: Context) -> Any:
        """The latest committed block: ``block.header.{chain_id, height, time}`` and ``sdk_block``."""
        height = self.engine.height
        time = timestamp_pb2.Timestamp()
        time.FromDatetime(self.engine.block_time.astimezone(dt.UTC).replace(tzinfo=None))
        response = tm_query.GetLatestBlockResponse()
        response.block_id.hash = self._block_hash(height)
        response.block_id.part_set_header.total = 1
        response.block_id.part_set_header.hash = hashlib.sha256(self._block_hash(height)).digest()
        for header in (response.block.header, response.sdk_block.header):
            header.version.block = 11
            header.chain_id = self.chain_id
            header.height = height
            header.time.CopyFrom(time)
            if height > 1:
                header.last_block_id.hash = self._block_hash(height - 1)
        response.block.header.proposer_address = self.PROPOSER
        response.sdk_block.header.proposer_address = bech32.bech32_encode(
            "dydxvalcons", bech32.convertbits(self.PROPOSER, 8, 5) or []
        )
        return response

    async def GetNodeInfo(self, request: Any, context: Context) -> Any:
        """Node information; ``default_node_info.network`` is the chain id."""
        response = tm_query.GetNodeInfoResponse()
        info = response.default_node_info
        info.protocol_version.p2p = 8
        info.protocol_version.block = 11
        info.default_node_id = self.PROPOSER.hex()
        info.listen_addr = "tcp://127.0.0.1:26656"
        info.network = self.chain_id
        info.version = "0.38.0"
        info.moniker = "nautilus-dydx-emulator"
        info.other.tx_index = "on"
        version = response.application_version
        version.name = "dydxprotocol"
        version.app_name = "dydxprotocold"
        version.version = "emulator"
        version.cosmos_sdk_version = "v0.50"
        return response


def _clob_pair(market: MarketInfo) -> Any:
    return clob_pair_pb2.ClobPair(
        id=market.clob_pair_id,
        perpetual_clob_metadata=clob_pair_pb2.PerpetualClobMetadata(perpetual_id=market.perpetual_id),
        step_base_quantums=market.step_base_quantums,
        subticks_per_tick=market.subticks_per_tick,
        quantum_conversion_exponent=market.quantum_conversion_exponent,
        status=_CLOB_STATUS[market.status],
    )


def _rate_limits(limits: Sequence[BlockRateLimit]) -> list[Any]:
    return [
        block_rate_limit_config_pb2.MaxPerNBlocksRateLimit(num_blocks=r.num_blocks, limit=r.limit)
        for r in limits
    ]


class ClobQuery:
    """``dydxprotocol.clob.Query``: ClobPair, ClobPairAll, EquityTierLimitConfiguration,
    BlockRateLimitConfiguration."""

    SERVICE = clob_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    async def ClobPair(self, request: Any, context: Context) -> Any:
        """One clob pair by id (NOT_FOUND when not listed)."""
        market = self.engine.markets.get(request.id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        assert market is not None
        return clob_query.QueryClobPairResponse(clob_pair=_clob_pair(market))

    async def ClobPairAll(self, request: Any, context: Context) -> Any:
        """Every clob pair by ascending id."""
        pairs = [_clob_pair(m) for _, m in sorted(self.engine.markets.items())]
        chosen, page = await _page(context, request.pagination, pairs)
        return clob_query.QueryClobPairAllResponse(clob_pair=chosen, pagination=page)

    async def EquityTierLimitConfiguration(self, request: Any, context: Context) -> Any:
        """Stateful-order equity tiers (thresholds as SerializableInt bytes); short-term tiers are
        no longer configured on chain."""
        config = equity_tier_limit_config_pb2.EquityTierLimitConfiguration(
            stateful_order_equity_tiers=[
                equity_tier_limit_config_pb2.EquityTierLimit(
                    usd_tnc_required=serializable_int(t.usd_tnc_required), limit=t.limit
                )
                for t in self.engine.equity_tiers
            ]
        )
        return clob_query.QueryEquityTierLimitConfigurationResponse(equity_tier_limit_config=config)

    async def BlockRateLimitConfiguration(self, request: Any, context: Context) -> Any:
        """The block rate limits the engine enforces."""
        limits = self.engine.block_rate_limits
        config = block_rate_limit_config_pb2.BlockRateLimitConfiguration(
            max_short_term_orders_per_n_blocks=_rate_limits(limits.max_short_term_orders_per_n_blocks),
            max_stateful_orders_per_n_blocks=_rate_limits(limits.max_stateful_orders_per_n_blocks),
            max_short_term_order_cancellations_per_n_blocks=_rate_limits(
                limits.max_short_term_order_cancellations_per_n_blocks
            ),
        )
        return clob_query.QueryBlockRateLimitConfigurationResponse(block_rate_limit_config=config)


def _fee_tier(tier: Any) -> Any:
    return fee_params.PerpetualFeeTier(
        name=tier.name,
        absolute_volume_requirement=tier.absolute_volume_requirement,
        total_volume_share_requirement_ppm=tier.total_volume_share_requirement_ppm,
        maker_volume_share_requirement_ppm=tier.maker_volume_share_requirement_ppm,
        maker_fee_ppm=tier.maker_fee_ppm,
        taker_fee_ppm=tier.taker_fee_ppm,
    )


class FeeTiersQuery:
    """``dydxprotocol.feetiers.Query``: PerpetualFeeParams, UserFeeTier."""

    SERVICE = fee_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    async def PerpetualFeeParams(self, request: Any, context: Context) -> Any:
        """Every fee tier."""
        params = fee_params.PerpetualFeeParams(tiers=[_fee_tier(t) for t in self.engine.fee_tiers])
        return fee_query.QueryPerpetualFeeParamsResponse(params=params)

    async def UserFeeTier(self, request: Any, context: Context) -> Any:
        """The tier an address trades at, and its index in the tier list."""
        if not _valid_address(request.user):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "invalid bech32 address")
        tier = self.engine.fee_tier(request.user)
        index = list(self.engine.fee_tiers).index(tier)
        return fee_query.QueryUserFeeTierResponse(index=index, tier=_fee_tier(tier))


class PricesQuery:
    """``dydxprotocol.prices.Query``: MarketPrice, AllMarketPrices, MarketParam, AllMarketParams."""

    SERVICE = prices_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    def _by_market_id(self) -> dict[int, MarketInfo]:
        return {m.market_id: m for m in self.engine.markets.values()}

    def _price(self, market: MarketInfo) -> Any:
        return market_price_pb2.MarketPrice(
            id=market.market_id,
            exponent=market.price_exponent,
            price=self.engine.oracle_price(market.clob_pair_id),
        )

    @staticmethod
    def _param(market: MarketInfo) -> Any:
        spec = MARKETS.get(market.ticker)
        return market_param_pb2.MarketParam(
            id=market.market_id,
            pair=market.ticker,
            exponent=market.price_exponent,
            min_exchanges=1,
            min_price_change_ppm=spec.min_price_change_ppm if spec is not None else 1_000,
            exchange_config_json='{"exchanges":[]}',
        )

    async def _market(self, context: Context, market_id: int) -> MarketInfo:
        market = self._by_market_id().get(market_id)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "not found")
        assert market is not None
        return market

    async def MarketPrice(self, request: Any, context: Context) -> Any:
        """The oracle price of one market id (human price = price × 10^exponent)."""
        market = await self._market(context, request.id)
        return prices_query.QueryMarketPriceResponse(market_price=self._price(market))

    async def AllMarketPrices(self, request: Any, context: Context) -> Any:
        """Every oracle price by ascending market id."""
        prices = [self._price(m) for _, m in sorted(self._by_market_id().items())]
        chosen, page = await _page(context, request.pagination, prices)
        return prices_query.QueryAllMarketPricesResponse(market_prices=chosen, pagination=page)

    async def MarketParam(self, request: Any, context: Context) -> Any:
        """The oracle parameters of one market id."""
        market = await self._market(context, request.id)
        return prices_query.QueryMarketParamResponse(market_param=self._param(market))

    async def AllMarketParams(self, request: Any, context: Context) -> Any:
        """Every market's oracle parameters by ascending market id."""
        params = [self._param(m) for _, m in sorted(self._by_market_id().items())]
        chosen, page = await _page(context, request.pagination, params)
        return prices_query.QueryAllMarketParamsResponse(market_params=chosen, pagination=page)


class PerpetualsQuery:
    """``dydxprotocol.perpetuals.Query``: Perpetual, AllPerpetuals, AllLiquidityTiers."""

    SERVICE = perp_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    def _perpetual(self, market: MarketInfo, open_interest: int) -> Any:
        return perpetual_pb2.Perpetual(
            params=perpetual_pb2.PerpetualParams(
                id=market.perpetual_id,
                ticker=market.ticker,
                market_id=market.market_id,
                atomic_resolution=market.atomic_resolution,
                default_funding_ppm=market.default_funding_ppm,
                liquidity_tier=market.liquidity_tier,
                market_type=_MARKET_TYPE[market.market_type],
            ),
            # The engine settles funding as cash payments and keeps no cumulative index.
            funding_index=serializable_int(0),
            open_interest=serializable_int(open_interest),
        )

    def _open_interest(self) -> dict[int, int]:
        """Long base quantums by clob pair id (equal to the short side)."""
        totals: dict[int, int] = {}
        for state in self.engine.subaccounts():
            for position in state.positions:
                if position.quantums > 0:
                    totals[position.clob_pair_id] = totals.get(position.clob_pair_id, 0) + position.quantums
        return totals

    async def Perpetual(self, request: Any, context: Context) -> Any:
        """One perpetual by id (NOT_FOUND when not listed)."""
        market = next((m for m in self.engine.markets.values() if m.perpetual_id == request.id), None)
        if market is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"Perpetual id {request.id} not found")
        assert market is not None
        oi = self._open_interest().get(market.clob_pair_id, 0)
        return perp_query.QueryPerpetualResponse(perpetual=self._perpetual(market, oi))

    async def AllPerpetuals(self, request: Any, context: Context) -> Any:
        """Every perpetual by ascending id."""
        oi = self._open_interest()
        markets = sorted(self.engine.markets.values(), key=lambda m: m.perpetual_id)
        perpetuals = [self._perpetual(m, oi.get(m.clob_pair_id, 0)) for m in markets]
        chosen, page = await _page(context, request.pagination, perpetuals)
        return perp_query.QueryAllPerpetualsResponse(perpetual=chosen, pagination=page)

    async def AllLiquidityTiers(self, request: Any, context: Context) -> Any:
        """Every liquidity tier by ascending id."""
        tiers = [
            perpetual_pb2.LiquidityTier(
                id=t.id,
                name=t.name,
                initial_margin_ppm=t.initial_margin_ppm,
                maintenance_fraction_ppm=t.maintenance_fraction_ppm,
                impact_notional=t.impact_notional,
                open_interest_lower_cap=t.open_interest_lower_cap,
                open_interest_upper_cap=t.open_interest_upper_cap,
            )
            for _, t in sorted(LIQUIDITY_TIERS.items())
        ]
        chosen, page = await _page(context, request.pagination, tiers)
        return perp_query.QueryAllLiquidityTiersResponse(liquidity_tiers=chosen, pagination=page)


def _subaccount(engine: ChainEngine, owner: str, number: int, state: SubaccountState | None) -> Any:
    message = subaccount_pb2.Subaccount(id=subaccount_pb2.SubaccountId(owner=owner, number=number))
    if state is None:
        return message
    if state.usdc_quantums != 0:
        message.asset_positions.append(
            asset_position_pb2.AssetPosition(
                asset_id=USDC_ASSET_ID, quantums=serializable_int(state.usdc_quantums)
            )
        )
    for position in state.positions:
        if position.quantums == 0:
            continue
        market = engine.markets[position.clob_pair_id]
        message.perpetual_positions.append(
            perpetual_position_pb2.PerpetualPosition(
                perpetual_id=market.perpetual_id,
                quantums=serializable_int(position.quantums),
                funding_index=serializable_int(0),
                quote_balance=serializable_int(0),
            )
        )
    return message


class SubaccountsQuery:
    """``dydxprotocol.subaccounts.Query``: Subaccount, SubaccountAll."""

    SERVICE = sub_query.DESCRIPTOR.services_by_name["Query"]

    def __init__(self, engine: ChainEngine) -> None:
        self.engine = engine

    async def Subaccount(self, request: Any, context: Context) -> Any:
        """One subaccount: USDC as asset 0 and perpetual positions, all as SerializableInt bytes."""
        await _require_address(context, request.owner)
        state = self.engine.subaccount(request.owner, request.number)
        return sub_query.QuerySubaccountResponse(
            subaccount=_subaccount(self.engine, request.owner, request.number, state)
        )

    async def SubaccountAll(self, request: Any, context: Context) -> Any:
        """Every subaccount, ordered by (owner, number)."""
        states = sorted(self.engine.subaccounts(), key=lambda s: (s.subaccount.address, s.subaccount.number))
        chosen, page = await _page(context, request.pagination, states)
        return sub_query.QuerySubaccountAllResponse(
            subaccount=[
                _subaccount(self.engine, s.subaccount.address, s.subaccount.number, s) for s in chosen
            ],
            pagination=page,
        )


def query_servicers(engine: ChainEngine, chain_id: str) -> list[Any]:
    """One instance of every query servicer of this module, bound to ``engine``."""
    return [
        AuthQuery(engine),
        BankQuery(engine),
        TendermintService(engine, chain_id),
        ClobQuery(engine),
        FeeTiersQuery(engine),
        PricesQuery(engine),
        PerpetualsQuery(engine),
        SubaccountsQuery(engine),
    ]
