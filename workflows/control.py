"""TradingControlWorkflow: the singleton switch between ACTIVE, REDUCING and HALTED, and flatten.

Workflow id `trading-control` (trading.control.CONTROL_WORKFLOW_ID). Every command is audited;
the state lives in Temporal, so it survives worker restarts, and is carried whole across
continue-as-new. The decisions are in trading/control.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime

from temporalio import workflow
from temporalio.exceptions import ActivityError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from trading.broker_models import BrokerOrder, ClosePositionRequest, OrderRef
    from trading.control import (
        ControlChange,
        ControlCommand,
        ControlInput,
        ControlRequest,
        ControlState,
        FlattenReport,
        FlattenRequest,
        LossCheck,
        RescueAlert,
        RescueAlertSeen,
        UntrackedClose,
        apply_change,
        daily_pnl,
        decide,
        entries_allowed,
        flatten_step,
        recent_alerts,
        should_auto_halt,
        unchanged_note,
    )
    from trading.ledger_records import ExitUrgency, OpenTradesQuery, RiskEventCreate, RiskSeverity
    from trading.models import AuditEntry, Frozen, JsonScalar
    from trading.trade_models import ForceExit, workflow_id_for
    from workflows.calls import call, failure, ledger
    from workflows.policies import (
        BROKER_READ,
        BROKER_SUBMIT,
        BROKER_WRITE,
    )
    from workflows.trade import TradeWorkflow

AUTO_ACTOR = "auto"


class EntryGate(Frozen):
    """The entry gate's answer: may new entries start, and if not, why."""

    allowed: bool
    reason: str


@workflow.defn
class TradingControlWorkflow:
    """Holds the trading mode, halts on its own when limits break, and flattens on request."""

    @workflow.init
    def __init__(self, request: ControlInput) -> None:
        self._input = request.model_copy(update={"state": None})
        self._state: ControlState = request.state or ControlState()
        self._flatten_lock = asyncio.Lock()

    @workflow.run
    async def run(self, request: ControlInput) -> ControlState:
        """Check the daily loss periodically; continue-as-new when history grows."""
        if self._state.since is None:
            self._state.since = workflow.now()
        self._publish()
        while not workflow.info().is_continue_as_new_suggested():
            if self._input.daily_loss_limit is not None:
                await self._check_loss()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    workflow.info().is_continue_as_new_suggested,
                    timeout=self._input.loss_check_interval,
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        workflow.continue_as_new(self._input.model_copy(update={"state": self._state}))

    # --- commands ----------------------------------------------------------------------

    @workflow.signal
    async def pause_entries(self, request: ControlRequest) -> None:
        """No new entries; open trades are managed as usual (REDUCING)."""
        await self._command(ControlCommand.PAUSE_ENTRIES, request.reason, request.actor)

    @workflow.signal
    async def resume(self, request: ControlRequest) -> None:
        """Back to ACTIVE; clears the rescue alerts counted so far."""
        await self._command(ControlCommand.RESUME, request.reason, request.actor)

    @workflow.signal
    async def halt(self, request: ControlRequest) -> None:
        """No new entries until an explicit resume; protective stops stay in place."""
        await self._command(ControlCommand.HALT, request.reason, request.actor)

    @workflow.signal
    async def report_rescue_alert(self, alert: RescueAlert) -> None:
        """A trade's stop rescue keeps failing; repeated alerts halt trading."""
        now = workflow.now()
        state = self._state
        window = self._input.rescue_alert_window
        state.rescue_alerts = [
            *recent_alerts(state.rescue_alerts, now, window),
            RescueAlertSeen(trade_id=alert.trade_id, at=now),
        ]
        count = len(state.rescue_alerts)
        reason = should_auto_halt(None, None, count, self._input.rescue_alert_threshold)
        halt = reason is not None and decide(state.mode, ControlCommand.AUTO_HALT) is not None
        if halt and reason is not None:
            await self._command(ControlCommand.AUTO_HALT, reason, AUTO_ACTOR)
        self._publish()
        await self._audit(
            "rescue_alert",
            alert.detail or "stop rescue failed repeatedly",
            f"trade-{alert.trade_id}",
            {"symbol": alert.symbol, "alerts_in_window": count, "halted": halt},
            trade_id=alert.trade_id,
        )

    @workflow.update
    async def flatten(self, request: FlattenRequest) -> FlattenReport:
        """Halt, cancel entries, exit every position and wait until the broker shows none."""
        async with self._flatten_lock:
            await self._command(ControlCommand.FLATTEN, request.reason, request.actor)
            started = workflow.now()
            report = FlattenReport(reason=request.reason, actor=request.actor, started_at=started)
            self._state.flatten = report
            self._state.flattens += 1
            signalled: set[str] = set()
            while True:
                report.rounds += 1
                if await self._flatten_round(request, report, signalled, started):
                    report.done = True
                    break
                if workflow.now() - started >= request.timeout:
                    break
                self._publish()
                await workflow.sleep(request.poll_interval)
            report.finished_at = workflow.now()
            report.note = (
                "flat: no position and no open order at the broker"
                if report.done
                else f"not flat after {request.timeout}: {', '.join(report.positions_left)} "
                f"positions, {report.orders_left} open orders left"
            )
            self._publish()
            await self._audit(
                "flatten_done" if report.done else "flatten_incomplete",
                request.reason,
                request.actor,
                {
                    "rounds": report.rounds,
                    "signalled_trades": len(report.signalled_trades),
                    "cancelled_orders": len(report.cancelled_orders),
                    "closed_symbols": ",".join(report.closed_symbols),
                    "positions_left": ",".join(report.positions_left),
                    "orders_left": report.orders_left,
                    "seconds": (report.finished_at - started).total_seconds(),
                },
                key=f"flatten-end:{self._state.flattens}",
            )
            return report.model_copy(deep=True)

    @workflow.query
    def state(self) -> ControlState:
        """Mode, reason, since, actor, history, rescue alerts, last loss check, flatten progress."""
        return self._state

    @workflow.query
    def entry_gate(self) -> EntryGate:
        """May new entries start now (the market loop's entry gate)."""
        allowed, reason = entries_allowed(self._state)
        return EntryGate(allowed=allowed, reason=reason)

    # --- internals ---------------------------------------------------------------------

    async def _command(self, command: ControlCommand, reason: str, actor: str) -> None:
        """Apply a command now (so queries see it at once), then audit it."""
        state = self._state
        target = decide(state.mode, command)
        change = ControlChange(
            change_id=str(workflow.uuid4()),
            command=command,
            from_mode=state.mode,
            to_mode=target or state.mode,
            reason=reason,
            actor=actor,
            at=workflow.now(),
        )
        apply_change(state, change)
        self._publish()
        workflow.logger.info(
            "trading control %s by %s: %s -> %s (%s)",
            command.value,
            actor,
            change.from_mode.value,
            change.to_mode.value,
            reason,
        )
        detail: dict[str, JsonScalar] = {
            "from_mode": change.from_mode.value,
            "to_mode": change.to_mode.value,
            "changed": target is not None,
        }
        if target is None:
            detail["note"] = unchanged_note(change.from_mode, command)
        await self._audit(f"control_{command.value}", reason, actor, detail, key=change.change_id)

    async def _check_loss(self) -> None:
        state, limit = self._state, self._input.daily_loss_limit
        now = workflow.now()
        try:
            account = await call(BrokerActivities.get_account, None, BROKER_READ)
        except ActivityError as err:
            # Unknown is not a breach: the next check asks again.
            state.last_loss_check = LossCheck(at=now, limit=limit, error=failure(err))
            self._publish()
            return
        pnl = daily_pnl(account.equity, account.last_equity)
        state.last_loss_check = LossCheck(
            at=now,
            equity=account.equity,
            last_equity=account.last_equity,
            daily_pnl=pnl,
            limit=limit,
        )
        reason = should_auto_halt(pnl, limit, 0, self._input.rescue_alert_threshold)
        # Edge-triggered: a manual resume after a loss halt holds until a fresh breach.
        first_breach = reason is not None and not state.loss_breached
        state.loss_breached = reason is not None
        if first_breach and reason is not None:
            if decide(state.mode, ControlCommand.AUTO_HALT) is not None:
                await self._command(ControlCommand.AUTO_HALT, reason, AUTO_ACTOR)
            await self._risk_event(
                "daily_loss_limit",
                f"{now:%Y%m%d}",
                {"daily_pnl": str(pnl), "limit": str(limit), "equity": str(account.equity)},
            )
        self._publish()

    async def _flatten_round(
        self,
        request: FlattenRequest,
        report: FlattenReport,
        signalled: set[str],
        started: datetime,
    ) -> bool:
        """One pass: tell trades to exit, look at the broker, cancel and close; True when flat."""
        open_trades = (await ledger(LedgerActivities.list_open_trades, OpenTradesQuery())).trades
        for trade in open_trades:
            if trade.id in signalled or trade.id in report.unreachable_trades:
                continue
            handle = workflow.get_external_workflow_handle(workflow_id_for(trade.id))
            try:
                await handle.signal(
                    TradeWorkflow.force_exit,
                    ForceExit(urgency=ExitUrgency.IMMEDIATE, reason=f"flatten: {request.reason}"),
                )
            except FailureError as err:
                # No running workflow guards it: flatten closes its position itself.
                report.unreachable_trades.append(trade.id)
                workflow.logger.warning("flatten: trade %s unreachable: %s", trade.id, err)
                continue
            signalled.add(trade.id)
            report.signalled_trades.append(trade.id)
        in_grace = workflow.now() - started < request.trade_grace
        tracked = {t.symbol for t in open_trades if t.id in signalled} if in_grace else set()
        try:
            truth = await call(BrokerActivities.get_broker_truth, None, BROKER_READ)
        except ActivityError as err:
            report.errors = [*report.errors, f"broker truth: {failure(err)}"][-20:]
            return False
        step = flatten_step(truth.positions, truth.open_orders, tracked)
        report.positions_left = sorted({p.symbol for p in truth.positions if p.qty != 0})
        report.orders_left = len(step.cancel) + sum(len(c.cancel_first) for c in step.close)
        if step.done:
            return True
        for order in step.cancel:
            await self._cancel(order, report)
        for close in step.close:
            await self._close_untracked(close, report)
        return False

    async def _cancel(self, order: BrokerOrder, report: FlattenReport) -> bool:
        """Cancel one order; True once the cancel is final and nothing filled."""
        try:
            result = await call(
                BrokerActivities.cancel_order, OrderRef(order_id=order.id), BROKER_WRITE
            )
        except ActivityError as err:
            report.errors = [*report.errors, f"cancel {order.id}: {failure(err)}"][-20:]
            return False
        if order.id not in report.cancelled_orders:
            report.cancelled_orders.append(order.id)
        return result.order.is_terminal and result.order.filled_qty == 0

    async def _close_untracked(self, close: UntrackedClose, report: FlattenReport) -> None:
        """Cancel the position's protective orders, and only once that is final, close it."""
        for order in close.cancel_first:
            if not await self._cancel(order, report):
                return  # still protected (or partly filled): look again next round
        cancelled_at = workflow.now()
        try:
            exit_order = await call(
                BrokerActivities.close_position,
                ClosePositionRequest(symbol=close.symbol),
                BROKER_SUBMIT,
            )
        except ActivityError as err:
            message = failure(err)
            report.errors = [*report.errors, f"close {close.symbol}: {message}"][-20:]
            await self._risk_event(
                "flatten_close_failed",
                f"{self._state.flattens}:{close.symbol}:{report.rounds}",
                {"symbol": close.symbol, "qty": str(close.qty), "error": message},
                severity=RiskSeverity.CRITICAL,
            )
            return
        gap_ms = int((workflow.now() - cancelled_at).total_seconds() * 1000)
        if close.symbol not in report.closed_symbols:
            report.closed_symbols.append(close.symbol)
        await self._audit(
            "flatten_close_position",
            report.reason,
            report.actor,
            {
                "symbol": close.symbol,
                "qty": str(close.qty),
                "exit_order_id": exit_order.id,
                "cancelled_first": len(close.cancel_first),
                "unprotected_gap_ms": gap_ms if close.cancel_first else 0,
            },
            key=f"flatten:{self._state.flattens}:close:{close.symbol}:{exit_order.id}",
        )

    async def _audit(
        self,
        action: str,
        reason: str,
        actor: str,
        detail: dict[str, JsonScalar],
        key: str | None = None,
        trade_id: str | None = None,
    ) -> None:
        await ledger(
            LedgerActivities.append_audit,
            AuditEntry(
                actor=actor,
                action=action,
                reason=reason,
                trade_id=trade_id,
                detail=detail,
                event_key=f"control:{key or workflow.uuid4()}",
            ),
        )

    async def _risk_event(
        self,
        kind: str,
        key: str,
        detail: dict[str, JsonScalar],
        severity: RiskSeverity = RiskSeverity.CRITICAL,
    ) -> None:
        await ledger(
            LedgerActivities.record_risk_event,
            RiskEventCreate(
                event_key=f"control:{kind}:{key}",
                kind=kind,
                severity=severity,
                detail=detail,
                at=workflow.now(),
            ),
        )

    def _publish(self) -> None:
        """The Web UI's current details."""
        state = self._state
        allowed, why = entries_allowed(state)
        lines = [
            f"## Trading control — **{state.mode.value}**",
            f"- since {state.since} by `{state.actor}`: {state.reason}",
            f"- entries: {'allowed' if allowed else why}",
            f"- rescue alerts in window: {len(state.rescue_alerts)} "
            f"(halt at {self._input.rescue_alert_threshold})",
        ]
        check = state.last_loss_check
        if check is not None:
            lines.append(
                f"- daily P&L {check.daily_pnl} (limit {check.limit}) at {check.at}"
                + (f" — error: {check.error}" if check.error else "")
            )
        flat = state.flatten
        if flat is not None:
            lines.append(
                f"- flatten ({flat.reason}): {'done' if flat.done else 'in progress'} "
                f"after {flat.rounds} rounds; {len(flat.signalled_trades)} trades signalled, "
                f"{len(flat.cancelled_orders)} orders cancelled, closed "
                f"{', '.join(flat.closed_symbols) or 'none'}; left: "
                f"{', '.join(flat.positions_left) or 'no positions'}, {flat.orders_left} orders"
            )
        if state.history:
            lines.append("### Recent changes")
            lines += [
                f"- {c.at:%Y-%m-%d %H:%M:%S} {c.command.value} by `{c.actor}`: "
                f"{c.from_mode.value} → {c.to_mode.value} — {c.reason}"
                for c in state.history[-5:]
            ]
        workflow.set_current_details("\n".join(lines))
