"""The emulated indexer's own tables, built only from the chain's events.

:class:`IndexerStore` is the sink the chain engine feeds (``engine.add_sink(store.apply)``). Like the
real indexer (ender for block events, vulcan for off-chain order events) it keeps its own copy of
markets, orders, fills, positions, transfers, candles and an aggregated order book, and pushes the
WebSocket updates those events cause through a ``publish`` callback. It never reads the engine.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, ClassVar

from nautilus_dydx.emulator import events as ev
from nautilus_dydx.emulator.indexer import fmt

__all__ = [
    "Candle",
    "FillRow",
    "IndexerStore",
    "OrderRow",
    "PnlTick",
    "Publish",
    "SubaccountRow",
    "TransferRow",
]

log = logging.getLogger(__name__)

Json = dict[str, Any]
# publish(channel, id, contents, child_subaccount_number)
Publish = Callable[[str, str | None, Json, int | None], None]
Wants = Callable[[str, str | None], bool]

MAX_TERMINAL_ORDERS_PER_SUBACCOUNT = 5000
MAX_FILLS_PER_SUBACCOUNT = 20000
MAX_TRADES_PER_MARKET = 20000
MAX_CANDLES_PER_SERIES = 2000
PARENT_MODULUS = 128
ORDER_BOOK_LEVELS = 100

_TERMINAL = frozenset({"FILLED", "CANCELED", "BEST_EFFORT_CANCELED"})
_RESTING = frozenset({"BEST_EFFORT_OPENED", "OPEN"})
_MAKER_TYPE = {"LIQUIDATED": "LIQUIDATION", "LIQUIDATION": "LIQUIDATION"}
_TAKER_TYPE = {"LIQUIDATION": "LIQUIDATED"}


@dataclass(slots=True)
class OrderRow:
    """One order as the indexer knows it."""

    key: ev.OrderKey
    id: str
    subaccount_id: str
    market: ev.MarketInfo
    side: ev.Side
    quantums: int
    subticks: int
    good_til_block: int | None
    good_til_block_time: int | None
    time_in_force: ev.TimeInForce
    reduce_only: bool
    client_metadata: int
    condition_type: ev.ConditionType
    trigger_subticks: int
    total_filled: int
    status: str
    seq: int  # insertion order, for stable sorting
    removal_reason: str | None = None
    in_db: bool = False  # False: known only from the off-chain feed (the real one's Redis cache)
    created_height: int | None = None
    created_time: dt.datetime | None = None
    updated_height: int | None = None
    updated_time: dt.datetime | None = None
    booked: int = 0  # quantums this order currently contributes to its book level


@dataclass(slots=True)
class FillRow:
    id: str
    subaccount: ev.SubaccountRef
    subaccount_id: str
    side: ev.Side
    liquidity: ev.Liquidity
    type: str
    market: ev.MarketInfo
    price: Decimal
    size: Decimal
    fee: Decimal
    event_id: str
    tx_hash: str
    height: int
    time: dt.datetime
    order_id: str
    client_metadata: int
    seq: int


@dataclass(slots=True)
class TradeRow:
    id: str
    side: ev.Side
    size: Decimal
    price: Decimal
    type: str
    height: int
    time: dt.datetime
    seq: int


@dataclass(slots=True)
class TransferRow:
    id: str
    event: ev.TransferCommitted
    size: Decimal
    seq: int


@dataclass(slots=True)
class Candle:
    started_at: dt.datetime
    ticker: str
    resolution: str
    low: Decimal
    high: Decimal
    open: Decimal
    close: Decimal
    base_volume: Decimal
    usd_volume: Decimal
    trades: int
    starting_open_interest: Decimal
    mid_open: Decimal | None
    mid_close: Decimal | None


@dataclass(slots=True)
class PnlTick:
    equity: Decimal
    total_pnl: Decimal
    net_transfers: Decimal
    height: int
    time: dt.datetime


@dataclass(slots=True)
class FundingRow:
    rate: Decimal
    price: Decimal
    height: int
    time: dt.datetime


@dataclass(slots=True)
class SubaccountRow:
    ref: ev.SubaccountRef
    id: str
    usdc: int = 0
    positions: dict[int, ev.PositionSnapshot] = field(default_factory=dict)
    closed: list[ev.PositionSnapshot] = field(default_factory=list)
    updated_height: int = 0
    net_transfers: int = 0
    last_pnl_bucket: int | None = None
    pnl: list[PnlTick] = field(default_factory=list)


@dataclass(slots=True)
class _Stats24h:
    trades: deque[tuple[dt.datetime, Decimal]] = field(default_factory=deque)  # (time, usd volume)
    prices: deque[tuple[dt.datetime, Decimal]] = field(default_factory=deque)  # oracle history
    volume: Decimal = Decimal(0)


class _Book:
    """Aggregated levels of one market, in chain units, with the last-update order of each level."""

    __slots__ = ("age", "asks", "bids")

    def __init__(self) -> None:
        self.bids: dict[int, int] = {}
        self.asks: dict[int, int] = {}
        self.age: dict[tuple[bool, int], int] = {}


class IndexerStore:
    """Indexer tables fed by :mod:`nautilus_dydx.emulator.events`.

    Args:
        publish: called for every WebSocket update: ``(channel, id, contents, child_number)``.
        wants: tells whether anybody listens on ``(channel, id)``; updates nobody wants are not rendered.
    """

    def __init__(self, publish: Publish | None = None, wants: Wants | None = None) -> None:
        self._publish: Publish = publish or (lambda _c, _i, _x, _n: None)
        self._wants: Wants = wants or (lambda _c, _i: False)
        self.markets: dict[int, ev.MarketInfo] = {}
        self.by_ticker: dict[str, ev.MarketInfo] = {}
        self.oracle: dict[int, Decimal] = {}
        self.oracle_seen: dict[int, tuple[int, dt.datetime]] = {}
        self.next_funding: dict[int, Decimal] = {}
        self.funding: dict[int, list[FundingRow]] = {}
        self.height = 0
        self.time: dt.datetime | None = None
        self.orders: dict[str, OrderRow] = {}
        self.orders_by_sub: dict[ev.SubaccountRef, dict[str, OrderRow]] = {}
        self._order_by_key: dict[ev.OrderKey, OrderRow] = {}
        self.fills: dict[ev.SubaccountRef, deque[FillRow]] = {}
        self.trades: dict[int, deque[TradeRow]] = {}
        self.transfers: dict[ev.SubaccountRef, list[TransferRow]] = {}
        self.subaccounts: dict[ev.SubaccountRef, SubaccountRow] = {}
        self.by_address: dict[str, dict[int, SubaccountRow]] = {}
        self.candles: dict[tuple[int, str], dict[dt.datetime, Candle]] = {}
        self.books: dict[int, _Book] = {}
        self.open_interest: dict[int, int] = {}
        self._stats: dict[int, _Stats24h] = {}
        self._seq = 0
        self._age = 0
        # Per-block buffers flushed on BlockCommitted, as ender publishes once per block.
        self._block_subs: dict[ev.SubaccountRef, Json] = {}
        self._block_transfers: list[tuple[ev.SubaccountRef, Json, ev.SubaccountRef | None]] = []
        self._block_trades: dict[int, list[Json]] = {}
        self._block_candles: set[tuple[int, str]] = set()
        self._block_oracle: dict[int, Json] = {}
        self._block_trading: set[int] = set()

    # --- wiring -----------------------------------------------------------------------------

    def set_listener(self, publish: Publish, wants: Wants) -> None:
        self._publish = publish
        self._wants = wants

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    # --- conversions ------------------------------------------------------------------------

    @staticmethod
    def size(market: ev.MarketInfo, quantums: int) -> Decimal:
        return fmt.scaled(quantums, market.atomic_resolution)

    @staticmethod
    def price(market: ev.MarketInfo, subticks: int) -> Decimal:
        exp = market.quantum_conversion_exponent - 6 - market.atomic_resolution
        return fmt.scaled(subticks, exp)

    @staticmethod
    def usdc(quantums: int) -> Decimal:
        return fmt.scaled(quantums, -6)

    def imf(self, market: ev.MarketInfo) -> Decimal:
        return fmt.scaled(market.initial_margin_ppm, -6)

    def mmf(self, market: ev.MarketInfo) -> Decimal:
        return self.imf(market) * fmt.scaled(market.maintenance_fraction_ppm, -6)

    # --- event intake -----------------------------------------------------------------------

    def apply(self, event: ev.ChainEvent) -> None:
        """Consume one chain event (the engine's sink callback)."""
        handler = self._HANDLERS.get(type(event))
        if handler is None:
            log.debug("indexer ignores %s", type(event).__name__)
            return
        handler(self, event)

    def _on_market_listed(self, e: ev.MarketListed) -> None:
        m = e.market
        self.markets[m.clob_pair_id] = m
        self.by_ticker[m.ticker] = m
        self.books.setdefault(m.clob_pair_id, _Book())
        self.trades.setdefault(m.clob_pair_id, deque(maxlen=MAX_TRADES_PER_MARKET))
        self.funding.setdefault(m.clob_pair_id, [])
        self.open_interest.setdefault(m.clob_pair_id, 0)
        self._stats.setdefault(m.clob_pair_id, _Stats24h())
        self.next_funding.setdefault(m.clob_pair_id, fmt.scaled(m.default_funding_ppm, -6))

    def _on_market_status(self, e: ev.MarketStatusChanged) -> None:
        old = self.markets.get(e.clob_pair_id)
        if old is None:
            return
        new = replace(old, status=e.status)
        self.markets[e.clob_pair_id] = new
        self.by_ticker[new.ticker] = new
        self._block_trading.add(e.clob_pair_id)

    def _on_oracle(self, e: ev.OraclePriceUpdated) -> None:
        price = fmt.scaled(e.price, e.price_exponent)
        self.oracle[e.clob_pair_id] = price
        self.oracle_seen[e.clob_pair_id] = (e.height, e.time)
        stats = self._stats.setdefault(e.clob_pair_id, _Stats24h())
        prices = stats.prices
        if not prices or prices[-1][1] != price:  # an unchanged price adds nothing to the history
            prices.append((e.time, price))
        # Trim on write too, so that the history stays within 24 h whether or not stats are read.
        # The newest entry at or before the cutoff stays: it is the price 24 h ago.
        cutoff = e.time - dt.timedelta(hours=24)
        while len(prices) > 1 and prices[1][0] <= cutoff:
            prices.popleft()
        market = self.markets.get(e.clob_pair_id)
        if market is not None:
            self._block_oracle[e.clob_pair_id] = {
                "oraclePrice": fmt.dec(price),
                "effectiveAt": fmt.iso(e.time),
                "effectiveAtHeight": str(e.height),
                "marketId": e.market_id,
            }

    def _on_funding(self, e: ev.FundingUpdated) -> None:
        self.funding.setdefault(e.clob_pair_id, []).append(
            FundingRow(
                rate=fmt.scaled(e.rate_ppm, -6),
                price=fmt.scaled(e.oracle_price, e.price_exponent),
                height=e.height,
                time=e.time,
            )
        )
        self.next_funding[e.clob_pair_id] = fmt.scaled(e.next_rate_ppm, -6)
        self._block_trading.add(e.clob_pair_id)

    # orders ------------------------------------------------------------------------------

    def _new_order(self, snap: ev.OrderSnapshot, status: str) -> OrderRow | None:
        market = self.markets.get(snap.key.clob_pair_id)
        if market is None:
            log.warning("order for unknown clob pair %d ignored", snap.key.clob_pair_id)
            return None
        sub_id = fmt.subaccount_uuid(snap.key.owner, snap.key.subaccount_number)
        return OrderRow(
            key=snap.key,
            id=fmt.order_uuid(sub_id, snap.key.client_id, snap.key.clob_pair_id, snap.key.order_flags),
            subaccount_id=sub_id,
            market=market,
            side=snap.side,
            quantums=snap.quantums,
            subticks=snap.subticks,
            good_til_block=snap.good_til_block,
            good_til_block_time=snap.good_til_block_time,
            time_in_force=snap.time_in_force,
            reduce_only=snap.reduce_only,
            client_metadata=snap.client_metadata,
            condition_type=snap.condition_type,
            trigger_subticks=snap.trigger_subticks,
            total_filled=snap.total_filled_quantums,
            status=status,
            seq=self._next_seq(),
        )

    def _on_order_placed(self, e: ev.OrderPlaced) -> None:
        old = self._order_by_key.get(e.order.key)
        row = self._new_order(e.order, e.status)
        if row is None:
            return
        if old is not None:
            # The id again: a replacement (the chain has reported the old order removed, REPLACED)
            # or a fresh placement after it ended. The row keeps its creation and DB presence.
            self._set_booked(old, 0)
            row.in_db = old.in_db
            row.created_height, row.created_time = old.created_height, old.created_time
        stateful = e.order.key.order_flags != ev.SHORT_TERM
        if stateful or e.status != "BEST_EFFORT_OPENED":
            row.in_db = True
        if stateful and row.created_height is None:
            row.created_height, row.created_time = e.height, e.time
        row.updated_height, row.updated_time = e.height, e.time
        self._store_order(row)
        self._set_booked(row, self._remaining(row))
        self._order_message(row, e.order.key.order_flags != ev.SHORT_TERM)

    def _on_order_updated(self, e: ev.OrderUpdated) -> None:
        row = self._order_by_key.get(e.key)
        if row is None:
            return
        row.total_filled = e.total_filled_quantums
        row.updated_height, row.updated_time = e.height, e.time
        self._set_booked(row, self._remaining(row))
        self._order_message(row, e.key.order_flags != ev.SHORT_TERM)

    def _on_order_triggered(self, e: ev.OrderTriggered) -> None:
        row = self._order_by_key.get(e.key)
        if row is None:
            return
        row.status = "OPEN"
        row.updated_height, row.updated_time = e.height, e.time
        self._set_booked(row, self._remaining(row))
        self._order_message(row, True)

    def _on_order_removed(self, e: ev.OrderRemoved) -> None:
        row = self._order_by_key.get(e.key)
        if row is None:
            return
        # The off-chain removal message carries the order's table columns only if the row was in the
        # indexer's tables before this removal (a short-term order only in Redis has none).
        had_db_row = row.in_db
        row.status = e.status
        row.removal_reason = e.reason
        row.total_filled = e.total_filled_quantums
        row.updated_height, row.updated_time = e.height, e.time
        if e.status != "BEST_EFFORT_CANCELED":
            row.in_db = True
            if row.created_height is None:
                row.created_height = e.height
        self._set_booked(row, 0)
        self._order_message(row, e.key.order_flags != ev.SHORT_TERM, removal=True, db_row=had_db_row)
        self._prune_orders(row.key)

    def _remaining(self, row: OrderRow) -> int:
        if row.status not in _RESTING or row.time_in_force in ("IOC", "FOK"):
            return 0
        return max(row.quantums - row.total_filled, 0)

    def _store_order(self, row: OrderRow) -> None:
        ref = ev.SubaccountRef(row.key.owner, row.key.subaccount_number)
        self.orders[row.id] = row
        self._order_by_key[row.key] = row
        self.orders_by_sub.setdefault(ref, {})[row.id] = row

    def _prune_orders(self, key: ev.OrderKey) -> None:
        ref = ev.SubaccountRef(key.owner, key.subaccount_number)
        table = self.orders_by_sub.get(ref)
        if table is None or len(table) <= MAX_TERMINAL_ORDERS_PER_SUBACCOUNT:
            return
        # Oldest terminal orders go first; live ones are never dropped.
        for oid in [oid for oid, r in table.items() if r.status in _TERMINAL][
            : len(table) - MAX_TERMINAL_ORDERS_PER_SUBACCOUNT
        ]:
            r = table.pop(oid)
            self.orders.pop(oid, None)
            if self._order_by_key.get(r.key) is r:
                del self._order_by_key[r.key]

    def _set_booked(self, row: OrderRow, quantums: int) -> None:
        delta = quantums - row.booked
        if delta == 0:
            return
        row.booked = quantums
        book = self.books.setdefault(row.market.clob_pair_id, _Book())
        is_bid = row.side == "BUY"
        side = book.bids if is_bid else book.asks
        total = side.get(row.subticks, 0) + delta
        if total > 0:
            side[row.subticks] = total
            self._age += 1
            book.age[(is_bid, row.subticks)] = self._age
        else:
            side.pop(row.subticks, None)
            book.age.pop((is_bid, row.subticks), None)
            total = 0
        ticker = row.market.ticker
        if self._wants("v4_orderbook", ticker):
            level = [fmt.dec(self.price(row.market, row.subticks)), fmt.dec(self.size(row.market, total))]
            self._publish("v4_orderbook", ticker, {"bids" if is_bid else "asks": [level]}, None)

    def _order_message(
        self, row: OrderRow, on_chain: bool, *, removal: bool = False, db_row: bool | None = None
    ) -> None:
        ref = ev.SubaccountRef(row.key.owner, row.key.subaccount_number)
        if on_chain:
            self._block_sub_part(ref).setdefault("orders", []).append(row)
        elif self._wants_sub(ref):
            order = self.render_offchain_order(
                row, removal=removal, db_row=row.in_db if db_row is None else db_row
            )
            contents = {"orders": [order], "blockHeight": str(self.height)}
            self._publish_sub(ref, contents, None)

    # fills ---------------------------------------------------------------------------------

    def _on_fill(self, e: ev.FillCommitted) -> None:
        market = self.markets.get(e.clob_pair_id)
        if market is None:
            return
        event_hex = e.event_id.hex()
        price = self.price(market, e.subticks)
        size = self.size(market, e.quantums)
        taker_type = _TAKER_TYPE.get(e.fill_type, e.fill_type)
        maker_type = _MAKER_TYPE.get(e.fill_type, e.fill_type)
        maker_side: ev.Side = "SELL" if e.taker_side == "BUY" else "BUY"
        parties = (
            (e.taker, "TAKER", e.taker_side, taker_type, e.taker_fee, e.taker_client_metadata),
            (e.maker, "MAKER", maker_side, maker_type, e.maker_fee, e.maker_client_metadata),
        )
        for key, liquidity, side, ftype, fee, meta in parties:
            ref = ev.SubaccountRef(key.owner, key.subaccount_number)
            sub_id = fmt.subaccount_uuid(key.owner, key.subaccount_number)
            order = self._order_by_key.get(key)
            row = FillRow(
                id=fmt.fill_uuid(event_hex, liquidity),
                subaccount=ref,
                subaccount_id=sub_id,
                side=side,
                liquidity=liquidity,  # type: ignore[arg-type]
                type=ftype,
                market=market,
                price=price,
                size=size,
                fee=self.usdc(fee),
                event_id=event_hex,
                tx_hash=e.tx_hash,
                height=e.height,
                time=e.time,
                order_id=order.id
                if order
                else fmt.order_uuid(sub_id, key.client_id, key.clob_pair_id, key.order_flags),
                client_metadata=order.client_metadata if order else meta,
                seq=self._next_seq(),
            )
            self.fills.setdefault(ref, deque(maxlen=MAX_FILLS_PER_SUBACCOUNT)).append(row)
            if order is not None:
                order.in_db = True
                if order.status == "BEST_EFFORT_OPENED":
                    order.status = "OPEN"  # a fill in a block moves it into the indexer's own tables
                if order.created_height is None:
                    order.created_height = e.height
            part = self._block_sub_part(ref)
            part.setdefault("fills", []).append(row)
            if order is not None:
                part.setdefault("orders", []).append(order)
        trade = TradeRow(
            id=event_hex,
            side=e.taker_side,
            size=size,
            price=price,
            type=taker_type if taker_type in ("LIMIT", "LIQUIDATED", "DELEVERAGED") else "LIMIT",
            height=e.height,
            time=e.time,
            seq=self._next_seq(),
        )
        self.trades.setdefault(e.clob_pair_id, deque(maxlen=MAX_TRADES_PER_MARKET)).append(trade)
        self._block_trades.setdefault(e.clob_pair_id, []).append(
            {
                "id": trade.id,
                "size": fmt.dec(size),
                "price": fmt.dec(price),
                "side": trade.side,
                "createdAt": fmt.iso(trade.time),
                "type": trade.type,
            }
        )
        usd = size * price
        stats = self._stats.setdefault(e.clob_pair_id, _Stats24h())
        stats.trades.append((e.time, usd))
        stats.volume += usd
        self._block_trading.add(e.clob_pair_id)
        self._update_candles(market, e.time, price, size, usd)

    def _update_candles(
        self, market: ev.MarketInfo, when: dt.datetime, price: Decimal, size: Decimal, usd: Decimal
    ) -> None:
        oi = self.size(market, self.open_interest.get(market.clob_pair_id, 0))
        mid = self.mid(market.clob_pair_id)
        for res, seconds in fmt.RESOLUTIONS.items():
            series = self.candles.setdefault((market.clob_pair_id, res), {})
            start = fmt.candle_start(when, seconds)
            candle = series.get(start)
            if candle is None:
                candle = Candle(
                    started_at=start,
                    ticker=market.ticker,
                    resolution=res,
                    low=price,
                    high=price,
                    open=price,
                    close=price,
                    base_volume=Decimal(0),
                    usd_volume=Decimal(0),
                    trades=0,
                    starting_open_interest=oi,
                    mid_open=mid,
                    mid_close=mid,
                )
                series[start] = candle
                if len(series) > MAX_CANDLES_PER_SERIES:
                    del series[next(iter(series))]
            candle.low = min(candle.low, price)
            candle.high = max(candle.high, price)
            candle.close = price
            candle.base_volume += size
            candle.usd_volume += usd
            candle.trades += 1
            candle.mid_close = mid
            self._block_candles.add((market.clob_pair_id, res))

    # accounts ------------------------------------------------------------------------------

    def _subaccount(self, ref: ev.SubaccountRef) -> SubaccountRow:
        row = self.subaccounts.get(ref)
        if row is None:
            row = SubaccountRow(ref=ref, id=fmt.subaccount_uuid(ref.address, ref.number))
            self.subaccounts[ref] = row
            self.by_address.setdefault(ref.address, {})[ref.number] = row
        return row

    def _on_subaccount(self, e: ev.SubaccountUpdated) -> None:
        row = self._subaccount(e.subaccount)
        changed: list[ev.PositionSnapshot] = []
        new_positions = {p.clob_pair_id: p for p in e.positions}
        for cp, pos in new_positions.items():
            if row.positions.get(cp) != pos:
                changed.append(pos)
        for cp in set(row.positions) | set(new_positions):
            before = row.positions[cp].quantums if cp in row.positions else 0
            after = new_positions[cp].quantums if cp in new_positions else 0
            if before != after:
                self.open_interest[cp] = self.open_interest.get(cp, 0) + max(after, 0) - max(before, 0)
        changed.extend(e.closed_positions)
        row.closed.extend(e.closed_positions)
        usdc_changed = row.usdc != e.usdc_quantums
        row.positions = new_positions
        row.usdc = e.usdc_quantums
        row.updated_height = e.height
        part = self._block_sub_part(e.subaccount)
        if changed:
            part.setdefault("perpetualPositions", []).extend(changed)
        if usdc_changed or "assetPositions" not in part:
            part["assetPositions"] = True

    def _on_transfer(self, e: ev.TransferCommitted) -> None:
        sender_id = fmt.subaccount_uuid(e.sender.address, e.sender.number) if e.sender else None
        recipient_id = fmt.subaccount_uuid(e.recipient.address, e.recipient.number) if e.recipient else None
        row = TransferRow(
            id=fmt.transfer_uuid(
                sender_id, recipient_id, e.sender_wallet, e.recipient_wallet, e.event_id.hex(), 0
            ),
            event=e,
            size=self.usdc(e.quantums),
            seq=self._next_seq(),
        )
        for ref, sign in ((e.sender, -1), (e.recipient, 1)):
            if ref is None:
                continue
            sub = self._subaccount(ref)
            sub.net_transfers += sign * e.quantums
            if e.sender is not None and e.recipient is not None and e.sender == e.recipient:
                continue
            self.transfers.setdefault(ref, []).append(row)
            other = e.recipient if sign < 0 else e.sender
            self._block_transfers.append((ref, self.render_transfer(row, ref, ws=True), other))

    def _on_block(self, e: ev.BlockCommitted) -> None:
        self.height = e.height
        self.time = e.time
        height = str(e.height)
        self._flush_markets(e.time)
        for cp, trades in self._block_trades.items():
            market = self.markets[cp]
            if self._wants("v4_trades", market.ticker):
                self._publish("v4_trades", market.ticker, {"trades": trades}, None)
        self._block_trades = {}
        for cp, res in self._block_candles:
            market = self.markets[cp]
            cid = f"{market.ticker}/{res}"
            if self._wants("v4_candles", cid):
                series = self.candles[(cp, res)]
                last = next(reversed(series.values()))
                self._publish("v4_candles", cid, self.render_candle(last), None)
        self._block_candles = set()
        for ref, part in self._block_subs.items():
            if not self._wants_sub(ref):
                continue
            contents: Json = {}
            if "perpetualPositions" in part:
                contents["perpetualPositions"] = [
                    self.render_position(ref, p, ws=True) for p in part["perpetualPositions"]
                ]
            if "assetPositions" in part:
                contents["assetPositions"] = self._ws_asset_positions(ref)
            if "orders" in part:
                seen: dict[str, OrderRow] = {}
                for o in part["orders"]:
                    seen[o.id] = o
                contents["orders"] = [self.render_order(o, ws=True) for o in seen.values()]
            if "fills" in part:
                contents["fills"] = [self.render_fill(f, ws=True) for f in part["fills"]]
            contents["blockHeight"] = height
            self._publish_sub(ref, contents, None)
        self._block_subs = {}
        for ref, transfer, other in self._block_transfers:
            self._publish_sub(ref, {"transfers": transfer, "blockHeight": height}, other)
        self._block_transfers = []
        bucket = int(e.time.timestamp()) // 3600
        for sub in self.subaccounts.values():
            if sub.last_pnl_bucket != bucket:
                sub.last_pnl_bucket = bucket
                equity = self.equity(sub)
                net = self.usdc(sub.net_transfers)
                sub.pnl.append(PnlTick(equity, equity - net, net, e.height, e.time))
        if self._wants("v4_block_height", "v4_block_height"):
            self._publish(
                "v4_block_height", "v4_block_height", {"blockHeight": height, "time": fmt.iso(e.time)}, None
            )

    def _flush_markets(self, now: dt.datetime) -> None:
        if self._block_oracle and self._wants("v4_markets", None):
            prices = {self.markets[cp].ticker: v for cp, v in self._block_oracle.items()}
            self._publish("v4_markets", None, {"oraclePrices": prices}, None)
        self._block_oracle = {}
        if self._block_trading and self._wants("v4_markets", None):
            trading: Json = {}
            for cp in sorted(self._block_trading):
                m = self.markets[cp]
                stats = self._stats_24h(cp, now)
                trading[m.ticker] = {
                    "id": str(cp),
                    "clobPairId": str(cp),
                    "ticker": m.ticker,
                    "status": m.status,
                    "trades24H": stats[0],
                    "volume24H": fmt.dec(stats[1]),
                    "priceChange24H": fmt.dec(stats[2]),
                    "openInterest": fmt.dec(self.size(m, self.open_interest.get(cp, 0))),
                    "nextFundingRate": fmt.dec(self.next_funding.get(cp, Decimal(0))),
                }
            self._publish("v4_markets", None, {"trading": trading}, None)
        self._block_trading = set()

    def _block_sub_part(self, ref: ev.SubaccountRef) -> Json:
        part = self._block_subs.get(ref)
        if part is None:
            part = self._block_subs[ref] = {}
        return part

    def _wants_sub(self, ref: ev.SubaccountRef) -> bool:
        return self._wants("v4_subaccounts", f"{ref.address}/{ref.number}") or self._wants(
            "v4_parent_subaccounts", f"{ref.address}/{ref.number % PARENT_MODULUS}"
        )

    def _publish_sub(self, ref: ev.SubaccountRef, contents: Json, other: ev.SubaccountRef | None) -> None:
        self._publish("v4_subaccounts", f"{ref.address}/{ref.number}", contents, None)
        parent = ref.number % PARENT_MODULUS
        same_parent = (
            other is not None and other.address == ref.address and other.number % PARENT_MODULUS == parent
        )
        if not same_parent:
            self._publish("v4_parent_subaccounts", f"{ref.address}/{parent}", contents, ref.number)

    _HANDLERS: ClassVar[dict[type, Callable[[IndexerStore, Any], None]]] = {
        ev.MarketListed: _on_market_listed,
        ev.MarketStatusChanged: _on_market_status,
        ev.OraclePriceUpdated: _on_oracle,
        ev.FundingUpdated: _on_funding,
        ev.OrderPlaced: _on_order_placed,
        ev.OrderUpdated: _on_order_updated,
        ev.OrderTriggered: _on_order_triggered,
        ev.OrderRemoved: _on_order_removed,
        ev.FillCommitted: _on_fill,
        ev.SubaccountUpdated: _on_subaccount,
        ev.TransferCommitted: _on_transfer,
        ev.BlockCommitted: _on_block,
    }

    # --- derived values -----------------------------------------------------------------------

    def mid(self, clob_pair_id: int) -> Decimal | None:
        bids, asks = self.book_levels(clob_pair_id, 1)
        if not bids or not asks:
            return None
        return (bids[0][0] + asks[0][0]) / 2

    def book_levels(
        self, clob_pair_id: int, depth: int = ORDER_BOOK_LEVELS
    ) -> tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]:
        """The indexer's book, uncrossed as the REST server does, best first, ``depth`` per side."""
        market = self.markets[clob_pair_id]
        book = self.books.get(clob_pair_id) or _Book()
        bids = sorted(book.bids.items(), reverse=True)
        asks = sorted(book.asks.items())
        bi = ai = 0
        # Server rule: while crossed, drop the older level; equal age -> fewer quantums; tie -> the bid.
        while bi < len(bids) and ai < len(asks) and bids[bi][0] >= asks[ai][0]:
            b_age = book.age.get((True, bids[bi][0]), 0)
            a_age = book.age.get((False, asks[ai][0]), 0)
            if b_age != a_age:
                drop_bid = b_age < a_age
            elif bids[bi][1] != asks[ai][1]:
                drop_bid = bids[bi][1] < asks[ai][1]
            else:
                drop_bid = True
            if drop_bid:
                bi += 1
            else:
                ai += 1
        out_b = [(self.price(market, p), self.size(market, q)) for p, q in bids[bi : bi + depth]]
        out_a = [(self.price(market, p), self.size(market, q)) for p, q in asks[ai : ai + depth]]
        return out_b, out_a

    def _stats_24h(self, cp: int, now: dt.datetime) -> tuple[int, Decimal, Decimal]:
        stats = self._stats.setdefault(cp, _Stats24h())
        cutoff = now - dt.timedelta(hours=24)
        while stats.trades and stats.trades[0][0] < cutoff:
            stats.volume -= stats.trades.popleft()[1]
        while len(stats.prices) > 1 and stats.prices[1][0] <= cutoff:
            stats.prices.popleft()
        change = Decimal(0)
        if stats.prices:
            change = self.oracle.get(cp, stats.prices[0][1]) - stats.prices[0][1]
        return len(stats.trades), stats.volume, change

    def equity(self, sub: SubaccountRow) -> Decimal:
        total = self.usdc(sub.usdc)
        for cp, pos in sub.positions.items():
            market = self.markets.get(cp)
            if market is not None:
                total += self.size(market, pos.quantums) * self.oracle.get(cp, Decimal(0))
        return total

    def free_collateral(self, sub: SubaccountRow) -> Decimal:
        required = Decimal(0)
        for cp, pos in sub.positions.items():
            market = self.markets.get(cp)
            if market is not None:
                notional = abs(self.size(market, pos.quantums) * self.oracle.get(cp, Decimal(0)))
                required += notional * self.imf(market)
        return self.equity(sub) - required

    # --- rendering (shared by REST and WS) ----------------------------------------------------

    def render_market(self, m: ev.MarketInfo) -> Json:
        now = self.time or dt.datetime.now(dt.UTC)
        trades, volume, change = self._stats_24h(m.clob_pair_id, now)
        imf = self.imf(m)
        oracle = self.oracle.get(m.clob_pair_id)
        return {
            "clobPairId": str(m.clob_pair_id),
            "ticker": m.ticker,
            "status": m.status,
            "oraclePrice": fmt.dec(oracle) if oracle is not None else "0",
            "priceChange24H": fmt.dec(change),
            "volume24H": fmt.dec(volume),
            "trades24H": trades,
            "nextFundingRate": fmt.dec(self.next_funding.get(m.clob_pair_id, Decimal(0))),
            "initialMarginFraction": fmt.dec(imf),
            "maintenanceMarginFraction": fmt.dec(self.mmf(m)),
            "openInterest": fmt.dec(self.size(m, self.open_interest.get(m.clob_pair_id, 0))),
            "atomicResolution": m.atomic_resolution,
            "quantumConversionExponent": m.quantum_conversion_exponent,
            "tickSize": fmt.dec(self.price(m, m.subticks_per_tick)),
            "stepSize": fmt.dec(self.size(m, m.step_base_quantums)),
            "stepBaseQuantums": m.step_base_quantums,
            "subticksPerTick": m.subticks_per_tick,
            "marketType": m.market_type,
            "openInterestLowerCap": fmt.dec(fmt.scaled(m.open_interest_lower_cap, -6)),
            "openInterestUpperCap": fmt.dec(fmt.scaled(m.open_interest_upper_cap, -6)),
            "baseOpenInterest": fmt.dec(self.size(m, self.open_interest.get(m.clob_pair_id, 0))),
            "defaultFundingRate1H": fmt.dec(fmt.scaled(m.default_funding_ppm, -6)),
        }

    def render_markets(self, tickers: list[str] | None = None) -> Json:
        ordered = sorted(self.markets.values(), key=lambda m: m.perpetual_id)
        return {
            "markets": {
                m.ticker: self.render_market(m) for m in ordered if tickers is None or m.ticker in tickers
            }
        }

    def _order_identity(self, row: OrderRow) -> Json:
        """The leading keys every rendering of an order starts with (table row or off-chain)."""
        return {
            "id": row.id,
            "subaccountId": row.subaccount_id,
            "clientId": str(row.key.client_id),
            "clobPairId": str(row.market.clob_pair_id),
            "side": row.side,
            "size": fmt.dec(self.size(row.market, row.quantums)),
        }

    @staticmethod
    def _order_type(row: OrderRow) -> str:
        return {"STOP_LOSS": "STOP_LIMIT", "TAKE_PROFIT": "TAKE_PROFIT"}.get(row.condition_type, "LIMIT")

    def render_order(self, row: OrderRow, *, ws: bool = False) -> Json:
        m = row.market
        out: Json = {
            **self._order_identity(row),
            "totalFilled": fmt.dec(self.size(m, row.total_filled)),
            **({"totalOptimisticFilled": fmt.dec(self.size(m, row.total_filled))} if ws else {}),
            "price": fmt.dec(self.price(m, row.subticks)),
            "type": self._order_type(row),
            "status": row.status,
            "timeInForce": "GTT" if row.time_in_force == "POST_ONLY" else row.time_in_force,
            "reduceOnly": row.reduce_only,
            "orderFlags": str(row.key.order_flags),
        }
        if row.good_til_block is not None:
            out["goodTilBlock"] = str(row.good_til_block)
        if row.good_til_block_time is not None:
            out["goodTilBlockTime"] = fmt.iso(dt.datetime.fromtimestamp(row.good_til_block_time, dt.UTC))
        elif ws and row.in_db:
            out["goodTilBlockTime"] = None  # block-processed order rows carry explicit nulls
        if row.in_db or ws:
            if row.created_height is not None:
                out["createdAtHeight"] = str(row.created_height)
            if row.created_time is not None and row.key.order_flags != ev.SHORT_TERM:
                out["createdAt"] = fmt.iso(row.created_time)
        out["clientMetadata"] = str(row.client_metadata)
        if row.condition_type != "UNSPECIFIED":
            out["triggerPrice"] = fmt.dec(self.price(m, row.trigger_subticks))
        elif ws and row.in_db:
            out["triggerPrice"] = None
        if (row.in_db or ws) and row.updated_time is not None:
            out["updatedAt"] = fmt.iso(row.updated_time)
            out["updatedAtHeight"] = str(row.updated_height)
        if row.in_db:
            out["orderRouterAddress"] = ""
        if ws and row.removal_reason is not None:
            out["removalReason"] = row.removal_reason
        out["postOnly"] = row.time_in_force == "POST_ONLY"
        out["ticker"] = m.ticker
        if not ws:
            out["subaccountNumber"] = row.key.subaccount_number
        return out

    def render_offchain_order(self, row: OrderRow, *, removal: bool, db_row: bool) -> Json:
        """An order as the off-chain pipeline (vulcan) sends it on ``v4_subaccounts``.

        Built from the Redis copy of the order, not from its table row: no ``totalFilled``, no
        ``createdAt`` and no ``orderRouterAddress``. A removal adds ``totalOptimisticFilled`` and
        ``removalReason``. ``createdAtHeight``/``updatedAt``/``updatedAtHeight`` come from the order's
        table row and are present only when it has one (``db_row``): on a removal, any order that
        reached a block; on a placement, stateful orders only. ``triggerPrice`` only for
        conditional orders; ``goodTilBlock`` or ``goodTilBlockTime``, whichever the order has.
        """
        m = row.market
        out = self._order_identity(row)
        if removal:
            out["totalOptimisticFilled"] = fmt.dec(self.size(m, row.total_filled))
        out.update(
            {
                "price": fmt.dec(self.price(m, row.subticks)),
                "type": self._order_type(row),
                "status": row.status,
                "timeInForce": "GTT" if row.time_in_force == "POST_ONLY" else row.time_in_force,
                "postOnly": row.time_in_force == "POST_ONLY",
                "reduceOnly": row.reduce_only,
                "orderFlags": str(row.key.order_flags),
            }
        )
        if row.good_til_block is not None:
            out["goodTilBlock"] = str(row.good_til_block)
        if row.good_til_block_time is not None:
            out["goodTilBlockTime"] = fmt.iso(dt.datetime.fromtimestamp(row.good_til_block_time, dt.UTC))
        out["ticker"] = m.ticker
        if removal and row.removal_reason is not None:
            out["removalReason"] = row.removal_reason
        if db_row and (removal or row.key.order_flags != ev.SHORT_TERM):
            if row.created_height is not None:
                out["createdAtHeight"] = str(row.created_height)
            if row.updated_time is not None:
                out["updatedAt"] = fmt.iso(row.updated_time)
                out["updatedAtHeight"] = str(row.updated_height)
        out["clientMetadata"] = str(row.client_metadata)
        if row.condition_type != "UNSPECIFIED":
            out["triggerPrice"] = fmt.dec(self.price(m, row.trigger_subticks))
        return out

    def render_fill(self, f: FillRow, *, ws: bool = False) -> Json:
        out: Json = {"id": f.id}
        if ws:
            out["subaccountId"] = f.subaccount_id
        out.update(
            {
                "side": f.side,
                "liquidity": f.liquidity,
                "type": f.type,
                "market": f.market.ticker,
                "marketType": "PERPETUAL",
                "price": fmt.dec(f.price),
                "size": fmt.dec(f.size),
                "fee": fmt.dec(f.fee),
                "affiliateRevShare": "0",
                "createdAt": fmt.iso(f.time),
                "createdAtHeight": str(f.height),
                "orderId": f.order_id,
                "clientMetadata": str(f.client_metadata),
            }
        )
        if ws:
            out.update(
                {
                    "clobPairId": str(f.market.clob_pair_id),
                    "quoteAmount": fmt.dec(f.price * f.size),
                    "eventId": f.event_id,
                    "transactionHash": f.tx_hash,
                    "ticker": f.market.ticker,
                }
            )
        else:
            out["subaccountNumber"] = f.subaccount.number
        return out

    def render_trade(self, t: TradeRow) -> Json:
        return {
            "id": t.id,
            "side": t.side,
            "size": fmt.dec(t.size),
            "price": fmt.dec(t.price),
            "type": t.type,
            "createdAt": fmt.iso(t.time),
            "createdAtHeight": str(t.height),
        }

    def render_candle(self, c: Candle) -> Json:
        return {
            "startedAt": fmt.iso(c.started_at),
            "ticker": c.ticker,
            "resolution": c.resolution,
            "low": fmt.dec(c.low),
            "high": fmt.dec(c.high),
            "open": fmt.dec(c.open),
            "close": fmt.dec(c.close),
            "baseTokenVolume": fmt.dec(c.base_volume),
            "usdVolume": fmt.dec(c.usd_volume),
            "trades": c.trades,
            "startingOpenInterest": fmt.dec(c.starting_open_interest),
            "orderbookMidPriceOpen": fmt.dec(c.mid_open) if c.mid_open is not None else None,
            "orderbookMidPriceClose": fmt.dec(c.mid_close) if c.mid_close is not None else None,
        }

    def _entry_price(self, market: ev.MarketInfo, pos: ev.PositionSnapshot) -> Decimal:
        if pos.quantums:
            return self.usdc(pos.entry_quote_quantums) / abs(self.size(market, pos.quantums))
        if pos.sum_open and pos.open_quote_quantums is not None:
            # Closed: the venue keeps the average price of the opening fills.
            return self.usdc(pos.open_quote_quantums) / self.size(market, pos.sum_open)
        if pos.sum_open:
            return self.usdc(pos.entry_quote_quantums) / self.size(market, pos.sum_open)
        return Decimal(0)

    def render_position(self, ref: ev.SubaccountRef, pos: ev.PositionSnapshot, *, ws: bool = False) -> Json:
        market = self.markets[pos.clob_pair_id]
        size = self.size(market, pos.quantums)
        entry = self._entry_price(market, pos)
        oracle = self.oracle.get(pos.clob_pair_id, entry)
        closed = pos.closed_height is not None
        exit_price: str | None = None
        if pos.exit_quote_quantums is not None and pos.sum_close:
            exit_price = fmt.dec(self.usdc(pos.exit_quote_quantums) / self.size(market, pos.sum_close))
        side = "SHORT" if pos.quantums < 0 else "LONG"
        common: Json = {
            "market": market.ticker,
            "status": "CLOSED" if closed else "OPEN",
            "side": side,
            "size": fmt.dec(size),
            "maxSize": fmt.dec(self.size(market, pos.max_size)),
            "entryPrice": fmt.dec(entry),
        }
        if ws:
            sub_id = fmt.subaccount_uuid(ref.address, ref.number)
            return {
                "address": ref.address,
                "subaccountNumber": ref.number,
                "positionId": fmt.position_uuid(sub_id, pos.open_event_id.hex()),
                **common,
                "netFunding": fmt.dec(self.usdc(pos.net_funding)),
                "exitPrice": exit_price,
                "sumOpen": fmt.dec(self.size(market, pos.sum_open)),
                "sumClose": fmt.dec(self.size(market, pos.sum_close)),
                "realizedPnl": fmt.dec(self.usdc(pos.realized_pnl)),
                "unrealizedPnl": fmt.dec(size * (oracle - entry)),
            }
        return {
            **common,
            "exitPrice": exit_price,
            "realizedPnl": fmt.dec(self.usdc(pos.realized_pnl)),
            "unrealizedPnl": fmt.dec(size * (oracle - entry)),
            "createdAt": fmt.iso(pos.created_time),
            "createdAtHeight": str(pos.created_height),
            "closedAt": fmt.iso(pos.closed_time) if pos.closed_time is not None else None,
            "sumOpen": fmt.dec(self.size(market, pos.sum_open)),
            "sumClose": fmt.dec(self.size(market, pos.sum_close)),
            "netFunding": fmt.dec(self.usdc(pos.net_funding)),
            "subaccountNumber": ref.number,
        }

    def render_asset_positions(self, sub: SubaccountRow) -> Json:
        if sub.usdc == 0:
            return {}
        return {
            "USDC": {
                "size": fmt.dec(abs(self.usdc(sub.usdc))),
                "symbol": "USDC",
                "side": "LONG" if sub.usdc > 0 else "SHORT",
                "assetId": "0",
                "subaccountNumber": sub.ref.number,
            }
        }

    def _ws_asset_positions(self, ref: ev.SubaccountRef) -> list[Json]:
        sub = self.subaccounts[ref]
        return [
            {
                "address": ref.address,
                "subaccountNumber": ref.number,
                "positionId": fmt.asset_position_uuid(sub.id, 0),
                "assetId": "0",
                "symbol": "USDC",
                "side": "LONG" if sub.usdc >= 0 else "SHORT",
                "size": fmt.dec(abs(self.usdc(sub.usdc))),
            }
        ]

    def render_subaccount(self, sub: SubaccountRow) -> Json:
        ordered = sorted(sub.positions.values(), key=lambda p: self.markets[p.clob_pair_id].ticker)
        return {
            "address": sub.ref.address,
            "subaccountNumber": sub.ref.number,
            "equity": fmt.dec(self.equity(sub)),
            "freeCollateral": fmt.dec(self.free_collateral(sub)),
            "openPerpetualPositions": {
                self.markets[p.clob_pair_id].ticker: self.render_position(sub.ref, p) for p in ordered
            },
            "assetPositions": self.render_asset_positions(sub),
            "marginEnabled": True,
            "updatedAtHeight": str(sub.updated_height),
            "latestProcessedBlockHeight": str(self.height),
        }

    def render_transfer(self, row: TransferRow, viewer: ev.SubaccountRef, *, ws: bool = False) -> Json:
        e = row.event

        def party(ref: ev.SubaccountRef | None, wallet: str | None) -> Json:
            if ref is not None:
                return {"address": ref.address, "subaccountNumber": ref.number}
            return {"address": wallet or ""}

        kind: str = e.type
        if e.type == "TRANSFER":
            kind = "TRANSFER_OUT" if e.sender == viewer else "TRANSFER_IN"
        out: Json = {}
        if not ws:
            out["id"] = row.id
        out.update(
            {
                "sender": party(e.sender, e.sender_wallet),
                "recipient": party(e.recipient, e.recipient_wallet),
                "size": fmt.dec(row.size),
                "createdAt": fmt.iso(e.time),
                "createdAtHeight": str(e.height),
                "symbol": "USDC",
                "type": kind,
                "transactionHash": e.tx_hash,
            }
        )
        return out

    # --- lookups used by REST and WS snapshots --------------------------------------------------

    def children(self, address: str, parent: int) -> list[SubaccountRow]:
        subs = self.by_address.get(address, {})
        return [s for n, s in sorted(subs.items()) if n % PARENT_MODULUS == parent]

    def snapshot_orders(self, refs: list[ev.SubaccountRef]) -> list[Json]:
        """Orders a (parent) subaccount snapshot carries: live ones, then recent best-effort cancels."""
        live: list[OrderRow] = []
        recent: list[OrderRow] = []
        horizon = max(self.height - 20, 1)
        for ref in refs:
            for row in self.orders_by_sub.get(ref, {}).values():
                if row.status in ("OPEN", "UNTRIGGERED", "BEST_EFFORT_OPENED"):
                    live.append(row)
                elif row.status == "BEST_EFFORT_CANCELED" and (row.good_til_block or 0) > horizon:
                    recent.append(row)
        return [self.render_order(r) for r in live + recent]
