"""StreamProtocol: encoders, subscription validation, life cycle and sequence tracking."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.errors import ConfigError, DecodeError
from nautilus_dydx.core.stream import (
    CandleResolution,
    Channel,
    StreamProtocol,
    Subscription,
    SubscriptionStatus,
)
from nautilus_dydx.schemas.stream import Connected, OrderbookUpdate, StreamError

ADDR = "dydx1qqqsyqcyq5rqwzqfpg9scrgwpugpzysn7hzdtn"


def frame(**fields: object) -> bytes:
    return json.dumps({"connection_id": "c1", **fields}).encode()


def connected(cid: str = "c1") -> bytes:
    return json.dumps({"type": "connected", "connection_id": cid, "message_id": 0}).encode()


def ob_subscribed(mid: int, ticker: str = "BTC-USD") -> bytes:
    return frame(
        type="subscribed",
        message_id=mid,
        channel="v4_orderbook",
        id=ticker,
        contents={"bids": [], "asks": []},
    )


def channel_data(mid: int, channel: str, ticker: str, version: str, contents: object) -> bytes:
    return frame(
        type="channel_data", message_id=mid, id=ticker, channel=channel, version=version, contents=contents
    )


def ob_data(mid: int, ticker: str = "BTC-USD") -> bytes:
    return channel_data(mid, "v4_orderbook", ticker, "1.0.0", {"bids": [["1", "1"]]})


def trades_subscribed(mid: int, ticker: str = "BTC-USD") -> bytes:
    return frame(type="subscribed", message_id=mid, channel="v4_trades", id=ticker, contents={"trades": []})


def trades_data(mid: int, ticker: str = "BTC-USD") -> bytes:
    return channel_data(mid, "v4_trades", ticker, "2.1.0", {"trades": []})


def with_btc_book() -> StreamProtocol:
    """A protocol on connection c1 whose BTC-USD order book is subscribed (snapshot: message 1)."""
    p = StreamProtocol()
    p.receive(connected())
    p.subscribe(Subscription.orderbook("BTC-USD"))
    p.receive(ob_subscribed(1))
    return p


# -- encoders -------------------------------------------------------------------------------------


def test_encoders_produce_the_wire_json() -> None:
    p = StreamProtocol()
    assert (
        p.subscribe(Channel.ORDERBOOK, "BTC-USD", batched=True)
        == b'{"type":"subscribe","channel":"v4_orderbook","id":"BTC-USD","batched":true}'
    )
    assert p.subscribe("v4_markets") == b'{"type":"subscribe","channel":"v4_markets"}'
    assert p.subscribe(Subscription.block_height()) == b'{"type":"subscribe","channel":"v4_block_height"}'
    assert (
        p.subscribe(Subscription.candles("ETH-USD", CandleResolution.FIVE_MINUTES))
        == b'{"type":"subscribe","channel":"v4_candles","id":"ETH-USD/5MINS"}'
    )
    assert (
        p.subscribe(Subscription.subaccount(ADDR, 0))
        == b'{"type":"subscribe","channel":"v4_subaccounts","id":"' + ADDR.encode() + b'/0"}'
    )
    assert (
        p.unsubscribe(Channel.TRADES, "ETH-USD")
        == b'{"type":"unsubscribe","channel":"v4_trades","id":"ETH-USD"}'
    )
    assert p.unsubscribe(Subscription.markets()) == b'{"type":"unsubscribe","channel":"v4_markets"}'
    assert p.ping() == b'{"type":"ping"}'


@pytest.mark.parametrize(
    ("channel", "id"),
    [
        ("v4_nope", "X"),
        (Channel.MARKETS, "BTC-USD"),
        (Channel.BLOCK_HEIGHT, "1"),
        (Channel.ORDERBOOK, None),
        (Channel.ORDERBOOK, ""),
        (Channel.ORDERBOOK, "BTC/USD"),
        (Channel.TRADES, "BTC USD"),
        (Channel.CANDLES, "BTC-USD"),
        (Channel.CANDLES, "BTC-USD/2MINS"),
        (Channel.CANDLES, "/1MIN"),
        (Channel.SUBACCOUNTS, ADDR),
        (Channel.SUBACCOUNTS, f"{ADDR}/-1"),
        (Channel.SUBACCOUNTS, f"{ADDR}/128000"),
        (Channel.SUBACCOUNTS, f"{ADDR}/x"),
        (Channel.SUBACCOUNTS, f"dydx-bad/{0}"),
        (Channel.SUBACCOUNTS, f"{'a' * 91}/0"),
        (Channel.PARENT_SUBACCOUNTS, f"{ADDR}/128"),
    ],
)
def test_invalid_subscriptions_are_refused_before_encoding(channel: Channel | str, id: str | None) -> None:
    p = StreamProtocol()
    with pytest.raises(ConfigError):
        p.subscribe(channel, id)
    assert list(p.subscriptions()) == []


def test_valid_edge_ids() -> None:
    assert Subscription(Channel.SUBACCOUNTS, f"{ADDR}/127999").id == f"{ADDR}/127999"
    assert Subscription.parent_subaccount(ADDR, 127).channel is Channel.PARENT_SUBACCOUNTS
    assert Subscription.orderbook("BUFFI,UNISWAP_V3,0X4C1B-USD").id == "BUFFI,UNISWAP_V3,0X4C1B-USD"
    assert Subscription.of("v4_block_height", "v4_block_height") == Subscription.block_height()
    assert Subscription.of(Channel.TRADES, "ETH-USD") == Subscription.trades("ETH-USD")
    assert str(Subscription.trades("ETH-USD")) == "v4_trades-ETH-USD"
    assert str(Subscription.markets()) == "v4_markets"
    with pytest.raises(ConfigError):
        Subscription.of("v4_nope")


def test_duplicates_and_limits() -> None:
    p = StreamProtocol()
    p.subscribe(Subscription.orderbook("BTC-USD"))
    with pytest.raises(ConfigError, match="already subscribed"):
        p.subscribe(Subscription.orderbook("BTC-USD"))
    p.subscribe(Subscription.block_height())
    # block height has a single possible subscription: its limit (1) is the duplicate check
    with pytest.raises(ConfigError, match="already subscribed"):
        p.subscribe(Subscription.block_height())
    for i in range(31):
        p.subscribe(Subscription.orderbook(f"T{i}-USD"))
    with pytest.raises(ConfigError, match="limit=32"):
        p.subscribe(Subscription.orderbook("ONE-MORE"))
    # an unsubscribe frees the slot at once
    p.unsubscribe(Subscription.orderbook("T0-USD"))
    p.subscribe(Subscription.orderbook("ONE-MORE"))
    with pytest.raises(ConfigError):
        p.subscribe(Subscription.orderbook("BTC-USD"), "BTC-USD")


# -- life cycle -----------------------------------------------------------------------------------


def test_subscription_life_cycle() -> None:
    p = StreamProtocol()
    assert p.connection_id is None
    assert p.last_message_id == -1
    msg = p.receive(connected())
    assert isinstance(msg, Connected)
    assert p.connection_id == "c1"
    sub = Subscription.orderbook("BTC-USD")
    p.subscribe(sub, batched=True)
    state = p.state(sub)
    assert state is not None
    assert state.status is SubscriptionStatus.PENDING
    assert state.batched
    assert not p.gap_detection_active
    assert p.active == frozenset()
    p.receive(ob_subscribed(1))
    assert state.status is SubscriptionStatus.ACTIVE
    assert state.snapshot_message_id == 1
    assert p.active == {sub}
    assert p.gap_detection_active
    upd = p.receive(ob_data(2))
    assert isinstance(upd, OrderbookUpdate)
    assert state.last_message_id == 2
    assert state.updates == 1
    assert state.continuous
    p.unsubscribe(sub)
    assert state.status is SubscriptionStatus.UNSUBSCRIBING
    assert p.active == frozenset()
    p.receive(frame(type="unsubscribed", message_id=3, channel="v4_orderbook", id="BTC-USD"))
    assert p.state(sub) is None
    assert p.last_message_id == 3
    assert p.drain_gaps() == []


def test_markets_and_block_height_map_back_to_idless_subscriptions() -> None:
    p = StreamProtocol()
    p.receive(connected())
    p.subscribe(Subscription.markets())
    p.subscribe(Subscription.block_height())
    p.receive(frame(type="subscribed", message_id=1, channel="v4_markets", contents={"markets": {}}))
    p.receive(
        frame(
            type="subscribed",
            message_id=2,
            channel="v4_block_height",
            id="v4_block_height",
            contents={"height": "5", "time": "2025-01-01T00:00:00Z"},
        )
    )
    assert p.active == {Subscription.markets(), Subscription.block_height()}
    p.receive(
        frame(
            type="channel_data",
            message_id=3,
            id="v4_block_height",
            channel="v4_block_height",
            version="1.0.0",
            contents={"blockHeight": "6", "time": "2025-01-01T00:00:01Z"},
        )
    )
    state = p.state(Subscription.block_height())
    assert state is not None
    assert state.updates == 1


def test_error_naming_a_pending_subscription_drops_it() -> None:
    p = StreamProtocol()
    p.receive(connected())
    bad = Subscription.orderbook("NOPE-USD")
    p.subscribe(bad)
    msg = p.receive(
        frame(
            type="error", message_id=1, message="Invalid subscription id for channel: (v4_orderbook-NOPE-USD)"
        )
    )
    assert isinstance(msg, StreamError)
    assert p.state(bad) is None
    assert p.gap_detection_active
    # an internal error names channel and id as fields
    again = Subscription.trades("ETH-USD")
    p.subscribe(again)
    p.receive(
        frame(
            type="error",
            message_id=1,
            message="Internal error, could not fetch data for subscription: v4_trades.",
            channel="v4_trades",
            id="ETH-USD",
        )
    )
    assert p.state(again) is None
    # and can be requested again
    p.subscribe(again)


def test_unrelated_errors_leave_subscriptions_alone() -> None:
    p = StreamProtocol()
    p.receive(connected())
    p.subscribe(Subscription.orderbook("BTC-USD"))
    p.receive(frame(type="error", message_id=0, message="Invalid message: could not parse"))
    state = p.state(Subscription.orderbook("BTC-USD"))
    assert state is not None
    assert state.status is SubscriptionStatus.PENDING


def test_reset_returns_what_to_restore_and_clears() -> None:
    p = StreamProtocol()
    p.receive(connected())
    a, b, c = Subscription.orderbook("BTC-USD"), Subscription.trades("BTC-USD"), Subscription.markets()
    p.subscribe(a, batched=True)
    p.subscribe(b)
    p.subscribe(c)
    p.receive(ob_subscribed(1))
    p.unsubscribe(c)
    assert p.reset() == [(a, True), (b, False)]
    assert p.connection_id is None
    assert p.last_message_id == -1
    assert list(p.subscriptions()) == []


def test_new_connection_drops_stale_active_subscriptions() -> None:
    p = StreamProtocol()
    p.receive(connected("c1"))
    p.subscribe(Subscription.orderbook("BTC-USD"))
    p.receive(ob_subscribed(1))
    p.subscribe(Subscription.trades("BTC-USD"))
    p.receive(connected("c2"))
    assert p.connection_id == "c2"
    assert [s.subscription for s in p.subscriptions()] == [Subscription.trades("BTC-USD")]


def test_unsolicited_snapshot_is_tracked() -> None:
    p = StreamProtocol()
    p.receive(connected())
    p.receive(ob_subscribed(1, "ETH-USD"))
    assert p.active == {Subscription.orderbook("ETH-USD")}


def test_decode_error_leaves_state_unchanged() -> None:
    p = StreamProtocol()
    p.receive(connected())
    with pytest.raises(DecodeError):
        p.receive(b'{"type":"channel_data"')
    assert p.last_message_id == 0


# -- sequence tracking ----------------------------------------------------------------------------


def test_snapshot_with_lower_id_is_not_a_gap() -> None:
    p = with_btc_book()
    p.subscribe(Subscription.trades("BTC-USD"))
    # the trades request took id 2; orderbook data 3, 4 arrive before its snapshot
    p.receive(ob_data(3))
    p.receive(ob_data(4))
    p.receive(trades_subscribed(2))
    p.receive(ob_data(5))
    p.receive(trades_data(6))
    assert p.drain_gaps() == []
    assert p.last_message_id == 6
    for state in p.subscriptions():
        assert state.continuous


def test_gap_with_one_subscription_is_attributed_to_it() -> None:
    p = with_btc_book()
    sub = Subscription.orderbook("BTC-USD")
    p.receive(ob_data(2))
    p.receive(ob_data(5))
    (gap,) = p.drain_gaps()
    assert (gap.connection_id, gap.expected, gap.received, gap.missing) == ("c1", 3, 5, 2)
    assert gap.affected == (sub,)
    state = p.state(sub)
    assert state is not None
    assert state.gaps == 1
    assert not state.continuous
    assert p.drain_gaps() == []
    # a new snapshot (resubscription) restarts continuity
    p.unsubscribe(sub)
    p.receive(frame(type="unsubscribed", message_id=6, channel="v4_orderbook", id="BTC-USD"))
    p.subscribe(sub)
    p.receive(ob_subscribed(7))
    state = p.state(sub)
    assert state is not None
    assert state.continuous


def test_no_gap_detection_while_a_subscribe_is_pending() -> None:
    p = with_btc_book()
    p.subscribe(Subscription.trades("BTC-USD"))
    p.receive(ob_data(3))  # id 2 is the pending subscribe's
    assert p.drain_gaps() == []


def test_out_of_order_update_is_counted() -> None:
    p = with_btc_book()
    sub = Subscription.orderbook("BTC-USD")
    p.receive(ob_data(2))
    p.receive(ob_data(2))
    state = p.state(sub)
    assert state is not None
    assert state.out_of_order == 1
    assert state.last_message_id == 2


@settings(max_examples=150, deadline=None)
@given(st.lists(st.booleans(), min_size=1, max_size=40), st.integers(1, 3))
def test_gaps_found_exactly_when_messages_are_dropped(keep: list[bool], subs: int) -> None:
    """A server sends data for ``subs`` subscriptions with consecutive ids; some are dropped."""
    p = StreamProtocol()
    p.receive(connected())
    tickers = [f"T{i}-USD" for i in range(subs)]
    for i, t in enumerate(tickers, start=1):
        p.subscribe(Subscription.orderbook(t))
        p.receive(ob_subscribed(i, t))
    mid = subs
    delivered_last = mid
    expected_gaps = []
    pending_skip = 0
    for i, kept in enumerate(keep):
        mid += 1
        if not kept:
            pending_skip += 1
            continue
        if pending_skip:
            expected_gaps.append((delivered_last + 1, mid))
            pending_skip = 0
        p.receive(ob_data(mid, tickers[i % subs]))
        delivered_last = mid
    assert [(g.expected, g.received) for g in p.drain_gaps()] == expected_gaps
    total = sum(s.gaps for s in p.subscriptions())
    assert total == len(expected_gaps) * subs


# -- review regressions: connection change, pending unsubscribe, re-subscribe ---------------------


def test_a_new_connection_starts_its_ids_afresh() -> None:
    p = with_btc_book()
    for mid in range(2, 101):
        p.receive(ob_data(mid))
    p.receive(connected("c2"))
    assert p.last_message_id == 0
    p.subscribe(Subscription.orderbook("BTC-USD"))
    p.receive(ob_subscribed(1))
    p.receive(ob_data(2))
    p.receive(ob_data(7))  # 3..6 lost on c2, though c1 had gone far past 7
    (gap,) = p.drain_gaps()
    assert (gap.expected, gap.received) == (3, 7)


def test_unsubscribing_a_pending_subscription_keeps_waiting_for_its_reply() -> None:
    p = StreamProtocol()
    p.receive(connected())
    p.subscribe(Subscription.trades("BTC-USD"))
    p.receive(trades_subscribed(1))
    book = Subscription.orderbook("ETH-USD")
    p.subscribe(book)  # the server takes id 2 for its reply and fetches the snapshot meanwhile
    p.unsubscribe(book)  # its ack will be id 4
    assert not p.gap_detection_active
    p.receive(trades_data(3))  # overtakes the snapshot (§4.3): not a gap
    p.receive(ob_subscribed(2, "ETH-USD"))
    assert p.gap_detection_active  # the reply came; the ack's id is taken in order
    p.receive(frame(type="unsubscribed", message_id=4, channel="v4_orderbook", id="ETH-USD"))
    assert p.drain_gaps() == []
    assert p.state(book) is None


def test_the_ack_of_an_old_unsubscribe_does_not_remove_a_new_subscribe() -> None:
    p = StreamProtocol()
    p.receive(connected())
    sub = Subscription.orderbook("BTC-USD")
    p.subscribe(sub, batched=True)
    p.receive(ob_subscribed(1))
    p.unsubscribe(sub)  # ack: id 2
    p.subscribe(sub, batched=True)  # reply: id 3
    p.receive(frame(type="unsubscribed", message_id=2, channel="v4_orderbook", id="BTC-USD"))
    state = p.state(sub)
    assert state is not None
    assert (state.status, state.batched) == (SubscriptionStatus.PENDING, True)
    # Dropped here, the connection still owes the new request: it is replayed, batched.
    assert p.reset() == [(sub, True)]


def test_skip_accounts_for_an_undecodable_frame() -> None:
    p = with_btc_book()
    p.skip(2)  # frame 2 arrived but could not be decoded: its loss is handled elsewhere
    p.receive(ob_data(3))
    assert p.drain_gaps() == []
    p.skip(6)  # 4 and 5 never arrived at all
    (gap,) = p.drain_gaps()
    assert (gap.expected, gap.received) == (4, 6)
    assert not p.has_gaps


def test_a_loss_while_a_subscribe_reply_is_due_is_reported_when_the_reply_has_come() -> None:
    p = with_btc_book()
    p.subscribe(Subscription.trades("BTC-USD"))  # its reply takes id 2, sent after the snapshot fetch
    p.receive(ob_data(3))  # overtakes the reply: 2 may still come
    p.receive(ob_data(5))  # 4 is lost, but while a reply is due that cannot be told yet
    assert p.drain_gaps() == []
    p.receive(trades_subscribed(2))  # fills 2; no reply is due any more: 4 was lost
    (gap,) = p.drain_gaps()
    assert (gap.expected, gap.received) == (4, 5)
    assert gap.affected == (Subscription.orderbook("BTC-USD"), Subscription.trades("BTC-USD"))


def test_holes_filled_by_late_replies_are_not_gaps() -> None:
    p = with_btc_book()
    p.subscribe(Subscription.trades("BTC-USD"))  # reply id 2
    p.subscribe(Subscription.orderbook("ETH-USD"))  # reply id 3
    p.receive(ob_data(4))
    p.receive(trades_subscribed(2))
    p.receive(ob_subscribed(3, "ETH-USD"))
    p.receive(ob_data(5))
    assert p.drain_gaps() == []
    assert p.gap_detection_active
