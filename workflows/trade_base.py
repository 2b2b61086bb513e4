"""TradeBase: a trade's state, its ledger records and published details, and closing it once."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import SearchAttributeKey
from temporalio.exceptions import ActivityError
from temporalio.types import MethodSyncSingleParam

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from ops import metrics
    from trading.broker_models import (
        BrokerOrder,
        CancelResult,
        OrderIntent,
        OrderProbe,
        OrderRef,
        PositionProbe,
        ProbeOutcome,
        Quote,
        QuotesRequest,
        SymbolRef,
    )
    from trading.ledger_records import (
        CloseReason,
        ExitIntent,
        OrderRole,
        OrderUpsert,
        RiskSeverity,
        TradeClose,
        TradeExitIntent,
        TradeOrigin,
        TradeProtection,
        TradeStatus,
        TradeTransition,
        terminal_status_for,
    )
    from trading.models import JsonScalar
    from trading.trade_knowledge import Knowledge
    from trading.trade_logic import close_reason_for, exit_price_of, realized_pnl
    from trading.trade_models import ExitPlan, TradeSpec, TradeState
    from workflows.calls import call, failure_kind, ledger
    from workflows.details import Details
    from workflows.policies import BROKER_READ, BROKER_WRITE, ActivityPolicy
    from workflows.records import audit, risk_event


R = TypeVar("R")
CANCEL_POLL = timedelta(milliseconds=250)
TRADE_ID = SearchAttributeKey.for_keyword("TradeId")
TRADE_SYMBOL = SearchAttributeKey.for_keyword("TradeSymbol")
TRADE_STATUS = SearchAttributeKey.for_keyword("TradeStatus")
TRADE_ORIGIN = SearchAttributeKey.for_keyword("TradeOrigin")
# Patch id: runs before it woke on every BrokerSync poll, checked every check_interval,
# upserted search attributes on every check and knew nothing from events (see _quiet_guard).
QUIET_GUARD = "quiet-guard"


def millis(delta: timedelta) -> int:
    """Whole milliseconds in `delta` (the unprotected-gap telemetry's unit)."""
    return int(delta.total_seconds() * 1000)


class TradeBase:
    """TradeWorkflow's state and the steps every behaviour shares: ledger writes, closing."""

    _spec: TradeSpec
    _state: TradeState
    _wake: bool
    # Something of ours is in flight at the broker (a cancel, a replace): look again soon.
    _in_flight: bool
    # What events, snapshots and our own orders said (quiet guards decide with it).
    _known: Knowledge
    # The last check found the trade protected: it may sleep until idle_check_interval.
    _idle: bool
    _published_attributes: tuple[str, ...] | None

    def _quiet_guard(self) -> bool:
        """This run decides from what it knows, sleeps long while protected, writes no
        unchanged search attributes, and lets a fresh snapshot end a transient backoff."""
        return workflow.patched(QUIET_GUARD)

    # --- ledger and broker helpers -------------------------------------------------------

    async def _set_status(self, status: TradeStatus) -> None:
        if self._state.status is status:
            return
        self._state.status = status
        await ledger(
            LedgerActivities.transition_trade,
            TradeTransition(trade_id=self._spec.trade_id, status=status, as_of=workflow.now()),
            f"ledger: trade {self._spec.trade_id} -> {status.value}",
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
            f"ledger: trade {self._spec.trade_id} protected by stop {state.stop_order_id}",
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
            f"ledger: trade {self._spec.trade_id} exit intent {plan.urgency.value}",
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
                status=order.status,
                broker_order_id=order.id,
                filled_qty=order.filled_qty,
                filled_avg_price=order.filled_avg_price,
                submitted_at=order.submitted_at,
                broker_updated_at=order.updated_at,
            ),
            f"ledger: trade {self._spec.trade_id} {role.value} order {order.client_order_id} "
            f"{order.status.value}",
        )

    async def _risk_event(
        self, kind: str, severity: RiskSeverity, key: str, detail: dict[str, JsonScalar]
    ) -> None:
        await risk_event(
            kind, severity, detail, key=key, trade_id=self._spec.trade_id, symbol=self._spec.symbol
        )

    # --- broker calls of this trade, each with the summary the Web UI shows ---------------

    async def _on_order(
        self,
        method: MethodSyncSingleParam[Any, OrderRef, R],
        policy: ActivityPolicy,
        order_id: str,
        what: str,
    ) -> R:
        """Ask the broker about (or act on) one of this trade's orders, by its broker id."""
        summary = f"{what}: order {order_id} of trade {self._spec.trade_id}"
        return await call(method, OrderRef(order_id=order_id), policy, summary)

    async def _order(self, order_id: str, why: str) -> BrokerOrder:
        """One of this trade's orders as the broker has it now."""
        return await self._on_order(BrokerActivities.get_order, BROKER_READ, order_id, why)

    async def _cancel(self, order_id: str, why: str) -> CancelResult:
        """Cancel one of this trade's orders (idempotent at the gateway)."""
        return await self._on_order(
            BrokerActivities.cancel_order, BROKER_WRITE, order_id, f"cancel ({why})"
        )

    async def _cancel_until_final(self, order_id: str, why: str) -> BrokerOrder:
        """Cancel, then follow the order for a few seconds until the broker says it is over."""
        order = (await self._cancel(order_id, why)).order
        deadline = workflow.now() + self._spec.replace_settle
        while not order.is_terminal and workflow.now() < deadline:
            await workflow.sleep(CANCEL_POLL, summary=f"wait for the cancel of {order_id}")
            order = await self._order(order_id, "follow the cancel")
        return order

    async def _submit(self, intent: OrderIntent, policy: ActivityPolicy, what: str) -> BrokerOrder:
        """Submit an order of this trade once (its client_order_id resolves a retry)."""
        return await call(
            BrokerActivities.submit_order,
            intent,
            policy,
            f"{what} {intent.client_order_id}: {intent.side.value} {intent.qty} {intent.symbol}",
        )

    async def _quote(self, why: str) -> Quote | None:
        """The latest quote of the trade's symbol, if the broker has one."""
        quotes = await call(
            BrokerActivities.latest_quotes,
            QuotesRequest(symbols=[self._spec.symbol]),
            BROKER_READ,
            f"latest quote of {self._spec.symbol} ({why})",
        )
        return quotes[0] if quotes else None

    async def _position_now(self) -> PositionProbe:
        """The broker's answer now: the trade's position exists, is absent, or is unknown."""
        return await call(
            BrokerActivities.probe_position,
            SymbolRef(symbol=self._spec.symbol),
            BROKER_READ,
            f"broker position in {self._spec.symbol} for trade {self._spec.trade_id}",
        )

    async def _cancel_quietly(self, order_id: str) -> None:
        try:
            await self._cancel(order_id, "quietly")
        except ActivityError as err:
            kind, message = failure_kind(err)
            workflow.logger.warning(
                "trade %s: cancel %s failed: %s: %s", self._spec.trade_id, order_id, kind, message
            )

    async def _probe(self, order_id: str | None) -> OrderProbe | None:
        if order_id is None:
            return None
        return await self._on_order(BrokerActivities.probe_order, BROKER_READ, order_id, "probe")

    # --- closing -------------------------------------------------------------------------

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
            plan.gap_ms = millis(workflow.now() - plan.stop_cancel_confirmed_at)
            metrics.observe(metrics.UNPROTECTED_GAP_MS, plan.gap_ms)
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
            f"ledger: close trade {spec.trade_id} ({reason.value})",
        )
        plan = state.exit
        if plan is not None and plan.gap_ms is not None:
            await audit(
                "exit_unprotected_gap",
                plan.reason,
                {"gap_ms": plan.gap_ms, "urgency": plan.urgency.value},
                key="exit",
                trade_id=spec.trade_id,
            )
        state.status = terminal_status_for(reason)
        state.last_check_note = f"closed: {reason.value}"
        workflow.logger.info("trade %s closed: %s at %s", spec.trade_id, reason, exit_price)

    # --- published details ---------------------------------------------------------------

    def _publish(self) -> None:
        """Search attributes and the Web UI's current details."""
        state, spec = self._state, self._spec
        origin = TradeOrigin.EXTERNAL if spec.protect_only else TradeOrigin.INTERNAL
        attributes = (spec.trade_id, spec.symbol, state.status.value, origin.value)
        if not self._quiet_guard() or attributes != self._published_attributes:
            workflow.upsert_search_attributes(
                [
                    key.value_set(value)
                    for key, value in zip(
                        (TRADE_ID, TRADE_SYMBOL, TRADE_STATUS, TRADE_ORIGIN),
                        attributes,
                        strict=True,
                    )
                ]
            )
            self._published_attributes = attributes
        rescue = state.rescue
        page = Details(f"{spec.symbol} `{spec.trade_id}` — **{state.status.value}**").bullets(
            [
                f"position: {state.position_qty} (entry {state.filled_qty} @ {state.entry_price})",
                f"stop: {state.stop_price} order `{state.stop_order_id}`",
                f"take-profit: {state.take_profit_price} order `{state.take_profit_order_id}`",
                f"rescues: {rescue.attempted} attempted, {rescue.ok} ok, {rescue.failed} failed"
                + (f" (last error: {rescue.last_error})" if rescue.last_error else ""),
                f"last check: {state.last_check_at} — {state.last_check_note}",
            ]
        )
        if state.exit is not None:
            page.bullets(
                [
                    f"exit: {state.exit.urgency.value} ({state.exit.reason}) "
                    f"order `{state.exit.exit_order_id}` gap {state.exit.gap_ms} ms"
                ]
            )
        if state.close_reason is not None:
            page.bullets([f"closed: {state.close_reason.value} at {state.exit_price}"])
        page.table(
            ["add-on (signal)", "order", "qty", "filled", "avg price", "status"],
            [
                [
                    a.signal_key,
                    f"`{a.client_order_id}`",
                    a.qty,
                    a.filled_qty,
                    a.avg_price,
                    a.progress,
                ]
                for a in state.add_ons
            ],
        )
        page.publish()
