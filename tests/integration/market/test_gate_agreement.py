"""`status` and the market loop give the same entry-gate answer, because they share one gate.

Before, `status` ignored entries still on their way (an open buy with no position yet) and
read the control mode from a sentence; it said READY while the market loop skipped. Each case
here sets the broker and trading control up once, then asks both.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from decimal import Decimal

import pytest
from temporalio.client import WorkflowHandle

from cli.status import gather
from contracts import control
from settings import Settings
from tests.integration.market.conftest import MarketHarness
from trading.broker_models import OrderIntent, OrderSide, OrderType
from trading.control import ControlInput, ControlMode, ControlRequest, ControlState
from trading.entry_gate import EntryReason, GateAnswer
from trading.ops_status import EntrySection

pytestmark = pytest.mark.integration
MAX_POSITIONS = 2


async def _control_in(market: MarketHarness, mode: ControlMode) -> None:
    handle: WorkflowHandle[object, object] = await market.client.start_workflow(
        control.WORKFLOW.name,
        ControlInput(),
        id=control.WORKFLOW_ID,
        task_queue=market.task_queue,
    )
    signal = {ControlMode.HALTED: control.HALT, ControlMode.REDUCING: control.PAUSE_ENTRIES}
    if mode in signal:
        await handle.signal(signal[mode].name, ControlRequest(reason=f"{mode.value} drill"))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = await handle.query(control.CONTROL_STATE.name, result_type=ControlState)
        if state.mode is mode:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"trading control never reached {mode}")


async def _both_answers(
    market: MarketHarness, settings: Settings
) -> tuple[EntrySection, GateAnswer]:
    status = await gather(settings.model_copy(update={"max_open_positions": MAX_POSITIONS}))
    await market.scored_signal("NVDA")
    result = await market.run_loop(max_open_positions=MAX_POSITIONS, reconcile=False)
    assert result.gate is not None
    return status.entries, result.gate


def _pending_entry(market: MarketHarness, symbol: str) -> None:
    """An entry on its way: an open buy limit far below the market, no position yet."""
    market.gateway.submit_order(
        OrderIntent(
            client_order_id=f"pending-{uuid.uuid4().hex[:8]}",
            symbol=symbol,
            qty=Decimal(1),
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            limit_price=Decimal("1.00"),
        )
    )


def _same(entries: EntrySection, gate: GateAnswer) -> None:
    assert (entries.ready, entries.skip_reason, entries.skip_detail or "") == (
        gate.open,
        gate.reason,
        gate.detail,
    )
    assert (entries.broker_positions_count, entries.pending_entries) == (
        gate.broker_positions,
        gate.pending_entries,
    )


async def test_a_pending_entry_counts_for_both(
    market: MarketHarness, cli_settings: Settings
) -> None:
    market.admin.open_position("AAPL", 3)
    _pending_entry(market, "MSFT")
    entries, gate = await _both_answers(market, cli_settings)
    _same(entries, gate)
    assert gate.reason is EntryReason.MAX_OPEN_POSITIONS
    assert gate.detail == "brokerPositionsCount=1 maxOpenPositions=2 pendingEntries=1"


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (ControlMode.ACTIVE, None),
        (ControlMode.REDUCING, EntryReason.CONTROL_PAUSED),
        (ControlMode.HALTED, EntryReason.CONTROL_HALTED),
    ],
)
async def test_each_control_mode_gates_both_alike(
    market: MarketHarness, cli_settings: Settings, mode: ControlMode, reason: EntryReason | None
) -> None:
    await _control_in(market, mode)
    entries, gate = await _both_answers(market, cli_settings)
    _same(entries, gate)
    assert gate.reason is reason and gate.open is (reason is None)
    if reason is not None:
        assert f"{mode.value} drill" in gate.detail


async def test_no_control_workflow_lets_both_through_with_a_note(
    market: MarketHarness, cli_settings: Settings
) -> None:
    entries, gate = await _both_answers(market, cli_settings)
    _same(entries, gate)
    assert gate.open and entries.note == gate.note
    assert gate.note.startswith(EntryReason.CONTROL_NOT_STARTED.value)


async def test_a_failed_broker_snapshot_holds_entries_for_both(
    market: MarketHarness, cli_settings: Settings
) -> None:
    market.admin.add_fault(method="GET", path="/v2/positions*", status=500, body={"message": "x"})
    try:
        entries, gate = await _both_answers(market, cli_settings)
    finally:
        market.admin.clear_faults()
    _same(entries, gate)
    assert gate.reason is EntryReason.BROKER_TRUTH_UNAVAILABLE and not entries.ready
