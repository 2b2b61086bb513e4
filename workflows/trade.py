"""TradeWorkflow: one durable guard per trade (entry, an always-present stop, exits).

Its interface (id `trade-<trade_id>`, messages, models, who sends what) is contracts/trade.py.
Each step learns the position and the stop's real status - from what BrokerSync's events and
snapshots already said while that is fresh (trading/trade_knowledge.py), else from the broker -
and lets trading/trade_logic.py decide; a slow, jittered timer checks anyway in case events
stop arriving.

This module is the Temporal surface (run loop, signals, updates, query); the steps live in
trade_entry.EntrySteps, trade_protection.ProtectionSteps, trade_exits.ExitSteps and
trade_add_on.AddOnSteps, over trade_base.TradeBase (state, ledger records, closing, published
details).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.trade_add_on import AddOnSteps
from workflows.trade_entry import EntrySteps
from workflows.trade_exits import ExitSteps

with workflow.unsafe.imports_passed_through():
    from contracts import trade
    from trading.broker_models import ProbeOutcome, ReplaceRequest
    from trading.errors import TradingInputError
    from trading.ledger_records import ExitUrgency, TradeStatus
    from trading.trade_escalation import merge_force_exit
    from trading.trade_knowledge import Knowledge, broker_answers_again
    from trading.trade_logic import confirmed_by_snapshot, validate_tighten
    from trading.trade_models import (
        AddOn,
        AddOnResult,
        ForceExit,
        OrderEvent,
        PositionUpdate,
        TightenResult,
        TightenStop,
        TradeResult,
        TradeSpec,
        TradeState,
        TradeStatusView,
        TradeWorkflowInput,
    )
    from workflows.calls import failure

# While an exit order works, look more often than the idle check interval.
EXITING_POLL = timedelta(seconds=1)
IN_FLIGHT_POLL = timedelta(seconds=1)
# Patch id: runs started before it polled every second through a whole next-open window.
EXIT_WINDOW_PATCH = "exit-window-normal-poll"


@workflow.defn(name=trade.WORKFLOW.name)
class TradeWorkflow(EntrySteps, ExitSteps, AddOnSteps):
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
            take_profit_order_id=spec.existing_take_profit_order_id,
            filled_qty=spec.qty if spec.protect_only else Decimal(0),
        )
        self._lock = asyncio.Lock()
        self._wake = False
        self._in_flight = False
        # BrokerSync's latest snapshot and the orders the stream said ended since: they let
        # a healthy trade skip its own broker calls (see confirmed_by_snapshot; runs before
        # the quiet-guard patch).
        self._snapshot: PositionUpdate | None = None
        self._ended_orders: set[str] = set()
        # Quiet guards: everything events, snapshots and our own orders said (trade_knowledge).
        self._known = Knowledge()
        for ended in self._state.ended_orders:
            self._known.saw_order(ended, workflow.now())
        self._idle = False
        self._published_attributes: tuple[str, ...] | None = None

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
                self._state.ended_orders = self._known.ended_orders()
                workflow.continue_as_new(TradeWorkflowInput(spec=self._spec, state=self._state))
            self._wake = False
            async with self._lock:
                try:
                    await self._step()
                except ActivityError as err:
                    # Retries exhausted (a long broker or ledger outage): the answer is unknown,
                    # so change nothing and look again - the guard must outlive the outage.
                    self._state.last_check_note = f"check failed, retrying: {failure(err)}"
                self._publish()
            if self._state.status.is_terminal:
                break
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake,
                    timeout=self._next_check_in(),
                    timeout_summary=f"next check of {self._spec.symbol} {self._spec.trade_id}",
                )
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
        if self._idle and self._quiet_guard():
            # Protected, and BrokerSync wakes it on any change: only a slow, jittered self-check.
            jitter = 0.9 + 0.2 * workflow.random().random()
            delay = max(delay, self._spec.idle_check_interval * jitter)
        if self._in_flight:
            # Alpaca cancels and replaces asynchronously: follow our own request closely.
            delay = min(delay, IN_FLIGHT_POLL)
        due: list[datetime | None] = [self._state.rescue.next_at, self._state.entry_deadline]
        partial = self._state.partial_fill_at
        if partial is not None and self._state.status is TradeStatus.PENDING_ENTRY:
            due.append(partial + self._spec.partial_fill_grace)
        plan = self._state.exit
        if plan is not None:
            due += [
                at - plan.clock_offset if at is not None else None
                for at in (plan.window_start, plan.window_end)
            ]
            if self._state.status is TradeStatus.EXITING and (
                plan.urgency is ExitUrgency.IMMEDIATE or not workflow.patched(EXIT_WINDOW_PATCH)
            ):
                # Poll fast only while a market exit is in flight; an OCO working in the
                # next-open window waits on the normal check (and BrokerSync's events).
                delay = min(delay, EXITING_POLL)
        for at in due:
            if at is not None and at > now:
                delay = min(delay, at - now)
        return max(delay, timedelta(milliseconds=100))

    async def _step(self) -> None:
        state = self._state
        self._in_flight = False
        self._idle = False
        state.last_check_at = workflow.now()
        if state.status is TradeStatus.PENDING_ENTRY:
            await self._advance_entry()
            return
        if state.exit is None and self._quiet_guard():
            if await self._protect_from_knowledge():
                return
        elif state.exit is None and self._confirmed_by_snapshot():
            return
        state.broker_checks += 1
        position = await self._position_now()
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

    def _confirmed_by_snapshot(self) -> bool:
        """Before the quiet-guard patch: a fresh snapshot alone could settle a check."""
        state = self._state
        if not confirmed_by_snapshot(
            self._snapshot,
            workflow.now(),
            self._spec.snapshot_max_age,
            state.position_qty,
            state.stop_order_id,
            frozenset(self._ended_orders),
        ):
            return False
        state.last_check_note = (
            f"protected: stop {state.stop_order_id} covers {state.position_qty} "
            "(BrokerSync snapshot)"
        )
        state.snapshot_checks += 1
        return True

    # --- signals, update, query ----------------------------------------------------------

    @workflow.signal(name=trade.ORDER_EVENT.name)
    def order_event(self, event: OrderEvent) -> None:
        """BrokerSync: an order of this trade changed; check now."""
        self._state.events_received += 1
        if event.order.is_terminal:
            self._ended_orders.add(event.order.id)
        self._known.saw_event(event, workflow.now())
        self._wake = True

    @workflow.signal(name=trade.POSITION_UPDATE.name)
    def position_update(self, update: PositionUpdate) -> None:
        """BrokerSync: a fresh snapshot of this symbol; check against it now."""
        self._state.events_received += 1
        if self._snapshot is None or update.observed_at >= self._snapshot.observed_at:
            self._snapshot = update
        self._known.saw_snapshot(update)
        rescue = self._state.rescue
        if (
            rescue.next_at is not None
            and broker_answers_again(rescue.last_failure_kind, rescue.last_at, update.observed_at)
            and self._quiet_guard()
        ):
            rescue.next_at = None  # the broker answers again: no backoff past its recovery
        self._wake = True

    @workflow.signal(name=trade.FORCE_EXIT.name)
    def force_exit(self, request: ForceExit) -> None:
        """Exit now or at the next open; repeats converge on one exit (IMMEDIATE wins)."""
        state = self._state
        if state.status.is_terminal:
            return
        plan = merge_force_exit(state.exit, request, workflow.now())
        if plan is not None:
            state.exit = plan
        self._wake = True

    @workflow.update(name=trade.TIGHTEN_STOP.name)
    async def tighten_stop(self, request: TightenStop) -> TightenResult:
        """Raise the stop (replace at the broker, so the position is never unprotected)."""
        async with self._lock:
            state = self._state
            quote = await self._quote("to check the new stop")
            market = quote.bid if quote else None
            try:
                price = validate_tighten(state.stop_price, request.price, market)
            except TradingInputError as exc:
                raise ApplicationError(
                    str(exc), type="TradingInputError", non_retryable=True
                ) from None
            if state.stop_order_id is None:
                raise ApplicationError("no stop order to tighten yet", type="NoStopOrder")
            outcome = await self._replace_stop(
                ReplaceRequest(order_id=state.stop_order_id, stop_price=price)
            )
            state.stop_price = price
            await self._after_replace(outcome, f"tighten to {price}")
            self._publish()
            return TightenResult(
                stop_price=price,
                stop_order_id=state.stop_order_id or "",
                note=state.last_check_note,
            )

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

    @workflow.update(name=trade.ADD_ON.name)
    async def add_on(self, request: AddOn) -> AddOnResult:
        """Buy more as an OTO carrying the stop; then one stop covers the whole position."""
        async with self._lock:
            try:
                return await self._add_on(request)
            finally:
                self._publish()

    @add_on.validator
    def _validate_add_on(self, request: AddOn) -> None:
        if self._state.add_on_of(request.signal_key) is not None:
            return  # a repeat of a known signal key: answered from what the trade remembers
        refusal = self._add_on_refusal(request)
        if refusal is not None:
            raise ApplicationError(refusal, type="AddOnRefused")

    @workflow.query(name=trade.STATUS.name)
    def status(self) -> TradeStatusView:
        """The trade's status and full state."""
        return TradeStatusView(
            trade_id=self._spec.trade_id,
            symbol=self._spec.symbol,
            status=self._state.status,
            state=self._state.model_copy(deep=True),
        )
