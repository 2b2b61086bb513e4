"""The long-running services `dev up` starts once the worker is ready: BrokerSync, trading
control, the schedules of the configured profile, and a few demo trades."""

from __future__ import annotations

import argparse
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal

from temporalio.client import Client
from temporalio.common import WorkflowIDConflictPolicy

from activities.control_link import ensure_control
from activities.trade_link import TradeLink
from cli.broker_calls import cli_broker
from contracts import broker_sync, control, trade
from settings import Settings
from trading.broker_sync_models import BrokerSyncRun
from trading.ids import new_trade_id
from trading.ticks import protective_stop_price, take_profit_price
from trading.trade_models import TradeSpec

DEMO_SYMBOLS = ("AAPL", "MSFT", "NVDA")
DEMO_STOP_DISTANCE = Decimal("0.05")
DEMO_TAKE_PROFIT = Decimal("0.08")


async def start_singletons(client: Client, settings: Settings, say: Callable[[str], None]) -> None:
    """Start BrokerSync and TradingControl unless they already run (their ids are singletons)."""
    await client.start_workflow(
        broker_sync.WORKFLOW.name,
        BrokerSyncRun(),
        id=broker_sync.WORKFLOW_ID,
        task_queue=settings.temporal_task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )
    say(f"  {broker_sync.WORKFLOW_ID}: trade_updates listener + broker-truth poll")
    await ensure_control(
        client,
        settings.temporal_task_queue,
        settings.daily_loss_limit,
        settings.daily_loss_limit_pct,
    )
    say(f"  {control.WORKFLOW_ID}: ACTIVE / REDUCING / HALTED switch")


async def apply_schedules(client: Client, settings: Settings, say: Callable[[str], None]) -> None:
    """Install the configured schedule profile (dev by default) idempotently."""
    from cli.schedule_ops import apply_plan, plan_for
    from cli.schedules import resolve_profile

    profile = resolve_profile(None, settings)
    outcomes = await apply_plan(client, plan_for(settings, profile), settings.temporal_task_queue)
    changed = sum(1 for o in outcomes if o.result in ("created", "updated"))
    say(
        f"  schedules ({profile} profile): {len(outcomes)} installed, {changed} changed "
        "(python starter.py schedules list)"
    )


async def open_demo_trades(
    client: Client, settings: Settings, say: Callable[[str], None], count: int = 2
) -> list[str]:
    """Open a few small guarded trades so the Web UI has live trade workflows to show."""
    link = TradeLink(client, settings.temporal_task_queue)
    async with cli_broker(settings) as broker:  # paid for from the account's shared budget
        held = {p.symbol for p in await broker.get_positions()}
        wanted = [s for s in DEMO_SYMBOLS if s not in held][:count]
        asks = {q.symbol: q.ask for q in await broker.latest_quotes(wanted)} if wanted else {}
    started: list[str] = []
    for symbol in wanted:
        ask = asks[symbol]
        spec = TradeSpec(
            trade_id=new_trade_id(symbol, datetime.now(UTC), uuid.uuid4().hex),
            symbol=symbol,
            qty=Decimal(5),
            stop_price=protective_stop_price(ask * (1 - DEMO_STOP_DISTANCE)),
            take_profit_price=take_profit_price(ask * (1 + DEMO_TAKE_PROFIT)),
        )
        await link.start(spec, once=True)
        started.append(trade.workflow_id(spec.trade_id))
        say(
            f"  demo trade {spec.trade_id}: 5 {symbol}, stop {spec.stop_price}, "
            f"take-profit {spec.take_profit_price}"
        )
    return started


def demo_flag(parser: argparse.ArgumentParser) -> None:
    """Add --no-demo to a parser."""
    parser.add_argument(
        "--no-demo", action="store_true", help="do not open demo trades on a fresh paper account"
    )
