"""MarketLoopWorkflow: broker truth -> reconcile -> scan -> drain -> gated auto-entry.

Its interface is contracts/market_loop.py. Every run first asks the broker clock and ends early
when the market is closed (holidays, early closes), writing nothing but its entry-run record.
Entries are gated by trading/entry_gate.py (the trading control's mode, the broker's real
open-position count - never the ledger's) and trading/entry.py (one entry per symbol per day, a
basic risk check); each entered signal starts `trade-<id>` with an id derived from the signal,
so a signal is entered at most once. Every decision is audited and each run records one
entry-run row (`status` shows its reason).
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
    from activities.trade_link import TradeLinkActivities
    from contracts import drain, market_loop, reconcile
    from trading.broker_models import (
        Bar,
        BarsRequest,
        BrokerTruth,
        MarketClock,
        Quote,
        QuotesRequest,
    )
    from trading.entry import (
        EnteredSymbolsQuery,
        EntryCandidatesQuery,
        EntryDecision,
        EntrySignal,
        MarketLoopInput,
        MarketLoopResult,
        SignalOutcome,
        TradeStart,
        audit_detail,
        check_entry,
        gate_skip,
        ledger_day_start,
        summarize,
        trade_spec_for,
    )
    from trading.entry_gate import ControlPresence, ControlView, EntryReason, run_gate
    from trading.exits import bars_by_symbol
    from trading.ledger_records import EntryRunCreate, SignalCreate
    from trading.reconcile_models import ReconcileInput
    from trading.scoring import DrainInput
    from trading.strategies import Strategy, UnknownStrategy, builtin_strategies, signal_key
    from workflows.broker_reads import broker_truth
    from workflows.calls import Failed, attempt, call, failure, ledger
    from workflows.details import Details
    from workflows.drain import ScoreDrainWorkflow
    from workflows.policies import (
        BROKER_READ,
        CONTROL_READ,
        LEDGER_READ,
        TRADE_LINK,
    )
    from workflows.reconcile import ReconcileWorkflow
    from workflows.records import audit
    from workflows.run_base import RunWorkflow, current_run_id


@workflow.defn(name=market_loop.WORKFLOW.name)
class MarketLoopWorkflow(RunWorkflow[MarketLoopResult]):
    """One pass of the market loop; scheduled during market hours or run by hand."""

    @workflow.init
    def __init__(self, request: MarketLoopInput) -> None:
        self._request = request
        self._run_id = current_run_id()
        self._progress = MarketLoopResult(run_id=self._run_id)
        self._phase = "starting"

    @workflow.run
    async def run(self, request: MarketLoopInput) -> MarketLoopResult:
        """Clock, truth, reconcile, scan, drain, entry; record the entry run."""
        try:
            strategy = builtin_strategies().get(request.strategy)
        except UnknownStrategy as exc:
            raise ApplicationError(str(exc), type="UnknownStrategy", non_retryable=True) from None

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
        await self._scan(request, strategy, clock)
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
                f"daily bars of the watchlist ({len(request.watchlist)} symbols)",
            )
        except ActivityError as err:
            self._note(f"bars unavailable, no scan: {failure(err)}")
            return
        created = 0
        for candidate in strategy.scan(bars_by_symbol(bars), clock.timestamp):
            written = await ledger(
                LedgerActivities.insert_signal,
                SignalCreate(
                    signal_key=signal_key(strategy.name, candidate.symbol, clock.timestamp.date()),
                    symbol=candidate.symbol,
                    strategy=strategy.name,
                    side=candidate.side,
                    features=candidate.features,
                ),
                f"ledger: {strategy.name} signal for {candidate.symbol}",
            )
            created += int(written.applied)
        self._update(scanned=len(request.watchlist), signals_created=created)

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
        symbols = sorted({s.symbol for s in candidates})
        entered: set[str] = set()
        quotes: dict[str, Quote] = {}
        if gate.open and symbols:
            entered = await self._entered_symbols(symbols, since)
            quotes = await self._quotes(symbols)
        outcomes: list[SignalOutcome] = []
        for signal in candidates:
            started = self._progress.entered
            decision = check_entry(
                signal,
                control,
                truth,
                request,
                signal.symbol in entered,
                quotes.get(signal.symbol),
                started,
            )
            outcome = await self._decide(signal, decision)
            if outcome.decision.enter:
                entered.add(signal.symbol)
            outcomes.append(outcome)
            self._update(
                decisions=outcomes,
                entered=started + int(outcome.decision.enter),
                skipped=len(outcomes) - started - int(outcome.decision.enter),
            )
        reason, detail = summarize(
            [o.decision for o in outcomes], None if gate.open else gate_skip(gate)
        )
        self._update(reason=reason, detail=detail)
        await self._record_run()

    async def _control(self) -> ControlView:
        try:
            return await call(
                EntryActivities.control_view, None, CONTROL_READ, "trading control: mode"
            )
        except ActivityError as err:
            return ControlView(presence=ControlPresence.UNREACHABLE, detail=failure(err))

    async def _entered_symbols(self, symbols: list[str], since: datetime) -> set[str]:
        found = await call(
            EntryActivities.symbols_entered_since,
            EnteredSymbolsQuery(symbols=symbols, since=since),
            LEDGER_READ,
            "ledger: symbols entered today",
        )
        return set(found.symbols)

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
        """Start the trade of an entered decision; audit the decision either way."""
        trade_id: str | None = None
        if decision.enter:
            decision, trade_id = await self._start(signal, decision)
        await audit(
            "entry_started" if decision.enter else "entry_skipped",
            decision.reason,
            {"run_id": self._run_id, **audit_detail(signal, decision)},
            key=signal.signal_key,
            trade_id=trade_id if decision.enter else None,
        )
        return SignalOutcome(
            signal_key=signal.signal_key,
            symbol=signal.symbol,
            score=signal.score,
            decision=decision,
            trade_id=trade_id,
        )

    async def _start(
        self, signal: EntrySignal, decision: EntryDecision
    ) -> tuple[EntryDecision, str | None]:
        spec = trade_spec_for(signal, decision)
        outcome = await attempt(
            call(
                TradeLinkActivities.start_trade,
                TradeStart(spec=spec),
                TRADE_LINK,
                f"start trade {spec.trade_id}: buy {spec.qty} {spec.symbol}",
            )
        )
        if isinstance(outcome, Failed):
            failed = EntryDecision(
                enter=False, reason=EntryReason.START_FAILED.value, detail=outcome.why
            )
            return failed, spec.trade_id
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
        page = Details(f"Market loop: {self._phase}").line(
            f"session {r.session_date or '-'}, strategy `{request.strategy}`, watchlist "
            f"{len(request.watchlist)}, max positions {request.max_open_positions}, "
            f"threshold {request.score_threshold}"
        )
        page.table(
            ("broker positions", "reconcile", "signals created", "drain", "entered", "skipped"),
            [
                (
                    "unknown" if r.broker_positions is None else r.broker_positions,
                    r.reconcile or "-",
                    r.signals_created,
                    r.drain or "-",
                    r.entered,
                    r.skipped,
                )
            ],
        )
        if r.reason:
            page.line("").line(f"**{r.reason}** {r.detail}")
        page.table(
            ("signal", "decision", "detail"),
            [(o.signal_key, o.decision.reason, o.decision.detail) for o in r.decisions[-20:]],
        )
        page.bullets(r.notes).publish()
