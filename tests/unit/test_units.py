"""Quantization: known answers, error cases, and agreement with an independent Fraction reference."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.errors import (
    BelowIncrementError,
    ConfigError,
    DydxError,
    NonPositiveValueError,
    QuantizationError,
)
from nautilus_dydx.core.units import (
    UINT64_MAX,
    MarketParams,
    NumberTypeError,
    Rounding,
    to_decimal,
)

BTC = MarketParams(-10, -9, 1_000_000, 100_000)
ETH = MarketParams(-9, -9, 1_000_000, 100_000)


# --------------------------------------------------------------------------------------------------
# Known answers (protocol reference §2.3)


def test_btc_known_answers() -> None:
    assert BTC.tick_size == Decimal(1)
    assert BTC.step_size == Decimal("0.0001")
    assert BTC.to_quantums(Decimal("0.0001")) == 1_000_000
    assert BTC.to_subticks(Decimal(50_000), Rounding.EXACT) == 5_000_000_000
    assert BTC.from_quantums(1_000_000) == Decimal("0.0001")
    assert BTC.from_subticks(5_000_000_000) == Decimal(50_000)
    # 0.0001 BTC at 50 000 USD is 5 USDC = 5 000 000 USDC quantums.
    assert BTC.quote_quantums(1_000_000, 5_000_000_000) == 5_000_000
    assert BTC.notional("0.0001", "50000") == Decimal(5)


def test_eth_known_answers() -> None:
    assert ETH.tick_size == Decimal("0.1")
    assert ETH.step_size == Decimal("0.001")
    assert ETH.to_quantums("0.001") == 1_000_000
    assert ETH.to_subticks("3000.1", Rounding.EXACT) == 3_000_100_000
    assert ETH.from_subticks(3_000_100_000) == Decimal("3000.1")


def test_increments_render_without_noise() -> None:
    assert str(BTC.step_size) == "0.0001"
    assert str(BTC.tick_size) == "1"
    assert str(ETH.tick_size) == "0.1"
    assert str(BTC.from_quantums(1_000_000)) == "0.0001"
    assert str(BTC.from_subticks(5_000_000_000)) == "50000"


def test_inputs_may_be_decimal_int_or_str() -> None:
    expected = BTC.to_subticks(Decimal(50_000), Rounding.EXACT)
    assert BTC.to_subticks(50_000, Rounding.EXACT) == expected
    assert BTC.to_subticks("50000", Rounding.EXACT) == expected
    assert BTC.to_subticks(" 50000.000 ", Rounding.EXACT) == expected
    assert BTC.to_subticks("5E4", Rounding.EXACT) == expected


@pytest.mark.parametrize(
    ("price", "rounding", "subticks"),
    [
        ("50000.4", Rounding.DOWN, 5_000_000_000),
        ("50000.4", Rounding.UP, 5_000_100_000),
        ("50000.4", Rounding.NEAREST, 5_000_000_000),
        ("50000.6", Rounding.NEAREST, 5_000_100_000),
        ("50000.5", Rounding.NEAREST, 5_000_000_000),  # half to even: 50000
        ("50001.5", Rounding.NEAREST, 5_000_200_000),  # half to even: 50002
        ("50000", Rounding.UP, 5_000_000_000),
        ("0.5", Rounding.UP, 100_000),
    ],
)
def test_price_rounding_modes(price: str, rounding: Rounding, subticks: int) -> None:
    assert BTC.to_subticks(price, rounding) == subticks


def test_size_rounds_down_by_default() -> None:
    assert BTC.to_quantums("0.00019") == 1_000_000
    assert BTC.to_quantums("0.00019", Rounding.UP) == 2_000_000
    assert BTC.round_size("0.12345") == Decimal("0.1234")


def test_round_price_and_size() -> None:
    assert ETH.round_price("3000.17", Rounding.DOWN) == Decimal("3000.1")
    assert ETH.round_price("3000.17", Rounding.UP) == Decimal("3000.2")
    assert ETH.round_price("3000.15", Rounding.NEAREST) == Decimal("3000.2")
    assert ETH.round_size("1.0009", Rounding.NEAREST) == Decimal("1.001")


# --------------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("value", [0, "0", Decimal("-0"), -1, "-0.0001", Decimal("-50000")])
def test_non_positive_values_are_refused(value: object) -> None:
    with pytest.raises(NonPositiveValueError, match="must be positive"):
        BTC.to_quantums(value)  # type: ignore[arg-type]
    with pytest.raises(NonPositiveValueError, match="must be positive"):
        BTC.to_subticks(value, Rounding.UP)  # type: ignore[arg-type]


def test_below_increment_names_value_and_increment() -> None:
    with pytest.raises(BelowIncrementError, match=r"size 0\.00009 .*0\.0001"):
        BTC.to_quantums("0.00009")
    with pytest.raises(BelowIncrementError, match=r"price 0\.4 .*increments of 1"):
        BTC.to_subticks("0.4", Rounding.NEAREST)
    with pytest.raises(BelowIncrementError, match=r"0\.4 is below one increment of 1"):
        BTC.to_subticks("0.4", Rounding.EXACT)
    # Rounding UP never yields zero for a positive value: one tick, like the official client's clamp.
    assert BTC.to_subticks("0.4", Rounding.UP) == 100_000


def test_exact_refuses_off_grid_values() -> None:
    with pytest.raises(QuantizationError, match=r"50000\.5 is not a multiple of 1") as info:
        BTC.to_subticks("50000.5", Rounding.EXACT)
    assert not isinstance(info.value, BelowIncrementError)
    with pytest.raises(QuantizationError, match="not a multiple"):
        BTC.to_quantums("0.00015", Rounding.EXACT)


@pytest.mark.parametrize("value", [0.1, 50000.0, float("nan")])
def test_floats_are_refused_with_an_explanation(value: float) -> None:
    with pytest.raises(NumberTypeError, match="float") as info:
        BTC.to_subticks(value, Rounding.DOWN)  # type: ignore[arg-type]
    assert isinstance(info.value, DydxError)
    assert isinstance(info.value, TypeError)
    with pytest.raises(NumberTypeError, match="Decimal"):
        BTC.to_quantums(value)  # type: ignore[arg-type]
    with pytest.raises(NumberTypeError):
        BTC.notional(value, 1)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, None, [1], Fraction(1, 2)])
def test_other_types_are_refused(value: object) -> None:
    with pytest.raises(NumberTypeError):
        BTC.to_quantums(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["abc", "", "NaN", "Infinity", "-inf", Decimal("NaN"), Decimal("Inf")])
def test_non_numbers_are_refused(value: object) -> None:
    with pytest.raises(QuantizationError):
        BTC.to_quantums(value)  # type: ignore[arg-type]


def test_absurd_magnitudes_are_refused_not_computed() -> None:
    with pytest.raises(QuantizationError, match="out of range"):
        BTC.to_quantums(Decimal("1E+100000"))
    with pytest.raises(QuantizationError, match="out of range"):
        BTC.to_quantums("0." + "0" * 5000 + "1")


def test_results_beyond_uint64_are_refused() -> None:
    with pytest.raises(QuantizationError, match="uint64"):
        BTC.to_quantums(10**20)
    with pytest.raises(QuantizationError, match="uint64"):
        BTC.to_subticks(10**20, Rounding.DOWN)


def test_rounding_must_be_a_member() -> None:
    with pytest.raises(NumberTypeError, match="Rounding"):
        BTC.to_subticks("1", "down")  # type: ignore[arg-type]


def test_from_conversions_accept_signed_ints_only() -> None:
    assert BTC.from_quantums(-25_000_000) == Decimal("-0.0025")
    assert BTC.from_quantums(0) == 0
    with pytest.raises(NumberTypeError):
        BTC.from_quantums(1.0)  # type: ignore[arg-type]
    with pytest.raises(NumberTypeError):
        BTC.from_subticks(True)
    with pytest.raises(NumberTypeError):
        BTC.quote_quantums(1, "2")  # type: ignore[arg-type]


def test_quote_quantums_rounds_down_like_the_chain() -> None:
    # 1 quantum × 999 subticks × 10^-9 = 9.99e-7 USDC quantums -> 0.
    assert BTC.quote_quantums(1, 999) == 0
    assert BTC.quote_quantums(3, 10**9 - 1) == 2
    assert MarketParams(-6, 2, 1, 1).quote_quantums(3, 4) == 1200


def test_to_decimal_helper() -> None:
    assert to_decimal("1.50") == Decimal("1.50")
    assert to_decimal(7) == Decimal(7)
    with pytest.raises(NumberTypeError, match="price: float"):
        to_decimal(1.5, what="price")  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------------
# Parameters


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((-10, -9, 0, 100_000), "step_base_quantums must be in"),
        ((-10, -9, 1_000_000, 0), "subticks_per_tick must be in"),
        ((-10, -9, 1_000_000, 2**32), "subticks_per_tick must be in"),
        ((-10, -9, 2**64, 1), "step_base_quantums must be in"),
        ((-65, -9, 1, 1), "atomic_resolution must be in"),
        ((-10, 65, 1, 1), "quantum_conversion_exponent must be in"),
        ((-10.0, -9, 1, 1), "atomic_resolution must be an int"),
        ((True, -9, 1, 1), "atomic_resolution must be an int"),
    ],
)
def test_invalid_params(args: tuple[object, ...], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        MarketParams(*args)  # type: ignore[arg-type]


def test_from_indexer_parses_and_cross_checks() -> None:
    params = MarketParams.from_indexer(
        atomic_resolution=-10,
        quantum_conversion_exponent="-9",
        step_base_quantums="1000000",
        subticks_per_tick=100_000,
        tick_size="1",
        step_size="0.00010",
    )
    assert params == BTC
    btc: dict[str, Any] = {
        "atomic_resolution": -10,
        "quantum_conversion_exponent": -9,
        "step_base_quantums": 1_000_000,
        "subticks_per_tick": 100_000,
    }
    with pytest.raises(ConfigError, match=r"tick_size 0\.1 disagrees with 1"):
        MarketParams.from_indexer(**btc, tick_size="0.1")
    with pytest.raises(ConfigError, match="step_base_quantums must be an integer"):
        MarketParams.from_indexer(**(btc | {"step_base_quantums": "1e6"}))
    with pytest.raises(ConfigError, match="step_size"):
        MarketParams.from_indexer(
            atomic_resolution=-10,
            quantum_conversion_exponent=-9,
            step_base_quantums=1,
            subticks_per_tick=1,
            step_size="x",
        )


def test_every_captured_market_agrees_with_the_indexer_increments(shared_fixtures: Path) -> None:
    files = sorted(shared_fixtures.rglob("*perpetual_markets*.json"))
    checked = 0
    for path in files:
        body = json.loads(path.read_text())
        body = body.get("result", body)
        for ticker, market in body.get("markets", {}).items():
            params = MarketParams.from_indexer(
                atomic_resolution=market["atomicResolution"],
                quantum_conversion_exponent=market["quantumConversionExponent"],
                step_base_quantums=market["stepBaseQuantums"],
                subticks_per_tick=market["subticksPerTick"],
                tick_size=market["tickSize"],
                step_size=market["stepSize"],
            )
            assert params.tick_size == Decimal(market["tickSize"]), ticker
            checked += 1
    assert checked > 10, f"expected many markets in {files}"


# --------------------------------------------------------------------------------------------------
# Properties against an independent reference written with Fraction


def _ref_round(x: Fraction, rounding: Rounding) -> int | None:
    """Round a positive Fraction to an int; ``None`` when EXACT and not whole."""
    if rounding is Rounding.DOWN:
        return math.floor(x)
    if rounding is Rounding.UP:
        return math.ceil(x)
    if rounding is Rounding.NEAREST:
        return round(x)  # Fraction.__round__ rounds half to even
    return int(x) if x.denominator == 1 else None


def _ref_quantize(value: Decimal, scale: Fraction, increment: int, rounding: Rounding) -> int | str:
    exact = Fraction(value) * scale / increment
    if value <= 0:
        return "nonpositive"
    n = _ref_round(exact, rounding)
    if n is None:
        return "below" if exact < 1 else "inexact"
    if n == 0:
        return "below"
    if n * increment > UINT64_MAX:
        return "overflow"
    return n * increment


params_st = st.builds(
    MarketParams,
    atomic_resolution=st.integers(-18, 6),
    quantum_conversion_exponent=st.integers(-12, 3),
    step_base_quantums=st.one_of(st.sampled_from([1, 10, 1000, 1_000_000]), st.integers(1, 10**9)),
    subticks_per_tick=st.one_of(st.sampled_from([1, 10, 1000, 100_000, 1_000_000]), st.integers(1, 10**6)),
)
values_st = st.decimals(
    min_value=Decimal("-1"), max_value=Decimal("1e7"), allow_nan=False, allow_infinity=False, places=None
).filter(lambda d: abs(d.as_tuple().exponent) <= 40)  # type: ignore[arg-type]
rounding_st = st.sampled_from(list(Rounding))


def _outcome(fn: object, *args: object) -> int | str:
    try:
        return fn(*args)  # type: ignore[operator, no-any-return]
    except NonPositiveValueError:
        return "nonpositive"
    except BelowIncrementError:
        return "below"
    except QuantizationError as exc:
        return "overflow" if "uint64" in str(exc) else "inexact"


@settings(max_examples=300, deadline=None)
@given(params=params_st, value=values_st, rounding=rounding_st)
def test_to_quantums_matches_reference(params: MarketParams, value: Decimal, rounding: Rounding) -> None:
    scale = Fraction(10) ** -params.atomic_resolution
    expected = _ref_quantize(value, scale, params.step_base_quantums, rounding)
    assert _outcome(params.to_quantums, value, rounding) == expected


@settings(max_examples=300, deadline=None)
@given(params=params_st, value=values_st, rounding=rounding_st)
def test_to_subticks_matches_reference(params: MarketParams, value: Decimal, rounding: Rounding) -> None:
    scale = Fraction(10) ** (params.atomic_resolution - params.quantum_conversion_exponent + 6)
    expected = _ref_quantize(value, scale, params.subticks_per_tick, rounding)
    assert _outcome(params.to_subticks, value, rounding) == expected


@settings(max_examples=200, deadline=None)
@given(params=params_st, steps=st.integers(1, 10**6), rounding=rounding_st)
def test_quantums_round_trip(params: MarketParams, steps: int, rounding: Rounding) -> None:
    quantums = steps * params.step_base_quantums
    size = params.from_quantums(quantums)
    assert Fraction(size) == Fraction(quantums) * Fraction(10) ** params.atomic_resolution
    assert params.to_quantums(size, rounding) == quantums
    assert params.to_quantums(str(size), Rounding.EXACT) == quantums


@settings(max_examples=200, deadline=None)
@given(params=params_st, ticks=st.integers(1, 10**6), rounding=rounding_st)
def test_subticks_round_trip(params: MarketParams, ticks: int, rounding: Rounding) -> None:
    subticks = ticks * params.subticks_per_tick
    price = params.from_subticks(subticks)
    assert params.to_subticks(price, rounding) == subticks
    assert params.round_price(price, rounding) == price


@settings(max_examples=200, deadline=None)
@given(params=params_st)
def test_increments_match_reference(params: MarketParams) -> None:
    ar, qce = params.atomic_resolution, params.quantum_conversion_exponent
    assert Fraction(params.step_size) == params.step_base_quantums * Fraction(10) ** ar
    assert Fraction(params.tick_size) == params.subticks_per_tick * Fraction(10) ** (qce - 6 - ar)
    # One step at one tick: the quote quantums are the exact notional in 1e-6 USDC, floored.
    notional = Fraction(params.notional(params.step_size, params.tick_size))
    assert params.quote_quantums(params.step_base_quantums, params.subticks_per_tick) == math.floor(
        notional * 10**6
    )


@settings(max_examples=200, deadline=None)
@given(
    quantums=st.integers(-(10**12), 10**12),
    subticks=st.integers(0, 10**12),
    qce=st.integers(-12, 3),
)
def test_quote_quantums_is_floor_of_exact_product(quantums: int, subticks: int, qce: int) -> None:
    params = MarketParams(-9, qce, 1, 1)
    expected = math.floor(Fraction(quantums * subticks) * Fraction(10) ** qce)
    assert params.quote_quantums(quantums, subticks) == expected
