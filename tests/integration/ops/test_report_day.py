"""`report day` on a scripted day of the real stack: the paper broker (manual clock), a
production worker with BrokerSync, the ledger. Two trades open, one stop is cancelled from the
dashboard and rescued, one trade closes with a profit and one with a loss; two iron condors
are written to the ledger beside them (one closed at a profit, one still open) and, later, a
third whose close is held back. The report's JSON figures are checked against the ledger, its
HTML against its PNG charts, and its text view for the options line and table."""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
import matplotlib.image
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

import cli.main
from broker.alpaca import AlpacaGateway
from ledger.option_trades import OptionTrades
from paperbroker.admin_client import AdminClient
from settings import Settings
from tests.integration.trade.conftest import TradeHarness, eventually
from trading.broker_models import OrderSide
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.ledger_records import CloseReason, ExitUrgency, TradeStatus
from trading.options.records import OptionTradeWrite
from trading.options.trade_models import OptionLeg, OptionTradeStatus
from trading.report.charts import CHART_TITLES
from trading.report.models import DayReport, VerdictResult
from trading.ticks import protective_stop_price
from trading.trade_models import ForceExit, TradeResult
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration

WINNER, LOSER = "AAPL", "MSFT"
PNG = b"\x89PNG\r\n\x1a\n"
CONDOR_LEGS = [
    OptionLeg(symbol="SPY240419P00480000", side=OrderSide.BUY),
    OptionLeg(symbol="SPY240419P00485000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00540000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00545000", side=OrderSide.BUY),
]
HELD_BACK = (
    "close held back, the legs held do not match the trade: SPY240419C00540000 held 0 expected -1"
)


@dataclass
class Day:
    """The running stack: trades on a production worker, BrokerSync polling beside them."""

    harness: TradeHarness
    sync: WorkflowHandle[Any, Any]


@pytest_asyncio.fixture
async def day(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[Day]:
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    for symbol in (WINNER, LOSER):
        broker_admin.set_price(symbol, volatility=0)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        sync = await client.start_workflow(
            BrokerSyncWorkflow.run,
            BrokerSyncRun(settings=BrokerSyncInput(poll_interval=timedelta(seconds=2))),
            id=f"broker-sync-{uuid.uuid4().hex[:8]}",
            task_queue=task_queue,
        )
        try:
            await eventually(lambda: broker_admin.state()["stream_listening"] == 1)
            yield Day(harness, sync)
        finally:
            await sync.signal(BrokerSyncWorkflow.stop)
            await sync.result()
            for handle in harness.handles:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")


async def run_report(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    capsys: pytest.CaptureFixture[str],
    *argv: str,
) -> tuple[int, str, str]:
    """`starter.py report day ARGV` through cli.main.main, with the test's settings."""
    monkeypatch.setattr(cli.main, "load_settings", lambda: settings)
    code = await asyncio.to_thread(cli.main.main, ["report", "day", *argv])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


async def record_condor(
    pool: asyncpg.Pool, trade_id: str, status: OptionTradeStatus, **numbers: Any
) -> None:
    """An iron condor's row as its workflow writes it, at the time now."""
    write = {
        "trade_id": trade_id,
        "underlying": "SPY",
        "status": status,
        "expiry": date(2024, 4, 19),
        "qty": 1,
        "legs": CONDOR_LEGS,
        "width": Decimal(5),
        "credit": Decimal("1.20"),
        "max_loss": Decimal(380),
        "workflow_id": f"option-trade-{trade_id}",
        "at": datetime.now(UTC),
    }
    await OptionTrades(pool).record(OptionTradeWrite.model_validate(write | numbers))


def embedded_pngs(page: str) -> dict[str, bytes]:
    found = re.findall(r"id='chart-(\w+)' src='data:image/png;base64,([A-Za-z0-9+/=]+)'", page)
    return {name: base64.b64decode(data) for name, data in found}


async def test_report_day_figures_match_the_ledger_of_a_scripted_day(
    day: Day,
    pool: asyncpg.Pool,
    cli_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    harness, admin = day.harness, day.harness.admin
    winner, won = await harness.open_trade(
        trade_id=f"aapl-{uuid.uuid4().hex[:8]}", symbol=WINNER, qty=Decimal(10)
    )
    loser, lost = await harness.open_trade(
        trade_id=f"msft-{uuid.uuid4().hex[:8]}",
        symbol=LOSER,
        qty=Decimal(5),
        stop_price=protective_stop_price(harness.market(LOSER) * Decimal("0.95")),
    )

    # A stop cancelled from the dashboard: the trade rescues it.
    old_stop = won.state.stop_order_id
    assert old_stop is not None
    admin.cancel_order(old_stop)
    await harness.wait_for(
        winner, lambda v: v.state.rescue.ok >= 1 and v.state.stop_order_id != old_stop
    )

    # The winner's price rises and it exits at market; the loser's falls through its stop.
    admin.set_price(WINNER, harness.market(WINNER) * Decimal("1.05"))
    await winner.signal(
        TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="take profit")
    )
    admin.set_price(LOSER, lost.state.stop_price - Decimal(2))
    results = [await h.result() for h in (winner, loser)]
    assert all(isinstance(r, TradeResult) for r in results)
    assert [r.close_reason for r in results] == [CloseReason.FORCE_EXIT, CloseReason.STOP_FILLED]

    # Two iron condors beside them: one opens and closes at a profit, one is still open.
    condor_won, condor_held = (f"ic-{name}-{uuid.uuid4().hex[:6]}" for name in ("won", "held"))
    await record_condor(pool, condor_won, OptionTradeStatus.OPEN)
    await record_condor(
        pool,
        condor_won,
        OptionTradeStatus.CLOSED,
        exit_debit=Decimal("0.60"),
        exit_reason="take_profit",
        realized_pnl=Decimal("60.00"),
    )
    await record_condor(pool, condor_held, OptionTradeStatus.OPEN, max_loss=Decimal(390))

    html = tmp_path / "reports" / "day.html"
    code, out, err = await run_report(
        monkeypatch, cli_settings, capsys, "--json", "--html", str(html)
    )
    assert code == 0, out + err
    report = DayReport.model_validate(json.loads(out))  # the documented schema

    # The ledger's own figures for the report's window.
    window = (report.window_start, report.window_end)
    closed = await pool.fetch(
        "SELECT id, realized_pnl FROM trades WHERE status = 'CLOSED' "
        "AND closed_at >= $1 AND closed_at < $2",
        *window,
    )
    rescued = await pool.fetchval(
        "SELECT count(*) FROM risk_events WHERE kind = 'stop_rescued' AND at >= $1 AND at < $2",
        *window,
    )
    seen_to = report.broker_calls.recorded_to  # BrokerSync polls on after the report
    calls = await pool.fetchval(
        "SELECT coalesce(sum(slots), 0) FROM broker_calls WHERE at >= $1 AND at <= $2",
        report.window_start,
        seen_to,
    )
    option_closed = await pool.fetch(
        "SELECT id, realized_pnl FROM option_trades WHERE status = 'CLOSED' "
        "AND closed_at >= $1 AND closed_at < $2",
        *window,
    )
    pnl = {r["id"]: r["realized_pnl"] for r in closed}
    option_pnl = {r["id"]: r["realized_pnl"] for r in option_closed}
    assert option_pnl == {condor_won: Decimal("60.00")}
    day_pnl = sum(pnl.values()) + sum(option_pnl.values())
    assert set(pnl) == {won.trade_id, lost.trade_id}
    assert pnl[won.trade_id] > 0 > pnl[lost.trade_id]

    trades = report.trades
    assert (trades.opened, trades.closed, trades.winners, trades.losers) == (2, 2, 1, 1)
    assert trades.realized_pnl == sum(pnl.values())
    assert {t.trade_id: t.realized_pnl for t in trades.trades} == pnl
    assert all(t.status is TradeStatus.CLOSED for t in trades.trades)
    assert trades.open_at_end == 0 and trades.unprotected_at_end == []
    # The option trades: their own figures, and their close in the day's P&L and its chart.
    options = report.options
    assert (options.opened, options.closed, options.winners, options.losers) == (2, 1, 1, 0)
    assert (options.open_at_end, options.max_loss_open_at_end) == (1, Decimal(390))
    assert options.realized_pnl == Decimal("60.00") and options.held_back_at_end == []
    lines = {t.trade_id: t for t in options.trades}
    assert set(lines) == {condor_won, condor_held}
    won_line = lines[condor_won]
    assert (won_line.status, won_line.exit_reason) == (OptionTradeStatus.CLOSED, "take_profit")
    assert (won_line.credit, won_line.exit_debit) == (Decimal("1.20"), Decimal("0.60"))
    assert won_line.opened_today and won_line.closed_today
    assert lines[condor_held].status is OptionTradeStatus.OPEN
    assert not lines[condor_held].closed_today
    assert report.pnl.realized_pnl == day_pnl
    assert report.pnl.points[-1].cumulative_realized == day_pnl

    assert rescued == 1
    assert (report.rescues.rescued, report.rescues.failed) == (rescued, 0)
    assert report.rescues.latency.count == 1 and report.rescues.latency.max_ms is not None
    sources = sorted(g.source for g in report.gaps.gaps)
    assert sources == ["exit", "rescue"]  # the rescue's gap and the market exit's
    assert report.gaps.over_limit == 0

    assert report.broker_calls.total_calls == calls > 0  # the worker's calls, all recorded
    assert report.broker_calls.limit_per_min == 200  # the paper broker reports no real limit
    assert report.broker_calls.minutes_over_limit == 0 and not report.broker_calls.rate_limited
    assert report.heartbeats.broker_sync_last_poll is not None
    assert not report.complete and report.activity
    assert report.verdict.result is VerdictResult.PASS, report.verdict
    assert f"2 trade(s) closed, 1 option trade(s) closed, realized P&L {day_pnl}" in (
        report.verdict.reason
    )

    page = html.read_text()
    assert "<b>PASS</b>" in page and won.trade_id in page and lost.trade_id in page
    assert "<h2>Option trades</h2>" in page and f"<td>{condor_won}</td><td>SPY</td>" in page
    charts = embedded_pngs(page)
    assert set(charts) == set(CHART_TITLES)
    for name, png in charts.items():
        assert png.startswith(PNG), name
        assert matplotlib.image.imread(io.BytesIO(png), format="png").shape[0] > 100, name

    # The text view ends in the same verdict, and the HTML goes where it says.
    code, out, _ = await run_report(
        monkeypatch, cli_settings, capsys, "--html", str(tmp_path / "again.html")
    )
    assert code == 0
    assert out.rstrip().splitlines()[-2] == f"verdict: PASS: {report.verdict.reason}"
    assert out.rstrip().endswith(f"HTML: {tmp_path / 'again.html'}")
    assert (
        "options: 2 opened, 1 closed (1 won, 0 lost, 0 closed outside), 0 entries failed, "
        "0 adopted, 1 open at the end (max loss 390); realized P&L 60.00"
    ) in out.splitlines()
    table = {line.split()[0]: line.split() for line in out.splitlines() if line.startswith("ic-")}
    assert table[condor_won][1:4] == ["SPY", "CLOSED", "internal"]
    assert table[condor_won][-2:] == ["take_profit", "60.00"]
    assert table[condor_held][1:4] == ["SPY", "OPEN", "internal"]
    assert f"realized P&L of the day (stocks and options): {day_pnl}" in out

    # A third condor's close is held back (the legs held do not match): the day fails.
    condor_stuck = f"ic-stuck-{uuid.uuid4().hex[:6]}"
    await record_condor(pool, condor_stuck, OptionTradeStatus.OPEN)
    await record_condor(
        pool, condor_stuck, OptionTradeStatus.CLOSING, exit_reason="stop_loss", note=HELD_BACK
    )
    code, out, _ = await run_report(monkeypatch, cli_settings, capsys, "--json", "--no-html")
    assert code == 1
    failed = DayReport.model_validate(json.loads(out))
    assert failed.options.held_back_at_end == [f"{condor_stuck} (SPY: {HELD_BACK})"]
    assert failed.verdict.result is VerdictResult.FAIL
    assert failed.verdict.failures == [
        f"1 option close(s) held back at the end: {condor_stuck} (SPY: {HELD_BACK})"
    ]
    code, out, _ = await run_report(monkeypatch, cli_settings, capsys, "--no-html")
    assert code == 1
    assert f"  option close held back at the end: {condor_stuck} (SPY: {HELD_BACK})" in out
    assert out.rstrip().splitlines()[-1] == f"verdict: FAIL: {failed.verdict.reason}"


async def test_a_quiet_date_reports_no_activity(
    cli_settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    code, out, _ = await run_report(
        monkeypatch, cli_settings, capsys, "--date", "2001-02-05", "--json", "--html",
        str(tmp_path / "quiet.html"),
    )  # fmt: skip
    report = DayReport.model_validate(json.loads(out))
    assert code == 0 and not report.activity and report.complete
    assert report.verdict.result is VerdictResult.NO_ACTIVITY
    assert report.verdict.reason.startswith("no activity on 2001-02-05")
    assert set(embedded_pngs((tmp_path / "quiet.html").read_text())) == set(CHART_TITLES)


async def test_notify_records_the_days_verdict_once_per_date(
    cli_settings: Settings,
    pool: asyncpg.Pool,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """`--notify` sends the verdict under `daily_report:<date>`; a second run sends nothing
    (no webhook here: the notice is recorded as such, the command still passes)."""
    for _ in range(2):
        code, out, _ = await run_report(
            monkeypatch, cli_settings, capsys, "--date", "2001-02-06", "--notify", "--no-html"
        )
        assert code == 0 and out.rstrip().endswith("notify: no_webhook"), out
    rows = await pool.fetch(
        "SELECT kind, attempts FROM notifications WHERE event_key = 'daily_report:2001-02-06'"
    )
    assert [r["kind"] for r in rows] == ["daily_report"]


async def test_no_ledger_is_one_line_and_exit_2(
    cli_settings: Settings,
    empty_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    unmigrated = cli_settings.model_copy(update={"database_url": SecretStr(empty_database_url)})
    code, out, err = await run_report(monkeypatch, unmigrated, capsys, "--no-html")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "no ledger: the database has no trades table; apply the migrations" in err

    unreachable = cli_settings.model_copy(
        update={"database_url": SecretStr("postgresql://nobody@127.0.0.1:1/ledger")}
    )
    code, out, err = await run_report(monkeypatch, unreachable, capsys, "--no-html")
    assert code == 2 and out == ""
    assert (
        err.startswith("error: no ledger: cannot connect to DATABASE_URL") and err.count("\n") == 1
    )
