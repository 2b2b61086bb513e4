"""Exercise and expiry of option positions: the contracts go, the underlying moves at the strike.

`OptionsExercise` applies options_expiry.py's pure exercise / assignment / expiry actions to the
desk's positions, the stock book and cash, records them as non-trade activities, and ends the
open orders on contracts that are gone.

Sources (the stricter reading where they differ):
* alpaca-py 0.44 ``TradingClient.exercise_options_position``: "Exercise requests submitted
  outside market hours will be rejected"; all held contracts are exercised.
* Alpaca "Non-Trade Activities for Option Events" (see options_expiry.py): exercise (OPEXC),
  assignment (OPASN) and expiry (OPEXP).
* Alpaca support "What is automatic exercise" (see options_expiry.py): an ITM long put is
  exercised at expiry only for the contracts the account's available long shares deliver; the
  rest get a do-not-exercise and are recorded as expired (OPEXP), never as short stock.
Messages Alpaca's docs do not spell out are this broker's own.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from paperbroker.assets import asset_id_for
from paperbroker.errors import CODE_INVALID, position_not_found, unprocessable
from paperbroker.models import PositionRecord, Side, after_fill
from paperbroker.options_expiry import Holding, exercise, expiry_actions, parse_contract
from paperbroker.options_margin import OptionsActivity, OptionsMargin

if TYPE_CHECKING:
    from paperbroker.calendar import Session

OUTCOME_ACTIVITY = {"exercise": "OPEXC", "assignment": "OPASN", "expire": "OPEXP"}


class OptionsExercise(OptionsMargin):
    """Exercise on request and settlement at expiry of the desk's option positions."""

    def exercise(self, symbol_or_id: str) -> None:
        """Exercise every held contract of a long position now (market hours only)."""
        now = self.broker.sync()
        symbol = self.resolve(symbol_or_id)
        held = self.position_qty(symbol)
        contract = parse_contract(symbol)
        if held == 0 or contract is None:
            raise position_not_found()
        if held < 0:
            raise unprocessable("only long option positions can be exercised", CODE_INVALID)
        if not self.broker.calendar.is_open(now):
            raise unprocessable("exercise requests are accepted during market hours only")
        self._apply([exercise(Holding(contract=contract, contracts=held))], now)

    def on_close(self, session: Session, when: datetime) -> None:
        """Settle every contract expiring on `session.day` (or before) at its close."""
        due = [h for h in self._holdings() if h.contract.expiry <= session.day]
        if not due:
            return
        spots = {
            h.contract.underlying: self.broker.prices.quote(h.contract.underlying, when).mid
            for h in due
        }
        self._apply(expiry_actions(due, spots, self._shares_available()), when)

    def _shares_available(self) -> dict[str, Decimal]:
        """Return long shares a put exercise may deliver, per underlying (options_expiry.py).

        Shares covering short calls (`shares_covering_calls`) or held by open sell orders are
        not available (Alpaca "What is automatic exercise": shares securing a covered call
        "would not be considered available to sell").
        """
        book = self.broker.book
        available: dict[str, Decimal] = {}
        for symbol, position in book.positions.items():
            free = position.qty - self.shares_covering_calls(symbol)
            free -= book.held_for_orders(symbol, Side.SELL)
            if free > 0:
                available[symbol] = free
        return available

    def _apply(self, actions: list[Any], when: datetime) -> None:
        book = self.broker.book
        for action in actions:
            self.positions.pop(action.symbol, None)
            kind = OUTCOME_ACTIVITY[action.outcome.value]
            self.activities.append(OptionsActivity(kind, action.symbol, -action.contracts, when))
            if action.shares == 0:
                continue
            _move_shares(book.positions, action.underlying, action.shares, action.strike)
            book.account.cash += action.cash
            self.activities.append(
                OptionsActivity(
                    "OPTRD", action.underlying, action.shares, when, action.cash, action.strike
                )
            )
        gone = {action.symbol for action in actions}
        for order in book.open_orders():
            # Orders on a contract that is gone can no longer execute: they end with it.
            if (
                order.asset_class == "us_option"
                and order.parent_id is None
                and any(leg.symbol in gone for leg in self.legs_of(order))
            ):
                self.broker.matcher.cancel_group(order, when)


def _move_shares(
    positions: dict[str, PositionRecord], symbol: str, signed: Decimal, price: Decimal
) -> None:
    """Move a stock position by `signed` shares at `price` (exercise and assignment)."""
    position = positions.get(symbol)
    if position is None:
        positions[symbol] = PositionRecord(
            symbol=symbol, asset_id=asset_id_for(symbol), qty=signed, avg_entry_price=price
        )
        return
    qty, avg = after_fill(position.qty, position.avg_entry_price, signed, price)
    if qty == 0:
        del positions[symbol]
    else:
        position.qty, position.avg_entry_price = qty, avg
