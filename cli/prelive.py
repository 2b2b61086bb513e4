"""`starter.py prelive [--json]`: one gate before live money.

Gathers the facts each check of trading/prelive.py judges - broker verify, the broker's clock
and calendar, BrokerSync's poll, the market profile's schedules, trading control, broker truth
against active stops, the last reconcile, PENDING signals, the metrics endpoint, and a scan of
recent workflow histories and the dev stack's logs for secret values - prints CHECK | PASS/FAIL
| reason, records the run in the ledger (prelive_runs: what a live worker's gate reads) and
exits 1 on any FAIL. A check whose facts cannot be read FAILs: the gate never passes on unknown.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import asyncpg
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, ScheduleActionStartWorkflow

from activities.control_link import read_control_now
from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint, broker_endpoint
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from broker.verify import LIVE_TRADING_HOSTS, VerifyOptions, VerifyRefused, live_refusal, run_verify
from broker.verify_session import READ_TIMEOUT_S, Verdict
from cli.broker_calls import metered_broker
from cli.output import emit_json, say, table
from cli.schedule_ops import FINGERPRINT_MEMO, describe_or_none, plan_for
from clients import make_client, make_pool
from ledger.prelive import PreliveRuns, last_truth_poll_at
from ledger.runs import ReconcileRuns
from ledger.signals import Signals
from ops.live_gate import live_config
from ops.notifier import WebhookFailed, notify_now
from settings import ConfigError, Settings
from trading.broker_budget import Priority
from trading.ledger_records import DEFAULT_SIGNAL_MAX_AGE_SECONDS
from trading.notify import prelive_failed_notice
from trading.ops_health import truth_poll_max_age_s
from trading.prelive import (
    NEW_YORK,
    CheckOutcome,
    InstalledSchedule,
    PreliveCheck,
    PreliveReport,
    SecretScan,
    VerifyFacts,
    clock_outcome,
    config_digest,
    control_outcome,
    coverage_outcome,
    leaked_names,
    live_settings_outcome,
    metrics_outcome,
    pending_outcome,
    prelive_report,
    reconcile_outcome,
    schedules_outcome,
    secret_needles,
    secrets_outcome,
    truth_poll_outcome,
    unavailable,
    verify_outcome,
)
from trading.schedule_plan import ScheduleProfile

SCHEDULE_PROFILE: ScheduleProfile = "market"  # live money runs on NYSE hours
HISTORY_LIMIT = 100  # the most recent workflow runs whose histories are scanned
HISTORY_CONCURRENCY = 8
LOG_SCAN_BYTES = 32 * 1024 * 1024  # the tail of each log file
METRICS_TIMEOUT_S = 5.0
CALENDAR_DAYS = 14


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `prelive` command."""
    prelive = commands.add_parser(
        "prelive", help="the checks before live money: PASS/FAIL table, exit 1 on any FAIL"
    )
    prelive.add_argument("--json", action="store_true", help="print JSON")
    prelive.add_argument(
        "--histories",
        type=int,
        default=HISTORY_LIMIT,
        help=f"recent workflow histories scanned for secrets (default {HISTORY_LIMIT})",
    )
    prelive.set_defaults(handler=cmd_prelive)


def cmd_prelive(args: argparse.Namespace, settings: Settings) -> int:
    """Run the checks, record the run, print the table or JSON; exit 1 on any FAIL."""
    report, run_id = asyncio.run(run_prelive(settings, history_limit=max(args.histories, 0)))
    if args.json:
        emit_json({**report.model_dump(mode="json"), "recorded_run_id": run_id})
    else:
        _print(report, run_id)
    return 0 if report.passed else 1


def _print(report: PreliveReport, run_id: int | None) -> None:
    rows = [(c.name.value, "PASS" if c.passed else "FAIL", c.reason) for c in report.checks]
    say(table(rows, header=("CHECK", "RESULT", "REASON")))
    failed = [c for c in report.checks if not c.passed]
    recorded = f"recorded as run {run_id}" if run_id is not None else "NOT recorded (no ledger)"
    verdict = "PASS" if report.passed else f"FAIL ({len(failed)} of {len(report.checks)} failed)"
    say(
        f"prelive: {verdict}; {report.trading_mode} mode, config {report.config_digest}, {recorded}"
    )


async def run_prelive(
    settings: Settings, *, history_limit: int = HISTORY_LIMIT
) -> tuple[PreliveReport, int | None]:
    """Every check, the report, and the id of its prelive_runs row (None: not recorded)."""
    pool: asyncpg.Pool | None = None
    ledger_error = temporal_error = ""
    try:
        pool = await make_pool(settings, min_size=1, max_size=4)
    except ConfigError as exc:
        ledger_error = str(exc)
    client: Client | None = None
    try:
        client = await make_client(settings)
    except ConfigError as exc:
        temporal_error = str(exc)
    try:
        checks = await _checks(settings, pool, client, history_limit, ledger_error, temporal_error)
        config = live_config(settings)
        report = prelive_report(
            checks, datetime.now(UTC), config_digest(config), settings.trading_mode
        )
        run_id = (await PreliveRuns(pool).record(report)).id if pool is not None else None
        if pool is not None and run_id is not None and not report.passed:
            await _tell_people(settings, pool, report, run_id)
        return report, run_id
    finally:
        if pool is not None:
            await pool.close()


async def _tell_people(
    settings: Settings, pool: asyncpg.Pool, report: PreliveReport, run_id: int
) -> None:
    """A failed run goes to ALERT_WEBHOOK_URL once (its event key is the run); a webhook that
    does not take it is one line on stderr, never a different verdict."""
    failures = [(c.name.value, c.reason) for c in report.checks if not c.passed]
    notice = prelive_failed_notice(str(run_id), failures, report.at, report.config_digest)
    try:
        await notify_now(settings, pool, notice)
    except WebhookFailed as exc:
        sys.stderr.write(f"prelive: the failure notice was not sent ({exc})\n")


async def _checks(
    settings: Settings,
    pool: asyncpg.Pool | None,
    client: Client | None,
    history_limit: int,
    ledger_error: str,
    temporal_error: str,
) -> list[CheckOutcome]:
    checks = [live_settings_outcome(live_config(settings), LIVE_TRADING_HOSTS)]
    broker = metered_broker(settings, pool, read_timeout_s=READ_TIMEOUT_S)
    checks.append(await _guarded(PreliveCheck.CLOCK_CALENDAR, lambda: _clock(settings, broker)))
    checks.append(await _guarded(PreliveCheck.BROKER_VERIFY, lambda: _verify(settings, broker)))
    checks.append(
        await _guarded(
            PreliveCheck.POSITIONS_COVERED, lambda: _coverage(broker), prefix="broker truth"
        )
    )
    if client is None:
        for name in (PreliveCheck.SCHEDULES, PreliveCheck.TRADING_CONTROL):
            checks.append(unavailable(name, temporal_error))
    else:
        checks.append(await _guarded(PreliveCheck.SCHEDULES, lambda: _schedules(settings, client)))
        checks.append(await _guarded(PreliveCheck.TRADING_CONTROL, lambda: _control(client)))
    if pool is None:
        for name in (PreliveCheck.TRUTH_POLL, PreliveCheck.RECONCILE, PreliveCheck.PENDING_SIGNALS):
            checks.append(unavailable(name, ledger_error))
    else:
        ledger = pool
        checks.append(
            await _guarded(PreliveCheck.TRUTH_POLL, lambda: _poll(settings, ledger, broker))
        )
        checks.append(await _guarded(PreliveCheck.RECONCILE, lambda: _reconcile(ledger)))
        checks.append(await _guarded(PreliveCheck.PENDING_SIGNALS, lambda: _pending(ledger)))
    checks.append(await _guarded(PreliveCheck.METRICS_ENDPOINT, lambda: _metrics(settings)))
    checks.append(
        await _guarded(PreliveCheck.NO_SECRETS, lambda: _secrets(settings, client, history_limit))
    )
    return checks


async def _guarded(
    name: PreliveCheck, gather: Callable[[], Awaitable[CheckOutcome]], prefix: str = ""
) -> CheckOutcome:
    """The check, or its FAIL when its facts could not be read."""
    try:
        return await gather()
    except Exception as exc:  # each check fails on its own; the others still run
        text = (str(exc).strip().splitlines() or [""])[0][:200]
        where = f"{prefix}: " if prefix else ""
        return unavailable(name, f"{where}{type(exc).__name__}: {text}")


# --- broker --------------------------------------------------------------------------------
async def _clock(settings: Settings, broker: MeteredGateway) -> CheckOutcome:
    clock = await broker.get_clock()
    local_now = datetime.now(UTC)
    today = clock.timestamp.astimezone(NEW_YORK).date()
    calendar = await broker.get_calendar(today, today + timedelta(days=CALENDAR_DAYS))
    # The dev stack's own paper broker runs a simulated clock (an offset into a session).
    return clock_outcome(clock, calendar, local_now, compare_clock=not settings.uses_paper_broker)


async def _verify(settings: Settings, broker: MeteredGateway) -> CheckOutcome:
    endpoint = broker_endpoint(settings)
    # Prelive is the step before live money: against a live account (TRADING_MODE=live and its
    # confirmation, enforced by the settings) verify places its one-share, far-priced orders.
    refusal = live_refusal(settings, endpoint, allow_live=True)
    if refusal is not None:
        return verify_outcome(VerifyFacts(refused=refusal))
    gateway = AlpacaGateway(endpoint, read_timeout_s=READ_TIMEOUT_S)
    try:
        facts = await asyncio.to_thread(_verify_facts, endpoint, gateway)
    finally:  # the run's calls go into the shared budget, as `broker verify` does
        await broker.budget.charge(
            Priority.TRADE, "prelive broker verify", gateway.rate_limits.requests_sent
        )
        if gateway.rate_limits.latest is not None:
            await broker.budget.learn(gateway.rate_limits.latest)
    return verify_outcome(facts)


def _verify_facts(endpoint: BrokerEndpoint, gateway: AlpacaGateway) -> VerifyFacts:
    try:
        report = run_verify(endpoint, VerifyOptions(), gateway=gateway)
    except VerifyRefused as exc:
        return VerifyFacts(refused=str(exc))
    return VerifyFacts(
        passed=report.summary.passed,
        skipped=report.summary.skipped,
        failed_checks=[c.name for c in report.checks if c.verdict is Verdict.FAIL],
        cleanup_complete=report.cleanup.complete,
        interrupted=report.interrupted,
        target=f"{report.target.kind} ({report.target.symbol})",
    )


async def _coverage(broker: MeteredGateway) -> CheckOutcome:
    return coverage_outcome(await broker.broker_truth())


# --- Temporal --------------------------------------------------------------------------------
async def _schedules(settings: Settings, client: Client) -> CheckOutcome:
    plan = plan_for(settings, SCHEDULE_PROFILE)
    queue = settings.temporal_task_queue
    planned = {op.schedule_id: op.fingerprint(queue) for op in plan.operations}
    installed: dict[str, InstalledSchedule] = {}
    for schedule_id in planned:
        description = await describe_or_none(client, schedule_id)
        if description is None:
            continue
        fingerprint: str | None = None
        action = description.schedule.action
        if isinstance(action, ScheduleActionStartWorkflow) and action.memo:
            raw: Any = action.memo.get(FINGERPRINT_MEMO)
            if raw is not None and hasattr(raw, "data"):
                raw = (await client.data_converter.decode([raw]))[0]
            fingerprint = None if raw is None else str(raw)
        installed[schedule_id] = InstalledSchedule(
            fingerprint=fingerprint, paused=description.schedule.state.paused
        )
    return schedules_outcome(SCHEDULE_PROFILE, planned, installed)


async def _control(client: Client) -> CheckOutcome:
    return control_outcome(await read_control_now(client))


# --- ledger ----------------------------------------------------------------------------------
async def _poll(settings: Settings, pool: asyncpg.Pool, broker: MeteredGateway) -> CheckOutcome:
    observed = await last_truth_poll_at(pool)
    try:
        market_open: bool | None = (await broker.get_clock()).is_open
    except BrokerError:
        market_open = None  # unknown: the closed market's allowance
    max_age_s = truth_poll_max_age_s(settings.truth_poll_max_age_s, market_open)
    return truth_poll_outcome(observed, datetime.now(UTC), max_age_s)


async def _reconcile(pool: asyncpg.Pool) -> CheckOutcome:
    return reconcile_outcome(await ReconcileRuns(pool).recent(20), datetime.now(UTC))


async def _pending(pool: asyncpg.Pool) -> CheckOutcome:
    age = await Signals(pool).oldest_pending_age_s()
    return pending_outcome(age, DEFAULT_SIGNAL_MAX_AGE_SECONDS)


# --- operations ------------------------------------------------------------------------------
async def _metrics(settings: Settings) -> CheckOutcome:
    address = settings.metrics_address.strip()
    if not address:
        return metrics_outcome("", None, None)
    timeout = aiohttp.ClientTimeout(total=METRICS_TIMEOUT_S)
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as session,
            session.get(f"http://{address}/metrics") as answer,
        ):
            return metrics_outcome(address, answer.status, await answer.text())
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        reason = "timed out" if isinstance(exc, TimeoutError) else f"{type(exc).__name__}"
        return metrics_outcome(address, None, None, error=reason)


def secret_values(settings: Settings) -> dict[str, str]:
    """Each secret setting's value(s) to look for, by setting name (never printed)."""
    values: dict[str, str] = {}
    try:
        endpoint = broker_endpoint(settings)  # the dev stack's paper broker keys too
        values["ALPACA_API_KEY"] = endpoint.key_id.get_secret_value()
        values["ALPACA_SECRET_KEY"] = endpoint.secret_key.get_secret_value()
    except (ConfigError, OSError, ValueError):
        for name in ("alpaca_api_key", "alpaca_secret_key"):
            secret = getattr(settings, name)
            if secret is not None:
                values[name.upper()] = secret.get_secret_value()
    if settings.database_url is not None:
        url = urlsplit(settings.database_url.get_secret_value())
        password = url.password or next(iter(parse_qs(url.query).get("password", [])), None)
        if password:
            values["DATABASE_URL"] = password
    if settings.temporal_api_key is not None:
        values["TEMPORAL_API_KEY"] = settings.temporal_api_key.get_secret_value()
    if settings.alert_webhook_url is not None:
        values["ALERT_WEBHOOK_URL"] = settings.alert_webhook_url.get_secret_value()
    if settings.payload_encryption_key is not None:
        keys = settings.payload_encryption_key.get_secret_value().split(",")
        for index, entry in enumerate(k.strip() for k in keys):
            material = entry.rpartition(":")[2]  # the key id is meant to be seen; the key not
            name = "PAYLOAD_ENCRYPTION_KEY" + (f"[{index}]" if index else "")
            if material:
                values[name] = material
    return {name: value for name, value in values.items() if value}


async def _secrets(settings: Settings, client: Client | None, history_limit: int) -> CheckOutcome:
    if client is None:
        return unavailable(PreliveCheck.NO_SECRETS, "no Temporal client to read histories")
    needles, too_short = secret_needles(secret_values(settings))
    leaks: dict[str, list[str]] = {}
    histories, events = await _scan_histories(client, needles, history_limit, leaks)
    logs = await asyncio.to_thread(_scan_logs, settings.state_dir / "logs", needles, leaks)
    scan = SecretScan(
        histories=histories,
        events=events,
        log_files=logs,
        scanned=sorted(needles),
        too_short=too_short,
        leaks=leaks,
    )
    return secrets_outcome(scan)


async def _scan_histories(
    client: Client, needles: dict[str, list[bytes]], limit: int, leaks: dict[str, list[str]]
) -> tuple[int, int]:
    """Scan the `limit` newest runs' histories, raw and with payloads decoded by the client's
    codec; returns (histories, events) read."""
    runs = [(w.id, w.run_id) async for w in client.list_workflows(limit=limit)] if limit else []
    gate = asyncio.Semaphore(HISTORY_CONCURRENCY)
    codec = client.data_converter.payload_codec

    async def scan(workflow_id: str, run_id: str) -> int:
        async with gate:
            history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        found: set[str] = set()
        for event in history.events:
            found |= leaked_names(event.SerializeToString(), needles)
            payloads = list(_payloads(event))
            if codec is not None and payloads:
                try:
                    payloads = await codec.decode(payloads)
                except Exception:  # an undecodable payload was scanned raw above
                    payloads = []
            for payload in payloads:
                found |= leaked_names(payload.SerializeToString(), needles)
        for name in found:
            leaks.setdefault(name, []).append(f"workflow {workflow_id} (run {run_id[:8]})")
        return len(history.events)

    counts = await asyncio.gather(*(scan(w, r) for w, r in runs))
    return len(runs), sum(counts)


def _payloads(message: Message) -> list[Payload]:
    """Every Payload inside a history event (inputs, results, memos, details, headers)."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = list(value.values())
        elif field.is_repeated:
            items = list(value)
        else:
            items = [value]
        for item in items:
            if isinstance(item, Message):
                found += _payloads(item)
    return found


def _scan_logs(log_dir: Path, needles: dict[str, list[bytes]], leaks: dict[str, list[str]]) -> int:
    """Scan the tail of each *.log under `log_dir`; returns the files read."""
    if not log_dir.is_dir():
        return 0
    files = sorted(log_dir.glob("*.log"))
    for path in files:
        with path.open("rb") as log:
            size = log.seek(0, 2)
            log.seek(max(0, size - LOG_SCAN_BYTES))
            data = log.read()
        for name in leaked_names(data, needles):
            leaks.setdefault(name, []).append(f"log {path.name}")
    return len(files)
