"""msgspec schemas for the dYdX v4 Indexer REST API (comlink), trader-facing routes.

Every response body of the routes listed in ``docs/rest.md`` has a frozen :class:`msgspec.Struct` here,
decoded straight from the response bytes by a reusable module-level decoder (:data:`DECODERS`).

Wire conventions and how they map to Python:

* Money, price and size values travel as JSON strings holding plain decimals (``"0.050000"``); they
  are typed :class:`~decimal.Decimal` and stay exact, trailing zeros included. :func:`encode` renders
  them back in plain notation (never ``"3.75E-7"``), so ``decode`` then ``encode`` reproduces the text.
* Integers that travel as JSON strings (block heights, ``clobPairId``, ``clientId``, ``orderFlags``,
  ``goodTilBlock``, ``clientMetadata``, ``assetId``) are :class:`StrInt`: a plain ``int`` in Python that
  is rendered back as a string.
* Values the venue sends as JSON numbers (``subaccountNumber``, ``atomicResolution``, ``trades24H``,
  pagination keys, ...) are ``int``; the ``/time`` ``epoch`` is the one ``float`` (seconds, as sent; never
  use it in price maths).
* Timestamps are ISO-8601 UTC with milliseconds and ``Z``; they are decoded as aware
  :class:`~datetime.datetime` and rendered back in that exact form.
* Optional fields the venue omits default to :data:`msgspec.UNSET`, so re-encoding omits them again;
  fields the venue sends as ``null`` are typed ``... | None``.

Enumerations. An unknown value in an ``Enum``-typed field would fail the decoding of a whole page, so
only the sets that are closed by construction are typed as enums on the Structs: :class:`OrderSide`,
:class:`PositionSide`, :class:`Liquidity`, :class:`TimeInForce`, :class:`PerpetualPositionStatus` and
:class:`CandleResolution`. Sets the venue has extended over time (order status and type, fill, trade and
transfer types, market status and type, compliance status and reason) are plain ``str`` fields; their
known values are ``str``-valued enums (:class:`OrderStatus`, :class:`OrderType`, ...) that compare equal
to the raw strings (``order.status == OrderStatus.FILLED``) and are accepted as request parameters.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Final, TypeAlias, TypeVar

import msgspec
from msgspec import UNSET, UnsetType, field

__all__ = [
    "DECODERS",
    "AddressResponse",
    "AssetPosition",
    "AssetPositionsResponse",
    "Candle",
    "CandleResolution",
    "CandlesResponse",
    "ComplianceReason",
    "ComplianceScreenResponse",
    "ComplianceStatus",
    "Fill",
    "FillType",
    "FillsResponse",
    "HeightResponse",
    "HistoricalFunding",
    "HistoricalFundingResponse",
    "HistoricalPnlResponse",
    "Liquidity",
    "MarketType",
    "Order",
    "OrderBookLevel",
    "OrderBookResponse",
    "OrderSide",
    "OrderStatus",
    "OrderType",
    "OrdersResponse",
    "ParentSubaccount",
    "ParentSubaccountResponse",
    "PerpetualMarket",
    "PerpetualMarketStatus",
    "PerpetualMarketType",
    "PerpetualMarketsResponse",
    "PerpetualPosition",
    "PerpetualPositionStatus",
    "PerpetualPositionsResponse",
    "PnlTick",
    "PositionSide",
    "ScreenResponse",
    "SparklineTimePeriod",
    "SparklinesResponse",
    "StrInt",
    "Subaccount",
    "SubaccountResponse",
    "TimeInForce",
    "TimeResponse",
    "Trade",
    "TradeType",
    "TradesResponse",
    "Transfer",
    "TransferAccount",
    "TransferType",
    "TransfersResponse",
    "decode",
    "encode",
    "format_decimal",
    "format_iso",
]


# --------------------------------------------------------------------------------------------------
# Scalar helpers


class StrInt(int):
    """An integer the venue sends as a JSON string (``"61169"``); an ``int`` in Python.

    :func:`encode` renders it back as a string, so the wire form survives a round trip.
    """

    __slots__ = ()


_INT_TEXT = re.compile(r"-?[0-9]+")
_V = TypeVar("_V")


def _dec_hook(tp: type[Any], obj: Any) -> Any:
    if tp is StrInt:
        if isinstance(obj, str) and _INT_TEXT.fullmatch(obj):
            return StrInt(obj)
        # Tolerate a newer venue that starts sending the number itself; bools are ints in Python.
        if type(obj) is int:
            return StrInt(obj)
        raise ValueError(f"expected an integer string, got {obj!r}")
    raise NotImplementedError(f"no decoder for {tp!r}")


def _first_set(*values: _V | UnsetType) -> _V | None:
    # The first value the venue sent, for a field that has two spellings on the wire.
    for value in values:
        if not isinstance(value, UnsetType):
            return value
    return None


def format_decimal(value: Decimal) -> str:
    """Plain-notation text of a Decimal, keeping its exponent (``Decimal("3.75E-7")`` -> ``"0.000000375"``)."""
    return format(value, "f")


def format_iso(value: datetime) -> str:
    """ISO-8601 UTC text with milliseconds and ``Z``, the indexer's timestamp form.

    Naive datetimes are taken to be UTC.
    """
    if value.tzinfo is not None:
        value = value.astimezone(UTC)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


# --------------------------------------------------------------------------------------------------
# Enumerations


class OrderSide(enum.StrEnum):
    """Side of an order, fill or trade (for trades: the taker's side)."""

    BUY = "BUY"
    SELL = "SELL"


class PositionSide(enum.StrEnum):
    """Side of a position; a net-negative USDC balance shows as ``SHORT``."""

    LONG = "LONG"
    SHORT = "SHORT"


class Liquidity(enum.StrEnum):
    """Whether a fill took or made liquidity."""

    TAKER = "TAKER"
    MAKER = "MAKER"


class TimeInForce(enum.StrEnum):
    """Time in force as the indexer reports it (post-only orders show as ``GTT`` + ``postOnly``)."""

    GTT = "GTT"
    IOC = "IOC"
    FOK = "FOK"


class PerpetualPositionStatus(enum.StrEnum):
    """Lifecycle state of a perpetual position."""

    OPEN = "OPEN"
    CLOSED = "CLOSED"
    LIQUIDATED = "LIQUIDATED"


class CandleResolution(enum.StrEnum):
    """Candle widths; the value is the wire text, :attr:`seconds` the width."""

    ONE_MINUTE = "1MIN"
    FIVE_MINUTES = "5MINS"
    FIFTEEN_MINUTES = "15MINS"
    THIRTY_MINUTES = "30MINS"
    ONE_HOUR = "1HOUR"
    FOUR_HOURS = "4HOURS"
    ONE_DAY = "1DAY"

    @property
    def seconds(self) -> int:
        """Width of one candle in seconds."""
        return _CANDLE_SECONDS[self.value]


_CANDLE_SECONDS: Final = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}


class OrderStatus(enum.StrEnum):
    """Known order statuses (``Order.status`` is a plain ``str``: the venue adds values)."""

    OPEN = "OPEN"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    BEST_EFFORT_CANCELED = "BEST_EFFORT_CANCELED"
    BEST_EFFORT_OPENED = "BEST_EFFORT_OPENED"
    UNTRIGGERED = "UNTRIGGERED"
    ERROR = "ERROR"


class OrderType(enum.StrEnum):
    """Known order types (``Order.type`` is a plain ``str``)."""

    LIMIT = "LIMIT"
    MARKET = "MARKET"
    STOP_LIMIT = "STOP_LIMIT"
    STOP_MARKET = "STOP_MARKET"
    TRAILING_STOP = "TRAILING_STOP"
    TAKE_PROFIT = "TAKE_PROFIT"
    TAKE_PROFIT_MARKET = "TAKE_PROFIT_MARKET"
    TWAP = "TWAP"
    TWAP_SUBORDER = "TWAP_SUBORDER"


class FillType(enum.StrEnum):
    """Known fill types (``Fill.type`` is a plain ``str``)."""

    LIMIT = "LIMIT"
    LIQUIDATED = "LIQUIDATED"
    LIQUIDATION = "LIQUIDATION"
    DELEVERAGED = "DELEVERAGED"
    OFFSETTING = "OFFSETTING"
    TWAP_SUBORDER = "TWAP_SUBORDER"


class TradeType(enum.StrEnum):
    """Known public trade types (``Trade.type`` is a plain ``str``)."""

    LIMIT = "LIMIT"
    LIQUIDATED = "LIQUIDATED"
    DELEVERAGED = "DELEVERAGED"
    TWAP_SUBORDER = "TWAP_SUBORDER"


class TransferType(enum.StrEnum):
    """Known transfer types, relative to the queried subaccount (``Transfer.type`` is a plain ``str``)."""

    TRANSFER_IN = "TRANSFER_IN"
    TRANSFER_OUT = "TRANSFER_OUT"
    DEPOSIT = "DEPOSIT"
    WITHDRAWAL = "WITHDRAWAL"


class PerpetualMarketStatus(enum.StrEnum):
    """Known market statuses (``PerpetualMarket.status`` is a plain ``str``)."""

    ACTIVE = "ACTIVE"
    PAUSED = "PAUSED"
    CANCEL_ONLY = "CANCEL_ONLY"
    POST_ONLY = "POST_ONLY"
    INITIALIZING = "INITIALIZING"
    FINAL_SETTLEMENT = "FINAL_SETTLEMENT"


class PerpetualMarketType(enum.StrEnum):
    """Known margin modes of a market (``PerpetualMarket.market_type`` is a plain ``str``)."""

    CROSS = "CROSS"
    ISOLATED = "ISOLATED"


class MarketType(enum.StrEnum):
    """Known market kinds of a fill (``Fill.market_type`` is a plain ``str``); also the fills filter."""

    PERPETUAL = "PERPETUAL"
    SPOT = "SPOT"


class ComplianceStatus(enum.StrEnum):
    """Known statuses of ``/v4/compliance/screen/{address}``."""

    COMPLIANT = "COMPLIANT"
    FIRST_STRIKE_CLOSE_ONLY = "FIRST_STRIKE_CLOSE_ONLY"
    FIRST_STRIKE = "FIRST_STRIKE"
    CLOSE_ONLY = "CLOSE_ONLY"
    BLOCKED = "BLOCKED"


class ComplianceReason(enum.StrEnum):
    """Known reasons of ``/v4/compliance/screen/{address}``."""

    MANUAL = "MANUAL"
    US_GEO = "US_GEO"
    CA_GEO = "CA_GEO"
    GB_GEO = "GB_GEO"
    SANCTIONED_GEO = "SANCTIONED_GEO"
    COMPLIANCE_PROVIDER = "COMPLIANCE_PROVIDER"


class SparklineTimePeriod(enum.StrEnum):
    """The ``timePeriod`` of ``/v4/sparklines``."""

    ONE_DAY = "ONE_DAY"
    SEVEN_DAYS = "SEVEN_DAYS"


# --------------------------------------------------------------------------------------------------
# Structs
#
# Decoded responses never form reference cycles, so gc=False is safe and keeps large market and fill
# pages out of the cyclic collector. kw_only is not inherited by msgspec, hence repeated per class.


class _Struct(msgspec.Struct, frozen=True, gc=False, forbid_unknown_fields=False, rename="camel"):
    """Common configuration of every REST Struct."""


class _Paged(_Struct, frozen=True, kw_only=True):
    """Pagination keys, present only when the request carried ``page``."""

    page_size: int | UnsetType = UNSET
    total_results: int | UnsetType = UNSET
    offset: int | UnsetType = UNSET


class TimeResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/time``."""

    iso: datetime
    epoch: float


class HeightResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/height``: the latest block the indexer processed."""

    height: StrInt
    time: datetime


class PerpetualMarket(_Struct, frozen=True, kw_only=True):
    """One market of ``GET /v4/perpetualMarkets``.

    ``oracle_price`` is ``None`` for a market that has no price yet (status ``INITIALIZING``).
    """

    clob_pair_id: StrInt
    ticker: str
    status: str
    oracle_price: Decimal | None
    price_change_24h: Decimal = field(name="priceChange24H")
    volume_24h: Decimal = field(name="volume24H")
    trades_24h: int = field(name="trades24H")
    next_funding_rate: Decimal
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal
    open_interest: Decimal
    atomic_resolution: int
    quantum_conversion_exponent: int
    tick_size: Decimal
    step_size: Decimal
    step_base_quantums: int
    subticks_per_tick: int
    market_type: str
    base_open_interest: Decimal | UnsetType = UNSET
    open_interest_lower_cap: Decimal | UnsetType = UNSET
    open_interest_upper_cap: Decimal | UnsetType = UNSET
    default_funding_rate_1h: Decimal | UnsetType = field(default=UNSET, name="defaultFundingRate1H")


class PerpetualMarketsResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/perpetualMarkets``: markets keyed by ticker."""

    markets: dict[str, PerpetualMarket]


class OrderBookLevel(_Struct, frozen=True, kw_only=True):
    """One aggregated price level."""

    price: Decimal
    size: Decimal


class OrderBookResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/orderbooks/perpetualMarket/{ticker}``: bids descending, asks ascending."""

    bids: list[OrderBookLevel]
    asks: list[OrderBookLevel]


class Trade(_Struct, frozen=True, kw_only=True):
    """A public trade (the taker fill); ``id`` is the 24-hex event id."""

    id: str
    side: OrderSide
    size: Decimal
    price: Decimal
    type: str
    created_at: datetime
    created_at_height: StrInt


class TradesResponse(_Paged, frozen=True, kw_only=True):
    """``GET /v4/trades/perpetualMarket/{ticker}``."""

    trades: list[Trade]


class Candle(_Struct, frozen=True, kw_only=True):
    """One candle; the mid-price fields are ``null`` when the book was empty."""

    started_at: datetime
    ticker: str
    resolution: CandleResolution
    low: Decimal
    high: Decimal
    open: Decimal
    close: Decimal
    base_token_volume: Decimal
    usd_volume: Decimal
    trades: int
    starting_open_interest: Decimal
    orderbook_mid_price_open: Decimal | UnsetType | None = UNSET
    orderbook_mid_price_close: Decimal | UnsetType | None = UNSET


class CandlesResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/candles/perpetualMarkets/{ticker}``: newest first."""

    candles: list[Candle]


class HistoricalFunding(_Struct, frozen=True, kw_only=True):
    """One funding rate update; ``rate`` is the 1-hour rate."""

    ticker: str
    rate: Decimal
    price: Decimal
    effective_at: datetime
    effective_at_height: StrInt


class HistoricalFundingResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/historicalFunding/{ticker}``: newest first."""

    historical_funding: list[HistoricalFunding]


SparklinesResponse: TypeAlias = dict[str, list[Decimal]]
"""``GET /v4/sparklines``: closes per ticker, newest first (a bare JSON object)."""


class PerpetualPosition(_Struct, frozen=True, kw_only=True):
    """A perpetual position; ``size`` is signed (negative for shorts)."""

    market: str
    status: PerpetualPositionStatus
    side: PositionSide
    size: Decimal
    max_size: Decimal
    entry_price: Decimal
    realized_pnl: Decimal
    created_at: datetime
    created_at_height: StrInt
    sum_open: Decimal
    sum_close: Decimal
    net_funding: Decimal
    unrealized_pnl: Decimal
    closed_at: datetime | UnsetType | None = UNSET
    exit_price: Decimal | UnsetType | None = UNSET
    subaccount_number: int


class AssetPosition(_Struct, frozen=True, kw_only=True):
    """An asset (USDC) position; ``size`` is absolute, ``side`` carries the sign."""

    symbol: str
    side: PositionSide
    size: Decimal
    asset_id: StrInt
    subaccount_number: int | UnsetType = UNSET


class Subaccount(_Struct, frozen=True, kw_only=True):
    """A subaccount with its open perpetual positions and asset positions."""

    address: str
    subaccount_number: int
    equity: Decimal
    free_collateral: Decimal
    open_perpetual_positions: dict[str, PerpetualPosition]
    asset_positions: dict[str, AssetPosition]
    margin_enabled: bool
    updated_at_height: StrInt | UnsetType = UNSET
    latest_processed_block_height: StrInt | UnsetType = UNSET


class SubaccountResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/addresses/{address}/subaccountNumber/{n}`` (wrapped, whatever swagger says)."""

    subaccount: Subaccount


class AddressResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/addresses/{address}``: every subaccount of the address."""

    subaccounts: list[Subaccount]
    total_trading_rewards: Decimal


class ParentSubaccount(_Struct, frozen=True, kw_only=True):
    """A parent subaccount; equity and free collateral are sums over the children."""

    address: str
    parent_subaccount_number: int
    equity: Decimal
    free_collateral: Decimal
    child_subaccounts: list[Subaccount]


class ParentSubaccountResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/addresses/{address}/parentSubaccountNumber/{n}``."""

    subaccount: ParentSubaccount


class PerpetualPositionsResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/perpetualPositions`` (and its parent variant): most recently opened first."""

    positions: list[PerpetualPosition]


class AssetPositionsResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/assetPositions`` (and its parent variant)."""

    positions: list[AssetPosition]


class Order(_Struct, frozen=True, kw_only=True):
    """An order as the indexer shows it (``GET /v4/orders`` items and ``GET /v4/orders/{id}``).

    ``good_til_block`` is set for short-term orders, ``good_til_block_time`` for stateful ones;
    ``created_at``/``created_at_height`` only for stateful orders.
    """

    id: str
    subaccount_id: str
    client_id: StrInt
    clob_pair_id: StrInt
    side: OrderSide
    size: Decimal
    total_filled: Decimal
    price: Decimal
    type: str
    status: str
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    order_flags: StrInt
    good_til_block: StrInt | UnsetType = UNSET
    good_til_block_time: datetime | UnsetType = UNSET
    created_at_height: StrInt | UnsetType = UNSET
    created_at: datetime | UnsetType = UNSET
    updated_at: datetime | UnsetType = UNSET
    updated_at_height: StrInt | UnsetType = UNSET
    client_metadata: StrInt
    trigger_price: Decimal | UnsetType | None = UNSET
    ticker: str
    subaccount_number: int
    builder_address: str | UnsetType | None = UNSET
    fee_ppm: StrInt | UnsetType | None = UNSET
    order_router_address: str | UnsetType | None = UNSET
    duration: str | UnsetType | None = UNSET
    interval: str | UnsetType | None = UNSET
    price_tolerance: str | UnsetType | None = UNSET


OrdersResponse: TypeAlias = list[Order]
"""``GET /v4/orders``: a bare JSON array."""


class Fill(_Struct, frozen=True, kw_only=True):
    """One of the subaccount's fills; a negative ``fee`` is a rebate."""

    id: str
    side: OrderSide
    liquidity: Liquidity
    type: str
    market: str
    market_type: str
    price: Decimal
    size: Decimal
    fee: Decimal
    affiliate_rev_share: Decimal | UnsetType = UNSET
    created_at: datetime
    created_at_height: StrInt
    order_id: str | UnsetType = UNSET
    client_metadata: StrInt | UnsetType = UNSET
    subaccount_number: int
    builder_fee: Decimal | UnsetType | None = UNSET
    builder_address: str | UnsetType | None = UNSET
    order_router_address: str | UnsetType | None = UNSET
    order_router_fee: Decimal | UnsetType | None = UNSET
    position_size_before: Decimal | UnsetType | None = UNSET
    entry_price_before: Decimal | UnsetType | None = UNSET
    position_side_before: str | UnsetType | None = UNSET


class FillsResponse(_Paged, frozen=True, kw_only=True):
    """``GET /v4/fills`` (and its parent variant)."""

    fills: list[Fill]


class TransferAccount(_Struct, frozen=True, kw_only=True):
    """One end of a transfer; a wallet end has only ``address``."""

    address: str
    subaccount_number: int | UnsetType = UNSET
    parent_subaccount_number: int | UnsetType = UNSET


class Transfer(_Struct, frozen=True, kw_only=True):
    """A transfer, deposit or withdrawal, typed relative to the queried subaccount.

    The indexer names the amount ``size`` and the asset ``symbol``; one captured mainnet body names
    them ``amount`` and ``asset``. Both spellings decode; :attr:`quantity` and :attr:`asset_symbol`
    read whichever is present.
    """

    id: str
    sender: TransferAccount
    recipient: TransferAccount
    size: Decimal | UnsetType = UNSET
    symbol: str | UnsetType = UNSET
    amount: Decimal | UnsetType = UNSET
    asset: str | UnsetType = UNSET
    created_at: datetime
    created_at_height: StrInt
    type: str
    transaction_hash: str

    @property
    def quantity(self) -> Decimal | None:
        """The transferred amount, whichever key carried it."""
        return _first_set(self.size, self.amount)

    @property
    def asset_symbol(self) -> str | None:
        """The transferred asset's symbol, whichever key carried it."""
        return _first_set(self.symbol, self.asset)


class TransfersResponse(_Paged, frozen=True, kw_only=True):
    """``GET /v4/transfers`` (and its parent variant)."""

    transfers: list[Transfer]


class PnlTick(_Struct, frozen=True, kw_only=True):
    """One hourly (or daily) PnL snapshot of a subaccount."""

    equity: Decimal
    total_pnl: Decimal
    net_transfers: Decimal
    created_at: datetime
    block_height: StrInt
    block_time: datetime


class HistoricalPnlResponse(_Paged, frozen=True, kw_only=True):
    """``GET /v4/historical-pnl`` (and its parent variant): ``blockHeight`` descending."""

    historical_pnl: list[PnlTick]


class ScreenResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/screen?address=...``: the legacy compliance check."""

    restricted: bool
    reason: str | UnsetType = UNSET


class ComplianceScreenResponse(_Struct, frozen=True, kw_only=True):
    """``GET /v4/compliance/screen/{address}``; ``status`` values are in :class:`ComplianceStatus`."""

    status: str
    reason: str | UnsetType = UNSET
    updated_at: datetime | UnsetType = UNSET


# --------------------------------------------------------------------------------------------------
# Decoding and encoding

T = TypeVar("T")

_RESPONSE_TYPES: Final[tuple[Any, ...]] = (
    TimeResponse,
    HeightResponse,
    PerpetualMarketsResponse,
    OrderBookResponse,
    TradesResponse,
    CandlesResponse,
    HistoricalFundingResponse,
    SparklinesResponse,
    AddressResponse,
    SubaccountResponse,
    ParentSubaccountResponse,
    PerpetualPositionsResponse,
    AssetPositionsResponse,
    OrdersResponse,
    Order,
    FillsResponse,
    TransfersResponse,
    HistoricalPnlResponse,
    ScreenResponse,
    ComplianceScreenResponse,
)

DECODERS: Final[dict[Any, msgspec.json.Decoder[Any]]] = {
    tp: msgspec.json.Decoder(tp, dec_hook=_dec_hook) for tp in _RESPONSE_TYPES
}
"""One reusable JSON decoder per response type (keys are the types, including the two aliases)."""


def decode(data: bytes | str, tp: type[T]) -> T:
    """Decode a response body into ``tp`` (a type of this module).

    Raises:
        msgspec.ValidationError: the JSON does not match the schema.
        msgspec.DecodeError: the bytes are not JSON.

    The transport maps both to :class:`nautilus_dydx.core.errors.DecodeError`.
    """
    decoder = DECODERS.get(tp)
    if decoder is None:
        decoder = msgspec.json.Decoder(tp, dec_hook=_dec_hook)
    result: T = decoder.decode(data)
    return result


def _plain(obj: Any) -> Any:
    # Rebuilds the builtins tree with wire renderings of the exact types msgspec left in place.
    if isinstance(obj, dict):
        return {key: _plain(value) for key, value in obj.items()}
    if isinstance(obj, list):
        return [_plain(value) for value in obj]
    if isinstance(obj, Decimal):
        return format_decimal(obj)
    if isinstance(obj, datetime):
        return format_iso(obj)
    return obj


def _enc_hook(obj: Any) -> Any:
    if isinstance(obj, StrInt):
        return str(int(obj))
    raise NotImplementedError(f"cannot encode {type(obj).__name__}")


_ENCODER: Final = msgspec.json.Encoder()
_to_builtins: Final[Callable[..., Any]] = msgspec.to_builtins


def encode(obj: Any) -> bytes:
    """Render a REST Struct (or a list/dict of them) back to the indexer's JSON form.

    Decimals in plain notation with their exponent kept, :class:`StrInt` as strings, timestamps with
    milliseconds and ``Z``, ``UNSET`` fields omitted: ``encode(decode(body))`` equals ``body`` as JSON.
    """
    builtins = _to_builtins(obj, builtin_types=(Decimal, datetime), enc_hook=_enc_hook)
    return _ENCODER.encode(_plain(builtins))
