"""`trade status/list/exit` for option trades (OptionTradeWorkflow, `option-trade-<id>`).

A trade id names either a stock trade (`trade-<id>`) or an option trade; the `trade`
commands look for the stock trade first and fall back here. Reads come from the workflow
(status: legs, credit, mark, P&L and the next rule) and from the ledger (list).
"""

from __future__ import annotations

from datetime import UTC
from typing import Any

from clients import make_pool
from ledger.option_trades import OptionTrades
from settings import Settings
from trading.options.records import OptionTradeRecord, OptionTradesQuery
from trading.options.trade_models import OptionTradeView


def status_rows(view: OptionTradeView, ui_link: str) -> list[tuple[str, str]]:
    """The human lines of `trade status` for an option trade."""
    state, decision = view.state, view.state.decision
    dash = "-"
    return [
        ("trade", view.trade_id),
        ("structure", f"{view.underlying} iron condor"),
        ("status", view.status.value),
        ("legs", ", ".join(f"{leg.side.value} {leg.symbol}" for leg in view.legs)),
        ("credit", dash if state.credit is None else f"{state.credit} per share"),
        ("mark", dash if state.mark is None else f"{state.mark} per share at {state.marked_at}"),
        ("open P&L", dash if decision is None else f"{decision.pnl_usd} USD"),
        ("realized P&L", dash if state.realized_pnl is None else f"{state.realized_pnl} USD"),
        ("next rule", (decision.next_rule or dash) if decision else dash),
        ("exit reason", state.exit_reason or dash),
        ("note", state.note or dash),
        ("web UI", ui_link),
    ]


def list_item(row: OptionTradeRecord) -> dict[str, Any]:
    """One option trade as `trade list` shows it (JSON and table share it)."""
    return {
        "trade_id": row.id,
        "kind": row.strategy,
        "workflow_id": row.workflow_id,
        "symbol": row.underlying,
        "status": row.status.value,
        "origin": row.origin.value,
        "expiry": row.expiry.isoformat(),
        "qty": row.qty,
        "credit": None if row.credit is None else str(row.credit),
        "max_loss": str(row.max_loss),
        "realized_pnl": None if row.realized_pnl is None else str(row.realized_pnl),
        "exit_reason": row.exit_reason,
        "running": row.closed_at is None,
        "started_at": row.created_at.astimezone(UTC).isoformat(),
    }


async def option_listing(settings: Settings, limit: int) -> list[dict[str, Any]]:
    """The latest option trades from the ledger, newest first."""
    pool = await make_pool(settings, min_size=1, max_size=1)
    try:
        found = await OptionTrades(pool).list(OptionTradesQuery(limit=limit))
    finally:
        await pool.close()
    return [list_item(row) for row in found.trades]
