"""MarketLoopWorkflow: broker truth -> reconcile -> scan -> drain -> gated auto-entry.

Every run first asks the broker clock and ends early when the market is closed (holidays,
early closes), writing nothing but its entry-run record. Entries are gated by the trading
control state, the broker's real open-position count (never the ledger's), one entry per
symbol per day and a basic risk check (trading/entry.py); each entered signal starts
`trade-<id>` with an id derived from the signal, so a signal is entered at most once. Every
decision is audited and each run records one entry-run row (`status` shows its reason).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

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
    from trading.broker_models import (
        Bar,
        BarsRequest,
        BrokerTruth,
        MarketClock,
        Quote,
        QuotesRequest,
    )
    from trading.entry import (
        ControlGate,
        EnteredSymbolsQuery,
        EntryCandidatesQuery,
        EntryDecision,
        EntryReason,
        EntrySignal,
        MarketLoopInput,
        MarketLoopResult,
        SignalOutcome,
        TradeStart,
        audit_detail,
        check_entry,
        ledger_day_start,
        run_gate,
        summarize,
        trade_spec_for,
    )
    from trading.exits import bars_by_symbol
    from trading.ledger_records import EntryRunCreate, SignalCreate
    from trading.models import AuditEntry
    from trading.reconcile_models import ReconcileInput
    from trading.scoring import DrainInput
    from trading.strategies import Strategy, UnknownStrategy, builtin_strategies, signal_key
    from workflows.calls import call, failure
    from workflows.drain import ScoreDrainWorkflow
    from workflows.policies import (
        BROKER_READ,
        LEDGER_READ,
        LEDGER_WRITE,
        ActivityPolicy,
        broker_snapshot,
    )
    from workflows.reconcile import ReconcileWorkflow

CONTROL_CALL = ActivityPolicy(
    start_to_close=timedelta(seconds=15), retry=replace(BROKER_READ.retry, maximum_attempts=3)
)
START_CALL = ActivityPolicy(start_to_close=timedelta(seconds=20), retry=BROKER_READ.retry)


@workflow.defn
class MarketLoopWorkflow:
    """One pass of the market loop; scheduled during market hours or run by hand."""

    @workflow.init
    def __init__(self, request: MarketLoopInput) -> None:
        info = workflow.info()
        self._request = request
        self._run_id = f"{info.workflow_id}:{info.run_id}"
        self._result = MarketLoopResult(run_id=self._run_id)
        self._phase = "starting"

    @workflow.query
    def progress(self) -> MarketLoopResult:
        """The result so far."""
        return self._result

    @workflow.run
    async def run(self, request: MarketLoopInput) -> MarketLoopResult:
        """Clock, truth, reconcile, scan, drain, entry; record the entry run."""
        try:
            strategy = builtin_strategies().get(request.strategy)
        except UnknownStrategy as exc:
            raise ApplicationError(str(exc), type="UnknownStrategy", non_retryable=True) from None

        self._set_phase("asking the broker clock")
        try:
            clock: MarketClock = await call(BrokerActivities.get_clock, None, BROKER_READ)
        except ActivityError as err:
            return await self._end_early("broker_clock_unavailable", failure(err))
        if not clock.is_open:
            return await self._end_early(
                EntryReason.MARKET_CLOSED.value,
                f"clock={clock.timestamp.isoformat()} nextOpen={clock.next_open.isoformat()}",
            )
        self._update(session_date=clock.timestamp.date())

        self._set_phase("taking a broker-truth snapshot")
        truth: BrokerTruth | None = None
        try:
            truth = await call(
                BrokerActivities.get_broker_truth, None, broker_snapshot(request.truth_attempts)
            )
            self._update(broker_positions=sum(1 for p in truth.positions if p.qty != 0))
        except ActivityError as err:
            self._note(f"broker truth unavailable: {failure(err)}")

        if request.reconcile and truth is not None:
            await self._reconcile(request)
        await self._scan(request, strategy, clock)
        await self._drain(request)
        await self._enter(request, truth, clock)
        self._set_phase("done")
        return self._result

    # --- steps -----------------------------------------------------------------------------

    async def _reconcile(self, request: MarketLoopInput) -> None:
        self._set_phase("reconciling the ledger with the broker")
        try:
            result = await workflow.execute_child_workflow(
                ReconcileWorkflow.run,
                ReconcileInput(run_source=f"market-loop:{request.run_source}"),
                id=f"{workflow.info().workflow_id}-reconcile",
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

    async def _scan(self, request: MarketLoopInput, strategy: Strategy, clock: MarketClock) -> None:
        if not request.watchlist:
            return
        self._set_phase(f"scanning {len(request.watchlist)} symbols with {strategy.name}")
        try:
            bars: list[Bar] = await call(
                BrokerActivities.get_bars,
                BarsRequest(
                    symbols=request.watchlist,
                    timeframe="1Day",
                    start=clock.timestamp - timedelta(days=request.bars_lookback_days),
                ),
                BROKER_READ,
            )
        except ActivityError as err:
            self._note(f"bars unavailable, no scan: {failure(err)}")
            return
        candidates = strategy.scan(bars_by_symbol(bars), clock.timestamp)
        created = 0
        for candidate in candidates:
            written = await call(
                LedgerActivities.insert_signal,
                SignalCreate(
                    signal_key=signal_key(strategy.name, candidate.symbol, clock.timestamp.date()),
                    symbol=candidate.symbol,
                    strategy=strategy.name,
                    side=candidate.side,
                    features=candidate.features,
                ),
                LEDGER_WRITE,
            )
            created += int(written.applied)
        self._update(scanned=len(request.watchlist), signals_created=created)

    async def _drain(self, request: MarketLoopInput) -> None:
        self._set_phase("scoring pending signals")
        try:
            drained = await workflow.execute_child_workflow(
                ScoreDrainWorkflow.run,
                DrainInput(scorer=request.scorer),
                id=f"{workflow.info().workflow_id}-drain",
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
        limits = request.limits
        try:
            gate: ControlGate = await call(EntryActivities.control_gate, None, CONTROL_CALL)
        except ActivityError as err:
            gate = ControlGate(
                allowed=False, code=EntryReason.CONTROL_UNAVAILABLE.value, reason=failure(err)
            )
        if gate.allowed and gate.code:
            self._note(f"{gate.code}: entries allowed ({gate.reason})")
        self._update(control=gate)
        run_skip = run_gate(truth, gate, limits)
        since = ledger_day_start(clock.timestamp, workflow.now())
        candidates = (
            await call(
                EntryActivities.list_entry_candidates,
                EntryCandidatesQuery(since=since),
                LEDGER_READ,
            )
        ).signals
        quotes: dict[str, Quote] = {}
        entered_symbols: set[str] = set()
        symbols = sorted({s.symbol for s in candidates})
        if run_skip is None and symbols:
            entered_symbols = set(
                (
                    await call(
                        EntryActivities.symbols_entered_since,
                        EnteredSymbolsQuery(symbols=symbols, since=since),
                        LEDGER_READ,
                    )
                ).symbols
            )
            try:
                found: list[Quote] = await call(
                    BrokerActivities.latest_quotes, QuotesRequest(symbols=symbols), BROKER_READ
                )
                quotes = {q.symbol: q for q in found}
            except ActivityError as err:
                self._note(f"quotes unavailable: {failure(err)}")

        outcomes: list[SignalOutcome] = []
        started = 0
        for signal in candidates:
            decision = check_entry(
                signal,
                truth,
                gate,
                limits,
                signal.symbol in entered_symbols,
                quotes.get(signal.symbol),
                started,
            )
            trade_id: str | None = None
            if decision.enter:
                decision, trade_id = await self._start(signal, decision)
                if decision.enter:
                    started += 1
                    entered_symbols.add(signal.symbol)
            outcomes.append(
                SignalOutcome(
                    signal_key=signal.signal_key,
                    symbol=signal.symbol,
                    score=signal.score,
                    decision=decision,
                    trade_id=trade_id,
                )
            )
            await self._audit(signal, decision, trade_id)
            self._update(decisions=outcomes, entered=started, skipped=len(outcomes) - started)
        decisions = [o.decision for o in outcomes]
        reason, detail = summarize(decisions, run_skip)
        self._update(reason=reason, detail=detail)
        await self._record_run()

    async def _start(
        self, signal: EntrySignal, decision: EntryDecision
    ) -> tuple[EntryDecision, str | None]:
        spec = trade_spec_for(signal, decision)
        try:
            outcome = await call(EntryActivities.start_trade, TradeStart(spec=spec), START_CALL)
        except ActivityError as err:
            return EntryDecision(
                enter=False, reason=EntryReason.START_FAILED.value, detail=failure(err)
            ), spec.trade_id
        if not outcome.started:
            return EntryDecision(
                enter=False,
                reason=EntryReason.ALREADY_STARTED.value,
                detail=f"workflow {outcome.workflow_id} exists",
            ), spec.trade_id
        return decision, spec.trade_id

    # --- records ---------------------------------------------------------------------------

    async def _end_early(self, reason: str, detail: str) -> MarketLoopResult:
        self._update(ended_early=True, reason=reason, detail=detail)
        await self._record_run()
        self._set_phase(f"ended early: {reason}")
        return self._result

    async def _record_run(self) -> None:
        result = self._result
        await call(
            LedgerActivities.record_entry_run,
            EntryRunCreate(
                run_id=self._run_id,
                entered=result.entered,
                skipped=result.skipped,
                reason=result.reason,
                detail=result.detail[:2000],
                at=workflow.now(),
            ),
            LEDGER_WRITE,
        )

    async def _audit(
        self, signal: EntrySignal, decision: EntryDecision, trade_id: str | None
    ) -> None:
        await call(
            LedgerActivities.append_audit,
            AuditEntry(
                actor=workflow.info().workflow_id,
                action="entry_started" if decision.enter else "entry_skipped",
                reason=decision.reason,
                trade_id=trade_id if decision.enter else None,
                detail={"run_id": self._run_id, **audit_detail(signal, decision)},
                event_key=f"entry:{self._run_id}:{signal.signal_key}",
            ),
            LEDGER_WRITE,
        )

    # --- helpers ---------------------------------------------------------------------------

    def _update(self, **fields: object) -> None:
        self._result = self._result.model_copy(update=fields)
        self._publish()

    def _note(self, note: str) -> None:
        workflow.logger.warning("market loop %s: %s", self._run_id, note)
        self._update(notes=[*self._result.notes, note])

    def _set_phase(self, phase: str) -> None:
        self._phase = phase
        self._publish()

    def _publish(self) -> None:
        r = self._result
        lines = [
            f"## Market loop: {self._phase}",
            f"session {r.session_date or '-'}, strategy `{self._request.strategy}`, "
            f"watchlist {len(self._request.watchlist)}, max positions "
            f"{self._request.max_open_positions}, threshold {self._request.score_threshold}",
            "",
            "| broker positions | reconcile | signals created | drain | entered | skipped |",
            "|---|---|---|---|---|---|",
            f"| {r.broker_positions if r.broker_positions is not None else 'unknown'} "
            f"| {r.reconcile or '-'} | {r.signals_created} | {r.drain or '-'} | {r.entered} "
            f"| {r.skipped} |",
        ]
        if r.reason:
            lines += ["", f"**{r.reason}** {r.detail}"]
        if r.decisions:
            lines += ["", "| signal | decision | detail |", "|---|---|---|"]
            lines += [
                f"| {o.signal_key} | {o.decision.reason} | {o.decision.detail} |"
                for o in r.decisions[-20:]
            ]
        lines += [f"- {note}" for note in r.notes]
        workflow.set_current_details("\n".join(lines))
