"""OptionPositionActivities: the option legs an account holds, as a Temporal activity.

OptionTradeWorkflow asks before every close (trading/options/legs.py says why). One read of
the account's option positions (broker/option_positions.py), one READ slot of the shared
broker budget.
"""

from __future__ import annotations

from decimal import Decimal

from temporalio import activity

from activities.broker import as_application_error
from broker.errors import BrokerError
from broker.option_positions import MeteredOptionPositions
from trading.options.legs import LegsHeld, LegsHeldRequest


class OptionPositionActivities:
    """Reads of option positions for the option trades."""

    def __init__(self, positions: MeteredOptionPositions) -> None:
        self._positions = positions

    @activity.defn
    async def option_legs_held(self, request: LegsHeldRequest) -> LegsHeld:
        """Signed contracts held of each asked symbol (0 when not held)."""
        try:
            positions = await self._positions.option_positions()
        except BrokerError as exc:
            raise as_application_error(exc) from None
        by_symbol = {p.symbol: p.qty for p in positions}
        return LegsHeld(held={s: by_symbol.get(s, Decimal(0)) for s in request.symbols})
