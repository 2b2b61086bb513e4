"""EodExitReviewWorkflow: after the close, plan next-open exits for open trades that break a rule.

It asks the broker clock and calendar first: on a day without a session (weekend, holiday) or
before the session's close it ends early, audited, and touches nothing. Otherwise it evaluates
the exit rules (trading/exits.py) on each open trade's daily bars and signals
force_exit(NEXT_OPEN, reason) to each trade that should go; every decision is audited.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.entries import EntryActivities
    from activities.ledger import LedgerActivities
    from trading.broker_models import Bar, BarsRequest, CalendarRequest, MarketClock, SessionDay
    from trading.exits import (
        ExitContext,
        ExitDecision,
        ExitReviewInput,
        ExitReviewResult,
        ExitSignal,
        ExitSignalOutcome,
        bars_by_symbol,
        bars_up_to,
        default_exit_rules,
        evaluate_exits,
        opened_session_date,
        reviewable,
        session_to_review,
    )
    from trading.ledger_records import OpenTrades, OpenTradesQuery
    from trading.models import AuditEntry, JsonScalar
    from workflows.calls import call, failure
    from workflows.policies import BROKER_READ, LEDGER_READ, LEDGER_WRITE, ActivityPolicy

SIGNAL_CALL = ActivityPolicy(start_to_close=timedelta(seconds=15), retry=BROKER_READ.retry)


@workflow.defn
class EodExitReviewWorkflow:
    """One end-of-day review of the open trades against the exit rules."""

    @workflow.init
    def __init__(self, request: ExitReviewInput) -> None:
        info = workflow.info()
        self._run_id = f"{info.workflow_id}:{info.run_id}"
        self._result = ExitReviewResult(run_id=self._run_id)

    @workflow.query
    def progress(self) -> ExitReviewResult:
        """The result so far."""
        return self._result

    @workflow.run
    async def run(self, request: ExitReviewInput) -> ExitReviewResult:
        """Clock and calendar, open trades, bars, rules, signals."""
        clock: MarketClock = await call(BrokerActivities.get_clock, None, BROKER_READ)
        today = clock.timestamp.date()
        sessions: list[SessionDay] = await call(
            BrokerActivities.get_calendar,
            CalendarRequest(start=today - timedelta(days=7), end=today),
            BROKER_READ,
        )
        session, why = session_to_review(clock, sessions)
        if session is None:
            self._update(ended_early=True, reason=why)
            await self._audit(
                "exit_review_skipped",
                why,
                None,
                {"clock": clock.timestamp.isoformat(), "is_open": clock.is_open},
                "skipped",
            )
            self._publish()
            return self._result
        self._update(session_date=session.date)

        open_trades: OpenTrades = await call(
            LedgerActivities.list_open_trades, OpenTradesQuery(), LEDGER_READ
        )
        trades = [t for t in open_trades.trades if reviewable(t)]
        rules = default_exit_rules(request.ma_days, request.max_holding_days)
        self._update(reviewed=len(trades))
        if not trades:
            self._update(reason="no_open_trades")
            self._publish()
            return self._result
        needed = max(rule.bars_needed for rule in rules)
        try:
            bars: list[Bar] = await call(
                BrokerActivities.get_bars,
                BarsRequest(
                    symbols=sorted({t.symbol for t in trades}),
                    timeframe="1Day",
                    start=clock.timestamp - timedelta(days=needed * 2 + 10),
                ),
                BROKER_READ,
            )
        except ActivityError as err:
            self._update(reason="bars_unavailable", notes=[failure(err)])
            self._publish()
            return self._result
        by_symbol = bars_by_symbol(bars)
        # opened_at is the entry fill's time as the broker reported it (the broker's clock).
        contexts = [
            ExitContext(
                trade_id=t.id,
                symbol=t.symbol,
                opened_on=opened_session_date(t.opened_at, clock.timestamp),
                entry_price=t.entry_price,
                bars=bars_up_to(by_symbol.get(t.symbol, []), session.date),
                session_date=session.date,
            )
            for t in trades
        ]
        decisions = evaluate_exits(contexts, rules)
        signalled = 0
        notes: list[str] = []
        for decision in decisions:
            delivered = None
            if decision.exit:
                outcome = await self._signal(decision)
                delivered = outcome.delivered
                signalled += int(outcome.delivered)
                if not outcome.delivered:
                    notes.append(f"{decision.trade_id}: {outcome.note}")
            await self._audit(
                "exit_planned" if decision.exit else "exit_review_keep",
                decision.reason,
                decision.trade_id,
                {
                    "symbol": decision.symbol,
                    "detail": decision.detail,
                    "delivered": delivered,
                    "session_date": session.date.isoformat(),
                },
                decision.trade_id,
            )
        self._update(decisions=decisions, signalled=signalled, notes=notes, reason="reviewed")
        self._publish()
        return self._result

    async def _signal(self, decision: ExitDecision) -> ExitSignalOutcome:
        try:
            outcome: ExitSignalOutcome = await call(
                EntryActivities.signal_next_open_exit,
                ExitSignal(
                    trade_id=decision.trade_id, reason=f"{decision.reason}: {decision.detail}"
                ),
                SIGNAL_CALL,
            )
        except ActivityError as err:
            return ExitSignalOutcome(trade_id=decision.trade_id, delivered=False, note=failure(err))
        return outcome

    async def _audit(
        self,
        action: str,
        reason: str,
        trade_id: str | None,
        detail: dict[str, JsonScalar],
        key: str,
    ) -> None:
        await call(
            LedgerActivities.append_audit,
            AuditEntry(
                actor=workflow.info().workflow_id,
                action=action,
                reason=reason,
                trade_id=trade_id,
                detail={"run_id": self._run_id, **detail},
                event_key=f"exit-review:{self._run_id}:{key}",
            ),
            LEDGER_WRITE,
        )

    def _update(self, **fields: object) -> None:
        self._result = self._result.model_copy(update=fields)

    def _publish(self) -> None:
        r = self._result
        lines = [
            f"## EOD exit review: {r.reason or 'running'}",
            f"session {r.session_date or '-'}: reviewed {r.reviewed}, signalled {r.signalled}",
        ]
        if r.decisions:
            lines += ["", "| trade | symbol | decision | detail |", "|---|---|---|---|"]
            lines += [
                f"| {d.trade_id} | {d.symbol} | {d.reason} | {d.detail} |" for d in r.decisions
            ]
        lines += [f"- {note}" for note in r.notes]
        workflow.set_current_details("\n".join(lines))
