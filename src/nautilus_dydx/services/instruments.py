"""Instruments: validated perpetual markets, and a TTL/LRU cache of them fed by REST and ``v4_markets``.

An :class:`Instrument` is the trading-relevant part of an indexer ``PerpetualMarket``: identity,
status, margin fractions, the oracle price and the :class:`~nautilus_dydx.core.units.MarketParams`
that quantize prices and sizes. It is built only from a market whose displayed ``tickSize`` /
``stepSize`` agree with its quantization integers; anything else is refused with a
:class:`~nautilus_dydx.core.errors.DecodeError` rather than traded with the wrong increments.

:class:`InstrumentProvider` caches instruments in front of an
:class:`~nautilus_dydx.transport.http.HttpClient`::

    provider = InstrumentProvider(http, ttl=60.0)
    await provider.load_all()            # one GET /v4/perpetualMarkets
    btc = await provider.get("BTC-USD")  # from the cache while younger than ttl
    provider.apply_markets_update(msg)   # fold a v4_markets message in, no REST

Concurrent :meth:`InstrumentProvider.get` calls for the same stale ticker share one request, and
the cache keeps at most ``max_size`` instruments, evicting the least recently used.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import dataclasses
import difflib
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from nautilus_dydx.core.errors import (
    BadRequestError,
    ConfigError,
    DecodeError,
    DydxError,
    NotFoundError,
    VenueErrorItem,
)
from nautilus_dydx.core.units import BaseQty, MarketParams, UsdPrice
from nautilus_dydx.schemas import rest, stream
from nautilus_dydx.schemas.rest import PerpetualMarketStatus, PerpetualMarketType
from nautilus_dydx.transport.http import HttpClient

__all__ = [
    "ORDER_ACCEPTING_STATUSES",
    "POST_ONLY_STATUSES",
    "Instrument",
    "InstrumentNotFoundError",
    "InstrumentProvider",
    "MarketsMessage",
    "PerpetualMarketStatus",
    "PerpetualMarketType",
]

log = logging.getLogger(__name__)

T = TypeVar("T")

ORDER_ACCEPTING_STATUSES: Final = frozenset(
    {PerpetualMarketStatus.ACTIVE, PerpetualMarketStatus.POST_ONLY, PerpetualMarketStatus.INITIALIZING}
)
"""Statuses in which the chain accepts some new orders (see :attr:`Instrument.is_tradable`)."""

POST_ONLY_STATUSES: Final = frozenset({PerpetualMarketStatus.POST_ONLY, PerpetualMarketStatus.INITIALIZING})
"""Statuses in which new orders must be post-only (INITIALIZING: short-term post-only only)."""

MarketsMessage = (
    stream.MarketsSubscribed
    | stream.MarketsUpdate
    | stream.MarketsBatch
    | stream.MarketsSnapshotContents
    | stream.MarketsUpdateContents
)
"""What :meth:`InstrumentProvider.apply_markets_update` accepts: a decoded ``v4_markets`` message."""

_MarketLike = rest.PerpetualMarket | stream.PerpetualMarket
_MAX_SUGGESTIONS = 5


def _decimals(value: Decimal) -> int:
    """Digits after the point of ``value`` written without trailing zeros (``0.0010`` -> 3, ``10`` -> 0)."""
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)  # finite values only
    return max(0, -exponent)


def _ticker_parts(ticker: str) -> tuple[str, str]:
    # Tickers are BASE-QUOTE; some bases contain commas or dashes of their own
    # ("BUFFI,UNISWAP_V3,0X4C...-USD"), so the quote is what follows the last dash.
    base, _, quote = ticker.rpartition("-")
    return base, quote


@dataclass(frozen=True, slots=True)
class Instrument:
    """A tradable dYdX v4 perpetual market, validated; build it with :meth:`from_market`.

    Attributes:
        ticker: the market's ticker, ``BASE-QUOTE`` (``"BTC-USD"``).
        clob_pair_id: the chain's clob pair id, used in order ids.
        status: the market's status.
        market_type: ``CROSS`` or ``ISOLATED`` margin.
        params: the quantization integers; use them to turn prices and sizes into chain integers.
        initial_margin_fraction: IMF, in ``(0, 1]``.
        maintenance_margin_fraction: MMF, in ``[0, IMF]``.
        oracle_price: the latest oracle price, ``None`` when the venue has none yet.

    Raises:
        ConfigError: when constructed directly with inconsistent values (:meth:`from_market` turns
            that into a :class:`~nautilus_dydx.core.errors.DecodeError`).

    Example:
        >>> from decimal import Decimal
        >>> from nautilus_dydx.core.units import MarketParams
        >>> btc = Instrument(
        ...     ticker="BTC-USD", clob_pair_id=0, status=PerpetualMarketStatus.ACTIVE,
        ...     market_type=PerpetualMarketType.CROSS, params=MarketParams(-10, -9, 1_000_000, 100_000),
        ...     initial_margin_fraction=Decimal("0.05"), maintenance_margin_fraction=Decimal("0.03"),
        ... )
        >>> btc.base, btc.quote, btc.tick_size, btc.step_size, btc.size_decimals
        ('BTC', 'USD', Decimal('1'), Decimal('0.0001'), 4)
    """

    ticker: str
    clob_pair_id: int
    status: PerpetualMarketStatus
    market_type: PerpetualMarketType
    params: MarketParams
    initial_margin_fraction: Decimal
    maintenance_margin_fraction: Decimal
    oracle_price: Decimal | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.ticker, str):
            raise ConfigError(f"instrument: ticker must be a str; got {self.ticker!r}")
        base, quote = _ticker_parts(self.ticker)
        if not base or not quote:
            raise ConfigError(f"instrument: ticker {self.ticker!r} is not BASE-QUOTE")
        if isinstance(self.clob_pair_id, bool) or not isinstance(self.clob_pair_id, int):
            raise ConfigError(
                f"instrument {self.ticker}: clob_pair_id must be an int; got {self.clob_pair_id!r}"
            )
        if self.clob_pair_id < 0:
            raise ConfigError(f"instrument {self.ticker}: clob_pair_id must be >= 0; got {self.clob_pair_id}")
        if not isinstance(self.status, PerpetualMarketStatus):
            raise ConfigError(f"instrument {self.ticker}: status must be a PerpetualMarketStatus")
        if not isinstance(self.market_type, PerpetualMarketType):
            raise ConfigError(f"instrument {self.ticker}: market_type must be a PerpetualMarketType")
        if not isinstance(self.params, MarketParams):
            raise ConfigError(f"instrument {self.ticker}: params must be MarketParams")
        imf, mmf = self.initial_margin_fraction, self.maintenance_margin_fraction
        if not isinstance(imf, Decimal) or not isinstance(mmf, Decimal):
            raise ConfigError(f"instrument {self.ticker}: margin fractions must be Decimal")
        if not (imf.is_finite() and 0 < imf <= 1):
            raise ConfigError(f"instrument {self.ticker}: initial margin fraction {imf} is not in (0, 1]")
        if not (mmf.is_finite() and 0 <= mmf <= imf):
            raise ConfigError(
                f"instrument {self.ticker}: maintenance margin fraction {mmf} is not in [0, IMF {imf}]"
            )
        price = self.oracle_price
        if price is not None and not (isinstance(price, Decimal) and price.is_finite() and price >= 0):
            raise ConfigError(
                f"instrument {self.ticker}: oracle price {price!r} is not a non-negative Decimal"
            )

    # -- construction -------------------------------------------------------------------------------

    @classmethod
    def from_market(cls, market: rest.PerpetualMarket | stream.PerpetualMarket) -> Instrument:
        """Build from a decoded market (REST ``/v4/perpetualMarkets`` or the ``v4_markets`` snapshot).

        The displayed ``tickSize`` and ``stepSize`` are checked against the quantization integers;
        an empty oracle price (``null`` or ``""``) becomes ``None``.

        Raises:
            DecodeError: a field is missing, an enum value is unknown, or the values disagree
                (``tickSize`` vs the params, MMF above IMF, a ticker that is not ``BASE-QUOTE``...).
        """
        ticker = market.ticker
        try:
            return cls._build(
                ticker=ticker,
                clob_pair_id=market.clob_pair_id,
                status=market.status,
                market_type=market.market_type,
                atomic_resolution=market.atomic_resolution,
                quantum_conversion_exponent=market.quantum_conversion_exponent,
                step_base_quantums=market.step_base_quantums,
                subticks_per_tick=market.subticks_per_tick,
                tick_size=market.tick_size,
                step_size=market.step_size,
                initial_margin_fraction=market.initial_margin_fraction,
                maintenance_margin_fraction=market.maintenance_margin_fraction,
                oracle_price=market.oracle_price,
            )
        except ConfigError as exc:
            raise DecodeError(f"market {ticker!r} is inconsistent: {exc}") from None

    @classmethod
    def _build(
        cls,
        *,
        ticker: str,
        clob_pair_id: object,
        status: object,
        market_type: object,
        atomic_resolution: object,
        quantum_conversion_exponent: object,
        step_base_quantums: object,
        subticks_per_tick: object,
        tick_size: object,
        step_size: object,
        initial_margin_fraction: object,
        maintenance_margin_fraction: object,
        oracle_price: object,
    ) -> Instrument:
        """Build from loosely typed values; every failure is a ConfigError naming the field."""
        required = {
            "clobPairId": clob_pair_id,
            "status": status,
            "marketType": market_type,
            "atomicResolution": atomic_resolution,
            "quantumConversionExponent": quantum_conversion_exponent,
            "stepBaseQuantums": step_base_quantums,
            "subticksPerTick": subticks_per_tick,
            "initialMarginFraction": initial_margin_fraction,
            "maintenanceMarginFraction": maintenance_margin_fraction,
        }
        missing = [name for name, value in required.items() if value is None]
        if missing:
            raise ConfigError(f"missing {', '.join(missing)}")
        params = MarketParams.from_indexer(
            atomic_resolution=_int_field("atomicResolution", atomic_resolution),
            quantum_conversion_exponent=_int_field("quantumConversionExponent", quantum_conversion_exponent),
            step_base_quantums=_int_field("stepBaseQuantums", step_base_quantums),
            subticks_per_tick=_int_field("subticksPerTick", subticks_per_tick),
            tick_size=_optional_decimal("tickSize", tick_size),
            step_size=_optional_decimal("stepSize", step_size),
        )
        return cls(
            ticker=ticker,
            clob_pair_id=_int_field("clobPairId", clob_pair_id),
            status=_enum_field("status", PerpetualMarketStatus, status),
            market_type=_enum_field("marketType", PerpetualMarketType, market_type),
            params=params,
            initial_margin_fraction=_decimal_field("initialMarginFraction", initial_margin_fraction),
            maintenance_margin_fraction=_decimal_field(
                "maintenanceMarginFraction", maintenance_margin_fraction
            ),
            oracle_price=_optional_decimal("oraclePrice", oracle_price),
        )

    def updated(self, change: stream.MarketTradingUpdate) -> Instrument:
        """This instrument with the fields present in a ``v4_markets`` ``trading`` update applied.

        Absent fields keep their values. When any quantization integer changes, the new set (and any
        ``tickSize`` / ``stepSize`` in the update) is checked as in :meth:`from_market`.

        Raises:
            DecodeError: the update is inconsistent with itself or with this instrument.
        """

        def pick(new: object, old: object) -> object:
            return old if new is None else new

        p = self.params
        try:
            return self._build(
                ticker=self.ticker,
                clob_pair_id=pick(change.clob_pair_id, self.clob_pair_id),
                status=pick(change.status, self.status),
                market_type=pick(change.market_type, self.market_type),
                atomic_resolution=pick(change.atomic_resolution, p.atomic_resolution),
                quantum_conversion_exponent=pick(
                    change.quantum_conversion_exponent, p.quantum_conversion_exponent
                ),
                step_base_quantums=pick(change.step_base_quantums, p.step_base_quantums),
                subticks_per_tick=pick(change.subticks_per_tick, p.subticks_per_tick),
                tick_size=change.tick_size,
                step_size=change.step_size,
                initial_margin_fraction=pick(change.initial_margin_fraction, self.initial_margin_fraction),
                maintenance_margin_fraction=pick(
                    change.maintenance_margin_fraction, self.maintenance_margin_fraction
                ),
                oracle_price=pick(change.oracle_price, self.oracle_price),
            )
        except ConfigError as exc:
            raise DecodeError(f"update of market {self.ticker!r} is inconsistent: {exc}") from None

    def with_oracle_price(self, price: Decimal | None) -> Instrument:
        """This instrument with another oracle price.

        Raises:
            ConfigError: ``price`` is negative or not a Decimal.
        """
        return dataclasses.replace(self, oracle_price=price)

    # -- derived values ---------------------------------------------------------------------------

    @property
    def base(self) -> str:
        """The base asset, ``"BTC"`` for ``BTC-USD``."""
        return _ticker_parts(self.ticker)[0]

    @property
    def quote(self) -> str:
        """The quote asset, ``"USD"`` for ``BTC-USD`` (settled in USDC)."""
        return _ticker_parts(self.ticker)[1]

    @property
    def tick_size(self) -> UsdPrice:
        """The price increment in USD."""
        return self.params.tick_size

    @property
    def step_size(self) -> BaseQty:
        """The size increment in base units."""
        return self.params.step_size

    @property
    def min_order_size(self) -> BaseQty:
        """The smallest order size: one step."""
        return self.params.step_size

    @property
    def price_decimals(self) -> int:
        """Decimal places of a price on the tick grid (``0.01`` -> 2, ``1`` -> 0)."""
        return _decimals(self.params.tick_size)

    @property
    def size_decimals(self) -> int:
        """Decimal places of a size on the step grid (``0.0001`` -> 4, ``10`` -> 0)."""
        return _decimals(self.params.step_size)

    @property
    def is_tradable(self) -> bool:
        """True when the chain accepts some new orders (ACTIVE, POST_ONLY, INITIALIZING).

        See :attr:`post_only` for the statuses that accept only post-only orders; PAUSED,
        CANCEL_ONLY and FINAL_SETTLEMENT accept no new orders.
        """
        return self.status in ORDER_ACCEPTING_STATUSES

    @property
    def post_only(self) -> bool:
        """True when new orders must be post-only (POST_ONLY; INITIALIZING: short-term post-only)."""
        return self.status in POST_ONLY_STATUSES


def _fresh_copy(error: DecodeError) -> DecodeError:
    """A new exception equal to ``error`` (type, message, payload) with no traceback of its own.

    Raising one stored object again and again would prepend the raising frames to its
    ``__traceback__`` every time: a chain, and the frames it keeps alive, that never stops growing.
    """
    return copy.copy(error)


def _int_field(name: str, value: object) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{name} must be an integer; got {value!r}")
    if isinstance(value, int):
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        body = text[1:] if text[:1] == "-" else text
        if body.isascii() and body.isdigit():
            return int(text)
    raise ConfigError(f"{name} must be an integer; got {value!r}")


def _decimal_field(name: str, value: object) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise ConfigError(f"{name} {value!r} is not a decimal number") from None
    elif isinstance(value, int) and not isinstance(value, bool):
        result = Decimal(value)
    else:
        raise ConfigError(f"{name} must be a decimal string; got {value!r}")
    if not result.is_finite():
        raise ConfigError(f"{name} {value!r} is not finite")
    return result


def _optional_decimal(name: str, value: object) -> Decimal | None:
    # The venue sends null (and some versions "") for a market with no oracle price yet.
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return _decimal_field(name, value)


E = TypeVar("E", PerpetualMarketStatus, PerpetualMarketType)


def _enum_field(name: str, enum_type: type[E], value: object) -> E:
    allowed = ", ".join(member.value for member in enum_type)
    if not isinstance(value, str):
        raise ConfigError(f"{name} {value!r} is not one of {allowed}")
    try:
        return enum_type(value)
    except ValueError:
        raise ConfigError(f"{name} {value!r} is not one of {allowed}") from None


class InstrumentNotFoundError(NotFoundError, LookupError):
    """The venue lists no market with this ticker.

    Attributes:
        ticker: the ticker asked for.
        suggestions: known tickers that look close (``"BTC-USD"`` for ``"btc-usd"`` or ``"BTC-USDT"``).
    """

    def __init__(
        self,
        ticker: str,
        *,
        suggestions: tuple[str, ...] = (),
        status: int = 404,
        errors: tuple[VenueErrorItem, ...] = (),
    ) -> None:
        hint = f"; did you mean {', '.join(suggestions)}?" if suggestions else ""
        super().__init__(f"unknown market {ticker!r}{hint}", status=status, errors=errors)
        self.ticker = ticker
        self.suggestions = suggestions


@dataclass(slots=True)
class _Entry:
    instrument: Instrument
    loaded_at: float


class InstrumentProvider:
    """A cache of :class:`Instrument` values in front of the indexer REST API.

    Entries older than ``ttl`` seconds are fetched again on :meth:`get`; beyond ``max_size``
    entries the least recently used is evicted. Concurrent fetches of the same ticker (and
    concurrent :meth:`load_all` calls) share one request. Markets that fail validation are left out
    and remembered: :meth:`get` raises their :class:`~nautilus_dydx.core.errors.DecodeError` until
    the next fetch. A fetch that fails raises; the stale entry stays readable through
    :meth:`get_cached`.

    Args:
        http: the REST client; the provider does not open or close it.
        ttl: seconds an entry stays fresh (``math.inf``: never refetch on :meth:`get`).
        max_size: the most instruments kept.
        clock: monotonic seconds; injectable for tests.

    Raises:
        ConfigError: ``ttl`` is negative or ``max_size`` below 1.
    """

    def __init__(
        self,
        http: HttpClient,
        *,
        ttl: float = 60.0,
        max_size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not ttl >= 0:
            raise ConfigError(f"ttl must be a number >= 0; got {ttl!r}")
        if isinstance(max_size, bool) or not isinstance(max_size, int) or max_size < 1:
            raise ConfigError(f"max_size must be an int >= 1; got {max_size!r}")
        self._http = http
        self._ttl = float(ttl)
        self._max_size = max_size
        self._clock = clock
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._rejected: dict[str, tuple[DecodeError, float]] = {}
        self._known: frozenset[str] = frozenset()
        self._inflight: dict[str | None, asyncio.Future[Any]] = {}

    # -- reading ----------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, ticker: object) -> bool:
        return ticker in self._entries

    def get_cached(self, ticker: str) -> Instrument | None:
        """The cached instrument, fresh or stale, or ``None``; no I/O. Counts as a use for the LRU."""
        entry = self._entries.get(ticker)
        if entry is None:
            return None
        self._entries.move_to_end(ticker)
        return entry.instrument

    def list(self) -> builtins.list[Instrument]:
        """Every cached instrument (fresh or stale), sorted by ticker; no I/O."""
        return [self._entries[ticker].instrument for ticker in sorted(self._entries)]

    def is_fresh(self, ticker: str) -> bool:
        """True when ``ticker`` is cached and younger than ``ttl``."""
        entry = self._entries.get(ticker)
        return entry is not None and self._fresh(entry.loaded_at)

    async def get(self, ticker: str) -> Instrument:
        """The instrument for ``ticker``, from the cache while fresh, else fetched (one request).

        Raises:
            InstrumentNotFoundError: the venue lists no such market (with close matches).
            DecodeError: the venue's market is inconsistent.
            ConfigError: ``ticker`` is not a non-empty string.
            TransportError: the request failed (after the HTTP client's retries).
        """
        if not isinstance(ticker, str) or not ticker.strip():
            raise ConfigError(f"ticker must be a non-empty str; got {ticker!r}")
        pending_all = self._inflight.get(None)
        if pending_all is not None and not self._fresh_entry(ticker):
            # A full load is under way: it brings this ticker too, so wait for it instead.
            try:
                await asyncio.shield(pending_all)
            except DydxError:
                log.debug("full market load failed while %s waited; fetching it alone", ticker)
        entry = self._entries.get(ticker)
        if entry is not None and self._fresh(entry.loaded_at):
            self._entries.move_to_end(ticker)
            return entry.instrument
        rejected = self._rejected.get(ticker)
        if rejected is not None and self._fresh(rejected[1]):
            raise _fresh_copy(rejected[0])
        return await self._single_flight(ticker, lambda: self._fetch_one(ticker))

    # -- loading ----------------------------------------------------------------------------------

    async def load_all(self) -> builtins.list[Instrument]:
        """Fetch every market in one request and cache them; returns the valid ones, by ticker.

        The result holds every valid market of the response, whatever ``max_size`` is. The cache
        keeps only the last ``max_size`` of them in the venue's order (the others are evicted as
        least recently used, and a later :meth:`get` fetches them one by one); give ``max_size`` at
        least the number of markets to hold them all. Markets that fail validation are logged, left
        out and remembered (see the class docs).

        Raises:
            TransportError: the request failed.
            DecodeError: the response does not decode.
        """
        return await self._single_flight(None, self._fetch_all)

    async def refresh(self, ticker: str | None = None) -> builtins.list[Instrument]:
        """Fetch again regardless of age: every market (``ticker=None``) or just ``ticker``.

        Raises:
            InstrumentNotFoundError: ``ticker`` is not listed by the venue.
            DecodeError: the market is inconsistent or the response does not decode.
            TransportError: the request failed.
        """
        if ticker is None:
            return await self.load_all()
        return [await self._single_flight(ticker, lambda: self._fetch_one(ticker))]

    def invalidate(self, ticker: str | None = None) -> None:
        """Forget ``ticker`` (or everything) so that the next :meth:`get` fetches it."""
        if ticker is None:
            self._entries.clear()
            self._rejected.clear()
        else:
            self._entries.pop(ticker, None)
            self._rejected.pop(ticker, None)

    # -- streaming --------------------------------------------------------------------------------

    def apply_markets_update(self, message: MarketsMessage) -> builtins.list[str]:
        """Fold a decoded ``v4_markets`` message into the cache, without REST; returns changed tickers.

        * a snapshot (``subscribed``) replaces the cached markets it lists, as fresh entries;
        * a ``trading`` update changes the fields it carries (status, params, margins, oracle price)
          of cached markets, and adds a market it describes completely (a new listing);
        * ``oraclePrices`` set the oracle price of cached markets.

        Updates do not reset an entry's age. A market whose update is inconsistent is dropped from
        the cache with a warning and not remembered as rejected (the next :meth:`get` fetches it),
        so one bad market never stops the feed. A snapshot market that fails validation is left out
        and remembered, as by :meth:`load_all`.
        """
        changed: builtins.list[str] = []
        if isinstance(message, stream.MarketsSubscribed):
            message = message.contents
        if isinstance(message, stream.MarketsSnapshotContents):
            now = self._clock()
            for ticker, market in message.markets.items():
                if self._accept_market(ticker, market, now) is not None:
                    changed.append(ticker)
            self._known = self._known.union(message.markets)
            return changed
        contents: Iterable[stream.MarketsUpdateContents]
        if isinstance(message, stream.MarketsUpdate):
            contents = (message.contents,)
        elif isinstance(message, stream.MarketsBatch):
            contents = message.contents
        else:
            contents = (message,)
        for part in contents:
            for ticker, change in (part.trading or {}).items():
                if self._apply_trading(ticker, change):
                    changed.append(ticker)
            for ticker, oracle in (part.oracle_prices or {}).items():
                if self._apply_oracle(ticker, oracle.oracle_price):
                    changed.append(ticker)
        return builtins.list(dict.fromkeys(changed))

    # -- internals --------------------------------------------------------------------------------

    def _fresh(self, loaded_at: float) -> bool:
        return self._clock() - loaded_at < self._ttl

    def _fresh_entry(self, ticker: str) -> bool:
        entry = self._entries.get(ticker)
        return entry is not None and self._fresh(entry.loaded_at)

    def _store(self, instrument: Instrument, loaded_at: float | None) -> None:
        entry = self._entries.get(instrument.ticker)
        if loaded_at is None:
            # A streamed change keeps the entry's age: only a full fetch makes it fresh again.
            loaded_at = entry.loaded_at if entry is not None else self._clock()
        self._entries[instrument.ticker] = _Entry(instrument, loaded_at)
        self._entries.move_to_end(instrument.ticker)
        self._rejected.pop(instrument.ticker, None)
        while len(self._entries) > self._max_size:
            evicted, _ = self._entries.popitem(last=False)
            log.debug("instrument cache full (%d): evicted %s", self._max_size, evicted)

    def _reject(self, ticker: str, error: DecodeError, at: float) -> None:
        self._entries.pop(ticker, None)
        # Only the message and payload are needed to raise it again: drop the frames it pins.
        self._rejected[ticker] = (error.with_traceback(None), at)
        log.warning("market %s left out: %s", ticker, error)

    def _drop(self, ticker: str, error: DecodeError) -> None:
        # A streamed change that does not fit says nothing about what the venue serves now: evict
        # without remembering, so the next get() asks the venue.
        self._entries.pop(ticker, None)
        self._rejected.pop(ticker, None)
        log.warning("market %s dropped from the cache: %s", ticker, error)

    def _accept_market(self, ticker: str, market: _MarketLike, now: float) -> Instrument | None:
        # Returns the instrument stored (None: rejected); it may already be evicted again when more
        # markets than max_size arrive together, so callers keep this value rather than re-read it.
        try:
            instrument = Instrument.from_market(market)
        except DecodeError as exc:
            self._reject(ticker, exc, now)
            return None
        if instrument.ticker != ticker:
            self._reject(
                ticker, DecodeError(f"market keyed {ticker!r} names itself {instrument.ticker!r}"), now
            )
            return None
        self._store(instrument, now)
        return instrument

    def _apply_trading(self, ticker: str, change: stream.MarketTradingUpdate) -> bool:
        entry = self._entries.get(ticker)
        if entry is None:
            return self._maybe_listing(ticker, change)
        try:
            instrument = entry.instrument.updated(change)
        except DecodeError as exc:
            self._drop(ticker, exc)
            return False
        if instrument == entry.instrument:
            return False
        self._store(instrument, None)
        return True

    def _maybe_listing(self, ticker: str, change: stream.MarketTradingUpdate) -> bool:
        # A new market arrives as a trading update carrying every field; partial updates of
        # markets we do not hold are ignored (get() fetches them when asked).
        try:
            instrument = Instrument._build(
                ticker=ticker,
                clob_pair_id=change.clob_pair_id,
                status=change.status,
                market_type=change.market_type,
                atomic_resolution=change.atomic_resolution,
                quantum_conversion_exponent=change.quantum_conversion_exponent,
                step_base_quantums=change.step_base_quantums,
                subticks_per_tick=change.subticks_per_tick,
                tick_size=change.tick_size,
                step_size=change.step_size,
                initial_margin_fraction=change.initial_margin_fraction,
                maintenance_margin_fraction=change.maintenance_margin_fraction,
                oracle_price=change.oracle_price,
            )
        except ConfigError:
            return False
        self._store(instrument, self._clock())
        self._known = self._known | {ticker}
        return True

    def _apply_oracle(self, ticker: str, price: Decimal) -> bool:
        entry = self._entries.get(ticker)
        if entry is None or entry.instrument.oracle_price == price:
            return False
        try:
            instrument = entry.instrument.with_oracle_price(price)
        except ConfigError as exc:
            self._drop(ticker, DecodeError(f"oracle price of {ticker!r}: {exc}"))
            return False
        self._store(instrument, None)
        return True

    async def _single_flight(self, key: str | None, fetch: Callable[[], Awaitable[T]]) -> T:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fetch())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._landed(key, done))
        # shield: a caller that is cancelled must not cancel the request the others wait on.
        result: T = await asyncio.shield(task)
        return result

    def _landed(self, key: str | None, task: asyncio.Future[Any]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every waiter left

    async def _fetch_all(self) -> builtins.list[Instrument]:
        response = await self._http.get_perpetual_markets()
        now = self._clock()
        accepted: builtins.list[Instrument] = []
        for ticker, market in response.markets.items():
            instrument = self._accept_market(ticker, market, now)
            if instrument is not None:
                accepted.append(instrument)
        self._known = frozenset(response.markets)
        log.info(
            "loaded %d markets (%d left out, %d cached)",
            len(accepted),
            len(response.markets) - len(accepted),
            len(self._entries),
        )
        return sorted(accepted, key=lambda instrument: instrument.ticker)

    async def _fetch_one(self, ticker: str) -> Instrument:
        try:
            response = await self._http.get_perpetual_markets(ticker)
        except (BadRequestError, NotFoundError) as exc:
            # The indexer answers an unknown ticker with 400 "ticker must be a valid ticker".
            if isinstance(exc, BadRequestError) and not exc.concerns("ticker"):
                raise
            self._forget(ticker)
            raise InstrumentNotFoundError(
                ticker, suggestions=self._suggest(ticker), status=exc.status, errors=exc.errors
            ) from None
        now = self._clock()
        market = response.markets.get(ticker)
        if market is None:
            self._forget(ticker)
            raise InstrumentNotFoundError(ticker, suggestions=self._suggest(ticker))
        instrument = self._accept_market(ticker, market, now)
        if instrument is None:
            raise _fresh_copy(self._rejected[ticker][0])
        return instrument

    def _forget(self, ticker: str) -> None:
        self._entries.pop(ticker, None)
        self._rejected.pop(ticker, None)
        self._known = self._known - {ticker}

    def _suggest(self, ticker: str) -> tuple[str, ...]:
        names = self._known | self._entries.keys()
        folded = {name.upper(): name for name in names}
        exact = [folded[ticker.upper()]] if ticker.upper() in folded else []
        close = difflib.get_close_matches(
            ticker.upper(), builtins.list(folded), n=_MAX_SUGGESTIONS, cutoff=0.6
        )
        return tuple(dict.fromkeys(exact + [folded[name] for name in close]))[:_MAX_SUGGESTIONS]
