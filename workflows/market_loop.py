"""MarketLoopWorkflow: truth -> reconcile -> scan -> drain -> rank -> risk-gated entries.

Its interface is contracts/market_loop.py. Every run first asks the broker clock and ends early
when the market is closed (holidays, early closes), writing nothing but its entry-run record.
It scans the watchlist with every configured strategy (trading/strategies/; one scan activity
per timeframe reads the bars and runs the strategies, so no bars pass through history),
scores the signals (the drain), ranks them (trading/ranker.py) and decides each, best first
(trading/entry_decision.py: the shared gate of trading/entry_gate.py - trading
control, the broker's real open-position count - then the risk engine of trading/risk.py).
A breached daily loss limit halts and the system guard pauses entries through trading control,
the one place that holds the mode. An entered signal starts `trade-<id>` (one per order slice)
with an id derived from the signal, so it is entered at most once; an approved add-on goes to
the trade that holds the symbol. Each signal's path (rank, verdict, decision) is stored on it,
every decision is audited and each run records one entry-run row (`status` shows its reason).

Deliberate change (issue 12, no workflow.patched): a run lasts seconds and no saved history of
the earlier loop existed; tests/histories/market_loop_*.json records this one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowAlreadyStartedError,
)

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from activities.entries import EntryActivities
    from activities.ledger import LedgerActivities
    from activities.scan import ScanActivities
    from activities.trade_link import TradeLinkActivities
    from contracts import drain, market_loop, reconcile
    from ops import metrics
    from trading.broker_models import (
        BrokerTruth,
        MarketClock,
        Quote,
        QuotesRequest,
    )
    from trading.entry import (
        EntryCandidatesQuery,
        EntryDecision,
        EntrySignal,
        MarketLoopInput,
        MarketLoopResult,
        SignalOutcome,
        TradeStart,
        audit_detail,
        gate_skip,
        ledger_day_start,
        summarize,
        trade_specs_for,
    )
    from trading.entry_context import ControlOrder, EntryContext, EntryContextQuery
    from trading.entry_decision import (
        EntryBook,
        SignalAge,
        account_view,
        decide_entry,
        ranked_signals,
    )
    from trading.entry_gate import (
        ControlPresence,
        ControlView,
        EntryReason,
        GateAnswer,
        run_gate,
    )
    from trading.ledger_records import EntryRunCreate, SignalBatch, SignalCreate
    from trading.market_scan import ScanRequest, ScanResult, bars_start, by_timeframe
    from trading.models import AuditEntry, evolve
    from trading.ranker import Ranked
    from trading.reconcile_models import ReconcileInput
    from trading.risk import GuardInput, RiskReason, daily_loss_breach, system_guard
    from trading.scoring import DrainInput
    from trading.signal_path import DecisionKind, SignalDecision, SignalDecisions
    from trading.strategies import Strategy, UnknownStrategy, builtin_strategies
    from trading.trade_models import AddOn, AddOnRequest
    from workflows.broker_reads import broker_truth
    from workflows.calls import Failed, attempt, call, failure, ledger
    from workflows.details import Details
    from workflows.drain import ScoreDrainWorkflow
    from workflows.policies import (
        BROKER_READ,
        CONTROL_READ,
        LEDGER_READ,
        TRADE_LINK,
        TRADE_UPDATE,
    )
    from workflows.reconcile import ReconcileWorkflow
    from workflows.records import audit_entry
    from workflows.run_base import RunWorkflow, current_run_id

SYSTEM_GUARD_ACTOR = "system-guard"
RISK_ENGINE_ACTOR = "risk-engine"


@workflow.defn(name=market_loop.WORKFLOW.name)
class MarketLoopWorkflow(RunWorkflow[MarketLoopResult]):
    """One pass of the market loop; scheduled during market hours or run by hand."""

    @workflow.init
    def __init__(self, request: MarketLoopInput) -> None:
        self._request = request
        self._run_id = current_run_id()
        self._progress = MarketLoopResult(run_id=self._run_id)
        self._phase = "starting"
        self._ranked: list[tuple[EntrySignal, Ranked]] = []
        self._max_age: dict[str, timedelta] = {}
        self._audits: list[AuditEntry] = []

    @workflow.run
    async def run(self, request: MarketLoopInput) -> MarketLoopResult:
        """Clock, truth, reconcile, scan, drain, rank, entries; record the entry run."""
        registry = builtin_strategies(request.strategy_configs)
        try:
            strategies = [registry.get(name) for name in request.strategies]
        except UnknownStrategy as exc:
            raise ApplicationError(str(exc), type="UnknownStrategy", non_retryable=True) from None
        self._max_age = {n: registry.get(n).max_signal_age for n in registry.names()}

        self._set_phase("asking the broker clock")
        try:
            clock: MarketClock = await call(
                BrokerActivities.get_clock, None, BROKER_READ, "broker clock: is the market open?"
            )
        except ActivityError as err:
            return await self._end_early("broker_clock_unavailable", failure(err))
        if not clock.is_open:
            return await self._end_early(
                EntryReason.MARKET_CLOSED.value,
                f"clock={clock.timestamp.isoformat()} nextOpen={clock.next_open.isoformat()}",
            )
        self._update(session_date=clock.timestamp.date())
        truth = await self._truth(request)
        if request.reconcile and truth is not None:
            await self._reconcile(request)
        await self._scan(request, strategies, clock)
        await self._drain(request)
        await self._enter(request, truth, clock)
        self._set_phase("done")
        return self._progress

    # --- steps -----------------------------------------------------------------------------

    async def _truth(self, request: MarketLoopInput) -> BrokerTruth | None:
        self._set_phase("taking a broker-truth snapshot")
        truth, error = await broker_truth(request.truth_attempts, "entry gate and reconcile")
        if truth is None:
            self._note(error)
            return None
        self._update(broker_positions=sum(1 for p in truth.positions if p.qty != 0))
        return truth

    async def _reconcile(self, request: MarketLoopInput) -> None:
        self._set_phase("reconciling the ledger with the broker")
        try:
            result = await workflow.execute_child_workflow(
                ReconcileWorkflow.run,
                ReconcileInput(run_source=f"market-loop:{request.run_source}"),
                id=reconcile.child_id(workflow.info().workflow_id),
                static_summary="reconcile the ledger with the broker's truth",
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError) as err:
            self._update(reconcile=f"failed: {failure(err)}")
            self._note(f"reconcile failed: {failure(err)}")
            return
        summary = (
            f"ok: closed {result.closed}, adopted {result.adopted}, synced {result.synced}"
            if result.ok
            else f"not ok: {result.error}"
        )
        self._update(reconcile=summary)

    async def _scan(
        self, request: MarketLoopInput, strategies: list[Strategy], clock: MarketClock
    ) -> None:
        if not request.watchlist:
            return
        every = ", ".join(s.name for s in strategies)
        self._set_phase(f"scanning {len(request.watchlist)} symbols with {every}")
        signals: list[SignalCreate] = []
        bars_read = 0
        for timeframe, group in by_timeframe(strategies).items():
            names = [s.name for s in group]
            try:
                scanned: ScanResult = await call(
                    ScanActivities.scan_watchlist,
                    ScanRequest(
                        symbols=request.watchlist,
                        timeframe=timeframe,
                        strategies=names,
                        strategy_configs=request.strategy_configs,
                        start=bars_start(
                            timeframe,
                            max(s.lookback_bars for s in group),
                            clock.timestamp,
                            all(s.same_day for s in group),
                        ),
                        now=clock.timestamp,
                    ),
                    BROKER_READ,
                    f"scan {len(request.watchlist)} symbols' {timeframe} bars with "
                    f"{', '.join(names)}",
                )
            except ActivityError as err:
                self._note(
                    f"{timeframe} scan failed, no {', '.join(names)} signals: {failure(err)}"
                )
                continue
            signals += scanned.signals
            bars_read += scanned.bars_read
        per_strategy: dict[str, int] = {}
        for signal in signals:
            per_strategy[signal.strategy] = per_strategy.get(signal.strategy, 0) + 1
        created = 0
        if signals:
            counts = ", ".join(f"{name} {n}" for name, n in per_strategy.items())
            written = await ledger(
                LedgerActivities.insert_signals,
                SignalBatch(signals=signals),
                f"ledger: {len(signals)} signals ({counts})",
            )
            created = written.inserted
        self._update(
            scanned=len(request.watchlist),
            signals_created=created,
            signals_by_strategy=per_strategy,
            bars_read=bars_read,
        )

    async def _drain(self, request: MarketLoopInput) -> None:
        self._set_phase("scoring pending signals")
        try:
            drained = await workflow.execute_child_workflow(
                ScoreDrainWorkflow.run,
                DrainInput(scorer=request.scorer),
                id=drain.child_id(workflow.info().workflow_id),
                static_summary=f"score pending signals with {request.scorer}",
            )
        except (ChildWorkflowError, WorkflowAlreadyStartedError) as err:
            self._update(drain=f"failed: {failure(err)}")
            self._note(f"score drain failed: {failure(err)}")
            return
        self._update(drain=f"scored {drained.scored}, error {drained.error}")

    async def _enter(
        self, request: MarketLoopInput, truth: BrokerTruth | None, clock: MarketClock
    ) -> None:
        self._set_phase("gating entries")
        control = await self._control()
        gate = run_gate(control, truth, request)
        self._update(control=control, gate=gate)
        if gate.note:
            self._note(gate.note)
        since = ledger_day_start(clock.timestamp, workflow.now())
        candidates = (
            await call(
                EntryActivities.list_entry_candidates,
                EntryCandidatesQuery(since=since),
                LEDGER_READ,
                "ledger: today's scored signals",
            )
        ).signals
        self._set_phase(f"ranking {len(candidates)} scored signals")
        self._ranked = ranked_signals(candidates)
        symbols = sorted({s.symbol for s in candidates})
        context = await self._context(symbols, since, control)
        run_skip = await self._account_checks(request, truth, context, control, gate)
        quotes: dict[str, Quote] = {}
        if run_skip is None and gate.open and symbols:
            quotes = await self._quotes(symbols)
        self._set_phase(f"deciding {len(candidates)} signals, best first")
        outcomes = await self._decide_all(request, truth, control, context, quotes, run_skip)
        closed = run_skip if run_skip is not None else (None if gate.open else gate_skip(gate))
        reason, detail = summarize([o.decision for o in outcomes], closed)
        self._update(reason=reason, detail=detail)
        await self._record_run()

    async def _decide_all(
        self,
        request: MarketLoopInput,
        truth: BrokerTruth | None,
        control: ControlView,
        context: EntryContext,
        quotes: dict[str, Quote],
        run_skip: EntryDecision | None,
    ) -> list[SignalOutcome]:
        """Each ranked signal, best first: decided, carried out, audited; paths recorded."""
        book = EntryBook()
        outcomes: list[SignalOutcome] = []
        decisions: list[SignalDecision] = []
        for signal, ranked in self._ranked:
            if run_skip is not None:
                decision = evolve(run_skip, rank=ranked.rank, rank_score=ranked.rank_score)
            else:
                decision = decide_entry(
                    signal,
                    ranked,
                    control,
                    truth,
                    request,
                    context,
                    quotes.get(signal.symbol),
                    book,
                    self._age(signal),
                )
            outcome = await self._decide(signal, decision)
            book = book.after(signal, outcome.decision)
            outcomes.append(outcome)
            path = self._path(signal, outcome)
            decisions.append(path)
            metrics.entry(metrics.EntryDecisionKind(path.decision.value), path.reason)
            entered = sum(1 for o in outcomes if o.decision.enter)
            self._update(
                decisions=outcomes,
                entered=entered,
                added=sum(1 for o in outcomes if o.decision.enter and o.decision.add_on),
                skipped=len(outcomes) - entered,
            )
        if decisions:
            await ledger(
                EntryActivities.record_signal_decisions,
                SignalDecisions(decisions=decisions, audits=self._audits),
                f"ledger: the path of {len(decisions)} signals (rank, verdict, decision)",
            )
        return outcomes

    def _age(self, signal: EntrySignal) -> SignalAge | None:
        max_age = self._max_age.get(signal.strategy)
        return None if max_age is None else SignalAge(now=workflow.now(), max_age=max_age)

    async def _context(
        self, symbols: list[str], since: datetime, control: ControlView
    ) -> EntryContext:
        """Entered today, open trades, and the closes the system guard counts (since the
        control last changed mode - a resume - or today's start, whichever is later)."""
        guard_since = since
        if control.presence is ControlPresence.RUNNING and control.since is not None:
            guard_since = max(since, control.since)
        return await call(
            EntryActivities.entry_context,
            EntryContextQuery(symbols=symbols, since=since, closed_since=guard_since),
            LEDGER_READ,
            "ledger: entries today, open trades, recent closes",
        )

    async def _account_checks(
        self,
        request: MarketLoopInput,
        truth: BrokerTruth | None,
        context: EntryContext,
        control: ControlView,
        gate: GateAnswer,
    ) -> EntryDecision | None:
        """The daily loss limit (halts) and the system guard (pauses), through trading control.

        Returns the skip every signal of this run shares, or None when entries may go on.
        """
        if truth is None or not gate.open:
            return None
        account = account_view(truth, EntryBook())
        breach = daily_loss_breach(account, request.risk)
        if breach is not None:
            await self._tell_control(True, f"daily loss limit: {breach}", RISK_ENGINE_ACTOR)
            return EntryDecision(
                enter=False, reason=RiskReason.DAILY_LOSS_LIMIT.value, detail=breach
            )
        unrealized = sum(
            (p.unrealized_pl or 0 for p in truth.positions if p.qty != 0), start=account.equity * 0
        )
        pause = system_guard(
            GuardInput(
                closed_pnls=context.closed_pnls, unrealized=unrealized, equity=account.equity
            ),
            request.risk,
        )
        if pause is not None:
            await self._tell_control(False, f"system guard: {pause}", SYSTEM_GUARD_ACTOR)
            return EntryDecision(enter=False, reason=RiskReason.SYSTEM_GUARD.value, detail=pause)
        return None

    async def _tell_control(self, halt: bool, reason: str, actor: str) -> None:
        self._note(f"{'halt' if halt else 'pause entries'} asked of trading control: {reason}")
        outcome = await attempt(
            call(
                EntryActivities.tell_control,
                ControlOrder(halt=halt, reason=reason, actor=actor),
                CONTROL_READ,
                f"trading control: {'halt' if halt else 'pause entries'} ({actor})",
            )
        )
        if isinstance(outcome, Failed):
            self._note(f"trading control not told: {outcome.why}")

    async def _control(self) -> ControlView:
        try:
            return await call(
                EntryActivities.control_view, None, CONTROL_READ, "trading control: mode"
            )
        except ActivityError as err:
            return ControlView(presence=ControlPresence.UNREACHABLE, detail=failure(err))

    async def _quotes(self, symbols: list[str]) -> dict[str, Quote]:
        try:
            found: list[Quote] = await call(
                BrokerActivities.latest_quotes,
                QuotesRequest(symbols=symbols),
                BROKER_READ,
                f"latest quotes of {', '.join(symbols)}"[:120],
            )
        except ActivityError as err:
            self._note(f"quotes unavailable: {failure(err)}")
            return {}
        return {q.symbol: q for q in found}

    async def _decide(self, signal: EntrySignal, decision: EntryDecision) -> SignalOutcome:
        """Carry out an entered decision (start the trade, or the add-on); its audit row goes
        with the run's decisions in one write."""
        trade_ids: list[str] = []
        if decision.enter and decision.add_on:
            decision = await self._add_on(signal, decision)
            trade_ids = [decision.trade_id] if decision.trade_id else []
        elif decision.enter:
            decision, trade_ids = await self._start(signal, decision)
        trade_id = trade_ids[0] if trade_ids else None
        action = "entry_skipped"
        if decision.enter:
            action = "entry_added" if decision.add_on else "entry_started"
        self._audits.append(
            audit_entry(
                action,
                decision.reason,
                {"run_id": self._run_id, **audit_detail(signal, decision)},
                key=signal.signal_key,
                trade_id=trade_id if decision.enter else None,
            )
        )
        return SignalOutcome(
            signal_key=signal.signal_key,
            symbol=signal.symbol,
            strategy=signal.strategy,
            score=signal.score,
            decision=decision,
            trade_id=trade_id,
            trade_ids=trade_ids,
        )

    async def _start(
        self, signal: EntrySignal, decision: EntryDecision
    ) -> tuple[EntryDecision, list[str]]:
        specs = trade_specs_for(signal, decision)
        started: list[str] = []
        for spec in specs:
            outcome = await attempt(
                call(
                    TradeLinkActivities.start_trade,
                    TradeStart(spec=spec),
                    TRADE_LINK,
                    f"start trade {spec.trade_id}: buy {spec.qty} {spec.symbol}",
                )
            )
            if isinstance(outcome, Failed):
                if started:
                    self._note(f"slice {spec.trade_id} not started: {outcome.why}")
                    break
                failed = evolve(
                    decision,
                    enter=False,
                    reason=EntryReason.START_FAILED.value,
                    detail=outcome.why,
                )
                return failed, [spec.trade_id]
            if not outcome.started and not started:
                return evolve(
                    decision,
                    enter=False,
                    reason=EntryReason.ALREADY_STARTED.value,
                    detail=f"workflow {outcome.workflow_id} exists",
                ), [spec.trade_id]
            started.append(spec.trade_id)
        return evolve(decision, trade_id=started[0]), started

    async def _add_on(self, signal: EntrySignal, decision: EntryDecision) -> EntryDecision:
        """Ask the trade that holds the symbol to buy more (an OTO; its stop resized)."""
        assert decision.trade_id is not None and decision.qty is not None
        outcome = await attempt(
            call(
                TradeLinkActivities.add_on,
                AddOnRequest(
                    trade_id=decision.trade_id,
                    add_on=AddOn(
                        qty=decision.qty,
                        signal_key=signal.signal_key,
                        reason=f"{signal.strategy} signal, rank {decision.rank}",
                    ),
                ),
                TRADE_UPDATE,
                f"add-on: buy {decision.qty} {signal.symbol} into {decision.trade_id}",
            )
        )
        if isinstance(outcome, Failed):
            return evolve(
                decision,
                enter=False,
                reason=EntryReason.ADD_ON_FAILED.value,
                detail=outcome.why,
            )
        return evolve(
            decision,
            detail=f"{decision.detail}; filled {outcome.filled_qty} @ "
            f"{outcome.avg_price}, stop {outcome.stop_order_id} covers {outcome.stop_qty}",
        )

    def _path(self, signal: EntrySignal, outcome: SignalOutcome) -> SignalDecision:
        decision = outcome.decision
        kind = DecisionKind.SKIPPED
        if decision.enter:
            kind = DecisionKind.ADDED if decision.add_on else DecisionKind.ENTERED
        return SignalDecision(
            signal_key=signal.signal_key,
            decision=kind,
            reason=decision.reason,
            detail=decision.detail,
            rank=decision.rank,
            rank_score=decision.rank_score,
            run_id=self._run_id,
            trade_id=outcome.trade_id,
            at=workflow.now(),
        )

    # --- records ---------------------------------------------------------------------------

    async def _end_early(self, reason: str, detail: str) -> MarketLoopResult:
        self._update(ended_early=True, reason=reason, detail=detail)
        await self._record_run()
        self._set_phase(f"ended early: {reason}")
        return self._progress

    async def _record_run(self) -> None:
        result = self._progress
        await ledger(
            LedgerActivities.record_entry_run,
            EntryRunCreate(
                run_id=self._run_id,
                entered=result.entered,
                skipped=result.skipped,
                reason=result.reason,
                detail=result.detail[:2000],
                at=workflow.now(),
            ),
            f"ledger: entry run entered {result.entered}, skipped {result.skipped}",
        )

    # --- helpers ---------------------------------------------------------------------------

    def _note(self, note: str) -> None:
        workflow.logger.warning("market loop %s: %s", self._run_id, note)
        self._update(notes=[*self._progress.notes, note])

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._publish()

    def _publish(self) -> None:
        r, request = self._progress, self._request
        risk = request.risk
        page = Details(f"Market loop: {self._phase}").line(
            f"session {r.session_date or '-'}, strategies `{', '.join(request.strategies)}`, "
            f"watchlist {len(request.watchlist)}, max positions {request.max_open_positions}, "
            f"threshold {request.score_threshold}"
        )
        page.line(
            f"risk: {risk.risk_per_trade_usd or risk.risk_per_trade_pct} per trade, heat cap "
            f"{risk.max_heat_pct}, allocation cap {risk.max_allocation_pct}, daily loss "
            f"{risk.daily_loss_limit_usd or risk.daily_loss_limit_pct}, add-ons "
            f"{'on' if risk.addons_enabled else 'off'}"
        )
        page.table(
            (
                "broker positions",
                "reconcile",
                "signals created",
                "drain",
                "entered",
                "added",
                "skipped",
            ),
            [
                (
                    "unknown" if r.broker_positions is None else r.broker_positions,
                    r.reconcile or "-",
                    ", ".join(f"{k} {v}" for k, v in r.signals_by_strategy.items())
                    or r.signals_created,
                    r.drain or "-",
                    r.entered - r.added,
                    r.added,
                    r.skipped,
                )
            ],
        )
        if r.reason:
            page.line("").line(f"**{r.reason}** {r.detail}")
        page.table(
            ("rank", "signal", "strategy", "score", "rank score", "verdict", "detail"),
            self._ranked_rows(),
        )
        page.bullets(r.notes).publish()

    def _ranked_rows(self) -> list[tuple[object, ...]]:
        """The Web UI's funnel: rank, signal, strategy, score, rank score, verdict, detail."""
        decided = {o.signal_key: o for o in self._progress.decisions}
        rows: list[tuple[object, ...]] = []
        for signal, ranked in self._ranked[:25]:
            outcome = decided.get(signal.signal_key)
            verdict = "-"
            if outcome is not None:
                verdict = ("ENTER " if outcome.decision.enter else "skip ") + (
                    outcome.decision.reason
                )
            rows.append(
                (
                    ranked.rank,
                    signal.signal_key,
                    signal.strategy,
                    signal.score,
                    ranked.rank_score,
                    verdict,
                    outcome.decision.detail[:120] if outcome else "",
                )
            )
        return rows
