"""Sans-I/O state machine of the indexer WebSocket protocol (§4).

:class:`StreamProtocol` owns no socket and no task: the transport feeds it the bytes of each text
frame (:meth:`StreamProtocol.receive`) and sends the bytes its encoders return
(:meth:`StreamProtocol.subscribe`, :meth:`StreamProtocol.unsubscribe`). In between it tracks what
the protocol defines:

* the connection id (from ``connected``) and the highest ``message_id`` seen;
* the subscriptions: ``PENDING`` from the subscribe request until ``subscribed`` (or an ``error``
  naming it), ``ACTIVE`` after, ``UNSUBSCRIBING`` until ``unsubscribed``; the per-channel limits
  (32 / 256 / 1) are enforced before a request is encoded;
* sequence continuity. ``message_id`` counts, per connection, subscribe requests, unsubscribe
  acks and data messages. A ``subscribed`` reuses the id taken when its request arrived, so it can
  be lower than data of other subscriptions already received: that is not a gap. While no
  subscribe is pending, every id taken is delivered in order, so a data or ``unsubscribed``
  message whose id jumps past ``highest + 1`` proves that a message was lost: a
  :class:`SequenceGap` is recorded and every active subscription is marked as possibly affected
  (exactly the lost one when only one is active). A data message whose id is not above the last
  one of its own subscription is counted as out of order.
"""

from __future__ import annotations

import enum
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from nautilus_dydx.core.errors import ConfigError
from nautilus_dydx.schemas.stream import (
    BlockHeightBatch,
    BlockHeightSubscribed,
    BlockHeightUpdate,
    CandleResolution,
    CandlesBatch,
    CandlesSubscribed,
    CandlesUpdate,
    Channel,
    Connected,
    MarketsBatch,
    MarketsSubscribed,
    MarketStreamMsg,
    MarketsUpdate,
    OrderbookBatch,
    OrderbookSubscribed,
    OrderbookUpdate,
    ParentSubaccountsBatch,
    ParentSubaccountsSubscribed,
    ParentSubaccountsUpdate,
    StreamError,
    SubaccountsBatch,
    SubaccountsSubscribed,
    SubaccountsUpdate,
    TradesBatch,
    TradesSubscribed,
    TradesUpdate,
    Unsubscribed,
    _decode_book_data,
    _decode_general,
)

__all__ = [
    "MAX_PARENT_SUBACCOUNT_NUMBER",
    "MAX_SUBACCOUNT_NUMBER",
    "CandleResolution",
    "Channel",
    "SequenceGap",
    "StreamProtocol",
    "Subscription",
    "SubscriptionState",
    "SubscriptionStatus",
    "error_subscription",
]

logger = logging.getLogger(__name__)

MAX_SUBACCOUNT_NUMBER = 127_999
"""Highest subaccount number a ``v4_subaccounts`` id may name (§4.4: number < 128000)."""
MAX_PARENT_SUBACCOUNT_NUMBER = 127
"""Highest parent number a ``v4_parent_subaccounts`` id may name (< 128)."""

_MAX_ADDRESS_LEN = 90
_MAX_TICKER_LEN = 200
# Skipped ids kept while a subscribe reply is due (a longer jump is reported at once: the few
# replies due could never fill it).
_MAX_DEFERRED_IDS = 10_000
_RESOLUTIONS = frozenset(r.value for r in CandleResolution)
# "... (v4_orderbook-FOO-USD)" at the end of the server's subscription error texts.
_ERROR_SUBSCRIPTION = re.compile(r"\((v4_[a-z_]+)-(.*)\)\.?$")


def _check_ticker(ticker: str, where: str) -> None:
    if not ticker or len(ticker) > _MAX_TICKER_LEN or "/" in ticker or not ticker.isprintable():
        raise ConfigError(f"invalid ticker for {where}: {ticker!r}")
    if any(c.isspace() for c in ticker):
        raise ConfigError(f"invalid ticker for {where}: {ticker!r}")


def _check_account(value: str, channel: Channel, max_number: int) -> None:
    address, sep, number = value.rpartition("/")
    if not sep:
        raise ConfigError(f"{channel} id must be 'address/number', got {value!r}")
    if not (address.isascii() and address.isalnum() and len(address) <= _MAX_ADDRESS_LEN):
        raise ConfigError(f"invalid address in {channel} id: {value!r}")
    if not (number.isascii() and number.isdigit()) or int(number) > max_number:
        raise ConfigError(f"{channel} number must be an integer in [0, {max_number}], got {value!r}")


@dataclass(frozen=True, slots=True)
class Subscription:
    """One channel subscription: a channel and, for most channels, an id.

    ``v4_markets`` and ``v4_block_height`` take no id; ``v4_orderbook`` and ``v4_trades`` take a
    ticker; ``v4_candles`` takes ``TICKER/RESOLUTION``; ``v4_subaccounts`` takes
    ``address/number`` (number < 128000) and ``v4_parent_subaccounts`` ``address/parent`` (< 128).

    Raises:
        ConfigError: the id is missing, present where none is taken, or malformed.
    """

    channel: Channel
    id: str | None = None

    def __post_init__(self) -> None:
        try:
            channel = Channel(self.channel)
        except ValueError:
            raise ConfigError(f"unknown channel {self.channel!r}") from None
        object.__setattr__(self, "channel", channel)
        value = self.id
        if not channel.requires_id:
            if value is not None:
                raise ConfigError(f"{channel} takes no id, got {value!r}")
            return
        if not isinstance(value, str):
            raise ConfigError(f"{channel} requires a string id, got {value!r}")
        if channel in (Channel.ORDERBOOK, Channel.TRADES):
            _check_ticker(value, channel)
        elif channel is Channel.CANDLES:
            ticker, sep, resolution = value.rpartition("/")
            if not sep or resolution not in _RESOLUTIONS:
                raise ConfigError(f"{channel} id must be 'TICKER/RESOLUTION', got {value!r}")
            _check_ticker(ticker, channel)
        elif channel is Channel.SUBACCOUNTS:
            _check_account(value, channel, MAX_SUBACCOUNT_NUMBER)
        else:
            _check_account(value, channel, MAX_PARENT_SUBACCOUNT_NUMBER)

    def __str__(self) -> str:
        return self.channel.value if self.id is None else f"{self.channel.value}-{self.id}"

    @classmethod
    def of(cls, channel: Channel | str, id: str | None = None) -> Subscription:
        """A validated subscription from a channel (enum or wire name) and an id.

        The id the server echoes for id-less channels (``"v4_block_height"`` for block height) is
        dropped, so messages map back to the subscription that was requested.

        Raises:
            ConfigError: unknown channel, or an id the channel does not accept.
        """
        try:
            ch = Channel(channel)
        except ValueError:
            raise ConfigError(f"unknown channel {channel!r}") from None
        if not ch.requires_id and id == ch.value:
            id = None
        return cls(ch, id)

    @classmethod
    def markets(cls) -> Subscription:
        """``v4_markets``."""
        return cls(Channel.MARKETS)

    @classmethod
    def block_height(cls) -> Subscription:
        """``v4_block_height``."""
        return cls(Channel.BLOCK_HEIGHT)

    @classmethod
    def orderbook(cls, ticker: str) -> Subscription:
        """``v4_orderbook`` of one market."""
        return cls(Channel.ORDERBOOK, ticker)

    @classmethod
    def trades(cls, ticker: str) -> Subscription:
        """``v4_trades`` of one market."""
        return cls(Channel.TRADES, ticker)

    @classmethod
    def candles(cls, ticker: str, resolution: CandleResolution | str) -> Subscription:
        """``v4_candles`` of one market at one resolution."""
        return cls(Channel.CANDLES, f"{ticker}/{CandleResolution(resolution).value}")

    @classmethod
    def subaccount(cls, address: str, number: int) -> Subscription:
        """``v4_subaccounts`` of one subaccount."""
        return cls(Channel.SUBACCOUNTS, f"{address}/{number}")

    @classmethod
    def parent_subaccount(cls, address: str, number: int) -> Subscription:
        """``v4_parent_subaccounts`` of one parent subaccount (and its children)."""
        return cls(Channel.PARENT_SUBACCOUNTS, f"{address}/{number}")


class SubscriptionStatus(enum.Enum):
    """Where a subscription is in its life cycle."""

    PENDING = "pending"
    """Requested; no ``subscribed`` yet."""
    ACTIVE = "active"
    """The snapshot arrived; updates flow."""
    UNSUBSCRIBING = "unsubscribing"
    """Unsubscribe requested; no ``unsubscribed`` yet."""


@dataclass(slots=True)
class SubscriptionState:
    """What the protocol knows about one subscription on the current connection.

    Attributes:
        subscription: the channel and id.
        batched: whether updates were requested batched.
        status: life-cycle state.
        snapshot_message_id: ``message_id`` of the ``subscribed`` snapshot, once received.
        last_message_id: ``message_id`` of the latest snapshot or update received.
        updates: data messages received since the snapshot.
        gaps: sequence gaps detected while active; each may have hidden an update of this
            subscription (always, when it was the only active one).
        out_of_order: updates whose id was not above the previous one of this subscription.
        awaiting_replies: subscribe requests sent whose reply (``subscribed`` or an error) has not
            come yet; while any is outstanding anywhere, ids may arrive out of order and gap
            detection is off (an unsubscribe does not end the wait: the reply still comes).
    """

    subscription: Subscription
    batched: bool
    status: SubscriptionStatus
    snapshot_message_id: int | None = None
    last_message_id: int | None = None
    updates: int = 0
    gaps: int = 0
    out_of_order: int = 0
    awaiting_replies: int = 0

    @property
    def continuous(self) -> bool:
        """True while no gap and no reordering was detected since the snapshot."""
        return self.gaps == 0 and self.out_of_order == 0


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """A provably lost message: ids ``expected`` .. ``received - 1`` never arrived.

    Attributes:
        connection_id: the connection it happened on.
        expected: the next id that was due.
        received: the id that arrived instead.
        affected: the active subscriptions that may have lost an update.
    """

    connection_id: str | None
    expected: int
    received: int
    affected: tuple[Subscription, ...] = field(default=())

    @property
    def missing(self) -> int:
        """How many ids were skipped."""
        return self.received - self.expected


class _SubscribeRequest(msgspec.Struct, omit_defaults=True):
    type: str
    channel: str
    id: str | None = None
    batched: bool = False


_encoder = msgspec.json.Encoder()

_SUBSCRIBED = (
    OrderbookSubscribed,
    TradesSubscribed,
    MarketsSubscribed,
    CandlesSubscribed,
    SubaccountsSubscribed,
    ParentSubaccountsSubscribed,
    BlockHeightSubscribed,
)
_DATA = (
    OrderbookUpdate,
    OrderbookBatch,
    TradesUpdate,
    TradesBatch,
    MarketsUpdate,
    MarketsBatch,
    CandlesUpdate,
    CandlesBatch,
    SubaccountsUpdate,
    SubaccountsBatch,
    ParentSubaccountsUpdate,
    ParentSubaccountsBatch,
    BlockHeightUpdate,
    BlockHeightBatch,
)
_DATA_TYPES = frozenset(_DATA)
_ORDERBOOK = Channel.ORDERBOOK
_SUBSCRIBED_TYPES = frozenset(_SUBSCRIBED)


def _key(channel: Channel, id: str | None) -> Subscription:
    # The server echoes id "v4_block_height" for block height and omits it for markets; both are
    # id-less subscriptions on our side. Built without validation: it is only a lookup key.
    sub = object.__new__(Subscription)
    object.__setattr__(sub, "channel", channel)
    object.__setattr__(sub, "id", id if channel.requires_id else None)
    return sub


class StreamProtocol:
    """The client side of one indexer WebSocket connection, without I/O.

    Example:
        >>> proto = StreamProtocol()
        >>> proto.subscribe(Subscription.orderbook("BTC-USD"), batched=True)
        b'{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD","batched":true}'
        >>> msg = proto.receive(b'{"type":"connected","connection_id":"c1","message_id":0}')
        >>> proto.connection_id
        'c1'
    """

    def __init__(self) -> None:
        self._connection_id: str | None = None
        self._highest_id = -1
        self._subs: dict[Subscription, SubscriptionState] = {}
        # The same states keyed as the wire names them (channel, then id): the per-message lookup
        # costs two dict probes and no allocation. Rebuilt whenever _subs changes (rarely).
        self._wire: dict[str, dict[str | None, SubscriptionState]] = {}
        # ``_wire["v4_orderbook"]``, for the order-book fast path of receive().
        self._book_states: dict[str | None, SubscriptionState] = {}
        self._pending_subscribes = 0
        # Ids skipped while a subscribe reply was due: the reply may still fill one of them. They
        # are settled (reported as gaps) once no reply is due any more.
        self._missing: set[int] = set()
        self._gaps: list[SequenceGap] = []

    # ----------------------------------------------------------------------------------------
    # State
    # ----------------------------------------------------------------------------------------

    @property
    def connection_id(self) -> str | None:
        """The server's id of this connection, once ``connected`` arrived."""
        return self._connection_id

    @property
    def last_message_id(self) -> int:
        """The highest ``message_id`` received on this connection (-1 before ``connected``)."""
        return self._highest_id

    @property
    def has_gaps(self) -> bool:
        """Whether gaps were detected that :meth:`drain_gaps` has not returned yet."""
        return bool(self._gaps)

    @property
    def gap_detection_active(self) -> bool:
        """False while a subscribe reply is due: its id was taken when the server read the request,
        so later ids may arrive first. Ids skipped meanwhile are kept, and those the replies do not
        fill are reported as gaps as soon as no reply is due."""
        return self._pending_subscribes == 0

    def subscriptions(self) -> Iterator[SubscriptionState]:
        """The state of every known subscription (pending, active, unsubscribing)."""
        return iter(list(self._subs.values()))

    def state(self, subscription: Subscription) -> SubscriptionState | None:
        """The state of one subscription, or None if unknown."""
        return self._subs.get(subscription)

    @property
    def active(self) -> frozenset[Subscription]:
        """Subscriptions whose snapshot arrived and that are not being unsubscribed."""
        return frozenset(s.subscription for s in self._subs.values() if s.status is SubscriptionStatus.ACTIVE)

    def _reindex(self) -> None:
        wire: dict[str, dict[str | None, SubscriptionState]] = {}
        for sub, state in self._subs.items():
            ids = wire.setdefault(sub.channel.value, {})
            ids[sub.id] = state
            if sub.id is None:
                # the server echoes the channel name as id for block height
                ids[sub.channel.value] = state
        self._wire = wire
        self._book_states = wire.get(Channel.ORDERBOOK.value, {})

    def drain_gaps(self) -> list[SequenceGap]:
        """The sequence gaps detected since the last call (oldest first)."""
        gaps, self._gaps = self._gaps, []
        return gaps

    def reset(self) -> list[tuple[Subscription, bool]]:
        """Forget the connection (it closed); return what to subscribe again on the next one.

        Returns:
            ``(subscription, batched)`` of every subscription that was pending or active, in the
            order they were requested. Those being unsubscribed are dropped.
        """
        restore = [
            (s.subscription, s.batched)
            for s in self._subs.values()
            if s.status is not SubscriptionStatus.UNSUBSCRIBING
        ]
        self._connection_id = None
        self._highest_id = -1
        self._subs.clear()
        self._wire = {}
        self._book_states = {}
        self._pending_subscribes = 0
        self._missing.clear()
        self._gaps.clear()
        return restore

    # ----------------------------------------------------------------------------------------
    # Encoders
    # ----------------------------------------------------------------------------------------

    def subscribe(
        self, channel: Channel | str | Subscription, id: str | None = None, batched: bool = False
    ) -> bytes:
        """Encode a subscribe request and record the subscription as pending.

        Args:
            channel: a :class:`Subscription`, or a channel (then ``id`` as the channel needs).
            id: the subscription id when ``channel`` is a channel.
            batched: ask for ``channel_batch_data`` (flushed every 250 ms by the server).

        Returns:
            The JSON text frame, e.g.
            ``{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD","batched":true}``
            (``id`` omitted for id-less channels, ``batched`` omitted when false).

        Raises:
            ConfigError: invalid channel/id, already subscribed (or pending), or the channel's
                per-connection limit would be exceeded.
        """
        sub = self._subscription(channel, id)
        existing = self._subs.get(sub)
        if existing is not None and existing.status is not SubscriptionStatus.UNSUBSCRIBING:
            raise ConfigError(f"already subscribed ({sub})")
        held = sum(
            1
            for s in self._subs.values()
            if s.subscription.channel is sub.channel and s.status is not SubscriptionStatus.UNSUBSCRIBING
        )
        if held >= sub.channel.limit:
            raise ConfigError(
                f"per-connection subscription limit reached for {sub.channel} (limit={sub.channel.limit})"
            )
        # A re-subscribe while the unsubscribe is unconfirmed keeps counting the replies still due.
        awaiting = 1 + (existing.awaiting_replies if existing is not None else 0)
        self._subs[sub] = SubscriptionState(
            sub, batched, SubscriptionStatus.PENDING, awaiting_replies=awaiting
        )
        self._reindex()
        self._pending_subscribes += 1
        return _encoder.encode(_SubscribeRequest("subscribe", sub.channel.value, sub.id, batched))

    def unsubscribe(self, channel: Channel | str | Subscription, id: str | None = None) -> bytes:
        """Encode an unsubscribe request; the subscription is dropped when the server acks.

        Unsubscribing from something not subscribed is allowed (the server acks it anyway).

        Returns:
            The JSON text frame, e.g. ``{"type":"unsubscribe","channel":"v4_trades","id":"ETH-USD"}``.

        Raises:
            ConfigError: invalid channel/id.
        """
        sub = self._subscription(channel, id)
        state = self._subs.get(sub)
        if state is not None:
            # A pending subscribe's reply still comes (its id was taken when the server read the
            # request): gap detection stays off until it does.
            state.status = SubscriptionStatus.UNSUBSCRIBING
        return _encoder.encode(_SubscribeRequest("unsubscribe", sub.channel.value, sub.id))

    def skip(self, message_id: int) -> None:
        """Account for a frame with this ``message_id`` that arrived but could not be decoded.

        Its id is not a gap: the caller deals with the frame's loss (e.g. by subscribing again).
        Ids before it that never arrived are still reported as a gap.
        """
        if message_id == self._highest_id + 1:
            self._highest_id = message_id
        else:
            self._sequence(message_id)

    @staticmethod
    def ping() -> bytes:
        """An application-level ping (accepted and ignored by the server; no answer comes)."""
        return b'{"type":"ping"}'

    @staticmethod
    def _subscription(channel: Channel | str | Subscription, id: str | None) -> Subscription:
        if isinstance(channel, Subscription):
            if id is not None:
                raise ConfigError("give either a Subscription or a channel and an id, not both")
            return channel
        return Subscription(channel, id)  # type: ignore[arg-type]  # validated in __post_init__

    # ----------------------------------------------------------------------------------------
    # Receiving
    # ----------------------------------------------------------------------------------------

    def receive(self, data: bytes | bytearray | memoryview | str) -> MarketStreamMsg:
        """Decode one text frame and update the connection state.

        Returns:
            The decoded message (unchanged by the bookkeeping).

        Raises:
            DecodeError: the frame does not decode (the state is unchanged).
        """
        # Order-book data is the bulk of the traffic: one decode straight into its final struct and
        # the bookkeeping of _on_data inlined. Anything else fails or has another channel here.
        try:
            book = _decode_book_data(data)
        except msgspec.DecodeError:
            pass
        else:
            if book.channel is _ORDERBOOK:
                message_id = book.message_id
                if message_id == self._highest_id + 1:
                    # The next id: above every id seen, hence above its subscription's last one.
                    self._highest_id = message_id
                    state = self._book_states.get(book.id)
                    if state is not None:
                        state.last_message_id = message_id
                        state.updates += 1
                else:
                    self._on_data(book)
                return book
        msg = _decode_general(data)
        cls = type(msg)
        if cls in _DATA_TYPES:
            self._on_data(msg)  # type: ignore[arg-type]
        elif cls in _SUBSCRIBED_TYPES:
            self._on_subscribed(msg)  # type: ignore[arg-type]
        elif cls is Connected:
            self._on_connected(msg)  # type: ignore[arg-type]
        elif cls is Unsubscribed:
            self._on_unsubscribed(msg)  # type: ignore[arg-type]
        elif cls is StreamError:
            self._on_error(msg)  # type: ignore[arg-type]
        return msg

    def _on_connected(self, msg: Connected) -> None:
        if self._connection_id is not None and msg.connection_id != self._connection_id:
            # A new connection: the server holds none of the old subscriptions; only requests
            # made for this connection (pending) survive. Its ids start afresh.
            self._subs = {k: s for k, s in self._subs.items() if s.status is SubscriptionStatus.PENDING}
            self._reindex()
            self._pending_subscribes = sum(s.awaiting_replies for s in self._subs.values())
            self._missing.clear()
            self._highest_id = msg.message_id
        else:
            self._highest_id = max(self._highest_id, msg.message_id)
        self._connection_id = msg.connection_id

    def _sequence(self, message_id: int) -> None:
        expected = self._highest_id + 1
        if message_id > expected and self._highest_id >= 0:
            if self._pending_subscribes and message_id - expected <= _MAX_DEFERRED_IDS:
                self._missing.update(range(expected, message_id))  # a reply due may fill one
                if len(self._missing) > _MAX_DEFERRED_IDS:
                    self._settle(force=True)  # a reply that never comes must not hide loss forever
            else:
                self._record_gap(expected, message_id)
        elif message_id < expected and self._missing:
            self._missing.discard(message_id)  # a late reply filled its place
        if message_id > self._highest_id:
            self._highest_id = message_id

    def _settle(self, *, force: bool = False) -> None:
        """No reply is due any more (or ``force``): the ids still missing were lost."""
        if (self._pending_subscribes and not force) or not self._missing:
            return
        ids = sorted(self._missing)
        self._missing.clear()
        start = previous = ids[0]
        for i in ids[1:]:
            if i != previous + 1:
                self._record_gap(start, previous + 1)
                start = i
            previous = i
        self._record_gap(start, previous + 1)

    def _record_gap(self, expected: int, received: int) -> None:
        affected = tuple(
            s.subscription for s in self._subs.values() if s.status is not SubscriptionStatus.PENDING
        )
        for sub in affected:
            self._subs[sub].gaps += 1
        self._gaps.append(SequenceGap(self._connection_id, expected, received, affected))
        logger.warning(
            "message_id gap on connection %s: expected %d, received %d (%d subscriptions affected)",
            self._connection_id,
            expected,
            received,
            len(affected),
        )

    def _on_data(
        self,
        msg: OrderbookUpdate
        | OrderbookBatch
        | TradesUpdate
        | TradesBatch
        | MarketsUpdate
        | MarketsBatch
        | CandlesUpdate
        | CandlesBatch
        | SubaccountsUpdate
        | SubaccountsBatch
        | ParentSubaccountsUpdate
        | ParentSubaccountsBatch
        | BlockHeightUpdate
        | BlockHeightBatch,
    ) -> None:
        message_id = msg.message_id
        if message_id == self._highest_id + 1:
            self._highest_id = message_id
        else:
            self._sequence(message_id)
        ids = self._wire.get(msg.channel)
        state = None if ids is None else ids.get(msg.id)
        if state is None:
            return
        last = state.last_message_id
        if last is not None and message_id <= last:
            self._out_of_order(state, message_id, last)
        else:
            state.last_message_id = message_id
        state.updates += 1

    @staticmethod
    def _out_of_order(state: SubscriptionState, message_id: int, last: int) -> None:
        state.out_of_order += 1
        logger.warning("out-of-order update on %s: id %d after %d", state.subscription, message_id, last)

    def _on_subscribed(
        self,
        msg: OrderbookSubscribed
        | TradesSubscribed
        | MarketsSubscribed
        | CandlesSubscribed
        | SubaccountsSubscribed
        | ParentSubaccountsSubscribed
        | BlockHeightSubscribed,
    ) -> None:
        # The id was taken when the request arrived: it may be below ids seen since (it then fills
        # its place), or above them (the ids between are missing until the replies due have come).
        self._sequence(msg.message_id)
        sub = _key(msg.channel, msg.id)
        state = self._subs.get(sub)
        if state is None:
            state = self._subs[sub] = SubscriptionState(sub, False, SubscriptionStatus.ACTIVE)
            self._reindex()
        else:
            if state.status is SubscriptionStatus.PENDING:
                state.status = SubscriptionStatus.ACTIVE
            # UNSUBSCRIBING: the snapshot raced our unsubscribe; the ack will remove it.
        state.snapshot_message_id = msg.message_id
        state.last_message_id = msg.message_id
        state.updates = 0
        state.gaps = 0
        state.out_of_order = 0
        self._replied(state)  # may settle a loss that this subscription, now active, shares

    def _on_unsubscribed(self, msg: Unsubscribed) -> None:
        self._sequence(msg.message_id)
        key = _key(msg.channel, msg.id)
        state = self._subs.get(key)
        # A subscribe sent after the unsubscribe (PENDING again) is not what this ack removes.
        if state is not None and state.status is SubscriptionStatus.UNSUBSCRIBING:
            del self._subs[key]
            self._reindex()
            # Replies still due for it will find no state: stop waiting for them.
            self._pending_subscribes -= state.awaiting_replies
            self._settle()

    def _replied(self, state: SubscriptionState) -> None:
        if state.awaiting_replies:
            state.awaiting_replies -= 1
            self._pending_subscribes -= 1
            self._settle()

    def _on_error(self, msg: StreamError) -> None:
        self._sequence(msg.message_id)  # as a subscribe reply: it may come late, or early
        sub = error_subscription(msg)
        if sub is None:
            logger.warning("stream error on %s: %s", self._connection_id, msg.message)
            return
        state = self._subs.get(sub)
        if state is None:
            return
        if state.status is SubscriptionStatus.PENDING:
            self._replied(state)
            del self._subs[sub]
            self._reindex()
            self._pending_subscribes -= state.awaiting_replies
            self._settle()
        elif msg.message.startswith("Internal error"):
            # The server drops a subscription whose data it could not fetch, even one that was
            # active: forget it so that it can be subscribed again on this connection.
            del self._subs[sub]
            self._reindex()
        logger.warning("subscription %s failed: %s", sub, msg.message)


def error_subscription(msg: StreamError) -> Subscription | None:
    """The subscription a server error is about: its ``channel``/``id`` fields, or else the
    ``(<channel>-<id>)`` the message text ends with (the venue leaves the fields out of some
    errors, e.g. ``Invalid subscription id for channel: (v4_trades-NOPE-USD)``); None if neither."""
    channel_name, id = msg.channel, msg.id
    if channel_name is None:
        match = _ERROR_SUBSCRIPTION.search(msg.message)
        if match is None:
            return None
        channel_name, id = match.group(1), match.group(2)
    try:
        channel = Channel(channel_name)
    except ValueError:
        return None
    return _key(channel, id)
