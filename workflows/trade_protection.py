"""ProtectionSteps: an active stop at the broker on every share: keep, follow, resize, rescue."""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, FailureError

from workflows.trade_base import TradeBase, millis

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.broker_sync import BrokerSyncActivities
    from contracts import control
    from ops import metrics
    from trading.broker_models import (
        BrokerOrder,
        ClientOrderRef,
        OrderClass,
        OrderIntent,
        OrderProbe,
        PositionProbe,
        ProbeOutcome,
        ReplaceRequest,
        SymbolRef,
    )
    from trading.control import RescueAlert
    from trading.ids import Leg, client_order_id
    from trading.ledger_records import OrderRole, RiskSeverity
    from trading.models import JsonScalar, evolve
    from trading.trade_escalation import (
        ReplaceFailed,
        ReplacePending,
        ReplaceSettled,
        ReplaceState,
        replace_state,
        rescue_failed,
    )
    from trading.trade_knowledge import Known, moved_by_its_fill
    from trading.trade_logic import (
        Flat,
        Follow,
        Keep,
        ProtectionAction,
        Rescue,
        Resize,
        protection_action,
        protective_legs,
        rescue_intent,
    )
    from workflows.calls import call, failure_kind, local
    from workflows.policies import BROKER_READ, BROKER_WRITE, RESCUE_SUBMIT, STORED_VIEW


# Patch ids: trades before them took a replace's first answer as the new stop, and rescued
# with a bare stop even when the trade had a take-profit.
REPLACE_SETTLES = "replace-settles"
RESCUE_RESTORES_TAKE_PROFIT = "rescue-restores-take-profit"
# Trades before it could rescue on a position read before their stop filled.
REREAD_AFTER_STOP_FILL = "reread-position-after-stop-fill"
REPLACE_POLL = timedelta(milliseconds=500)


class ProtectionSteps(TradeBase):
    """Keeps the position covered by a working stop, rescuing it when it is gone."""

    async def _protect_from_knowledge(self) -> bool:
        """Check protection with what signals (or BrokerSync's stored view) already say.

        False when the position is not known fresh enough (or is flat, or needs adopting, or
        the stop filled): the caller then asks the broker, as before. Otherwise keeping the
        stop needs no call (or one stop probe); placing or resizing one also reads the position
        unless it was read in the last ACT_MAX_AGE - a rescue after a stream event that carried
        the position needs only its submit.
        """
        state, spec = self._state, self._spec
        if spec.protect_only and state.entry_price is None:
            return False  # adopting needs the broker's average entry price
        known = self._knows()
        if not known.complete:
            await self._read_stored_view()
            known = self._knows()
        probe, stop = known.position, known.stop
        if probe is None or probe.outcome is not ProbeOutcome.EXISTS or probe.position is None:
            return False  # unknown or flat: closing asks the broker itself
        if stop is None and state.stop_order_id is not None:
            state.broker_checks += 1
            stop = await self._probe(state.stop_order_id)
        if moved_by_its_fill(stop):
            return False  # the stop's fill moved the position: ask the broker for it
        planned = protection_action(state.stop_price, state.stop_order_id, probe, stop)
        if isinstance(planned, Rescue | Resize) and not known.fit_to_act(workflow.now()):
            state.broker_checks += 1  # size a new stop only on a position read just now
            probe = await self._position_now()
        elif stop is known.stop:
            state.snapshot_checks += 1
        if probe.outcome is not ProbeOutcome.EXISTS or probe.position is None:
            return False  # unknown or flat after all: the careful path decides
        state.position_qty = probe.position.qty
        action = await self._protect(probe, stop)
        self._idle = isinstance(action, Keep)
        return True

    def _knows(self) -> Known:
        return self._known.known(
            self._spec.symbol,
            self._state.stop_order_id,
            workflow.now(),
            self._spec.snapshot_max_age,
        )

    async def _read_stored_view(self) -> None:
        """BrokerSync's last snapshot of the symbol from the ledger (no broker call)."""
        symbol = self._spec.symbol
        try:
            update = await local(
                BrokerSyncActivities.stored_view,
                SymbolRef(symbol=symbol),
                STORED_VIEW,
                f"BrokerSync's stored view of {symbol} (self-check, no broker call)",
            )
        except ActivityError:
            return  # unknown: the trade asks the broker itself
        if update is not None:
            self._known.saw_snapshot(update)

    async def _protect(
        self, position: PositionProbe, stop: OrderProbe | None = None
    ) -> ProtectionAction:
        state = self._state
        if stop is None:
            stop = await self._probe(state.stop_order_id)
        action = protection_action(state.stop_price, state.stop_order_id, position, stop)
        if (
            isinstance(action, Rescue)
            and moved_by_its_fill(stop)
            and workflow.patched(REREAD_AFTER_STOP_FILL)
        ):
            # The stop sold shares after the position was read: a rescue sized on that read
            # would sell shares no longer held (a short, once triggered). Read it again.
            state.broker_checks += 1
            position = await self._position_now()
            if position.outcome is ProbeOutcome.EXISTS and position.position is not None:
                state.position_qty = position.position.qty
            action = protection_action(state.stop_price, state.stop_order_id, position, stop)
        now = workflow.now()
        if isinstance(action, Keep):
            state.last_check_note = f"protected: stop {state.stop_order_id} covers {action.qty}"
        elif isinstance(action, Follow):
            await self._adopt_stop(action.order_id)
            self._wake = True
        elif isinstance(action, Resize):
            try:
                outcome = await self._replace_stop(
                    ReplaceRequest(order_id=action.order_id, qty=action.qty)
                )
            except ApplicationError as exc:
                state.last_check_note = f"resize to {action.qty} failed: {exc.message}"
                return action
            await self._after_replace(outcome, f"resize to {action.qty}")
        elif isinstance(action, Rescue):
            if state.stop_missing_since is None:
                state.stop_missing_since = now
            if state.rescue.next_at is not None and now < state.rescue.next_at:
                state.last_check_note = f"{action.why}; next rescue at {state.rescue.next_at}"
            else:
                await self._rescue(action)
        elif isinstance(action, Flat):
            await self._close_flat()
        else:
            state.last_check_note = action.reason
            self._in_flight = action.in_transition  # a stop in pending_*: look again soon
        return action

    async def _rescue(self, action: Rescue) -> None:
        state, spec = self._state, self._spec
        telemetry = state.rescue
        now = workflow.now()
        telemetry.attempted += 1
        telemetry.last_at = now
        metrics.rescue(metrics.RescueOutcome.ATTEMPTED)
        take_profit = state.take_profit_price
        if take_profit is not None and not workflow.patched(RESCUE_RESTORES_TAKE_PROFIT):
            take_profit = None  # rescues before the patch placed a bare stop
        intent = rescue_intent(
            spec.trade_id,
            spec.symbol,
            action.qty,
            action.stop_price,
            state.rescue_attempt,
            take_profit,
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
            order = await self._submit(intent, RESCUE_SUBMIT, f"rescue stop @ {action.stop_price}")
        except ActivityError as err:
            kind, message = failure_kind(err)
            await self._rescue_failed(action, intent, kind, message)
            return
        state.rescue_attempt += 1  # this id is used up at the broker, whatever its fate
        await self._record_order(order, OrderRole.STOP, intent)
        if not order.is_active:
            await self._rescue_failed(
                action, intent, "RescueNotActive", f"rescue stop is {order.status.value}"
            )
            return
        await self._rescue_landed(action, intent, order, now)

    async def _rescue_landed(
        self, action: Rescue, intent: OrderIntent, order: BrokerOrder, started: datetime
    ) -> None:
        """The rescue stop works at the broker: count it, guard it, report the gap."""
        state, telemetry, now = self._state, self._state.rescue, started
        gap = now - (state.stop_missing_since or now)
        state.stop_missing_since = None
        telemetry.ok += 1
        telemetry.consecutive_failures = 0
        telemetry.alerted = False
        telemetry.last_status = order.status.value
        telemetry.last_error = None
        telemetry.next_at = None
        telemetry.last_gap_ms = millis(workflow.now() - now + gap)
        telemetry.last_failure_kind = None
        latency_ms = millis(workflow.now() - started)
        metrics.rescue(
            metrics.RescueOutcome.OK, latency_ms=latency_ms, gap_ms=telemetry.last_gap_ms
        )
        stop_leg, _ = protective_legs(order)
        self._known.saw_order(stop_leg or order, workflow.now())
        if intent.order_class is OrderClass.OCO and stop_leg is not None:
            state.take_profit_order_id = order.id  # the OCO's limit leg is the take-profit
        await self._adopt_stop(stop_leg.id if stop_leg is not None else order.id)
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
                "latency_ms": latency_ms,  # submit -> accepted, as dt_stop_rescue_latency_ms
            },
        )

    async def _rescue_failed(
        self, action: Rescue, intent: OrderIntent, kind: str, message: str
    ) -> None:
        state, spec = self._state, self._spec
        outcome = rescue_failed(state.rescue, spec, kind, message, workflow.now())
        telemetry = state.rescue = outcome.telemetry
        metrics.rescue(metrics.RescueOutcome.FAILED)
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
        if outcome.alert:
            telemetry.alerted = True
            detail["escalation"] = spec.rescue_escalation.value
            await self._risk_event(
                "stop_rescue_alert", RiskSeverity.CRITICAL, f"alert:{telemetry.attempted}", detail
            )
            if outcome.report_to_control and workflow.patched("control-rescue-alert"):
                await self._report_rescue_alert(telemetry.last_error or "")
            if outcome.exit is not None and state.exit is None:
                state.exit = outcome.exit
                self._wake = True
        if outcome.free_take_profit and state.take_profit_order_id is not None:
            # The take-profit holds the shares: the stop matters more; free them.
            await self._cancel_quietly(state.take_profit_order_id)
            state.take_profit_order_id = None
            state.rescue.next_at = None  # the shares are free now: try again at once
            state.last_check_note = "rescue failed (InsufficientQty); take-profit cancelled"
            self._wake = True

    async def _report_rescue_alert(self, error: str) -> None:
        """Tell TradingControl (it halts entries on repeated alerts); absent, it is ignored."""
        handle = workflow.get_external_workflow_handle(control.WORKFLOW_ID)
        alert = RescueAlert(trade_id=self._spec.trade_id, symbol=self._spec.symbol, detail=error)
        try:
            await handle.signal(control.REPORT_RESCUE_ALERT.name, alert)
        except FailureError as err:
            workflow.logger.warning(
                "trade %s: trading control not reachable: %s", self._spec.trade_id, err
            )

    async def _adopt_stop(self, order_id: str) -> None:
        self._state.stop_order_id = order_id
        await self._record_protection()
        self._state.last_check_note = f"protected by stop {order_id}"

    async def _replace_stop(self, request: ReplaceRequest) -> ReplaceState:
        """Replace the stop under a fresh client_order_id and follow it until it settles.

        A replace the broker refuses, or rejects after accepting it, leaves the old stop
        working: ReplaceFailed, and the caller falls back to cancel-confirm-place.
        """
        state = self._state
        cid = client_order_id(self._spec.trade_id, Leg.STOP, state.stop_attempt)
        state.stop_attempt += 1
        new = await self._request_replace(evolve(request, client_order_id=cid))
        if not workflow.patched(REPLACE_SETTLES):
            # Trades before the patch took the broker's first answer as the new stop.
            if isinstance(new, str):
                raise ApplicationError(new, type="ReplaceFailed")
            return ReplaceSettled(order=new)
        if isinstance(new, str):
            return ReplaceFailed(reason=new)
        deadline = workflow.now() + self._spec.replace_settle
        while True:
            old = await self._order(request.order_id, "follow the replace")
            new = await self._order(new.id, "follow the replacement")
            outcome = replace_state(old, new)
            if not isinstance(outcome, ReplacePending) or workflow.now() >= deadline:
                return outcome
            await workflow.sleep(REPLACE_POLL, summary="wait for the stop replace to settle")

    async def _request_replace(self, request: ReplaceRequest) -> BrokerOrder | str:
        """The replacement order the broker accepted, or why it was refused."""
        cid = request.client_order_id
        try:
            return await call(
                BrokerActivities.replace_order,
                request,
                BROKER_WRITE,
                f"replace stop {request.order_id} as {cid}",
            )
        except ActivityError as err:
            kind, message = failure_kind(err)
        try:  # a retried replace that landed is found under its client_order_id
            return await call(
                BrokerActivities.get_order_by_client_id,
                ClientOrderRef(client_order_id=cid or ""),
                BROKER_READ,
                f"look up replacement stop {cid}",
            )
        except ActivityError:
            return f"replacing stop {request.order_id} failed: {kind}: {message}"

    async def _after_replace(self, outcome: ReplaceState, what: str) -> None:
        """Adopt a settled replace; leave a pending one to the guard; cancel after a failed one.

        After a failed replace the old stop is cancelled; once the broker says the cancel is
        final the new stop goes in at once (the rescue path, gap measured), or at the next check
        when the cancel is still pending - never two stops at once.
        """
        state = self._state
        if isinstance(outcome, ReplaceSettled):
            await self._adopt_stop(outcome.order.id)
            return
        if isinstance(outcome, ReplacePending):
            self._in_flight = True
            state.last_check_note = (
                f"{what}: replace pending; stop {state.stop_order_id} protects until the broker "
                f"settles it (then {outcome.new_order_id})"
            )
            return
        old_id = state.stop_order_id
        state.last_check_note = f"{what}: {outcome.reason}; cancel and place the stop anew"
        if old_id is None:
            return
        result = await self._cancel_until_final(old_id, "its replace did not take")
        self._wake = True
        if not result.is_terminal or result.filled_qty > 0:
            self._in_flight = True
            return  # cancel pending (or it filled): the next check decides with what is final
        # Final: place the new stop now (its gap is measured from here), not at the next check.
        state.stop_missing_since = workflow.now()
        qty = state.position_qty
        if self._quiet_guard():  # state.position_qty may come from older knowledge: read it
            position = await self._position_now()
            if position.outcome is not ProbeOutcome.EXISTS or position.position is None:
                return  # flat or unknown: the next check decides
            qty = state.position_qty = position.position.qty
        if qty > 0:
            await self._rescue(
                Rescue(qty=qty, stop_price=state.stop_price, why=f"{what}: {outcome.reason}")
            )
            state.last_check_note = (
                f"{what}: {outcome.reason}; cancel and place: stop {state.stop_order_id}"
            )
