"""Alerts to people, the pure part: each event's notice and key, the Slack-compatible body,
masking of secrets, and the uncovered-position episodes."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from ops.notifier import secret_values
from settings import Settings
from trading.control import (
    ControlChange,
    ControlCommand,
    ControlMode,
    FlattenReport,
    RescueAlert,
)
from trading.notify import (
    FIELD_CHARS,
    MAX_FIELDS,
    REDACTED,
    SECTION_CHARS,
    UNCOVERED_ALERT_AFTER,
    Notice,
    NoticeKind,
    NoticeSeverity,
    UncoveredEpisode,
    daily_report_notice,
    flatten_finished_notice,
    flatten_started_notice,
    halt_notice,
    prelive_failed_notice,
    redact,
    rescue_alert_notice,
    slack_body,
    track_uncovered,
    uncovered_notice,
)

T0 = datetime(2024, 3, 5, 15, 30, 12, tzinfo=UTC)


def _change(command: ControlCommand, actor: str = "operator") -> ControlChange:
    return ControlChange(
        change_id="6f1c1e0e-aaaa-4bbb-8ccc-000000000001",
        command=command,
        from_mode=ControlMode.ACTIVE,
        to_mode=ControlMode.HALTED,
        reason="daily loss 3.1% >= 3%",
        actor=actor,
        at=T0,
    )


def _texts(body: dict[str, Any]) -> list[str]:
    """Every text of the body: `text`, each section's text and each field."""
    texts = [body["text"]]
    for block in body["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
    return texts


def test_the_body_is_text_and_mrkdwn_sections_only() -> None:
    body = slack_body(halt_notice(_change(ControlCommand.HALT)))
    assert set(body) == {"text", "blocks"}
    assert body["text"].startswith("[CRITICAL] Trading HALTED (by operator)")
    for block in body["blocks"]:
        assert block["type"] == "section"
        texts = [block["text"]] if "text" in block else block["fields"]
        assert texts and all(t["type"] == "mrkdwn" for t in texts)
    json.dumps(body)  # serialisable as is


def test_the_body_carries_title_lines_fields_and_event_key() -> None:
    body = slack_body(halt_notice(_change(ControlCommand.AUTO_HALT, actor="auto")))
    title, lines, fields, footer = body["blocks"]
    assert "*Trading HALTED (automatic)*" in title["text"]["text"]
    assert "daily loss 3.1% &gt;= 3%" in lines["text"]["text"]
    assert {"*from*\nACTIVE", "*by*\nauto"} <= {f["text"] for f in fields["fields"]}
    assert "event `halt:6f1c1e0e-aaaa-4bbb-8ccc-000000000001`" in footer["text"]["text"]


def test_event_keys_are_stable_per_event() -> None:
    alert = RescueAlert(trade_id="msft-1", symbol="MSFT", detail="stop rejected 3 times")
    first = rescue_alert_notice(alert, T0, 1, False)
    assert first == rescue_alert_notice(alert, T0, 1, False)  # a replay builds the same
    assert first.event_key == f"rescue_alert:msft-1:{T0.isoformat()}"
    later = rescue_alert_notice(alert, T0 + timedelta(minutes=5), 2, True)
    assert later.event_key != first.event_key  # a second alert is a second event
    assert "halted entries" in " ".join(later.lines)
    assert halt_notice(_change(ControlCommand.HALT)).event_key.startswith("halt:")


def test_flatten_notices_start_and_finish_under_the_flatten_id() -> None:
    report = FlattenReport(flatten_id="f-1", reason="end of test", actor="op", started_at=T0)
    started = flatten_started_notice(report)
    report.rounds, report.done, report.finished_at = 3, True, T0 + timedelta(seconds=4)
    report.closed_symbols = ["AAPL", "MSFT"]
    done = flatten_finished_notice(report)
    assert (started.event_key, done.event_key) == ("flatten_started:f-1", "flatten_finished:f-1")
    assert done.severity is NoticeSeverity.INFO and done.fields["closed"] == "AAPL, MSFT"
    report.done, report.positions_left = False, ["NVDA"]
    stuck = flatten_finished_notice(report)
    assert stuck.severity is NoticeSeverity.CRITICAL
    assert stuck.fields["positions left"] == "NVDA"


def test_prelive_and_daily_report_notices() -> None:
    failed = prelive_failed_notice(
        "run-7", [("positions covered", "AAPL has no stop"), ("control", "HALTED")], T0
    )
    assert failed.event_key == "prelive_failed:run-7"
    assert failed.title == "prelive FAILED: 2 checks"
    assert failed.lines == ["*positions covered*: AAPL has no stop", "*control*: HALTED"]
    report = daily_report_notice(date(2024, 3, 5), "fail", "2 unprotected gaps", {"trades": "4"})
    assert report.event_key == "daily_report:2024-03-05"
    assert report.severity is NoticeSeverity.WARNING and report.title.endswith("FAIL")
    passed = daily_report_notice(date(2024, 3, 5), "PASS", "clean day")
    assert passed.severity is NoticeSeverity.INFO


def test_secrets_are_masked_everywhere_in_the_body() -> None:
    secret = "PKTESTSECRET1234567890"
    notice = Notice(
        event_key="halt:x",
        kind=NoticeKind.HALT,
        severity=NoticeSeverity.CRITICAL,
        title=f"halt with {secret} in the title",
        lines=[f"error: https://hooks.example/{secret}/x"],
        fields={"key": secret},
    )
    body = slack_body(notice, secrets=[secret, "short"])
    dumped = json.dumps(body)
    assert secret not in dumped
    assert dumped.count(REDACTED) == 4  # text, title, line, field
    assert "short" not in dumped or "short" in notice.title  # short values are not masked


def test_redact_masks_the_longest_secret_first() -> None:
    assert redact("key=abcdef123456", ["abcdef", "abcdef123456"]) == f"key={REDACTED}"
    assert redact("port 5432", ["5432"]) == "port 5432"  # too short to be a secret


def test_slack_limits_are_kept() -> None:
    notice = Notice(
        event_key="daily_report:2024-03-05",
        kind=NoticeKind.DAILY_REPORT,
        severity=NoticeSeverity.INFO,
        title="long",
        lines=["x" * 200] * 100,
        fields={f"f{i}": "y" * 5000 for i in range(15)},
    )
    body = slack_body(notice)
    lines_block, fields_block = body["blocks"][1], body["blocks"][2]
    assert len(lines_block["text"]["text"]) <= SECTION_CHARS
    assert len(fields_block["fields"]) == MAX_FIELDS
    assert all(len(f["text"]) <= FIELD_CHARS for f in fields_block["fields"])


@given(st.text(max_size=300))
def test_any_reason_escapes_slacks_control_characters(reason: str) -> None:
    change = _change(ControlCommand.HALT).model_copy(update={"reason": reason or "r"})
    for text in _texts(slack_body(halt_notice(change))):
        assert "<" not in text and ">" not in text
        assert "&" not in text.replace("&amp;", "").replace("&lt;", "").replace("&gt;", "")


def test_an_uncovered_episode_keeps_its_start_and_is_due_after_the_limit() -> None:
    plan = track_uncovered({}, {"AAPL": Decimal(10)}, T0)
    assert [e.since for e in plan.open] == [T0] and plan.due == []
    stored = {e.symbol: e.since for e in plan.open}
    later = T0 + UNCOVERED_ALERT_AFTER - timedelta(seconds=1)
    assert track_uncovered(stored, {"AAPL": Decimal(10)}, later).due == []
    due = track_uncovered(stored, {"AAPL": Decimal(12)}, T0 + UNCOVERED_ALERT_AFTER).due
    assert due == [UncoveredEpisode(symbol="AAPL", qty=Decimal(12), since=T0)]


def test_a_covered_or_closed_position_ends_its_episode() -> None:
    stored = {"AAPL": T0, "MSFT": T0}
    plan = track_uncovered(stored, {"MSFT": Decimal(5)}, T0 + timedelta(minutes=5))
    assert plan.ended == ["AAPL"]
    assert [e.symbol for e in plan.due] == ["MSFT"]


def test_an_uncovered_notice_is_keyed_by_symbol_and_first_seen_minute() -> None:
    episode = UncoveredEpisode(symbol="AAPL", qty=Decimal("10.0"), since=T0)
    a = uncovered_notice(episode, T0 + timedelta(seconds=75))
    b = uncovered_notice(episode, T0 + timedelta(seconds=300))
    assert a.event_key == b.event_key == "uncovered_position:AAPL:20240305T1530Z"
    assert a.title == "AAPL: position without an active stop for 75 s"
    assert a.fields["qty"] == "10"


def test_the_settings_secrets_include_the_parts_that_are_secret_alone() -> None:
    settings = Settings(
        alpaca_api_key=SecretStr("PKABCDEF123456"),
        alpaca_secret_key=SecretStr("s3cr3t-s3cr3t-s3cr3t"),
        database_url=SecretStr("postgresql://trader:pg-password-1@db.internal:5432/ledger"),
        alert_webhook_url=SecretStr("https://hooks.slack.com/services/T01/B02/tokentokentoken1"),
        payload_encryption_key=SecretStr(
            "k2:bm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm4=,k1:b29vb29vb29vb29vb29vb29vb29vb29vb29vb29vb28="
        ),
        state_dir=Path("/nonexistent-state-dir"),
    )
    hidden = secret_values(settings)
    for part in (
        "PKABCDEF123456",
        "s3cr3t-s3cr3t-s3cr3t",
        "pg-password-1",
        "tokentokentoken1",
        "bm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm5ubm4=",
        "b29vb29vb29vb29vb29vb29vb29vb29vb29vb29vb28=",
    ):
        assert part in hidden
        assert redact(f"error near {part}!", hidden) == f"error near {REDACTED}!"
    assert redact("hooks.slack.com answered 500", hidden) == "hooks.slack.com answered 500"
