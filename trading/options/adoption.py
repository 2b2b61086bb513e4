"""OptionTradeWorkflow's input for a condor reconcile adopts or restarts (pure).

trading/options/condor_pairing.py finds the held condors no row claims (`AdoptableCondor`) and
trading/options/positions.py the open rows whose legs are all held (`HeldOptionTrade`); this
module turns them into the input of a new OptionTradeWorkflow run: `adoption_input` starts an
adopted condor already OPEN at the credit it was opened for, origin external; `restart_input`
starts a new run of a held trade whose workflow ended, OPEN at the row's credit (CLOSING under
its exit reason), its origin.

Both run by the default exit rules (trading/options/exits.py), except one: a condor already at
or inside the DTE threshold (days to expiry <= close_at_dte, 21 by default) - a weekly opened
outside, a trade restarted late - gets close_at_dte=0 (`adopted_exit_rules`). Under the
default it would be closed on its first check at the natural debit, for no reason but its
age; it still closes on the last session before expiry (`before_expiry`) and at its take
profit or stop. Nothing here does I/O.
"""

from __future__ import annotations

from decimal import Decimal

from trading.ledger_records import TradeOrigin
from trading.options.chain import CONTRACT_MULTIPLIER, OptionContractQuote, parse_occ_symbol
from trading.options.condor import CondorPlan
from trading.options.condor_pairing import AdoptableCondor, OptionPosition
from trading.options.exits import CondorExitRules
from trading.options.positions import HeldOptionTrade
from trading.options.trade_models import (
    OptionTradeInput,
    OptionTradeSpec,
    OptionTradeState,
    OptionTradeStatus,
)

_ZERO = Decimal(0)

# The exit reason a CLOSING row restarted without one closes under.
RESTARTED_CLOSE = "restarted_close"


# --- adopting ------------------------------------------------------------------------------


def _quote(position: OptionPosition) -> OptionContractQuote:
    """A plan leg from a held position: bid = ask = mid = its current price (entry if none)."""
    occ = parse_occ_symbol(position.symbol)
    price = position.current_price
    if price is None:
        price = position.avg_entry_price
    return OptionContractQuote(
        symbol=position.symbol,
        underlying=occ.underlying,
        expiry=occ.expiry,
        right=occ.right,
        strike=occ.strike,
        bid=price,
        ask=price,
        mid=price,
    )


def adopted_condor_plan(condor: AdoptableCondor) -> CondorPlan:
    """The CondorPlan of a held condor: legs at their current prices, numbers at its credit.

    The credit fields are the credit it was opened for (from the entry prices), so the max
    loss and break-evens are those of the position held. The probabilities are placeholders
    (0): the positions carry no greeks, and nothing downstream of an open trade reads them.
    """
    per_unit = Decimal(CONTRACT_MULTIPLIER * condor.qty)
    credit, width = condor.credit, condor.width
    short_put, short_call = _quote(condor.short_put), _quote(condor.short_call)
    return CondorPlan(
        underlying=condor.underlying,
        expiry=condor.expiry,
        dte=condor.dte,
        qty=condor.qty,
        width=width,
        short_put=short_put,
        long_put=_quote(condor.long_put),
        short_call=short_call,
        long_call=_quote(condor.long_call),
        credit_mid=credit,
        credit_natural=credit,
        credit=credit * per_unit,
        credit_natural_usd=credit * per_unit,
        max_loss=(width - credit) * per_unit,
        max_loss_natural=(width - credit) * per_unit,
        credit_to_width=credit / width,
        break_even_low=short_put.strike - credit,
        break_even_high=short_call.strike + credit,
        probability_of_profit=_ZERO,
        probability_of_max_loss=_ZERO,
        detail=(
            f"adopted {condor.underlying} {condor.expiry} {condor.strikes} x{condor.qty}: "
            f"opened elsewhere for a credit of {credit}; probabilities not known (no greeks)"
        ),
    )


def adopted_exit_rules(dte: int, rules: CondorExitRules | None = None) -> CondorExitRules:
    """The exit rules of a condor taken over at `dte` days to expiry: the rules (default
    ones when None), with close_at_dte=0 when dte is at or below it (see the module)."""
    rules = rules or CondorExitRules()
    if dte <= rules.close_at_dte:
        return rules.model_copy(update={"close_at_dte": 0})
    return rules


def adoption_input(
    condor: AdoptableCondor, rules: CondorExitRules | None = None
) -> OptionTradeInput:
    """OptionTradeWorkflow's input for a held condor: already OPEN at its credit, external,
    under `adopted_exit_rules`."""
    spec = OptionTradeSpec(
        trade_id=condor.trade_id,
        plan=adopted_condor_plan(condor),
        qty=condor.qty,
        limit_credit=condor.credit,
        rules=adopted_exit_rules(condor.dte, rules),
        origin=TradeOrigin.EXTERNAL,
    )
    state = OptionTradeState(
        status=OptionTradeStatus.OPEN,
        credit=condor.credit,
        note=f"adopted by reconcile: {condor.strikes} x{condor.qty} held at the broker",
    )
    return OptionTradeInput(spec=spec, state=state)


# --- restarting held trades whose workflow ended --------------------------------------------


def restart_input(
    held: HeldOptionTrade, workflow_status: str, rules: CondorExitRules | None = None
) -> OptionTradeInput:
    """A new run's input for a held trade whose workflow ended: OPEN at its credit, its origin.

    A CLOSING row resumes CLOSING under its exit reason (the close was decided; a restart OPEN
    would write a row behind the ledger's, which never moves back). An entry filled unseen
    (PENDING_ENTRY) starts OPEN at the credit of the positions' entry prices. The exit rules
    and intervals are the defaults (the row does not keep the first run's), as
    `adopted_exit_rules` adjusts them to the days left.
    """
    condor = held.condor
    adopted = adoption_input(condor, rules)
    detail = (
        f"restarted {condor.underlying} {condor.expiry} {condor.strikes} x{condor.qty} at a "
        f"credit of {condor.credit}: its workflow {workflow_status}, every leg held"
    )
    spec = adopted.spec.model_copy(
        update={
            "origin": held.origin,
            "plan": adopted.spec.plan.model_copy(update={"detail": detail}),
        }
    )
    closing = held.status is OptionTradeStatus.CLOSING
    state = OptionTradeState(
        status=OptionTradeStatus.CLOSING if closing else OptionTradeStatus.OPEN,
        credit=condor.credit,
        exit_reason=(held.exit_reason or RESTARTED_CLOSE) if closing else None,
        note=f"restarted by reconcile (row {held.status.value}, workflow {workflow_status})",
    )
    # The ended run may have left a closing order working: the new run takes it over.
    return OptionTradeInput(spec=spec, state=state, resume_orders=True)
