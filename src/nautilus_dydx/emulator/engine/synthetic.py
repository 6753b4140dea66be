"""Synthetic traders that keep the emulated markets alive: market makers and takers.

Agents are ordinary subaccounts funded through :meth:`ChainEngine.deposit`; they trade through the
same :meth:`ChainEngine.place_order` a client's order takes, so every rule (validation, matching,
fees, collateral) applies to them. All randomness comes from one :class:`random.Random` seeded by the
caller, and agents only read engine state that is itself deterministic, so the same seed and the
same block sequence give the same event stream.

Short-term orders are off-chain (protocol reference §5.2, §5.9): on the real venue they, and the book
updates they cause, stream continuously between blocks. :meth:`SyntheticMarket.step` acts once per
block; :meth:`SyntheticMarket.flow` is the between-blocks part: each call re-quotes a few maker slots,
round-robin, so a fresh book subscriber sees updates long before the next block. Flow draws from its
own random generator, so the same seed and the same sequence of ``step``/``flow`` calls give the same
event stream, and a run that never calls ``flow`` is exactly what it was without it.
"""

from __future__ import annotations

import hashlib
import logging
import random
from dataclasses import dataclass

import bech32

from nautilus_dydx.emulator.engine.chain import ChainEngine
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.events import SHORT_TERM, MarketInfo, OrderKey, OrderSnapshot, Side, SubaccountRef

__all__ = ["SyntheticMarket", "synthetic_address"]

log = logging.getLogger(__name__)


def synthetic_address(label: str) -> str:
    """A valid ``dydx1...`` bech32 address derived from a label (no key exists for it)."""
    digest = hashlib.sha256(label.encode()).digest()[:20]
    words = bech32.convertbits(digest, 8, 5)
    assert words is not None
    return str(bech32.bech32_encode("dydx", words))


@dataclass(slots=True)
class _Slot:
    """One quote a maker keeps on the book: a (market, side, level) with its current order id."""

    clob_pair_id: int
    side: Side
    level: int
    base_client_id: int
    generation: int = 0
    flow_height: int = -1  # height of the last flow re-quote: at most one per slot and block

    def key(self, owner: str) -> OrderKey:
        return OrderKey(
            owner, 0, self.base_client_id + self.generation % 1_000, self.clob_pair_id, SHORT_TERM
        )


class SyntheticMarket:
    """Market makers quoting every market two-sided around the oracle, and takers hitting them.

    Call :meth:`step` once per block (the emulator app does it after each ``produce_block``) and,
    optionally, :meth:`flow` any number of times between blocks.

    Args:
        engine: the chain to trade on.
        seed: seeds every random choice of the agents.
        makers_per_market: number of market-maker subaccounts (each quotes every market).
        levels: price levels each maker quotes per side.
        takers: number of taker subaccounts.
        taker_every: a taker trades every this many blocks.
        refresh_every: makers re-quote every this many blocks (short-term orders, replaced in place).
        spread_ticks: distance of the first level from the oracle price, in ticks.
        level_gap_ticks: distance between levels, in ticks.
        max_level_steps: largest quote size, in steps of the market.
        maker_funding: USDC quantums deposited to each maker.
        taker_funding: USDC quantums deposited to each taker.
        flow_slots: maker slots re-quoted by each :meth:`flow` call.
    """

    def __init__(
        self,
        engine: ChainEngine,
        *,
        seed: int,
        makers_per_market: int = 2,
        levels: int = 5,
        takers: int = 2,
        taker_every: int = 3,
        refresh_every: int = 2,
        spread_ticks: int = 2,
        level_gap_ticks: int = 2,
        max_level_steps: int = 20,
        maker_funding: int = 10_000_000_000_000,
        taker_funding: int = 1_000_000_000_000,
        flow_slots: int = 4,
    ) -> None:
        if not 1 <= makers_per_market <= 6 or not 1 <= levels <= 100:
            raise ValueError("makers_per_market must be in 1..6 and levels in 1..100 (client-id space)")
        if refresh_every < 1 or taker_every < 1:
            raise ValueError("refresh_every and taker_every must be >= 1")
        if flow_slots < 0:
            raise ValueError("flow_slots must be >= 0")
        self._engine = engine
        self._rng = random.Random(seed)
        self.levels = levels
        self.taker_every = taker_every
        self.refresh_every = refresh_every
        self.spread_ticks = spread_ticks
        self.level_gap_ticks = level_gap_ticks
        self.max_level_steps = max_level_steps
        self.makers = [synthetic_address(f"synthetic-maker-{seed}-{i}") for i in range(makers_per_market)]
        self.takers = [synthetic_address(f"synthetic-taker-{seed}-{i}") for i in range(takers)]
        self._maker_funding = maker_funding
        self._taker_funding = taker_funding
        self._funded = False
        self._slots: dict[str, list[_Slot]] = {}
        self._taker_client_id = 0
        self._steps = 0
        self.flow_slots = flow_slots
        # A generator of its own: calling flow() leaves step()'s random draws unchanged.
        self._flow_rng = random.Random(f"synthetic-flow-{seed}")
        self._flow_order: list[tuple[str, _Slot]] = []
        self._flow_cursor = 0

    def _fund(self) -> None:
        for address in self.makers:
            self._engine.deposit(address, 0, self._maker_funding)
        for address in self.takers:
            self._engine.deposit(address, 0, self._taker_funding)
        for m, address in enumerate(self.makers):
            slots: list[_Slot] = []
            for clob_pair_id in sorted(self._engine.markets):
                sides: tuple[Side, Side] = ("BUY", "SELL")
                for s, side in enumerate(sides):
                    for level in range(self.levels):
                        # Disjoint client-id ranges of 1000 generations per slot (fixed32 ids).
                        base = ((m * 1_000 + clob_pair_id) * 2 + s) * 100 + level
                        slots.append(_Slot(clob_pair_id, side, level, base * 1_000))
            self._slots[address] = slots
        # Round-robin order of flow(): market innermost, so consecutive re-quotes touch every market.
        pairs = [(address, slot) for address in self.makers for slot in self._slots[address]]
        m_index = {address: i for i, address in enumerate(self.makers)}
        pairs.sort(key=lambda p: (p[1].level, p[1].side, m_index[p[0]], p[1].clob_pair_id))
        self._flow_order = pairs
        self._funded = True

    def step(self) -> None:
        """One block of agent activity: makers re-quote when due, a taker trades when due."""
        if not self._funded:
            self._fund()
        if self._steps % self.refresh_every == 0:
            for address in self.makers:
                for slot in self._slots[address]:
                    self._quote(address, slot, self._rng, self.refresh_every + 2)
        if self.takers and self._steps % self.taker_every == 0:
            self._take()
        self._steps += 1

    def flow(self) -> int:
        """Between-blocks activity: re-quote the next ``flow_slots`` maker slots (round-robin).

        A re-quote replaces the slot's resting short-term order, so its good-til-block must be
        strictly greater (§5.5): flow uses one block more than :meth:`step`, skips a slot whose resting
        GTB is already that high, and re-quotes a slot at most once per block, so GTBs stay a few
        blocks ahead; :meth:`step` in turn places above a flow re-quote's GTB.
        A quote that would cross another maker (post-only, 2003) is skipped rather than sent.
        Does nothing before the first :meth:`step`. Returns the number of orders placed.
        """
        if not self._funded or not self._flow_order or self.flow_slots == 0:
            return 0
        height = self._engine.height
        placed = 0
        for _ in range(len(self._flow_order)):
            if placed >= self.flow_slots:
                break
            owner, slot = self._flow_order[self._flow_cursor]
            self._flow_cursor = (self._flow_cursor + 1) % len(self._flow_order)
            if slot.flow_height == height:
                continue
            slot.flow_height = height
            if self._quote(owner, slot, self._flow_rng, self.refresh_every + 3, flow=True):
                placed += 1
        return placed

    def _quote(
        self, owner: str, slot: _Slot, rng: random.Random, gtb_ahead: int, *, flow: bool = False
    ) -> bool:
        engine = self._engine
        market = engine.markets[slot.clob_pair_id]
        oracle_ticks = int(engine.oracle_subticks(slot.clob_pair_id)) // market.subticks_per_tick
        distance = self.spread_ticks + slot.level * self.level_gap_ticks + rng.randint(0, 1)
        ticks = oracle_ticks - distance if slot.side == "BUY" else oracle_ticks + distance
        size = rng.randint(1, self.max_level_steps) * market.step_base_quantums
        if ticks <= 0:
            return False
        key = slot.key(owner)
        resting = engine.order(key)
        filled = engine.filled_amount(key) if resting is not None else 0
        if resting is None and engine.filled_amount(key):
            # The id is remembered (filled or cancelled) until its GTB passes: quote under a new id.
            slot.generation += 1
            key = slot.key(owner)
        good_til_block = engine.height + gtb_ahead
        if resting is not None and resting.good_til_block is not None:
            # Only after a flow re-quote can the resting GTB reach step's: without flow() this is a no-op.
            good_til_block = max(good_til_block, resting.good_til_block + 1)
        subticks = ticks * market.subticks_per_tick
        if flow:
            # Only re-quote a slot whose resting GTB is below flow's own: each re-quote must raise the
            # GTB, so re-quoting more often than once a block would push it ever further ahead.
            if good_til_block > min(engine.height + gtb_ahead, engine.height + engine.short_block_window):
                return False
            bids, asks = engine.book(slot.clob_pair_id)
            if slot.side == "BUY" and asks and subticks >= asks[0][0]:
                return False
            if slot.side == "SELL" and bids and subticks <= bids[0][0]:
                return False
        order = OrderSnapshot(
            key=key,
            side=slot.side,
            quantums=filled + size,
            subticks=subticks,
            good_til_block=good_til_block,
            good_til_block_time=None,
            time_in_force="POST_ONLY",
            reduce_only=False,
            client_metadata=0,
            condition_type="UNSPECIFIED",
            trigger_subticks=0,
        )
        try:
            engine.place_order(order)
        except EngineError as exc:
            if exc.code in (7, 20, 24, 30):
                slot.generation += 1
            log.debug("synthetic quote %s rejected: %s", key, exc)
            return False
        return True

    def _take(self) -> None:
        engine = self._engine
        owner = self._rng.choice(self.takers)
        clob_pair_id = self._rng.choice(sorted(engine.markets))
        market: MarketInfo = engine.markets[clob_pair_id]
        state = engine.subaccount(owner, 0)
        position = 0
        if state is not None:
            position = next((p.quantums for p in state.positions if p.clob_pair_id == clob_pair_id), 0)
        limit = 10 * self.max_level_steps * market.step_base_quantums
        if position > limit:
            side: Side = "SELL"
        elif position < -limit:
            side = "BUY"
        else:
            side = "BUY" if self._rng.random() < 0.5 else "SELL"
        oracle_ticks = int(engine.oracle_subticks(clob_pair_id)) // market.subticks_per_tick
        slippage = max(1, oracle_ticks // 50)
        ticks = oracle_ticks + slippage if side == "BUY" else max(1, oracle_ticks - slippage)
        self._taker_client_id += 1
        order = OrderSnapshot(
            key=OrderKey(owner, 0, self._taker_client_id, clob_pair_id, SHORT_TERM),
            side=side,
            quantums=self._rng.randint(1, self.max_level_steps) * market.step_base_quantums,
            subticks=ticks * market.subticks_per_tick,
            good_til_block=engine.height + 5,
            good_til_block_time=None,
            time_in_force="IOC",
            reduce_only=False,
            client_metadata=0,
            condition_type="UNSPECIFIED",
            trigger_subticks=0,
        )
        try:
            engine.place_order(order)
        except EngineError as exc:
            log.debug("synthetic take %s rejected: %s", order.key, exc)

    @property
    def agents(self) -> list[SubaccountRef]:
        """The agents' subaccounts (makers then takers)."""
        return [SubaccountRef(a, 0) for a in (*self.makers, *self.takers)]
