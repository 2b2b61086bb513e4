"""Option trade harness: the production worker, the paper broker's options through alpaca-py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest_asyncio
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from broker.alpaca import AlpacaGateway
from broker.option_orders import OptionOrdersGateway
from contracts.option_trade import workflow_id
from paperbroker.admin_client import AdminClient
from tests.integration.helpers import poll_until
from trading.options.chain import OptionContractQuote, parse_occ_symbol
from trading.options.condor import CondorPlan
from trading.options.exits import CondorExitRules
from trading.options.trade_models import (
    OptionMarks,
    OptionTradeInput,
    OptionTradeSpec,
    OptionTradeView,
)
from worker import create_worker
from workflows.option_trade import OptionTradeWorkflow

UNDERLYING = "SPY"
# Listed SPY contracts at the test session (Tuesday 2024-03-05): Friday's weekly expiry.
LONG_PUT = "SPY240308P00500000"
SHORT_PUT = "SPY240308P00510000"
SHORT_CALL = "SPY240308C00530000"
LONG_CALL = "SPY240308C00535000"
OPTION_CALLS = (
    "probe_option_order",
    "submit_mleg_order",
    "get_option_order",
    "cancel_option_order",
    "option_marks",
)


def contract_quote(symbol: str, marks: OptionMarks) -> OptionContractQuote:
    """A leg for the plan from the broker's latest quote."""
    occ = parse_occ_symbol(symbol)
    quote = next(q for q in marks.quotes if q.symbol == symbol)
    return OptionContractQuote(
        symbol=symbol,
        underlying=occ.underlying,
        expiry=occ.expiry,
        right=occ.right,
        strike=occ.strike,
        bid=quote.bid,
        ask=quote.ask,
    )


def condor_plan(marks: OptionMarks) -> CondorPlan:
    """The 500/510 put, 530/535 call condor of Friday's weekly, priced at the broker's quotes."""
    return condor_plan_for(marks, WEEKLY)


@dataclass
class OptionHarness:
    """Starts option trades on a running worker; reads the broker through alpaca-py."""

    client: Client
    task_queue: str
    admin: AdminClient
    options: OptionOrdersGateway
    trading: TradingClient
    pool: asyncpg.Pool
    handles: list[WorkflowHandle[Any, Any]] = field(default_factory=list)

    def spec(self, **fields: Any) -> OptionTradeSpec:
        """A 1-lot condor asking the mid credit, walking to the natural in 5 c steps."""
        marks = self.options.latest_quotes([LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL])
        plan = condor_plan(marks)
        credit = plan.credit_mid.quantize(Decimal("0.01"))
        base: dict[str, Any] = {
            "trade_id": f"ic-{uuid.uuid4().hex[:10]}",
            "plan": plan,
            "qty": 1,
            "limit_credit": credit,
            "walk_step": Decimal("0.05"),
            "max_walk": max(credit - plan.credit_natural, Decimal(0)) + Decimal("0.05"),
            "entry_wait": timedelta(seconds=1),
            "rules": CondorExitRules(close_at_dte=0),
            "check_interval": timedelta(seconds=1),
        }
        base.update(fields)
        return OptionTradeSpec(**base)

    async def start(self, spec: OptionTradeSpec) -> WorkflowHandle[Any, Any]:
        """Start the option trade's workflow."""
        handle = await self.client.start_workflow(
            OptionTradeWorkflow.run,
            OptionTradeInput(spec=spec),
            id=workflow_id(spec.trade_id),
            task_queue=self.task_queue,
        )
        self.handles.append(handle)
        return handle

    async def wait_for(
        self,
        handle: WorkflowHandle[Any, Any],
        predicate: Callable[[OptionTradeView], bool],
        within: float = 30.0,
    ) -> OptionTradeView:
        """Poll STATUS until the predicate holds."""
        return await poll_until(lambda: handle.query(OptionTradeWorkflow.status), predicate, within)

    def option_positions(self) -> dict[str, Decimal]:
        """Signed qty of every option position at the broker."""
        return {
            p.symbol: Decimal(p.qty)  # negative for a short
            for p in self.trading.get_all_positions()
            if p.asset_class is AssetClass.US_OPTION
        }

    def mleg_orders(self, trade_id: str) -> list[Any]:
        """This trade's parent mleg orders at the broker, every status."""
        orders = self.trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.ALL, limit=500))
        return [
            o
            for o in orders
            if o.client_order_id.startswith(f"{trade_id}-") and str(o.order_class.value) == "mleg"
        ]

    async def budget_spent(self) -> set[tuple[str, str]]:
        """(call, priority) of every option call the shared broker budget recorded."""
        rows = await self.pool.fetch(
            "SELECT DISTINCT call, priority FROM broker_calls WHERE call = ANY($1::text[])",
            list(OPTION_CALLS),
        )
        return {(row["call"], row["priority"]) for row in rows}


@pytest_asyncio.fixture
async def option_trades(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> AsyncIterator[OptionHarness]:
    """A production worker on a fresh queue; running option trades are terminated after."""
    endpoint = gateway.endpoint
    trading = TradingClient(
        endpoint.key_id.get_secret_value(),
        endpoint.secret_key.get_secret_value(),
        paper=True,
        url_override=endpoint.trading_url,
    )
    harness = OptionHarness(
        client, task_queue, broker_admin, OptionOrdersGateway(endpoint), trading, pool
    )
    async with create_worker(client, pool, task_queue, activity_executor, endpoint):
        try:
            yield harness
        finally:
            for handle in harness.handles:
                if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")


@dataclass(frozen=True)
class CondorLegs:
    """The four OCC symbols of an iron condor: the wings and the shorts."""

    long_put: str
    short_put: str
    short_call: str
    long_call: str

    @property
    def symbols(self) -> list[str]:
        """Long put, short put, short call, long call."""
        return [self.long_put, self.short_put, self.short_call, self.long_call]


WEEKLY = CondorLegs(LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL)
# The same strikes on the April monthly (Friday 2024-04-19, 45 days after the session): listed
# at the test clock and far enough out that a days-to-expiry threshold lies ahead of it.
MONTHLY = CondorLegs(
    "SPY240419P00500000", "SPY240419P00510000", "SPY240419C00530000", "SPY240419C00535000"
)


def condor_plan_for(marks: OptionMarks, legs: CondorLegs) -> CondorPlan:
    """A 1-lot plan of these legs priced at the broker's quotes (width: the wider wing)."""
    lp, sp = contract_quote(legs.long_put, marks), contract_quote(legs.short_put, marks)
    sc, lc = contract_quote(legs.short_call, marks), contract_quote(legs.long_call, marks)
    mid = sp.mid + sc.mid - lp.mid - lc.mid
    natural = sp.bid + sc.bid - lp.ask - lc.ask
    width = max(sp.strike - lp.strike, lc.strike - sc.strike)
    return CondorPlan(
        underlying=UNDERLYING,
        expiry=sp.expiry,
        dte=(sp.expiry - marks.session_date).days,
        qty=1,
        width=width,
        short_put=sp,
        long_put=lp,
        short_call=sc,
        long_call=lc,
        credit_mid=mid,
        credit_natural=natural,
        credit=mid * 100,
        credit_natural_usd=natural * 100,
        max_loss=width * 100 - mid * 100,
        max_loss_natural=width * 100 - natural * 100,
        credit_to_width=mid / width,
        break_even_low=sp.strike - mid,
        break_even_high=sc.strike + mid,
        probability_of_profit=Decimal("0.5"),
        probability_of_max_loss=Decimal("0.1"),
        detail=f"test condor {legs.short_put}/{legs.short_call}",
    )


def marketable_spec(harness: OptionHarness, legs: CondorLegs, **fields: Any) -> OptionTradeSpec:
    """A 1-lot condor of these legs asking the natural credit (fills at once, no walk)."""
    plan = condor_plan_for(harness.options.latest_quotes(legs.symbols), legs)
    base: dict[str, Any] = {
        "plan": plan,
        "limit_credit": plan.credit_natural,
        "max_walk": Decimal(0),
    }
    base.update(fields)
    return harness.spec(**base)


def option_harness(
    client: Client, task_queue: str, admin: AdminClient, gateway: AlpacaGateway, pool: asyncpg.Pool
) -> OptionHarness:
    """An OptionHarness on this client and queue, for tests that run their own workers."""
    endpoint = gateway.endpoint
    trading = TradingClient(
        endpoint.key_id.get_secret_value(),
        endpoint.secret_key.get_secret_value(),
        paper=True,
        url_override=endpoint.trading_url,
    )
    return OptionHarness(client, task_queue, admin, OptionOrdersGateway(endpoint), trading, pool)
