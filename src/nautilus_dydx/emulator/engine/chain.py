"""The emulated dYdX v4 chain: blocks, markets, oracle, accounts, matching, fees and funding.

One :class:`ChainEngine` is the whole state machine. It is synchronous and does no I/O: the app calls
:meth:`ChainEngine.produce_block` on a timer and the public mutators (place, cancel, transfers) from
its request handlers; every state change is reported as a :mod:`..events` value to the sinks.

Timing, as on the venue (see :mod:`..events`):

* Short-term orders (flag 0) are validated and matched at once, as the proposer's memclob does in
  CheckTx. Their off-chain events (``OrderPlaced`` BEST_EFFORT_OPENED, optimistic ``OrderUpdated``,
  ``OrderRemoved`` BEST_EFFORT_CANCELED) go out immediately; the fills are committed in the next
  block (``FillCommitted``, ``OrderRemoved`` FILLED, ``SubaccountUpdated``).
* Stateful orders (long-term 64, conditional 32) and their cancels are validated at once and take
  effect in the next block ``N``: ``OrderPlaced`` OPEN / UNTRIGGERED. A long-term order enters the
  book only after block ``N`` is committed (the venue's PrepareCheckState puts the orders of the last
  block on its memclob): it matches as a taker then, off-chain like a short-term order, and its
  fills are committed in block ``N+1`` at the earliest. A conditional order triggered in block ``N``
  enters the book the same way.
* Balances and positions change when a fill matches (the proposer's view), so the collateral check
  of the next order already sees it; the on-chain events that report them are stamped with the block
  that commits them.

Block ``N`` (:meth:`ChainEngine.produce_block`) runs: the stateful placements and cancels of the
mempool; short-term orders and short-term cancels with GTB <= N expire (the venue purges them right
after committing block GTB, so block GTB is the last that can hold their fills), and stateful orders
with GTBT <= block time; the oracle moves; conditional orders are triggered against the new oracle
price and the lowest and highest price of the fills the block commits, clamped near the oracle;
funding is settled when due; every queued on-chain event is emitted, then
``SubaccountUpdated`` for every subaccount that changed, then ``BlockCommitted``. After the commit,
the long-term orders block ``N`` placed and then the conditional orders it triggered enter the book
(post-only ones first, as the venue places them in two passes).

Event ids are 12 bytes: height (u32 BE) | transaction index (u32 BE) | event index (u32 BE). Every
engine call that is a transaction (a place, a transfer) gets the next transaction index of the block
that will commit it; operations the block itself runs (funding) get their own indices after those,
and the matching of stateful orders right after a commit takes the first indices of the next block.

Order of the checks, as the chain's CheckTx runs them (x/clob ante: the rate-limit decorator, then the
clob decorator): ``ValidateBasic``; for a short-term place / cancel / batch cancel the GTB window
(10/11) and then the block rate limit (5001); for a stateful place the rate limit; then the clob
pair's tick, step and status checks (12, 34) and the rest; a long-term place ends with the equity
tier (10001) and the full-size collateral check (2005, 3007). The engine charges the rate limit only
for operations it accepts; the chain's limiter also charges attempts that fail later.

:meth:`ChainEngine.atomic` runs several calls all-or-nothing (a multi-message transaction): state
and events are rolled back together when one call raises; rate-limit charges are kept, as on chain.

Matching rules (price-time priority, maker's price, integer subticks and quantums):

* A taker meeting a maker of its own subaccount cancels the maker (SELF_TRADE_ERROR) and continues.
* Collateral: a fill is allowed for a subaccount when, after the fill and its fee, free collateral is
  >= 0, or the fill only reduces its position in that market (never opens or flips it). A taker that
  fails is removed (UNDERCOLLATERALIZED) before the fill; a maker that fails is removed and matching
  goes on with the next maker.
* POST_ONLY: a short-term post-only order that would cross another subaccount's order is rejected with
  clob 2003 (§5.4: a memclob CheckTx error, the order never exists); a stateful one (already in
  state when it meets the book, where no error can be returned) is removed with
  POST_ONLY_WOULD_CROSS_MAKER_ORDER in the next block. Own orders it would cross are cancelled first
  (self-trade), as the memclob does.
* IOC: the unfilled remainder is removed with IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK.
* Reduce-only (IOC only): placing one that would increase the position is clob 2001; while matching,
  every fill is capped at the position left, and when the position is flat the remainder is removed
  with REDUCE_ONLY_RESIZE.
* FOK is rejected (clob 48).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime as dt
import logging
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any, Literal, cast

from nautilus_dydx.emulator.engine.accounts import (
    Account,
    Position,
    Subaccount,
    SubaccountState,
    position_notional,
    quote_quantums,
)
from nautilus_dydx.emulator.engine.errors import EngineError, clob_error, subaccounts_error
from nautilus_dydx.emulator.engine.fees import fee_quantums, fee_tier_for_volume
from nautilus_dydx.emulator.engine.matching import Book, BookOrder, BookState
from nautilus_dydx.emulator.engine.oracle import Oracle
from nautilus_dydx.emulator.engine.validation import (
    go_order_id,
    validate_batch_cancel_basic,
    validate_cancel_basic,
    validate_conditional_trigger,
    validate_good_til_block,
    validate_good_til_block_time,
    validate_order_against_market,
    validate_order_basic,
    validate_replacement,
)
from nautilus_dydx.emulator.events import (
    CONDITIONAL,
    LONG_TERM,
    SHORT_TERM,
    BlockCommitted,
    ChainEvent,
    FillCommitted,
    FundingUpdated,
    MarketInfo,
    MarketListed,
    MarketStatus,
    MarketStatusChanged,
    OraclePriceUpdated,
    OrderKey,
    OrderPlaced,
    OrderRemoved,
    OrderSnapshot,
    OrderTriggered,
    OrderUpdated,
    Side,
    SubaccountRef,
    SubaccountUpdated,
    TransferCommitted,
    TransferType,
)
from nautilus_dydx.emulator.params import (
    BLOCK_RATE_LIMITS,
    DEFAULT_MARKETS,
    EQUITY_TIERS,
    FEE_TIERS,
    MARKETS,
    NATIVE_DENOM,
    STATEFUL_ORDER_TIME_WINDOW,
    USDC_DENOM,
    BlockRateLimit,
    BlockRateLimits,
    EquityTier,
    FeeTier,
    market_info,
)

__all__ = ["ChainEngine", "EngineError", "event_id"]

log = logging.getLogger(__name__)

Sink = Callable[[ChainEvent], None]
RateKind = Literal["short_term", "stateful", "cancel"]

#: x/clob rate_limit: a MsgBatchCancel costs this much of the short-term cancel budget.
BATCH_CANCEL_RATE_LIMIT_WEIGHT = 2
#: x/clob ConditionalOrderTriggerMultiplier: trade prices trigger only within this many min price
#: changes of the oracle price.
CONDITIONAL_TRIGGER_MULTIPLIER = 5
# Rate-limit counts older than this many blocks are dropped (longer than any configured window).
_RATE_HORIZON = 200
#: BlockRateLimitConfiguration field each rate-limit kind is configured by (named in 5001 texts).
_RATE_CONTEXT: dict[RateKind, str] = {
    "short_term": "MaxShortTermOrdersPerNBlocks",
    "stateful": "MaxStatefulOrdersPerNBlocks",
    "cancel": "MaxShortTermOrderCancellationsPerNBlocks",
}

# On-chain events queued before their block exists carry this time; the block replaces it.
_UNSTAMPED = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

REASON_EXPIRED = "ORDER_REMOVAL_REASON_EXPIRED"
REASON_USER_CANCELED = "ORDER_REMOVAL_REASON_USER_CANCELED"
REASON_UNDERCOLLATERALIZED = "ORDER_REMOVAL_REASON_UNDERCOLLATERALIZED"
REASON_SELF_TRADE = "ORDER_REMOVAL_REASON_SELF_TRADE_ERROR"
REASON_POST_ONLY = "ORDER_REMOVAL_REASON_POST_ONLY_WOULD_CROSS_MAKER_ORDER"
REASON_IOC = "ORDER_REMOVAL_REASON_IMMEDIATE_OR_CANCEL_WOULD_REST_ON_BOOK"
REASON_REDUCE_ONLY = "ORDER_REMOVAL_REASON_REDUCE_ONLY_RESIZE"
REASON_FULLY_FILLED = "ORDER_REMOVAL_REASON_FULLY_FILLED"
REASON_REPLACED = "ORDER_REMOVAL_REASON_REPLACED"


def event_id(height: int, tx_index: int, event_index: int) -> bytes:
    """The 12-byte event id: height | transaction index | event index, each a big-endian u32."""
    return height.to_bytes(4, "big") + tx_index.to_bytes(4, "big") + event_index.to_bytes(4, "big")


@dataclass(slots=True)
class _LiveOrder:
    """An order the chain holds: resting on the book, or a conditional order waiting for its trigger."""

    order: OrderSnapshot
    state: Literal["RESTING", "UNTRIGGERED", "TRIGGERED"]
    seq: int


def _ref(key: OrderKey) -> SubaccountRef:
    return SubaccountRef(key.owner, key.subaccount_number)


def _fires(order: OrderSnapshot, price: Fraction) -> bool:
    """Whether a conditional order triggers at ``price`` (subticks): a stop-loss buy or take-profit
    sell at or above its trigger, a stop-loss sell or take-profit buy at or below it. Exact: the
    venue's rounding of the price towards the trigger's side changes nothing against an integer."""
    rising = (order.condition_type == "STOP_LOSS") == (order.side == "BUY")
    return price >= order.trigger_subticks if rising else price <= order.trigger_subticks


def _go_order(order: OrderSnapshot) -> str:
    """The order fields the venue's ``%+v`` of an Order starts with (for error details)."""
    expiry = (
        f"GoodTilBlock:{order.good_til_block}"
        if order.good_til_block is not None
        else f"GoodTilBlockTime:{order.good_til_block_time}"
    )
    return (
        f"{{OrderId:{go_order_id(order.key)} Side:SIDE_{order.side} Quantums:{order.quantums} "
        f"Subticks:{order.subticks} {expiry}}}"
    )


@dataclass(slots=True)
class _Snapshot:
    """The engine state an :meth:`ChainEngine.atomic` block restores when it fails."""

    accounts: dict[str, tuple[Account, Account]]  # address -> (live object, copy of its fields)
    account_numbers: set[int]
    next_account_number: int
    subaccounts: dict[SubaccountRef, Subaccount]
    dirty: dict[SubaccountRef, None]
    volume: dict[str, int]
    fee_collector_quantums: int
    minted_usdc: int
    books: dict[int, BookState]
    orders: dict[OrderKey, _LiveOrder]  # shared: a live order changes only in block steps
    filled: dict[OrderKey, int]
    fill_prune_height: dict[OrderKey, int]
    short_term_cancels: dict[OrderKey, int]
    pending_stateful: dict[OrderKey, tuple[OrderSnapshot, str]]
    pending_cancels: dict[OrderKey, int]
    triggered: list[OrderKey]
    trade_prices: dict[int, tuple[int, int]]
    pending_status: list[tuple[int, MarketStatus]]
    pending: list[ChainEvent]
    markets: dict[int, MarketInfo]
    funding_rate: dict[int, int]
    oracle: tuple[dict[int, int], dict[int, int]]
    tx_index: int
    seq: int


def _copy_account(account: Account) -> Account:
    return dataclasses.replace(account, balances=dict(account.balances))


def _copy_subaccount(sub: Subaccount) -> Subaccount:
    return Subaccount(
        ref=sub.ref,
        usdc=sub.usdc,
        positions={c: copy.copy(p) for c, p in sub.positions.items()},
        closed=[copy.copy(p) for p in sub.closed],
    )


class ChainEngine:
    """A deterministic, in-memory dYdX v4 chain for the emulator (see the module docstring).

    Args:
        markets: tickers to list (default BTC-USD, ETH-USD, SOL-USD and the isolated EIGEN-USD).
        seed: seeds the oracle random walk; the same seed and the same calls give the same events.
        start_height: height of the block :meth:`start` commits.
        start_time: time of that block (default: now, UTC).
        block_interval: time between blocks when :meth:`produce_block` is not given ``now``.
        short_block_window: ShortBlockWindow of the short-term GTB check (40 today, 20 legacy).
        funding_interval_blocks: blocks between funding settlements (default: one hour of blocks).
        oracle_step_ppm: bound of the oracle's per-block random move.
        fee_tiers, equity_tiers, block_rate_limits: override the genesis values of :mod:`..params`.
        funding_rate_ppm: hourly funding rate per ticker (default ``default_funding_ppm // 8``, the
            market's 8-hour rate spread over 8 hours, rounded down).

    Raises:
        ValueError: an unknown ticker (the message lists the available ones) or a bad interval.
    """

    def __init__(
        self,
        *,
        markets: Sequence[str] | None = None,
        seed: int = 0,
        start_height: int = 1,
        start_time: dt.datetime | None = None,
        block_interval: dt.timedelta = dt.timedelta(seconds=0.5),
        short_block_window: int = 40,
        funding_interval_blocks: int | None = None,
        oracle_step_ppm: int = 300,
        fee_tiers: Sequence[FeeTier] = FEE_TIERS,
        equity_tiers: Sequence[EquityTier] = EQUITY_TIERS,
        block_rate_limits: BlockRateLimits = BLOCK_RATE_LIMITS,
        funding_rate_ppm: Mapping[str, int] | None = None,
    ) -> None:
        tickers = list(markets) if markets is not None else list(DEFAULT_MARKETS)
        unknown = [t for t in tickers if t not in MARKETS]
        if unknown:
            raise ValueError(f"unknown market(s) {unknown}; available: {sorted(MARKETS)}")
        if block_interval <= dt.timedelta(0):
            raise ValueError("block_interval must be positive")
        specs = [MARKETS[t] for t in dict.fromkeys(tickers)]
        self._markets: dict[int, MarketInfo] = {s.clob_pair_id: market_info(s) for s in specs}
        self._by_ticker = {s.ticker: s.clob_pair_id for s in specs}
        self._min_price_change_ppm = {s.clob_pair_id: s.min_price_change_ppm for s in specs}
        self._books: dict[int, Book] = {s.clob_pair_id: Book() for s in specs}
        self._oracle = Oracle(
            {s.clob_pair_id: s.start_price for s in specs}, seed=seed, max_step_ppm=oracle_step_ppm
        )
        rates = dict(funding_rate_ppm or {})
        self._funding_rate: dict[int, int] = {
            s.clob_pair_id: rates.get(s.ticker, s.default_funding_ppm // 8) for s in specs
        }
        self.seed = seed
        self.block_interval = block_interval
        self.short_block_window = short_block_window
        blocks_per_hour = max(1, int(dt.timedelta(hours=1) / block_interval))
        self.funding_interval_blocks = funding_interval_blocks or blocks_per_hour
        self.fee_tiers: tuple[FeeTier, ...] = tuple(fee_tiers)
        self.equity_tiers: tuple[EquityTier, ...] = tuple(equity_tiers)
        self.block_rate_limits = block_rate_limits
        self.stateful_order_time_window = STATEFUL_ORDER_TIME_WINDOW

        self.height = start_height - 1
        start = start_time or dt.datetime.now(dt.UTC)
        self.block_time = start if start.tzinfo else start.replace(tzinfo=dt.UTC)
        self._start_height = start_height
        self._started = False
        self._producing = False

        self._sinks: list[Sink] = []
        self._atomic: list[tuple[_Snapshot, list[ChainEvent]]] = []  # open atomic() blocks
        self._pending: list[ChainEvent] = []
        self._tx_index = 0
        self._seq = 0

        self._accounts: dict[str, Account] = {}
        self._next_account_number = 0
        self._account_numbers: set[int] = set()
        self._subaccounts: dict[SubaccountRef, Subaccount] = {}
        self._dirty: dict[SubaccountRef, None] = {}
        self._volume: dict[str, int] = defaultdict(int)
        self.fee_collector_quantums = 0
        self.minted_usdc = 0

        self._orders: dict[OrderKey, _LiveOrder] = {}
        self._filled: dict[OrderKey, int] = {}
        # Block in which a short-term order id's fill amount is forgotten (GTB + ShortBlockWindow).
        self._fill_prune_height: dict[OrderKey, int] = {}
        self._short_term_cancels: dict[OrderKey, int] = {}
        self._pending_stateful: dict[OrderKey, tuple[OrderSnapshot, str]] = {}
        self._pending_cancels: dict[OrderKey, int] = {}
        self._triggered: list[OrderKey] = []
        # (lowest, highest) maker price of the fills the next block commits, by clob pair.
        self._trade_prices: dict[int, tuple[int, int]] = {}
        self._placed_long_term: list[tuple[OrderKey, str]] = []  # (order id, tx hash) of the block
        self._pending_status: list[tuple[int, MarketStatus]] = []
        self._rate_counts: dict[tuple[RateKind, str], dict[int, int]] = defaultdict(dict)

    # --- wiring and read access -------------------------------------------------------------------

    def add_sink(self, sink: Sink) -> None:
        """Register a consumer; every event goes to every sink, in emission order."""
        self._sinks.append(sink)

    @property
    def markets(self) -> Mapping[int, MarketInfo]:
        """Listed markets by clob pair id."""
        return self._markets

    def market(self, ticker: str) -> MarketInfo:
        """The market of ``ticker``; clob 8 when it is not listed."""
        clob_pair_id = self._by_ticker.get(ticker)
        if clob_pair_id is None:
            raise clob_error(8, f"Clob {ticker} is not a valid clob")
        return self._markets[clob_pair_id]

    def oracle_price(self, clob_pair_id: int) -> int:
        """Current oracle price in units of ``10**price_exponent``."""
        self._require_market(clob_pair_id)
        return self._oracle.price(clob_pair_id)

    def oracle_subticks(self, clob_pair_id: int) -> Fraction:
        """The oracle price expressed in subticks (exact; conditional triggers compare against it)."""
        market = self._require_market(clob_pair_id)
        exponent = market.price_exponent + market.atomic_resolution - market.quantum_conversion_exponent + 6
        price = self._oracle.price(clob_pair_id)
        return Fraction(price * 10**exponent) if exponent >= 0 else Fraction(price, 10**-exponent)

    def set_oracle_price(self, clob_pair_id: int, price: int) -> None:
        """Override the oracle price; effective in the next block (instead of its random move)."""
        self._require_market(clob_pair_id)
        if price <= 0:
            raise EngineError("prices", 4, f"price {price} must be > 0: Market price update is invalid")
        self._oracle.override(clob_pair_id, price)

    def set_market_status(self, clob_pair_id: int, status: MarketStatus) -> None:
        """Change a clob pair's status in the next block (emits ``MarketStatusChanged``)."""
        self._require_market(clob_pair_id)
        self._pending_status.append((clob_pair_id, status))

    def set_funding_rate(self, clob_pair_id: int, rate_ppm: int) -> None:
        """The hourly funding rate (ppm) settled at the next funding blocks."""
        self._require_market(clob_pair_id)
        self._funding_rate[clob_pair_id] = rate_ppm

    def funding_rate(self, clob_pair_id: int) -> int:
        """The hourly funding rate in ppm (positive: longs pay shorts)."""
        self._require_market(clob_pair_id)
        return self._funding_rate[clob_pair_id]

    def account(self, address: str) -> Account | None:
        """The account of ``address``; ``None`` until it first received funds."""
        return self._accounts.get(address)

    def ensure_account(self, address: str, *, account_number: int | None = None) -> Account:
        """The account of ``address``, created if new.

        Args:
            address: the account's address.
            account_number: the number a new account gets (a test reproducing a known-answer
                signature needs its vector's number); default the next free one. For an existing
                account it must be the account's number: the chain never renumbers.

        Raises:
            ValueError: ``account_number`` is negative, belongs to another account, or differs from
                the existing account's number.
        """
        account = self._accounts.get(address)
        if account is not None:
            if account_number is not None and account_number != account.account_number:
                raise ValueError(
                    f"account {address} already has account number {account.account_number}, "
                    f"not {account_number}"
                )
            return account
        if account_number is None:
            while self._next_account_number in self._account_numbers:
                self._next_account_number += 1
            account_number = self._next_account_number
            self._next_account_number += 1
        elif account_number < 0:
            raise ValueError(f"account number {account_number} must be >= 0")
        elif account_number in self._account_numbers:
            raise ValueError(f"account number {account_number} is already taken")
        account = Account(address=address, account_number=account_number)
        self._accounts[address] = account
        self._account_numbers.add(account_number)
        return account

    def accounts(self) -> Iterable[Account]:
        return self._accounts.values()

    def increment_sequence(self, address: str) -> int:
        """Bump an account's sequence (the tx layer's job after a stateful tx); returns the new value."""
        account = self.ensure_account(address)
        account.sequence += 1
        return account.sequence

    def set_pub_key(self, address: str, pub_key: bytes) -> None:
        """Record the public key an account signed with."""
        self.ensure_account(address).pub_key = pub_key

    def subaccount(self, address: str, number: int) -> SubaccountState | None:
        """A subaccount valued at the current oracle prices; ``None`` if it never held anything."""
        sub = self._subaccounts.get(SubaccountRef(address, number))
        return sub.state(self._markets, self._oracle.prices) if sub is not None else None

    def subaccounts(self) -> Iterable[SubaccountState]:
        """Every subaccount, valued at the current oracle prices."""
        return [s.state(self._markets, self._oracle.prices) for s in self._subaccounts.values()]

    def fee_tier(self, address: str) -> FeeTier:
        """The fee tier of an owner, from its cumulative traded volume."""
        return fee_tier_for_volume(self.fee_tiers, self._volume.get(address, 0))

    def volume(self, address: str) -> int:
        """Cumulative traded notional of an owner, in USDC quantums (maker and taker)."""
        return self._volume.get(address, 0)

    def usdc_supply(self) -> int:
        """All USDC the engine holds: subaccounts, wallets and the fee collector (equals minted)."""
        wallets = sum(a.balances.get(USDC_DENOM, 0) for a in self._accounts.values())
        return sum(s.usdc for s in self._subaccounts.values()) + wallets + self.fee_collector_quantums

    def book(self, clob_pair_id: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """The true aggregated book: ``(bids best-first, asks best-first)`` of (subticks, quantums)."""
        self._require_market(clob_pair_id)
        return self._books[clob_pair_id].levels()

    def open_orders(self, subaccount: SubaccountRef) -> list[OrderSnapshot]:
        """Live orders of a subaccount (resting or waiting for a trigger), by arrival."""
        return [
            self._snapshot(live.order)
            for live in sorted(self._orders.values(), key=lambda lv: lv.seq)
            if _ref(live.order.key) == subaccount
        ]

    def order(self, key: OrderKey) -> OrderSnapshot | None:
        """A live order by id, with its filled amount."""
        live = self._orders.get(key)
        return self._snapshot(live.order) if live is not None else None

    def order_status(self, key: OrderKey) -> Literal["RESTING", "UNTRIGGERED", "TRIGGERED"] | None:
        """Where a live order is: on the book, or a conditional order before / after its trigger."""
        live = self._orders.get(key)
        return live.state if live is not None else None

    def filled_amount(self, key: OrderKey) -> int:
        """Filled quantums of an order id the chain still remembers (0 otherwise)."""
        return self._filled.get(key, 0)

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> None:
        """List the markets, publish the initial oracle prices and commit the start block. Idempotent."""
        if self._started:
            return
        self._require_not_atomic("start")
        self._started = True
        self.height = self._start_height
        for market in self._markets.values():
            self._emit(MarketListed(market))
        for clob_pair_id, market in self._markets.items():
            self._emit(self._oracle_event(clob_pair_id, market, self.height, self.block_time))
        self._emit(BlockCommitted(self.height, self.block_time))

    def produce_block(self, now: dt.datetime | None = None) -> int:
        """Produce and commit block ``H+1`` (see the module docstring); returns the new height.

        Args:
            now: the block time; default the previous block time plus ``block_interval``. A time not
                after the previous block is moved to one microsecond after it (block times increase).
        """
        self._require_not_atomic("produce_block")
        if not self._started:
            self.start()
        height = self.height + 1
        time = now if now is not None else self.block_time + self.block_interval
        if time.tzinfo is None:
            time = time.replace(tzinfo=dt.UTC)
        if time <= self.block_time:
            time = self.block_time + dt.timedelta(microseconds=1)
        self._producing = True
        try:
            self._run_block(height, time)
        finally:
            self._producing = False
        self.height = height
        self.block_time = time
        self._tx_index = 0
        self._emit(BlockCommitted(height, time))
        self._place_from_last_block()
        return height

    def _run_block(self, height: int, time: dt.datetime) -> None:
        for clob_pair_id, status in self._pending_status:
            market = self._markets[clob_pair_id]
            if market.status != status:
                self._markets[clob_pair_id] = dataclasses.replace(market, status=status)
                self._pending.append(MarketStatusChanged(clob_pair_id, status, height))
        self._pending_status.clear()

        placements, self._pending_stateful = self._pending_stateful, {}
        for order, tx_hash in placements.values():
            self._place_stateful_in_block(order, tx_hash, height)

        cancels, self._pending_cancels = self._pending_cancels, {}
        for key in cancels:
            if self._orders.get(key) is not None:
                self._remove(key, "CANCELED", REASON_USER_CANCELED, offchain=False)

        self._expire(height, time)

        for clob_pair_id in self._oracle.step():
            market = self._markets[clob_pair_id]
            self._pending.append(self._oracle_event(clob_pair_id, market, height, _UNSTAMPED))
        self._trigger_conditionals(height)

        if height % self.funding_interval_blocks == 0:
            self._settle_funding(height)

        self._flush(height, time)

    # --- transactions ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def atomic(self) -> Iterator[None]:
        """Run several calls all-or-nothing, as the chain runs a transaction's messages in CheckTx.

        Inside the block, events are held back; when it exits normally they go to the sinks in
        order, and when it raises, the engine's state is put back as it was at entry, the held
        events are dropped, and the exception propagates. Blocks nest (an inner block that fails
        undoes only its own calls). Account objects handed out earlier stay the engine's own.

        Not undone, as on the chain: block rate-limit charges (the venue keeps those counters
        outside the store that CheckTx branches). :meth:`produce_block` may not run inside.

        Example:
            ``with engine.atomic(): engine.transfer(a, b, n); engine.place_order(order)``
        """
        snapshot = self._take_snapshot()
        events: list[ChainEvent] = []
        self._atomic.append((snapshot, events))
        try:
            yield
        except BaseException:
            self._atomic.pop()
            self._restore_snapshot(snapshot)
            raise
        self._atomic.pop()
        for event in events:
            self._emit(event)

    @property
    def in_atomic(self) -> bool:
        """Whether an :meth:`atomic` block is open."""
        return bool(self._atomic)

    def _require_not_atomic(self, what: str) -> None:
        if self._atomic:
            raise RuntimeError(f"{what} cannot run inside ChainEngine.atomic()")

    def _take_snapshot(self) -> _Snapshot:
        # Frozen values (keys, order snapshots, events, MarketInfo) are shared; mutable containers
        # are copied. Objects that are mutated in place are restored in place (accounts, book
        # orders) or copied (subaccounts and positions). A _LiveOrder is shared: its only mutable
        # field, ``state``, changes in block steps, which cannot run inside atomic().
        return _Snapshot(
            accounts={a: (acc, _copy_account(acc)) for a, acc in self._accounts.items()},
            account_numbers=set(self._account_numbers),
            next_account_number=self._next_account_number,
            subaccounts={ref: _copy_subaccount(sub) for ref, sub in self._subaccounts.items()},
            dirty=dict(self._dirty),
            volume=dict(self._volume),
            fee_collector_quantums=self.fee_collector_quantums,
            minted_usdc=self.minted_usdc,
            books={c: book.snapshot() for c, book in self._books.items()},
            orders=dict(self._orders),
            filled=dict(self._filled),
            fill_prune_height=dict(self._fill_prune_height),
            short_term_cancels=dict(self._short_term_cancels),
            pending_stateful=dict(self._pending_stateful),
            pending_cancels=dict(self._pending_cancels),
            triggered=list(self._triggered),
            trade_prices=dict(self._trade_prices),
            pending_status=list(self._pending_status),
            pending=list(self._pending),
            markets=dict(self._markets),
            funding_rate=dict(self._funding_rate),
            oracle=self._oracle.snapshot(),
            tx_index=self._tx_index,
            seq=self._seq,
        )

    def _restore_snapshot(self, snap: _Snapshot) -> None:
        accounts: dict[str, Account] = {}
        for address, (account, saved) in snap.accounts.items():
            # Restored in place: the tx layer and tests hold Account objects across calls.
            for name in ("account_number", "sequence", "pub_key"):
                setattr(account, name, getattr(saved, name))
            account.balances = dict(saved.balances)
            accounts[address] = account
        self._accounts = accounts
        self._account_numbers = set(snap.account_numbers)
        self._next_account_number = snap.next_account_number
        self._subaccounts = snap.subaccounts
        self._dirty = dict(snap.dirty)
        self._volume = defaultdict(int, snap.volume)
        self.fee_collector_quantums = snap.fee_collector_quantums
        self.minted_usdc = snap.minted_usdc
        for clob_pair_id, book in snap.books.items():
            self._books[clob_pair_id].restore(book)
        self._orders = snap.orders
        self._filled = snap.filled
        self._fill_prune_height = snap.fill_prune_height
        self._short_term_cancels = snap.short_term_cancels
        self._pending_stateful = snap.pending_stateful
        self._pending_cancels = snap.pending_cancels
        self._triggered = snap.triggered
        self._trade_prices = snap.trade_prices
        self._pending_status = snap.pending_status
        self._pending = snap.pending
        self._markets = snap.markets
        self._funding_rate = snap.funding_rate
        self._oracle.restore(snap.oracle)
        self._tx_index = snap.tx_index
        self._seq = snap.seq

    # --- orders -----------------------------------------------------------------------------------

    def place_order(self, order: OrderSnapshot, *, tx_hash: str = "") -> None:
        """Place an order (short-term: matched at once; stateful: in the next block).

        ``order.total_filled_quantums`` is ignored: the chain tracks fills per order id.

        Raises:
            EngineError: the venue's rejection (clob codes 3-12, 20, 24, 30, 34, 44, 48, 2001, 2003,
                2004, 2005, 3000-3008, 5001, 6000, 6001, 9003, 10001).
        """
        validate_order_basic(order)
        key = order.key
        short_term = key.order_flags == SHORT_TERM
        market: MarketInfo | None = self._markets.get(key.clob_pair_id)
        kind: RateKind = "short_term" if short_term else "stateful"
        if market is not None:
            # The chain's ClobRateLimitDecorator runs before the clob decorator, and only for an
            # existing clob pair. For a short-term order it first checks the GTB window (so that an
            # order with a stale or far GTB, replayable because short-term txs skip the sequence,
            # cannot consume the owner's rate budget): 10/11, then 5001, then the rest.
            if order.good_til_block is not None and short_term:
                validate_good_til_block(order.good_til_block, self.height, self.short_block_window)
            self._check_rate(kind, key.owner)
        market = validate_order_against_market(order, market, include_trigger=False)
        if short_term:
            self._place_short_term(order, market, tx_hash)
        else:
            self._accept_stateful(order, market, tx_hash)
        self._charge_rate(kind, key.owner)

    def _place_short_term(self, order: OrderSnapshot, market: MarketInfo, tx_hash: str) -> None:
        key = order.key
        assert order.good_til_block is not None
        cancel_gtb = self._short_term_cancels.get(key)
        if cancel_gtb is not None and cancel_gtb >= order.good_til_block:
            raise clob_error(7, f"Order: {go_order_id(key)}, Cancellation GoodTilBlock: {cancel_gtb}")
        # Replacement rules apply only to an order still on the book (a short-term order is in
        # ``_orders`` exactly while it rests); an id that was cancelled, fully filled or removed is
        # placed afresh, subject to the cancel (7) and fully-filled (24) checks.
        resting = self._orders.get(key)
        existing = resting.order if resting is not None else None
        filled = self._filled.get(key, 0)
        if existing is not None:
            validate_replacement(existing, order)
            if order.time_in_force == "IOC" and filled > 0:
                raise clob_error(2004)
        if filled >= order.quantums:
            raise clob_error(24, f"Order {go_order_id(key)} has filled {filled} of {order.quantums} quantums")
        book = self._books[key.clob_pair_id]
        sub = self._subaccounts.get(_ref(key))
        position = sub.position_quantums(key.clob_pair_id) if sub is not None else 0
        if order.reduce_only and (position >= 0 if order.side == "BUY" else position <= 0):
            raise clob_error(
                2001, f"Order {go_order_id(key)} would increase position size {position} on {market.ticker}"
            )
        if order.time_in_force == "POST_ONLY":
            for maker in book.makers_for(order.side, order.subticks):
                if _ref(maker.key) != _ref(key):
                    raise clob_error(2003, f"Order {go_order_id(key)} crosses maker {go_order_id(maker.key)}")

        if existing is not None:
            # A replacement takes the old order off the book, reported as a best-effort removal with
            # reason REPLACED before the new placement, as the memclob does; the id keeps its fills.
            self._remove(key, "BEST_EFFORT_CANCELED", REASON_REPLACED, offchain=True)
        live = _LiveOrder(order=order, state="RESTING", seq=self._next_seq())
        self._emit_offchain(
            OrderPlaced(self._snapshot(order), "BEST_EFFORT_OPENED", self.height, self.block_time)
        )
        self._match(live, tx_index=self._next_tx(), tx_hash=tx_hash, offchain=True)

    def _accept_stateful(self, order: OrderSnapshot, market: MarketInfo, tx_hash: str) -> None:
        key = order.key
        assert order.good_til_block_time is not None
        validate_good_til_block_time(
            order.good_til_block_time, self.block_time, self.stateful_order_time_window
        )
        if key in self._pending_cancels:
            raise clob_error(3008, f"Order {go_order_id(key)} was cancelled in this block")
        existing = self._orders.get(key)
        pending = self._pending_stateful.get(key)
        if existing is not None or pending is not None:
            old = existing.order if existing is not None else pending[0]  # type: ignore[index]
            raise clob_error(
                3005,
                "A stateful order with this OrderId already exists and stateful order replacement is not "
                f"supported. Existing order GoodTilBlockTime ({old.good_til_block_time}), New order "
                f"GoodTilBlockTime ({order.good_til_block_time})",
            )
        validate_conditional_trigger(order, market)
        self._check_equity_tier(order)
        if key.order_flags == LONG_TERM:
            self._check_full_size_collateral(order, market)
        self._next_tx()  # the placement is a transaction of the next block
        self._pending_stateful[key] = (order, tx_hash)

    def _place_stateful_in_block(self, order: OrderSnapshot, tx_hash: str, height: int) -> None:
        key = order.key
        self._filled.setdefault(key, 0)
        if key.order_flags == CONDITIONAL:
            live = _LiveOrder(order=order, state="UNTRIGGERED", seq=self._next_seq())
            self._orders[key] = live
            self._pending.append(OrderPlaced(self._snapshot(order), "UNTRIGGERED", height, _UNSTAMPED))
            return
        # In state from this block on (cancels and expiry see it); on the book after the commit.
        self._orders[key] = _LiveOrder(order=order, state="RESTING", seq=self._next_seq())
        self._pending.append(OrderPlaced(self._snapshot(order), "OPEN", height, _UNSTAMPED))
        self._placed_long_term.append((key, tx_hash))

    def _place_from_last_block(self) -> None:
        """PrepareCheckState after a commit: the long-term orders the block placed, then the
        conditional orders it triggered, join the book and match as takers, off-chain (their fills go
        into the next block). Post-only orders of both kinds go first, so that they rest before the
        other new orders take liquidity."""
        placed, self._placed_long_term = self._placed_long_term, []
        triggered, self._triggered = self._triggered, []
        for post_only in (True, False):
            for key, tx_hash in placed:
                live = self._orders.get(key)  # None: cancelled or expired in its own block
                if live is not None and (live.order.time_in_force == "POST_ONLY") == post_only:
                    self._match(live, tx_index=self._next_tx(), tx_hash=tx_hash, offchain=True)
            for key in triggered:
                live = self._orders.get(key)
                if (
                    live is not None
                    and live.state == "TRIGGERED"
                    and (live.order.time_in_force == "POST_ONLY") == post_only
                ):
                    live.state = "RESTING"
                    self._match(live, tx_index=self._next_tx(), tx_hash="", offchain=True)

    def _check_equity_tier(self, order: OrderSnapshot) -> None:
        ref = _ref(order.key)
        count = sum(1 for k in self._orders if k.order_flags != SHORT_TERM and _ref(k) == ref) + sum(
            1 for k in self._pending_stateful if _ref(k) == ref
        )
        sub = self._subaccounts.get(ref)
        net_collateral = sub.state(self._markets, self._oracle.prices).equity if sub is not None else 0
        limit = 0
        for tier in self.equity_tiers:
            if net_collateral >= tier.usd_tnc_required:
                limit = tier.limit
        if count + 1 > limit:
            raise clob_error(
                10001,
                f"Opening order would exceed equity tier limit of {limit}. Order count: {count}, total net "
                f"collateral: {net_collateral}, order id: {go_order_id(order.key)}",
            )

    def _check_full_size_collateral(self, order: OrderSnapshot, market: MarketInfo) -> None:
        """PlaceStatefulOrder's spam check of a long-term order (§5.4): the subaccount must be able to
        take the whole order, filled at its own price and paying its owner's maker fee.

        Conditional orders skip it (they are checked when they match). Raises clob 2005 when the
        fill would break the isolated-market rules, else 3007 when it would leave the subaccount
        undercollateralized (judged as :meth:`_fill_allowed` judges a fill).
        """
        ref = _ref(order.key)
        quote = quote_quantums(market, order.quantums, order.subticks)
        fee = fee_quantums(quote, self.fee_tier(ref.address).maker_fee_ppm)
        if self._violates_isolation(ref, market):
            code, result = 2005, "ViolatesIsolatedSubaccountConstraints"
        elif not self._fill_allowed(ref, market, order.side, order.quantums, quote, fee):
            sub = self._subaccounts.get(ref) or Subaccount(ref)
            healthy = sub.risk(self._markets, self._oracle.prices).free_collateral >= 0
            code, result = 3007, "NewlyUndercollateralized" if healthy else "StillUndercollateralized"
        else:
            return
        raise clob_error(code, f"PlaceStatefulOrder: order ({_go_order(order)}), result ({result})")

    def _violates_isolation(self, ref: SubaccountRef, market: MarketInfo) -> bool:
        """x/subaccounts' isolated-market rules for a trade in ``market``: a subaccount holding an
        isolated position trades only that market; one holding cross positions opens no isolated one."""
        sub = self._subaccounts.get(ref)
        held = [c for c, p in sub.positions.items() if p.quantums] if sub is not None else []
        isolated = [c for c in held if self._markets[c].market_type == "ISOLATED"]
        if isolated:
            return market.clob_pair_id != isolated[0]
        return bool(held) and market.market_type == "ISOLATED"

    def cancel_order(
        self,
        key: OrderKey,
        *,
        good_til_block: int | None = None,
        good_til_block_time: int | None = None,
        tx_hash: str = "",
    ) -> None:
        """Cancel an order (§5.7).

        Short-term: at once, best effort; records a cancel until ``good_til_block`` that blocks
        (re)placing the id with a GTB not above it, and succeeds even for an unknown order.
        Stateful: in the next block; the order must exist and ``good_til_block_time`` must be at
        least the order's.

        Raises:
            EngineError: clob 5, 8, 9, 10, 11, 29, 32, 3000, 3001, 3003, 3004, 3006, 5001.
        """
        validate_cancel_basic(key, good_til_block, good_til_block_time)
        if key.clob_pair_id not in self._markets:
            raise clob_error(8, f"Clob {key.clob_pair_id} is not a valid clob")
        if key.order_flags == SHORT_TERM:
            assert good_til_block is not None
            self._cancel_short_term(key, good_til_block)
            return
        assert good_til_block_time is not None
        validate_good_til_block_time(good_til_block_time, self.block_time, self.stateful_order_time_window)
        live = self._orders.get(key)
        pending = self._pending_stateful.get(key)
        target = live.order if live is not None else (pending[0] if pending is not None else None)
        if target is None:
            raise clob_error(3006, f"Order Id to cancel does not exist. OrderId : {go_order_id(key)}")
        if key in self._pending_cancels:
            raise clob_error(
                32,
                f"An uncommitted stateful order cancellation with this OrderId already exists: {go_order_id(key)}",
            )
        assert target.good_til_block_time is not None
        if good_til_block_time < target.good_til_block_time:
            raise clob_error(
                29,
                "cancellation goodTilBlockTime less than stateful order goodTilBlockTime. cancellation "
                f"{good_til_block_time}, order {target.good_til_block_time}",
            )
        self._pending_cancels[key] = good_til_block_time
        self._next_tx()

    def _cancel_short_term(self, key: OrderKey, good_til_block: int, *, rate_limit: bool = True) -> None:
        # As for placements: GTB window (10/11), then the rate limit (5001), then the memclob.
        validate_good_til_block(good_til_block, self.height, self.short_block_window)
        if rate_limit:
            self._check_rate("cancel", key.owner)
        previous = self._short_term_cancels.get(key)
        if previous is not None and previous >= good_til_block:
            raise clob_error(9)
        if rate_limit:
            self._charge_rate("cancel", key.owner)
        self._short_term_cancels[key] = good_til_block
        live = self._orders.get(key)
        if live is not None and (live.order.good_til_block or 0) <= good_til_block:
            self._remove(key, "BEST_EFFORT_CANCELED", REASON_USER_CANCELED, offchain=True)

    def batch_cancel(
        self, subaccount: SubaccountRef, batches: Sequence[tuple[int, Sequence[int]]], good_til_block: int
    ) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
        """Cancel many short-term orders of one subaccount (non-atomic).

        Checked as the chain does: ``ValidateBasic`` (45); when the GTB is in the window and every
        clob pair exists, one rate-limit charge of weight 2 for the whole batch (5001); an unknown
        clob pair (27); then each id is cancelled as a short-term ``MsgCancelOrder`` (without its own
        rate-limit charge), a failure only marking that id failed.

        A GTB outside the window is refused at once with 10/11, before the rate limit, as the chain's
        rate-limit step checks it first.

        Returns:
            ``(succeeded, failed)`` lists of ``(clob_pair_id, client_id)``.

        Raises:
            EngineError: clob 45 (malformed: empty, duplicates, over 100 ids), 10/11 (GTB outside the
                window), 5001, 27 (unknown clob pair) or 46 (none succeeded).
        """
        normalised = [(clob_pair_id, list(ids)) for clob_pair_id, ids in batches]
        validate_batch_cancel_basic(normalised)
        validate_good_til_block(good_til_block, self.height, self.short_block_window)
        unknown = [c for c, _ in normalised if c not in self._markets]
        if unknown:
            raise clob_error(27, f"Invalid clob pair id {unknown[0]}")
        self._check_rate("cancel", subaccount.address, weight=BATCH_CANCEL_RATE_LIMIT_WEIGHT)
        succeeded: list[tuple[int, int]] = []
        failed: list[tuple[int, int]] = []
        for clob_pair_id, client_ids in normalised:
            for client_id in client_ids:
                key = OrderKey(subaccount.address, subaccount.number, client_id, clob_pair_id, SHORT_TERM)
                try:
                    if clob_pair_id not in self._markets:
                        raise clob_error(8, f"Clob {clob_pair_id} is not a valid clob")
                    self._cancel_short_term(key, good_til_block, rate_limit=False)
                except EngineError as exc:
                    log.debug("batch cancel of %s failed: %s", key, exc)
                    failed.append((clob_pair_id, client_id))
                else:
                    succeeded.append((clob_pair_id, client_id))
        if not succeeded:
            raise clob_error(46, f"No successful cancellations. Failures: {failed}")
        self._charge_rate("cancel", subaccount.address, weight=BATCH_CANCEL_RATE_LIMIT_WEIGHT)
        return succeeded, failed

    # --- matching ---------------------------------------------------------------------------------

    def _match(self, live: _LiveOrder, *, tx_index: int, tx_hash: str, offchain: bool) -> None:
        """Run ``live`` as a taker against the book, then rest, fill or remove it."""
        taker = live.order
        key = taker.key
        market = self._markets[key.clob_pair_id]
        book = self._books[key.clob_pair_id]
        ref = _ref(key)
        filled = self._filled.get(key, 0)
        remaining = taker.quantums - filled
        stop_reason: str | None = None
        event_index = 0
        self._orders[key] = live
        for maker in book.makers_for(taker.side, taker.subticks):
            if remaining <= 0:
                break
            if _ref(maker.key) == ref:
                self._remove(maker.key, self._cancel_status(maker.key), REASON_SELF_TRADE, offchain=offchain)
                continue
            if taker.time_in_force == "POST_ONLY":
                stop_reason = REASON_POST_ONLY
                break
            quantity = min(remaining, maker.remaining)
            if taker.reduce_only:
                reducible = self._reducible(ref, key.clob_pair_id, taker.side)
                if reducible == 0:
                    stop_reason = REASON_REDUCE_ONLY
                    break
                quantity = min(quantity, reducible)
            quote = quote_quantums(market, quantity, maker.subticks)
            taker_fee = fee_quantums(quote, self.fee_tier(key.owner).taker_fee_ppm)
            maker_fee = fee_quantums(quote, self.fee_tier(maker.key.owner).maker_fee_ppm)
            if not self._fill_allowed(ref, market, taker.side, quantity, quote, taker_fee):
                stop_reason = REASON_UNDERCOLLATERALIZED
                break
            maker_side: Side = "SELL" if taker.side == "BUY" else "BUY"
            if not self._fill_allowed(_ref(maker.key), market, maker_side, quantity, quote, maker_fee):
                self._remove(
                    maker.key, self._cancel_status(maker.key), REASON_UNDERCOLLATERALIZED, offchain=offchain
                )
                continue
            fill_id = event_id(self.height + 1, tx_index, event_index)
            event_index += 1
            self._apply_fill(ref, market, taker.side, quantity, quote, taker_fee, fill_id)
            self._apply_fill(_ref(maker.key), market, maker_side, quantity, quote, maker_fee, fill_id)
            self.fee_collector_quantums += taker_fee + maker_fee
            self._volume[key.owner] += quote
            self._volume[maker.key.owner] += quote
            remaining -= quantity
            filled += quantity
            self._filled[key] = filled
            maker.filled += quantity
            self._filled[maker.key] = maker.filled
            maker_order = self._orders[maker.key].order
            self._note_fill(taker)
            self._note_fill(maker_order)
            low, high = self._trade_prices.get(key.clob_pair_id, (maker.subticks, maker.subticks))
            self._trade_prices[key.clob_pair_id] = (min(low, maker.subticks), max(high, maker.subticks))
            self._pending.append(
                FillCommitted(
                    event_id=fill_id,
                    clob_pair_id=key.clob_pair_id,
                    maker=maker.key,
                    taker=key,
                    taker_side=taker.side,
                    subticks=maker.subticks,
                    quantums=quantity,
                    maker_fee=maker_fee,
                    taker_fee=taker_fee,
                    fill_type="LIMIT",
                    height=self.height + 1,
                    time=_UNSTAMPED,
                    tx_hash=tx_hash,
                    maker_client_metadata=maker_order.client_metadata,
                    taker_client_metadata=taker.client_metadata,
                )
            )
            self._emit_order_event(OrderUpdated(maker.key, maker.filled, *self._stamp(offchain)), offchain)
            if maker.remaining == 0:
                book.remove(maker.key)
                del self._orders[maker.key]
                self._pending.append(
                    OrderRemoved(
                        maker.key, "FILLED", REASON_FULLY_FILLED, maker.filled, self.height + 1, _UNSTAMPED
                    )
                )
        if event_index:
            self._emit_order_event(OrderUpdated(key, filled, *self._stamp(offchain)), offchain)
        if remaining <= 0:
            del self._orders[key]
            self._pending.append(
                OrderRemoved(key, "FILLED", REASON_FULLY_FILLED, filled, self.height + 1, _UNSTAMPED)
            )
            return
        if (
            stop_reason is None
            and taker.reduce_only
            and self._reducible(ref, key.clob_pair_id, taker.side) == 0
        ):
            stop_reason = REASON_REDUCE_ONLY
        if stop_reason is None and taker.time_in_force == "IOC":
            stop_reason = REASON_IOC
        if stop_reason is not None:
            self._remove(key, self._cancel_status(key), stop_reason, offchain=offchain, on_book=False)
            return
        book.add(BookOrder(key, taker.side, taker.subticks, taker.quantums, filled, live.seq))

    def _prune_height(self, order: OrderSnapshot) -> int:
        return (order.good_til_block or 0) + self.short_block_window

    def _note_fill(self, order: OrderSnapshot) -> None:
        """Remember a short-term order id's fill amount until block GTB + ShortBlockWindow, as the
        venue's fill state does (so a filled id cannot be placed again meanwhile: clob 24)."""
        if order.key.order_flags == SHORT_TERM:
            key = order.key
            self._fill_prune_height[key] = max(self._fill_prune_height.get(key, 0), self._prune_height(order))

    def _reducible(self, ref: SubaccountRef, clob_pair_id: int, side: Side) -> int:
        sub = self._subaccounts.get(ref)
        position = sub.position_quantums(clob_pair_id) if sub is not None else 0
        if side == "BUY":
            return -position if position < 0 else 0
        return position if position > 0 else 0

    def _fill_allowed(
        self, ref: SubaccountRef, market: MarketInfo, side: Side, quantity: int, quote: int, fee: int
    ) -> bool:
        sub = self._subaccounts.get(ref) or Subaccount(ref)
        signed = quantity if side == "BUY" else -quantity
        before = sub.position_quantums(market.clob_pair_id)
        after = before + signed
        if abs(after) <= abs(before) and (after == 0 or (after > 0) == (before > 0)):
            return True
        cash = -quote if side == "BUY" else quote
        risk = sub.risk(
            self._markets,
            self._oracle.prices,
            usdc_delta=cash - fee,
            position_deltas={market.clob_pair_id: signed},
        )
        return risk.free_collateral >= 0

    def _apply_fill(
        self,
        ref: SubaccountRef,
        market: MarketInfo,
        side: Side,
        quantity: int,
        quote: int,
        fee: int,
        fill_id: bytes,
    ) -> None:
        sub = self._sub(ref)
        sub.usdc += (-quote if side == "BUY" else quote) - fee
        signed = quantity if side == "BUY" else -quantity
        clob_pair_id = market.clob_pair_id
        position = sub.positions.get(clob_pair_id)
        if position is None or position.quantums == 0:
            self._open_position(sub, clob_pair_id, signed, quote, fill_id)
            return
        if (position.quantums > 0) == (signed > 0):
            position.quantums += signed
            position.entry_quote_quantums += quote
            position.open_quote_quantums += quote
            position.sum_open += quantity
            position.max_size = max(position.max_size, abs(position.quantums))
            return
        size = abs(position.quantums)
        closing = min(quantity, size)
        closing_quote = quote * closing // quantity
        entry_part = position.entry_quote_quantums * closing // size
        pnl = closing_quote - entry_part if position.quantums > 0 else entry_part - closing_quote
        position.realized_pnl += pnl
        position.entry_quote_quantums -= entry_part
        position.exit_quote_quantums += closing_quote
        position.sum_close += closing
        position.quantums += closing if signed > 0 else -closing
        if position.quantums == 0:
            position.closed_height = self.height + 1
            sub.closed.append(position)
            del sub.positions[clob_pair_id]
            rest = quantity - closing
            if rest:
                self._open_position(
                    sub, clob_pair_id, signed // quantity * rest, quote - closing_quote, fill_id
                )

    def _open_position(
        self, sub: Subaccount, clob_pair_id: int, signed: int, quote: int, fill_id: bytes
    ) -> None:
        sub.positions[clob_pair_id] = Position(
            clob_pair_id=clob_pair_id,
            quantums=signed,
            entry_quote_quantums=quote,
            open_quote_quantums=quote,
            open_event_id=fill_id,
            created_height=self.height + 1,
            created_time=None,
            sum_open=abs(signed),
            max_size=abs(signed),
        )

    def _remove(
        self,
        key: OrderKey,
        status: Literal["FILLED", "CANCELED", "BEST_EFFORT_CANCELED"],
        reason: str,
        *,
        offchain: bool,
        on_book: bool = True,
    ) -> None:
        self._orders.pop(key, None)
        if on_book:
            self._books[key.clob_pair_id].remove(key)
        filled = self._filled.get(key, 0)
        if status == "BEST_EFFORT_CANCELED":
            self._emit_order_event(
                OrderRemoved(key, status, reason, filled, *self._stamp(offchain)), offchain
            )
        else:
            self._pending.append(OrderRemoved(key, status, reason, filled, self.height + 1, _UNSTAMPED))

    @staticmethod
    def _cancel_status(key: OrderKey) -> Literal["CANCELED", "BEST_EFFORT_CANCELED"]:
        return "BEST_EFFORT_CANCELED" if key.order_flags == SHORT_TERM else "CANCELED"

    # --- block steps ------------------------------------------------------------------------------

    def _expire(self, height: int, time: dt.datetime) -> None:
        now = int(time.timestamp())
        for key, live in sorted(self._orders.items(), key=lambda item: item[1].seq):
            order = live.order
            if key.order_flags == SHORT_TERM:
                expired = (order.good_til_block or 0) <= height
            else:
                expired = (order.good_til_block_time or 0) <= now
            if expired:
                self._remove(key, "CANCELED", REASON_EXPIRED, offchain=False, on_book=live.state == "RESTING")
        for key in [k for k, h in self._fill_prune_height.items() if h <= height]:
            resting = self._orders.get(key)
            if resting is not None:  # re-placed after its GTB passed: kept for as long as the new order
                self._fill_prune_height[key] = self._prune_height(resting.order)
                continue
            del self._fill_prune_height[key]
            self._filled.pop(key, None)
        for key in [k for k, gtb in self._short_term_cancels.items() if gtb <= height]:
            del self._short_term_cancels[key]
        for key in [k for k in self._filled if k.order_flags != SHORT_TERM and k not in self._orders]:
            del self._filled[key]

    def _trigger_conditionals(self, height: int) -> None:
        """The venue's EndBlocker trigger (§5.6): per clob pair, untriggered orders are tried against
        the oracle price, then against the lowest and the highest trade price of the fills this block
        commits, each clamped to oracle ± 5 × the market's min_price_change_ppm."""
        trades, self._trade_prices = self._trade_prices, {}
        waiting = [
            (key, live)
            for key, live in sorted(self._orders.items(), key=lambda item: item[1].seq)
            if live.state == "UNTRIGGERED"
        ]
        for clob_pair_id in sorted({key.clob_pair_id for key, _ in waiting}):
            oracle = self.oracle_subticks(clob_pair_id)
            prices = [oracle]
            if clob_pair_id in trades:
                band = oracle * self._min_price_change_ppm[clob_pair_id] * CONDITIONAL_TRIGGER_MULTIPLIER
                band /= 1_000_000
                prices += [min(max(Fraction(t), oracle - band), oracle + band) for t in trades[clob_pair_id]]
            for price in prices:
                for key, live in waiting:
                    if (
                        key.clob_pair_id == clob_pair_id
                        and live.state == "UNTRIGGERED"
                        and _fires(live.order, price)
                    ):
                        live.state = "TRIGGERED"
                        self._triggered.append(key)
                        self._pending.append(OrderTriggered(key, height, _UNSTAMPED))

    def _settle_funding(self, height: int) -> None:
        for clob_pair_id, market in sorted(self._markets.items()):
            rate = self._funding_rate[clob_pair_id]
            price = self._oracle.price(clob_pair_id)
            for sub in self._subaccounts.values():
                position = sub.positions.get(clob_pair_id)
                if position is None or rate == 0:
                    continue
                owed = position_notional(market, position.quantums, price) * rate / 1_000_000
                # Rounded towards +infinity: payers pay the ceiling, receivers get the floor, the fee
                # collector keeps the sub-quantum remainder, so funding never creates USDC.
                payment = -(-owed.numerator // owed.denominator)
                if payment:
                    sub.usdc -= payment
                    position.net_funding -= payment
                    self.fee_collector_quantums += payment
                    self._dirty[sub.ref] = None
            self._pending.append(
                FundingUpdated(
                    clob_pair_id=clob_pair_id,
                    rate_ppm=rate,
                    oracle_price=price,
                    price_exponent=market.price_exponent,
                    next_rate_ppm=rate,
                    height=height,
                    time=_UNSTAMPED,
                )
            )

    def _flush(self, height: int, time: dt.datetime) -> None:
        events, self._pending = self._pending, []
        for event in events:
            if isinstance(event, OrderRemoved) and event.status == "FILLED" and event.key in self._orders:
                continue  # a replacement revived the id after its fill was matched
            if getattr(event, "time", None) is _UNSTAMPED:
                event = dataclasses.replace(cast(Any, event), time=time)
            self._emit(event)
        for ref in list(self._dirty):
            sub = self._subaccounts[ref]
            for position in (*sub.positions.values(), *sub.closed):
                if position.created_time is None:
                    position.created_time = time
                if position.closed_height is not None and position.closed_time is None:
                    position.closed_time = time
            self._emit(
                SubaccountUpdated(
                    subaccount=ref,
                    usdc_quantums=sub.usdc,
                    positions=tuple(p.snapshot() for _, p in sorted(sub.positions.items())),
                    closed_positions=tuple(p.snapshot() for p in sub.closed),
                    height=height,
                    time=time,
                )
            )
            sub.closed.clear()
        self._dirty.clear()

    # --- transfers --------------------------------------------------------------------------------

    def fund_wallet(self, address: str, denom: str, amount: int) -> None:
        """Mint ``amount`` of ``denom`` into a wallet (faucet; USDC minted counts in the supply)."""
        if amount <= 0:
            raise EngineError("sdk", 10, f"{amount}{denom}: invalid coins")
        account = self.ensure_account(address)
        account.balances[denom] = account.balances.get(denom, 0) + amount
        if denom == USDC_DENOM:
            self.minted_usdc += amount

    def deposit(
        self,
        address: str,
        number: int,
        quantums: int,
        *,
        tx_hash: str = "",
        from_wallet: bool = False,
        sender: str | None = None,
    ) -> None:
        """Credit USDC to subaccount ``(address, number)``.

        By default it is minted (the faucet). ``MsgDepositToSubaccount`` moves it from a wallet: the
        ``sender``'s (whose subaccount it need not be), or with ``from_wallet`` alone the owner's.
        Committed (``TransferCommitted`` DEPOSIT) in the next block.

        Raises:
            EngineError: sdk 5 when the wallet lacks the funds, sending 2 for a non-positive amount.
        """
        if quantums <= 0:
            raise EngineError("sending", 2, f"{quantums}: Invalid transfer amount")
        wallet_address = sender if sender is not None else (address if from_wallet else None)
        if wallet_address is not None:
            wallet = self._accounts.get(wallet_address)
            balance = wallet.balances.get(USDC_DENOM, 0) if wallet is not None else 0
            if wallet is None or balance < quantums:
                raise EngineError(
                    "sdk",
                    5,
                    f"spendable balance {balance}{USDC_DENOM} is smaller than {quantums}{USDC_DENOM}: insufficient funds",
                )
            wallet.balances[USDC_DENOM] = balance - quantums
        else:
            self.minted_usdc += quantums
        ref = SubaccountRef(address, number)
        self._sub(ref).usdc += quantums
        self._transfer_event("DEPOSIT", None, wallet_address or address, ref, None, quantums, tx_hash)

    def withdraw(
        self, address: str, number: int, quantums: int, *, recipient: str | None = None, tx_hash: str = ""
    ) -> None:
        """Move USDC from subaccount ``(address, number)`` to the ``recipient`` wallet (default the
        owner's; ``MsgWithdrawFromSubaccount``'s recipient may be any address); committed in the next
        block.

        Raises:
            EngineError: subaccounts 102 when the subaccount would be undercollateralized.
        """
        ref = SubaccountRef(address, number)
        self._debit(ref, quantums)
        to = recipient or address
        wallet = self.ensure_account(to)
        wallet.balances[USDC_DENOM] = wallet.balances.get(USDC_DENOM, 0) + quantums
        self._transfer_event("WITHDRAWAL", ref, None, None, to, quantums, tx_hash)

    def transfer(
        self, sender: SubaccountRef, recipient: SubaccountRef, quantums: int, *, tx_hash: str = ""
    ) -> None:
        """Move USDC between subaccounts; committed in the next block.

        Raises:
            EngineError: subaccounts 102 when the sender would be undercollateralized; sending 1 for a
                transfer to itself.
        """
        if sender == recipient:
            raise EngineError("sending", 1, "Sender is the same as recipient")
        self._debit(sender, quantums)
        self._sub(recipient).usdc += quantums
        self._transfer_event("TRANSFER", sender, None, recipient, None, quantums, tx_hash)

    def _debit(self, ref: SubaccountRef, quantums: int) -> None:
        if quantums <= 0:
            raise EngineError("sending", 2, f"{quantums}: Invalid transfer amount")
        sub = self._subaccounts.get(ref)
        if (
            sub is None
            or sub.risk(self._markets, self._oracle.prices, usdc_delta=-quantums).free_collateral < 0
        ):
            raise subaccounts_error(
                102, f"UpdateResult NewlyUndercollateralized for subaccount {ref.address}/{ref.number}"
            )
        sub.usdc -= quantums
        self._dirty[ref] = None

    def _transfer_event(
        self,
        kind: TransferType,
        sender: SubaccountRef | None,
        sender_wallet: str | None,
        recipient: SubaccountRef | None,
        recipient_wallet: str | None,
        quantums: int,
        tx_hash: str,
    ) -> None:
        self._pending.append(
            TransferCommitted(
                event_id=event_id(self.height + 1, self._next_tx(), 0),
                type=kind,
                sender=sender,
                sender_wallet=sender_wallet,
                recipient=recipient,
                recipient_wallet=recipient_wallet,
                quantums=quantums,
                tx_hash=tx_hash,
                height=self.height + 1,
                time=_UNSTAMPED,
            )
        )

    # --- helpers ----------------------------------------------------------------------------------

    def _require_market(self, clob_pair_id: int) -> MarketInfo:
        market = self._markets.get(clob_pair_id)
        if market is None:
            raise clob_error(8, f"Clob {clob_pair_id} is not a valid clob")
        return market

    def _sub(self, ref: SubaccountRef) -> Subaccount:
        sub = self._subaccounts.get(ref)
        if sub is None:
            self.ensure_account(ref.address)
            sub = self._subaccounts[ref] = Subaccount(ref)
        self._dirty[ref] = None
        return sub

    def _snapshot(self, order: OrderSnapshot) -> OrderSnapshot:
        return dataclasses.replace(order, total_filled_quantums=self._filled.get(order.key, 0))

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _next_tx(self) -> int:
        index = self._tx_index
        self._tx_index += 1
        return index

    def _stamp(self, offchain: bool) -> tuple[int, dt.datetime]:
        """Height and time of an order event: the latest block when off-chain, else the next block."""
        if offchain and not self._producing:
            return self.height, self.block_time
        return self.height + 1, _UNSTAMPED

    def _emit_order_event(self, event: ChainEvent, offchain: bool) -> None:
        if offchain and not self._producing:
            self._emit(event)
        else:
            self._pending.append(event)

    def _emit_offchain(self, event: ChainEvent) -> None:
        self._emit_order_event(event, True)

    def _emit(self, event: ChainEvent) -> None:
        if self._atomic:
            self._atomic[-1][1].append(event)
            return
        for sink in self._sinks:
            sink(event)

    def _rate_limits(self, kind: RateKind) -> Sequence[BlockRateLimit]:
        limits = self.block_rate_limits
        if kind == "short_term":
            return limits.max_short_term_orders_per_n_blocks
        if kind == "stateful":
            return limits.max_stateful_orders_per_n_blocks
        return limits.max_short_term_order_cancellations_per_n_blocks

    def _check_rate(self, kind: RateKind, address: str, *, weight: int = 1) -> None:
        """Raise 5001 if ``weight`` more ``kind`` operations of ``address`` would exceed a window.

        The chain checks this in its ClobRateLimitDecorator, before the clob checks; the engine only
        charges operations that are accepted (:meth:`_charge_rate`), whereas the chain's in-memory
        limiter also charges attempts that a later check (or the limit itself) rejects.
        """
        limits = self._rate_limits(kind)
        counts = self._rate_counts[(kind, address)]
        next_height = self.height + 1
        single = len(limits) == 1 and limits[0].num_blocks == 1
        for rate in limits:
            window = weight + sum(n for h, n in counts.items() if h > next_height - rate.num_blocks)
            if window > rate.limit:
                target = f"key {address}" if single else address
                raise clob_error(
                    5001,
                    f"Rate of {window} exceeds configured block rate limit of "
                    f"{{NumBlocks:{rate.num_blocks} Limit:{rate.limit}}} for {_RATE_CONTEXT[kind]} and {target}",
                )

    def _charge_rate(self, kind: RateKind, address: str, *, weight: int = 1) -> None:
        """Count an accepted operation. Never undone by :meth:`atomic`: the chain keeps its rate
        counters outside the store that CheckTx branches."""
        counts = self._rate_counts[(kind, address)]
        next_height = self.height + 1
        counts[next_height] = counts.get(next_height, 0) + weight
        longest = max((rate.num_blocks for rate in self._rate_limits(kind)), default=1)
        horizon = next_height - max(_RATE_HORIZON, longest)
        for h in [h for h in counts if h <= horizon]:
            del counts[h]

    def _oracle_event(
        self, clob_pair_id: int, market: MarketInfo, height: int, time: dt.datetime
    ) -> OraclePriceUpdated:
        return OraclePriceUpdated(
            clob_pair_id=clob_pair_id,
            market_id=market.market_id,
            price=self._oracle.price(clob_pair_id),
            price_exponent=market.price_exponent,
            height=height,
            time=time,
        )

    @property
    def native_denom(self) -> str:
        return NATIVE_DENOM

    @property
    def usdc_denom(self) -> str:
        return USDC_DENOM

    def random(self, salt: int) -> random.Random:
        """A :class:`random.Random` derived from the engine seed (for agents that must be reproducible)."""
        return random.Random(self.seed * 1_000_003 + salt)
