"""ReconcileWorkflow and AutoManageWorkflow against the paper broker and the real ledger."""

from __future__ import annotations

import argparse
import asyncio
import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from temporalio.client import WorkflowExecutionStatus
from temporalio.service import RPCError

from cli.reconcile import register
from contracts.trade import workflow_id as trade_workflow_id
from settings import Settings
from tests.integration.reconcile.conftest import SYMBOL, ReconcileHarness
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce
from trading.ledger_records import CloseReason, TradeOrigin, TradeStatus
from trading.reconcile_models import GuardAction
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec, TradeWorkflowInput
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration


async def test_a_ghost_trade_is_closed_with_the_reason_and_the_run_is_recorded(
    harness: ReconcileHarness,
) -> None:
    ghost = await harness.ledger_trade()
    result = await harness.reconcile(close_reason=CloseReason.GHOST)
    assert result.ok and result.closed == 1 and result.adopted == 0
    row = await harness.trade(ghost)
    assert row is not None and row.status is TradeStatus.CLOSED
    assert row.close_reason is CloseReason.GHOST
    # The stale row no longer claims the symbol: nothing built on open trades is blocked.
    assert [t.id for t in await harness.open_trades()] == []
    run = await harness.run_record(result.run_id)
    assert (run.source, run.ok, run.closed, run.checked, run.dry_run) == ("test", True, 1, 1, False)
    assert run.finished_at is not None and run.duration_ms is not None
    again = await harness.reconcile()
    assert again.ok and again.closed == 0  # idempotent


async def test_a_broker_only_position_is_adopted_with_an_active_stop_once(
    harness: ReconcileHarness,
) -> None:
    harness.admin.open_position(SYMBOL, 7)
    result = await harness.reconcile()
    assert result.ok and result.adopted == 1 and result.plan is not None
    (adoption,) = result.plan.adoptions
    view = await harness.wait_for(
        adoption.trade_id,
        lambda v: v.status is TradeStatus.OPEN and v.state.rescue.ok == 1,
    )
    assert view.state.stop_order_id is not None
    stop = harness.gateway.get_order(view.state.stop_order_id)
    assert stop.is_active and stop.type is OrderType.STOP and stop.qty == Decimal(7)
    assert stop.stop_price == adoption.stop_price
    row = await harness.trade(adoption.trade_id)
    assert row is not None and row.origin is TradeOrigin.EXTERNAL
    assert row.status is TradeStatus.OPEN and row.qty == Decimal(7)
    assert row.stop_order_id == stop.id
    again = await harness.reconcile()
    assert again.ok and again.adopted == 0 and again.plan is not None
    assert again.plan.adoptions == [] and again.plan.ghost_closes == []
    assert len([t for t in await harness.open_trades() if t.symbol == SYMBOL]) == 1


async def test_an_adoption_keeps_an_outside_stop_that_covers_the_position(
    harness: ReconcileHarness,
) -> None:
    harness.admin.open_position(SYMBOL, 4)
    market = harness.gateway.latest_quotes([SYMBOL])[0].bid
    outside = harness.gateway.submit_order(
        OrderIntent(
            client_order_id="dashboard-stop-1",
            symbol=SYMBOL,
            qty=Decimal(4),
            side=OrderSide.SELL,
            type=OrderType.STOP,
            stop_price=protective_stop_price(market * Decimal("0.9")),
            time_in_force=TimeInForce.GTC,
        )
    )
    result = await harness.reconcile()
    assert result.plan is not None
    (adoption,) = result.plan.adoptions
    assert adoption.existing_stop_order_id == outside.id
    view = await harness.wait_for(
        adoption.trade_id, lambda v: v.state.last_check_note.startswith("protected")
    )
    assert view.state.stop_order_id == outside.id and view.state.rescue.attempted == 0
    assert harness.gateway.get_order(outside.id).is_active
    row = await harness.trade(adoption.trade_id)
    assert row is not None and row.stop_order_id == outside.id and row.qty == Decimal(4)


async def test_a_failed_snapshot_closes_nothing_and_records_the_failure(
    harness: ReconcileHarness,
) -> None:
    ghost = await harness.ledger_trade()
    harness.admin.open_position(SYMBOL, 3)  # would be adopted, had the snapshot worked
    harness.admin.add_fault(method="GET", path="/v2/positions", status=500)
    result = await harness.reconcile(snapshot_attempts=2)
    harness.admin.clear_faults()
    assert not result.ok and result.plan is None
    assert result.error is not None and "snapshot failed" in result.error
    assert (result.closed, result.adopted, result.synced) == (0, 0, 0)
    row = await harness.trade(ghost)
    assert row is not None and row.status is TradeStatus.OPEN
    assert [t.id for t in await harness.open_trades()] == [ghost]
    run = await harness.run_record(result.run_id)
    assert run.ok is False and run.error == result.error and run.closed == 0


async def test_a_dry_run_prints_the_plan_and_changes_nothing(harness: ReconcileHarness) -> None:
    ghost = await harness.ledger_trade(symbol="MSFT")
    harness.admin.open_position(SYMBOL, 2)
    result = await harness.reconcile(dry_run=True)
    assert result.ok and result.dry_run and result.plan is not None
    assert [g.trade_id for g in result.plan.ghost_closes] == [ghost]
    (adoption,) = result.plan.adoptions
    assert (result.closed, result.adopted) == (0, 0)
    row = await harness.trade(ghost)
    assert row is not None and row.status is TradeStatus.OPEN
    with pytest.raises(RPCError):
        await harness.trade_handle(adoption.trade_id).describe()
    run = await harness.run_record(result.run_id)
    assert run.dry_run and run.ok


async def test_a_passed_deadline_applies_nothing_and_records_a_partial_run(
    harness: ReconcileHarness,
) -> None:
    ghost = await harness.ledger_trade()
    result = await harness.reconcile(deadline=datetime.now(UTC) - timedelta(seconds=1))
    assert result.partial and not result.ok and result.closed == 0
    assert result.plan is not None and len(result.plan.ghost_closes) == 1
    row = await harness.trade(ghost)
    assert row is not None and row.status is TradeStatus.OPEN
    run = await harness.run_record(result.run_id)
    assert run.ok is False and run.error is not None and "deadline" in run.error


async def test_auto_manage_restarts_protection_for_a_terminated_trade(
    harness: ReconcileHarness,
) -> None:
    market = harness.gateway.latest_quotes([SYMBOL])[0].bid
    spec = TradeSpec(
        trade_id="aapl-am-1",
        symbol=SYMBOL,
        qty=Decimal(10),
        stop_price=protective_stop_price(market * Decimal("0.95")),
        check_interval=timedelta(seconds=2),
    )
    handle = await harness.client.start_workflow(
        TradeWorkflow.run,
        TradeWorkflowInput(spec=spec),
        id=trade_workflow_id(spec.trade_id),
        task_queue=harness.task_queue,
    )
    opened = await harness.wait_for(
        spec.trade_id, lambda v: v.status is TradeStatus.OPEN and v.state.stop_order_id is not None
    )
    await handle.terminate("simulated stuck guard")
    assert opened.state.stop_order_id is not None
    harness.admin.cancel_order(opened.state.stop_order_id)  # and now the position is naked

    result = await harness.auto_manage()
    assert result.ok and result.positions == 1 and result.started == 1 and result.uncovered == 1
    (guard,) = result.guards
    assert guard.action is GuardAction.STARTED and guard.trade_id == spec.trade_id
    described = await harness.trade_handle(spec.trade_id).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    view = await harness.wait_for(spec.trade_id, lambda v: v.state.rescue.ok >= 1)
    assert view.state.stop_order_id is not None
    stop = harness.gateway.get_order(view.state.stop_order_id)
    assert stop.is_active and stop.qty == Decimal(10)
    assert stop.stop_price == opened.state.stop_price

    # Now covered and running: the sweep leaves the guard alone (nothing in its history).
    second = await harness.auto_manage()
    assert second.ok and second.started == 0 and second.running == 1 and second.signalled == 0


async def test_a_ghost_with_a_running_workflow_is_told_and_closes_itself(
    harness: ReconcileHarness,
) -> None:
    market = harness.gateway.latest_quotes([SYMBOL])[0].bid
    spec = TradeSpec(
        trade_id="aapl-ghost-wf",
        symbol=SYMBOL,
        qty=Decimal(5),
        stop_price=protective_stop_price(market * Decimal("0.95")),
        check_interval=timedelta(minutes=10),  # only the reconcile's signal wakes it in time
    )
    await harness.client.start_workflow(
        TradeWorkflow.run,
        TradeWorkflowInput(spec=spec),
        id=trade_workflow_id(spec.trade_id),
        task_queue=harness.task_queue,
    )
    # Wait for the check that follows the entry fill, so the trade's next look at the broker
    # is ten minutes away and only the reconcile's signal can tell it about the close.
    await harness.wait_for(
        spec.trade_id,
        lambda v: (
            v.status is TradeStatus.OPEN
            and v.state.stop_order_id is not None
            and v.state.last_check_note.startswith("protected")
        ),
    )
    harness.admin.close_position(SYMBOL, cancel_orders=True)  # flattened outside the system
    result = await harness.reconcile()
    assert result.ok and result.ghosts_signalled == 1 and result.closed == 0
    handle = harness.client.get_workflow_handle_for(
        TradeWorkflow.run, trade_workflow_id(spec.trade_id)
    )
    outcome = await handle.result()
    assert outcome.close_reason is CloseReason.EXTERNAL_CLOSE
    row = await harness.trade(spec.trade_id)
    assert row is not None and row.close_reason is CloseReason.EXTERNAL_CLOSE


async def test_the_cli_prints_the_plan_of_a_dry_run_and_applies_a_real_run(
    harness: ReconcileHarness, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))
    # Created just now: inside the CLI's default grace period, so no run may close it.
    ghost = await harness.ledger_trade(symbol="MSFT")

    async def run(*argv: str) -> tuple[int, str]:
        args = parser.parse_args(argv)
        code = await asyncio.to_thread(args.handler, args, settings)
        return code, capsys.readouterr().out

    harness.admin.open_position(SYMBOL, 2)
    code, out = await run("reconcile", "--dry-run")
    assert code == 0 and "adopt" in out and "AAPL" in out and "nothing changed" in out
    code, out = await run("reconcile", "--json")
    assert code == 0
    payload = json.loads(out)
    assert payload["adopted"] == 1 and payload["ok"] is True and payload["closed"] == 0
    row = await harness.trade(ghost)
    assert row is not None and row.status is TradeStatus.OPEN
    code, out = await run("auto-manage")
    assert code == 0 and "AAPL" in out and "signalled" in out


async def test_a_larger_broker_quantity_is_synced_into_an_unguarded_trade(
    harness: ReconcileHarness,
) -> None:
    trade_id = await harness.ledger_trade(qty=Decimal(10))
    harness.admin.open_position(SYMBOL, 12)
    result = await harness.reconcile()
    assert result.ok and result.synced == 1 and result.closed == 0 and result.adopted == 0
    row = await harness.trade(trade_id)
    assert row is not None and row.qty == Decimal(12) and row.status is TradeStatus.OPEN


async def test_a_large_account_reconciles_from_its_plan_alone_and_audits_each_ghost(
    harness: ReconcileHarness,
) -> None:
    # 200 held trades, each with its stop at the broker, and 20 ghosts. The snapshot and the
    # open trades (hundreds of kilobytes here, megabytes at a few thousand trades) must stay
    # out of the run's history: only the plan enters it.
    held = [f"RH{a}{b}" for a in "ABCDEFGHIJ" for b in "ABCDEFGHIJKLMNOPQRST"]
    for symbol in held:
        await harness.ledger_trade(symbol=symbol, qty=Decimal(10))
        fill = harness.admin.open_position(symbol, 10)
        harness.gateway.submit_order(
            OrderIntent(
                client_order_id=f"outside-stop-{symbol.lower()}",
                symbol=symbol,
                qty=Decimal(10),
                side=OrderSide.SELL,
                type=OrderType.STOP,
                stop_price=protective_stop_price(Decimal(fill["filled_avg_price"]) * 9 / 10),
                time_in_force=TimeInForce.GTC,
            )
        )
    ghosts = {await harness.ledger_trade(symbol=f"RG{a}") for a in "ABCDEFGHIJKLMNOPQRST"}

    result = await harness.reconcile()

    assert result.ok and result.closed == len(ghosts) and result.failed_actions == 0
    assert (result.adopted, result.synced, result.checked) == (0, 0, 2 * len(held) + len(ghosts))
    assert {t.id for t in await harness.open_trades()} & ghosts == set()
    rows = await harness.pool.fetch(
        "SELECT trade_id, action FROM audit_log WHERE trade_id = ANY($1::text[])", list(ghosts)
    )
    audited = {(r["trade_id"], r["action"]) for r in rows}
    assert audited >= {(g, a) for g in ghosts for a in ("trade_closed", "ghost_closed")}
    history = await harness.client.get_workflow_handle(result.run_id).fetch_history()
    assert sum(event.ByteSize() for event in history.events) < 64_000
