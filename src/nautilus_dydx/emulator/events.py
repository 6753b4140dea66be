"""What the emulated chain tells the emulated indexer.

The real dYdX chain streams events to its indexer (on-chain block events to *ender*, off-chain
order-book events to *vulcan*); the indexer builds its own tables from them and serves REST and the
WebSocket from those tables. The emulator keeps the same split: :mod:`.engine` emits these values
through a sink callback, :mod:`.indexer` consumes them and never reads engine internals. That keeps
the indexer's view able to differ from the truth exactly as the real one can (lagging, crossed).

All chain values are integers (quantums, subticks, USDC quantums of 1e-6); the indexer converts to
human decimal strings itself with the market parameters in :class:`MarketInfo`.

Timing, as on the venue:
- off-chain events (``OrderPlaced`` of short-term orders with status ``BEST_EFFORT_OPENED``,
  ``OrderUpdated`` for optimistic fills, ``OrderRemoved`` with ``BEST_EFFORT_CANCELED``) are emitted at
  once, when the engine accepts or matches the order;
- on-chain events (``FillCommitted``, ``SubaccountUpdated``, ``TransferCommitted``, stateful order
  placement and removal, ``OraclePriceUpdated``, ``FundingUpdated``) are emitted while a block is
  produced, stamped with that block's height and time, and followed by ``BlockCommitted``.

This module is shared by the engine and the indexer sides of the emulator only; it is part of the
emulator and imports nothing of the client package.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

Side = Literal["BUY", "SELL"]
TimeInForce = Literal["GTT", "IOC", "POST_ONLY", "FOK"]
ConditionType = Literal["UNSPECIFIED", "STOP_LOSS", "TAKE_PROFIT"]
OrderStatus = Literal[
    "BEST_EFFORT_OPENED", "OPEN", "FILLED", "CANCELED", "BEST_EFFORT_CANCELED", "UNTRIGGERED"
]
Liquidity = Literal["TAKER", "MAKER"]
FillType = Literal["LIMIT", "LIQUIDATED", "LIQUIDATION", "DELEVERAGED", "OFFSETTING"]
MarketStatus = Literal["ACTIVE", "PAUSED", "CANCEL_ONLY", "POST_ONLY", "INITIALIZING", "FINAL_SETTLEMENT"]
MarketType = Literal["CROSS", "ISOLATED"]
TransferType = Literal["DEPOSIT", "WITHDRAWAL", "TRANSFER"]

SHORT_TERM = 0
CONDITIONAL = 32
LONG_TERM = 64


@dataclass(frozen=True, slots=True)
class SubaccountRef:
    address: str
    number: int


@dataclass(frozen=True, slots=True)
class OrderKey:
    """The chain's OrderId."""

    owner: str
    subaccount_number: int
    client_id: int
    clob_pair_id: int
    order_flags: int


@dataclass(frozen=True, slots=True)
class MarketInfo:
    """Static and slowly changing parameters of one perpetual market (one clob pair)."""

    clob_pair_id: int
    perpetual_id: int
    market_id: int
    ticker: str
    atomic_resolution: int
    quantum_conversion_exponent: int
    step_base_quantums: int
    subticks_per_tick: int
    initial_margin_ppm: int
    maintenance_fraction_ppm: int
    market_type: MarketType
    status: MarketStatus
    price_exponent: int
    default_funding_ppm: int = 0
    liquidity_tier: int = 0
    open_interest_lower_cap: int = 0
    open_interest_upper_cap: int = 0


@dataclass(frozen=True, slots=True)
class OrderSnapshot:
    """An order as placed on chain, with how much of it has filled so far."""

    key: OrderKey
    side: Side
    quantums: int
    subticks: int
    good_til_block: int | None
    good_til_block_time: int | None  # unix seconds
    time_in_force: TimeInForce
    reduce_only: bool
    client_metadata: int
    condition_type: ConditionType
    trigger_subticks: int
    total_filled_quantums: int = 0


@dataclass(frozen=True, slots=True)
class PositionSnapshot:
    """A perpetual position after a block: signed base quantums (negative = short)."""

    clob_pair_id: int
    quantums: int
    entry_quote_quantums: int  # |cost basis| of the open size, USDC quantums
    realized_pnl: int  # USDC quantums, since the position opened
    net_funding: int  # USDC quantums, settled
    sum_open: int  # base quantums opened in total
    sum_close: int  # base quantums closed in total
    max_size: int  # largest |quantums| reached
    open_event_id: bytes  # 12-byte event id of the event that opened it
    created_height: int
    created_time: dt.datetime
    closed_height: int | None = None
    closed_time: dt.datetime | None = None
    exit_quote_quantums: int | None = None  # cost of the closing fills, when closed
    # |cost| of every opening fill, never reduced by closing: the average entry price stays
    # open_quote_quantums / sum_open after the position closes. None: not provided.
    open_quote_quantums: int | None = None


# --- events ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MarketListed:
    """A market exists (emitted for every market at start, before the first block)."""

    market: MarketInfo


@dataclass(frozen=True, slots=True)
class MarketStatusChanged:
    clob_pair_id: int
    status: MarketStatus
    height: int


@dataclass(frozen=True, slots=True)
class BlockCommitted:
    """Block ``height`` is final; every on-chain event of it was emitted before this one."""

    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class OraclePriceUpdated:
    clob_pair_id: int
    market_id: int
    price: int  # price in units of 10**price_exponent
    price_exponent: int
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class FundingUpdated:
    """Hourly funding: the 1-hour rate in ppm-of-ppm precision as a string-safe integer pair."""

    clob_pair_id: int
    rate_ppm: int  # funding rate for the hour, in parts per million
    oracle_price: int  # in units of 10**price_exponent
    price_exponent: int
    next_rate_ppm: int
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderPlaced:
    """An order entered the book or the state (resting, untriggered, or best-effort seen)."""

    order: OrderSnapshot
    status: Literal["BEST_EFFORT_OPENED", "OPEN", "UNTRIGGERED"]
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderUpdated:
    """The filled amount of a live order changed (its remaining size moves the book level)."""

    key: OrderKey
    total_filled_quantums: int
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderTriggered:
    """A conditional order triggered in block ``height`` (status UNTRIGGERED -> OPEN).

    As on the chain, triggering is decided at the end of block ``height`` against that block's oracle
    price; the order joins the book, and can match, from block ``height + 1``.
    """

    key: OrderKey
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class OrderRemoved:
    """An order left the book or the state.

    ``reason`` is the full enum name, e.g. ``"ORDER_REMOVAL_REASON_USER_CANCELED"``.
    """

    key: OrderKey
    status: Literal["FILLED", "CANCELED", "BEST_EFFORT_CANCELED"]
    reason: str
    total_filled_quantums: int
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class FillCommitted:
    """One match between a maker and a taker order, committed in block ``height``.

    ``event_id`` is the 12-byte id: height (u32 BE) | transaction index (u32 BE) | event index (u32 BE).
    Fees are USDC quantums; negative is a rebate.
    """

    event_id: bytes
    clob_pair_id: int
    maker: OrderKey
    taker: OrderKey
    taker_side: Side
    subticks: int
    quantums: int
    maker_fee: int
    taker_fee: int
    fill_type: FillType
    height: int
    time: dt.datetime
    tx_hash: str
    maker_client_metadata: int = 0
    taker_client_metadata: int = 0


@dataclass(frozen=True, slots=True)
class SubaccountUpdated:
    """The full state of a subaccount after a block changed it."""

    subaccount: SubaccountRef
    usdc_quantums: int  # signed
    positions: tuple[PositionSnapshot, ...]  # open positions only
    closed_positions: tuple[PositionSnapshot, ...]  # positions closed in this block
    height: int
    time: dt.datetime


@dataclass(frozen=True, slots=True)
class TransferCommitted:
    """USDC moved: a deposit (wallet -> subaccount), a withdrawal, or a subaccount transfer."""

    event_id: bytes
    type: TransferType
    sender: SubaccountRef | None
    sender_wallet: str | None
    recipient: SubaccountRef | None
    recipient_wallet: str | None
    quantums: int
    tx_hash: str
    height: int
    time: dt.datetime


ChainEvent = (
    MarketListed
    | MarketStatusChanged
    | BlockCommitted
    | OraclePriceUpdated
    | FundingUpdated
    | OrderPlaced
    | OrderUpdated
    | OrderTriggered
    | OrderRemoved
    | FillCommitted
    | SubaccountUpdated
    | TransferCommitted
)
