"""TradeUpdateStream against the paper broker: OrderEvents, reconnects, refused keys, close."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from decimal import Decimal

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.broker_sync import BrokerSyncActivities
from activities.trade_link import TradeLink
from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint
from broker.errors import NON_RETRYABLE_TYPES, AuthFailed
from broker.stream import ReconnectBackoff, TradeUpdateStream
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for, free_port
from tests.integration.helpers import metered
from trading.broker_models import BrokerOrder, OrderIntent, OrderSide, OrderStatus
from trading.broker_sync_models import ListenRequest
from trading.trade_models import OrderEvent

pytestmark = pytest.mark.integration

FAST = ReconnectBackoff(first_delay_s=0.1, max_delay_s=0.5)


class Reader:
    """Reads a stream in a task and keeps every OrderEvent it yields."""

    def __init__(self, stream: TradeUpdateStream) -> None:
        self.stream = stream
        self.events: list[OrderEvent] = []
        self.task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self.stream:
            self.events.append(event)

    async def wait_for(
        self, matches: Callable[[OrderEvent], bool], within_s: float = 10
    ) -> OrderEvent:
        """The first event so far (or to come) that matches."""
        deadline = time.monotonic() + within_s
        while True:
            found = next((e for e in self.events if matches(e)), None)
            if found is not None:
                return found
            if self.task.done():
                self.task.result()
                raise AssertionError("the stream ended")
            assert time.monotonic() < deadline, f"no match; saw {[e.event for e in self.events]}"
            await asyncio.sleep(0.05)


@pytest_asyncio.fixture
async def reader(paper_broker: RunningBroker, broker_admin: AdminClient) -> AsyncIterator[Reader]:
    async with TradeUpdateStream(endpoint_for(paper_broker), backoff=FAST) as stream:
        started = Reader(stream)
        await _eventually(lambda: broker_admin.state()["stream_listening"] == 1)
        yield started
    await asyncio.wait_for(started.task, timeout=2)


async def _eventually(check: Callable[[], bool], within_s: float = 10) -> None:
    deadline = time.monotonic() + within_s
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def _buy(gateway: AlpacaGateway, symbol: str, qty: int) -> BrokerOrder:
    intent = OrderIntent(
        client_order_id=f"stream-{uuid.uuid4().hex[:12]}",
        symbol=symbol,
        qty=Decimal(qty),
        side=OrderSide.BUY,
    )
    return await asyncio.to_thread(gateway.submit_order, intent)


async def test_a_submitted_order_arrives_as_order_events(
    reader: Reader, gateway: AlpacaGateway
) -> None:
    placed = await _buy(gateway, "AAPL", 4)
    new = await reader.wait_for(lambda e: e.event == "new" and e.order.id == placed.id)
    fill = await reader.wait_for(lambda e: e.event == "fill" and e.order.id == placed.id)
    assert isinstance(new, OrderEvent) and isinstance(new.order, BrokerOrder)
    assert new.price is None and new.qty is None
    assert fill.order.client_order_id == placed.client_order_id
    assert fill.order.status is OrderStatus.FILLED
    assert fill.qty == Decimal(4) and fill.position_qty == Decimal(4)
    assert fill.price is not None and fill.price > 0
    assert reader.stream.reconnects == 0 and reader.stream.skipped == 0


async def test_a_dropped_connection_reconnects_and_later_events_arrive(
    reader: Reader, gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    assert broker_admin.drop_streams() == 1
    await _eventually(lambda: reader.stream.reconnects == 1 and reader.stream.listening)
    await _eventually(lambda: broker_admin.state()["stream_listening"] == 1)
    placed = await _buy(gateway, "KO", 2)
    fill = await reader.wait_for(lambda e: e.event == "fill" and e.order.id == placed.id)
    assert fill.qty == Decimal(2)
    assert broker_admin.state()["stream_connections"] == 1


async def test_a_second_reader_of_one_stream_is_refused(reader: Reader) -> None:
    with pytest.raises(RuntimeError, match="already has a reader"):
        await anext(reader.stream)


async def test_close_ends_iteration_promptly(reader: Reader, broker_admin: AdminClient) -> None:
    await asyncio.sleep(0.2)  # the reader is parked in recv()
    started = time.monotonic()
    await reader.stream.close()
    await asyncio.wait_for(reader.task, timeout=1.0)
    assert time.monotonic() - started < 1.0
    assert reader.events == [] or all(isinstance(e, OrderEvent) for e in reader.events)
    await _eventually(lambda: broker_admin.state()["stream_connections"] == 0, within_s=2)
    with pytest.raises(StopAsyncIteration):
        await anext(reader.stream)


async def test_close_during_backoff_ends_iteration_promptly() -> None:
    nowhere = BrokerEndpoint.for_paper_broker(
        f"http://127.0.0.1:{free_port()}", SecretStr("PKNOBODY"), SecretStr("no-secret")
    )
    slow = ReconnectBackoff(first_delay_s=20, max_delay_s=60)
    async with TradeUpdateStream(nowhere, backoff=slow) as stream:
        reader = Reader(stream)
        await asyncio.sleep(0.3)  # the first attempt is refused; the reader waits ~10-20 s
        assert not reader.task.done()
        started = time.monotonic()
    await asyncio.wait_for(reader.task, timeout=1.0)
    assert time.monotonic() - started < 1.0


async def test_a_wrong_secret_fails_with_the_non_retryable_auth_error(
    paper_broker: RunningBroker, broker_admin: AdminClient, caplog: pytest.LogCaptureFixture
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    started = time.monotonic()
    async with TradeUpdateStream(endpoint_for(paper_broker, wrong), backoff=FAST) as stream:
        with pytest.raises(AuthFailed) as refused:
            await anext(stream)
    assert time.monotonic() - started < 5  # raised at once, not retried
    assert not refused.value.retryable and "AuthFailed" in NON_RETRYABLE_TYPES
    assert logging.getLogger("websockets.client").isEnabledFor(logging.DEBUG)  # frame dumps on
    for secret in (wrong, paper_broker.key_id):
        for fragment in (secret[:12], secret[-12:]):  # websockets' frame dumps keep both ends
            assert fragment not in str(refused.value) and fragment not in caplog.text
    await _eventually(lambda: broker_admin.state()["stream_connections"] == 0, within_s=2)


async def test_the_listener_activity_fails_non_retryably_on_a_wrong_secret(
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    client: Client,
    pool: asyncpg.Pool,
) -> None:
    wrong = "wrong-" + uuid.uuid4().hex
    link = TradeLink(client, "tq-unused")
    endpoint = endpoint_for(paper_broker, wrong)
    listener = BrokerSyncActivities(metered(gateway, pool, endpoint), endpoint, link, pool)
    request = ListenRequest(listen_for=timedelta(seconds=30), heartbeat_every=timedelta(seconds=1))
    with pytest.raises(ApplicationError) as failed:
        await asyncio.wait_for(
            ActivityEnvironment().run(listener.listen_trade_updates, request), timeout=10
        )
    assert failed.value.type == AuthFailed.__name__ and failed.value.non_retryable
    assert wrong not in str(failed.value)
