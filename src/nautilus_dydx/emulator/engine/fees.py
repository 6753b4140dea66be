"""Perpetual trading fees in integer USDC quantums.

Rounding: a fee is ``quote × ppm / 1e6`` rounded towards +infinity. A taker fee (positive ppm) is
therefore rounded up and a maker rebate (negative ppm) rounded towards zero, so the fee collector's
take on every fill, ``taker_fee + maker_fee``, is never below the exact value and the venue never pays
out a fraction of a quantum it did not collect.
"""

from __future__ import annotations

from collections.abc import Sequence

from nautilus_dydx.emulator.params import FeeTier

__all__ = ["fee_quantums", "fee_tier_for_volume"]


def fee_tier_for_volume(tiers: Sequence[FeeTier], volume: int) -> FeeTier:
    """The highest tier whose absolute volume requirement ``volume`` (USDC quantums) meets.

    Tiers are ranked by the owner's own cumulative volume only; share-of-market requirements are
    ignored (the emulator has no 30-day market volume to measure a share against).
    """
    chosen = tiers[0]
    for tier in tiers:
        if volume >= tier.absolute_volume_requirement:
            chosen = tier
    return chosen


def fee_quantums(quote_quantums: int, fee_ppm: int) -> int:
    """``quote × ppm / 1e6`` rounded towards +infinity (see the module docstring)."""
    return -((-quote_quantums * fee_ppm) // 1_000_000)
