"""Accounts, subaccounts, perpetual positions and their margin (protocol reference §3.3, §6.3).

Cash is exact: every USDC movement is an integer number of quantums (1e-6 USDC) added to one balance
and taken from another. Valuations (equity, margin requirements) are exact rationals
(:class:`fractions.Fraction`) and only rounded at the edge: equity is floored and the margin
requirement ceiled, so a subaccount is never shown healthier than it is.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction

from nautilus_dydx.emulator.events import MarketInfo, PositionSnapshot, SubaccountRef

__all__ = [
    "Account",
    "Position",
    "Risk",
    "Subaccount",
    "SubaccountState",
    "position_notional",
    "quote_quantums",
]

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def quote_quantums(market: MarketInfo, base_quantums: int, subticks: int) -> int:
    """USDC quantums of a fill: ``base × subticks × 10^QCE``, rounded down (§2.3)."""
    value = base_quantums * subticks
    qce = market.quantum_conversion_exponent
    return int(value * 10**qce) if qce >= 0 else int(value // 10**-qce)


def position_notional(market: MarketInfo, quantums: int, oracle_price: int) -> Fraction:
    """Signed value in USDC quantums of ``quantums`` base quantums at an oracle price.

    ``size × price × 1e6`` with ``size = quantums × 10^AR`` and ``price = oracle × 10^exponent``.
    """
    exponent = market.atomic_resolution + market.price_exponent + 6
    if exponent >= 0:
        return Fraction(quantums * oracle_price * 10**exponent)
    return Fraction(quantums * oracle_price, 10**-exponent)


@dataclass(slots=True)
class Account:
    """A chain account (``cosmos.auth`` BaseAccount plus its bank balances).

    Attributes:
        address: bech32 address.
        account_number: assigned when the address first received funds.
        sequence: replay counter of stateful transactions (the tx layer increments it).
        pub_key: compressed secp256k1 public key, known after the first signed transaction.
        balances: wallet balances by denom, in the denom's smallest unit.
    """

    address: str
    account_number: int
    sequence: int = 0
    pub_key: bytes | None = None
    balances: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Position:
    """An open perpetual position (mutable engine state; see :class:`PositionSnapshot`)."""

    clob_pair_id: int
    quantums: int
    entry_quote_quantums: int
    open_event_id: bytes
    created_height: int
    created_time: dt.datetime | None
    realized_pnl: int = 0
    net_funding: int = 0
    sum_open: int = 0
    sum_close: int = 0
    max_size: int = 0
    exit_quote_quantums: int = 0
    open_quote_quantums: int = 0  # total cost of the opening fills, never reduced by closing
    closed_height: int | None = None
    closed_time: dt.datetime | None = None

    def snapshot(self) -> PositionSnapshot:
        return PositionSnapshot(
            clob_pair_id=self.clob_pair_id,
            quantums=self.quantums,
            entry_quote_quantums=self.entry_quote_quantums,
            realized_pnl=self.realized_pnl,
            net_funding=self.net_funding,
            sum_open=self.sum_open,
            sum_close=self.sum_close,
            max_size=self.max_size,
            open_event_id=self.open_event_id,
            created_height=self.created_height,
            created_time=self.created_time or _EPOCH,
            closed_height=self.closed_height,
            closed_time=self.closed_time,
            exit_quote_quantums=self.exit_quote_quantums if self.closed_height is not None else None,
            open_quote_quantums=self.open_quote_quantums,
        )


@dataclass(frozen=True, slots=True)
class Risk:
    """Exact valuation of a subaccount: equity and margin requirements in USDC quantums."""

    equity: Fraction
    initial_requirement: Fraction
    maintenance_requirement: Fraction

    @property
    def free_collateral(self) -> Fraction:
        return self.equity - self.initial_requirement


@dataclass(slots=True)
class Subaccount:
    """A subaccount's mutable state: signed USDC quantums and open positions by clob pair id."""

    ref: SubaccountRef
    usdc: int = 0
    positions: dict[int, Position] = field(default_factory=dict)
    closed: list[Position] = field(default_factory=list)  # closed since the last block

    def position_quantums(self, clob_pair_id: int) -> int:
        position = self.positions.get(clob_pair_id)
        return position.quantums if position is not None else 0

    def risk(
        self,
        markets: Mapping[int, MarketInfo],
        prices: Mapping[int, int],
        *,
        usdc_delta: int = 0,
        position_deltas: Mapping[int, int] | None = None,
    ) -> Risk:
        """Equity and margin requirements (§3.3), optionally after hypothetical changes.

        equity = USDC + Σ size × oracle; initial requirement = Σ |notional| × IMF;
        maintenance = initial × maintenance fraction.
        """
        deltas = position_deltas or {}
        equity = Fraction(self.usdc + usdc_delta)
        imr = Fraction(0)
        mmr = Fraction(0)
        for clob_pair_id in set(self.positions) | set(deltas):
            quantums = self.position_quantums(clob_pair_id) + deltas.get(clob_pair_id, 0)
            if quantums == 0:
                continue
            market = markets[clob_pair_id]
            notional = position_notional(market, quantums, prices[clob_pair_id])
            equity += notional
            initial = abs(notional) * market.initial_margin_ppm / 1_000_000
            imr += initial
            mmr += initial * market.maintenance_fraction_ppm / 1_000_000
        return Risk(equity, imr, mmr)

    def state(self, markets: Mapping[int, MarketInfo], prices: Mapping[int, int]) -> SubaccountState:
        risk = self.risk(markets, prices)
        return SubaccountState(
            subaccount=self.ref,
            usdc_quantums=self.usdc,
            positions=tuple(p.snapshot() for _, p in sorted(self.positions.items())),
            equity=_floor(risk.equity),
            free_collateral=_floor(risk.equity) - _ceil(risk.initial_requirement),
            initial_requirement=_ceil(risk.initial_requirement),
            maintenance_requirement=_ceil(risk.maintenance_requirement),
        )


@dataclass(frozen=True, slots=True)
class SubaccountState:
    """A read-only view of a subaccount, valued at the current oracle prices.

    Attributes:
        subaccount: ``(address, number)``.
        usdc_quantums: signed USDC balance (negative when positions were bought on margin).
        positions: open perpetual positions, by ascending clob pair id.
        equity: USDC + Σ position × oracle price, floored, USDC quantums.
        free_collateral: equity − initial margin requirement (IMF = initial_margin_ppm / 1e6).
        initial_requirement: Σ |notional| × IMF, ceiled.
        maintenance_requirement: initial requirement × maintenance fraction, ceiled.
    """

    subaccount: SubaccountRef
    usdc_quantums: int
    positions: tuple[PositionSnapshot, ...]
    equity: int
    free_collateral: int
    initial_requirement: int
    maintenance_requirement: int


def _floor(value: Fraction) -> int:
    return value.numerator // value.denominator


def _ceil(value: Fraction) -> int:
    return -(-value.numerator // value.denominator)
