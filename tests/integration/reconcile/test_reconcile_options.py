"""ReconcileWorkflow and option positions on the real stack: a condor opened outside the system
is adopted by an OptionTradeWorkflow (origin external, already open at its credit) once; a
ghost option row is closed; a row held at another size is reported, not fixed; an option
trade whose workflow ended with every leg still held is restarted (once) under its own id."""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

import pytest
import pytest_asyncio
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from activities.option_adoption import generation_id
from broker.option_orders import OptionOrdersGateway
from broker.option_positions import OptionPositionsGateway
from cli.reconcile import register
from contracts.option_trade import workflow_id as option_workflow_id
from ledger.option_trades import OptionTrades
from settings import Settings
from tests.integration.helpers import terminate_running
from tests.integration.options.conftest import (
    MONTHLY,
    UNDERLYING,
    WEEKLY,
    CondorLegs,
    marketable_spec,
    option_harness,
)
from tests.integration.reconcile.conftest import ReconcileHarness
from tests.integration.trade.conftest import HISTORIES
from trading.broker_models import OrderSide, OrderStatus
from trading.ledger_records import TradeOrigin
from trading.options.adoption import adopted_condor_plan
from trading.options.chain import parse_occ_symbol
from trading.options.condor_pairing import OptionPosition, adopted_trade_id, find_condors
from trading.options.records import (
    OptionTradeGhost,
    OptionTradeRecord,
    OptionTradesQuery,
    OptionTradeWrite,
)
from trading.options.trade_models import (
    MlegOrderIntent,
    OptionForceExit,
    OptionLeg,
    OptionTradeInput,
    OptionTradeResult,
    OptionTradeSpec,
    OptionTradeStatus,
)
from trading.reconcile_models import ReconcileInput, ReconcileResult
from workflows.option_trade import OptionTradeWorkflow
from workflows.reconcile import ReconcileWorkflow

pytestmark = pytest.mark.integration
CENT = Decimal("0.01")
# SAVE_RECONCILE_HISTORIES=1 re-records tests/histories/reconcile_options_*.json from the runs
# that name one (only for a deliberate workflow change; say so in the commit).
# test_reconcile_replay.py replays them against today's code.
SAVE_RECONCILE_HISTORIES = os.environ.get("SAVE_RECONCILE_HISTORIES") == "1"


class OptionsBench:
    """Opens and closes condors outside the system; reads option legs and option rows."""

    def __init__(self, harness: ReconcileHarness) -> None:
        endpoint = harness.gateway.endpoint
        self.harness = harness
        self.orders = OptionOrdersGateway(endpoint)
        self.positions = OptionPositionsGateway(endpoint)
        self.rows = OptionTrades(harness.pool)
        self.trading = TradingClient(
            endpoint.key_id.get_secret_value(),
            endpoint.secret_key.get_secret_value(),
            paper=True,
            url_override=endpoint.trading_url,
        )

    def held(self) -> dict[str, OptionPosition]:
        return {p.symbol: p for p in self.positions.option_positions()}

    def working_orders(self, trade_id: str) -> list[str]:
        """Client ids of this trade's orders working at the broker."""
        orders: Any = self.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
        return [o.client_order_id for o in orders if o.client_order_id.startswith(trade_id)]

    def close_leg(self, symbol: str) -> None:
        """Close one option position outside the system (a market order at the broker)."""
        self.trading.close_position(symbol)

    async def trade_mleg(self, legs: CondorLegs, qty: int, opening: bool) -> None:
        """An mleg at the natural price from a dashboard's client id; waits for its fill."""
        marks = self.orders.latest_quotes(legs.symbols)
        quote = {q.symbol: q for q in marks.quotes}
        lp, sp, sc, lc = (quote[s] for s in legs.symbols)
        buy, sell = OrderSide.BUY, OrderSide.SELL
        if opening:  # a credit: the shorts at the bid, the wings at the ask
            sides = [buy, sell, sell, buy]
            limit = -(sp.bid + sc.bid - lp.ask - lc.ask).quantize(CENT, rounding=ROUND_DOWN)
        else:  # a debit: buy the shorts back at the ask, sell the wings at the bid
            sides = [sell, buy, buy, sell]
            limit = (sp.ask + sc.ask - lp.bid - lc.bid).quantize(CENT, rounding=ROUND_DOWN) + CENT
        order = self.orders.submit_mleg(
            MlegOrderIntent(
                client_order_id=f"dashboard-{uuid.uuid4().hex[:12]}",
                qty=qty,
                legs=[
                    OptionLeg(symbol=s, side=x) for s, x in zip(legs.symbols, sides, strict=True)
                ],
                limit_price=limit,
            )
        )
        deadline = time.monotonic() + 10
        while order.status is not OrderStatus.FILLED:
            assert time.monotonic() < deadline, f"outside mleg never filled: {order}"
            await asyncio.sleep(0.2)
            order = self.orders.order(order.id)

    async def ledger_row(
        self, legs: CondorLegs, qty: int, status: OptionTradeStatus = OptionTradeStatus.OPEN
    ) -> str:
        """An option row (OPEN at a credit of 2, or PENDING_ENTRY with none) written an hour
        ago with no workflow behind it."""
        trade_id = f"row-{uuid.uuid4().hex[:10]}"
        sides = [OrderSide.BUY, OrderSide.SELL, OrderSide.SELL, OrderSide.BUY]
        await self.rows.record(
            OptionTradeWrite(
                trade_id=trade_id,
                underlying=UNDERLYING,
                status=status,
                expiry=parse_occ_symbol(legs.short_put).expiry,
                qty=qty,
                legs=[
                    OptionLeg(symbol=s, side=x) for s, x in zip(legs.symbols, sides, strict=True)
                ],
                width=Decimal(10),
                credit=None if status is OptionTradeStatus.PENDING_ENTRY else Decimal(2),
                max_loss=Decimal(800) * qty,
                workflow_id=option_workflow_id(trade_id),
                at=datetime.now(UTC) - timedelta(hours=1),
            )
        )
        # Past any grace (the CLI's run keeps the default): created an hour ago as well.
        await self.harness.pool.execute(
            "UPDATE option_trades SET created_at = now() - interval '1 hour' WHERE id = $1",
            trade_id,
        )
        return trade_id

    async def row(self, trade_id: str) -> OptionTradeRecord:
        found = await self.rows.get(trade_id)
        assert found is not None, f"no option row {trade_id}"
        return found

    async def wait_for_row(
        self,
        trade_id: str,
        within: float = 15.0,
        status: OptionTradeStatus | None = None,
    ) -> OptionTradeRecord:
        """The row once written (and, given a status, once it has it)."""
        deadline = time.monotonic() + within
        while (found := await self.rows.get(trade_id)) is None or (
            status is not None and found.status is not status
        ):
            assert time.monotonic() < deadline, f"option row {trade_id} never {status}: {found}"
            await asyncio.sleep(0.2)
        return found

    async def reconcile_replayed(self, save_as: str | None = None) -> ReconcileResult:
        """One reconcile (grace 0), whose history then replays against today's code.

        With SAVE_RECONCILE_HISTORIES, a run given `save_as` is saved as
        tests/histories/reconcile_options_<save_as>.json.
        """
        handle = await self.harness.client.start_workflow(
            ReconcileWorkflow.run,
            ReconcileInput(grace=timedelta(0), run_source="test"),
            id=f"reconcile-{uuid.uuid4().hex[:12]}",
            task_queue=self.harness.task_queue,
        )
        result = await handle.result()
        history = await handle.fetch_history()
        replayer = Replayer(workflows=[ReconcileWorkflow], data_converter=pydantic_data_converter)
        replayed = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert replayed.replay_failure is None, repr(replayed.replay_failure)
        if SAVE_RECONCILE_HISTORIES and save_as is not None:
            (HISTORIES / f"reconcile_options_{save_as}.json").write_text(history.to_json())
        return result

    def unfillable_spec(self, legs: CondorLegs) -> OptionTradeSpec:
        """A condor asking a credit far above the market: its entry works and never fills."""
        marks = self.orders.latest_quotes(legs.symbols)
        signs = [1, -1, -1, 1]
        quoted = [
            OptionPosition(symbol=q.symbol, qty=Decimal(sign), avg_entry_price=q.mid)
            for q, sign in zip(
                sorted(marks.quotes, key=lambda q: legs.symbols.index(q.symbol)), signs, strict=True
            )
        ]
        found, _ = find_condors(quoted, marks.session_date)
        assert len(found) == 1, f"no credit condor at the mids: {quoted}"
        plan = adopted_condor_plan(found[0])
        # Two dollars above the mid credit (and below the width): nobody takes it.
        credit = min(plan.credit_mid + 2, plan.width - Decimal("0.5")).quantize(CENT)
        assert credit > plan.credit_mid
        return OptionTradeSpec(
            trade_id=f"ic-{uuid.uuid4().hex[:10]}",
            plan=plan,
            limit_credit=credit,
            entry_wait=timedelta(minutes=10),
        )

    async def cleanup(self) -> None:
        """Terminate option workflows, close their rows and flatten every option leg."""
        client = self.harness.client
        open_rows = await self.rows.list(OptionTradesQuery(open_only=True))
        for row in open_rows.trades:
            await terminate_running(
                [client.get_workflow_handle(option_workflow_id(row.id))], "test finished"
            )
            await self.rows.close_ghost(
                OptionTradeGhost(trade_id=row.id, reason="test finished", at=datetime.now(UTC))
            )
        # Shorts first: a wing sold while its short is held would leave the short uncovered.
        for position in sorted(self.held().values(), key=lambda p: p.qty):
            self.close_leg(position.symbol)


@pytest_asyncio.fixture
async def bench(harness: ReconcileHarness) -> AsyncIterator[OptionsBench]:
    state = OptionsBench(harness)
    try:
        yield state
    finally:
        await state.cleanup()


async def test_a_condor_opened_outside_is_adopted_once_and_closes_on_force_exit(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    await bench.trade_mleg(MONTHLY, qty=2, opening=True)
    held = bench.held()
    lp, sp, sc, lc = (held[s] for s in MONTHLY.symbols)
    credit = sp.avg_entry_price + sc.avg_entry_price - lp.avg_entry_price - lc.avg_entry_price
    assert credit > 0

    result = await bench.reconcile_replayed(save_as="a_condor_adopted")

    assert result.ok and result.options_adopted == 1, result
    assert result.plan is not None and result.plan.options is not None
    (condor,) = result.plan.options.adoptions
    assert condor.credit == credit and condor.qty == 2
    assert result.adopted_option_trades == [condor.trade_id]
    handle = harness.client.get_workflow_handle_for(
        OptionTradeWorkflow.run, option_workflow_id(condor.trade_id)
    )
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING
    view = await handle.query(OptionTradeWorkflow.status)
    assert view.status is OptionTradeStatus.OPEN and view.state.credit == credit
    assert [leg.symbol for leg in view.legs] == MONTHLY.symbols
    row = await bench.wait_for_row(condor.trade_id)
    assert row.status is OptionTradeStatus.OPEN and row.origin is TradeOrigin.EXTERNAL
    assert (row.credit, row.qty) == (credit, 2)
    assert [(leg.symbol, leg.side) for leg in row.legs] == [
        (MONTHLY.long_put, OrderSide.BUY),
        (MONTHLY.short_put, OrderSide.SELL),
        (MONTHLY.short_call, OrderSide.SELL),
        (MONTHLY.long_call, OrderSide.BUY),
    ]
    assert row.max_loss == (condor.width - credit) * 100 * 2

    again = await harness.reconcile()
    assert again.ok and again.options_adopted == 0 and again.options_closed == 0
    assert again.plan is not None and again.plan.options is not None
    assert again.plan.options.adoptions == [] and again.plan.options.ghosts == []
    assert again.plan.options.mismatches == [] and again.plan.options.unmanaged == []
    assert (await bench.row(condor.trade_id)).status is OptionTradeStatus.OPEN

    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    ended: OptionTradeResult = await handle.result()
    assert ended.status is OptionTradeStatus.CLOSED
    assert bench.held() == {}
    assert (await bench.row(condor.trade_id)).status is OptionTradeStatus.CLOSED

    # The same condor opened again is a new trade: the closed row never moves, so when its
    # legs and entry prices give the same id, the next generation of the id adopts it.
    await bench.trade_mleg(MONTHLY, qty=2, opening=True)
    base = adopted_trade_id([bench.held()[s] for s in MONTHLY.symbols], 2)
    assert base == condor.trade_id  # the broker's clock stands still: the same fills
    expected = generation_id(base, 2)
    reopened = await harness.reconcile()
    assert reopened.ok and reopened.adopted_option_trades == [expected]
    assert (await bench.wait_for_row(expected)).status is OptionTradeStatus.OPEN
    assert (await bench.row(condor.trade_id)).status is OptionTradeStatus.CLOSED


async def test_the_legs_of_a_trade_closed_after_they_were_read_are_not_adopted(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    """A trade closing between reconcile's legs read and its rows read: the legs are in the
    read, the row is no longer open. Here the row is closed a minute ahead of the run (closed
    after its legs were read, as such a close is) with the legs still held: they are claimed,
    not adopted under a new id (a phantom OPEN trade on legs that are gone). A later run, the
    close now before it, finds them truly unclaimed and adopts them."""
    await bench.trade_mleg(MONTHLY, qty=1, opening=True)
    trade_id = await bench.ledger_row(MONTHLY, qty=1)
    close_row = """
        UPDATE option_trades SET status = 'CLOSED', status_rank = 3, exit_reason = 'forced',
            closed_at = now() + $2::interval, status_at = now() + $2::interval
        WHERE id = $1
    """
    await harness.pool.execute(close_row, trade_id, timedelta(minutes=1))
    try:
        result = await harness.reconcile()

        assert result.ok and result.options_adopted == 0, result
        assert result.plan is not None and result.plan.options is not None
        options = result.plan.options
        assert options.adoptions == [] and options.unmanaged == []
        assert options.ghosts == [] and options.mismatches == [] and options.held == []
        assert (await bench.rows.list(OptionTradesQuery(open_only=True))).trades == []
        assert set(bench.held()) == set(MONTHLY.symbols)
    finally:
        await harness.pool.execute(close_row, trade_id, timedelta(minutes=-1))

    later = await harness.reconcile()

    assert later.ok and later.options_adopted == 1, later
    (adopted,) = later.adopted_option_trades
    assert adopted != trade_id
    assert (await bench.wait_for_row(adopted)).status is OptionTradeStatus.OPEN


async def test_a_ghost_option_row_is_closed_and_a_size_mismatch_is_reported(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    ghost = await bench.ledger_row(MONTHLY, qty=1)  # nothing held, no workflow
    await bench.trade_mleg(WEEKLY, qty=1, opening=True)
    oversized = await bench.ledger_row(WEEKLY, qty=2)  # the broker holds one

    dry = await harness.reconcile(dry_run=True)
    assert dry.plan is not None and dry.plan.options is not None
    assert [g.trade_id for g in dry.plan.options.ghosts] == [ghost]
    assert (await bench.row(ghost)).status is OptionTradeStatus.OPEN

    result = await bench.reconcile_replayed(save_as="a_ghost_closed_and_a_mismatch_reported")

    assert result.ok and result.options_closed == 1 and result.options_adopted == 0
    assert result.option_mismatches == 1 and result.unmanaged_option_legs == 0
    closed = await bench.row(ghost)
    assert closed.status is OptionTradeStatus.CLOSED and closed.closed_at is not None
    assert result.plan is not None and result.plan.options is not None
    (mismatch,) = result.plan.options.mismatches
    assert mismatch.trade_id == oversized
    assert {(leg.symbol, leg.held, leg.expected) for leg in mismatch.legs} == {
        (WEEKLY.long_put, Decimal(1), Decimal(2)),
        (WEEKLY.short_put, Decimal(-1), Decimal(-2)),
        (WEEKLY.short_call, Decimal(-1), Decimal(-2)),
        (WEEKLY.long_call, Decimal(1), Decimal(2)),
    }
    # Reported, not fixed: the row stays open, the legs stay held, nothing was adopted.
    assert (await bench.row(oversized)).status is OptionTradeStatus.OPEN
    assert set(bench.held()) == set(WEEKLY.symbols)
    audited = await harness.pool.fetch(
        "SELECT action, reason FROM audit_log WHERE trade_id = $1", oversized
    )
    assert [a["action"] for a in audited if a["action"] == "option_legs_mismatch"] == [
        "option_legs_mismatch"
    ]


async def test_a_ghost_row_whose_workflow_runs_is_left_to_it(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    await bench.trade_mleg(MONTHLY, qty=1, opening=True)
    adopted = await harness.reconcile()
    assert adopted.plan is not None and adopted.plan.options is not None
    (trade_id,) = adopted.adopted_option_trades
    await bench.wait_for_row(trade_id)
    for position in sorted(bench.held().values(), key=lambda p: p.qty):  # closed outside
        bench.close_leg(position.symbol)
    assert bench.held() == {}

    result = await harness.reconcile()

    assert result.ok and result.plan is not None and result.plan.options is not None
    assert [g.trade_id for g in result.plan.options.ghosts] == [trade_id]
    assert (result.options_closed, result.options_ghosts_running) == (0, 1)
    assert (await bench.row(trade_id)).status is OptionTradeStatus.OPEN
    handle = harness.client.get_workflow_handle(option_workflow_id(trade_id))
    assert (await handle.describe()).status is WorkflowExecutionStatus.RUNNING


async def test_an_option_entry_working_at_the_broker_leaves_the_snapshot_whole(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    spec = bench.unfillable_spec(MONTHLY)
    await harness.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=option_workflow_id(spec.trade_id),
        task_queue=harness.task_queue,
    )
    row = await bench.wait_for_row(spec.trade_id)
    assert row.status is OptionTradeStatus.PENDING_ENTRY and bench.held() == {}
    deadline = time.monotonic() + 10
    while not bench.working_orders(spec.trade_id):
        assert time.monotonic() < deadline, "the entry order never reached the broker"
        await asyncio.sleep(0.2)

    result = await harness.reconcile(snapshot_attempts=1)

    assert result.ok, result.error
    assert result.plan is not None and result.plan.options is not None
    assert (result.options_closed, result.options_ghosts_running) == (0, 1)


async def test_unclaimed_legs_that_form_no_condor_are_reported_as_unmanaged(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    await bench.trade_mleg(WEEKLY, qty=1, opening=True)
    bench.close_leg(WEEKLY.short_call)  # a broken condor: no short call

    result = await harness.reconcile()

    assert result.ok and result.options_adopted == 0
    assert result.plan is not None and result.plan.options is not None
    assert sorted(u.symbol for u in result.plan.options.unmanaged) == sorted(
        [WEEKLY.long_put, WEEKLY.short_put, WEEKLY.long_call]
    )
    assert result.unmanaged_option_legs == 3


async def test_the_cli_shows_the_options_part(
    harness: ReconcileHarness,
    bench: OptionsBench,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))
    await bench.trade_mleg(MONTHLY, qty=1, opening=True)
    held = bench.held()
    lp, sp, sc, lc = (held[s] for s in MONTHLY.symbols)
    credit = sp.avg_entry_price + sc.avg_entry_price - lp.avg_entry_price - lc.avg_entry_price

    args = parser.parse_args(["reconcile", "--dry-run"])
    code = await asyncio.to_thread(args.handler, args, settings)
    out = capsys.readouterr().out
    assert code == 0 and "nothing changed" in out
    assert "adopt condor" in out and "500/510p 530/535c x1" in out and str(credit) in out
    assert "options: adopted 0" in out

    args = parser.parse_args(["reconcile"])
    code = await asyncio.to_thread(args.handler, args, settings)
    out = capsys.readouterr().out
    assert code == 0 and "options: adopted 1, closed 0" in out
    assert "adopted option trade ic-spy-240419-" in out


async def test_an_orphaned_option_trade_is_restarted_once_and_closes_on_force_exit(
    harness: ReconcileHarness, bench: OptionsBench
) -> None:
    options = option_harness(
        harness.client, harness.task_queue, harness.admin, harness.gateway, harness.pool
    )
    spec = marketable_spec(options, MONTHLY)
    first = await harness.client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=option_workflow_id(spec.trade_id),
        task_queue=harness.task_queue,
    )
    opened = await bench.wait_for_row(spec.trade_id, status=OptionTradeStatus.OPEN)
    assert opened.credit is not None and set(bench.held()) == set(MONTHLY.symbols)
    first_run = (await first.describe()).run_id
    await first.terminate("test: the worker lost the trade")

    result = await bench.reconcile_replayed(save_as="an_orphaned_option_trade_restarted")

    assert result.ok and result.options_restarted == 1, result
    assert result.restarted_option_trades == [spec.trade_id]
    assert result.options_adopted == 0 and result.options_closed == 0
    handle = harness.client.get_workflow_handle_for(
        OptionTradeWorkflow.run, option_workflow_id(spec.trade_id)
    )
    described = await handle.describe()
    assert described.status is WorkflowExecutionStatus.RUNNING and described.run_id != first_run
    view = await handle.query(OptionTradeWorkflow.status)
    assert view.status is OptionTradeStatus.OPEN and view.state.credit == opened.credit
    assert [leg.symbol for leg in view.legs] == MONTHLY.symbols
    row = await bench.row(spec.trade_id)
    assert row.status is OptionTradeStatus.OPEN and row.credit == opened.credit
    assert row.origin is TradeOrigin.INTERNAL
    audited = await harness.pool.fetch(
        "SELECT detail FROM audit_log WHERE trade_id = $1 AND action = 'option_trade_restarted'",
        spec.trade_id,
    )
    assert len(audited) == 1

    # A repeat finds it running: nothing starts.
    again = await harness.reconcile()
    assert again.ok and again.options_restarted == 0 and again.restarted_option_trades == []
    assert (await handle.describe()).run_id == described.run_id

    # Lost again, two reconciles at once: one new run between them.
    await handle.terminate("test: lost again")
    both = await asyncio.gather(harness.reconcile(), harness.reconcile())
    assert all(r.ok for r in both), [r.error for r in both]
    assert sum(r.options_restarted for r in both) == 1
    latest = await handle.describe()
    assert latest.status is WorkflowExecutionStatus.RUNNING
    assert latest.run_id not in (first_run, described.run_id)

    await handle.signal(OptionTradeWorkflow.force_exit, OptionForceExit(reason="test"))
    ended: OptionTradeResult = await handle.result()
    assert ended.status is OptionTradeStatus.CLOSED and ended.credit == opened.credit
    assert bench.held() == {}
    closed = await bench.row(spec.trade_id)
    assert closed.status is OptionTradeStatus.CLOSED and closed.realized_pnl is not None


async def test_an_entry_filled_unseen_is_restarted_open_at_the_fill_credit_and_shown_by_the_cli(
    harness: ReconcileHarness,
    bench: OptionsBench,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
) -> None:
    await bench.trade_mleg(MONTHLY, qty=1, opening=True)
    held = bench.held()
    lp, sp, sc, lc = (held[s] for s in MONTHLY.symbols)
    credit = sp.avg_entry_price + sc.avg_entry_price - lp.avg_entry_price - lc.avg_entry_price
    pending = await bench.ledger_row(MONTHLY, qty=1, status=OptionTradeStatus.PENDING_ENTRY)
    parser = argparse.ArgumentParser(prog="starter.py")
    register(parser.add_subparsers(dest="command", required=True))

    args = parser.parse_args(["reconcile"])
    code = await asyncio.to_thread(args.handler, args, settings)

    out = capsys.readouterr().out
    assert code == 0, out
    assert "restart option" in out and f"restarted option trade {pending}" in out
    assert "restarted 1" in out and "options: adopted 0" in out
    handle = harness.client.get_workflow_handle_for(
        OptionTradeWorkflow.run, option_workflow_id(pending)
    )
    view = await handle.query(OptionTradeWorkflow.status)
    assert view.status is OptionTradeStatus.OPEN and view.state.credit == credit
    row = await bench.wait_for_row(pending, status=OptionTradeStatus.OPEN)
    assert row.credit == credit and row.opened_at is not None
