"""The emulator's chain engine: blocks, markets, oracle, accounts, matching, fees, funding.

It imports nothing of the client package: the emulator is the test oracle (see DESIGN.md).
"""

from __future__ import annotations

from nautilus_dydx.emulator.engine.accounts import Account, SubaccountState
from nautilus_dydx.emulator.engine.chain import ChainEngine, event_id
from nautilus_dydx.emulator.engine.errors import EngineError
from nautilus_dydx.emulator.engine.synthetic import SyntheticMarket

__all__ = ["Account", "ChainEngine", "EngineError", "SubaccountState", "SyntheticMarket", "event_id"]
