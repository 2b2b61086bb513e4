"""Issue 10's acceptance scenarios: the guard against Alpaca as it really is.

Each scenario drives the paper broker (through alpaca-py) into one of Alpaca's harder edges
and ends with `assert_guarded`: every broker position covered by exactly one active stop, no
order placed twice, the ledger equal to the broker. `watch_stops` samples the broker while a
scenario runs and records whether two stops ever worked at once.

Every test gets its own ledger database (open rows of one test must not meet the next
test's fresh broker account) and a production worker on its own task queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest_asyncio
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy

from broker.alpaca import AlpacaGateway, to_order
from contracts.control import WORKFLOW_ID as CONTROL_WORKFLOW_ID
from contracts.trade import workflow_id as trade_workflow_id
from ledger.risk import RiskEvents
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.integration.helpers import terminate_control, terminate_running
from tests.integration.reconcile.conftest import ReconcileHarness
from tests.integration.trade.conftest import TradeHarness
from trading.broker_models import BrokerOrder, OrderSide, OrderStatus, OrderType
from trading.control import ControlInput
from trading.ledger_records import RiskEventRecord, TradeRecord
from trading.ticks import take_profit_price
from trading.trade_models import TradeSpec, TradeStatusView
from worker import create_worker
from workflows.control import TradingControlWorkflow
from workflows.trade import TradeWorkflow

SYMBOL = "AAPL"
STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP)
# Quick checks and short backoffs, so each scenario settles in seconds.
FAST: dict[str, Any] = {
    "check_interval": timedelta(seconds=1),
    "rescue_backoff_initial": timedelta(milliseconds=500),
    "rescue_backoff_max": timedelta(seconds=2),
    "partial_fill_grace": timedelta(seconds=1),
    "replace_settle": timedelta(seconds=2),
}


def is_sell_stop(order: BrokerOrder) -> bool:
    return order.side is OrderSide.SELL and order.type in STOP_TYPES


def is_working_stop(order: BrokerOrder) -> bool:
    """A sell stop that protects (or may still fill) at the broker right now.

    Stricter than `is_active`: an order in pending_cancel still works until the cancel lands.
    A replacement still in flight (pending_new, pointing at the order it replaces) does not
    work yet - the order it replaces does (Alpaca's asynchronous replace).
    """
    if not is_sell_stop(order):
        return False
    if order.replaces is not None and order.status in (
        OrderStatus.PENDING_NEW,
        OrderStatus.ACCEPTED,
    ):
        return False
    return order.is_active or order.status is OrderStatus.PENDING_CANCEL


@dataclass
class Scenario:
    """A TradeHarness plus alpaca-py listings, reconcile/auto-manage runs and control."""

    trades: TradeHarness
    broker: RunningBroker
    trading: TradingClient
    control_started: bool = False

    @property
    def admin(self) -> AdminClient:
        return self.trades.admin

    @property
    def gateway(self) -> AlpacaGateway:
        return self.trades.gateway

    @property
    def pool(self) -> asyncpg.Pool:
        return self.trades.pool

    @property
    def client(self) -> Client:
        return self.trades.client

    # --- trades --------------------------------------------------------------------------

    def spec(self, **fields: Any) -> TradeSpec:
        """TradeHarness's AAPL long (stop 5% under) with quick checks, grace and backoff."""
        return self.trades.spec(**{**FAST, **fields})

    def take_profit(self, symbol: str = SYMBOL) -> Decimal:
        """A take-profit 5% over the market."""
        return take_profit_price(self.trades.market(symbol) * Decimal("1.05"))

    async def start(self, **fields: Any) -> WorkflowHandle[Any, Any]:
        return await self.trades.start(self.spec(**fields))

    async def open_trade(self, **fields: Any) -> tuple[WorkflowHandle[Any, Any], TradeStatusView]:
        """Start a trade; wait until it is OPEN with a stop order the ledger has recorded."""
        handle = await self.start(**fields)
        view = await self.wait_for(
            handle, lambda v: v.status == "OPEN" and v.state.stop_order_id is not None
        )
        # The query sees the state before the ledger write that follows it lands.
        await self.wait_ledger(
            view.trade_id,
            lambda row: (
                (row.stop_order_id, row.take_profit_order_id)
                == (view.state.stop_order_id, view.state.take_profit_order_id)
            ),
        )
        return handle, view

    async def wait_ledger(
        self, trade_id: str, predicate: Callable[[TradeRecord], bool], within: float = 10.0
    ) -> TradeRecord:
        """Poll the trade's ledger row until the predicate holds."""
        deadline = time.monotonic() + within
        while True:
            row = await Trades(self.pool).get(trade_id)
            if row is not None and predicate(row):
                return row
            if time.monotonic() >= deadline:
                raise AssertionError(f"ledger condition not met in {within}s; row: {row}")
            await asyncio.sleep(0.1)

    async def wait_for(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[TradeStatusView], bool],
        within: float = 20.0,
    ) -> TradeStatusView:
        return await self.trades.wait_for(handle, predicate, within)

    async def view(self, handle: WorkflowHandle[Any, Any]) -> TradeStatusView:
        view: TradeStatusView = await handle.query(TradeWorkflow.status)
        return view

    def handle_of(self, trade_id: str) -> WorkflowHandle[Any, Any]:
        return self.client.get_workflow_handle(trade_workflow_id(trade_id))

    async def risk_events(self, trade_id: str, kind: str | None = None) -> list[RiskEventRecord]:
        events = [e for e in await RiskEvents(self.pool).recent(1000) if e.trade_id == trade_id]
        return [e for e in events if kind is None or e.kind == kind]

    async def wait_risk_event(
        self, trade_id: str, kind: str, within: float = 10.0
    ) -> RiskEventRecord:
        """The trade's one risk event of this kind (written just after the state changes)."""
        deadline = time.monotonic() + within
        while True:
            events = await self.risk_events(trade_id, kind)
            if events or time.monotonic() >= deadline:
                assert len(events) == 1, f"{kind} events of {trade_id}: {events}"
                return events[0]
            await asyncio.sleep(0.1)

    async def open_trades(self) -> list[TradeRecord]:
        return await Trades(self.pool).list_open()

    async def running_guards(self) -> list[str]:
        """Workflow ids of the TradeWorkflows running on this test's task queue."""
        query = (
            f"TaskQueue = '{self.trades.task_queue}' AND WorkflowType = 'TradeWorkflow' "
            "AND ExecutionStatus = 'Running'"
        )
        return sorted([w.id async for w in self.client.list_workflows(query)])

    async def assert_one_guard(self, trade_id: str, within: float = 5.0) -> None:
        """Exactly one TradeWorkflow runs on this queue, the trade's (visibility may lag)."""
        expected = [trade_workflow_id(trade_id)]
        deadline = time.monotonic() + within
        while (running := await self.running_guards()) != expected:
            if time.monotonic() >= deadline:
                raise AssertionError(f"running guards {running}, expected {expected}")
            await asyncio.sleep(0.2)

    # --- broker --------------------------------------------------------------------------

    def order(self, order_id: str) -> BrokerOrder:
        """One order by id (legs nested)."""
        return self.gateway.get_order(order_id)

    def all_orders(self) -> list[BrokerOrder]:
        """Every order the account ever had, each leg on its own (status=all, not nested)."""
        request = GetOrdersRequest(status=QueryOrderStatus.ALL, nested=False, limit=500)
        orders: Any = self.trading.get_orders(request)
        assert len(orders) < 500, "more orders than one listing page: widen the helper"
        return [to_order(o) for o in orders]

    def open_listing(self) -> set[str]:
        """Ids in `GET /v2/orders?status=open` (what may hide held legs)."""
        request = GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=False, limit=500)
        orders: Any = self.trading.get_orders(request)
        return {str(o.id) for o in orders}

    def by_client_id(self, client_order_id: str) -> list[BrokerOrder]:
        """Every order placed under this client_order_id (at most one, if all is well)."""
        return [o for o in self.all_orders() if o.client_order_id == client_order_id]

    def stops(self, symbol: str = SYMBOL) -> list[BrokerOrder]:
        """Every sell stop ever placed in the symbol, oldest first."""
        found = [o for o in self.all_orders() if o.symbol == symbol and is_sell_stop(o)]
        return sorted(found, key=lambda o: o.created_at)

    def settle(self) -> None:
        """Let cancels and replaces in flight land (the paper broker's barrier)."""
        self.admin.sync()

    # --- reconcile, auto-manage, flatten -------------------------------------------------

    def runs(self) -> ReconcileHarness:
        """Reconcile and auto-manage runs on this test's worker."""
        t = self.trades
        return ReconcileHarness(t.client, t.task_queue, t.admin, t.gateway, t.pool)

    async def start_control(self) -> WorkflowHandle[Any, Any]:
        """Start the trading-control singleton on this test's queue (terminated afterwards)."""
        await terminate_control(self.client, "scenario starts its own")
        self.control_started = True
        return await self.client.start_workflow(
            TradingControlWorkflow.run,
            ControlInput(),
            id=CONTROL_WORKFLOW_ID,
            task_queue=self.trades.task_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        )


# --- the invariant -------------------------------------------------------------------------


@dataclass
class Guarded:
    """What `assert_guarded` found: the covering stop per symbol and every order."""

    stops: dict[str, BrokerOrder]
    orders: list[BrokerOrder]
    ledger: list[TradeRecord]
    views: dict[str, TradeStatusView]


async def _running_views(s: Scenario, trades: list[TradeRecord]) -> dict[str, TradeStatusView]:
    views: dict[str, TradeStatusView] = {}
    for trade in trades:
        handle = s.handle_of(trade.id)
        with contextlib.suppress(Exception):
            if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                views[trade.id] = await s.view(handle)
    return views


async def _guard_problems(s: Scenario) -> tuple[list[str], Guarded]:
    problems: list[str] = []
    positions = {p.symbol: p.qty for p in s.gateway.get_positions() if p.qty != 0}
    listed = s.all_orders()
    ledger = await s.open_trades()
    views = await _running_views(s, ledger)
    # Look up BY ID every stop the ledger and the trade states name: a listing may hide it.
    by_id = {o.id: o for o in listed}
    named = {t.stop_order_id for t in ledger} | {v.state.stop_order_id for v in views.values()}
    for order_id in sorted(i for i in named if i):
        looked_up = s.order(order_id)
        if order_id not in by_id:
            problems.append(f"stop {order_id} found by id but missing from status=all")
        by_id[order_id] = looked_up
    orders = list(by_id.values())

    # No order placed twice: every client_order_id once at the broker.
    twice = {cid: n for cid, n in Counter(o.client_order_id for o in listed).items() if n > 1}
    if twice:
        problems.append(f"client_order_ids used more than once: {twice}")

    # Every position covered by exactly one active stop for its whole quantity; no stop
    # working where there is no position (it would open a short).
    covering: dict[str, BrokerOrder] = {}
    for symbol in sorted({o.symbol for o in orders} | set(positions)):
        working = [o for o in orders if o.symbol == symbol and is_working_stop(o)]
        qty = positions.get(symbol, Decimal(0))
        if qty < 0:
            problems.append(f"{symbol}: short position {qty}")
            continue
        if qty == 0:
            if working:
                problems.append(f"{symbol}: flat but stops work: {[o.id for o in working]}")
            continue
        if len(working) != 1:
            problems.append(
                f"{symbol}: position {qty} has {len(working)} working stops: "
                f"{[(o.id, o.status.value) for o in working]}"
            )
            continue
        stop = working[0]
        if not stop.is_active:
            problems.append(f"{symbol}: the stop {stop.id} is {stop.status.value}, not active")
        remaining = (stop.qty or Decimal(0)) - stop.filled_qty
        if remaining != qty:
            problems.append(f"{symbol}: stop {stop.id} covers {remaining}, position is {qty}")
        covering[symbol] = stop

    # The ledger's open trades equal the broker: one trade per held symbol, its quantity the
    # position's, its stop the active one; a running guard's state agrees.
    claimed: dict[str, list[TradeRecord]] = {}
    for trade in ledger:
        claimed.setdefault(trade.symbol, []).append(trade)
    for symbol in sorted(set(claimed) | set(positions)):
        owners = claimed.get(symbol, [])
        qty = positions.get(symbol, Decimal(0))
        if not owners:
            problems.append(f"{symbol}: position {qty} but no open trade in the ledger")
            continue
        if qty == 0:
            problems.append(f"{symbol}: ledger trades {[t.id for t in owners]} open, no position")
            continue
        if len(owners) != 1:
            problems.append(f"{symbol}: {len(owners)} open trades claim one position")
            continue
        trade = owners[0]
        cover = covering.get(symbol)
        if trade.qty != qty:
            problems.append(f"{symbol}: ledger qty {trade.qty}, broker {qty}")
        if cover is not None and trade.stop_order_id != cover.id:
            problems.append(f"{symbol}: ledger stop {trade.stop_order_id}, active stop {cover.id}")
        view = views.get(trade.id)
        if view is None:
            problems.append(f"{symbol}: trade {trade.id} has no running guard")
            continue
        if cover is not None and view.state.stop_order_id != cover.id:
            problems.append(
                f"{symbol}: trade state stop {view.state.stop_order_id}, active stop {cover.id}"
            )
        if view.state.position_qty != qty:
            problems.append(f"{symbol}: trade state qty {view.state.position_qty}, broker {qty}")
    return problems, Guarded(stops=covering, orders=orders, ledger=ledger, views=views)


def describe_orders(orders: list[BrokerOrder]) -> str:
    """One line per order: what a failed scenario's report needs."""
    return "\n".join(
        f"  {o.id} {o.client_order_id} {o.order_class.value} {o.side.value} {o.type.value} "
        f"{o.status.value} qty={o.qty} filled={o.filled_qty} stop={o.stop_price} "
        f"limit={o.limit_price} replaces={o.replaces} replaced_by={o.replaced_by}"
        for o in sorted(orders, key=lambda o: o.created_at)
    )


async def assert_guarded(s: Scenario, within: float = 10.0) -> Guarded:
    """Every broker position covered by one active stop, no order twice, ledger = broker.

    Lets the broker settle (/_sim/sync) and polls for a bounded time: the guard writes its
    ledger rows right after it adopts a stop, so the invariant holds once things settle.
    """
    deadline = time.monotonic() + within
    while True:
        s.settle()
        problems, found = await _guard_problems(s)
        if not problems:
            return found
        if time.monotonic() >= deadline:
            ledger = "\n".join(
                f"  {t.id} {t.symbol} {t.status.value} qty={t.qty} stop={t.stop_order_id} "
                f"tp={t.take_profit_order_id}"
                for t in found.ledger
            )
            states = "\n".join(
                f"  {tid}: {v.status.value} stop={v.state.stop_order_id} "
                f"qty={v.state.position_qty} note={v.state.last_check_note!r} "
                f"rescue={v.state.rescue.model_dump(mode='json')}"
                for tid, v in found.views.items()
            )
            raise AssertionError(
                "not guarded:\n- "
                + "\n- ".join(problems)
                + f"\norders:\n{describe_orders(found.orders)}\nledger:\n{ledger}"
                + f"\ntrade states:\n{states}"
            )
        await asyncio.sleep(0.3)


# --- sampling the broker while a scenario runs ---------------------------------------------


@dataclass
class StopWatch:
    """Working sell stops per sample while a scenario ran (in the watched symbol)."""

    samples: list[list[BrokerOrder]] = field(default_factory=list)
    errors: int = 0

    @property
    def most(self) -> int:
        return max((len(s) for s in self.samples), default=0)

    @property
    def seen_statuses(self) -> set[tuple[str, OrderStatus]]:
        return {(o.id, o.status) for sample in self.samples for o in sample}

    def overlaps(self) -> list[list[tuple[str, str]]]:
        """Samples where more than one stop worked at once."""
        return [[(o.id, o.status.value) for o in s] for s in self.samples if len(s) > 1]


@contextlib.contextmanager
def watch_stops(s: Scenario, symbol: str = SYMBOL, every: float = 0.05) -> Iterator[StopWatch]:
    """Sample the broker's working stops in `symbol` from a thread until the block ends."""
    watch = StopWatch()
    done = threading.Event()
    trading = TradingClient(s.broker.key_id, s.broker.secret_key, url_override=s.broker.trading_url)
    request = GetOrdersRequest(status=QueryOrderStatus.ALL, nested=False, limit=500)

    def sample() -> None:
        while not done.is_set():
            try:
                orders: Any = trading.get_orders(request)
            except Exception:  # a sample lost is not a finding
                watch.errors += 1
            else:
                working = [to_order(o) for o in orders if o.symbol == symbol]
                watch.samples.append([o for o in working if is_working_stop(o)])
            done.wait(every)

    thread = threading.Thread(target=sample, name="stop-watch", daemon=True)
    thread.start()
    try:
        yield watch
    finally:
        done.set()
        thread.join(5)


# --- the fixture ---------------------------------------------------------------------------


@pytest_asyncio.fixture
async def scenario(
    client: Client,
    fresh_pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
) -> AsyncIterator[Scenario]:
    """A production worker on a fresh queue, a fresh ledger and a fresh broker account."""
    broker_admin.set_price(SYMBOL, volatility=0)
    trades = TradeHarness(client, task_queue, broker_admin, gateway, fresh_pool)
    trading = TradingClient(
        paper_broker.key_id, paper_broker.secret_key, url_override=paper_broker.trading_url
    )
    harness = Scenario(trades, paper_broker, trading)
    async with create_worker(client, fresh_pool, task_queue, activity_executor, gateway.endpoint):
        try:
            yield harness
        finally:
            if harness.control_started:
                await terminate_control(client, "test finished")
            open_ids = [t.id for t in await Trades(fresh_pool).list_open()]
            await terminate_running(
                [*trades.handles, *map(harness.handle_of, open_ids)],
                "test finished",
            )


def new_trade_id(prefix: str = "scn") -> str:
    """A fresh trade id (`<prefix>-<10 hex>`)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"
