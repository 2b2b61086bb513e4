"""LedgerActivities: ledger reads and idempotent writes, as Temporal activities.

Every write is safe to retry: repeating it (same input) changes nothing and returns the
stored row. A write that names a trade or run the ledger does not hold fails
non-retryably (type LedgerRecordMissing), since retrying cannot make the row appear.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.audit import AuditLog
from ledger.orders import Orders
from ledger.risk import RiskEvents
from ledger.runs import EntryRuns, ReconcileRuns
from ledger.signals import Signals
from ledger.trades import Trades
from trading.ledger_records import (
    EntryRunCreate,
    EntryRunWriteResult,
    ExpiredSignals,
    LedgerRecordMissing,
    OpenTrades,
    OpenTradesQuery,
    OrderUpsert,
    OrderWriteResult,
    ReconcileRunFinish,
    ReconcileRunStart,
    ReconcileRunWriteResult,
    RiskEventCreate,
    RiskEventWriteResult,
    SignalCreate,
    SignalExpiry,
    SignalFunnel,
    SignalFunnelQuery,
    SignalWriteResult,
    TradeClose,
    TradeCreate,
    TradeEntryFill,
    TradeExitIntent,
    TradeProtection,
    TradeTransition,
    TradeWriteResult,
)
from trading.models import AuditEntry, AuditLookup, AuditRow


@contextmanager
def _missing_is_final() -> Iterator[None]:
    """Turn LedgerRecordMissing into a non-retryable activity failure of the same type name."""
    try:
        yield
    except LedgerRecordMissing as exc:
        raise ApplicationError(
            str(exc), type=LedgerRecordMissing.__name__, non_retryable=True
        ) from exc


def _outcome(applied: bool) -> str:
    return "applied" if applied else "unchanged"


class LedgerActivities:
    """Activities over the ledger's asyncpg pool."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._audit = AuditLog(pool)
        self._trades = Trades(pool)
        self._orders = Orders(pool)
        self._signals = Signals(pool)
        self._risk_events = RiskEvents(pool)
        self._reconcile_runs = ReconcileRuns(pool)
        self._entry_runs = EntryRuns(pool)

    # --- audit ---------------------------------------------------------------------------

    @activity.defn
    async def append_audit(self, entry: AuditEntry) -> AuditRow:
        """Append an audit record (idempotent by event_key)."""
        row = await self._audit.append(entry)
        activity.logger.info(
            "audit %s by %s (trade %s) -> row %s", entry.action, entry.actor, entry.trade_id, row.id
        )
        return row

    @activity.defn
    async def get_audit(self, lookup: AuditLookup) -> AuditRow | None:
        """Read one audit record back."""
        return await self._audit.get(lookup.id)

    # --- trades --------------------------------------------------------------------------

    @activity.defn
    async def create_trade(self, cmd: TradeCreate) -> TradeWriteResult:
        """Create a trade (idempotent by trade id)."""
        result = await self._trades.create(cmd)
        activity.logger.info(
            "trade %s create %s %s: %s",
            cmd.trade_id,
            cmd.symbol,
            result.trade.status,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def transition_trade(self, cmd: TradeTransition) -> TradeWriteResult:
        """Move a live trade to a new status; stale transitions and closed trades are left."""
        with _missing_is_final():
            result = await self._trades.transition(cmd)
        activity.logger.info(
            "trade %s -> %s: %s (now %s)",
            cmd.trade_id,
            cmd.status,
            _outcome(result.applied),
            result.trade.status,
        )
        return result

    @activity.defn
    async def record_entry_fill(self, cmd: TradeEntryFill) -> TradeWriteResult:
        """Record a trade's cumulative entry fill."""
        with _missing_is_final():
            result = await self._trades.record_entry_fill(cmd)
        activity.logger.info(
            "trade %s entry fill %s @ %s: %s",
            cmd.trade_id,
            cmd.qty,
            cmd.avg_price,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def record_protection(self, cmd: TradeProtection) -> TradeWriteResult:
        """Record the stop (and take-profit) order protecting a trade."""
        with _missing_is_final():
            result = await self._trades.record_protection(cmd)
        activity.logger.info(
            "trade %s protection stop %s order %s, take-profit order %s: %s",
            cmd.trade_id,
            cmd.stop_price,
            cmd.stop_order_id,
            cmd.take_profit_order_id,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def record_exit_intent(self, cmd: TradeExitIntent) -> TradeWriteResult:
        """Record or withdraw a trade's exit intent."""
        with _missing_is_final():
            result = await self._trades.record_exit_intent(cmd)
        activity.logger.info(
            "trade %s exit intent %s: %s",
            cmd.trade_id,
            cmd.exit_intent.urgency if cmd.exit_intent else "withdrawn",
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def close_trade(self, cmd: TradeClose) -> TradeWriteResult:
        """Close a trade; closing a closed trade returns the first close."""
        with _missing_is_final():
            result = await self._trades.close(cmd)
        activity.logger.info(
            "trade %s close %s pnl %s: %s (closed as %s)",
            cmd.trade_id,
            cmd.close_reason,
            cmd.realized_pnl,
            _outcome(result.applied),
            result.trade.close_reason,
        )
        return result

    @activity.defn
    async def list_open_trades(self, query: OpenTradesQuery) -> OpenTrades:
        """Trades not yet closed, oldest first."""
        return OpenTrades(trades=await self._trades.list_open(query.symbol))

    # --- orders --------------------------------------------------------------------------

    @activity.defn
    async def upsert_order(self, cmd: OrderUpsert) -> OrderWriteResult:
        """Record an order or its newer broker state (idempotent by client_order_id)."""
        with _missing_is_final():
            result = await self._orders.upsert(cmd)
        activity.logger.info(
            "trade %s order %s (%s) %s filled %s: %s (now %s)",
            cmd.trade_id,
            cmd.client_order_id,
            cmd.role,
            cmd.status,
            cmd.filled_qty,
            _outcome(result.applied),
            result.order.status,
        )
        return result

    # --- signals -------------------------------------------------------------------------

    @activity.defn
    async def insert_signal(self, cmd: SignalCreate) -> SignalWriteResult:
        """Insert a PENDING signal (idempotent by signal_key)."""
        result = await self._signals.insert(cmd)
        activity.logger.info(
            "signal %s %s %s: %s",
            cmd.signal_key,
            cmd.strategy,
            cmd.symbol,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def expire_signals(self, cmd: SignalExpiry) -> ExpiredSignals:
        """End in ERROR the PENDING signals past the attempts cap or the maximum age."""
        keys = await self._signals.expire(cmd)
        if keys:
            activity.logger.warning("expired %d pending signals: %s", len(keys), ", ".join(keys))
        return ExpiredSignals(signal_keys=keys)

    @activity.defn
    async def signal_funnel(self, query: SignalFunnelQuery) -> SignalFunnel:
        """Signal counts by outcome, recent window and all time."""
        return await self._signals.funnel(query.window_hours)

    # --- risk events and runs --------------------------------------------------------------

    @activity.defn
    async def record_risk_event(self, cmd: RiskEventCreate) -> RiskEventWriteResult:
        """Record a risk event (idempotent by event_key)."""
        result = await self._risk_events.record(cmd)
        activity.logger.info(
            "risk event %s %s (trade %s): %s",
            cmd.kind,
            cmd.event_key,
            cmd.trade_id,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def start_reconcile_run(self, cmd: ReconcileRunStart) -> ReconcileRunWriteResult:
        """Record the start of a reconcile run (idempotent by run_id)."""
        result = await self._reconcile_runs.start(cmd)
        activity.logger.info("reconcile run %s start: %s", cmd.run_id, _outcome(result.applied))
        return result

    @activity.defn
    async def finish_reconcile_run(self, cmd: ReconcileRunFinish) -> ReconcileRunWriteResult:
        """Record the outcome of a reconcile run; the first finish wins."""
        with _missing_is_final():
            result = await self._reconcile_runs.finish(cmd)
        activity.logger.info(
            "reconcile run %s finish ok=%s checked=%d closed=%d adopted=%d synced=%d: %s",
            cmd.run_id,
            cmd.ok,
            cmd.checked,
            cmd.closed,
            cmd.adopted,
            cmd.synced,
            _outcome(result.applied),
        )
        return result

    @activity.defn
    async def record_entry_run(self, cmd: EntryRunCreate) -> EntryRunWriteResult:
        """Record one entry pass (idempotent by run_id)."""
        result = await self._entry_runs.record(cmd)
        activity.logger.info(
            "entry run %s entered=%d skipped=%d: %s",
            cmd.run_id,
            cmd.entered,
            cmd.skipped,
            _outcome(result.applied),
        )
        return result
