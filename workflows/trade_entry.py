"""EntrySteps: the trade's start: its ledger row, the entry order, an adopted position."""

from __future__ import annotations

from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.trade_base import TradeBase

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from trading.broker_models import BrokerOrder, OrderStatus
    from trading.ledger_records import (
        CloseReason,
        OrderRole,
        TradeCreate,
        TradeEntryFill,
        TradeOrigin,
        TradeStatus,
    )
    from trading.trade_logic import (
        EntryDead,
        EntryDue,
        EntryFilled,
        entry_intent,
        entry_step,
        protective_legs,
    )
    from workflows.calls import failure_kind, ledger
    from workflows.policies import BROKER_SUBMIT


# Patch id: entries before it left partly filled shares bare until the entry timed out.
PARTIAL_ENTRY_GRACE = "partial-entry-grace"


class EntrySteps(TradeBase):
    """Creates the trade in the ledger and advances its entry until it is open or dead."""

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
            f"ledger: create trade {spec.trade_id} ({spec.symbol})",
        )
        self._state.created = True

    async def _advance_entry(self) -> None:
        state = self._state
        order_id = state.entry_order_id or await self._submit_entry()
        if order_id is None:
            return
        order = await self._order(order_id, "check the entry")
        now = workflow.now()
        if order.filled_qty > 0 and not order.is_terminal and state.partial_fill_at is None:
            state.partial_fill_at = now  # these shares have no working stop yet
        grace = None
        if state.partial_fill_at is not None and workflow.patched(PARTIAL_ENTRY_GRACE):
            grace = self._spec.partial_fill_grace
        step = entry_step(order, now, state.entry_deadline, state.partial_fill_at, grace)
        if state.exit is not None and not state.entry_cancel_requested and not order.is_terminal:
            step = EntryDue()  # asked to exit before the entry filled: stop buying
        if isinstance(step, EntryDue):
            await self._cancel_entry(order, step.partial)
            return
        if isinstance(step, EntryDead):
            await self._record_order(order, OrderRole.ENTRY, None)
            await self._close(step.reason, None)
            return
        await self._record_entry_fill(order)
        if not isinstance(step, EntryFilled):
            state.last_check_note = f"entry working, filled {order.filled_qty} of {self._spec.qty}"
            return
        await self._entry_filled(order)

    async def _submit_entry(self) -> str | None:
        """Submit the entry order; its broker id once the broker holds it."""
        state, spec = self._state, self._spec
        intent = entry_intent(spec, state.entry_attempt)
        if state.entry_deadline is None:
            state.entry_deadline = workflow.now() + spec.entry_timeout
        try:
            order = await self._submit(intent, BROKER_SUBMIT, "entry")
        except ActivityError as err:
            kind, message = failure_kind(err)
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.non_retryable:
                state.last_check_note = f"entry refused: {kind}: {message}"
                await self._close(CloseReason.ENTRY_FAILED, None)
                return None
            # Outcome unknown (the broker may have it): resend the same client_order_id on
            # the next check; the gateway resolves a duplicate to the order that landed.
            state.last_check_note = f"entry outcome unknown, retrying: {kind}: {message}"
            return None
        state.entry_order_id = order.id
        await self._record_order(order, OrderRole.ENTRY, intent)
        return order.id

    async def _cancel_entry(self, order: BrokerOrder, partial: bool) -> None:
        """The entry is due (timed out, partly filled too long, or an exit was asked for):
        cancel what is unfilled. The filled shares get their own stop once it is final."""
        state = self._state
        why = "partly filled too long" if partial else "due unfilled"
        if not state.entry_cancel_requested:
            state.entry_cancel_requested = True
            await self._cancel(order.id, f"the entry is {why}")
            self._wake = True
        state.last_check_note = f"entry {why}: cancel requested"
        self._in_flight = True

    async def _record_entry_fill(self, order: BrokerOrder) -> None:
        state = self._state
        if order.filled_qty <= state.filled_qty or order.filled_avg_price is None:
            return
        state.filled_qty = order.filled_qty
        state.entry_price = order.filled_avg_price
        await ledger(
            LedgerActivities.record_entry_fill,
            TradeEntryFill(
                trade_id=self._spec.trade_id,
                qty=order.filled_qty,
                avg_price=order.filled_avg_price,
                filled_at=order.filled_at or workflow.now(),
            ),
            f"ledger: trade {self._spec.trade_id} entry filled {order.filled_qty}",
        )

    async def _entry_filled(self, order: BrokerOrder) -> None:
        state = self._state
        if order.status is not OrderStatus.FILLED and state.partial_fill_at is not None:
            # A partly filled entry ended: its legs went with it; the shares were bare since
            # the first partial fill, and the rescue's gap is measured from then.
            state.stop_missing_since = state.partial_fill_at
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
            f"ledger: trade {self._spec.trade_id} adopted {qty} @ {avg_price}",
        )
        # An adopted stop is kept as it is (never replaced), so record it here; a stop that
        # turns out dead is rescued and recorded again, later.
        await self._record_protection()
