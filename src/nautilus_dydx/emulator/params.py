"""Chain parameters the emulator ships with, written out as constants.

Values are the dYdX v4 launch / protocol test-genesis values (see ``docs`` of the protocol reference,
§7): the emulator carries its own copy and never reads captured files at run time. Live mainnet values
are governance-controlled and differ; every engine limit here can be overridden when constructing
the :class:`~nautilus_dydx.emulator.engine.ChainEngine`.

Sources of the facts (read, not copied): dydxprotocol/v4-chain ``protocol/testing/mainnet/genesis.json``
(BTC/ETH/SOL clob pairs, perpetuals, market prices, fee tiers, equity tiers, block rate limits) and
``protocol/testing/genesis.sh`` (the ``Isolated`` liquidity tier and the isolated EIGEN-USD listing).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from nautilus_dydx.emulator.events import MarketInfo, MarketType

__all__ = [
    "BLOCK_RATE_LIMITS",
    "CHAIN_ID",
    "DEFAULT_MARKETS",
    "EQUITY_TIERS",
    "FEE_TIERS",
    "LIQUIDITY_TIERS",
    "MARKETS",
    "MAX_BATCH_CANCEL_IDS",
    "NATIVE_DENOM",
    "SHORT_BLOCK_WINDOW",
    "STATEFUL_ORDER_TIME_WINDOW",
    "USDC_DENOM",
    "BlockRateLimit",
    "BlockRateLimits",
    "EquityTier",
    "FeeTier",
    "LiquidityTier",
    "MarketSpec",
    "market_info",
]

CHAIN_ID = "localdydxprotocol"
USDC_DENOM = "ibc/8E27BA2D5493AF5636760E354E46004562C46AB7EC0CC4C1CA14E9E20E2545B5"
NATIVE_DENOM = "adv4tnt"

#: Current protocol value (40); older releases and the client constants use 20.
SHORT_BLOCK_WINDOW = 40
STATEFUL_ORDER_TIME_WINDOW = dt.timedelta(days=95)
MAX_BATCH_CANCEL_IDS = 100


@dataclass(frozen=True, slots=True)
class LiquidityTier:
    """Margin parameters shared by a group of perpetuals."""

    id: int
    name: str
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    impact_notional: int
    open_interest_lower_cap: int = 0
    open_interest_upper_cap: int = 0


LIQUIDITY_TIERS: dict[int, LiquidityTier] = {
    0: LiquidityTier(0, "Large-Cap", 50_000, 600_000, 10_000_000_000),
    1: LiquidityTier(1, "Mid-Cap", 100_000, 500_000, 5_000_000_000),
    2: LiquidityTier(2, "Long-Tail", 200_000, 500_000, 2_500_000_000),
    3: LiquidityTier(3, "Safety", 1_000_000, 200_000, 2_500_000_000),
    # The tier permissionless isolated listings use; open-interest caps 500k / 1M USDC.
    4: LiquidityTier(4, "Isolated", 50_000, 600_000, 2_500_000_000, 500_000_000_000, 1_000_000_000_000),
}


@dataclass(frozen=True, slots=True)
class MarketSpec:
    """One perpetual market: its clob pair, perpetual, oracle market and starting oracle price."""

    ticker: str
    clob_pair_id: int
    perpetual_id: int
    market_id: int
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    liquidity_tier: int
    price_exponent: int
    start_price: int  # in units of 10**price_exponent
    market_type: MarketType = "CROSS"
    default_funding_ppm: int = 100  # 8-hour rate, as on the protocol's test genesis
    min_price_change_ppm: int = 1_000


MARKETS: dict[str, MarketSpec] = {
    spec.ticker: spec
    for spec in (
        MarketSpec("BTC-USD", 0, 0, 0, -10, -9, 1_000_000, 100_000, 0, -5, 2_868_819_524),
        MarketSpec("ETH-USD", 1, 1, 1, -9, -9, 1_000_000, 100_000, 0, -6, 1_811_985_252),
        MarketSpec(
            "SOL-USD", 5, 5, 5, -7, -9, 1_000_000, 1_000_000, 1, -8, 2_350_695_125, min_price_change_ppm=2_500
        ),
        MarketSpec(
            "EIGEN-USD",
            300,
            300,
            300,
            -6,
            -9,
            1_000_000,
            1_000_000,
            4,
            -9,
            4_973_000_000,
            market_type="ISOLATED",
            min_price_change_ppm=800,
        ),
    )
}

DEFAULT_MARKETS: tuple[str, ...] = ("BTC-USD", "ETH-USD", "SOL-USD", "EIGEN-USD")


def market_info(spec: MarketSpec) -> MarketInfo:
    """The :class:`MarketInfo` event value of a market spec (status ACTIVE)."""
    tier = LIQUIDITY_TIERS[spec.liquidity_tier]
    return MarketInfo(
        clob_pair_id=spec.clob_pair_id,
        perpetual_id=spec.perpetual_id,
        market_id=spec.market_id,
        ticker=spec.ticker,
        atomic_resolution=spec.atomic_resolution,
        quantum_conversion_exponent=spec.quantum_conversion_exponent,
        step_base_quantums=spec.step_base_quantums,
        subticks_per_tick=spec.subticks_per_tick,
        initial_margin_ppm=tier.initial_margin_ppm,
        maintenance_fraction_ppm=tier.maintenance_fraction_ppm,
        market_type=spec.market_type,
        status="ACTIVE",
        price_exponent=spec.price_exponent,
        default_funding_ppm=spec.default_funding_ppm,
        liquidity_tier=tier.id,
        open_interest_lower_cap=tier.open_interest_lower_cap,
        open_interest_upper_cap=tier.open_interest_upper_cap,
    )


@dataclass(frozen=True, slots=True)
class FeeTier:
    """A perpetual fee tier: reached by cumulative volume (USDC quantums); fees in ppm (negative = rebate)."""

    name: str
    absolute_volume_requirement: int
    maker_fee_ppm: int
    taker_fee_ppm: int
    total_volume_share_requirement_ppm: int = 0
    maker_volume_share_requirement_ppm: int = 0


# Launch genesis tiers. The engine ranks by the owner's own cumulative volume only (no share
# requirements: there is no 30-day market-wide volume to share against), so tiers 6-9 are reached by
# volume alone.
FEE_TIERS: tuple[FeeTier, ...] = (
    FeeTier("1", 0, -110, 500),
    FeeTier("2", 1_000_000_000_000, -110, 450),
    FeeTier("3", 5_000_000_000_000, -110, 400),
    FeeTier("4", 25_000_000_000_000, -110, 350),
    FeeTier("5", 125_000_000_000_000, -110, 300),
    FeeTier("6", 125_000_000_000_000, -110, 250, 5_000),
    FeeTier("7", 125_000_000_000_000, -110, 250, 5_000, 10_000),
    FeeTier("8", 125_000_000_000_000, -110, 250, 5_000, 20_000),
    FeeTier("9", 125_000_000_000_000, -110, 250, 5_000, 40_000),
)


@dataclass(frozen=True, slots=True)
class EquityTier:
    """Open stateful orders allowed from a net collateral (USDC quantums) upwards."""

    usd_tnc_required: int
    limit: int


EQUITY_TIERS: tuple[EquityTier, ...] = (
    EquityTier(0, 0),
    EquityTier(20_000_000, 1),
    EquityTier(100_000_000, 5),
    EquityTier(1_000_000_000, 10),
    EquityTier(10_000_000_000, 100),
    EquityTier(100_000_000_000, 200),
)


@dataclass(frozen=True, slots=True)
class BlockRateLimit:
    """At most ``limit`` operations per account over the last ``num_blocks`` blocks."""

    num_blocks: int
    limit: int


@dataclass(frozen=True, slots=True)
class BlockRateLimits:
    """The clob's BlockRateLimitConfiguration."""

    max_short_term_orders_per_n_blocks: tuple[BlockRateLimit, ...]
    max_stateful_orders_per_n_blocks: tuple[BlockRateLimit, ...]
    max_short_term_order_cancellations_per_n_blocks: tuple[BlockRateLimit, ...]


BLOCK_RATE_LIMITS = BlockRateLimits(
    max_short_term_orders_per_n_blocks=(BlockRateLimit(1, 200),),
    max_stateful_orders_per_n_blocks=(BlockRateLimit(1, 2), BlockRateLimit(100, 20)),
    max_short_term_order_cancellations_per_n_blocks=(BlockRateLimit(1, 200),),
)
