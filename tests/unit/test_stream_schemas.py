"""Decoding of indexer WebSocket frames into the MarketStreamMsg union."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nautilus_dydx.core.errors import DecodeError
from nautilus_dydx.schemas import stream as s

OWN = Path(__file__).resolve().parents[1] / "fixtures" / "ws"


def load(name: str) -> bytes:
    return (OWN / name).read_bytes()


# -- hand-written frames --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("connected.json", s.Connected),
        ("orderbook_subscribed.json", s.OrderbookSubscribed),
        ("orderbook_channel_data.json", s.OrderbookUpdate),
        ("orderbook_batch.json", s.OrderbookBatch),
        ("trades_channel_data.json", s.TradesUpdate),
        ("markets_channel_data.json", s.MarketsUpdate),
        ("block_height_subscribed.json", s.BlockHeightSubscribed),
        ("block_height_channel_data.json", s.BlockHeightUpdate),
        ("candles_channel_data.json", s.CandlesUpdate),
        ("parent_subaccounts_channel_data.json", s.ParentSubaccountsUpdate),
        ("subaccounts_subscribed_empty.json", s.SubaccountsSubscribed),
        ("unsubscribed_markets.json", s.Unsubscribed),
        ("error_subscription.json", s.StreamError),
    ],
)
def test_own_frames_decode_to_their_member(name: str, cls: type) -> None:
    data = load(name)
    msg = s.decode_stream_message(data)
    assert type(msg) is cls
    # str input decodes the same
    assert s.decode_stream_message(data.decode()) == msg


def test_orderbook_snapshot_levels_are_objects_and_updates_are_pairs() -> None:
    snap = s.decode_stream_message(load("orderbook_subscribed.json"))
    assert isinstance(snap, s.OrderbookSubscribed)
    assert snap.id == "ETH-USD"
    assert snap.message_id == 1
    assert snap.channel is s.Channel.ORDERBOOK
    assert snap.contents.bids == [s.OrderbookLevel("3000.1", "1.5"), s.OrderbookLevel("3000", "0.25")]
    assert snap.contents.asks[1] == s.OrderbookLevel("3001", "0.001")

    upd = s.decode_stream_message(load("orderbook_channel_data.json"))
    assert isinstance(upd, s.OrderbookUpdate)
    assert upd.version == "1.0.0"
    assert upd.contents.bids == [("3000.1", "0"), ("2999.9", "4.2")]
    assert upd.contents.asks == []

    batch = s.decode_stream_message(load("orderbook_batch.json"))
    assert isinstance(batch, s.OrderbookBatch)
    assert [(c.bids, c.asks) for c in batch.contents] == [
        ([], [("3000.3", "1.75")]),
        ([("3000.2", "0.5")], []),
        ([], [("3001", "0")]),
    ]


def test_block_height_key_quirk() -> None:
    snap = s.decode_stream_message(load("block_height_subscribed.json"))
    upd = s.decode_stream_message(load("block_height_channel_data.json"))
    assert isinstance(snap, s.BlockHeightSubscribed)
    assert isinstance(upd, s.BlockHeightUpdate)
    assert snap.contents.height == 123456
    assert upd.contents.block_height == 123457
    assert upd.contents.time == datetime(2025, 1, 2, 3, 4, 6, tzinfo=UTC)


def test_markets_update_has_trading_and_oracle_prices() -> None:
    msg = s.decode_stream_message(load("markets_channel_data.json"))
    assert isinstance(msg, s.MarketsUpdate)
    assert msg.id is None
    assert msg.contents.trading is not None
    eth = msg.contents.trading["ETH-USD"]
    assert eth.price_change_24h == Decimal("-12.5")
    assert eth.trades_24h == 4512
    assert eth.next_funding_rate == Decimal("0.0000125")
    assert eth.status is None
    assert msg.contents.oracle_prices is not None
    oracle = msg.contents.oracle_prices["ETH-USD"]
    assert oracle.oracle_price == Decimal("3000.25")
    assert oracle.effective_at_height == 123456
    assert oracle.market_id == 1


def test_trades_and_candles_values() -> None:
    trades = s.decode_stream_message(load("trades_channel_data.json"))
    assert isinstance(trades, s.TradesUpdate)
    (trade,) = trades.contents.trades
    assert (trade.id, trade.side, trade.size, trade.price, trade.type) == (
        "0001e2400000000200000003",
        "BUY",
        Decimal("0.5"),
        Decimal("3000.3"),
        "LIMIT",
    )
    assert trade.created_at_height is None
    candle = s.decode_stream_message(load("candles_channel_data.json"))
    assert isinstance(candle, s.CandlesUpdate)
    assert candle.contents.orderbook_mid_price_open is None
    assert candle.contents.orderbook_mid_price_close == Decimal("3000.2")
    assert candle.contents.trades == 17


def test_parent_subaccount_update_carries_child_number_and_single_transfer() -> None:
    msg = s.decode_stream_message(load("parent_subaccounts_channel_data.json"))
    assert isinstance(msg, s.ParentSubaccountsUpdate)
    assert msg.subaccount_number == 128
    c = msg.contents
    assert c.block_height == 123456
    assert c.orders is not None
    order = c.orders[0]
    assert (order.client_id, order.clob_pair_id, order.order_flags, order.good_til_block) == (
        42,
        1,
        0,
        123470,
    )
    assert order.post_only is True
    assert order.price == Decimal("3100")
    assert isinstance(c.transfers, s.SubaccountTransfer)
    assert c.transfers.recipient.subaccount_number == 128
    assert c.transfers.size == Decimal("25.5")
    assert c.trading_reward is not None
    assert c.trading_reward.trading_reward == Decimal("0.000125")
    assert c.fills is None


def test_empty_subaccount_snapshot() -> None:
    msg = s.decode_stream_message(load("subaccounts_subscribed_empty.json"))
    assert isinstance(msg, s.SubaccountsSubscribed)
    assert msg.contents.subaccount is None
    assert msg.contents.orders == []


def test_unsubscribed_and_error() -> None:
    unsub = s.decode_stream_message(load("unsubscribed_markets.json"))
    assert unsub == s.Unsubscribed("0d3c5b8e-1f0a-4c1e-9a53-6f0b8f3c2a11", 11, s.Channel.MARKETS, None)
    err = s.decode_stream_message(load("error_subscription.json"))
    assert isinstance(err, s.StreamError)
    assert err.message.startswith("Invalid subscription id")
    assert err.channel is None


def test_key_order_does_not_matter() -> None:
    frame = json.loads(load("orderbook_channel_data.json"))
    reordered = json.dumps(dict(reversed(list(frame.items())))).encode()
    assert s.decode_stream_message(reordered) == s.decode_stream_message(load("orderbook_channel_data.json"))


def test_node_buffer_event_id() -> None:
    frame = {
        "type": "channel_data",
        "connection_id": "c",
        "message_id": 3,
        "id": "a/0",
        "channel": "v4_subaccounts",
        "version": "2.1.0",
        "contents": {
            "fills": [
                {
                    "id": "f",
                    "side": "BUY",
                    "size": "1",
                    "price": "2",
                    "eventId": {"type": "Buffer", "data": [0, 0, 238, 241, 0, 0, 0, 2, 0, 0, 0, 77]},
                },
                {"id": "g", "side": "SELL", "size": "1", "price": "2", "eventId": "0000eef1000000020000004d"},
            ]
        },
    }
    msg = s.decode_stream_message(json.dumps(frame).encode())
    assert isinstance(msg, s.SubaccountsUpdate)
    assert msg.contents.fills is not None
    assert [f.event_id_hex() for f in msg.contents.fills] == ["0000eef1000000020000004d"] * 2


# -- captured payloads ----------------------------------------------------------------------------

EXPECTED_SHARED = {
    "connected.json": s.Connected,
    "error.json": s.StreamError,
    "unsubscribed.json": s.Unsubscribed,
    "v4_orderbook.json": s.OrderbookUpdate,
    "v4_orderbook_batched_data.json": s.OrderbookBatch,
    "v4_orderbook_snapshot.json": s.OrderbookSubscribed,
    "v4_accounts_channel_data_transfers.json": s.SubaccountsUpdate,
    "v4_block_height_subscribed.json": s.BlockHeightSubscribed,
    "v4_block_height_channel_data.json": s.BlockHeightUpdate,
    "v4_candles.json": s.CandlesSubscribed,
    "v4_markets_subscribed.json": s.MarketsSubscribed,
    "ws_orderbook_update.json": s.OrderbookUpdate,
    "ws_markets_update.json": s.MarketsUpdate,
    "ws_v4_subaccounts_channel_data.json": s.SubaccountsUpdate,
    "ws_v4_trades_subscribed.json": s.TradesSubscribed,
}


def _captured(root: Path) -> list[Path]:
    return sorted(
        [
            *(root / "dydx-real" / "python-legacy" / "ws").glob("*.json"),
            *(root / "dydx-real" / "rust").glob("ws_*.json"),
            *(root / "dydx-upstream").glob("ws_*.json"),
        ]
    )


def test_every_captured_ws_payload_decodes(shared_fixtures: Path) -> None:
    paths = _captured(shared_fixtures)
    assert len(paths) >= 50, "the captured WS fixture set shrank"
    seen: set[str] = set()
    for path in paths:
        data = path.read_bytes()
        msg = s.decode_stream_message(data)
        raw = json.loads(data)
        assert msg.message_id == raw["message_id"], path.name  # type: ignore[union-attr]
        assert msg.connection_id == raw["connection_id"], path.name  # type: ignore[union-attr]
        if "channel" in raw and raw["type"] != "error":
            assert msg.channel.value == raw["channel"], path.name  # type: ignore[union-attr]
        if path.name in EXPECTED_SHARED:
            assert type(msg) is EXPECTED_SHARED[path.name], path.name
            seen.add(path.name)
    assert seen == set(EXPECTED_SHARED)


def test_captured_orderbook_snapshot_contents(shared_fixtures: Path) -> None:
    path = shared_fixtures / "dydx-real" / "python-legacy" / "ws" / "v4_orderbook_snapshot.json"
    raw = json.loads(path.read_bytes())
    msg = s.decode_stream_message(path.read_bytes())
    assert isinstance(msg, s.OrderbookSubscribed)
    assert [(lvl.price, lvl.size) for lvl in msg.contents.bids] == [
        (lvl["price"], lvl["size"]) for lvl in raw["contents"]["bids"]
    ]
    assert len(msg.contents.asks) == len(raw["contents"]["asks"])


def test_captured_old_shapes_are_tolerated(shared_fixtures: Path) -> None:
    up = shared_fixtures / "dydx-upstream"
    trades = s.decode_stream_message((up / "ws_v4_trades_subscribed.json").read_bytes())
    assert isinstance(trades, s.TradesSubscribed)
    assert all(t.id is None and t.type is None for t in trades.contents.trades)
    assert trades.contents.trades[0].created_at_height == 49592
    sub = s.decode_stream_message((up / "ws_v4_subaccounts_channel_data.json").read_bytes())
    assert isinstance(sub, s.SubaccountsUpdate)
    assert sub.contents.fills is not None
    assert sub.contents.fills[0].event_id_hex() == "0000eef1000000020000004d"
    assert sub.contents.orders is not None
    assert sub.contents.orders[0].client_id is None


# -- garbage --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"not json",
        b"[]",
        b"{}",
        b'{"type":"connected"}',
        b'{"type":"connected","connection_id":"c","message_id":"zero"}',
        b'{"type":"pong","connection_id":"c","message_id":1}',
        b'{"type":"subscribed","connection_id":"c","message_id":1,"channel":"v4_nope","contents":{}}',
        b'{"type":"subscribed","connection_id":"c","message_id":1,"channel":"v4_orderbook"}',
        b'{"type":"channel_data","connection_id":"c","message_id":1,"channel":"v4_orderbook","id":"X",'
        b'"version":"1","contents":{"bids":[["1",2]]}}',
        b'{"type":"channel_data","connection_id":"c","message_id":1,"channel":"v4_orderbook","id":"X",'
        b'"version":"1","contents":{"bids":[["1","2","3"]]}}',
        b'{"type":"channel_data","connection_id":"c","message_id":1,"channel":"v4_orderbook","id":"X",'
        b'"version":"1","contents":[{"bids":{"1":"2"}}]}',
        b'{"type":"subscribed","connection_id":"c","message_id":1,"channel":"v4_orderbook","id":"X",'
        b'"contents":{"bids":[["1","2"]]}}',
        b'{"type":"channel_data","connection_id":"c","message_id":1,"channel":"v4_trades","id":"X",'
        b'"version":"1","contents":{"trades":[{"side":"BUY","size":"x","price":"1","createdAt":"2024-01-01T00:00:00Z"}]}}',
        b'{"type":"unsubscribed","connection_id":"c","message_id":1,"channel":"v4_bogus"}',
        b'{"type":"error","connection_id":"c","message_id":1}',
        b'{"type":"channel_data","connection_id":"c","message_id":1,"channel":"v4_block_height",'
        b'"version":"1","contents":{"height":"1","time":"2024-01-01T00:00:00Z"}}',
    ],
)
def test_garbage_is_a_decode_error(frame: bytes) -> None:
    with pytest.raises(DecodeError) as info:
        s.decode_stream_message(frame)
    assert info.value.payload == frame[:512]


def test_decode_error_payload_is_the_head() -> None:
    frame = b"x" * 2000
    with pytest.raises(DecodeError) as info:
        s.decode_stream_message(frame)
    assert info.value.payload == frame[:512]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_escape_as_other_exceptions(frame: bytes) -> None:
    with contextlib.suppress(DecodeError):
        s.decode_stream_message(frame)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["bids", "asks"]), st.text(max_size=8), st.text(max_size=8)), max_size=6
    ),
    st.integers(min_value=0, max_value=2**40),
    st.booleans(),
)
def test_orderbook_updates_roundtrip(
    levels: list[tuple[str, str, str]], message_id: int, batched: bool
) -> None:
    contents = [{side: [[p, q]]} for side, p, q in levels]
    frame: dict[str, object] = {
        "type": "channel_batch_data" if batched else "channel_data",
        "connection_id": "c",
        "message_id": message_id,
        "id": "BTC-USD",
        "channel": "v4_orderbook",
        "version": "1.0.0",
        "contents": contents if batched else {"bids": [[p, q] for side, p, q in levels if side == "bids"]},
    }
    msg = s.decode_stream_message(json.dumps(frame).encode())
    assert msg.message_id == message_id  # type: ignore[union-attr]
    if batched:
        assert isinstance(msg, s.OrderbookBatch)
        assert [(c.bids, c.asks) for c in msg.contents] == [
            ([(p, q)], []) if side == "bids" else ([], [(p, q)]) for side, p, q in levels
        ]
    else:
        assert isinstance(msg, s.OrderbookUpdate)
        assert msg.contents.bids == [(p, q) for side, p, q in levels if side == "bids"]


def test_channel_limits() -> None:
    assert s.Channel.ORDERBOOK.limit == 32
    assert s.Channel.MARKETS.limit == 32
    assert s.Channel.SUBACCOUNTS.limit == 256
    assert s.Channel.PARENT_SUBACCOUNTS.limit == 256
    assert s.Channel.BLOCK_HEIGHT.limit == 1
    assert not s.Channel.MARKETS.requires_id
    assert s.Channel.CANDLES.requires_id
