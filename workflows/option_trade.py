"""OptionTradeWorkflow: opens an iron condor with one mleg order and manages it by rules.

Its interface (id `option-trade-<trade_id>`, FORCE_EXIT, STATUS) is contracts/option_trade.py.
Entry: one mleg LIMIT order for a net credit, client_order_id `<trade_id>-open-<attempt>`,
looked up by that id before it is sent (at most once); unfilled after `entry_wait`, it is
cancelled and resent one walk step cheaper with the next attempt suffix (the paper broker, like
a careful reading of Alpaca, refuses to replace an mleg order); past `max_walk` the trade ends
ENTRY_FAILED with nothing open. Open: every `check_interval` (a durable timer) it reads the
legs' quotes, marks the cost to close at the mids and asks trading/options/exits.py's
`next_exit`; a close (or FORCE_EXIT) sends one mleg order buying back the shorts and selling
the wings at the natural debit - only once the account is seen to hold every leg as opened
(trading/options/legs.py: a close of legs that are gone would open the opposite position; no
leg held ends the trade `closed_outside`, a partial set holds the close back and reports it).
Decisions are pure functions in trading/options/.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.option_ledger import OptionLedgerActivities
    from activities.option_positions import OptionPositionActivities
    from activities.options import OptionOrderActivities
    from contracts import option_trade
    from ops import metrics
    from trading.broker_models import MarketClock, OrderStatus, ProbeOutcome
    from trading.options.adoption import RESTARTED_CLOSE
    from trading.options.exits import CondorPositionState, ExitAction, next_exit
    from trading.options.legs import (
        CLOSED_OUTSIDE,
        LegsHeldRequest,
        LegsVerdict,
        held_back_note,
        legs_verdict,
    )
    from trading.options.records import OptionTradeRecord, option_trade_write
    from trading.options.trade_models import (
        CLOSE_ROLE,
        ENTRY_FAILED,
        FORCED_EXIT,
        MlegOrderIntent,
        OpenOptionOrders,
        OpenOptionOrdersQuery,
        OptionClientOrderRef,
        OptionForceExit,
        OptionMarks,
        OptionOrderProbe,
        OptionOrderRef,
        OptionOrderView,
        OptionQuotesRequest,
        OptionTradeInput,
        OptionTradeResult,
        OptionTradeSpec,
        OptionTradeState,
        OptionTradeStatus,
        OptionTradeView,
        book_close_fill,
        close_intent,
        entry_intent,
        filled_units,
        mark_to_close,
        natural_debit,
        opening_legs,
        order_attempt,
        units_open,
        unusable_quotes,
    )
    from workflows.calls import call, failure, failure_kind, ledger
    from workflows.details import Details
    from workflows.policies import BROKER_READ, BROKER_SUBMIT, BROKER_WRITE

# While an order works, look every second (entry walk and close), not every check interval.
ORDER_POLL = timedelta(seconds=1)
# The trade's final row must land: a write that spent its retries is tried again this often.
LEDGER_RETRY = timedelta(seconds=30)
# Patches (running trades replay as they ran; new runs take the new way):
# a refused close waits twice as long each time (up to check_interval) instead of 1 s;
CLOSE_BACKOFF = "option-close-backoff"
# no order goes out while the market is closed (the broker's clock says when it opens);
ORDERS_IN_SESSION = "option-orders-in-session"
# the row is written when the units open change (a partial close), not only on status.
ROW_OPEN_UNITS = "option-row-open-units"
# Refused closes in a row after which the trade logs an ERROR (a person should look).
REFUSALS_TO_REPORT = 5


@workflow.defn(name=option_trade.WORKFLOW.name)
class OptionTradeWorkflow:
    """Opens a defined-risk option structure once, then closes it once by rule or on demand."""

    @workflow.init
    def __init__(self, request: OptionTradeInput) -> None:
        self._spec: OptionTradeSpec = request.spec
        self._state: OptionTradeState = request.state or OptionTradeState()
        self._legs = opening_legs(request.spec.plan)
        self._lock = asyncio.Lock()
        self._wake = False
        # What the ledger row shows: its status, a held-back close's legs and (new runs) the
        # units open (None: unwritten).
        self._recorded: tuple[OptionTradeStatus, str | None, int | None] | None = None
        self._row: OptionTradeRecord | None = None  # the row as the last write found it
        self._row_closed_reported = False

    @workflow.run
    async def run(self, request: OptionTradeInput) -> OptionTradeResult:
        """Enter, watch and exit; continue-as-new when history grows."""
        state = self._state
        self._publish()
        # The row lands before any order is sent: without it the trade's max loss is in no
        # heat and reconcile would take its legs for someone else's.
        await self._record_until_written()
        self._check_row()
        if request.resume_orders and not state.status.is_terminal:
            await self._resume_orders()
        while not state.status.is_terminal:
            if workflow.info().is_continue_as_new_suggested():
                await workflow.wait_condition(workflow.all_handlers_finished)
                workflow.continue_as_new(OptionTradeInput(spec=self._spec, state=state))
            self._wake = False
            async with self._lock:
                try:
                    await self._step()
                    await self._record()
                    self._check_row()
                except ActivityError as err:
                    # Retries spent: the answer is unknown, so change nothing and look again.
                    state.note = f"check failed, retrying: {failure(err)}"
                self._publish()
            if state.status.is_terminal:
                break
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(
                    lambda: self._wake,
                    timeout=self._next_check_in(),
                    timeout_summary=f"next check of option trade {self._spec.trade_id}",
                )
        await self._record_until_written()
        await workflow.wait_condition(workflow.all_handlers_finished)
        return OptionTradeResult(
            trade_id=self._spec.trade_id,
            status=state.status,
            exit_reason=state.exit_reason,
            credit=state.credit,
            exit_debit=state.exit_debit,
            realized_pnl=state.realized_pnl,
        )

    async def _record_until_written(self) -> None:
        """Write the row, trying again every LEDGER_RETRY until it lands."""
        while self._recorded != self._recordable():
            try:
                await self._record()
            except ActivityError as err:
                self._state.note = f"ledger write failed, retrying: {failure(err)}"
                self._publish()
                await workflow.sleep(LEDGER_RETRY, summary="retry the ledger write")

    def _recordable(self) -> tuple[OptionTradeStatus, str | None, int | None]:
        """What the row must show: the status, a held-back close's legs, the units open."""
        state = self._state
        units = units_open(self._spec, state) if workflow.patched(ROW_OPEN_UNITS) else None
        return state.status, state.legs_mismatch, units

    async def _record(self) -> None:
        """Write the ledger row when its status (or a held-back close) changed (idempotent)."""
        recordable = self._recordable()
        if self._recorded == recordable:
            return
        status = self._state.status
        info = workflow.info()
        write = option_trade_write(self._spec, self._state, info.workflow_id, workflow.now())
        result = await ledger(
            OptionLedgerActivities.record_option_trade,
            write,
            f"ledger: option trade {self._spec.trade_id} {status.value}",
        )
        self._row = result.trade
        self._recorded = recordable

    def _check_row(self) -> None:
        """A row closed while this run has not ended: before any order went out, the trade
        ends here (its start was given up, or reconcile found no workflow for it); after, it
        goes on protecting itself and says loudly that its risk is missing from the heat."""
        state, row = self._state, self._row
        if row is None or row.closed_at is None or state.status.is_terminal:
            return
        why = f"its ledger row was closed ({row.exit_reason or row.note or row.status.value})"
        nothing_sent = (
            state.status is OptionTradeStatus.PENDING_ENTRY
            and state.entry_attempt == 0
            and state.entry_order_id is None
        )
        if nothing_sent:
            self._end_entry(f"{why} before any order was sent; nothing sent")
        elif not self._row_closed_reported:
            self._row_closed_reported = True
            state.note = f"{why} while the trade is {state.status.value}: its risk is not counted"
            workflow.logger.error("option trade %s: %s", self._spec.trade_id, state.note)

    async def _resume_orders(self) -> None:
        """A new run of an ended trade: take over a closing order the old run left working
        (its attempt counter is gone; a second close beside it could fill twice)."""
        state, trade_id = self._state, self._spec.trade_id
        while True:
            try:
                found: OpenOptionOrders = await call(
                    OptionOrderActivities.open_option_orders,
                    OpenOptionOrdersQuery(prefix=f"{trade_id}-"),
                    BROKER_READ,
                    f"working orders of {trade_id} before resuming it",
                )
                break
            except ActivityError as err:  # unknown: send nothing until the broker answers
                state.note = f"resuming: open orders unknown, asking again: {failure(err)}"
                self._publish()
                await workflow.sleep(LEDGER_RETRY, summary="ask again for the open orders")
        closes = [
            (attempt, order)
            for order in found.orders
            if (attempt := order_attempt(order.client_order_id, trade_id, CLOSE_ROLE)) is not None
        ]
        if not closes:
            return
        attempt, order = max(closes, key=lambda found_close: found_close[0])
        state.exit_order_id, state.exit_submitted_at = order.id, workflow.now()
        state.exit_attempt = attempt
        if state.status is OptionTradeStatus.OPEN:
            state.status = OptionTradeStatus.CLOSING
            state.exit_reason = state.exit_reason or RESTARTED_CLOSE
        state.note = f"resumed: close {order.client_order_id} was still working ({order.status})"
        workflow.logger.warning("option trade %s %s", trade_id, state.note)

    def _next_check_in(self) -> timedelta:
        state, now = self._state, workflow.now()
        if state.wait_until is not None and now < state.wait_until:
            return max(state.wait_until - now, ORDER_POLL)  # the market opens then
        if state.status is OptionTradeStatus.OPEN or state.legs_mismatch is not None:
            return self._spec.check_interval
        refused = state.status is OptionTradeStatus.CLOSING and state.exit_order_id is None
        if refused and state.close_refusals and workflow.patched(CLOSE_BACKOFF):
            ceiling = max(self._spec.check_interval, ORDER_POLL)
            backoff: timedelta = ORDER_POLL * (2 ** min(state.close_refusals, 16))
            return min(backoff, ceiling)
        return ORDER_POLL

    async def _step(self) -> None:
        state = self._state
        state.checks += 1
        if state.status is OptionTradeStatus.PENDING_ENTRY:
            await self._advance_entry()
        elif state.status is OptionTradeStatus.OPEN:
            await self._check_rules()
        elif state.status is OptionTradeStatus.CLOSING:
            await self._advance_close()

    # --- entry -----------------------------------------------------------------------------

    async def _advance_entry(self) -> None:
        state = self._state
        if state.entry_order_id is None:
            intent = entry_intent(self._spec, state.entry_attempt)
            if intent is None:
                self._end_entry(f"no fill within the walk limit ({state.entry_attempt} prices)")
                return
            if state.force_exit is not None:
                # An earlier send of this price may have landed without an answer: the entry
                # ends only once the broker says this order is absent (or it is cancelled).
                probe = await self._lookup(intent.client_order_id)
                if probe.outcome is ProbeOutcome.ABSENT:
                    self._end_entry(f"exit asked before the entry was sent: {state.force_exit}")
                    return
                if probe.order is None:
                    return
                order = probe.order
            else:
                placed = await self._place(intent)
                if placed is None:
                    return
                order = placed
            state.entry_order_id, state.entry_submitted_at = order.id, workflow.now()
        else:
            order = await self._order(state.entry_order_id)
        if order.status is OrderStatus.FILLED:
            self._opened(order)
            return
        due = state.entry_submitted_at is None or (
            workflow.now() - state.entry_submitted_at >= self._spec.entry_wait
        )
        if order.is_final or due or state.force_exit is not None:
            await self._walk(order)
            return
        state.note = f"entry {order.client_order_id} working at {order.limit_price}"

    async def _walk(self, order: OptionOrderView) -> None:
        """Cancel the unfilled entry; once it is final, the next price goes out (or none)."""
        state = self._state
        if not order.is_final:
            order = await call(
                OptionOrderActivities.cancel_option_order,
                OptionOrderRef(order_id=order.id),
                BROKER_WRITE,
                f"cancel entry {order.client_order_id} ({self._spec.trade_id})",
            )
        if order.status is OrderStatus.FILLED or (order.is_final and filled_units(order) > 0):
            self._opened(order)  # a part filled before the cancel: that part is the trade
            return
        if not order.is_final:
            state.note = f"entry {order.client_order_id}: cancel pending ({order.status})"
            return
        state.entry_order_id, state.entry_submitted_at = None, None
        state.entry_attempt += 1
        state.note = f"entry {order.client_order_id} {order.status} unfilled; walking"
        self._wake = True

    def _opened(self, order: OptionOrderView) -> None:
        """Open with what the entry filled (all of it, or the part a cancel left filled)."""
        state = self._state
        net = order.filled_avg_price if order.filled_avg_price is not None else order.limit_price
        # A credit order fills for a credit: its size is the credit, whichever sign the broker
        # reports it with (Alpaca's net prices are negative for a credit; unverified for fills).
        state.credit = abs(net) if net is not None else None
        state.open_qty = filled_units(order) or self._spec.qty
        state.status = OptionTradeStatus.OPEN
        part = (
            "" if state.open_qty == self._spec.qty else f" ({state.open_qty} of {self._spec.qty})"
        )
        state.note = f"opened by {order.client_order_id}{part} for a credit of {state.credit}"
        workflow.logger.info("option trade %s %s", self._spec.trade_id, state.note)
        metrics.option_trade(metrics.OPTION_OPENED)
        self._wake = True  # mark it now

    def _end_entry(self, why: str) -> None:
        state = self._state
        state.status = OptionTradeStatus.ENTRY_FAILED
        state.exit_reason = ENTRY_FAILED
        state.note = why
        workflow.logger.info("option trade %s entry failed: %s", self._spec.trade_id, why)
        metrics.option_trade(ENTRY_FAILED)

    # --- orders ----------------------------------------------------------------------------

    async def _lookup(self, cid: str) -> OptionOrderProbe:
        """exists / absent / unknown for our client_order_id (unknown: the note says so)."""
        probe = await call(
            OptionOrderActivities.probe_option_order,
            OptionClientOrderRef(client_order_id=cid),
            BROKER_READ,
            f"look up {cid} before sending it",
        )
        if probe.outcome is ProbeOutcome.UNKNOWN:
            self._state.note = f"{cid}: broker answer unknown ({probe.error}); asking again"
        return probe

    async def _place(self, intent: MlegOrderIntent) -> OptionOrderView | None:
        """The order under this client_order_id: found at the broker, or sent now (once)."""
        probe = await self._lookup(intent.client_order_id)
        if probe.outcome is ProbeOutcome.ABSENT:
            return await self._submit(intent)
        return probe.order  # None while the answer is unknown

    async def _market_open(self, cid: str) -> bool:
        """True when orders may go out now (for runs before ORDERS_IN_SESSION, always). While
        the market is closed an order would wait at the broker and the walk would cancel and
        resend it all night, so the trade waits for the open the broker's clock names."""
        state = self._state
        if not workflow.patched(ORDERS_IN_SESSION):
            return True
        clock: MarketClock = await call(
            BrokerActivities.get_clock,
            None,
            BROKER_READ,
            f"broker clock: may {cid} go out now?",
        )
        if clock.is_open:
            state.wait_until = None
            return True
        # How long until the open, on the broker's own clock (a simulated one may not be now).
        until_open = max(clock.next_open - clock.timestamp, ORDER_POLL)
        state.wait_until = workflow.now() + until_open
        state.note = f"market closed: {cid} waits for the open at {clock.next_open}"
        return False

    async def _submit(self, intent: MlegOrderIntent) -> OptionOrderView | None:
        """Send an order the broker was just seen not to have (a retry resolves by lookup);
        None when it was not sent (market closed, refused) or its outcome is unknown."""
        cid = intent.client_order_id
        if not await self._market_open(cid):
            return None
        try:
            return await call(
                OptionOrderActivities.submit_mleg_order,
                intent,
                BROKER_SUBMIT,
                f"mleg {cid} limit {intent.limit_price} x{intent.qty}",
            )
        except ActivityError as err:
            kind, message = failure_kind(err)
            if isinstance(err.cause, ApplicationError) and err.cause.non_retryable:
                self._refused(cid, f"{kind}: {message}")
            else:
                self._state.note = f"{cid} outcome unknown, looking again: {kind}: {message}"
            return None

    def _refused(self, cid: str, why: str) -> None:
        state = self._state
        if state.status is OptionTradeStatus.PENDING_ENTRY:
            self._end_entry(f"entry {cid} refused: {why}")
            return
        state.close_refusals += 1
        state.exit_attempt += 1
        state.note = f"close {cid} refused ({state.close_refusals} in a row): {why}; trying again"
        if state.close_refusals == REFUSALS_TO_REPORT:
            workflow.logger.error("option trade %s: %s", self._spec.trade_id, state.note)

    async def _order(self, order_id: str) -> OptionOrderView:
        return await call(
            OptionOrderActivities.get_option_order,
            OptionOrderRef(order_id=order_id),
            BROKER_READ,
            f"check option order {order_id} ({self._spec.trade_id})",
        )

    async def _marks(self) -> OptionMarks:
        return await call(
            OptionOrderActivities.option_marks,
            OptionQuotesRequest(symbols=[leg.symbol for leg in self._legs]),
            BROKER_READ,
            f"quotes of {self._spec.plan.underlying} condor legs ({self._spec.trade_id})",
        )

    # --- open: the rules, then one close ------------------------------------------------------

    async def _check_rules(self) -> None:
        state, spec = self._state, self._spec
        marks = await self._marks()
        unusable = unusable_quotes(self._legs, marks)
        if unusable is not None and state.force_exit is None:
            state.note = f"{unusable}: no exit decision on these quotes"
            return
        state.mark, state.marked_at = mark_to_close(self._legs, marks), marks.as_of
        position = CondorPositionState(
            underlying=spec.plan.underlying,
            expiry=spec.plan.expiry,
            credit=state.credit or spec.limit_credit,
            qty=max(units_open(spec, state), 1),
        )
        decision = next_exit(position, state.mark, marks.session_date, workflow.now(), spec.rules)
        state.decision = decision
        state.note = f"{decision.reason}: {decision.detail}"
        if state.force_exit is not None:
            state.exit_reason = FORCED_EXIT
        elif decision.action is ExitAction.CLOSE:
            state.exit_reason = decision.reason
        else:
            return
        state.status = OptionTradeStatus.CLOSING
        await self._send_close(marks)

    async def _legs_held(self) -> bool:
        """True when every leg is held as opened; else the trade ends (gone) or waits."""
        state, trade_id = self._state, self._spec.trade_id
        held = await call(
            OptionPositionActivities.option_legs_held,
            LegsHeldRequest(symbols=[leg.symbol for leg in self._legs]),
            BROKER_READ,
            f"legs held before closing {trade_id}",
        )
        check = legs_verdict(self._legs, units_open(self._spec, self._state), held)
        if check.verdict is LegsVerdict.HELD:
            state.legs_mismatch = None
            return True
        if check.verdict is LegsVerdict.GONE:
            state.status = OptionTradeStatus.CLOSED
            state.exit_reason = CLOSED_OUTSIDE
            state.note = f"no leg held any more, nothing to close ({check.detail})"
            workflow.logger.warning("option trade %s %s", trade_id, state.note)
            metrics.option_trade(CLOSED_OUTSIDE)
            return False
        state.legs_mismatch = check.detail
        state.note = held_back_note(check.detail)
        workflow.logger.error("option trade %s %s", trade_id, state.note)
        metrics.option_legs_mismatch()
        return False

    async def _send_close(self, marks: OptionMarks) -> None:
        """The closing order: this attempt's own if the broker has it (an earlier send whose
        answer was lost, perhaps filled), else one sent now - only for legs still held."""
        state = self._state
        units = units_open(self._spec, state)
        debit = natural_debit(self._legs, marks)
        intent = close_intent(self._spec, debit, state.exit_attempt, units)
        probe = await self._lookup(intent.client_order_id)
        order = probe.order
        if probe.outcome is ProbeOutcome.ABSENT:
            if not await self._legs_held():
                return
            order = await self._submit(intent)
        if order is not None:
            state.exit_order_id, state.exit_submitted_at = order.id, workflow.now()
            state.close_refusals = 0
            self._wake = True

    async def _advance_close(self) -> None:
        state = self._state
        if state.exit_order_id is None:
            await self._send_close(await self._marks())
            return
        order = await self._order(state.exit_order_id)
        if order.status is OrderStatus.FILLED:
            self._closed(order)
            return
        due = state.exit_submitted_at is None or (
            workflow.now() - state.exit_submitted_at >= self._spec.entry_wait
        )
        if not order.is_final and due:
            order = await call(
                OptionOrderActivities.cancel_option_order,
                OptionOrderRef(order_id=order.id),
                BROKER_WRITE,
                f"cancel close {order.client_order_id} to reprice ({self._spec.trade_id})",
            )
            if order.status is OrderStatus.FILLED:
                self._closed(order)
                return
        state.note = f"close {order.client_order_id} {order.status}"
        if order.is_final:
            if filled_units(order) > 0 and self._book_close(order) == 0:
                self._closed(order)  # the part that filled was all that was left
                return
            state.exit_order_id = None
            state.exit_attempt += 1  # the rest goes out at a fresh natural debit
            self._wake = True

    def _book_close(self, order: OptionOrderView) -> int:
        """Book what a closing order filled; the units still open."""
        state = self._state
        net = order.filled_avg_price if order.filled_avg_price is not None else order.limit_price
        debit = abs(net) if net is not None else None  # a closing debit, whatever its sign
        if debit is None or state.credit is None:
            raise ApplicationError(f"close {order.client_order_id} filled without a price")
        if state.open_qty is None:
            state.open_qty = self._spec.qty
        units = min(filled_units(order) or state.open_qty, state.open_qty)
        return book_close_fill(state, units, debit)

    def _closed(self, order: OptionOrderView) -> None:
        state = self._state
        if units_open(self._spec, state) > 0:
            self._book_close(order)
        state.status = OptionTradeStatus.CLOSED
        state.note = (
            f"closed by {order.client_order_id} ({state.exit_reason}) for {state.exit_debit}"
        )
        workflow.logger.info("option trade %s %s", self._spec.trade_id, state.note)
        metrics.option_trade(state.exit_reason)

    # --- messages and details -----------------------------------------------------------------

    @workflow.signal(name=option_trade.FORCE_EXIT.name)
    def force_exit(self, request: OptionForceExit) -> None:
        """Close now (an unfilled entry is cancelled); repeats converge on one exit."""
        if self._state.status.is_terminal or self._state.force_exit is not None:
            return
        self._state.force_exit = request.reason
        self._wake = True

    @workflow.query(name=option_trade.STATUS.name)
    def status(self) -> OptionTradeView:
        """The trade's legs and full state."""
        return OptionTradeView(
            trade_id=self._spec.trade_id,
            underlying=self._spec.plan.underlying,
            status=self._state.status,
            legs=self._legs,
            state=self._state.model_copy(deep=True),
        )

    def _publish(self) -> None:
        state, spec = self._state, self._spec
        decision = state.decision
        page = Details(f"Option trade {spec.trade_id}: {spec.plan.underlying} iron condor")
        page.bullets(
            [
                f"status {state.status.value}",
                f"credit {state.credit if state.credit is not None else '-'} (asked "
                f"{spec.limit_credit}, walk {spec.walk_step} up to {spec.max_walk})",
                f"mark {state.mark if state.mark is not None else '-'} at {state.marked_at}",
                f"P&L {state.realized_pnl if state.realized_pnl is not None else '-'} realized, "
                f"{decision.pnl_usd if decision else '-'} open",
                f"next rule {decision.next_rule if decision else '-'}",
                f"note {state.note or '-'}",
            ]
        )
        page.table(["leg", "side", "ratio"], [(x.symbol, x.side, x.ratio_qty) for x in self._legs])
        page.publish()
