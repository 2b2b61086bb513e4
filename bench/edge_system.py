"""The edge benchmark's two contestants on one paper broker: the system and the baseline.

`edge_stack()` gives a scenario a fresh paper broker (a clock running in real time from 10:30
New York in a regular session, flat prices, Alpaca-like 50 ms asynchronous cancels, rate
limit off until measuring), a fresh
migrated ledger database and a `WorkerProcess` on a fresh task queue, on the benchmark's one
Temporal dev server and PostgreSQL.

The system side (`guard_positions`): positions opened outside the system through the broker's
own code path (`trade_elsewhere`, what `POST /_sim/positions` runs), then one protect-only
TradeWorkflow per position (as reconcile and auto-manage start them) that places its own stop,
then BrokerSync under its production id. A large setup runs under a setup worker with a raised
broker-call budget (the rate limit is off during setup), which is then replaced by a worker
with the production settings; the benchmark's queries warm the new worker's cache before
anything is measured. `settle` lets the budget's 60 s window forget the setup.

The baseline side (`baseline_book`): positions opened the same way, a GTC stop for each
submitted through alpaca-py (setup, rate limit off), and the book file the cron job reads.
It runs after the system of the same scenario has been stopped (worker gone, workflows
terminated), so the two never share the broker's rate-limit window.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import asyncpg
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import StopOrderRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.testing import WorkflowEnvironment

from activities.trade_link import TradeLink
from bench.edge_baseline import BaselineCron, BookTrade, write_book
from bench.edge_stack import BrokerWatch, WorkerProcess
from bench.stack import SESSION_START
from contracts import broker_sync
from contracts import trade as trade_contract
from devstack.postgres import EmbeddedPostgres
from ledger.migrate import apply_migrations
from paperbroker.clock import ClockMode
from paperbroker.external import trade_elsewhere
from paperbroker.testing import RunningBroker, run_paper_broker
from trading.broker_sync_models import BrokerSyncRun, BrokerSyncState
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec, TradeStatusView

QTY = Decimal(10)
STOP_DISTANCE = Decimal("0.95")
ALPACA_RATE_LIMIT = 200
SETUP_CALLS_PER_MIN = 100_000
# Above this many trades the setup worker (raised budget) opens them; below, the production
# worker does it within its budget.
SETUP_WORKER_ABOVE = 30
BUDGET_WINDOW_S = 61.0


@dataclass
class EdgeStack:
    """One scenario's broker, ledger database, worker process and trades."""

    env: WorkflowEnvironment
    postgres: EmbeddedPostgres
    broker: RunningBroker
    watch: BrokerWatch
    work_dir: Path
    database_url: str
    worker: WorkerProcess
    trades: dict[str, str] = field(default_factory=dict)  # symbol -> trade id
    setup_done_at: float = 0.0  # monotonic: the last setup broker call
    setup_worker_used: bool = False  # its calls must leave the budget window first
    notes: list[str] = field(default_factory=list)

    @property
    def client(self) -> Client:
        return self.env.client

    @property
    def task_queue(self) -> str:
        return self.worker.task_queue

    def trade_workflow_ids(self) -> list[str]:
        """The workflow ids of the trades the benchmark opened."""
        return [trade_contract.workflow_id(t) for t in self.trades.values()]


@contextlib.asynccontextmanager
async def edge_stack(
    env: WorkflowEnvironment, postgres: EmbeddedPostgres, name: str, symbols: list[str]
) -> AsyncIterator[EdgeStack]:
    """A fresh broker (knowing `symbols`), database and worker; all stopped afterwards."""
    database_url = await postgres.create_database(f"edge_{name}_{uuid.uuid4().hex[:6]}")
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    work_dir = postgres.data_dir.parent / f"edge-{name}-{uuid.uuid4().hex[:6]}"
    work_dir.mkdir(parents=True)
    with run_paper_broker(
        start=SESSION_START,
        # The clock runs in real time: with a frozen one every order would carry the same
        # submitted_at, and the gateway pages past 500 open orders by that time.
        clock=ClockMode.ACCELERATED,
        rate=1.0,
        tick_seconds=1.0,
        rate_limit=0,
        symbols=tuple(symbols),
        cash=Decimal(10**12),
        volatility=0.0,
    ) as broker:
        worker = WorkerProcess(
            temporal_address=env.client.service_client.config.target_host,
            task_queue=f"edge-{name}-{uuid.uuid4().hex[:8]}",
            database_url=database_url,
            broker=broker,
            state_dir=work_dir,
        )
        stack = EdgeStack(
            env=env,
            postgres=postgres,
            broker=broker,
            watch=BrokerWatch(broker),
            work_dir=work_dir,
            database_url=database_url,
            worker=worker,
        )
        try:
            yield stack
        finally:
            await stop_system(stack)


# --- the system --------------------------------------------------------------------------------


async def open_positions(stack: EdgeStack, symbols: list[str]) -> dict[str, Decimal]:
    """A position of QTY in each symbol, traded outside the system; fill price by symbol."""
    broker = stack.broker.server.broker

    def open_all() -> dict[str, Decimal]:
        prices: dict[str, Decimal] = {}
        for symbol in symbols:
            order = trade_elsewhere(broker, symbol, QTY, None)
            assert order.filled_avg_price is not None
            prices[symbol] = order.filled_avg_price
        return prices

    return await stack.watch.on_broker(open_all)


async def trade_views(client: Client, workflow_ids: list[str]) -> list[TradeStatusView]:
    """Every trade's status query (this also loads it into the worker's cache)."""
    gate = asyncio.Semaphore(32)

    async def one(workflow_id: str) -> TradeStatusView:
        async with gate:
            view: TradeStatusView = await client.get_workflow_handle(workflow_id).query(
                trade_contract.STATUS.name, result_type=TradeStatusView
            )
            return view

    return list(await asyncio.gather(*(one(w) for w in workflow_ids)))


async def broker_sync_state(client: Client) -> BrokerSyncState:
    """BrokerSync's counters."""
    state: BrokerSyncState = await client.get_workflow_handle(broker_sync.WORKFLOW_ID).query(
        broker_sync.STATUS.name, result_type=BrokerSyncState
    )
    return state


async def wait_for(what: str, check: Any, within_s: float, every_s: float = 0.5) -> None:
    """Poll the async `check` until it is true; give up with a clear message."""
    deadline = time.monotonic() + within_s
    while not await check():
        if time.monotonic() > deadline:
            raise SystemExit(f"setup: {what} not reached within {within_s:.0f} s")
        await asyncio.sleep(every_s)


async def guard_positions(
    stack: EdgeStack, symbols: list[str], say: Any, idle_check_interval: timedelta
) -> None:
    """Positions, one protect-only guard each with its own stop, and BrokerSync running."""
    prices = await open_positions(stack, symbols)
    big = len(symbols) > SETUP_WORKER_ABOVE
    if big:
        stack.setup_worker_used = True
        stack.worker.calls_per_min = SETUP_CALLS_PER_MIN
        stack.notes.append(
            f"setup: {len(symbols)} guards opened by a setup worker with "
            f"BROKER_CALLS_PER_MIN={SETUP_CALLS_PER_MIN} and the broker's rate limit off; "
            "then replaced by a worker with the production settings"
        )
    stack.worker.start()
    await stack.worker.wait_ready()
    link = TradeLink(stack.client, stack.task_queue)
    say(f"    starting {len(symbols)} protect-only guards")
    gate = asyncio.Semaphore(16)

    async def start(symbol: str) -> None:
        trade_id = f"edge-{symbol.lower()}-{uuid.uuid4().hex[:6]}"
        spec = TradeSpec(
            trade_id=trade_id,
            symbol=symbol,
            qty=QTY,
            stop_price=protective_stop_price(prices[symbol] * STOP_DISTANCE),
            protect_only=True,
            idle_check_interval=idle_check_interval,
        )
        async with gate:
            await link.start(spec, once=True)
        stack.trades[symbol] = trade_id

    await asyncio.gather(*(start(s) for s in symbols))
    await wait_all_protected(stack, symbols, within_s=max(120.0, len(symbols) * 0.6))
    await start_broker_sync(stack)
    if big:
        say("    replacing the setup worker with a production-configured one")
        stack.worker.stop()
        stack.worker.calls_per_min = None
        stack.worker.start()
        await stack.worker.wait_ready()
        await trade_views(stack.client, stack.trade_workflow_ids())  # warm the new cache
        await wait_broker_sync(stack)
    stack.setup_done_at = time.monotonic()


async def wait_all_protected(stack: EdgeStack, symbols: list[str], within_s: float) -> None:
    """A working stop on every symbol at the broker, then every trade OPEN with its stop id
    (the broker is asked first: it costs the worker nothing)."""
    wanted = set(symbols)

    async def stops_working() -> bool:
        return wanted <= set(await stack.watch.active_stops())

    async def trades_know() -> bool:
        ids = [trade_contract.workflow_id(stack.trades[s]) for s in symbols]
        views = await trade_views(stack.client, ids)
        return all(v.status.value == "OPEN" and v.state.stop_order_id for v in views)

    began = time.monotonic()
    await wait_for(f"{len(symbols)} stops working", stops_working, within_s, every_s=1.0)
    left = max(30.0, within_s - (time.monotonic() - began))
    await wait_for(f"{len(symbols)} guards protected", trades_know, left, every_s=2.0)


async def start_broker_sync(stack: EdgeStack) -> None:
    """BrokerSync under its production id (the worker asks it to poll when it starts)."""
    await stack.client.start_workflow(
        broker_sync.WORKFLOW.name,
        BrokerSyncRun(),
        id=broker_sync.WORKFLOW_ID,
        task_queue=stack.task_queue,
    )
    await wait_broker_sync(stack)


async def wait_broker_sync(stack: EdgeStack) -> None:
    """The listener holds the stream and BrokerSync has polled at least once."""

    async def ready() -> bool:
        if stack.watch.listening() != 1:
            return False
        state = await broker_sync_state(stack.client)
        return state.polls >= 1 and state.last_poll_error is None

    await wait_for("BrokerSync listening and polled", ready, 60.0, every_s=0.2)


async def settle(stack: EdgeStack, say: Any, at_least_s: float = 0.0) -> None:
    """Let things come to rest after the setup; after a setup worker's burst of calls, until
    the broker-call budget's 60 s window no longer holds them (a small setup spends well
    under the budget: two calls a trade)."""
    wait = at_least_s
    if stack.setup_worker_used:
        wait = max(wait, BUDGET_WINDOW_S - (time.monotonic() - stack.setup_done_at))
    if wait > 0:
        say(f"    settling {wait:.0f} s (the budget's 60 s window forgets the setup)")
        await asyncio.sleep(wait)


async def start_measuring(stack: EdgeStack) -> None:
    """Alpaca's rate limit on (a fresh window), the request and 429 counters at zero."""
    admin = stack.broker.admin
    await asyncio.to_thread(admin.configure, rate_limit=ALPACA_RATE_LIMIT)
    await asyncio.to_thread(admin.reset_requests)
    stack.watch.rate_limited = 0


async def broker_requests(stack: EdgeStack) -> dict[str, Any]:
    """The broker's /v2 request counter (total and by route) and the 429s it answered."""
    counted = await asyncio.to_thread(stack.broker.admin.requests)
    return {
        "total": int(counted["total"]),
        "by_route": dict(counted["by_route"]),
        "rate_limited_429": stack.watch.rate_limited,
    }


async def stop_system(stack: EdgeStack) -> None:
    """Terminate every running workflow of this stack's task queue, then stop the worker."""
    client = stack.client
    with contextlib.suppress(Exception):
        async for execution in client.list_workflows(
            f"TaskQueue = '{stack.task_queue}' AND ExecutionStatus = 'Running'"
        ):
            with contextlib.suppress(Exception):
                await client.get_workflow_handle(execution.id).terminate("edge benchmark done")
    # Visibility lags: the singleton and the known trades directly as well.
    for workflow_id in [broker_sync.WORKFLOW_ID, *stack.trade_workflow_ids()]:
        handle = client.get_workflow_handle(workflow_id)
        with contextlib.suppress(Exception):
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("edge benchmark done")
    stack.worker.stop()


# --- the baseline ------------------------------------------------------------------------------


def _submit_stops(broker: RunningBroker, prices: dict[str, Decimal]) -> dict[str, str]:
    def one(item: tuple[str, Decimal]) -> tuple[str, str]:
        symbol, price = item
        client = TradingClient(
            broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
        )
        order: Any = client.submit_order(
            StopOrderRequest(
                symbol=symbol,
                qty=float(QTY),
                side=OrderSide.SELL,
                time_in_force=TimeInForce.GTC,
                stop_price=float(protective_stop_price(price * STOP_DISTANCE)),
            )
        )
        return symbol, str(order.id)

    with ThreadPoolExecutor(max_workers=8) as pool:
        return dict(pool.map(one, prices.items()))


async def baseline_book(
    stack: EdgeStack, symbols: list[str], name: str, period_s: float
) -> BaselineCron:
    """Positions with their GTC stops and the cron job's book; the job, not started yet."""
    await asyncio.to_thread(stack.broker.admin.configure, rate_limit=0)
    prices = await open_positions(stack, symbols)
    stop_ids = await asyncio.to_thread(_submit_stops, stack.broker, prices)
    book = [
        BookTrade(
            symbol=s,
            qty=str(QTY),
            stop_price=str(protective_stop_price(prices[s] * STOP_DISTANCE)),
            stop_order_id=stop_ids[s],
        )
        for s in symbols
    ]
    path = stack.work_dir / f"baseline-{name}.json"
    write_book(path, book)
    return BaselineCron(
        stack.broker.trading_url, stack.broker.key_id, stack.broker.secret_key, path, period_s
    )


def book_stop_ids(cron: BaselineCron) -> dict[str, str]:
    """The stop order id the book holds for each symbol."""
    trades = json.loads(cron.book_path.read_text())["trades"]
    return {t["symbol"]: t["stop_order_id"] for t in trades}
