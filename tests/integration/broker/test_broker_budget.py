"""The broker-call budget with real parts: one window in PostgreSQL shared by two "processes"
(each its own alpaca-py session and budget instance), priorities at the paper broker, a 429
that every caller waits out, a budget that lost its database, and the CLI meeting a 429."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from broker.alpaca import AlpacaGateway
from broker.budget import BrokerBudget
from broker.errors import BudgetExhausted, RateLimited
from broker.metered import MeteredGateway
from cli.broker_calls import EXIT_RATE_LIMITED
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.conftest import endpoint_for, open_pool
from tests.integration.cli_helpers import run_cli, stack_env
from trading.broker_budget import BudgetConfig
from trading.broker_models import (
    OrderIntent,
    OrderSide,
    OrderType,
    ProbeOutcome,
    TimeInForce,
)
from trading.ops_status import OpsStatus

pytestmark = pytest.mark.integration

NO_WAIT = timedelta(0)
# 10 calls a minute: reads stop at 4 left, entries at 2, protective orders may use all 10.
TIGHT = BudgetConfig(
    calls_per_min=10,
    read_reserve=4,
    trade_reserve=2,
    read_wait=NO_WAIT,
    trade_wait=NO_WAIT,
    protect_wait=NO_WAIT,
)


def _process(
    pool: asyncpg.Pool, broker: RunningBroker, account: str, config: BudgetConfig, **options: Any
) -> MeteredGateway:
    """What one worker or CLI process holds: its own alpaca-py session and budget instance."""
    gateway = AlpacaGateway(endpoint_for(broker))
    return MeteredGateway(gateway, BrokerBudget(pool, account, config), **options)


@pytest.fixture
def account() -> str:
    """A budget of this test's own (the digest a real key would have)."""
    return uuid.uuid4().hex[:16]


@pytest.fixture
def rate_limited(broker_admin: AdminClient) -> Iterator[AdminClient]:
    """The paper broker's admin; its rate limit is switched off again after the test."""
    try:
        yield broker_admin
    finally:
        broker_admin.configure(rate_limit=0, rate_window_s=60)


def _spent_outside_the_budget(
    admin: AdminClient, gateway: AlpacaGateway, limit: int, window_s: float
) -> None:
    """The broker allows `limit` requests per `window_s`; another program on the key uses them."""
    admin.configure(rate_limit=limit, rate_window_s=window_s)
    for _ in range(limit):
        gateway.get_clock()


def _order(symbol: str, leg: str, **fields: Any) -> OrderIntent:
    return OrderIntent(client_order_id=f"t{uuid.uuid4().hex[:10]}.{leg}.0", symbol=symbol, **fields)


def _stop(symbol: str, leg: str = "sl") -> OrderIntent:
    """A protective GTC stop for 5 shares, far below the market."""
    stop = {"type": OrderType.STOP, "stop_price": Decimal("1.00"), "time_in_force": TimeInForce.GTC}
    return _order(symbol, leg, qty=Decimal(5), side=OrderSide.SELL, **stop)


def _entry(symbol: str) -> OrderIntent:
    """A one-share limit buy far below the market (it stays working)."""
    limit = {"type": OrderType.LIMIT, "limit_price": Decimal("1.00")}
    return _order(symbol, "en", qty=Decimal(1), side=OrderSide.BUY, **limit)


async def test_two_processes_share_one_window(
    pool: asyncpg.Pool, paper_broker: RunningBroker, broker_admin: AdminClient, account: str
) -> None:
    first = _process(pool, paper_broker, account, TIGHT)
    second = _process(pool, paper_broker, account, TIGHT)
    broker_admin.reset_requests()
    for _ in range(3):
        await first.get_clock()
        await second.get_clock()
    # Six reads between them leave the 4 kept for orders: neither process may read on,
    # though each made only three (private buckets would have allowed each six).
    for process in (first, second):
        with pytest.raises(BudgetExhausted, match="6 of 10"):
            await process.get_positions()
    assert broker_admin.requests()["total"] == 6  # the refused reads never reached the broker
    view = await second.budget.view()
    assert view.shared and view.used_by_priority.read == 6 and view.remaining == 4


async def test_a_nearly_spent_window_degrades_reads_and_still_places_the_stop(
    pool: asyncpg.Pool,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    account: str,
) -> None:
    broker_admin.open_position("AAPL", 5)
    broker_admin.open_position("MSFT", 5)
    reader = _process(pool, paper_broker, account, TIGHT)
    guard = _process(pool, paper_broker, account, TIGHT)
    for _ in range(6):
        await reader.get_clock()

    with pytest.raises(BudgetExhausted):
        await reader.get_positions()  # callers degrade to their last snapshot
    probe = await reader.probe_position("AAPL")
    assert probe.outcome is ProbeOutcome.UNKNOWN  # unknown, never absent

    stop = await guard.submit_order(_stop("AAPL"))  # PROTECT: 7 of 10
    await guard.submit_order(_entry("KO"))  # TRADE: 8 of 10, the last an entry may take
    with pytest.raises(BudgetExhausted, match="trades leave the last 2"):
        await guard.submit_order(_entry("KO"))
    rescue = await guard.submit_order(_stop("MSFT", leg="rs"))  # PROTECT: 9 of 10

    for placed in (stop, rescue):  # the stops are working at the broker
        assert gateway.get_order(placed.id).is_active
    used = (await guard.budget.view()).used_by_priority
    assert (used.read, used.trade, used.protect) == (6, 1, 2)


async def test_after_a_429_every_process_waits_for_the_reset(
    pool: asyncpg.Pool,
    paper_broker: RunningBroker,
    rate_limited: AdminClient,
    gateway: AlpacaGateway,
    account: str,
) -> None:
    rate_limited.open_position("AAPL", 5)
    _spent_outside_the_budget(rate_limited, gateway, limit=3, window_s=4)
    first = _process(pool, paper_broker, account, BudgetConfig())
    with pytest.raises(RateLimited) as hit:
        await first.get_clock()
    reset_at = hit.value.reset_at
    assert reset_at is not None

    patient_guard = BudgetConfig(read_wait=NO_WAIT, protect_wait=timedelta(seconds=10))
    second = _process(pool, paper_broker, account, patient_guard)
    before = rate_limited.requests()["total"]
    with pytest.raises(BudgetExhausted) as refused:
        await second.get_positions()  # a read does not wait this long: it degrades
    assert refused.value.broker_limited
    assert rate_limited.requests()["total"] == before  # nobody hammers the broker

    stop = await second.submit_order(_stop("AAPL"))  # a protective order waits for the reset
    assert datetime.now(UTC) >= reset_at - timedelta(milliseconds=50)
    assert rate_limited.requests()["total"] == before + 1  # one request: the submit
    assert gateway.get_order(stop.id).is_active


async def test_a_budget_that_lost_its_database_counts_in_process_and_places_the_stop(
    database_url: str,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    account: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="broker.budget")
    broker_admin.open_position("AAPL", 5)
    async with open_pool(database_url) as lost:
        guard = _process(lost, paper_broker, account, TIGHT)
    # The pool is closed now: PostgreSQL is out of reach for this budget.
    stop = await guard.submit_order(_stop("AAPL"))
    await guard.get_clock()
    assert gateway.get_order(stop.id).is_active
    view = await guard.budget.view()
    assert not view.shared and view.used_last_60s == 2
    said = [r for r in caplog.records if "in this process only" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.WARNING


@pytest.fixture
async def cli_account(pool: asyncpg.Pool) -> None:
    """The CLI budgets under the paper broker's real key: start each CLI test with none spent."""
    await pool.execute("TRUNCATE broker_calls, broker_budget")


@pytest.mark.usefixtures("cli_account")
async def test_a_cli_read_that_meets_a_429_waits_for_the_reset_and_says_so(
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
    rate_limited: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    _spent_outside_the_budget(rate_limited, gateway, limit=4, window_s=5)
    env = stack_env(settings, paper_broker, database_url)
    done = await asyncio.to_thread(run_cli, "status", "--json", env=env)
    assert done.returncode == 0, done.stdout + done.stderr
    status = OpsStatus.model_validate_json(done.stdout)  # --json stays valid
    assert status.broker.connected
    assert status.budget is not None and status.budget.shared
    assert status.budget.used_by_priority.read >= 4  # the snapshot and the clock
    assert status.budget.broker_limit == 4
    waits = [line for line in done.stderr.splitlines() if "waiting" in line]
    assert len(waits) == 1, done.stderr
    assert waits[0].startswith("broker rate limit reached; waiting ")
    assert waits[0].endswith(" s for the reset (Ctrl-C to stop)")


@pytest.mark.usefixtures("cli_account")
async def test_a_cli_command_still_limited_after_its_wait_fails_and_says_when_to_retry(
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
    rate_limited: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    _spent_outside_the_budget(rate_limited, gateway, limit=2, window_s=60)
    env = stack_env(settings, paper_broker, database_url, BROKER_CLI_WAIT_S="1")
    done = await asyncio.to_thread(
        run_cli, "trade", "open", "AAPL", "--qty", "1", "--stop", "1.00", env=env
    )
    assert done.returncode == EXIT_RATE_LIMITED, done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: broker rate limit: not over within")
    assert "BROKER_CLI_WAIT_S=1" in lines[0] and "try again in" in lines[0]
    assert "Traceback" not in done.stderr and done.stdout == ""
