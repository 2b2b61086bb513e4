"""Alerts to people: the notice an alerting event becomes, and its Slack-compatible message.

Pure: a workflow (or the CLI) builds a Notice with one of the `*_notice` functions, under an
event key that is the same however often the event is reported (retries, replays, restarts);
ops/notifier.py sends it once per key. `slack_body` is the JSON a Slack incoming webhook (and
the Slack-compatible ones of Mattermost, Rocket.Chat, Discord's /slack endpoint) accepts:
`text` for the notification line and a few `section` blocks of mrkdwn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from pydantic import Field

from trading.control import ControlChange, ControlCommand, FlattenReport, RescueAlert
from trading.models import Frozen

# A long position no active stop covers for longer than this is worth waking someone for: a
# rescue replaces a dead stop within a second or two.
UNCOVERED_ALERT_AFTER = timedelta(seconds=30)  # UNCOVERED_ALERT_AFTER_S; ops/alerts.yml's 30 s

# Slack's limits: a section's text 3,000 characters, a field's 2,000, ten fields a section.
SECTION_CHARS = 3000
FIELD_CHARS = 2000
MAX_FIELDS = 10
MAX_LINES = 40
REDACTED = "********"
_MIN_SECRET_CHARS = 6  # shorter "secrets" (a port, "true") would blank ordinary words


class NoticeKind(StrEnum):
    """What happened, as the receiver may route on it."""

    RESCUE_ALERT = "rescue_alert"
    HALT = "halt"
    FLATTEN = "flatten"
    UNCOVERED_POSITION = "uncovered_position"
    PRELIVE_FAILED = "prelive_failed"
    DAILY_REPORT = "daily_report"


class NoticeSeverity(StrEnum):
    """How urgently a person should look."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


_BADGE = {
    NoticeSeverity.INFO: ":information_source:",
    NoticeSeverity.WARNING: ":warning:",
    NoticeSeverity.CRITICAL: ":rotating_light:",
}


class Notice(Frozen):
    """One alerting event, worded for a person; `event_key` makes it go out once."""

    event_key: str = Field(min_length=1, max_length=200)
    kind: NoticeKind
    severity: NoticeSeverity
    title: str = Field(min_length=1, max_length=300)
    lines: list[str] = Field(default_factory=list)
    fields: dict[str, str] = Field(default_factory=dict)


class NoticeOutcome(StrEnum):
    """What sending a notice did."""

    SENT = "sent"
    DUPLICATE = "duplicate"  # sent before under this key: not sent again
    NO_WEBHOOK = "no_webhook"  # ALERT_WEBHOOK_URL unset: recorded, not sent


class NoticeReceipt(Frozen):
    """The outcome of one notify call, and how many times the key was tried so far."""

    event_key: str
    outcome: NoticeOutcome
    attempts: int = 0


# --- the events --------------------------------------------------------------------------


def halt_notice(change: ControlChange) -> Notice:
    """Trading control went to HALTED (by an operator, or on its own when a limit broke)."""
    auto = change.command is ControlCommand.AUTO_HALT
    return Notice(
        event_key=f"halt:{change.change_id}",
        kind=NoticeKind.HALT,
        severity=NoticeSeverity.CRITICAL,
        title=f"Trading HALTED ({'automatic' if auto else 'by ' + change.actor})",
        lines=[
            change.reason,
            "No new entries until an explicit resume; protective stops stay in place.",
        ],
        fields={
            "from": change.from_mode.value,
            "by": change.actor,
            "at": _at(change.at),
        },
    )


def rescue_alert_notice(
    alert: RescueAlert, at: datetime, alerts_in_window: int, halted: bool
) -> Notice:
    """A trade's stop could not be rescued, repeatedly: its position may be unprotected."""
    lines = [alert.detail or "stop rescue failed repeatedly"]
    if halted:
        lines.append("Repeated alerts: trading control halted entries.")
    return Notice(
        event_key=f"rescue_alert:{alert.trade_id}:{at.isoformat()}",
        kind=NoticeKind.RESCUE_ALERT,
        severity=NoticeSeverity.CRITICAL,
        title=f"Stop rescue failing: {alert.symbol or 'trade'} {alert.trade_id}",
        lines=lines,
        fields={
            "trade": alert.trade_id,
            "symbol": alert.symbol or "?",
            "alerts in window": str(alerts_in_window),
            "at": _at(at),
        },
    )


def flatten_started_notice(report: FlattenReport) -> Notice:
    """A flatten began: trading halts and every position is being closed."""
    return Notice(
        event_key=f"flatten_started:{report.flatten_id}",
        kind=NoticeKind.FLATTEN,
        severity=NoticeSeverity.WARNING,
        title=f"Flatten started by {report.actor}",
        lines=[report.reason, "Trading is HALTED; every position is being closed."],
        fields={"by": report.actor, "at": _at(report.started_at)},
    )


def flatten_finished_notice(report: FlattenReport) -> Notice:
    """A flatten ended: flat, or not flat within its timeout (a person must look)."""
    fields = {
        "rounds": str(report.rounds),
        "trades told to exit": str(len(report.signalled_trades)),
        "orders cancelled": str(len(report.cancelled_orders)),
        "closed": ", ".join(report.closed_symbols) or "none",
    }
    if not report.done:
        fields["positions left"] = ", ".join(report.positions_left) or "none"
        fields["open orders left"] = str(report.orders_left)
    if report.finished_at is not None:
        fields["seconds"] = f"{(report.finished_at - report.started_at).total_seconds():.1f}"
    return Notice(
        event_key=f"flatten_finished:{report.flatten_id}",
        kind=NoticeKind.FLATTEN,
        severity=NoticeSeverity.INFO if report.done else NoticeSeverity.CRITICAL,
        title="Flatten finished: flat" if report.done else "Flatten did NOT finish",
        lines=[report.note or report.reason, *report.errors[-3:]],
        fields=fields,
    )


class UncoveredEpisode(Frozen):
    """A long position without an active stop covering all of it, since the first poll saw it."""

    symbol: str
    qty: Decimal
    since: datetime


def uncovered_notice(episode: UncoveredEpisode, observed_at: datetime) -> Notice:
    """A position has had no active stop for too long (one notice per episode)."""
    seconds = int((observed_at - episode.since).total_seconds())
    return Notice(
        event_key=f"uncovered_position:{episode.symbol}:{episode.since.astimezone(UTC):%Y%m%dT%H%MZ}",
        kind=NoticeKind.UNCOVERED_POSITION,
        severity=NoticeSeverity.CRITICAL,
        title=f"{episode.symbol}: position without an active stop for {seconds} s",
        lines=[
            "No active sell stop at the broker covers this position. Check its trade "
            "(`starter.py status`) or close it."
        ],
        fields={
            "symbol": episode.symbol,
            "qty": f"{episode.qty.normalize():f}",
            "uncovered since": _at(episode.since),
            "seen at": _at(observed_at),
        },
    )


def prelive_failed_notice(
    run_id: str, failures: Sequence[tuple[str, str]], at: datetime, configuration: str = ""
) -> Notice:
    """`prelive` failed: live trading stays refused until it passes (`failures`: check, why)."""
    return Notice(
        event_key=f"prelive_failed:{run_id}",
        kind=NoticeKind.PRELIVE_FAILED,
        severity=NoticeSeverity.CRITICAL,
        title=f"prelive FAILED: {len(failures)} check{'s' if len(failures) != 1 else ''}",
        lines=[f"*{check}*: {why}" for check, why in failures],
        fields={"run": run_id, "at": _at(at)}
        | ({"configuration": configuration} if configuration else {}),
    )


def daily_report_notice(
    day: date, verdict: str, reason: str, figures: Mapping[str, str] | None = None
) -> Notice:
    """The day's burn-in report in one message: verdict, its reason and the headline figures."""
    passed = verdict.upper() == "PASS"
    return Notice(
        event_key=f"daily_report:{day.isoformat()}",
        kind=NoticeKind.DAILY_REPORT,
        severity=NoticeSeverity.INFO if passed else NoticeSeverity.WARNING,
        title=f"Daily report {day.isoformat()}: {verdict.upper()}",
        lines=[reason],
        fields=dict(figures or {}),
    )


# --- uncovered episodes ------------------------------------------------------------------


class UncoveredCheck(Frozen):
    """Look at the positions of the poll made at `observed_at` for ones left uncovered."""

    observed_at: datetime


class UncoveredWatch(Frozen):
    """The episodes open after a look, and the notices now due (not sent before)."""

    open: list[UncoveredEpisode] = Field(default_factory=list)
    due: list[Notice] = Field(default_factory=list)


@dataclass(frozen=True)
class UncoveredPlan:
    """What one look at the uncovered positions changes: episodes open, ended, due an alert."""

    open: list[UncoveredEpisode]
    ended: list[str]
    due: list[UncoveredEpisode]


def track_uncovered(
    stored: Mapping[str, datetime],
    uncovered: Mapping[str, Decimal],
    observed_at: datetime,
    alert_after: timedelta = UNCOVERED_ALERT_AFTER,
) -> UncoveredPlan:
    """Episodes after a poll: a symbol keeps its start while uncovered, ends when covered.

    `stored`: symbol -> since of the episodes open before; `uncovered`: symbol -> quantity of
    the long positions no active stop covers in this poll.
    """
    episodes = [
        UncoveredEpisode(
            symbol=symbol, qty=qty, since=min(stored.get(symbol, observed_at), observed_at)
        )
        for symbol, qty in sorted(uncovered.items())
    ]
    return UncoveredPlan(
        open=episodes,
        ended=sorted(set(stored) - set(uncovered)),
        due=[e for e in episodes if observed_at - e.since >= alert_after],
    )


# --- the message -------------------------------------------------------------------------


def redact(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret value in it masked (longest first, so none shows in part)."""
    for secret in sorted({s for s in secrets if len(s) >= _MIN_SECRET_CHARS}, key=len)[::-1]:
        text = text.replace(secret, REDACTED)
    return text


def slack_body(notice: Notice, secrets: Iterable[str] = ()) -> dict[str, Any]:
    """The webhook's JSON body: `text` (the notification line) and mrkdwn `section` blocks.

    Every string passes through `redact`, so a secret value that slipped into a notice (an
    error message quoting a URL) leaves the process masked.
    """
    hidden = tuple(secrets)

    def clean(text: str, limit: int) -> str:
        return _clip(_escape(redact(text, hidden)), limit)

    badge = _BADGE[notice.severity]
    title = clean(notice.title, 500)
    blocks: list[dict[str, Any]] = [_section(f"{badge} *{title}*")]
    lines = [line for line in notice.lines if line.strip()]
    if len(lines) > MAX_LINES:
        lines = [*lines[:MAX_LINES], f"... and {len(lines) - MAX_LINES} more"]
    if lines:
        blocks.append(_section(clean("\n".join(lines), SECTION_CHARS)))
    items = list(notice.fields.items())
    if items:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn(clean(f"*{key}*\n{value}", FIELD_CHARS))
                    for key, value in items[:MAX_FIELDS]
                ],
            }
        )
    footer = f"{notice.kind.value} · {notice.severity.value} · event `{notice.event_key}`"
    blocks.append(_section(clean(footer, SECTION_CHARS)))
    return {
        "text": f"[{notice.severity.value.upper()}] {title}",
        "blocks": blocks,
    }


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": _mrkdwn(text)}


def _mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def _escape(text: str) -> str:
    """Slack's three control characters, so a reason with `<...>` is not read as a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _at(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S %Z}".strip()
