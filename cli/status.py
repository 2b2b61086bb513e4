"""`starter.py status [--json]`: broker truth, gating, control, backlog, reconcile, rescues,
schedules and a health verdict in one view. Each source fails on its own: a broker outage
still shows the ledger, and the other way round."""

from __future__ import annotations

import argparse
import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from activities.control_link import read_control_now
from broker.errors import BrokerError
from cli.broker_calls import metered_broker
from cli.output import emit_json, market_state, say, table
from clients import make_client, make_pool
from contracts.schedules import SCHEDULE_PREFIX
from ledger.option_trades import OptionTrades
from ledger.risk import RiskEvents
from ledger.runs import EntryRuns, ReconcileRuns
from ledger.signal_paths import SignalPathsRepository
from ledger.signals import Signals
from ops.health import ReadinessProbes
from settings import ConfigError, Settings
from trading.broker_budget import BudgetView
from trading.broker_models import BrokerTruth
from trading.entry_gate import ControlPresence, ControlView, EntryLimits, run_gate
from trading.ledger_records import EntryRunRecord
from trading.ops_health import Dependency, DependencyVerdict, readiness_lines
from trading.ops_status import (
    BrokerSection,
    OpsStatus,
    OptionsSection,
    ReconcileSection,
    RescueSection,
    ScheduleView,
    ScoringSection,
    control_section,
    entry_section,
    health,
    options_section,
)
from trading.options.records import OptionTradesQuery
from trading.signal_path import SignalPathQuery

BROKER_READ_TIMEOUT_S = 5.0  # a status that waits long on one read is no status
RESCUE_KINDS = {
    "stop_rescued": "rescued",
    "stop_rescue_failed": "failed",
    "stop_rescue_alert": "alerts",
}


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `status` command."""
    status = commands.add_parser(
        "status", help="ops view: broker truth, entry gating, control, backlog, health"
    )
    status.add_argument(
        "--json", action="store_true", help="print JSON (schema: docs/status.schema.json)"
    )
    status.set_defaults(handler=cmd_status)


async def _broker(
    settings: Settings, pool: asyncpg.Pool | None
) -> tuple[BrokerSection, BrokerTruth | None, BudgetView | None]:
    """The broker section, the truth snapshot the entry gate judges (None: unavailable) and
    the broker-call budget after this command's own calls."""
    budget: BudgetView | None = None
    try:
        broker = metered_broker(settings, pool, read_timeout_s=BROKER_READ_TIMEOUT_S)
        try:
            truth = await broker.broker_truth()
            clock = await broker.get_clock()
        finally:
            budget = await broker.budget.view()
    except (BrokerError, ConfigError) as exc:
        return BrokerSection(connected=False, error=f"{type(exc).__name__}: {exc}"), None, budget
    section = BrokerSection(
        connected=True,
        fetched_at=truth.fetched_at,
        account=truth.account,
        market_open=clock.is_open,
        positions=truth.positions,
        open_orders=truth.open_orders,
    )
    return section, truth, budget


async def _schedules(client: Client) -> list[ScheduleView]:
    found: list[ScheduleView] = []
    async for listed in await client.list_schedules():
        if not listed.id.startswith(SCHEDULE_PREFIX):
            continue
        description = await client.get_schedule_handle(listed.id).describe()
        action: Any = description.schedule.action
        upcoming = description.info.next_action_times
        found.append(
            ScheduleView(
                id=listed.id,
                workflow=str(getattr(action, "workflow", "?")),
                paused=description.schedule.state.paused,
                next_run=upcoming[0] if upcoming else None,
            )
        )
    return sorted(found, key=lambda s: s.id)


async def _ledger(
    pool: asyncpg.Pool,
) -> tuple[ScoringSection, ReconcileSection, RescueSection, EntryRunRecord | None]:
    funnel = await Signals(pool).funnel(6)
    paths = await SignalPathsRepository(pool).paths(SignalPathQuery(window_hours=6, limit=1))
    scoring = ScoringSection(
        last_6h=funnel.recent,
        all_time=funnel.all_time,
        oldest_pending_age_s=await Signals(pool).oldest_pending_age_s(),
        decisions_6h=paths.reasons,
    )
    runs = await ReconcileRuns(pool).recent(200)
    reconcile = ReconcileSection(
        runs_total=len(runs),
        failed_total=sum(1 for r in runs if r.ok is False),
        last_runs=runs[:5],
    )
    since = datetime.now(UTC) - timedelta(hours=24)
    counts = {"rescued": 0, "failed": 0, "alerts": 0}
    last_at: datetime | None = None
    for event in await RiskEvents(pool).recent(2000):
        if event.at >= since and event.kind in RESCUE_KINDS:
            counts[RESCUE_KINDS[event.kind]] += 1
            last_at = max(last_at or event.at, event.at)
    rescues = RescueSection(
        rescued_24h=counts["rescued"],
        failed_24h=counts["failed"],
        alerts_24h=counts["alerts"],
        last_event_at=last_at,
    )
    return scoring, reconcile, rescues, await EntryRuns(pool).last()


async def _options(pool: asyncpg.Pool) -> OptionsSection:
    found = await OptionTrades(pool).list(OptionTradesQuery(open_only=True))
    return options_section(found.trades)


async def gather(settings: Settings) -> OpsStatus:
    """Collect every section; a failing source leaves its section empty with the error."""
    pool: asyncpg.Pool | None = None
    ledger_error: str | None = None
    try:
        pool = await make_pool(settings, min_size=1, max_size=2)
    except ConfigError as exc:
        ledger_error = str(exc)
    try:
        return await _gather(settings, pool, ledger_error)
    finally:
        if pool is not None:
            await pool.close()


async def _gather(
    settings: Settings, pool: asyncpg.Pool | None, ledger_error: str | None
) -> OpsStatus:
    broker, truth, budget = await _broker(settings, pool)
    temporal_error: str | None = None
    control = ControlView(presence=ControlPresence.UNREACHABLE, detail="Temporal unreachable")
    schedules: list[ScheduleView] | None = None
    client: Client | None = None
    try:
        client = await make_client(settings)
        control = await read_control_now(client)
        schedules = await _schedules(client)
    except (ConfigError, RPCError) as exc:
        temporal_error = str(exc)
    scoring = reconcile = rescues = None
    options: OptionsSection | None = None
    last_run: EntryRunRecord | None = None
    if pool is not None:
        try:
            scoring, reconcile, rescues, last_run = await _ledger(pool)
            options = await _options(pool)
        except (asyncpg.PostgresError, OSError) as exc:
            ledger_error = str(exc)
    # The market loop's own gate, on the same inputs it reads: one answer, never two.
    limits = EntryLimits(max_open_positions=settings.max_open_positions)
    answer = run_gate(control, truth, limits)
    entries = entry_section(answer, settings.max_open_positions, last_run)
    return OpsStatus(
        generated_at=datetime.now(UTC),
        broker=broker,
        budget=budget,
        control=control_section(control),
        entries=entries,
        scoring=scoring,
        reconcile=reconcile,
        rescues=rescues,
        options=options,
        schedules=schedules,
        ledger_error=ledger_error,
        temporal_error=temporal_error,
        health=health(broker, scoring, entries),
        # The workers' /readyz verdicts; the broker's is this command's own broker read.
        readiness=await ReadinessProbes(settings, client, pool, None).readiness(
            broker=_broker_verdict(broker)
        ),
    )


def _broker_verdict(broker: BrokerSection) -> DependencyVerdict:
    detail = market_state(broker.market_open) if broker.connected else broker.error or "down"
    return DependencyVerdict(name=Dependency.BROKER, ok=broker.connected, detail=detail)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Print the ops view; exit 0 when healthy, 1 when any health flag is false."""
    status = asyncio.run(gather(settings))
    if args.json:
        emit_json(status.model_dump(mode="json"))
    else:
        _print(status)
    healthy = status.health.broker_connected and status.health.scoring_healthy
    return 0 if healthy else 1


def _print(status: OpsStatus) -> None:
    h = status.health
    say(
        f"health: broker {'OK' if h.broker_connected else 'DOWN'}, scoring "
        f"{'OK' if h.scoring_healthy else 'BEHIND'}, entries "
        f"{'READY' if h.entries_ready else 'GATED'}"
    )
    for problem in h.problems:
        say(f"  - {problem}")
    if status.readiness is not None:
        for line in readiness_lines(status.readiness):
            say(line)
    b = status.broker
    say("")
    if b.connected and b.account is not None:
        say(
            f"broker (fetched {b.fetched_at:%H:%M:%S} UTC, {market_state(b.market_open)}): "
            f"equity {b.account.equity}, cash "
            f"{b.account.cash}, buying power {b.account.buying_power}"
        )
        say(
            table(
                [
                    (p.symbol, str(p.qty), str(p.avg_entry_price), str(p.unrealized_pl or ""))
                    for p in b.positions
                ],
                header=("symbol", "qty", "avg price", "unrealized"),
            )
            if b.positions
            else "  no positions"
        )
        say(f"  open orders: {len(b.open_orders)}")
    else:
        say(f"broker: UNAVAILABLE ({b.error})")
    if status.budget is not None:
        for line in budget_lines(status.budget):
            say(line)
    c, e = status.control, status.entries
    mode = c.mode.value if c.mode else c.presence.value
    say(f"control: {mode}{f' ({c.reason or c.detail})' if c.reason or c.detail else ''}")
    reason = e.skip_reason.value if e.skip_reason else ""
    gate = "ready" if e.ready else f"gated: {reason} {e.skip_detail or ''}".strip()
    say(
        f"entries: {gate} (broker positions {e.broker_positions_count}, pending entries "
        f"{e.pending_entries}, max {e.max_open_positions})" + (f"; {e.note}" if e.note else "")
    )
    if e.last_run:
        say(
            f"  last entry run {e.last_run.at:%Y-%m-%d %H:%M} UTC: entered {e.last_run.entered}"
            f", skipped {e.last_run.skipped}, reason {e.last_run.reason or '-'} "
            f"{e.last_run.detail}"
        )
    if status.scoring:
        s = status.scoring
        say(
            f"scoring: last 6 h {s.last_6h.created} created / {s.last_6h.scored} scored / "
            f"{s.last_6h.error} error / {s.last_6h.pending} pending; all time "
            f"{s.all_time.pending} pending"
        )
        if s.decisions_6h:
            say(
                "  decisions (6 h): "
                + ", ".join(f"{reason} {n}" for reason, n in s.decisions_6h.items())
            )
    if status.reconcile:
        r = status.reconcile
        say(f"reconcile: {r.runs_total} runs, {r.failed_total} failed")
        for run in r.last_runs:
            say(
                f"  {run.started_at:%m-%d %H:%M:%S} {run.source}: ok={run.ok} checked "
                f"{run.checked} closed {run.closed} adopted {run.adopted} synced {run.synced}"
            )
    if status.rescues:
        x = status.rescues
        say(
            f"stop rescues (24 h): {x.rescued_24h} ok, {x.failed_24h} failed, {x.alerts_24h} alerts"
        )
    if status.options is not None:
        for line in option_lines(status.options):
            say(line)
    if status.schedules is not None:
        say(f"schedules: {len(status.schedules)} installed")
        for sched in status.schedules:
            say(
                f"  {sched.id}: {sched.workflow} {'PAUSED' if sched.paused else 'next '}"
                f"{'' if sched.paused else sched.next_run}"
            )
    for label, error in (("ledger", status.ledger_error), ("temporal", status.temporal_error)):
        if error:
            say(f"{label}: UNAVAILABLE ({error})")


def option_lines(options: OptionsSection) -> list[str]:
    """Open option trades: one line each, and their max loss together."""
    trades = options.open_trades
    if not trades:
        return ["options: no open option trades"]
    lines = [f"options: {len(trades)} open, max loss together {options.max_loss_open} USD"]
    for t in trades:
        credit = "-" if t.credit is None else f"{t.credit}"
        lines.append(
            f"  {t.id}: {t.underlying} {t.strategy} x{t.qty} exp {t.expiry} {t.status.value} "
            f"({t.origin.value}) credit {credit} max loss {t.max_loss}"
        )
    return lines


def budget_lines(budget: BudgetView) -> list[str]:
    """The broker-call budget in a few lines: usage by priority, reserves, the broker's count."""
    used = budget.used_by_priority
    where = "shared by every process" if budget.shared else "this process only: no PostgreSQL"
    lines = [
        f"broker-call budget ({where}): {budget.used_last_60s} of {budget.limit_per_min} used "
        f"in the last 60 s (protect {used.protect}, trade {used.trade}, read {used.read}), "
        f"{budget.remaining} left; reads stop at {budget.read_reserve} left, trades at "
        f"{budget.trade_reserve}"
    ]
    if budget.broker_remaining is not None:
        reset = f" until {budget.broker_reset_at:%H:%M:%S} UTC" if budget.broker_reset_at else ""
        lines.append(
            f"  broker's own count: {budget.broker_remaining} of {budget.broker_limit} left{reset}"
        )
    if budget.blocked_until is not None:
        lines.append(
            f"  BLOCKED until {budget.blocked_until:%H:%M:%S} UTC: {budget.blocked_reason}"
        )
    return lines
