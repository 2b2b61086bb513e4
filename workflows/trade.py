"""TradeWorkflow: one durable guard per trade (entry, an always-present stop, exits).

Workflow id `trade-<trade_id>`. Each step asks the broker (position, the stop's real status)
and lets trading/trade_logic.py decide; BrokerSync's signals only wake the next check, and a
timer checks anyway in case events stop arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from trading.broker_models import (
        BrokerOrder,
        CalendarRequest,
        ClientOrderRef,
        OrderIntent,
        OrderProbe,
        OrderRef,
        PositionProbe,
        ProbeOutcome,
        QuotesRequest,
        ReplaceRequest,
        SymbolRef,
    )
    from trading.control import CONTROL_WORKFLOW_ID, RescueAlert
    from trading.errors import TradingInputError
    from trading.ids import Leg, client_order_id
    from trading.ledger_records import (
        CloseReason,
        ExitIntent,
        ExitUrgency,
        OrderRole,
        OrderStatus,
        OrderUpsert,
        RiskEventCreate,
        RiskSeverity,
        TradeClose,
        TradeCreate,
        TradeEntryFill,
        TradeExitIntent,
        TradeOrigin,
        TradeProtection,
        TradeStatus,
        TradeTransition,
        terminal_status_for,
    )
    from trading.models import AuditEntry, JsonScalar
    from trading.trade_logic import (
        EntryDead,
        EntryDue,
        EntryFilled,
        Flat,
        Follow,
        Keep,
        Rescue,
        Resize,
        close_reason_for,
        confirmed_by_snapshot,
        entry_intent,
        entry_step,
        exit_price_of,
        market_exit_intent,
        next_open_exit_window,
        oco_exit_intent,
        protection_action,
        protective_legs,
        realized_pnl,
        rescue_backoff,
        rescue_intent,
        validate_tighten,
    )
    from trading.trade_models import (
        ExitPlan,
        ForceExit,
        OrderEvent,
        PositionUpdate,
        RescueEscalation,
        TightenResult,
        TightenStop,
        TradeResult,
        TradeSpec,
        TradeState,
        TradeStatusView,
        TradeWorkflowInput,
        WindowEscalation,
    )
    from workflows.calls import call, failure_kind, ledger
    from workflows.policies import (
        BROKER_READ,
        BROKER_SUBMIT,
        BROKER_WRITE,
        ActivityPolicy,
    )

TRADE_ID = SearchAttributeKey.for_keyword("TradeId")
TRADE_SYMBOL = SearchAttributeKey.for_keyword("TradeSymbol")
TRADE_STATUS = SearchAttributeKey.for_keyword("TradeStatus")
TRADE_ORIGIN = SearchAttributeKey.for_keyword("TradeOrigin")

# A rescue retries in the workflow (with telemetry and backoff between attempts), so each
# attempt's activity gives up sooner than a normal submit.
RESCUE_SUBMIT = ActivityPolicy(
    start_to_close=BROKER_SUBMIT.start_to_close,
    retry=replace(BROKER_SUBMIT.retry, maximum_attempts=2),
)
# While an exit order works, look more often than the idle check interval.
EXITING_POLL = timedelta(seconds=1)


def _ms(delta: timedelta) -> int:
    return int(delta.total_seconds() * 1000)


@workflow.defn
class TradeWorkflow:
    """Enters a long, keeps an active stop on it at the broker, and exits it once."""

    @workflow.init
    def __init__(self, request: TradeWorkflowInput) -> None:
        spec = request.spec
        self._spec: TradeSpec = spec
        self._state: TradeState = request.state or TradeState(
            status=TradeStatus.OPEN if spec.protect_only else TradeStatus.PENDING_ENTRY,
            stop_price=spec.stop_price,
            take_profit_price=spec.take_profit_price,
            stop_order_id=spec.existing_stop_order_id,
            filled_qty=spec.qty if spec.protect_only else Decimal(0),
        )
        self._lock = asyncio.Lock()
        self._wake = False
        # BrokerSync's latest snapshot and the orders the stream said ended since: they let
        # a healthy trade skip its own broker calls (see confirmed_by_snapshot).
        self._snapshot: PositionUpdate | None = None
        self._ended_orders: set[str] = set()

    # --- run loop ----------------------------------------------------------------------

    @workflow.run
    async def run(self, request: TradeWorkflowInput) -> TradeResult:
        """Guard the trade until it is closed; continue-as-new when history grows."""
        self._publish()
        if not self._state.created:
            await self._create_in_ledger()
        while not self._state.status.is_terminal:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(TradeWorkflowInput(spec=self._spec, state=self._state))
            self._wake = False
            async with self._lock:
                await self._step()
                self._publish()
            if self._state.status.is_terminal:
                break
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._wake, timeout=self._next_check_in())
        await workflow.wait_condition(workflow.all_handlers_finished)
        return TradeResult(
            trade_id=self._spec.trade_id,
            status=self._state.status,
            close_reason=self._state.close_reason,
            exit_price=self._state.exit_price,
            realized_pnl=self._state.realized_pnl,
        )

    def _next_check_in(self) -> timedelta:
        """The idle check interval, shortened for anything due sooner."""
        now = workflow.now()
        delay = self._spec.check_interval
        due: list[datetime | None] = [self._state.rescue.next_at, self._state.entry_deadline]
        plan = self._state.exit
        if plan is not None:
            due += [
                at - plan.clock_offset if at is not None else None
                for at in (plan.window_start, plan.window_end)
            ]
            if self._state.status is TradeStatus.EXITING:
                delay = min(delay, EXITING_POLL)
        for at in due:
            if at is not None and at > now:
                delay = min(delay, at - now)
        return max(delay, timedelta(milliseconds=100))

    async def _step(self) -> None:
        state = self._state
        state.last_check_at = workflow.now()
        if state.status is TradeStatus.PENDING_ENTRY:
            await self._advance_entry()
            return
        if state.exit is None and confirmed_by_snapshot(
            self._snapshot,
            workflow.now(),
            self._spec.snapshot_max_age,
            state.position_qty,
            state.stop_order_id,
            frozenset(self._ended_orders),
        ):
            state.last_check_note = (
                f"protected: stop {state.stop_order_id} covers {state.position_qty} "
                "(BrokerSync snapshot)"
            )
            state.snapshot_checks += 1
            return
        state.broker_checks += 1
        position = await call(
            BrokerActivities.probe_position, SymbolRef(symbol=self._spec.symbol), BROKER_READ
        )
        if position.outcome is ProbeOutcome.UNKNOWN:
            state.last_check_note = f"position unknown: {position.error}"
            return
        if position.position is None or position.position.qty == 0:
            await self._close_flat()
            return
        state.position_qty = position.position.qty
        if self._spec.protect_only and state.entry_price is None:
            await self._adopt_position(position.position.qty, position.position.avg_entry_price)
        if state.exit is not None and state.exit.urgency is ExitUrgency.NEXT_OPEN:
            await self._advance_next_open_exit(position)
        if state.exit is not None and state.exit.urgency is ExitUrgency.IMMEDIATE:
            await self._advance_immediate_exit(position)
            return
        await self._protect(position)

    # --- signals, update, query ----------------------------------------------------------

    @workflow.signal
    def order_event(self, event: OrderEvent) -> None:
        """BrokerSync: an order of this trade changed; check now."""
        self._state.events_received += 1
        if event.order.is_terminal:
            self._ended_orders.add(event.order.id)
        self._wake = True

    @workflow.signal
    def position_update(self, update: PositionUpdate) -> None:
        """BrokerSync: a fresh snapshot of this symbol; check against it now."""
        self._state.events_received += 1
        if self._snapshot is None or update.observed_at >= self._snapshot.observed_at:
            self._snapshot = update
        self._wake = True

    @workflow.signal
    def force_exit(self, request: ForceExit) -> None:
        """Exit now or at the next open; repeats converge on one exit (IMMEDIATE wins)."""
        state = self._state
        if state.status.is_terminal:
            return
        current = state.exit
        upgrade = (
            current is not None
            and current.urgency is ExitUrgency.NEXT_OPEN
            and request.urgency is ExitUrgency.IMMEDIATE
        )
        if current is None or upgrade:
            state.exit = ExitPlan(
                urgency=request.urgency, reason=request.reason, requested_at=workflow.now()
            )
            if upgrade and current is not None:
                state.exit.exit_order_id = current.exit_order_id
        self._wake = True

    @workflow.update
    async def tighten_stop(self, request: TightenStop) -> TightenResult:
        """Raise the stop (replace at the broker, so the position is never unprotected)."""
        async with self._lock:
            state = self._state
            quotes = await call(
                BrokerActivities.latest_quotes,
                QuotesRequest(symbols=[self._spec.symbol]),
                BROKER_READ,
            )
            market = quotes[0].bid if quotes else None
            try:
                price = validate_tighten(state.stop_price, request.price, market)
            except TradingInputError as exc:
                raise ApplicationError(
                    str(exc), type="TradingInputError", non_retryable=True
                ) from None
            if state.stop_order_id is None:
                raise ApplicationError("no stop order to tighten yet", type="NoStopOrder")
            new_order = await self._replace_stop(
                ReplaceRequest(order_id=state.stop_order_id, stop_price=price)
            )
            state.stop_price = price
            await self._adopt_stop(new_order.id)
            self._publish()
            return TightenResult(stop_price=price, stop_order_id=new_order.id)

    @tighten_stop.validator
    def _validate_tighten(self, request: TightenStop) -> None:
        if self._state.status not in (TradeStatus.OPEN, TradeStatus.EXIT_PLANNED):
            raise ApplicationError(
                f"cannot tighten a trade in {self._state.status.value}", type="TradeNotOpen"
            )
        try:
            validate_tighten(self._state.stop_price, request.price, None)
        except TradingInputError as exc:
            raise ApplicationError(str(exc), type="TradingInputError") from None

    @workflow.query
    def status(self) -> TradeStatusView:
        """The trade's status and full state."""
        return TradeStatusView(
            trade_id=self._spec.trade_id,
            symbol=self._spec.symbol,
            status=self._state.status,
            state=self._state.model_copy(deep=True),
        )

    # --- entry ---------------------------------------------------------------------------

    async def _create_in_ledger(self) -> None:
        spec = self._spec
        await ledger(
            LedgerActivities.create_trade,
            TradeCreate(
                trade_id=spec.trade_id,
                symbol=spec.symbol,
                workflow_id=workflow.info().workflow_id,
                origin=TradeOrigin.EXTERNAL if spec.protect_only else TradeOrigin.INTERNAL,
                status=self._state.status,
                signal_id=spec.signal_id,
                as_of=workflow.now(),
            ),
        )
        self._state.created = True

    async def _advance_entry(self) -> None:
        state, spec = self._state, self._spec
        if state.entry_order_id is None:
            intent = entry_intent(spec, state.entry_attempt)
            state.entry_deadline = workflow.now() + spec.entry_timeout
            try:
                order = await call(BrokerActivities.submit_order, intent, BROKER_SUBMIT)
            except ActivityError as err:
                kind, message = failure_kind(err)
                state.last_check_note = f"entry refused: {kind}: {message}"
                await self._close(CloseReason.ENTRY_FAILED, None)
                return
            state.entry_order_id = order.id
            await self._record_order(order, OrderRole.ENTRY, intent)
        order = await call(
            BrokerActivities.get_order, OrderRef(order_id=state.entry_order_id), BROKER_READ
        )
        step = entry_step(order, workflow.now(), state.entry_deadline)
        if state.exit is not None and not state.entry_cancel_requested and not order.is_terminal:
            step = EntryDue()  # asked to exit before the entry filled: stop buying
        if isinstance(step, EntryDue):
            if not state.entry_cancel_requested:
                state.entry_cancel_requested = True
                await call(BrokerActivities.cancel_order, OrderRef(order_id=order.id), BROKER_WRITE)
                self._wake = True
            state.last_check_note = "entry due: cancel requested"
            return
        if isinstance(step, EntryDead):
            await self._record_order(order, OrderRole.ENTRY, None)
            await self._close(step.reason, None)
            return
        if order.filled_qty > state.filled_qty and order.filled_avg_price is not None:
            state.filled_qty = order.filled_qty
            state.entry_price = order.filled_avg_price
            await ledger(
                LedgerActivities.record_entry_fill,
                TradeEntryFill(
                    trade_id=spec.trade_id,
                    qty=order.filled_qty,
                    avg_price=order.filled_avg_price,
                    filled_at=order.filled_at or workflow.now(),
                ),
            )
        if not isinstance(step, EntryFilled):
            state.last_check_note = f"entry working, filled {order.filled_qty} of {spec.qty}"
            return
        await self._record_order(order, OrderRole.ENTRY, None)
        stop_leg, take_profit_leg = protective_legs(order)
        state.position_qty = order.filled_qty  # until the next check reads the broker's
        state.stop_order_id = stop_leg.id if stop_leg else None
        state.take_profit_order_id = take_profit_leg.id if take_profit_leg else None
        await self._set_status(TradeStatus.OPEN)
        if stop_leg is not None:
            await self._record_protection()
        self._wake = True  # check protection at once (a partial entry's legs are cancelled)

    async def _adopt_position(self, qty: Decimal, avg_price: Decimal) -> None:
        """An adopted position's size and price, as the broker reports them."""
        self._state.filled_qty = qty
        self._state.entry_price = avg_price
        await ledger(
            LedgerActivities.record_entry_fill,
            TradeEntryFill(
                trade_id=self._spec.trade_id, qty=qty, avg_price=avg_price, filled_at=workflow.now()
            ),
        )
        # An adopted stop is kept as it is (never replaced), so record it here; a stop that
        # turns out dead is rescued and recorded again, later.
        await self._record_protection()

    # --- protection ----------------------------------------------------------------------

    async def _probe(self, order_id: str | None) -> OrderProbe | None:
        if order_id is None:
            return None
        return await call(BrokerActivities.probe_order, OrderRef(order_id=order_id), BROKER_READ)

    async def _protect(self, position: PositionProbe) -> None:
        state = self._state
        stop = await self._probe(state.stop_order_id)
        action = protection_action(state.stop_price, state.stop_order_id, position, stop)
        now = workflow.now()
        if isinstance(action, Keep):
            state.last_check_note = f"protected: stop {state.stop_order_id} covers {action.qty}"
        elif isinstance(action, Follow):
            await self._adopt_stop(action.order_id)
            self._wake = True
        elif isinstance(action, Resize):
            try:
                resized = await self._replace_stop(
                    ReplaceRequest(order_id=action.order_id, qty=action.qty)
                )
            except ApplicationError as exc:
                state.last_check_note = f"resize to {action.qty} failed: {exc.message}"
                return
            await self._adopt_stop(resized.id)
        elif isinstance(action, Rescue):
            if state.stop_missing_since is None:
                state.stop_missing_since = now
            if state.rescue.next_at is not None and now < state.rescue.next_at:
                state.last_check_note = f"{action.why}; next rescue at {state.rescue.next_at}"
                return
            await self._rescue(action)
        elif isinstance(action, Flat):
            await self._close_flat()
        else:
            state.last_check_note = action.reason

    async def _rescue(self, action: Rescue) -> None:
        state, spec = self._state, self._spec
        telemetry = state.rescue
        now = workflow.now()
        telemetry.attempted += 1
        telemetry.last_at = now
        intent = rescue_intent(
            spec.trade_id, spec.symbol, action.qty, action.stop_price, state.rescue_attempt
        )
        workflow.logger.warning(
            "trade %s: %s; rescue stop %s x%s @ %s",
            spec.trade_id,
            action.why,
            intent.client_order_id,
            action.qty,
            action.stop_price,
        )
        try:
            order = await call(BrokerActivities.submit_order, intent, RESCUE_SUBMIT)
        except ActivityError as err:
            kind, message = failure_kind(err)
            await self._rescue_failed(action, intent, kind, message)
            if kind == "InsufficientQty" and state.take_profit_order_id is not None:
                # The take-profit holds the shares: the stop matters more; free them.
                await self._cancel_quietly(state.take_profit_order_id)
                state.take_profit_order_id = None
                state.rescue.next_at = None
                self._wake = True
            return
        state.rescue_attempt += 1  # this id is used up at the broker, whatever its fate
        await self._record_order(order, OrderRole.STOP, intent)
        if not order.is_active:
            await self._rescue_failed(
                action, intent, "RescueNotActive", f"rescue stop is {order.status.value}"
            )
            return
        gap = now - (state.stop_missing_since or now)
        state.stop_missing_since = None
        telemetry.ok += 1
        telemetry.consecutive_failures = 0
        telemetry.alerted = False
        telemetry.last_status = order.status.value
        telemetry.last_error = None
        telemetry.next_at = None
        telemetry.last_gap_ms = _ms(workflow.now() - now + gap)
        await self._adopt_stop(order.id)
        await self._risk_event(
            "stop_rescued",
            RiskSeverity.WARNING,
            f"ok:{intent.client_order_id}",
            {
                "why": action.why,
                "order_id": order.id,
                "client_order_id": intent.client_order_id,
                "qty": str(action.qty),
                "stop_price": str(action.stop_price),
                "gap_ms": telemetry.last_gap_ms,
            },
        )

    async def _rescue_failed(
        self, action: Rescue, intent: OrderIntent, kind: str, message: str
    ) -> None:
        state, spec = self._state, self._spec
        telemetry = state.rescue
        telemetry.failed += 1
        telemetry.consecutive_failures += 1
        telemetry.last_status = "failed"
        telemetry.last_error = f"{kind}: {message}"
        telemetry.next_at = workflow.now() + rescue_backoff(
            telemetry.consecutive_failures, spec.rescue_backoff_initial, spec.rescue_backoff_max
        )
        state.last_check_note = f"rescue failed ({kind}); retry at {telemetry.next_at}"
        workflow.logger.error(
            "trade %s: rescue %s failed: %s: %s",
            spec.trade_id,
            intent.client_order_id,
            kind,
            message,
        )
        detail: dict[str, JsonScalar] = {
            "why": action.why,
            "client_order_id": intent.client_order_id,
            "error_type": kind,
            "error": message,
            "consecutive_failures": telemetry.consecutive_failures,
        }
        await self._risk_event(
            "stop_rescue_failed", RiskSeverity.WARNING, f"failed:{telemetry.attempted}", detail
        )
        if telemetry.consecutive_failures >= spec.rescue_alert_after and not telemetry.alerted:
            telemetry.alerted = True
            detail["escalation"] = spec.rescue_escalation.value
            await self._risk_event(
                "stop_rescue_alert", RiskSeverity.CRITICAL, f"alert:{telemetry.attempted}", detail
            )
            if spec.rescue_escalation is RescueEscalation.HALT_ENTRIES and workflow.patched(
                "control-rescue-alert"
            ):
                await self._report_rescue_alert(telemetry.last_error or "")
            if spec.rescue_escalation is RescueEscalation.MARKET_EXIT and state.exit is None:
                state.exit = ExitPlan(
                    urgency=ExitUrgency.IMMEDIATE,
                    reason=f"stop rescue failed {telemetry.consecutive_failures} times",
                    requested_at=workflow.now(),
                )
                self._wake = True

    async def _report_rescue_alert(self, error: str) -> None:
        """Tell TradingControl (it halts entries on repeated alerts); absent, it is ignored."""
        control = workflow.get_external_workflow_handle(CONTROL_WORKFLOW_ID)
        alert = RescueAlert(trade_id=self._spec.trade_id, symbol=self._spec.symbol, detail=error)
        try:
            await control.signal("report_rescue_alert", alert)
        except FailureError as err:
            workflow.logger.warning(
                "trade %s: trading control not reachable: %s", self._spec.trade_id, err
            )

    async def _adopt_stop(self, order_id: str) -> None:
        self._state.stop_order_id = order_id
        await self._record_protection()
        self._state.last_check_note = f"protected by stop {order_id}"

    async def _replace_stop(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace the stop under a fresh client_order_id (a retried replace finds its order)."""
        state = self._state
        cid = client_order_id(self._spec.trade_id, Leg.STOP, state.stop_attempt)
        state.stop_attempt += 1
        with_id = request.model_copy(update={"client_order_id": cid})
        try:
            return await call(BrokerActivities.replace_order, with_id, BROKER_WRITE)
        except ActivityError as err:
            kind, message = failure_kind(err)
            try:
                return await call(
                    BrokerActivities.get_order_by_client_id,
                    ClientOrderRef(client_order_id=cid),
                    BROKER_READ,
                )
            except ActivityError:
                raise ApplicationError(
                    f"replacing stop {request.order_id} failed: {kind}: {message}", type=kind
                ) from None

    # --- exits ---------------------------------------------------------------------------

    async def _cancel_protection(self) -> bool:
        """Cancel stop and take-profit; True once both are confirmed final (not filled)."""
        state = self._state
        for order_id in (state.stop_order_id, state.take_profit_order_id):
            if order_id is None:
                continue
            result = await call(
                BrokerActivities.cancel_order, OrderRef(order_id=order_id), BROKER_WRITE
            )
            if not result.order.is_terminal or result.order.filled_qty > 0:
                return False  # cancel pending, or it filled: look again next step
        return True

    async def _advance_immediate_exit(self, position: PositionProbe) -> None:
        state, spec = self._state, self._spec
        plan = state.exit
        assert plan is not None and position.position is not None
        if state.status is not TradeStatus.EXITING:
            await self._record_exit_intent(plan, None)
            await self._set_status(TradeStatus.EXITING)
        if plan.exit_order_id is not None:
            exit_order = await call(
                BrokerActivities.get_order, OrderRef(order_id=plan.exit_order_id), BROKER_READ
            )
            if not exit_order.is_terminal or exit_order.filled_qty > 0:
                state.last_check_note = f"exit {exit_order.id} is {exit_order.status.value}"
                return
            plan.exit_order_id = None  # died unfilled: place another
        if not await self._cancel_protection():
            state.last_check_note = "exit: waiting for the stop cancel to be final"
            return
        if plan.stop_cancel_confirmed_at is None:
            plan.stop_cancel_confirmed_at = workflow.now()
        intent = market_exit_intent(
            spec.trade_id, spec.symbol, position.position.qty, state.exit_attempt
        )
        try:
            order = await call(BrokerActivities.submit_order, intent, BROKER_SUBMIT)
        except ActivityError as err:
            kind, message = failure_kind(err)
            state.last_check_note = f"exit refused ({kind}: {message}); re-protecting"
            await self._protect(position)
            return
        state.exit_attempt += 1
        plan.exit_order_id = order.id
        await self._record_order(order, OrderRole.EXIT, intent)
        self._wake = True

    async def _advance_next_open_exit(self, position: PositionProbe) -> None:
        state, spec = self._state, self._spec
        plan = state.exit
        assert plan is not None and position.position is not None
        if plan.window_start is None or plan.window_end is None:
            clock = await call(BrokerActivities.get_clock, None, BROKER_READ)
            plan.clock_offset = clock.timestamp - workflow.now()
            now = clock.timestamp
            sessions = await call(
                BrokerActivities.get_calendar,
                CalendarRequest(start=now.date(), end=now.date() + timedelta(days=14)),
                BROKER_READ,
            )
            window = next_open_exit_window(
                sessions, now, spec.exit_window_start, spec.exit_window_end
            )
            plan.window_start, plan.window_end = window.start, window.end
            state.last_check_note = (
                f"exit planned for {window.start.isoformat()} - {window.end.isoformat()} "
                "(broker time)"
            )
            await self._record_exit_intent(plan, window.start)
            await self._set_status(TradeStatus.EXIT_PLANNED)
            return
        now = workflow.now() + plan.clock_offset
        if now < plan.window_start:
            return
        if plan.exit_order_id is None:
            await self._place_oco_exit(plan, position.position.qty)
            return
        if now < plan.window_end:
            return
        exit_order = await call(
            BrokerActivities.get_order, OrderRef(order_id=plan.exit_order_id), BROKER_READ
        )
        if exit_order.filled_qty > 0:
            return
        await self._cancel_quietly(exit_order.id)
        if spec.exit_window_escalation is WindowEscalation.MARKET_EXIT:
            state.exit = ExitPlan(
                urgency=ExitUrgency.IMMEDIATE,
                reason=f"{plan.reason} (exit window ended unfilled)",
                requested_at=now,
            )
        else:
            state.exit = ExitPlan(
                urgency=ExitUrgency.NEXT_OPEN, reason=plan.reason, requested_at=now
            )
            state.stop_order_id = None  # the OCO's stop went with it: rescue at once
        self._wake = True

    async def _place_oco_exit(self, plan: ExitPlan, qty: Decimal) -> None:
        state, spec = self._state, self._spec
        quotes = await call(
            BrokerActivities.latest_quotes, QuotesRequest(symbols=[spec.symbol]), BROKER_READ
        )
        if not quotes:
            state.last_check_note = "exit window open but no quote yet"
            return
        await self._set_status(TradeStatus.EXITING)
        if not await self._cancel_protection():
            return
        plan.stop_cancel_confirmed_at = workflow.now()
        intent = oco_exit_intent(
            spec.trade_id, spec.symbol, qty, quotes[0].bid, state.stop_price, state.exit_attempt
        )
        try:
            order = await call(BrokerActivities.submit_order, intent, BROKER_SUBMIT)
        except ActivityError as err:
            kind, message = failure_kind(err)
            state.last_check_note = f"OCO exit refused ({kind}: {message})"
            state.stop_order_id = None  # cancelled above: the next check rescues it
            self._wake = True
            return
        state.exit_attempt += 1
        plan.exit_order_id = order.id
        plan.gap_ms = _ms(workflow.now() - plan.stop_cancel_confirmed_at)
        stop_leg, _ = protective_legs(order)
        state.take_profit_order_id = None
        if stop_leg is not None:
            await self._adopt_stop(stop_leg.id)
        await self._record_order(order, OrderRole.EXIT, intent)

    async def _close_flat(self) -> None:
        """The position is gone: find out which order closed it and close the trade once."""
        state = self._state
        plan = state.exit
        orders: list[BrokerOrder | None] = []
        for order_id in (
            state.stop_order_id,
            state.take_profit_order_id,
            plan.exit_order_id if plan else None,
        ):
            probe = await self._probe(order_id)
            if probe is not None and probe.outcome is ProbeOutcome.UNKNOWN:
                state.last_check_note = f"flat, but order {order_id} is unknown: waiting"
                return
            orders.append(probe.order if probe is not None else None)
        stop, take_profit, exit_order = orders
        for leftover in orders:  # a stop left working on a flat position would open a short
            if leftover is not None and leftover.is_active:
                await self._cancel_quietly(leftover.id)
        reason = close_reason_for(stop, take_profit, exit_order, plan.urgency if plan else None)
        exit_price = exit_price_of(exit_order, stop, take_profit)
        if plan is not None and plan.stop_cancel_confirmed_at is not None and plan.gap_ms is None:
            plan.gap_ms = _ms(workflow.now() - plan.stop_cancel_confirmed_at)
        await self._close(reason, exit_price)

    async def _close(self, reason: CloseReason, exit_price: Decimal | None) -> None:
        state, spec = self._state, self._spec
        now = workflow.now()
        state.close_reason = reason
        state.exit_price = exit_price
        state.realized_pnl = realized_pnl(state.entry_price, exit_price, state.filled_qty)
        state.closed_at = now
        await ledger(
            LedgerActivities.close_trade,
            TradeClose(
                trade_id=spec.trade_id,
                close_reason=reason,
                exit_price=exit_price,
                realized_pnl=state.realized_pnl,
                closed_at=now,
            ),
        )
        plan = state.exit
        if plan is not None and plan.gap_ms is not None:
            await ledger(
                LedgerActivities.append_audit,
                AuditEntry(
                    actor=workflow.info().workflow_id,
                    action="exit_unprotected_gap",
                    reason=plan.reason,
                    trade_id=spec.trade_id,
                    detail={"gap_ms": plan.gap_ms, "urgency": plan.urgency.value},
                    event_key=f"{spec.trade_id}:exit-gap",
                ),
            )
        state.status = terminal_status_for(reason)
        state.last_check_note = f"closed: {reason.value}"
        workflow.logger.info("trade %s closed: %s at %s", spec.trade_id, reason, exit_price)

    # --- ledger and broker helpers -------------------------------------------------------

    async def _set_status(self, status: TradeStatus) -> None:
        if self._state.status is status:
            return
        self._state.status = status
        await ledger(
            LedgerActivities.transition_trade,
            TradeTransition(trade_id=self._spec.trade_id, status=status, as_of=workflow.now()),
        )
        self._publish()

    async def _record_protection(self) -> None:
        state = self._state
        if state.stop_order_id is None:
            return
        await ledger(
            LedgerActivities.record_protection,
            TradeProtection(
                trade_id=self._spec.trade_id,
                stop_price=state.stop_price,
                stop_order_id=state.stop_order_id,
                take_profit_price=state.take_profit_price if state.take_profit_order_id else None,
                take_profit_order_id=state.take_profit_order_id,
                as_of=workflow.now(),
            ),
        )

    async def _record_exit_intent(self, plan: ExitPlan, planned_for: datetime | None) -> None:
        await ledger(
            LedgerActivities.record_exit_intent,
            TradeExitIntent(
                trade_id=self._spec.trade_id,
                exit_intent=ExitIntent(
                    urgency=plan.urgency, reason=plan.reason, planned_for=planned_for
                ),
                as_of=workflow.now(),
            ),
        )

    async def _record_order(
        self, order: BrokerOrder, role: OrderRole, intent: OrderIntent | None
    ) -> None:
        await ledger(
            LedgerActivities.upsert_order,
            OrderUpsert(
                client_order_id=order.client_order_id[:48],
                trade_id=self._spec.trade_id,
                role=role,
                symbol=order.symbol,
                side=order.side,
                order_type=order.type,
                qty=order.qty or (intent.qty if intent else self._spec.qty),
                limit_price=order.limit_price,
                stop_price=order.stop_price,
                status=OrderStatus(order.status.value),
                broker_order_id=order.id,
                filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                submitted_at=order.submitted_at,
                broker_updated_at=order.updated_at,
            ),
        )

    async def _risk_event(
        self, kind: str, severity: RiskSeverity, key: str, detail: dict[str, JsonScalar]
    ) -> None:
        await ledger(
            LedgerActivities.record_risk_event,
            RiskEventCreate(
                event_key=f"{self._spec.trade_id}:{kind}:{key}",
                kind=kind,
                severity=severity,
                trade_id=self._spec.trade_id,
                symbol=self._spec.symbol,
                detail=detail,
                at=workflow.now(),
            ),
        )

    async def _cancel_quietly(self, order_id: str) -> None:
        try:
            await call(BrokerActivities.cancel_order, OrderRef(order_id=order_id), BROKER_WRITE)
        except ActivityError as err:
            kind, message = failure_kind(err)
            workflow.logger.warning(
                "trade %s: cancel %s failed: %s: %s", self._spec.trade_id, order_id, kind, message
            )

    def _publish(self) -> None:
        """Search attributes and the Web UI's current details."""
        state, spec = self._state, self._spec
        workflow.upsert_search_attributes(
            [
                TRADE_ID.value_set(spec.trade_id),
                TRADE_SYMBOL.value_set(spec.symbol),
                TRADE_STATUS.value_set(state.status.value),
                TRADE_ORIGIN.value_set(
                    (TradeOrigin.EXTERNAL if spec.protect_only else TradeOrigin.INTERNAL).value
                ),
            ]
        )
        rescue = state.rescue
        lines = [
            f"## {spec.symbol} `{spec.trade_id}` — **{state.status.value}**",
            f"- position: {state.position_qty} (entry {state.filled_qty} @ {state.entry_price})",
            f"- stop: {state.stop_price} order `{state.stop_order_id}`",
            f"- take-profit: {state.take_profit_price} order `{state.take_profit_order_id}`",
            f"- rescues: {rescue.attempted} attempted, {rescue.ok} ok, {rescue.failed} failed"
            + (f" (last error: {rescue.last_error})" if rescue.last_error else ""),
            f"- last check: {state.last_check_at} — {state.last_check_note}",
        ]
        if state.exit is not None:
            lines.append(
                f"- exit: {state.exit.urgency.value} ({state.exit.reason}) "
                f"order `{state.exit.exit_order_id}` gap {state.exit.gap_ms} ms"
            )
        if state.close_reason is not None:
            lines.append(f"- closed: {state.close_reason.value} at {state.exit_price}")
        workflow.set_current_details("\n".join(lines))
