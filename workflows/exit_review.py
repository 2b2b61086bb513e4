"""EodExitReviewWorkflow: after the close, plan next-open exits for open trades that break a rule.

Its interface is contracts/exit_review.py. It asks the broker clock and calendar first: on a
day without a session (weekend, holiday) or before the session's close it ends early, audited,
and touches nothing. Otherwise it evaluates the exit rules (trading/exits.py) on each open
trade's daily bars and sends force_exit(NEXT_OPEN, reason) to each trade that should go, through
TradeLink; every decision is audited.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.ledger import LedgerActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import exit_review
    from trading.broker_models import (
        Bar,
        BarsRequest,
        CalendarRequest,
        MarketClock,
        SessionDay,
    )
    from trading.exits import (
        ExitDecision,
        ExitReviewInput,
        ExitReviewResult,
        bars_by_symbol,
        default_exit_rules,
        evaluate_exits,
        exit_contexts,
        reviewable,
        session_to_review,
    )
    from trading.ledger_records import ExitUrgency, OpenTrades, OpenTradesQuery, TradeRecord
    from trading.models import JsonScalar
    from trading.trade_models import ForceExit, SignalDelivery, TradeExitRequest
    from workflows.calls import call, failure, ledger
    from workflows.details import Details
    from workflows.policies import BROKER_READ, TRADE_LINK
    from workflows.records import audit
    from workflows.run_base import RunWorkflow, current_run_id


@workflow.defn(name=exit_review.WORKFLOW.name)
class EodExitReviewWorkflow(RunWorkflow[ExitReviewResult]):
    """One end-of-day review of the open trades against the exit rules."""

    @workflow.init
    def __init__(self, request: ExitReviewInput) -> None:
        self._run_id = current_run_id()
        self._progress = ExitReviewResult(run_id=self._run_id)

    @workflow.run
    async def run(self, request: ExitReviewInput) -> ExitReviewResult:
        """Clock and calendar, open trades, bars, rules, signals."""
        clock: MarketClock = await call(
            BrokerActivities.get_clock, None, BROKER_READ, "broker clock: is the session over?"
        )
        today = clock.timestamp.date()
        sessions: list[SessionDay] = await call(
            BrokerActivities.get_calendar,
            CalendarRequest(start=today - timedelta(days=7), end=today),
            BROKER_READ,
            "broker calendar: the session to review",
        )
        session, why = session_to_review(clock, sessions)
        if session is None:
            self._update(ended_early=True, reason=why)
            detail: dict[str, JsonScalar] = {
                "clock": clock.timestamp.isoformat(),
                "is_open": clock.is_open,
            }
            await self._audit("exit_review_skipped", why, None, detail, "skipped")
            return self._progress
        self._update(session_date=session.date)
        open_trades: OpenTrades = await ledger(
            LedgerActivities.list_open_trades, OpenTradesQuery(), "ledger: open trades to review"
        )
        trades = [t for t in open_trades.trades if reviewable(t)]
        self._update(reviewed=len(trades))
        if not trades:
            self._update(reason="no_open_trades")
            return self._progress
        decisions = await self._evaluate(request, trades, clock)
        if decisions is None:
            return self._progress
        signalled, notes = 0, []
        for decision in decisions:
            delivery = await self._act_on(decision, session.date.isoformat())
            if delivery is not None and delivery.delivered:
                signalled += 1
            elif delivery is not None:
                notes.append(f"{decision.trade_id}: {delivery.note}")
        self._update(decisions=decisions, signalled=signalled, notes=notes, reason="reviewed")
        return self._progress

    async def _evaluate(
        self, request: ExitReviewInput, trades: list[TradeRecord], clock: MarketClock
    ) -> list[ExitDecision] | None:
        """Each trade's verdict from its daily bars; None when the bars are unavailable."""
        assert self._progress.session_date is not None
        rules = default_exit_rules(request.ma_days, request.max_holding_days)
        needed = max(rule.bars_needed for rule in rules)
        symbols = sorted({t.symbol for t in trades})
        try:
            bars: list[Bar] = await call(
                BrokerActivities.get_bars,
                BarsRequest(
                    symbols=symbols,
                    timeframe="1Day",
                    start=clock.timestamp - timedelta(days=needed * 2 + 10),
                ),
                BROKER_READ,
                f"daily bars of {len(symbols)} symbols",
            )
        except ActivityError as err:
            self._update(reason="bars_unavailable", notes=[failure(err)])
            return None
        contexts = exit_contexts(trades, bars_by_symbol(bars), clock, self._progress.session_date)
        return evaluate_exits(contexts, rules)

    async def _act_on(self, decision: ExitDecision, session_date: str) -> SignalDelivery | None:
        """Signal an exit decision to its trade and audit the decision; None: kept."""
        delivery = await self._signal(decision) if decision.exit else None
        delivered = delivery.delivered if delivery is not None else None
        await self._audit(
            "exit_planned" if decision.exit else "exit_review_keep",
            decision.reason,
            decision.trade_id,
            {
                "symbol": decision.symbol,
                "detail": decision.detail,
                "delivered": delivered,
                "session_date": session_date,
            },
            decision.trade_id,
        )
        return delivery

    async def _signal(self, decision: ExitDecision) -> SignalDelivery:
        exit_now = ForceExit(
            urgency=ExitUrgency.NEXT_OPEN, reason=f"{decision.reason}: {decision.detail}"
        )
        try:
            return await call(
                TradeLinkActivities.force_exit_trade,
                TradeExitRequest(trade_id=decision.trade_id, exit=exit_now),
                TRADE_LINK,
                f"next-open exit for trade {decision.trade_id} ({decision.reason})",
            )
        except ActivityError as err:
            return SignalDelivery(trade_id=decision.trade_id, delivered=False, note=failure(err))

    async def _audit(
        self,
        action: str,
        reason: str,
        trade_id: str | None,
        detail: dict[str, JsonScalar],
        key: str,
    ) -> None:
        await audit(action, reason, {"run_id": self._run_id, **detail}, key=key, trade_id=trade_id)

    def _publish(self) -> None:
        r = self._progress
        page = Details(f"EOD exit review: {r.reason or 'running'}").line(
            f"session {r.session_date or '-'}: reviewed {r.reviewed}, signalled {r.signalled}"
        )
        page.table(
            ("trade", "symbol", "decision", "detail"),
            [(d.trade_id, d.symbol, d.reason, d.detail) for d in r.decisions],
        )
        page.bullets(r.notes).publish()
