"""One builder for the engine's ``OrderSnapshot``, so a test names only what its order is about."""

from __future__ import annotations

from nautilus_dydx.emulator.events import OrderKey, OrderSnapshot


def order_snapshot(
    owner: str,
    client_id: int,
    side: str,
    quantums: int,
    subticks: int,
    *,
    clob: int = 0,
    flags: int = 0,
    number: int = 0,
    gtb: int | None = None,
    gtbt: int | None = None,
    tif: str = "GTT",
    reduce_only: bool = False,
    client_metadata: int = 0,
    condition: str = "UNSPECIFIED",
    trigger: int = 0,
) -> OrderSnapshot:
    """An order of subaccount ``number`` of ``owner``; short-term (flags 0) on BTC-USD unless told."""
    return OrderSnapshot(
        key=OrderKey(owner, number, client_id, clob, flags),
        side=side,  # type: ignore[arg-type]
        quantums=quantums,
        subticks=subticks,
        good_til_block=gtb,
        good_til_block_time=gtbt,
        time_in_force=tif,  # type: ignore[arg-type]
        reduce_only=reduce_only,
        client_metadata=client_metadata,
        condition_type=condition,  # type: ignore[arg-type]
        trigger_subticks=trigger,
    )
