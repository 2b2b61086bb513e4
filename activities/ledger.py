"""LedgerActivities: ledger reads and idempotent writes, as Temporal activities.

Every write is safe to retry: repeating it (same input) changes nothing and returns the
stored row. A write that names a trade or run the ledger does not hold fails
non-retryably (type LedgerRecordMissing), since retrying cannot make the row appear.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Protocol, TypeVar

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from ledger.audit import AuditLog
from ledger.orders import Orders
from ledger.risk import RiskEvents
from ledger.runs import EntryRuns, ReconcileRuns
from ledger.signals import Signals
from ledger.trades import Trades
from ops import metrics
from trading.ledger_records import (
    AuditedTradeCloses,
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
    SignalBatch,
    SignalBatchResult,
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
    TradeWriteResults,
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


class _Write(Protocol):
    """What every ledger write returns: the row, and whether this write changed it."""

    @property
    def applied(self) -> bool: ...


W = TypeVar("W", bound=_Write)


async def _logged(write: Awaitable[W], what: str, state: Callable[[W], str] | None = None) -> W:
    """Await a ledger write and log whether it applied; a row it names but lacks is final."""
    with _missing_is_final():
        result = await write
    outcome = "applied" if result.applied else "unchanged"
    if state is None:
        activity.logger.info("%s: %s", what, outcome)
    else:
        activity.logger.info("%s: %s (%s)", what, outcome, state(result))
    return result


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
        return await _logged(
            self._trades.create(cmd),
            f"trade {cmd.trade_id} create {cmd.symbol}",
            lambda r: f"now {r.trade.status}",
        )

    @activity.defn
    async def transition_trade(self, cmd: TradeTransition) -> TradeWriteResult:
        """Move a live trade to a new status; stale transitions and closed trades are left."""
        return await _logged(
            self._trades.transition(cmd),
            f"trade {cmd.trade_id} -> {cmd.status}",
            lambda r: f"now {r.trade.status}",
        )

    @activity.defn
    async def record_entry_fill(self, cmd: TradeEntryFill) -> TradeWriteResult:
        """Record a trade's cumulative entry fill."""
        what = f"trade {cmd.trade_id} entry fill {cmd.qty} @ {cmd.avg_price}"
        return await _logged(self._trades.record_entry_fill(cmd), what)

    @activity.defn
    async def record_protection(self, cmd: TradeProtection) -> TradeWriteResult:
        """Record the stop (and take-profit) order protecting a trade."""
        what = (
            f"trade {cmd.trade_id} protection stop {cmd.stop_price} order {cmd.stop_order_id}, "
            f"take-profit order {cmd.take_profit_order_id}"
        )
        return await _logged(self._trades.record_protection(cmd), what)

    @activity.defn
    async def record_exit_intent(self, cmd: TradeExitIntent) -> TradeWriteResult:
        """Record or withdraw a trade's exit intent."""
        urgency = cmd.exit_intent.urgency if cmd.exit_intent else "withdrawn"
        what = f"trade {cmd.trade_id} exit intent {urgency}"
        return await _logged(self._trades.record_exit_intent(cmd), what)

    @activity.defn
    async def close_trade(self, cmd: TradeClose) -> TradeWriteResult:
        """Close a trade; closing a closed trade returns the first close."""
        return await _logged(
            self._trades.close(cmd),
            f"trade {cmd.trade_id} close {cmd.close_reason} pnl {cmd.realized_pnl}",
            lambda r: f"closed as {r.trade.close_reason}",
        )

    @activity.defn
    async def close_trades_audited(self, cmd: AuditedTradeCloses) -> TradeWriteResults:
        """Close trades, each with the closer's audit row, in one transaction; first close wins."""
        with _missing_is_final():
            written = await self._trades.close_all([(c.close, c.audit) for c in cmd.closes])
        for close, result in zip(cmd.closes, written, strict=True):
            activity.logger.info(
                "trade %s close %s (%s): %s (closed as %s)",
                close.close.trade_id,
                close.close.close_reason,
                close.audit.action,
                "applied" if result.applied else "unchanged",
                result.trade.close_reason,
            )
        return TradeWriteResults(results=written)

    @activity.defn
    async def list_open_trades(self, query: OpenTradesQuery) -> OpenTrades:
        """Trades not yet closed, oldest first."""
        return OpenTrades(trades=await self._trades.list_open(query.symbol))

    # --- orders --------------------------------------------------------------------------

    @activity.defn
    async def upsert_order(self, cmd: OrderUpsert) -> OrderWriteResult:
        """Record an order or its newer broker state (idempotent by client_order_id)."""
        return await _logged(
            self._orders.upsert(cmd),
            f"trade {cmd.trade_id} order {cmd.client_order_id} ({cmd.role}) {cmd.status} "
            f"filled {cmd.filled_qty}",
            lambda r: f"now {r.order.status}",
        )

    # --- signals -------------------------------------------------------------------------

    @activity.defn
    async def insert_signal(self, cmd: SignalCreate) -> SignalWriteResult:
        """Insert a PENDING signal (idempotent by signal_key)."""
        what = f"signal {cmd.signal_key} {cmd.strategy} {cmd.symbol}"
        written = await _logged(self._signals.insert(cmd), what)
        metrics.signals("created", int(written.applied))
        return written

    @activity.defn
    async def insert_signals(self, batch: SignalBatch) -> SignalBatchResult:
        """Insert PENDING signals in one call (each idempotent by signal_key)."""
        inserted = 0
        for cmd in batch.signals:
            written = await self._signals.insert(cmd)
            inserted += int(written.applied)
        metrics.signals("created", inserted)
        if batch.signals:
            activity.logger.info(
                "signals: %d new, %d already stored", inserted, len(batch.signals) - inserted
            )
        return SignalBatchResult(inserted=inserted, already=len(batch.signals) - inserted)

    @activity.defn
    async def expire_signals(self, cmd: SignalExpiry) -> ExpiredSignals:
        """End in ERROR the PENDING signals past the attempts cap or the maximum age."""
        keys = await self._signals.expire(cmd)
        metrics.signals("error", len(keys))
        if keys:
            activity.logger.warning("expired %d pending signals: %s", len(keys), ", ".join(keys))
        return ExpiredSignals(signal_keys=keys)

    @activity.defn
    async def signal_funnel(self, query: SignalFunnelQuery) -> SignalFunnel:
        """Signal counts by outcome, recent window and all time."""
        funnel = await self._signals.funnel(query.window_hours)
        metrics.signals_pending(funnel.all_time.pending, await self._signals.oldest_pending_age_s())
        return funnel

    # --- risk events and runs --------------------------------------------------------------

    @activity.defn
    async def record_risk_event(self, cmd: RiskEventCreate) -> RiskEventWriteResult:
        """Record a risk event (idempotent by event_key)."""
        what = f"risk event {cmd.kind} {cmd.event_key} (trade {cmd.trade_id})"
        return await _logged(self._risk_events.record(cmd), what)

    @activity.defn
    async def start_reconcile_run(self, cmd: ReconcileRunStart) -> ReconcileRunWriteResult:
        """Record the start of a reconcile run (idempotent by run_id)."""
        return await _logged(self._reconcile_runs.start(cmd), f"reconcile run {cmd.run_id} start")

    @activity.defn
    async def finish_reconcile_run(self, cmd: ReconcileRunFinish) -> ReconcileRunWriteResult:
        """Record the outcome of a reconcile run; the first finish wins."""
        what = (
            f"reconcile run {cmd.run_id} finish ok={cmd.ok} checked={cmd.checked} "
            f"closed={cmd.closed} adopted={cmd.adopted} synced={cmd.synced}"
        )
        return await _logged(self._reconcile_runs.finish(cmd), what)

    @activity.defn
    async def record_entry_run(self, cmd: EntryRunCreate) -> EntryRunWriteResult:
        """Record one entry pass (idempotent by run_id)."""
        what = f"entry run {cmd.run_id} entered={cmd.entered} skipped={cmd.skipped}"
        return await _logged(self._entry_runs.record(cmd), what)
