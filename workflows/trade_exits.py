"""ExitSteps: an exit asked for, done at once or in the next open's window."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError

from workflows.trade_base import millis
from workflows.trade_protection import ProtectionSteps

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from ops import metrics
    from trading.broker_models import CalendarRequest, PositionProbe
    from trading.ledger_records import OrderRole, TradeStatus
    from trading.trade_escalation import unfilled_window
    from trading.trade_logic import (
        market_exit_intent,
        next_open_exit_window,
        oco_exit_intent,
        protective_legs,
    )
    from trading.trade_models import ExitPlan
    from workflows.calls import call, failure_kind
    from workflows.policies import BROKER_READ, BROKER_SUBMIT


class ExitSteps(ProtectionSteps):
    """Cancels protection and exits the position, immediately or through an OCO at the open."""

    async def _cancel_protection(self) -> bool:
        """Cancel take-profit, then stop; True once both are confirmed final (not filled).

        The stop goes last so it is never gone while the take-profit may still be live."""
        state = self._state
        for order_id in (state.take_profit_order_id, state.stop_order_id):
            if order_id is None:
                continue
            result = await self._cancel(order_id, "protection, to exit")
            if not result.order.is_terminal or result.order.filled_qty > 0:
                self._in_flight = True
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
            exit_order = await self._order(plan.exit_order_id, "check the exit")
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
            order = await self._submit(intent, BROKER_SUBMIT, "market exit")
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
            await self._plan_exit_window(plan)
            return
        now = workflow.now() + plan.clock_offset
        if now < plan.window_start:
            return
        if plan.exit_order_id is None:
            await self._place_oco_exit(plan, position.position.qty)
            return
        if now < plan.window_end:
            return
        exit_order = await self._order(plan.exit_order_id, "the exit window ended")
        if exit_order.filled_qty > 0:
            return
        await self._cancel_quietly(exit_order.id)
        outcome = unfilled_window(plan, spec.exit_window_escalation, now)
        state.exit = outcome.plan
        if outcome.stop_gone:
            state.stop_order_id = None  # the OCO's stop went with it: rescue at once
        self._wake = True

    async def _plan_exit_window(self, plan: ExitPlan) -> None:
        """Ask the broker's clock and calendar for the next session's exit window."""
        spec = self._spec
        clock = await call(
            BrokerActivities.get_clock, None, BROKER_READ, "broker clock, to plan the exit"
        )
        plan.clock_offset = clock.timestamp - workflow.now()
        now = clock.timestamp
        sessions = await call(
            BrokerActivities.get_calendar,
            CalendarRequest(start=now.date(), end=now.date() + timedelta(days=14)),
            BROKER_READ,
            "broker calendar: the next session's opening window",
        )
        window = next_open_exit_window(sessions, now, spec.exit_window_start, spec.exit_window_end)
        plan.window_start, plan.window_end = window.start, window.end
        self._state.last_check_note = (
            f"exit planned for {window.start.isoformat()} - {window.end.isoformat()} (broker time)"
        )
        await self._record_exit_intent(plan, window.start)
        await self._set_status(TradeStatus.EXIT_PLANNED)

    async def _place_oco_exit(self, plan: ExitPlan, qty: Decimal) -> None:
        state, spec = self._state, self._spec
        quote = await self._quote("to price the OCO exit")
        if quote is None:
            state.last_check_note = "exit window open but no quote yet"
            return
        await self._set_status(TradeStatus.EXITING)
        if not await self._cancel_protection():
            return
        plan.stop_cancel_confirmed_at = workflow.now()
        intent = oco_exit_intent(
            spec.trade_id, spec.symbol, qty, quote.bid, state.stop_price, state.exit_attempt
        )
        try:
            order = await self._submit(intent, BROKER_SUBMIT, "OCO exit")
        except ActivityError as err:
            kind, message = failure_kind(err)
            state.last_check_note = f"OCO exit refused ({kind}: {message})"
            state.stop_order_id = None  # cancelled above: the next check rescues it
            self._wake = True
            return
        state.exit_attempt += 1
        plan.exit_order_id = order.id
        plan.gap_ms = millis(workflow.now() - plan.stop_cancel_confirmed_at)
        metrics.observe(metrics.UNPROTECTED_GAP_MS, plan.gap_ms)
        stop_leg, _ = protective_legs(order)
        state.take_profit_order_id = None
        if stop_leg is not None:
            await self._adopt_stop(stop_leg.id)
        await self._record_order(order, OrderRole.EXIT, intent)
