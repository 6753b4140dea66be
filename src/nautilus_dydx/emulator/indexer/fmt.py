"""Number, time and id formatting of the emulated indexer.

Written independently of the client package on purpose (the emulator is the test oracle).
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Context, Decimal, localcontext

__all__ = [
    "NAMESPACE",
    "candle_start",
    "dec",
    "fill_uuid",
    "from_iso",
    "iso",
    "order_uuid",
    "position_uuid",
    "scaled",
    "subaccount_uuid",
    "transfer_uuid",
]

NAMESPACE = uuid.UUID("0f9da948-a6fb-4c45-9edc-4685c3f3317d")
# Enough digits for 1e-18 resolution on values in the trillions: scaling is always exact.
_CTX = Context(prec=60)
_ZERO = Decimal(0)

RESOLUTIONS: dict[str, int] = {
    "1MIN": 60,
    "5MINS": 300,
    "15MINS": 900,
    "30MINS": 1800,
    "1HOUR": 3600,
    "4HOURS": 14400,
    "1DAY": 86400,
}


def scaled(value: int, exponent: int) -> Decimal:
    """``value * 10**exponent`` exactly."""
    return Decimal(value).scaleb(exponent, _CTX)


def dec(value: Decimal) -> str:
    """Canonical plain decimal string: no exponent, no trailing zeros, zero is ``0``."""
    if value.is_zero():
        return "0"
    with localcontext(_CTX):
        return format(value.normalize(), "f")


def iso(moment: dt.datetime) -> str:
    """ISO-8601 UTC with milliseconds and ``Z``, as the indexer writes timestamps."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def from_iso(text: str) -> dt.datetime:
    """Parse an ISO-8601 timestamp (``Z`` or offset); naive values are taken as UTC."""
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    return value


def candle_start(moment: dt.datetime, seconds: int) -> dt.datetime:
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % seconds, dt.UTC)


def subaccount_uuid(address: str, number: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{address}-{number}"))


def order_uuid(subaccount_id: str, client_id: int, clob_pair_id: int, order_flags: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subaccount_id}-{client_id}-{clob_pair_id}-{order_flags}"))


def fill_uuid(event_id_hex: str, liquidity: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{event_id_hex}-{liquidity}"))


def position_uuid(subaccount_id: str, open_event_id_hex: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subaccount_id}-{open_event_id_hex}"))


def asset_position_uuid(subaccount_id: str, asset_id: int) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subaccount_id}-{asset_id}"))


def transfer_uuid(
    sender_subaccount: str | None,
    recipient_subaccount: str | None,
    sender_wallet: str | None,
    recipient_wallet: str | None,
    event_id_hex: str,
    asset_id: int,
) -> str:
    # The indexer builds this name with JS template strings, so missing parts read "undefined".
    parts = [sender_subaccount, recipient_subaccount, sender_wallet, recipient_wallet]
    name = "-".join("undefined" if p is None else p for p in parts)
    return str(uuid.uuid5(NAMESPACE, f"{name}-{event_id_hex}-{asset_id}"))


def zero() -> Decimal:
    return _ZERO
