"""Prelive: the checks that stand between a configuration and live money, as pure judgements.

`starter.py prelive` (cli/prelive.py) gathers the facts - the broker's verify report, clock and
calendar, truth, the installed schedules, trading control, the ledger's reconcile runs and
PENDING signals, the metrics endpoint's answer, what a scan of histories and logs found - and
each function here turns its facts into one PASS/FAIL with the reason. `live_gate` is the
worker's decision (ops/live_gate.py) on the last stored run. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from zoneinfo import ZoneInfo

from pydantic import Field

from trading.broker_models import BrokerTruth, MarketClock, SessionDay
from trading.control import ControlMode
from trading.entry_gate import ControlPresence, ControlView
from trading.ledger_records import ReconcileRunRecord
from trading.models import Frozen
from trading.ops_health import truth_poll_verdict
from trading.routing import covering_stop_of

NEW_YORK = ZoneInfo("America/New_York")
MAX_CLOCK_SKEW_S = 10.0  # the broker's clock against this machine's
SESSION_EDGE_SLACK = timedelta(minutes=1)  # clock edges against the calendar's session times
RECONCILE_MAX_AGE = timedelta(hours=24)  # an older clean reconcile says little about today
PRELIVE_MAX_AGE = timedelta(hours=24)  # a live worker trusts a passing run this long
SKIP_PRELIVE_CONFIRMATION = "I-ACCEPT-NO-PRELIVE"
MIN_SECRET_LENGTH = 8  # shorter values would match ordinary text: not scanned, reported


class PreliveCheck(StrEnum):
    """The checks, in the order they run and print."""

    LIVE_SETTINGS = "live_settings"
    BROKER_VERIFY = "broker_verify"
    CLOCK_CALENDAR = "clock_calendar"
    TRUTH_POLL = "truth_poll"
    SCHEDULES = "schedules"
    TRADING_CONTROL = "trading_control"
    POSITIONS_COVERED = "positions_covered"
    RECONCILE = "reconcile"
    PENDING_SIGNALS = "pending_signals"
    METRICS_ENDPOINT = "metrics_endpoint"
    NO_SECRETS = "no_secrets"


class CheckOutcome(Frozen):
    """One check: PASS or FAIL and the reason (a FAIL's reason says what to fix)."""

    name: PreliveCheck
    passed: bool
    reason: str


class PreliveReport(Frozen):
    """`starter.py prelive --json`: every check, and the one verdict."""

    schema_version: int = 1
    at: datetime
    config_digest: str
    trading_mode: str
    passed: bool
    checks: list[CheckOutcome] = Field(default_factory=list)


def prelive_report(
    checks: Iterable[CheckOutcome], at: datetime, config_digest: str, trading_mode: str
) -> PreliveReport:
    """The report: passed iff every check is present and passed."""
    order = list(PreliveCheck)
    ordered = sorted(checks, key=lambda c: order.index(c.name))
    complete = {c.name for c in ordered} == set(PreliveCheck)
    return PreliveReport(
        at=at,
        config_digest=config_digest,
        trading_mode=trading_mode,
        passed=complete and all(c.passed for c in ordered),
        checks=ordered,
    )


def _pass(name: PreliveCheck, reason: str) -> CheckOutcome:
    return CheckOutcome(name=name, passed=True, reason=reason)


def _fail(name: PreliveCheck, reason: str) -> CheckOutcome:
    return CheckOutcome(name=name, passed=False, reason=reason)


def unavailable(name: PreliveCheck, error: str) -> CheckOutcome:
    """A check whose facts could not be read fails: the gate never passes on *unknown*."""
    return _fail(name, f"could not check: {error}")


# --- configuration ---------------------------------------------------------------------------
class LiveConfig(Frozen):
    """The non-secret settings that decide where orders go (what the config digest covers)."""

    trading_mode: str
    alpaca_paper: bool
    trading_url: str
    data_url: str
    stream_url: str
    key_id_digest: str  # sha256 of the key id, never the key; "" for the local paper broker
    live_confirmed: bool = False


def key_id_digest(key_id: str | None) -> str:
    """A short digest of the Alpaca key id ("" when none is set)."""
    return hashlib.sha256(key_id.encode()).hexdigest()[:16] if key_id else ""


def config_digest(config: LiveConfig) -> str:
    """A digest of the configuration a prelive run vouches for (a live worker must match it)."""
    fields = config.model_dump(mode="json", exclude={"live_confirmed"})
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:24]


def live_settings_outcome(config: LiveConfig, live_hosts: frozenset[str]) -> CheckOutcome:
    """Paper: PASS (nothing to confirm). Live: the confirmation, live endpoints, keys set."""
    name = PreliveCheck.LIVE_SETTINGS
    if config.trading_mode != "live":
        return _pass(name, "paper mode (TRADING_MODE=paper): no live settings to confirm")
    problems = []
    if not config.live_confirmed:
        problems.append("TRADING_LIVE_CONFIRM is not the live confirmation")
    if config.alpaca_paper:
        problems.append("ALPACA_PAPER is true")
    if not config.key_id_digest:
        problems.append("ALPACA_API_KEY is unset")
    host = config.trading_url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    if host not in live_hosts:
        problems.append(f"ALPACA_TRADING_URL points at {host}, not the live API")
    if problems:
        return _fail(name, "live mode, but " + "; ".join(problems))
    return _pass(
        name, f"live mode confirmed: trading at {host}, key id digest {config.key_id_digest}"
    )


# --- broker ----------------------------------------------------------------------------------
class VerifyFacts(Frozen):
    """What `broker verify` reported (or why it could not run)."""

    refused: str | None = None
    passed: int = 0
    skipped: int = 0
    failed_checks: list[str] = Field(default_factory=list)
    cleanup_complete: bool = True
    interrupted: bool = False
    target: str = ""


def verify_outcome(facts: VerifyFacts) -> CheckOutcome:
    """`broker verify` ran, nothing failed, and its cleanup completed."""
    name = PreliveCheck.BROKER_VERIFY
    if facts.refused is not None:
        return _fail(name, f"broker verify did not run: {facts.refused}")
    if facts.failed_checks:
        shown = ", ".join(facts.failed_checks[:5])
        more = f" and {len(facts.failed_checks) - 5} more" if len(facts.failed_checks) > 5 else ""
        return _fail(name, f"broker verify FAILED {shown}{more} (run `broker verify` for detail)")
    if facts.interrupted:
        return _fail(name, "broker verify was interrupted")
    if not facts.cleanup_complete:
        return _fail(name, "broker verify left orders behind (cleanup incomplete)")
    return _pass(
        name, f"{facts.passed} passed, {facts.skipped} skipped against {facts.target}".strip()
    )


def clock_outcome(
    clock: MarketClock,
    calendar: list[SessionDay],
    local_now: datetime,
    *,
    compare_clock: bool = True,
    max_skew_s: float = MAX_CLOCK_SKEW_S,
) -> CheckOutcome:
    """The broker's clock agrees with ours (unless `compare_clock` is off: a simulated clock),
    its next open and close are in order, and they are sessions of its calendar."""
    name = PreliveCheck.CLOCK_CALENDAR
    skew_s = (clock.timestamp - local_now).total_seconds()
    if compare_clock and abs(skew_s) > max_skew_s:
        return _fail(
            name, f"broker clock is {skew_s:+.1f} s off this machine's (at most {max_skew_s:g} s)"
        )
    now = clock.timestamp
    if clock.is_open and not (now < clock.next_close < clock.next_open):
        return _fail(name, "market open but next close/next open are not in order")
    if not clock.is_open and not (now < clock.next_open < clock.next_close):
        return _fail(name, "market closed but next open/next close are not in order")
    if not calendar:
        return _fail(name, "the broker's calendar has no session in the next two weeks")
    sessions = {day.date: day for day in calendar}
    today = now.astimezone(NEW_YORK).date()
    if clock.is_open:
        session = sessions.get(today)
        if session is None or not (session.open <= now < session.close + SESSION_EDGE_SLACK):
            return _fail(name, f"market open but {today} is not a session of the calendar now")
        if abs(session.close - clock.next_close) > SESSION_EDGE_SLACK:
            return _fail(name, f"next close {clock.next_close} is not today's calendar close")
    else:
        upcoming = _session_of(sessions, clock.next_open)
        if upcoming is None:
            return _fail(name, f"next open {clock.next_open} is not a session of the calendar")
        if abs(upcoming.close - clock.next_close) > SESSION_EDGE_SLACK:
            return _fail(name, f"next close {clock.next_close} is not that session's close")
    shown = f"skew {skew_s:+.1f} s" if compare_clock else "simulated clock (local paper broker)"
    next_open = clock.next_open.astimezone(NEW_YORK)
    state = "open" if clock.is_open else f"closed, next open {next_open:%Y-%m-%d %H:%M %Z}"
    is_session = "a session" if today in sessions else "not a session"
    return _pass(name, f"{shown}; market {state}; today ({today}) is {is_session}")


def _session_of(sessions: Mapping[date, SessionDay], at: datetime) -> SessionDay | None:
    session = sessions.get(at.astimezone(NEW_YORK).date())
    if session is None or abs(session.open - at) > SESSION_EDGE_SLACK:
        return None
    return session


def truth_poll_outcome(
    observed_at: datetime | None, now: datetime, max_age_s: float
) -> CheckOutcome:
    """BrokerSync's last poll is fresh (the /readyz verdict)."""
    verdict = truth_poll_verdict(observed_at, now, max_age_s)
    return CheckOutcome(name=PreliveCheck.TRUTH_POLL, passed=verdict.ok, reason=verdict.detail)


def coverage_outcome(truth: BrokerTruth) -> CheckOutcome:
    """Every broker position has an active stop at the broker covering its whole quantity."""
    name = PreliveCheck.POSITIONS_COVERED
    uncovered: list[str] = []
    for position in sorted(truth.positions, key=lambda p: p.symbol):
        if position.qty < 0:
            uncovered.append(f"{position.symbol} short {-position.qty} (no guarded shorts)")
        elif (
            position.qty > 0
            and covering_stop_of(truth.open_orders, position.symbol, position.qty) is None
        ):
            uncovered.append(f"{position.symbol} {_qty(position.qty)}")
    if uncovered:
        return _fail(name, "no active stop covers: " + ", ".join(uncovered))
    held = sum(1 for p in truth.positions if p.qty != 0)
    return _pass(name, f"{held} position(s), each covered by an active stop" if held else "flat")


def _qty(qty: Decimal) -> str:
    return f"{qty.normalize():f} shares"


# --- Temporal --------------------------------------------------------------------------------
class InstalledSchedule(Frozen):
    """A schedule as Temporal holds it: its definition's fingerprint and whether it is paused."""

    fingerprint: str | None
    paused: bool


def schedules_outcome(
    profile: str, planned: Mapping[str, str], installed: Mapping[str, InstalledSchedule]
) -> CheckOutcome:
    """Each schedule of the profile's plan is installed as planned (fingerprint) and running."""
    name = PreliveCheck.SCHEDULES
    missing = sorted(set(planned) - set(installed))
    changed = sorted(
        s for s in planned if s in installed and installed[s].fingerprint != planned[s]
    )
    paused = sorted(s for s in planned if s in installed and installed[s].paused)
    problems = []
    if missing:
        problems.append("missing " + ", ".join(missing))
    if changed:
        problems.append("not as planned " + ", ".join(changed))
    if paused:
        problems.append("paused " + ", ".join(paused))
    if problems:
        return _fail(
            name,
            f"{profile} profile: {'; '.join(problems)} "
            f"(`schedules apply --profile {profile}`, `schedules resume`)",
        )
    return _pass(name, f"{len(planned)} schedules of the {profile} profile installed and running")


def control_outcome(view: ControlView) -> CheckOutcome:
    """TradingControl runs and is ACTIVE."""
    name = PreliveCheck.TRADING_CONTROL
    if view.presence is not ControlPresence.RUNNING:
        detail = f" ({view.detail})" if view.detail else ""
        return _fail(
            name,
            f"TradingControl is {view.presence.value}{detail}; start it with `starter.py resume`",
        )
    if view.mode is not ControlMode.ACTIVE:
        mode = view.mode.value if view.mode else "unknown"
        why = f": {view.reason}" if view.reason else ""
        return _fail(name, f"trading control is {mode}{why}")
    return _pass(name, "trading control ACTIVE")


# --- ledger ----------------------------------------------------------------------------------
def reconcile_outcome(
    runs: list[ReconcileRunRecord], now: datetime, max_age: timedelta = RECONCILE_MAX_AGE
) -> CheckOutcome:
    """The newest finished reconcile run is recent and clean (ok; a dry run found nothing)."""
    name = PreliveCheck.RECONCILE
    finished = [r for r in runs if r.finished_at is not None and r.ok is not None]
    if not finished:
        return _fail(name, "no finished reconcile run recorded (run `starter.py reconcile`)")
    last = max(finished, key=lambda r: (r.finished_at or r.started_at, r.id))
    at = last.finished_at or last.started_at
    age = now - at
    when = f"{at:%Y-%m-%d %H:%M} UTC"
    if not last.ok:
        return _fail(name, f"last reconcile ({when}, {last.source}) failed: {last.error or '?'}")
    if last.dry_run and (last.closed or last.adopted):
        return _fail(
            name,
            f"last reconcile ({when}) was a dry run that found {last.closed} ghost(s) and "
            f"{last.adopted} position(s) to adopt",
        )
    if age > max_age:
        hours = age.total_seconds() / 3600
        return _fail(name, f"last clean reconcile is {hours:.0f} h old (at most {max_age})")
    return _pass(
        name,
        f"last reconcile {when} clean: checked {last.checked}, closed {last.closed}, "
        f"adopted {last.adopted}",
    )


def pending_outcome(oldest_pending_age_s: float | None, max_age_s: float) -> CheckOutcome:
    """No signal has stayed PENDING past its maximum age."""
    name = PreliveCheck.PENDING_SIGNALS
    if oldest_pending_age_s is None:
        return _pass(name, "no PENDING signals")
    if oldest_pending_age_s > max_age_s:
        return _fail(
            name,
            f"a PENDING signal is {oldest_pending_age_s / 3600:.1f} h old (max age "
            f"{max_age_s / 3600:g} h): scoring is stuck (`starter.py drain`)",
        )
    return _pass(name, f"oldest PENDING signal {oldest_pending_age_s:.0f} s old")


# --- operations --------------------------------------------------------------------------------
def metrics_outcome(
    address: str, status: int | None, body: str | None, error: str | None = None
) -> CheckOutcome:
    """METRICS_ADDRESS answers GET /metrics with 200 and Prometheus samples."""
    name = PreliveCheck.METRICS_ENDPOINT
    if not address:
        return _fail(name, "METRICS_ADDRESS is empty: workers expose no metrics")
    url = f"http://{address}/metrics"
    if error is not None:
        return _fail(name, f"{url} did not answer: {error}")
    if status != 200:
        return _fail(name, f"{url} answered HTTP {status}")
    samples = [
        line for line in (body or "").splitlines() if line.strip() and not line.startswith("#")
    ]
    if not samples:
        return _fail(name, f"{url} answered without any metric sample")
    families = {line.split("{", 1)[0].split(" ", 1)[0] for line in samples}
    ours = sum(1 for f in families if f.startswith(("dt_", "temporal_")))
    return _pass(name, f"{url}: {len(samples)} samples, {ours} dt_/temporal_ series names")


class SecretScan(Frozen):
    """What the secret scan read and which secret names it found where (never the values)."""

    histories: int = 0
    events: int = 0
    log_files: int = 0
    scanned: list[str] = Field(default_factory=list)  # the secret names looked for
    too_short: list[str] = Field(default_factory=list)
    leaks: dict[str, list[str]] = Field(default_factory=dict)  # secret name -> places


def secrets_outcome(scan: SecretScan) -> CheckOutcome:
    """No secret value in any workflow history or log that was scanned."""
    name = PreliveCheck.NO_SECRETS
    short = f"; not scanned (shorter than {MIN_SECRET_LENGTH}): {', '.join(scan.too_short)}"
    if scan.leaks:
        found = "; ".join(
            f"{secret} in {', '.join(places[:3])}{' ...' if len(places) > 3 else ''}"
            for secret, places in sorted(scan.leaks.items())
        )
        return _fail(name, f"secret leaked: {found}")
    looked = ", ".join(scan.scanned) if scan.scanned else "no secrets set"
    return _pass(
        name,
        f"{scan.histories} histories ({scan.events} events) and {scan.log_files} log files "
        f"clean of {looked}" + (short if scan.too_short else ""),
    )


def secret_needles(secrets: Mapping[str, str]) -> tuple[dict[str, list[bytes]], list[str]]:
    """The byte strings to look for, per secret name (the value raw and as a JSON string would
    carry it), and the names too short to scan without false alarms."""
    needles: dict[str, list[bytes]] = {}
    too_short: list[str] = []
    for name, value in secrets.items():
        if not value:
            continue
        if len(value) < MIN_SECRET_LENGTH:
            too_short.append(name)
            continue
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        needles[name] = sorted(form.encode() for form in forms)
    return needles, sorted(too_short)


def leaked_names(data: bytes, needles: Mapping[str, list[bytes]]) -> set[str]:
    """The secret names any of whose forms occurs in `data`."""
    return {name for name, forms in needles.items() if any(f in data for f in forms)}


# --- the live gate ---------------------------------------------------------------------------
class PreliveRunRecord(Frozen):
    """A stored prelive run (ledger prelive_runs)."""

    id: int
    at: datetime
    config_digest: str
    passed: bool
    checks: list[CheckOutcome] = Field(default_factory=list)


class GateDecision(Frozen):
    """May a worker start: allowed, why, and whether the operator overrode the gate."""

    allowed: bool
    reason: str
    overridden: bool = False


def live_gate(
    trading_mode: str,
    digest: str,
    last_run: PreliveRunRecord | None,
    now: datetime,
    override: str | None,
    max_age: timedelta = PRELIVE_MAX_AGE,
) -> GateDecision:
    """Paper: allowed. Live: the last prelive of this configuration passed within `max_age`,
    or LIVE_SKIP_PRELIVE carries the override phrase."""
    if trading_mode != "live":
        return GateDecision(allowed=True, reason="paper mode: no prelive needed")
    if override == SKIP_PRELIVE_CONFIRMATION:
        return GateDecision(
            allowed=True,
            overridden=True,
            reason=f"LIVE_SKIP_PRELIVE={SKIP_PRELIVE_CONFIRMATION}: starting live WITHOUT a "
            "passing prelive",
        )
    hint = "run `python starter.py prelive` with this configuration until it passes"
    if last_run is None:
        return GateDecision(
            allowed=False, reason=f"no prelive run for this configuration ({digest}); {hint}"
        )
    when = f"{last_run.at:%Y-%m-%d %H:%M} UTC"
    if not last_run.passed:
        failed = ", ".join(c.name.value for c in last_run.checks if not c.passed) or "?"
        return GateDecision(
            allowed=False, reason=f"the last prelive ({when}) FAILED: {failed}; {hint}"
        )
    if now - last_run.at > max_age:
        return GateDecision(
            allowed=False,
            reason=f"the last passing prelive ({when}) is older than {max_age}; {hint}",
        )
    return GateDecision(allowed=True, reason=f"prelive passed {when} for this configuration")
