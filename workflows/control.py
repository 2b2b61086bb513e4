"""TradingControlWorkflow: the singleton switch between ACTIVE, REDUCING and HALTED, and flatten.

Its interface (id `trading-control`, messages, models) is contracts/control.py. Every command
is audited;
the state lives in Temporal, so it survives worker restarts, and is carried whole across
continue-as-new. The decisions are in trading/control.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RawValue
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from activities.notify import NotifyActivities
    from activities.option_ledger import OptionLedgerActivities
    from activities.option_link import OptionLinkActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import control, trade
    from ops import metrics
    from trading.broker_models import ClosePositionRequest, OrderRef
    from trading.control import (
        ControlChange,
        ControlCommand,
        ControlInput,
        ControlRequest,
        ControlState,
        FlattenReport,
        FlattenRequest,
        LossCheck,
        OptionTradeExitRequest,
        RescueAlert,
        UntrackedClose,
        apply_change,
        decide,
        flatten_note,
        flatten_step,
        loss_outcome,
        option_delivery_seen,
        order_label,
        rescue_alert_outcome,
        unchanged_note,
    )
    from trading.entry_gate import control_gate, control_view_of
    from trading.ledger_records import ExitUrgency, OpenTradesQuery, RiskSeverity
    from trading.models import JsonScalar, evolve
    from trading.notify import (
        Notice,
        flatten_finished_notice,
        flatten_started_notice,
        halt_notice,
        rescue_alert_notice,
    )
    from trading.options.records import OptionTradesQuery
    from trading.options.trade_models import OptionForceExit
    from trading.trade_models import ForceExit, TradeExitRequest
    from workflows.broker_reads import broker_truth
    from workflows.calls import Failed, attempt, call, failure, ledger
    from workflows.details import Details
    from workflows.policies import BROKER_READ, BROKER_SUBMIT, BROKER_WRITE, NOTIFY, TRADE_LINK
    from workflows.records import audit, risk_event

AUTO_ACTOR = "auto"
# Patch id: flattens started before it signalled trades straight from the workflow.
FLATTEN_THROUGH_TRADE_LINK = "flatten-through-trade-link"
# Patch id: controls started before it told nobody (alerts to people: halts, rescue alerts,
# flattens go to ALERT_WEBHOOK_URL through NotifyActivities).
NOTIFY_PEOPLE = "notify-people"
# Patch id: flattens started before it left option trades alone (the broker view flatten reads
# holds no option position); since, each round tells every open option trade to close (again
# each round: a restarted run never saw the first signal) and the flatten is done only when the
# ledger shows none open.
FLATTEN_CLOSES_OPTION_TRADES = "flatten-closes-option-trades"
# Before continue-as-new, notices still being sent get this long to go out.
NOTICE_GRACE = timedelta(seconds=60)


@workflow.defn(name=control.WORKFLOW.name)
class TradingControlWorkflow:
    """Holds the trading mode, halts on its own when limits break, and flattens on request."""

    @workflow.init
    def __init__(self, request: ControlInput) -> None:
        self._input = evolve(request, state=None)
        self._state: ControlState = request.state or ControlState()
        self._flatten_lock = asyncio.Lock()
        self._notices: set[asyncio.Task[None]] = set()  # being sent beside the work

    @workflow.run
    async def run(self, request: ControlInput) -> ControlState:
        """Check the daily loss periodically; continue-as-new when history grows."""
        if self._state.since is None:
            self._state.since = workflow.now()
        self._publish()
        metrics.control_mode(self._state.mode)
        while not workflow.info().is_continue_as_new_suggested():
            if (
                self._input.daily_loss_limit is not None
                or self._input.daily_loss_limit_pct is not None
            ):
                await self._check_loss()
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    workflow.info().is_continue_as_new_suggested,
                    timeout=self._input.loss_check_interval,
                    timeout_summary="next daily-loss check",
                )
        await workflow.wait_condition(workflow.all_handlers_finished)
        await self._notices_out()
        workflow.continue_as_new(evolve(self._input, state=self._state))

    # --- commands ----------------------------------------------------------------------

    @workflow.signal(name=control.PAUSE_ENTRIES.name)
    async def pause_entries(self, request: ControlRequest) -> None:
        """No new entries; open trades are managed as usual (REDUCING)."""
        await self._command(ControlCommand.PAUSE_ENTRIES, request.reason, request.actor)

    @workflow.signal(name=control.RESUME.name)
    async def resume(self, request: ControlRequest) -> None:
        """Back to ACTIVE; clears the rescue alerts counted so far."""
        await self._command(ControlCommand.RESUME, request.reason, request.actor)

    @workflow.signal(name=control.HALT.name)
    async def halt(self, request: ControlRequest) -> None:
        """No new entries until an explicit resume; protective stops stay in place."""
        await self._command(ControlCommand.HALT, request.reason, request.actor)

    @workflow.signal(name=control.REPORT_RESCUE_ALERT.name)
    async def report_rescue_alert(self, alert: RescueAlert) -> None:
        """A trade's stop rescue keeps failing; repeated alerts halt trading."""
        now = workflow.now()
        outcome = rescue_alert_outcome(
            self._state,
            alert.trade_id,
            now,
            self._input.rescue_alert_window,
            self._input.rescue_alert_threshold,
        )
        self._state.rescue_alerts = outcome.alerts
        halts = outcome.halt_reason is not None
        self._notify(rescue_alert_notice(alert, now, len(outcome.alerts), halts))
        if outcome.halt_reason is not None:
            await self._command(ControlCommand.AUTO_HALT, outcome.halt_reason, AUTO_ACTOR)
        self._publish()
        await audit(
            "rescue_alert",
            alert.detail or "stop rescue failed repeatedly",
            {
                "symbol": alert.symbol,
                "alerts_in_window": len(outcome.alerts),
                "halted": outcome.halt_reason is not None,
            },
            key=f"{alert.trade_id}:{now.isoformat()}",
            trade_id=alert.trade_id,
            actor=trade.workflow_id(alert.trade_id),
        )

    @workflow.update(name=control.FLATTEN.name)
    async def flatten(self, request: FlattenRequest) -> FlattenReport:
        """Halt, cancel entries, exit every position and wait until the broker shows none."""
        return await self._flatten(request)

    async def _flatten(self, request: FlattenRequest) -> FlattenReport:
        async with self._flatten_lock:
            change = await self._command(ControlCommand.FLATTEN, request.reason, request.actor)
            started = workflow.now()
            report = FlattenReport(
                flatten_id=change.change_id,
                reason=request.reason,
                actor=request.actor,
                started_at=started,
            )
            self._state.flatten = report
            self._state.flattens += 1
            self._notify(flatten_started_notice(report))
            signalled: set[str] = set()
            while True:
                report.rounds += 1
                if await self._flatten_round(request, report, signalled, started):
                    report.done = True
                    break
                if workflow.now() - started >= request.timeout:
                    break
                self._publish()
                await workflow.sleep(request.poll_interval, summary="next flatten round")
            await self._flatten_finished(request, report, started)
            return report.model_copy(deep=True)

    async def _flatten_finished(
        self, request: FlattenRequest, report: FlattenReport, started: datetime
    ) -> None:
        report.finished_at = workflow.now()
        report.note = flatten_note(report, request.timeout)
        self._publish()
        self._notify(flatten_finished_notice(report))
        await audit(
            "flatten_done" if report.done else "flatten_incomplete",
            request.reason,
            {
                "rounds": report.rounds,
                "signalled_trades": len(report.signalled_trades),
                "cancelled_orders": len(report.cancelled_orders),
                "closed_symbols": ",".join(report.closed_symbols),
                "positions_left": ",".join(report.positions_left),
                "orders_left": report.orders_left,
                "signalled_option_trades": len(report.signalled_option_trades),
                "option_trades_left": ",".join(report.option_trades_left),
                "seconds": (report.finished_at - started).total_seconds(),
            },
            key=report.flatten_id,
            actor=request.actor,
        )

    # --- the first wave's message names ------------------------------------------------------
    # A trading-control started before contracts/control.py named its signals after the
    # commands (`halt`, `resume`, `pause_entries`) and its update `flatten`; its history still
    # carries them, so they are handled as before.

    @workflow.signal(dynamic=True)
    async def first_wave_signal(self, name: str, args: Sequence[RawValue]) -> None:
        """`halt`, `resume` and `pause_entries` under the command's own name."""
        commands = (ControlCommand.HALT, ControlCommand.RESUME, ControlCommand.PAUSE_ENTRIES)
        command = next((c for c in commands if c.value == name), None)
        if command is None or not args:
            workflow.logger.warning("trading control: unknown signal %r ignored", name)
            return
        request = workflow.payload_converter().from_payload(args[0].payload, ControlRequest)
        await self._command(command, request.reason, request.actor)

    @workflow.update(dynamic=True)
    async def first_wave_update(self, name: str, args: Sequence[RawValue]) -> FlattenReport:
        """`flatten` under the command's own name."""
        if name != ControlCommand.FLATTEN.value or not args:
            raise ApplicationError(f"unknown update {name!r}", non_retryable=True)
        request = workflow.payload_converter().from_payload(args[0].payload, FlattenRequest)
        return await self._flatten(request)

    @workflow.query(name=control.CONTROL_STATE.name)
    def state(self) -> ControlState:
        """Mode, reason, since, actor, history, rescue alerts, last loss check, flatten progress."""
        return self._state

    # --- internals ---------------------------------------------------------------------

    async def _command(self, command: ControlCommand, reason: str, actor: str) -> ControlChange:
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
        metrics.control_mode(state.mode)
        workflow.logger.info(
            "trading control %s by %s: %s -> %s (%s)",
            command.value,
            actor,
            change.from_mode.value,
            change.to_mode.value,
            reason,
        )
        if target is not None and command in (ControlCommand.HALT, ControlCommand.AUTO_HALT):
            self._notify(halt_notice(change))
        detail: dict[str, JsonScalar] = {
            "from_mode": change.from_mode.value,
            "to_mode": change.to_mode.value,
            "changed": target is not None,
        }
        if target is None:
            detail["note"] = unchanged_note(change.from_mode, command)
        await audit(f"control_{command.value}", reason, detail, key=change.change_id, actor=actor)
        return change

    async def _check_loss(self) -> None:
        state, limit = self._state, self._input.daily_loss_limit
        now = workflow.now()
        try:
            account = await call(
                BrokerActivities.get_account, None, BROKER_READ, "broker account: today's P&L"
            )
        except ActivityError as err:
            # Unknown is not a breach: the next check asks again.
            state.last_loss_check = LossCheck(
                at=now, limit=limit, limit_pct=self._input.daily_loss_limit_pct, error=failure(err)
            )
            self._publish()
            return
        outcome = loss_outcome(
            state,
            account.equity,
            account.last_equity,
            limit,
            self._input.rescue_alert_threshold,
            now,
            limit_pct=self._input.daily_loss_limit_pct,
        )
        state.last_loss_check = outcome.check
        state.loss_breached = outcome.breached
        metrics.account(outcome.check.daily_pnl, account.equity)
        if outcome.halt_reason is not None:
            await self._command(ControlCommand.AUTO_HALT, outcome.halt_reason, AUTO_ACTOR)
        if outcome.first_breach:
            await risk_event(
                "daily_loss_limit",
                RiskSeverity.CRITICAL,
                {
                    "daily_pnl": str(outcome.check.daily_pnl),
                    "limit": str(limit),
                    "equity": str(account.equity),
                },
                key=f"{now:%Y%m%d}",
            )
        self._publish()

    async def _flatten_round(
        self,
        request: FlattenRequest,
        report: FlattenReport,
        signalled: set[str],
        started: datetime,
    ) -> bool:
        """One pass: tell trades and option trades to exit, look at the broker, cancel and
        close; True when flat (and, since FLATTEN_CLOSES_OPTION_TRADES, no option trade open)."""
        open_trades = (
            await ledger(
                LedgerActivities.list_open_trades, OpenTradesQuery(), "ledger: open trades"
            )
        ).trades
        unknown: set[str] = set()
        for open_trade in open_trades:
            trade_id = open_trade.id
            if trade_id in signalled or trade_id in report.unreachable_trades:
                continue
            delivered = await self._tell_trade_to_exit(trade_id, request.reason, report)
            if delivered is None:
                unknown.add(trade_id)  # not known to be gone: ask again next round
            elif delivered:
                signalled.add(trade_id)
                report.signalled_trades.append(trade_id)
            else:
                # No running workflow guards it: flatten closes its position itself.
                report.unreachable_trades.append(trade_id)
        options_closed = await self._close_option_trades(request, report)
        in_grace = workflow.now() - started < request.trade_grace
        guarded = signalled | unknown
        tracked = {t.symbol for t in open_trades if t.id in guarded} if in_grace else set()
        truth, error = await broker_truth(BROKER_READ.retry.maximum_attempts, "flatten")
        if truth is None:
            report.errors = [*report.errors, error][-20:]
            return False
        known: dict[str, list[str]] = {}
        for open_trade in open_trades:
            ids = [open_trade.stop_order_id, open_trade.take_profit_order_id]
            known.setdefault(open_trade.symbol, []).extend(i for i in ids if i)
        step = flatten_step(truth.positions, truth.open_orders, tracked, known)
        report.positions_left = sorted({p.symbol for p in truth.positions if p.qty != 0})
        report.orders_left = len(step.cancel) + sum(len(c.cancel_first) for c in step.close)
        if step.done:
            return options_closed
        for order in step.cancel:
            await self._cancel(order.id, order_label(order), report)
        for close in step.close:
            await self._close_untracked(close, report)
        return False

    async def _close_option_trades(self, request: FlattenRequest, report: FlattenReport) -> bool:
        """Tell every open option trade to close (FORCE_EXIT, every round); True when the ledger
        shows none open. Its own workflow closes the structure with one mleg order: the broker
        view flatten reads holds no option position, so flatten never closes one itself. Told
        again each round, since the run told may have ended (its repeats are one exit): one
        found with no running workflow, or one whose run ended after the signal, may come back
        OPEN in a new run (reconcile restarts it) that never saw FORCE_EXIT. An option trade
        with no running workflow stays open (reported) until reconcile restarts or closes it."""
        if not workflow.patched(FLATTEN_CLOSES_OPTION_TRADES):
            return True
        listed = await attempt(
            ledger(
                OptionLedgerActivities.list_option_trades,
                OptionTradesQuery(open_only=True),
                "ledger: open option trades",
            )
        )
        if isinstance(listed, Failed):
            report.errors = [*report.errors, f"open option trades: {listed.why}"][-20:]
            return False
        report.option_trades_left = [t.id for t in listed.trades]
        for trade_id in report.option_trades_left:
            delivery = await attempt(
                call(
                    OptionLinkActivities.force_exit_option_trade,
                    OptionTradeExitRequest(
                        trade_id=trade_id, exit=OptionForceExit(reason=f"flatten: {request.reason}")
                    ),
                    TRADE_LINK,
                    f"flatten: close option trade {trade_id} now",
                )
            )
            if isinstance(delivery, Failed):  # unknown: its last known delivery stands
                report.errors = [*report.errors, f"option trade {trade_id}: {delivery.why}"][-20:]
            else:
                option_delivery_seen(report, trade_id, delivered=delivery.delivered)
        return not report.option_trades_left

    async def _tell_trade_to_exit(
        self, trade_id: str, reason: str, report: FlattenReport
    ) -> bool | None:
        """Ask a trade's own workflow to exit at once: delivered, not running, or unknown (None)."""
        request = ForceExit(urgency=ExitUrgency.IMMEDIATE, reason=f"flatten: {reason}")
        if not workflow.patched(FLATTEN_THROUGH_TRADE_LINK):
            return await self._signal_trade_directly(trade_id, request)
        try:
            delivery = await call(
                TradeLinkActivities.force_exit_trade,
                TradeExitRequest(trade_id=trade_id, exit=request),
                TRADE_LINK,
                f"flatten: exit trade {trade_id} now",
            )
        except ActivityError as err:
            report.errors = [*report.errors, f"trade {trade_id}: {failure(err)}"][-20:]
            return None
        return delivery.delivered

    async def _signal_trade_directly(self, trade_id: str, request: ForceExit) -> bool:
        """How flattens started before FLATTEN_THROUGH_TRADE_LINK told trades (kept to replay)."""
        handle = workflow.get_external_workflow_handle(trade.workflow_id(trade_id))
        try:
            await handle.signal(trade.FORCE_EXIT.name, request)
        except FailureError as err:
            workflow.logger.warning("flatten: trade %s unreachable: %s", trade_id, err)
            return False
        return True

    async def _cancel(self, order_id: str, label: str, report: FlattenReport) -> bool:
        """Cancel one order; True once the cancel is final and nothing filled."""
        result = await attempt(
            call(
                BrokerActivities.cancel_order,
                OrderRef(order_id=order_id),
                BROKER_WRITE,
                f"flatten: cancel {label} {order_id}",
            )
        )
        if isinstance(result, Failed):
            report.errors = [*report.errors, f"cancel {order_id}: {result.why}"][-20:]
            return False
        if order_id not in report.cancelled_orders:
            report.cancelled_orders.append(order_id)
        return result.order.is_terminal and result.order.filled_qty == 0

    async def _close_untracked(self, close: UntrackedClose, report: FlattenReport) -> None:
        """Cancel the position's protective orders, and only once that is final, close it."""
        targets = [(o.id, order_label(o)) for o in close.cancel_first]
        targets += [
            (order_id, f"{close.symbol} order the listing does not show")
            for order_id in close.cancel_known
        ]
        for order_id, label in targets:
            # Counted from the first cancel asked (it may take a round or two to be final),
            # so the reported gap is never shorter than the real one.
            report.unprotected_since.setdefault(close.symbol, workflow.now())
            if not await self._cancel(order_id, label, report):
                return  # still protected (or partly filled): look again next round
        try:
            exit_order = await call(
                BrokerActivities.close_position,
                ClosePositionRequest(symbol=close.symbol),
                BROKER_SUBMIT,
                f"flatten: close the {close.symbol} position ({close.qty}) at market",
            )
        except ActivityError as err:
            message = failure(err)
            report.errors = [*report.errors, f"close {close.symbol}: {message}"][-20:]
            await risk_event(
                "flatten_close_failed",
                RiskSeverity.CRITICAL,
                {"symbol": close.symbol, "qty": str(close.qty), "error": message},
                key=f"{report.flatten_id}:{close.symbol}:{report.rounds}",
                symbol=close.symbol,
            )
            return
        since = report.unprotected_since.get(close.symbol)
        gap_ms = int((workflow.now() - since).total_seconds() * 1000) if since else 0
        if close.symbol not in report.closed_symbols:
            report.closed_symbols.append(close.symbol)
        await audit(
            "flatten_close_position",
            report.reason,
            {
                "symbol": close.symbol,
                "qty": str(close.qty),
                "exit_order_id": exit_order.id,
                "protected_before": since is not None,
                "unprotected_gap_ms": gap_ms,
            },
            key=f"{report.flatten_id}:{close.symbol}:{exit_order.id}",
            actor=report.actor,
        )

    def _notify(self, notice: Notice) -> None:
        """Tell people, beside the work: a webhook that is down holds up no command."""
        if not workflow.patched(NOTIFY_PEOPLE):
            return
        task = asyncio.create_task(self._send_notice(notice))
        self._notices.add(task)
        task.add_done_callback(self._notices.discard)

    async def _send_notice(self, notice: Notice) -> None:
        try:
            await call(NotifyActivities.notify, notice, NOTIFY, f"notify people: {notice.title}")
        except ActivityError as err:  # its retries are spent: the ledger row keeps the error
            workflow.logger.warning("notice %s not sent: %s", notice.event_key, failure(err))

    async def _notices_out(self) -> None:
        """Let notices being sent finish (a while at most) before continue-as-new drops them."""
        if self._notices:
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: not self._notices,
                    timeout=NOTICE_GRACE,
                    timeout_summary="notices still being sent",
                )

    def _publish(self) -> None:
        """The Web UI's current details."""
        state = self._state
        gate = control_gate(control_view_of(state))
        page = Details(f"Trading control — **{state.mode.value}**").bullets(
            [
                f"since {state.since} by `{state.actor}`: {state.reason}",
                f"entries: {'allowed' if gate.allowed else gate.reason}",
                f"rescue alerts in window: {len(state.rescue_alerts)} "
                f"(halt at {self._input.rescue_alert_threshold})",
            ]
        )
        check = state.last_loss_check
        if check is not None:
            page.bullets(
                [
                    f"daily P&L {check.daily_pnl} (limit {check.limit}) at {check.at}"
                    + (f" — error: {check.error}" if check.error else "")
                ]
            )
        flat = state.flatten
        if flat is not None:
            page.bullets(
                [
                    f"flatten ({flat.reason}): {'done' if flat.done else 'in progress'} "
                    f"after {flat.rounds} rounds; {len(flat.signalled_trades)} trades signalled, "
                    f"{len(flat.cancelled_orders)} orders cancelled, closed "
                    f"{', '.join(flat.closed_symbols) or 'none'}; "
                    f"{len(flat.signalled_option_trades)} option trades told to close; left: "
                    f"{', '.join(flat.positions_left) or 'no positions'}, {flat.orders_left} orders"
                    f", {len(flat.option_trades_left)} option trades"
                ]
            )
        if state.history:
            page.line("### Recent changes").bullets(
                f"{c.at:%Y-%m-%d %H:%M:%S} {c.command.value} by `{c.actor}`: "
                f"{c.from_mode.value} → {c.to_mode.value} — {c.reason}"
                for c in state.history[-5:]
            )
        page.publish()
