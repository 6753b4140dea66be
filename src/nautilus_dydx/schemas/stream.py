"""Schemas of the indexer WebSocket stream (protocol §4) and the decoder that produces them.

Every server message decodes into one member of :data:`MarketStreamMsg`. Decoding is done in two
msgspec passes straight from the frame's bytes, with no intermediate ``dict``: an envelope keyed on
``type`` keeps ``contents`` as :class:`msgspec.Raw`, then a decoder chosen by ``(type, channel)``
decodes the contents into its typed struct. msgspec allows one tag per union, and the wire has two
(``type`` and ``channel``), hence the two passes; the second one touches only the contents bytes.

Tolerance (deliberate, pinned by tests against captured and old documented payloads):

* unknown fields are ignored everywhere (the venue adds fields);
* most fields of orders, fills, positions and markets are optional, because the venue's own
  examples omit some (old doc examples have trades without ``id``, orders without ``clientId``);
* a fill's ``eventId`` is either the current 24-hex string or the old Node ``Buffer`` object
  (:class:`NodeBuffer`); :meth:`SubaccountFill.event_id_hex` gives the hex form of both;
* integers sent as strings (heights, client ids, order flags, clob pair ids) decode to ``int``;
* order-book level prices and sizes stay ``str``: the order book turns them into integers itself,
  which is faster and exact. Update levels are exactly ``[price, size]`` pairs: the optional third
  "offset" element of the docs' recipe is only sent on request (``includeOffsets``), which this
  client never makes, so a 3-element level is a :class:`~nautilus_dydx.core.errors.DecodeError`.
* other human numbers are :class:`~decimal.Decimal` (exact, never float).

Anything else (not JSON, wrong types, unknown ``type`` or ``channel``, missing required fields) is
a :class:`~nautilus_dydx.core.errors.DecodeError` carrying the head of the payload; no msgspec
exception escapes.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar, TypeAlias

import msgspec
from msgspec import Raw, Struct, field

from nautilus_dydx.core.errors import DecodeError
from nautilus_dydx.schemas.rest import CandleResolution  # one definition for REST and WS

__all__ = [
    "AssetPosition",
    "BlockHeightBatch",
    "BlockHeightSnapshotContents",
    "BlockHeightSubscribed",
    "BlockHeightUpdate",
    "BlockHeightUpdateContents",
    "Candle",
    "CandleResolution",
    "CandlesBatch",
    "CandlesSnapshotContents",
    "CandlesSubscribed",
    "CandlesUpdate",
    "Channel",
    "Connected",
    "ConnectionEvent",
    "Heartbeat",
    "MarketStreamMsg",
    "MarketTradingUpdate",
    "MarketsBatch",
    "MarketsSnapshotContents",
    "MarketsSubscribed",
    "MarketsUpdate",
    "MarketsUpdateContents",
    "MessageGap",
    "NodeBuffer",
    "OraclePrice",
    "OrderbookBatch",
    "OrderbookLevel",
    "OrderbookSnapshotContents",
    "OrderbookSubscribed",
    "OrderbookUpdate",
    "OrderbookUpdateContents",
    "ParentSubaccount",
    "ParentSubaccountsBatch",
    "ParentSubaccountsSnapshotContents",
    "ParentSubaccountsSubscribed",
    "ParentSubaccountsUpdate",
    "PerpetualMarket",
    "PerpetualPosition",
    "Reconnected",
    "Reconnecting",
    "StreamError",
    "Subaccount",
    "SubaccountAssetPosition",
    "SubaccountFill",
    "SubaccountOrder",
    "SubaccountPerpetualPosition",
    "SubaccountTransfer",
    "SubaccountUpdateContents",
    "SubaccountsBatch",
    "SubaccountsSnapshotContents",
    "SubaccountsSubscribed",
    "SubaccountsUpdate",
    "Trade",
    "TradesBatch",
    "TradesSnapshotContents",
    "TradesSubscribed",
    "TradesUpdate",
    "TradesUpdateContents",
    "TradingReward",
    "TransferParty",
    "Unsubscribed",
    "decode_stream_message",
]


class Channel(enum.StrEnum):
    """The indexer WebSocket channels (§4.4)."""

    MARKETS = "v4_markets"
    ORDERBOOK = "v4_orderbook"
    TRADES = "v4_trades"
    CANDLES = "v4_candles"
    SUBACCOUNTS = "v4_subaccounts"
    PARENT_SUBACCOUNTS = "v4_parent_subaccounts"
    BLOCK_HEIGHT = "v4_block_height"

    @property
    def limit(self) -> int:
        """How many subscriptions of this channel one connection may hold."""
        return _CHANNEL_LIMITS[self]

    @property
    def requires_id(self) -> bool:
        """Whether a subscription to this channel names an id."""
        return self not in (Channel.MARKETS, Channel.BLOCK_HEIGHT)


_CHANNEL_LIMITS: dict[Channel, int] = {
    Channel.MARKETS: 32,
    Channel.ORDERBOOK: 32,
    Channel.TRADES: 32,
    Channel.CANDLES: 32,
    Channel.SUBACCOUNTS: 256,
    Channel.PARENT_SUBACCOUNTS: 256,
    Channel.BLOCK_HEIGHT: 1,
}


# ---------------------------------------------------------------------------------------------
# Contents: order book
# ---------------------------------------------------------------------------------------------


class OrderbookLevel(Struct, gc=False):
    """One snapshot level: ``{"price": "...", "size": "..."}`` (human decimal strings)."""

    price: str
    size: str


class OrderbookSnapshotContents(Struct, gc=False):
    """``subscribed`` contents of ``v4_orderbook``: bids best first, asks best first."""

    bids: list[OrderbookLevel] = []
    asks: list[OrderbookLevel] = []


class OrderbookUpdateContents(Struct, gc=False):
    """``channel_data`` contents of ``v4_orderbook``: ``[price, absolute size]`` pairs per side."""

    bids: list[tuple[str, str]] = []
    asks: list[tuple[str, str]] = []


# ---------------------------------------------------------------------------------------------
# Contents: trades, candles, block height
# ---------------------------------------------------------------------------------------------


class Trade(Struct, rename="camel", gc=False):
    """One public trade (the taker's side). ``id`` is the 24-hex event id on current servers."""

    side: str
    size: Decimal
    price: Decimal
    created_at: datetime
    id: str | None = None
    type: str | None = None
    created_at_height: int | None = None


class TradesSnapshotContents(Struct, gc=False):
    """``subscribed`` contents of ``v4_trades`` (newest first)."""

    trades: list[Trade] = []


class TradesUpdateContents(Struct, gc=False):
    """``channel_data`` contents of ``v4_trades``: all taker fills of one block."""

    trades: list[Trade] = []


class Candle(Struct, rename="camel", gc=False):
    """One candle (snapshot element and update contents)."""

    started_at: datetime
    ticker: str
    resolution: str
    low: Decimal
    high: Decimal
    open: Decimal
    close: Decimal
    base_token_volume: Decimal
    usd_volume: Decimal
    trades: int
    starting_open_interest: Decimal | None = None
    orderbook_mid_price_open: Decimal | None = None
    orderbook_mid_price_close: Decimal | None = None


class CandlesSnapshotContents(Struct, gc=False):
    """``subscribed`` contents of ``v4_candles`` (newest first)."""

    candles: list[Candle] = []


class BlockHeightSnapshotContents(Struct, gc=False):
    """``subscribed`` contents of ``v4_block_height`` (key ``height``)."""

    height: int
    time: datetime


class BlockHeightUpdateContents(Struct, rename="camel", gc=False):
    """``channel_data`` contents of ``v4_block_height`` (key ``blockHeight``, unlike the snapshot)."""

    block_height: int
    time: datetime


# ---------------------------------------------------------------------------------------------
# Contents: markets
# ---------------------------------------------------------------------------------------------


class _MarketFields(Struct, rename="camel", gc=False):
    # The venue's perpetual-market fields, shared by the snapshot's market and the trading update
    # (a partial market), so a field the venue adds is declared once for both. All optional here;
    # PerpetualMarket makes ``ticker`` required (a redeclared field keeps its place, first).

    ticker: str | None = None
    clob_pair_id: int | None = None
    status: str | None = None
    oracle_price: Decimal | None = None
    price_change_24h: Decimal | None = field(default=None, name="priceChange24H")
    volume_24h: Decimal | None = field(default=None, name="volume24H")
    trades_24h: int | None = field(default=None, name="trades24H")
    next_funding_rate: Decimal | None = None
    initial_margin_fraction: Decimal | None = None
    maintenance_margin_fraction: Decimal | None = None
    open_interest: Decimal | None = None
    atomic_resolution: int | None = None
    quantum_conversion_exponent: int | None = None
    tick_size: Decimal | None = None
    step_size: Decimal | None = None
    step_base_quantums: int | None = None
    subticks_per_tick: int | None = None
    market_type: str | None = None
    open_interest_lower_cap: Decimal | None = None
    open_interest_upper_cap: Decimal | None = None
    base_open_interest: Decimal | None = None
    default_funding_rate_1h: Decimal | None = field(default=None, name="defaultFundingRate1H")


class PerpetualMarket(_MarketFields, rename="camel", gc=False):
    """A perpetual market as in ``/v4/perpetualMarkets`` (the ``v4_markets`` snapshot)."""

    ticker: str


class MarketTradingUpdate(_MarketFields, rename="camel", gc=False):
    """The partial market fields of a ``trading`` update; absent fields did not change."""

    id: str | None = None
    market_id: int | None = None


class OraclePrice(Struct, rename="camel", gc=False):
    """One oracle price of an ``oraclePrices`` update."""

    oracle_price: Decimal
    effective_at: datetime | None = None
    effective_at_height: int | None = None
    market_id: int | None = None


class MarketsSnapshotContents(Struct, gc=False):
    """``subscribed`` contents of ``v4_markets``: ``{"markets": {TICKER: PerpetualMarket}}``."""

    markets: dict[str, PerpetualMarket] = {}


class MarketsUpdateContents(Struct, rename="camel", gc=False):
    """``channel_data`` contents of ``v4_markets``: ``trading`` and/or ``oraclePrices``."""

    trading: dict[str, MarketTradingUpdate] | None = None
    oracle_prices: dict[str, OraclePrice] | None = None


# ---------------------------------------------------------------------------------------------
# Contents: subaccounts
# ---------------------------------------------------------------------------------------------


class NodeBuffer(Struct, gc=False):
    """The old serialisation of a fill's ``eventId``: ``{"type": "Buffer", "data": [bytes]}``."""

    type: str
    data: list[int]

    def hex(self) -> str:
        """The 24-hex form the current server sends."""
        return bytes(self.data).hex()


class PerpetualPosition(Struct, rename="camel", gc=False):
    """A perpetual position of a subaccount snapshot (``openPerpetualPositions`` value)."""

    market: str
    status: str
    side: str
    size: Decimal
    max_size: Decimal | None = None
    entry_price: Decimal | None = None
    exit_price: Decimal | None = None
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    created_at: datetime | None = None
    created_at_height: int | None = None
    closed_at: datetime | None = None
    sum_open: Decimal | None = None
    sum_close: Decimal | None = None
    net_funding: Decimal | None = None
    subaccount_number: int | None = None


class AssetPosition(Struct, rename="camel", gc=False):
    """An asset position of a subaccount snapshot (``assetPositions`` value); size is absolute."""

    symbol: str
    side: str
    size: Decimal
    asset_id: str | None = None
    subaccount_number: int | None = None


class Subaccount(Struct, rename="camel", gc=False):
    """A subaccount as in the REST subaccount route."""

    address: str
    subaccount_number: int
    equity: Decimal | None = None
    free_collateral: Decimal | None = None
    open_perpetual_positions: dict[str, PerpetualPosition] = {}
    asset_positions: dict[str, AssetPosition] = {}
    margin_enabled: bool | None = None
    updated_at_height: int | None = None
    latest_processed_block_height: int | None = None


class ParentSubaccount(Struct, rename="camel", gc=False):
    """A parent subaccount with its children (``v4_parent_subaccounts`` snapshot)."""

    address: str
    parent_subaccount_number: int
    equity: Decimal | None = None
    free_collateral: Decimal | None = None
    child_subaccounts: list[Subaccount] = []


class SubaccountOrder(Struct, rename="camel", gc=False):
    """An order as the subaccount channels send it (snapshot and updates); most fields optional."""

    id: str
    subaccount_id: str | None = None
    client_id: int | None = None
    clob_pair_id: int | None = None
    side: str | None = None
    size: Decimal | None = None
    total_filled: Decimal | None = None
    total_optimistic_filled: Decimal | None = None
    price: Decimal | None = None
    type: str | None = None
    status: str | None = None
    time_in_force: str | None = None
    post_only: bool | None = None
    reduce_only: bool | None = None
    order_flags: int | None = None
    good_til_block: int | None = None
    good_til_block_time: datetime | None = None
    created_at_height: int | None = None
    client_metadata: int | None = None
    trigger_price: Decimal | None = None
    ticker: str | None = None
    subaccount_number: int | None = None
    updated_at: datetime | None = None
    updated_at_height: int | None = None
    removal_reason: str | None = None
    builder_address: str | None = None
    fee_ppm: int | None = None
    order_router_address: str | None = None
    duration: int | None = None
    interval: int | None = None
    price_tolerance: int | None = None


class SubaccountFill(Struct, rename="camel", gc=False):
    """A fill of the subaccount channels."""

    id: str
    side: str
    size: Decimal
    price: Decimal
    subaccount_id: str | None = None
    liquidity: str | None = None
    type: str | None = None
    clob_pair_id: int | None = None
    market: str | None = None
    ticker: str | None = None
    market_type: str | None = None
    quote_amount: Decimal | None = None
    event_id: str | NodeBuffer | None = None
    transaction_hash: str | None = None
    created_at: datetime | None = None
    created_at_height: int | None = None
    order_id: str | None = None
    client_metadata: int | None = None
    fee: Decimal | None = None
    affiliate_rev_share: Decimal | None = None
    subaccount_number: int | None = None
    builder_fee: Decimal | None = None
    builder_address: str | None = None
    order_router_address: str | None = None
    order_router_fee: Decimal | None = None
    position_size_before: Decimal | None = None
    entry_price_before: Decimal | None = None
    position_side_before: str | None = None

    def event_id_hex(self) -> str | None:
        """The 24-hex event id, whichever form the server used."""
        if isinstance(self.event_id, NodeBuffer):
            return self.event_id.hex()
        return self.event_id


class SubaccountPerpetualPosition(Struct, rename="camel", gc=False):
    """A perpetual position row of a subaccount update (signed ``size``)."""

    market: str
    side: str | None = None
    status: str | None = None
    size: Decimal | None = None
    address: str | None = None
    subaccount_number: int | None = None
    position_id: str | None = None
    max_size: Decimal | None = None
    net_funding: Decimal | None = None
    entry_price: Decimal | None = None
    exit_price: Decimal | None = None
    sum_open: Decimal | None = None
    sum_close: Decimal | None = None
    realized_pnl: Decimal | None = None
    unrealized_pnl: Decimal | None = None


class SubaccountAssetPosition(Struct, rename="camel", gc=False):
    """An asset position row of a subaccount update."""

    symbol: str
    side: str
    size: Decimal
    address: str | None = None
    subaccount_number: int | None = None
    position_id: str | None = None
    asset_id: str | None = None


class TransferParty(Struct, rename="camel", gc=False):
    """Sender or recipient of a transfer; a wallet has no ``subaccountNumber``."""

    address: str
    subaccount_number: int | None = None


class SubaccountTransfer(Struct, rename="camel", gc=False):
    """The (single) transfer of a subaccount update."""

    sender: TransferParty
    recipient: TransferParty
    size: Decimal
    type: str
    symbol: str | None = None
    transaction_hash: str | None = None
    created_at: datetime | None = None
    created_at_height: int | None = None


class TradingReward(Struct, rename="camel", gc=False):
    """A trading reward credited to the subaccount's address."""

    trading_reward: Decimal
    created_at: datetime | None = None
    created_at_height: int | None = None


class SubaccountsSnapshotContents(Struct, rename="camel", gc=False):
    """``subscribed`` contents of ``v4_subaccounts``; all absent (``{}``) for an unknown subaccount."""

    subaccount: Subaccount | None = None
    orders: list[SubaccountOrder] = []
    block_height: int | None = None


class ParentSubaccountsSnapshotContents(Struct, rename="camel", gc=False):
    """``subscribed`` contents of ``v4_parent_subaccounts``; all absent for an unknown parent."""

    subaccount: ParentSubaccount | None = None
    orders: list[SubaccountOrder] = []
    block_height: int | None = None


class SubaccountUpdateContents(Struct, rename="camel", gc=False):
    """``channel_data`` contents of the subaccount channels (§4.6); every part optional."""

    perpetual_positions: list[SubaccountPerpetualPosition] | None = None
    asset_positions: list[SubaccountAssetPosition] | None = None
    orders: list[SubaccountOrder] | None = None
    fills: list[SubaccountFill] | None = None
    transfers: SubaccountTransfer | None = None
    trading_reward: TradingReward | None = None
    block_height: int | None = None


# ---------------------------------------------------------------------------------------------
# Messages
# ---------------------------------------------------------------------------------------------


class Connected(Struct, gc=False):
    """``connected``: the first message of a connection (``message_id`` 0)."""

    connection_id: str
    message_id: int


class Unsubscribed(Struct, gc=False):
    """``unsubscribed``: acknowledges an unsubscribe (also for what was not subscribed)."""

    connection_id: str
    message_id: int
    channel: Channel
    id: str | None = None


class StreamError(Struct, gc=False):
    """``error``: the server refused a request or failed a subscription.

    ``channel`` is the raw string the server named (it may be an invalid channel we sent).
    """

    connection_id: str
    message_id: int
    message: str
    channel: str | None = None
    id: str | None = None


class _Subscribed(Struct, gc=False):
    connection_id: str
    message_id: int
    id: str | None


class _Data(Struct, gc=False):
    connection_id: str
    message_id: int
    id: str | None
    version: str


class OrderbookSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_orderbook``: the snapshot."""

    channel: ClassVar[Channel] = Channel.ORDERBOOK
    contents: OrderbookSnapshotContents


class OrderbookUpdate(_Data, tag_field="type", tag="channel_data", gc=False):
    """``channel_data`` of ``v4_orderbook``.

    Decoded from the frame in one pass (tagged on ``type``), so ``channel`` is a field here (always
    :attr:`Channel.ORDERBOOK` once decoded), not a class constant as on the other messages.
    """

    contents: OrderbookUpdateContents
    channel: Channel


class OrderbookBatch(_Data, tag_field="type", tag="channel_batch_data", gc=False):
    """``channel_batch_data`` of ``v4_orderbook``: updates in order (``channel`` as on :class:`OrderbookUpdate`)."""

    contents: list[OrderbookUpdateContents]
    channel: Channel


class TradesSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_trades``."""

    channel: ClassVar[Channel] = Channel.TRADES
    contents: TradesSnapshotContents


class TradesUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_trades``."""

    channel: ClassVar[Channel] = Channel.TRADES
    contents: TradesUpdateContents


class TradesBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_trades``."""

    channel: ClassVar[Channel] = Channel.TRADES
    contents: list[TradesUpdateContents]


class MarketsSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_markets`` (``id`` absent)."""

    channel: ClassVar[Channel] = Channel.MARKETS
    contents: MarketsSnapshotContents


class MarketsUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_markets`` (``id`` absent)."""

    channel: ClassVar[Channel] = Channel.MARKETS
    contents: MarketsUpdateContents


class MarketsBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_markets``."""

    channel: ClassVar[Channel] = Channel.MARKETS
    contents: list[MarketsUpdateContents]


class CandlesSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_candles``."""

    channel: ClassVar[Channel] = Channel.CANDLES
    contents: CandlesSnapshotContents


class CandlesUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_candles``: the new or updated candle."""

    channel: ClassVar[Channel] = Channel.CANDLES
    contents: Candle


class CandlesBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_candles``."""

    channel: ClassVar[Channel] = Channel.CANDLES
    contents: list[Candle]


class SubaccountsSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_subaccounts``."""

    channel: ClassVar[Channel] = Channel.SUBACCOUNTS
    contents: SubaccountsSnapshotContents


class SubaccountsUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_subaccounts``."""

    channel: ClassVar[Channel] = Channel.SUBACCOUNTS
    contents: SubaccountUpdateContents


class SubaccountsBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_subaccounts``."""

    channel: ClassVar[Channel] = Channel.SUBACCOUNTS
    contents: list[SubaccountUpdateContents]


class ParentSubaccountsSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_parent_subaccounts``."""

    channel: ClassVar[Channel] = Channel.PARENT_SUBACCOUNTS
    contents: ParentSubaccountsSnapshotContents


class ParentSubaccountsUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_parent_subaccounts``; ``subaccount_number`` is the child's."""

    channel: ClassVar[Channel] = Channel.PARENT_SUBACCOUNTS
    contents: SubaccountUpdateContents
    subaccount_number: int | None = None


class ParentSubaccountsBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_parent_subaccounts`` (one child per batch)."""

    channel: ClassVar[Channel] = Channel.PARENT_SUBACCOUNTS
    contents: list[SubaccountUpdateContents]
    subaccount_number: int | None = None


class BlockHeightSubscribed(_Subscribed, gc=False):
    """``subscribed`` to ``v4_block_height`` (the server echoes ``id`` ``"v4_block_height"``)."""

    channel: ClassVar[Channel] = Channel.BLOCK_HEIGHT
    contents: BlockHeightSnapshotContents


class BlockHeightUpdate(_Data, gc=False):
    """``channel_data`` of ``v4_block_height``."""

    channel: ClassVar[Channel] = Channel.BLOCK_HEIGHT
    contents: BlockHeightUpdateContents


class BlockHeightBatch(_Data, gc=False):
    """``channel_batch_data`` of ``v4_block_height``."""

    channel: ClassVar[Channel] = Channel.BLOCK_HEIGHT
    contents: list[BlockHeightUpdateContents]


# Connection events: produced by the WebSocket client, never decoded from the wire.


class Heartbeat(Struct, frozen=True, gc=False):
    """The connection answered a liveness check (ping/pong round trip)."""


class Reconnecting(Struct, frozen=True, gc=False):
    """A connection dropped; a new one will be attempted after ``delay`` seconds.

    A client may spread its subscriptions over several sockets (see ``WsClient``); only the
    subscriptions of the socket that dropped are interrupted, and only they are replayed.

    Attributes:
        attempt: reconnect attempts of this socket since it was last healthy (1 for the first).
        delay: seconds until the attempt.
        reason: why the connection ended.
        socket: the index of the socket within its client (0 for the first).
        subscriptions: ``(channel, id)`` of every subscription the socket carried; each is
            replayed on the new connection, with a fresh snapshot where the channel has one.
    """

    attempt: int
    delay: float
    reason: str
    socket: int = 0
    subscriptions: tuple[tuple[Channel, str | None], ...] = ()


class Reconnected(Struct, frozen=True, gc=False):
    """A new connection is up on socket ``socket`` (its subscriptions are being restored)."""

    connection_id: str
    socket: int = 0


class MessageGap(Struct, frozen=True, gc=False):
    """Messages were lost on a connection: ids ``expected`` .. ``received - 1`` never arrived.

    Any subscription of the connection may have lost an update in them, so each is listed; a
    consumer keeping state from absolute updates (an order book) must rebuild it from a snapshot.

    Attributes:
        connection_id: the connection the ids belong to.
        expected: the first id that never arrived.
        received: the id that arrived instead.
        socket: the index of the socket within its client.
        subscriptions: ``(channel, id)`` of the subscriptions that may have lost an update.
    """

    connection_id: str | None
    expected: int
    received: int
    socket: int = 0
    subscriptions: tuple[tuple[Channel, str | None], ...] = ()


ConnectionEvent: TypeAlias = Heartbeat | Reconnecting | Reconnected | MessageGap

MarketStreamMsg: TypeAlias = (
    Connected
    | Unsubscribed
    | StreamError
    | OrderbookSubscribed
    | OrderbookUpdate
    | OrderbookBatch
    | TradesSubscribed
    | TradesUpdate
    | TradesBatch
    | MarketsSubscribed
    | MarketsUpdate
    | MarketsBatch
    | CandlesSubscribed
    | CandlesUpdate
    | CandlesBatch
    | SubaccountsSubscribed
    | SubaccountsUpdate
    | SubaccountsBatch
    | ParentSubaccountsSubscribed
    | ParentSubaccountsUpdate
    | ParentSubaccountsBatch
    | BlockHeightSubscribed
    | BlockHeightUpdate
    | BlockHeightBatch
    | Heartbeat
    | Reconnecting
    | Reconnected
    | MessageGap
)
"""Everything a market/account stream yields: decoded server messages and connection events."""


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------


class _Envelope(Struct, gc=False):
    type: str
    connection_id: str
    message_id: int
    channel: str | None = None
    id: str | None = None
    version: str = ""
    contents: Raw = Raw()
    message: str | None = None
    subaccountNumber: int | None = None  # the wire name: the one camelCase key of the envelope


_ENVELOPE = msgspec.json.Decoder(_Envelope)
# Order-book data is the bulk of the traffic: one pass straight into the final struct, the union
# tagged on ``type``. The channel is a plain field, checked after decoding (``_decode_book_data``'s
# callers): any other message either fails here or has another channel, and takes the general path.
_decode_book_data: Callable[[bytes | bytearray | memoryview | str], OrderbookUpdate | OrderbookBatch] = (
    msgspec.json.Decoder(OrderbookUpdate | OrderbookBatch).decode
)
_ORDERBOOK = Channel.ORDERBOOK
# Order-book contents are the hot path: strict decoding, strings only, no coercion needed.
_OB_UPDATE = msgspec.json.Decoder(OrderbookUpdateContents)
_OB_BATCH = msgspec.json.Decoder(list[OrderbookUpdateContents])


def _lax(tp: object) -> msgspec.json.Decoder[object]:
    # strict=False lets the integers the indexer sends as strings ("createdAtHeight": "61169")
    # decode into int fields; it never turns numbers into strings.
    return msgspec.json.Decoder(tp, strict=False)


_Builder = Callable[[_Envelope, Raw], object]


def _subscribed(cls: type[_Subscribed], contents: type) -> _Builder:
    dec = _lax(contents)

    def build(env: _Envelope, raw: Raw) -> object:
        return cls(env.connection_id, env.message_id, env.id, dec.decode(raw))  # type: ignore[call-arg]

    return build


def _data(cls: type[_Data], contents: object) -> _Builder:
    decoder = _lax(contents)

    def build(env: _Envelope, raw: Raw) -> object:
        return cls(env.connection_id, env.message_id, env.id, env.version, decoder.decode(raw))  # type: ignore[call-arg]

    return build


def _book_data(cls: type[OrderbookUpdate | OrderbookBatch], decoder: msgspec.json.Decoder[Any]) -> _Builder:
    # Reached only when the one-pass decode failed on an envelope the general path tolerates (no
    # ``id`` or ``version`` key); the contents are then checked here, and the result is the same.
    def build(env: _Envelope, raw: Raw) -> object:
        return cls(env.connection_id, env.message_id, env.id, env.version, decoder.decode(raw), _ORDERBOOK)

    return build


def _parent_data(cls: type[_Data], contents: object) -> _Builder:
    dec = _lax(contents)

    def build(env: _Envelope, raw: Raw) -> object:
        return cls(  # type: ignore[call-arg]
            env.connection_id, env.message_id, env.id, env.version, dec.decode(raw), env.subaccountNumber
        )

    return build


_BUILDERS: dict[tuple[str, str], _Builder] = {
    ("subscribed", "v4_orderbook"): _subscribed(OrderbookSubscribed, OrderbookSnapshotContents),
    ("channel_data", "v4_orderbook"): _book_data(OrderbookUpdate, _OB_UPDATE),
    ("channel_batch_data", "v4_orderbook"): _book_data(OrderbookBatch, _OB_BATCH),
    ("subscribed", "v4_trades"): _subscribed(TradesSubscribed, TradesSnapshotContents),
    ("channel_data", "v4_trades"): _data(TradesUpdate, TradesUpdateContents),
    ("channel_batch_data", "v4_trades"): _data(TradesBatch, list[TradesUpdateContents]),
    ("subscribed", "v4_markets"): _subscribed(MarketsSubscribed, MarketsSnapshotContents),
    ("channel_data", "v4_markets"): _data(MarketsUpdate, MarketsUpdateContents),
    ("channel_batch_data", "v4_markets"): _data(MarketsBatch, list[MarketsUpdateContents]),
    ("subscribed", "v4_candles"): _subscribed(CandlesSubscribed, CandlesSnapshotContents),
    ("channel_data", "v4_candles"): _data(CandlesUpdate, Candle),
    ("channel_batch_data", "v4_candles"): _data(CandlesBatch, list[Candle]),
    ("subscribed", "v4_subaccounts"): _subscribed(SubaccountsSubscribed, SubaccountsSnapshotContents),
    ("channel_data", "v4_subaccounts"): _data(SubaccountsUpdate, SubaccountUpdateContents),
    ("channel_batch_data", "v4_subaccounts"): _data(SubaccountsBatch, list[SubaccountUpdateContents]),
    ("subscribed", "v4_parent_subaccounts"): _subscribed(
        ParentSubaccountsSubscribed, ParentSubaccountsSnapshotContents
    ),
    ("channel_data", "v4_parent_subaccounts"): _parent_data(
        ParentSubaccountsUpdate, SubaccountUpdateContents
    ),
    ("channel_batch_data", "v4_parent_subaccounts"): _parent_data(
        ParentSubaccountsBatch, list[SubaccountUpdateContents]
    ),
    ("subscribed", "v4_block_height"): _subscribed(BlockHeightSubscribed, BlockHeightSnapshotContents),
    ("channel_data", "v4_block_height"): _data(BlockHeightUpdate, BlockHeightUpdateContents),
    ("channel_batch_data", "v4_block_height"): _data(BlockHeightBatch, list[BlockHeightUpdateContents]),
}

_CHANNELS: dict[str, Channel] = {c.value: c for c in Channel}


def decode_stream_message(data: bytes | bytearray | memoryview | str) -> MarketStreamMsg:
    """Decode one text frame of the indexer WebSocket into its typed message.

    Args:
        data: the frame's payload (UTF-8 JSON).

    Returns:
        The matching member of :data:`MarketStreamMsg`.

    Raises:
        DecodeError: the frame is not JSON, has an unknown ``type``/``channel``, or does not match
            the schema. ``payload`` holds the head of the frame.
    """
    # Speculative single pass for order-book data, the bulk of the traffic. Any other message
    # fails or has another channel here and takes the general two-pass path.
    try:
        book = _decode_book_data(data)
    except msgspec.DecodeError:
        pass
    else:
        if book.channel is _ORDERBOOK:
            return book
    return _decode_general(data)


def _decode_general(data: bytes | bytearray | memoryview | str) -> MarketStreamMsg:
    """The two-pass decode of :func:`decode_stream_message`, for every kind of message."""
    try:
        env = _ENVELOPE.decode(data)
        raw = env.contents
        channel = env.channel
        kind = env.type
        if channel is not None and raw:
            builder = _BUILDERS.get((kind, channel))
            if builder is not None:
                return builder(env, raw)  # type: ignore[return-value]
        if kind == "connected":
            return Connected(env.connection_id, env.message_id)
        if kind == "error":
            if env.message is None:
                raise _fail("error message without 'message'", data)
            return StreamError(env.connection_id, env.message_id, env.message, channel, env.id)
        if kind == "unsubscribed":
            ch = _CHANNELS.get(channel) if channel is not None else None
            if ch is None:
                raise _fail(f"unsubscribed with unknown channel {channel!r}", data)
            return Unsubscribed(env.connection_id, env.message_id, ch, env.id)
    except msgspec.DecodeError as exc:
        raise _fail(f"malformed stream message: {exc}", data) from None
    if kind in ("subscribed", "channel_data", "channel_batch_data"):
        if channel not in _CHANNELS:
            raise _fail(f"{kind} with unknown channel {channel!r}", data)
        raise _fail(f"{kind} of {channel} without contents", data)
    raise _fail(f"unknown message type {kind!r}", data)


def _fail(message: str, data: bytes | bytearray | memoryview | str) -> DecodeError:
    head = data.encode() if isinstance(data, str) else bytes(data[:512])
    return DecodeError(message, payload=head)
