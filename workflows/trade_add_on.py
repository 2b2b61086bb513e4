"""AddOnSteps: buy more of an open trade's symbol, then one stop covers the whole position.

The buy is an OTO (market buy + a stop-loss leg at the trade's stop): Alpaca's wash-trade rule
refuses a simple buy while the trade's sell stop is open, and complex orders are exempt. Once
the buy is over, its stop leg is cancelled first - it holds the bought shares, and share
reservation refuses a stop for the whole position while another order holds part of it - and
then the normal protection check resizes (or replaces) the trade's stop to the position.

The trade remembers every add-on (TradeState.add_ons): a repeat of a signal key answers from
there, and an add-on left half done (an outage, a cancel still pending) is finished by the
guard's next protection check before it sizes any stop.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

from workflows.trade_protection import ProtectionSteps

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from contracts import trade
    from trading.broker_models import (
        BrokerOrder,
        ClientOrderRef,
        OrderProbe,
        PositionProbe,
        ProbeOutcome,
    )
    from trading.ledger_records import OrderRole, TradeEntryFill
    from trading.trade_logic import (
        ProtectionAction,
        Wait,
        add_on_client_order_id,
        add_on_intent,
        add_on_refusal,
        add_on_too_large,
        average_entry,
        protective_legs,
    )
    from trading.trade_models import AddOn, AddOnRecord, AddOnResult
    from workflows.calls import call, failure_kind, ledger
    from workflows.policies import BROKER_READ, BROKER_SUBMIT
    from workflows.records import audit

ADD_ON_POLL = timedelta(seconds=1)
# Past its fill deadline, how long the update follows a cancel before it answers and leaves
# the rest to the guard (which finishes the add-on before it sizes a stop).
ADD_ON_SETTLE_MAX = timedelta(seconds=30)


def refused(message: str, kind: str = "AddOnRefused") -> ApplicationError:
    """A final answer to the caller: the add-on will not happen (retrying changes nothing)."""
    return ApplicationError(message, type=kind, non_retryable=True)


class AddOnSteps(ProtectionSteps):
    """The ADD_ON update's steps, and finishing an add-on before protection sizes a stop."""

    def _add_on_refusal(self, request: AddOn) -> str | None:
        state = self._state
        return add_on_refusal(
            state.status, state.exit is not None, self._spec.protect_only, request.qty
        )

    async def _add_on(self, request: AddOn) -> AddOnResult:
        """Place the add-on once, wait for it, and resize the stop (under the trade's lock)."""
        state = self._state
        record = state.add_on_of(request.signal_key)
        if record is None:
            refusal = self._add_on_refusal(request)
            if refusal is not None:
                raise refused(refusal)
            record = await self._new_add_on(request)
        if record.result is not None:
            return record.result  # a repeat: the answer given the first time
        if record.refused is not None:
            raise refused(record.refused)
        try:
            if record.order_id is None:
                await self._submit_add_on(record)
            await self._follow_add_on(record)
            record.result = await self._after_add_on(record)
        except ActivityError as err:
            kind, message = failure_kind(err)
            state.last_check_note = f"add-on {record.client_order_id} unfinished: {message}"
            raise refused(
                f"add-on {record.client_order_id} unfinished ({kind}: {message}); "
                "the guard finishes it and keeps the stop on the whole position",
                "AddOnIncomplete",
            ) from None
        return record.result

    async def _new_add_on(self, request: AddOn) -> AddOnRecord:
        """Check the add-on's cost and remember it under its deterministic client_order_id."""
        state, spec = self._state, self._spec
        if request.max_notional is not None:
            quote = await self._quote("to bound the add-on's cost")
            too_large = add_on_too_large(
                request.qty, quote.ask if quote else None, request.max_notional
            )
            if too_large is not None:
                raise refused(too_large, "AddOnTooLarge")
        now = workflow.now()
        record = AddOnRecord(
            signal_key=request.signal_key,
            qty=request.qty,
            client_order_id=add_on_client_order_id(
                spec.trade_id, request.signal_key, {a.client_order_id for a in state.add_ons}
            ),
            requested_at=now,
            deadline=now + spec.add_on_fill_timeout,
        )
        state.add_ons.append(record)
        return record

    async def _submit_add_on(self, record: AddOnRecord) -> None:
        """Submit the OTO once: a retry or a repeat resolves to the order that landed."""
        spec = self._spec
        intent = add_on_intent(
            record.client_order_id, spec.symbol, record.qty, self._state.stop_price
        )
        try:
            order = await self._submit(intent, BROKER_SUBMIT, "add-on")
        except ActivityError as err:
            cause = err.cause
            if not (isinstance(cause, ApplicationError) and cause.non_retryable):
                raise  # outcome unknown: the guard looks it up by client_order_id
            kind, message = failure_kind(err)
            record.refused = f"the broker refused the add-on: {kind}: {message}"
            record.done = True
            raise refused(record.refused) from None
        record.order_id = order.id
        self._known.saw_order(order, workflow.now())
        await self._record_order(order, OrderRole.ADD_ON, intent)

    async def _follow_add_on(self, record: AddOnRecord) -> None:
        """Poll until the add-on and its stop leg are over (bounded: past the fill deadline it
        is cancelled, and the guard finishes what a slow cancel leaves)."""
        give_up = record.deadline + ADD_ON_SETTLE_MAX
        while not await self._settle_add_on(record) and workflow.now() < give_up:
            await workflow.sleep(
                ADD_ON_POLL, summary=f"wait for the add-on {record.client_order_id} to fill"
            )

    async def _settle_add_on(self, record: AddOnRecord) -> bool:
        """One look at an add-on: cancel it past its deadline, take in its fill once it is
        over, cancel its stop leg; True once nothing of it works at the broker any more."""
        order = await self._add_on_order(record)
        if order is None:
            return record.done
        if not order.is_terminal and workflow.now() >= record.deadline:
            # Cancelling the parent cancels its held stop leg with it (one OTO group).
            order = await self._cancel_until_final(order.id, "the add-on did not fill in time")
        if not order.is_terminal:
            return False
        await self._take_in_fill(record, order)
        leg, _ = protective_legs(order)
        if leg is not None:
            record.stop_leg_id = leg.id
            if not leg.is_terminal:
                leg = await self._cancel_until_final(leg.id, "one stop covers the whole position")
            if not leg.is_terminal:
                return False
        record.done = True
        await self._record_order(order, OrderRole.ADD_ON, None)
        return True

    async def _add_on_order(self, record: AddOnRecord) -> BrokerOrder | None:
        """The add-on's order now, or None when that is unknown (or it is gone: then the add-on
        is over). One whose submit's outcome was unknown is looked up by its client_order_id."""
        if record.order_id is not None:
            probe = await self._probe(record.order_id)
            if probe is not None and probe.outcome is ProbeOutcome.ABSENT:
                record.done = True  # the broker has no such order: nothing of it works
            return probe.order if probe is not None else None
        try:
            order = await call(
                BrokerActivities.get_order_by_client_id,
                ClientOrderRef(client_order_id=record.client_order_id),
                BROKER_READ,
                f"look up add-on {record.client_order_id}",
            )
        except ActivityError as err:
            kind, _ = failure_kind(err)
            if kind == "NotFound":
                record.refused = "the add-on never reached the broker"
                record.done = True
            return None
        record.order_id = order.id
        return order

    async def _take_in_fill(self, record: AddOnRecord, order: BrokerOrder) -> None:
        """Fold the finished add-on's fill into the trade's quantity and average entry."""
        state, spec = self._state, self._spec
        price = order.filled_avg_price
        if record.fill_recorded or order.filled_qty <= 0 or price is None:
            record.fill_recorded = True
            return
        qty = state.filled_qty + order.filled_qty
        entry_price = average_entry(state.filled_qty, state.entry_price, order.filled_qty, price)
        await ledger(
            LedgerActivities.record_entry_fill,
            TradeEntryFill(
                trade_id=spec.trade_id,
                qty=qty,
                avg_price=entry_price,
                filled_at=order.filled_at or workflow.now(),
            ),
            f"ledger: trade {spec.trade_id} add-on {record.client_order_id} filled "
            f"{order.filled_qty} @ {price}",
        )
        record.filled_qty, record.avg_price, record.fill_recorded = order.filled_qty, price, True
        state.filled_qty, state.entry_price = qty, entry_price

    async def _after_add_on(self, record: AddOnRecord) -> AddOnResult:
        """Resize the stop to the position, audit the add-on, and answer."""
        state = self._state
        note = ""
        if not record.done:
            note = "the add-on is still settling at the broker; the guard finishes it"
        elif state.exit is not None:
            note = "an exit was asked for meanwhile: it covers the whole position"
        else:
            position = await self._position_now()
            if position.outcome is ProbeOutcome.EXISTS and position.position is not None:
                state.position_qty = position.position.qty
                await self._protect(position)
            note = state.last_check_note
        stop = await self._probe(state.stop_order_id)
        result = AddOnResult(
            filled_qty=record.filled_qty,
            avg_price=record.avg_price,
            position_qty=state.position_qty,
            stop_order_id=state.stop_order_id,
            stop_qty=_covered(stop),
            order_id=record.order_id,
            client_order_id=record.client_order_id,
            entry_price=state.entry_price,
            note=note,
        )
        await audit(
            trade.ADD_ON.name,
            record.signal_key,
            {
                "client_order_id": record.client_order_id,
                "order_id": record.order_id,
                "qty": str(record.qty),
                "filled_qty": str(record.filled_qty),
                "avg_price": None if record.avg_price is None else str(record.avg_price),
                "entry_price": None if state.entry_price is None else str(state.entry_price),
                "position_qty": str(state.position_qty),
                "stop_order_id": state.stop_order_id,
                "stop_qty": str(result.stop_qty),
            },
            key=record.client_order_id,
            trade_id=self._spec.trade_id,
        )
        return result

    # --- the guard finishes what an add-on left --------------------------------------------

    async def _protect(
        self, position: PositionProbe, stop: OrderProbe | None = None
    ) -> ProtectionAction:
        """Protection, once no add-on of ours holds shares or may still buy some.

        An add-on's stop leg holds shares a whole-position stop needs (share reservation), and
        a fill it brings changes the position: finish it, then look again from the broker.
        """
        unfinished = self._state.unfinished_add_ons()
        if not unfinished:
            return await super()._protect(position, stop)
        for record in unfinished:
            await self._settle_add_on(record)
        working = self._state.unfinished_add_ons()
        self._wake = not working  # all finished: look again from the broker at once
        now = workflow.now()
        if working and all(now >= a.deadline + ADD_ON_SETTLE_MAX for a in working):
            # Stuck at the broker well past its deadline: protect as well as can be, anyway.
            return await super()._protect(position, stop)
        self._in_flight = bool(working)
        reason = (
            f"add-on {working[0].client_order_id} still works: no stop is sized until it is over"
            if working
            else "add-ons finished: checking the position again"
        )
        self._state.last_check_note = reason
        return Wait(reason=reason, in_transition=bool(working))

    async def _close_flat(self) -> None:
        """Flat: an add-on still working would buy (or its leg sell short): cancel it first."""
        for record in self._state.unfinished_add_ons():
            for order_id in (record.order_id, record.stop_leg_id):
                if order_id is not None:
                    await self._cancel_quietly(order_id)
        await super()._close_flat()


def _covered(stop: OrderProbe | None) -> Decimal:
    """What an active stop still sells (0 for none, or one that is not working)."""
    if stop is None or stop.order is None or not stop.order.is_active:
        return Decimal(0)
    return (stop.order.qty or Decimal(0)) - stop.order.filled_qty
