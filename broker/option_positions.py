"""Option positions through alpaca-py, paid for from the account's broker-call budget.

The stock gateway (broker/alpaca.py) leaves option positions out of `get_positions` on
purpose; reconcile reads them here: TradingClient.get_all_positions (one request, no paging),
kept when the asset class is `us_option` (or, should a broker leave the class out, when the
symbol is an OCC option symbol). `OptionPositionsGateway` is broker/options.py's
AlpacaOptionsGateway (same TradingClient, deadlines, rate-limit observer and error mapping
through broker/alpaca.py's mapped_call); `MeteredOptionPositions` takes a READ slot of the
shared BrokerBudget for each read, as every other read does (broker/metered.py).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from broker.metered import Metered
from broker.options import AlpacaOptionsGateway
from trading.broker_budget import Priority
from trading.options.chain import is_option_symbol
from trading.options.condor_pairing import OptionPosition

OPTION_POSITIONS_CALL = "option_positions"


def _text(value: Any) -> str:
    return str(getattr(value, "value", value) or "")


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def is_option_position(position: Any) -> bool:
    """An alpaca-py Position of an option contract."""
    asset_class = _text(getattr(position, "asset_class", None))
    if asset_class:
        return asset_class == "us_option"
    return is_option_symbol(str(getattr(position, "symbol", "")))


def to_option_position(position: Any) -> OptionPosition:
    """alpaca-py Position -> OptionPosition (qty negative for a short)."""
    qty = Decimal(str(position.qty))
    if _text(position.side) == "short" and qty > 0:
        qty = -qty
    return OptionPosition(
        symbol=position.symbol,
        qty=qty,
        avg_entry_price=abs(Decimal(str(position.avg_entry_price))),
        current_price=_dec(position.current_price),
    )


class OptionPositionsGateway(AlpacaOptionsGateway):
    """The account's option positions over alpaca-py."""

    def option_positions(self) -> list[OptionPosition]:
        """Every option position the account holds (stock positions left out)."""
        positions: Any = self._call("get_all_positions (options)", self._trading.get_all_positions)
        return [to_option_position(p) for p in positions if is_option_position(p)]


class MeteredOptionPositions(Metered[OptionPositionsGateway]):
    """OptionPositionsGateway's read, async, paid for from the account-wide budget first."""

    async def option_positions(self) -> list[OptionPosition]:
        """Every option position (one READ slot)."""
        return await self._call(
            Priority.READ, OPTION_POSITIONS_CALL, self._gateway.option_positions
        )
