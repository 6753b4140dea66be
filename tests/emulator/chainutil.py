"""The chain engine under test: started at a fixed time, every event recorded, orders built with defaults."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from tests.emulator.orders import order_snapshot

from nautilus_dydx.emulator.engine import ChainEngine, EngineError
from nautilus_dydx.emulator.events import (
    SHORT_TERM,
    ChainEvent,
    FillCommitted,
    OrderKey,
    OrderRemoved,
    OrderSnapshot,
)

START = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
BTC = 0
TICK = 100_000  # BTC-USD subticks per tick (1 USD)
STEP = 1_000_000  # BTC-USD step base quantums (0.0001 BTC)
PRICE = 50_000 * TICK  # 50 000 USD in subticks
FUNDS = 100_000_000_000  # 100 000 USDC


class Chain:
    """An engine with a recording sink and order helpers.

    ``short_term_blocks`` is how many blocks ahead a short-term order is good til when the test does
    not say; every other keyword goes to ``ChainEngine``.
    """

    def __init__(self, *, short_term_blocks: int = 10, **kwargs: Any) -> None:
        kwargs.setdefault("start_time", START)
        kwargs.setdefault("oracle_step_ppm", 0)
        self.engine = ChainEngine(**kwargs)
        self.events: list[ChainEvent] = []
        self.engine.add_sink(self.events.append)
        self.engine.start()
        if BTC in self.engine.markets:
            # 50 000 USD from the first block on, so that test prices sit at the oracle.
            self.engine.set_oracle_price(BTC, 5_000_000_000)
        self.short_term_blocks = short_term_blocks
        self._client_id = 0

    def fund(self, *owners: str, amount: int = FUNDS) -> None:
        for owner in owners:
            self.engine.deposit(owner, 0, amount)

    def order(
        self,
        owner: str,
        side: str = "BUY",
        quantums: int = STEP,
        subticks: int = PRICE,
        *,
        flags: int = SHORT_TERM,
        gtb: int | None = None,
        gtbt: int | None = None,
        client_id: int | None = None,
        **fields: Any,
    ) -> OrderSnapshot:
        """A new client id unless told; a short-term order carries only a block, the others only a time.

        ``fields`` are the other keywords of ``order_snapshot`` (``tif``, ``reduce_only``, ``clob``, ...).
        """
        if client_id is None:
            self._client_id += 1
            client_id = self._client_id
        if flags == SHORT_TERM:
            gtb, gtbt = (gtb if gtb is not None else self.engine.height + self.short_term_blocks), None
        else:
            gtb, gtbt = None, (gtbt if gtbt is not None else int(self.engine.block_time.timestamp()) + 3600)
        return order_snapshot(
            owner, client_id, side, quantums, subticks, flags=flags, gtb=gtb, gtbt=gtbt, **fields
        )

    def place(self, *args: Any, **kwargs: Any) -> OrderSnapshot:
        order = self.order(*args, **kwargs)
        self.engine.place_order(order)
        return order

    def take(self) -> list[ChainEvent]:
        """The events recorded so far, forgotten here."""
        out, self.events[:] = list(self.events), []
        return out

    def fills(self) -> list[FillCommitted]:
        return [e for e in self.events if isinstance(e, FillCommitted)]

    def removed(self, key: OrderKey) -> list[OrderRemoved]:
        return [e for e in self.events if isinstance(e, OrderRemoved) and e.key == key]

    def position(self, owner: str, clob: int = BTC) -> int:
        state = self.engine.subaccount(owner, 0)
        assert state is not None
        return next((p.quantums for p in state.positions if p.clob_pair_id == clob), 0)


def expect(code: int, call: Any, *args: Any, **kwargs: Any) -> EngineError:
    """Call ``call`` and check that the engine refuses it with clob error ``code``."""
    with pytest.raises(EngineError) as info:
        call(*args, **kwargs)
    assert (info.value.codespace, info.value.code) == ("clob", code), info.value.raw_log
    return info.value
