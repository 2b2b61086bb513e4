"""The status view's documented schema and its gate/health verdicts."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

from settings import ROOT
from trading.ops_status import (
    BrokerSection,
    ControlSection,
    EntrySection,
    OpsStatus,
    PositionView,
    ScoringSection,
    SignalCountsView,
    entry_gate,
    health,
)

ACTIVE = ControlSection(mode="ACTIVE", entries_allowed=True)


def _broker(*symbols: str) -> BrokerSection:
    return BrokerSection(
        connected=True,
        fetched_at=datetime(2024, 3, 5, tzinfo=UTC),
        positions=[
            PositionView(symbol=s, qty=Decimal(1), avg_entry_price=Decimal(10)) for s in symbols
        ],
    )


def test_the_committed_schema_matches_the_model() -> None:
    committed = json.loads((ROOT / "docs" / "status.schema.json").read_text())
    assert committed == OpsStatus.model_json_schema(mode="serialization"), (
        "regenerate docs/status.schema.json from trading.ops_status.OpsStatus"
    )


def test_gate_counts_the_brokers_positions() -> None:
    assert entry_gate(_broker("A", "B"), ACTIVE, 3) == (True, None, None)
    assert entry_gate(_broker("A", "B", "C"), ACTIVE, 3) == (
        False,
        "max_open_positions",
        "brokerPositionsCount=3 maxOpenPositions=3",
    )


def test_gate_reasons_for_control_and_missing_truth() -> None:
    halted = ControlSection(
        mode="HALTED",
        reason="loss limit",
        entries_allowed=False,
        entries_reason="HALTED: loss limit",
    )
    assert entry_gate(_broker(), halted, 3)[:2] == (False, "control_halted")
    down = BrokerSection(connected=False, error="BrokerUnavailable: timed out")
    assert entry_gate(down, ACTIVE, 3) == (
        False,
        "broker_truth_unavailable",
        "BrokerUnavailable: timed out",
    )


def test_health_names_each_problem() -> None:
    counts = SignalCountsView(created=1, scored=0, error=0, pending=1)
    behind = ScoringSection(last_6h=counts, all_time=counts, oldest_pending_age_s=7200)
    entries = EntrySection(
        ready=False,
        skip_reason="max_open_positions",
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
