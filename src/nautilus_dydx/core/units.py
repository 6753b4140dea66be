"""Unit types and exact quantization between human values and dYdX v4 chain integers.

Human values are :class:`~decimal.Decimal` behind ``NewType``s (``UsdPrice``, ``BaseQty`` ...), chain
values are ``int`` (``Subticks``, ``Quantums``), so that mypy catches a size passed as a price. Every
conversion here is exact: a decimal value is split into an integer coefficient and a power of ten, and
all rounding to a step or a tick is integer division. No float is accepted, produced or used, and no
decimal context precision can silently round a result.

The formulas (protocol reference §2.3), with ``AR`` the atomic resolution and ``QCE`` the quantum
conversion exponent of a market::

    quantums      = size  × 10^(−AR)                  multiple of step_base_quantums
    subticks      = price × 10^(AR − QCE + 6)         multiple of subticks_per_tick
    tick size     = subticks_per_tick × 10^(QCE − 6 − AR)
    step size     = step_base_quantums × 10^AR
    quote quantums of a fill = floor(quantums × subticks × 10^QCE)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import NewType

from nautilus_dydx.core.errors import (
    BelowIncrementError,
    ConfigError,
    DydxError,
    NonPositiveValueError,
    QuantizationError,
)

__all__ = [
    "UINT32_MAX",
    "UINT64_MAX",
    "BaseQty",
    "FeeRate",
    "MarketParams",
    "NumberLike",
    "NumberTypeError",
    "Quantums",
    "QuoteQty",
    "QuoteQuantums",
    "Rounding",
    "Subticks",
    "UsdPrice",
    "to_decimal",
]

UsdPrice = NewType("UsdPrice", Decimal)
"""A price in USD (quote) per one unit of the base asset."""
BaseQty = NewType("BaseQty", Decimal)
"""A size in units of the base asset (e.g. BTC)."""
QuoteQty = NewType("QuoteQty", Decimal)
"""An amount of the quote asset, USDC."""
FeeRate = NewType("FeeRate", Decimal)
"""A fee as a fraction of notional (``Decimal("0.0005")`` is 5 bps)."""
Subticks = NewType("Subticks", int)
"""A chain price: ``price × 10^(AR − QCE + 6)``."""
Quantums = NewType("Quantums", int)
"""A chain base size: ``size × 10^(−AR)``."""
QuoteQuantums = NewType("QuoteQuantums", int)
"""A chain USDC amount, 1 quantum = 10^−6 USDC."""

NumberLike = Decimal | int | str
"""What the conversions accept for human values. ``float`` is refused on purpose."""

UINT64_MAX = 2**64 - 1
"""Largest quantums / subticks value an order message can carry (proto ``uint64``)."""
UINT32_MAX = 2**32 - 1
"""Largest ``subticks_per_tick`` (proto ``uint32``)."""

# Exponents of market parameters and of input values are bounded so that the integer powers of ten
# built below stay small; real markets use exponents between about -15 and 0.
_MAX_PARAM_EXPONENT = 64
_MAX_VALUE_EXPONENT = 1000

_USDC_ATOMIC_RESOLUTION = -6


class NumberTypeError(DydxError, TypeError):
    """A value of a type the quantization refuses, most importantly ``float``.

    A float cannot hold most decimal prices exactly (``0.1`` is ``0.1000000000000000055...``), so a
    float that reaches order building is a unit bug waiting to round the wrong way. Pass ``Decimal``,
    ``int`` or ``str`` instead.
    """


class Rounding(enum.Enum):
    """How a value that is not a multiple of its increment becomes one."""

    DOWN = "down"
    """Towards zero (floor for the positive values quantized here)."""
    UP = "up"
    """Away from zero (ceiling for positive values)."""
    NEAREST = "nearest"
    """To the nearest multiple; an exact half goes to the even multiple (banker's rounding)."""
    EXACT = "exact"
    """No rounding: raise :class:`~nautilus_dydx.core.errors.QuantizationError` unless already a multiple."""


def to_decimal(value: NumberLike, *, what: str = "value") -> Decimal:
    """Convert ``value`` to a finite ``Decimal`` exactly, refusing floats and booleans.

    Args:
        value: a ``Decimal``, an ``int`` or a decimal string such as ``"50000.5"``.
        what: the name of the value, used in error messages.

    Raises:
        NumberTypeError: for a ``float``, a ``bool`` or any other type.
        QuantizationError: for a string that is not a number, NaN or infinity.
    """
    if isinstance(value, bool):
        raise NumberTypeError(f"{what}: a bool is not a number; got {value!r}")
    if isinstance(value, float):
        raise NumberTypeError(
            f"{what}: float {value!r} refused; floats cannot represent most decimal prices and sizes "
            f"exactly. Pass Decimal({str(value)!r}), a str or an int instead"
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise QuantizationError(f"{what}: {value!r} is not a decimal number") from None
    else:
        raise NumberTypeError(f"{what}: expected Decimal, int or str; got {type(value).__name__} {value!r}")
    if not result.is_finite():
        raise QuantizationError(f"{what}: {value!r} is not a finite number")
    return result


def _split(value: Decimal, what: str) -> tuple[int, int]:
    """``(coefficient, exponent)`` with ``value == coefficient × 10^exponent``, exactly."""
    sign, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite values only reach here
    if abs(exponent) > _MAX_VALUE_EXPONENT or len(digits) > _MAX_VALUE_EXPONENT:
        raise QuantizationError(f"{what}: {value} is out of range")
    coefficient = int("".join(map(str, digits))) if digits else 0
    return (-coefficient if sign else coefficient), exponent


def _scaled(coefficient: int, exponent: int) -> Decimal:
    """The exact ``Decimal`` ``coefficient × 10^exponent`` without trailing zeros after the point."""
    if exponent >= 0:
        return Decimal(coefficient * 10**exponent)
    while exponent < 0 and coefficient % 10 == 0 and coefficient != 0:
        coefficient //= 10
        exponent += 1
    if coefficient == 0:
        return Decimal(0)
    return Decimal(f"{coefficient}E{exponent}")


def _ratio(coefficient: int, exponent: int) -> tuple[int, int]:
    """``coefficient × 10^exponent`` as ``(numerator, denominator)`` integers."""
    if exponent >= 0:
        return coefficient * 10**exponent, 1
    return coefficient, 10**-exponent


def _divide(numerator: int, denominator: int, rounding: Rounding) -> tuple[int, bool]:
    """Round ``numerator / denominator`` (both positive) to an integer; also say if it was exact."""
    quotient, remainder = divmod(numerator, denominator)
    if remainder == 0:
        return quotient, True
    if rounding is Rounding.DOWN or rounding is Rounding.EXACT:
        return quotient, False
    if rounding is Rounding.UP:
        return quotient + 1, False
    twice = 2 * remainder
    if twice > denominator or (twice == denominator and quotient % 2 == 1):
        return quotient + 1, False
    return quotient, False


def _check_param(name: str, value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"market params: {name} must be an int; got {type(value).__name__} {value!r}")
    if not low <= value <= high:
        raise ConfigError(f"market params: {name} must be in [{low}, {high}]; got {value}")
    return value


def _parse_int(name: str, value: int | str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"market params: {name} must be an integer; got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] in "+-" else text
        if body.isdigit() and body.isascii():
            return int(text)
    raise ConfigError(f"market params: {name} must be an integer; got {value!r}")


@dataclass(frozen=True, slots=True)
class MarketParams:
    """The four integers that fix a perpetual market's units, with exact conversions both ways.

    Values come from the indexer's ``perpetualMarkets`` (or the chain's ``Perpetual`` and ``ClobPair``).
    Prices and sizes given as input may be ``Decimal``, ``int`` or ``str``; never ``float``.

    Args:
        atomic_resolution: ``AR``: one base quantum is ``10^AR`` units of the base asset.
        quantum_conversion_exponent: ``QCE``: links subticks × quantums to USDC quantums.
        step_base_quantums: every order size is a multiple of this many quantums.
        subticks_per_tick: every order price is a multiple of this many subticks.

    Raises:
        ConfigError: when a parameter is not an int or is out of range (steps and ticks must be
            positive, ``subticks_per_tick`` fits a ``uint32``, exponents within ±64).

    Example:
        >>> btc = MarketParams(-10, -9, 1_000_000, 100_000)
        >>> btc.tick_size, btc.step_size
        (Decimal('1'), Decimal('0.0001'))
        >>> btc.to_quantums("0.0001"), btc.to_subticks("50000", Rounding.EXACT)
        (1000000, 5000000000)
    """

    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int

    def __post_init__(self) -> None:
        _check_param("atomic_resolution", self.atomic_resolution, -_MAX_PARAM_EXPONENT, _MAX_PARAM_EXPONENT)
        _check_param(
            "quantum_conversion_exponent",
            self.quantum_conversion_exponent,
            -_MAX_PARAM_EXPONENT,
            _MAX_PARAM_EXPONENT,
        )
        _check_param("step_base_quantums", self.step_base_quantums, 1, UINT64_MAX)
        _check_param("subticks_per_tick", self.subticks_per_tick, 1, UINT32_MAX)

    @classmethod
    def from_indexer(
        cls,
        *,
        atomic_resolution: int | str,
        quantum_conversion_exponent: int | str,
        step_base_quantums: int | str,
        subticks_per_tick: int | str,
        tick_size: NumberLike | None = None,
        step_size: NumberLike | None = None,
    ) -> MarketParams:
        """Build from the plain values of an indexer ``perpetualMarkets`` entry.

        The indexer sends the four integers as JSON numbers; strings holding integers are accepted too.
        When the indexer's own ``tickSize`` / ``stepSize`` strings are given, they are checked against
        the values derived from the integers, so a market whose parameters disagree with what the venue
        displays is refused rather than traded with the wrong increments.

        Raises:
            ConfigError: a parameter is malformed or out of range, or ``tick_size`` / ``step_size``
                disagree with the derived increments.
        """
        params = cls(
            _parse_int("atomic_resolution", atomic_resolution),
            _parse_int("quantum_conversion_exponent", quantum_conversion_exponent),
            _parse_int("step_base_quantums", step_base_quantums),
            _parse_int("subticks_per_tick", subticks_per_tick),
        )
        for name, given, derived in (
            ("tick_size", tick_size, params.tick_size),
            ("step_size", step_size, params.step_size),
        ):
            if given is None:
                continue
            try:
                given_value = to_decimal(given, what=name)
            except QuantizationError as exc:
                raise ConfigError(f"market params: {exc}") from None
            if given_value != derived:
                raise ConfigError(
                    f"market params: {name} {given} disagrees with {derived} derived from {params}"
                )
        return params

    # Exponent of 10 that turns a human price into subticks: subticks = price × 10^_price_shift.
    @property
    def _price_shift(self) -> int:
        return self.atomic_resolution - self.quantum_conversion_exponent - _USDC_ATOMIC_RESOLUTION

    @property
    def tick_size(self) -> UsdPrice:
        """The price increment in USD: ``subticks_per_tick × 10^(QCE − 6 − AR)``."""
        return UsdPrice(_scaled(self.subticks_per_tick, -self._price_shift))

    @property
    def step_size(self) -> BaseQty:
        """The size increment in base units: ``step_base_quantums × 10^AR``."""
        return BaseQty(_scaled(self.step_base_quantums, self.atomic_resolution))

    def _quantize(
        self, value: NumberLike, shift: int, increment: int, rounding: Rounding, what: str, unit: Decimal
    ) -> int:
        """``value × 10^shift`` rounded to a positive multiple of ``increment``, as an int."""
        if not isinstance(rounding, Rounding):
            raise NumberTypeError(f"rounding must be a Rounding member; got {rounding!r}")
        number = to_decimal(value, what=what)
        if number <= 0:
            raise NonPositiveValueError(f"{what} must be positive; got {value}")
        coefficient, exponent = _split(number, what)
        numerator, denominator = _ratio(coefficient, exponent + shift)
        increments, exact = _divide(numerator, denominator * increment, rounding)
        if rounding is Rounding.EXACT and not exact:
            if increments == 0:
                raise BelowIncrementError(f"{what} {value} is below one increment of {unit}")
            raise QuantizationError(f"{what} {value} is not a multiple of {unit} (rounding=EXACT)")
        if increments == 0:
            raise BelowIncrementError(
                f"{what} {value} rounds to zero increments of {unit} (rounding={rounding.name})"
            )
        result = increments * increment
        if result > UINT64_MAX:
            raise QuantizationError(f"{what} {value} exceeds the chain's uint64 range ({result})")
        return result

    def to_quantums(self, size: NumberLike, rounding: Rounding = Rounding.DOWN) -> Quantums:
        """Base quantums for a human size, rounded to a multiple of ``step_base_quantums``.

        Sizes round DOWN by default: an order never becomes larger than asked.

        Raises:
            NumberTypeError: ``size`` is a float, a bool or an unsupported type.
            NonPositiveValueError: ``size`` is zero or negative.
            BelowIncrementError: ``size`` rounds to zero steps.
            QuantizationError: not a multiple with ``Rounding.EXACT``, or beyond ``uint64``.
        """
        return Quantums(
            self._quantize(
                size, -self.atomic_resolution, self.step_base_quantums, rounding, "size", self.step_size
            )
        )

    def to_subticks(self, price: NumberLike, rounding: Rounding) -> Subticks:
        """Subticks for a human price, rounded to a multiple of ``subticks_per_tick``.

        The caller chooses the rounding: a buy usually rounds DOWN and a sell UP so that the limit is
        never worse than asked; ``Rounding.EXACT`` refuses any price off the tick grid.

        Raises:
            NumberTypeError: ``price`` is a float, a bool or an unsupported type.
            NonPositiveValueError: ``price`` is zero or negative.
            BelowIncrementError: ``price`` rounds to zero ticks.
            QuantizationError: not a multiple with ``Rounding.EXACT``, or beyond ``uint64``.
        """
        return Subticks(
            self._quantize(
                price, self._price_shift, self.subticks_per_tick, rounding, "price", self.tick_size
            )
        )

    def from_quantums(self, quantums: int) -> BaseQty:
        """The human size of ``quantums`` (any sign, e.g. a short position): ``quantums × 10^AR``."""
        _require_int("quantums", quantums)
        return BaseQty(_scaled(quantums, self.atomic_resolution))

    def from_subticks(self, subticks: int) -> UsdPrice:
        """The human price of ``subticks``: ``subticks × 10^(QCE − 6 − AR)``."""
        _require_int("subticks", subticks)
        return UsdPrice(_scaled(subticks, -self._price_shift))

    def quote_quantums(self, quantums: int, subticks: int) -> QuoteQuantums:
        """USDC quantums of a fill of ``quantums`` at ``subticks``, rounded down as the chain does.

        ``floor(quantums × subticks × 10^QCE)``; the result is exact whenever both inputs are on their
        step and tick grids, which holds for every market the venue lists.
        """
        _require_int("quantums", quantums)
        _require_int("subticks", subticks)
        numerator, denominator = _ratio(quantums * subticks, self.quantum_conversion_exponent)
        return QuoteQuantums(numerator // denominator)

    def notional(self, size: NumberLike, price: NumberLike) -> QuoteQty:
        """``size × price`` in USDC, exactly (no rounding to any grid)."""
        size_c, size_e = _split(to_decimal(size, what="size"), "size")
        price_c, price_e = _split(to_decimal(price, what="price"), "price")
        return QuoteQty(_scaled(size_c * price_c, size_e + price_e))

    def round_price(self, price: NumberLike, rounding: Rounding) -> UsdPrice:
        """``price`` moved onto the tick grid (same errors as :meth:`to_subticks`)."""
        return self.from_subticks(self.to_subticks(price, rounding))

    def round_size(self, size: NumberLike, rounding: Rounding = Rounding.DOWN) -> BaseQty:
        """``size`` moved onto the step grid (same errors as :meth:`to_quantums`)."""
        return self.from_quantums(self.to_quantums(size, rounding))


def _require_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise NumberTypeError(f"{name} must be an int; got {type(value).__name__} {value!r}")
