"""The status view's documented schema and its gate/health verdicts."""

from __future__ import annotations

import json

from settings import ROOT
from trading.control import ControlMode
from trading.entry_gate import ControlPresence, ControlView, EntryReason
from trading.ledger_records import SignalCounts
from trading.ops_status import (
    BrokerSection,
    EntrySection,
    OpsStatus,
    ScoringSection,
    control_section,
    health,
)


def test_the_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "docs" / "status.schema.json").read_text())
    assert committed == OpsStatus.model_json_schema(mode="serialization"), (
        "regenerate docs/status.schema.json from trading.ops_status.OpsStatus"
    )


def test_the_control_section_says_what_the_gate_makes_of_each_presence() -> None:
    running = control_section(
        ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.HALTED, reason="loss")
    )
    assert (running.mode, running.entries_allowed) == (ControlMode.HALTED, False)
    assert "loss" in running.entries_reason
    missing = control_section(ControlView(presence=ControlPresence.NOT_STARTED))
    assert missing.mode is None and missing.entries_allowed
    silent = control_section(ControlView(presence=ControlPresence.UNREACHABLE, detail="x"))
    assert not silent.entries_allowed and silent.entries_reason == "x"


def test_health_names_each_problem() -> None:
    counts = SignalCounts(created=1, scored=0, error=0, pending=1)
    behind = ScoringSection(last_6h=counts, all_time=counts, oldest_pending_age_s=7200)
    entries = EntrySection(
        ready=False,
        skip_reason=EntryReason.MAX_OPEN_POSITIONS,
        skip_detail="brokerPositionsCount=3 maxOpenPositions=3",
        max_open_positions=3,
    )
    verdict = health(BrokerSection(connected=False, error="down"), behind, entries)
    assert not (verdict.broker_connected or verdict.scoring_healthy or verdict.entries_ready)
    assert verdict.problems == [
        "broker: down",
        "scoring: oldest PENDING signal is 120 min old",
        "entries: max_open_positions brokerPositionsCount=3 maxOpenPositions=3",
    ]
