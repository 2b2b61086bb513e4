"""The trade_updates listener ends promptly when cancelled, as a worker shutting down cancels it.

`dev up` promises Ctrl-C stops the whole stack within 10 s; the worker gets 5 s of that. The
listener holds the stream for 30 minutes, so it must leave as soon as it is cancelled: the
stream closed (the broker sees no listener) and nothing left running - also when it is in the
middle of forwarding an event (the broker-truth poll covers that event).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from temporalio.activity import ActivityCancellationDetails
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment

from activities.broker_sync import BrokerSyncActivities
from activities.trade_link import TradeLink
from broker.alpaca import AlpacaGateway
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for
from tests.integration.helpers import metered
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce
from trading.broker_sync_models import ListenRequest
from trading.ids import Leg, client_order_id
from trading.ledger_records import TradeCreate

pytestmark = pytest.mark.integration

PROMPT_S = 2.0  # well inside the worker's share of the 10 s stop
SHUTDOWN = ActivityCancellationDetails(worker_shutdown=True)


class _StuckLink(TradeLink):
    """A TradeLink whose signals never arrive: the forwarder stays busy with its event."""

    def __init__(self, client: Client, task_queue: str) -> None:
        super().__init__(client, task_queue)
        self.entered = asyncio.Event()

    async def signal(self, trade_id: str, message: Any, payload: Any) -> bool:
        self.entered.set()
        await asyncio.sleep(3600)
        return True


async def _eventually(check: Callable[[], bool | Awaitable[bool]], within_s: float = 20) -> None:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        answer = check()
        if answer if isinstance(answer, bool) else await answer:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"not true within {within_s} s")


def _listening(admin: AdminClient) -> int:
    return int(admin.state()["stream_listening"])


async def _cancel_and_time(env: ActivityEnvironment, listener: asyncio.Task[Any]) -> float:
    """Cancel the listener as a worker shutdown does; seconds until it has ended."""
    began = time.monotonic()
    env.cancel(SHUTDOWN)
    await asyncio.wait({listener}, timeout=30)
    elapsed = time.monotonic() - began
    print(f"listener ended {elapsed:.2f} s after cancel")
    assert listener.done()
    return elapsed


async def test_an_idle_listener_ends_at_once_when_cancelled(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    endpoint = endpoint_for(paper_broker)
    link = TradeLink(client, task_queue)
    activities = BrokerSyncActivities(metered(gateway, pool, endpoint), endpoint, link, pool)
    env = ActivityEnvironment(client)
    listen = ListenRequest(listen_for=timedelta(minutes=30))
    listener = asyncio.create_task(env.run(activities.listen_trade_updates, listen))
    await _eventually(lambda: _listening(broker_admin) == 1)

    assert await _cancel_and_time(env, listener) < PROMPT_S
    assert listener.cancelled()
    await _eventually(lambda: _listening(broker_admin) == 0, within_s=PROMPT_S)


async def test_a_listener_busy_with_an_event_ends_at_once_when_cancelled(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
) -> None:
    trade_id = f"t{uuid.uuid4().hex[:10]}"
    await Trades(pool).create(
        TradeCreate(
            trade_id=trade_id,
            symbol="MSFT",
            workflow_id=f"trade-{trade_id}",
            qty=Decimal(0),
            as_of=datetime.now(UTC),
        )
    )
    link = _StuckLink(client, task_queue)
    endpoint = endpoint_for(paper_broker)
    activities = BrokerSyncActivities(metered(gateway, pool, endpoint), endpoint, link, pool)
    env = ActivityEnvironment(client)
    listen = ListenRequest(listen_for=timedelta(minutes=30))
    listener = asyncio.create_task(env.run(activities.listen_trade_updates, listen))
    try:
        await _eventually(lambda: _listening(broker_admin) == 1)
        price = gateway.latest_quotes(["MSFT"])[0].bid
        order = OrderIntent(
            client_order_id=client_order_id(trade_id, Leg.ENTRY, 0),
            symbol="MSFT",
            qty=Decimal(1),
            side=OrderSide.BUY,
            type=OrderType.LIMIT,
            time_in_force=TimeInForce.DAY,
            limit_price=(price / 2).quantize(Decimal("0.01")),
        )
        await asyncio.to_thread(gateway.submit_order, order)
        await asyncio.wait_for(link.entered.wait(), timeout=20)  # forwarding the `new` event

        assert await _cancel_and_time(env, listener) < PROMPT_S
        await _eventually(lambda: _listening(broker_admin) == 0, within_s=PROMPT_S)
    finally:
        await asyncio.wait({listener}, timeout=30)
        await pool.execute(
            "UPDATE trades SET status = 'CLOSED', closed_at = now(), close_reason = 'GHOST' "
            "WHERE id = $1",
            trade_id,
        )
