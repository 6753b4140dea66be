"""The emulated validator: transaction checks and the gRPC services a trading client uses.

:mod:`.tx` decodes a broadcast transaction and applies the ante rules (signature, replay, message
mix), :mod:`.messages` maps its messages to the chain engine, :mod:`.txservice` serves
``cosmos.tx.v1beta1.Service`` (BroadcastTx, Simulate, GetTx). Like the rest of the emulator, this
package imports nothing of the client package.
"""

from __future__ import annotations

from nautilus_dydx.emulator.validator.txservice import TxFaults, TxServicer

__all__ = ["TxFaults", "TxServicer"]
