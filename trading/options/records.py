"""What the ledger holds of an option trade, and the pure rule that turns a workflow's state
into the row it writes (one write per status change; see ledger/option_trades.py).

Max loss is dollars for the whole position and is what the risk engine counts: a condor
cannot lose more than its wider spread's width less the credit, x100 x qty. Before the entry
fills it is counted at the worst credit the walk may accept, so the heat never understates
an order still working.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from pydantic import Field

from trading.ledger_records import TradeOrigin
from trading.models import Frozen
from trading.options.chain import CONTRACT_MULTIPLIER
from trading.options.trade_models import (
    OptionLeg,
    OptionTradeSpec,
    OptionTradeState,
    OptionTradeStatus,
    entry_credit,
    opening_legs,
    units_open,
)

IRON_CONDOR = "iron_condor"
_RANK = {
    OptionTradeStatus.PENDING_ENTRY: 0,
    OptionTradeStatus.OPEN: 1,
    OptionTradeStatus.CLOSING: 2,
    OptionTradeStatus.CLOSED: 3,
    OptionTradeStatus.ENTRY_FAILED: 3,
}


def status_rank(status: OptionTradeStatus) -> int:
    """Statuses in the order a trade moves through them (both ends share the last rank)."""
    return _RANK[status]


class OptionTradeWrite(Frozen):
    """One write of an option trade's row: its identity, where it is, and its numbers."""

    trade_id: str
    underlying: str
    strategy: str = IRON_CONDOR
    origin: TradeOrigin = TradeOrigin.INTERNAL
    status: OptionTradeStatus
    expiry: date
    qty: int = Field(ge=1)
    legs: list[OptionLeg]
    width: Decimal
    credit: Decimal | None = None
    max_loss: Decimal = Field(ge=0)
    exit_debit: Decimal | None = None
    exit_reason: str | None = None
    realized_pnl: Decimal | None = None
    note: str = ""
    workflow_id: str
    at: datetime  # when the workflow saw this status (workflow time)


class OptionTradeRecord(Frozen):
    """An option trade's ledger row."""

    id: str
    underlying: str
    strategy: str
    origin: TradeOrigin
    status: OptionTradeStatus
    expiry: date
    qty: int
    legs: list[OptionLeg]
    width: Decimal
    credit: Decimal | None = None
    max_loss: Decimal
    exit_debit: Decimal | None = None
    exit_reason: str | None = None
    realized_pnl: Decimal | None = None
    note: str = ""
    workflow_id: str
    opened_at: datetime | None = None
    closed_at: datetime | None = None
    status_at: datetime
    created_at: datetime
    updated_at: datetime

    @property
    def is_open(self) -> bool:
        """Not yet closed (entering, open or closing): its max loss counts as heat."""
        return self.closed_at is None


class OptionTradeWriteResult(Frozen):
    """The row after a write, and whether the write changed it."""

    trade: OptionTradeRecord
    applied: bool


class OptionTradesQuery(Frozen):
    """Option trades, newest first: only open ones, or the latest `limit` of every status."""

    open_only: bool = False
    limit: int = Field(default=50, ge=1, le=1000)


class OptionTrades(Frozen):
    """A list of option trade rows."""

    trades: list[OptionTradeRecord] = Field(default_factory=list)


class OptionTradeGhost(Frozen):
    """Close a ledger row whose legs the broker no longer holds and no workflow runs."""

    trade_id: str
    reason: str
    at: datetime


def max_loss_usd(
    spec: OptionTradeSpec, credit: Decimal | None, units: int | None = None
) -> Decimal:
    """(width - credit) x100 x units (default the spec's qty); before a fill, at the least
    credit the walk accepts."""
    if credit is None:
        credit = entry_credit(spec, _last_walk_step(spec)) or Decimal(0)
    size = spec.qty if units is None else units
    return max(spec.plan.width - credit, Decimal(0)) * CONTRACT_MULTIPLIER * size


def options_requirement_usd(spec: OptionTradeSpec) -> Decimal:
    """What opening the condor holds back from the options buying power, the stricter reading
    of what Alpaca shows (its forum, "Need clarity on margins while going short option
    spreads": a $200-risk credit spread took $984.55 of options buying power while cash rose
    $155): the wider width x100 x qty, plus the short legs' value at their mids, and the
    credit received adds nothing."""
    plan = spec.plan
    shorts = plan.short_put.mid + plan.short_call.mid
    return (plan.width + shorts) * CONTRACT_MULTIPLIER * spec.qty


def _last_walk_step(spec: OptionTradeSpec) -> int:
    return int(spec.max_walk / spec.walk_step) if spec.walk_step > 0 else 0


def option_trade_write(
    spec: OptionTradeSpec, state: OptionTradeState, workflow_id: str, at: datetime
) -> OptionTradeWrite:
    """The row the workflow writes for its state now: while the trade lives, qty and max loss
    are the units still open (the spec's until the entry fills; a partial close takes its
    units off, so reconcile expects what is really held); once it has ended, the units it
    opened."""
    units = units_open(spec, state)
    opened = state.closed_qty + units
    ended = state.status.is_terminal
    return OptionTradeWrite(
        trade_id=spec.trade_id,
        underlying=spec.plan.underlying,
        origin=spec.origin,
        status=state.status,
        expiry=spec.plan.expiry,
        qty=opened if ended else units,
        legs=opening_legs(spec.plan),
        width=spec.plan.width,
        credit=state.credit,
        max_loss=max_loss_usd(spec, state.credit, opened if ended else units),
        exit_debit=state.exit_debit,
        exit_reason=state.exit_reason,
        realized_pnl=state.realized_pnl,
        note=state.note[:500],
        workflow_id=workflow_id,
        at=at,
    )
