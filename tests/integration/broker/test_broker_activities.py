"""Broker activities through a real Temporal worker: retries, deadlines, typed failures, once."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from pydantic import BaseModel
from temporalio import workflow
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle
from temporalio.exceptions import ActivityError, ApplicationError
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities
from broker.alpaca import AlpacaGateway
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import endpoint_for
from trading.broker_models import OrderIntent, OrderSide, OrderType, TimeInForce

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from workflows.policies import BROKER_READ, BROKER_SUBMIT

pytestmark = pytest.mark.integration


class CallRequest(BaseModel):
    """Which broker activity to run (test-only workflow input)."""

    call: str
    intent: OrderIntent | None = None


class CallOutcome(BaseModel):
    """What the activity returned, or how it failed."""

    ok: bool
    result: dict[str, Any] | None = None
    failure_type: str | None = None
    message: str | None = None
    non_retryable: bool | None = None


@workflow.defn(sandboxed=False)
class BrokerCallWorkflow:
    """Runs one broker activity with the production policy and reports the outcome."""

    @workflow.run
    async def run(self, request: CallRequest) -> CallOutcome:
        try:
            if request.call == "submit_order":
                assert request.intent is not None
                order = await workflow.execute_activity_method(
                    BrokerActivities.submit_order,
                    request.intent,
                    start_to_close_timeout=BROKER_SUBMIT.start_to_close,
                    retry_policy=BROKER_SUBMIT.retry,
                )
                return CallOutcome(ok=True, result=order.model_dump(mode="json"))
            if request.call == "get_broker_truth":
                truth = await workflow.execute_activity_method(
                    BrokerActivities.get_broker_truth,
                    start_to_close_timeout=BROKER_READ.start_to_close,
                    retry_policy=BROKER_READ.retry,
                )
                return CallOutcome(ok=True, result=truth.model_dump(mode="json"))
            account = await workflow.execute_activity_method(
                BrokerActivities.get_account,
                start_to_close_timeout=BROKER_READ.start_to_close,
                retry_policy=BROKER_READ.retry,
            )
            return CallOutcome(ok=True, result=account.model_dump(mode="json"))
        except ActivityError as err:
            cause = err.cause
            assert isinstance(cause, ApplicationError)
            return CallOutcome(
                ok=False,
                failure_type=cause.type,
                message=cause.message,
                non_retryable=cause.non_retryable,
            )


@dataclass
class Harness:
    client: Client
    task_queue: str
    admin: AdminClient

    async def run(self, request: CallRequest) -> tuple[CallOutcome, WorkflowHandle[Any, Any]]:
        handle = await self.client.start_workflow(
            BrokerCallWorkflow.run,
            request,
            id=f"broker-call-{uuid.uuid4().hex[:8]}",
            task_queue=self.task_queue,
        )
        return await handle.result(), handle


@pytest_asyncio.fixture
async def harness(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    paper_broker: RunningBroker,
    broker_admin: AdminClient,
) -> AsyncIterator[Harness]:
    # A short HTTP read deadline keeps the hang test quick; the policies are production ones.
    gateway = AlpacaGateway(endpoint_for(paper_broker), read_timeout_s=1.0)
    combined = Worker(
        client,
        task_queue=task_queue,
        workflows=[BrokerCallWorkflow],
        activities=build_activities(
            ActivityDeps(pool, gateway, client, gateway.endpoint, task_queue)
        ),
        activity_executor=activity_executor,
    )
    async with combined:
        yield Harness(client, task_queue, broker_admin)


async def _last_attempt(handle: WorkflowHandle[Any, Any]) -> int:
    attempts = [
        event.activity_task_started_event_attributes.attempt
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ]
    return attempts[-1]


def _intent(qty: int, side: OrderSide, **fields: Any) -> OrderIntent:
    return OrderIntent(
        client_order_id=f"t{uuid.uuid4().hex[:10]}.en.0",
        symbol="AAPL",
        qty=Decimal(qty),
        side=side,
        **fields,
    )


async def test_transient_5xx_is_retried_until_it_succeeds(harness: Harness) -> None:
    harness.admin.add_fault(method="GET", path="/v2/account", status=500, times=2)
    outcome, handle = await harness.run(CallRequest(call="get_account"))
    assert outcome.ok and outcome.result is not None and Decimal(outcome.result["equity"]) > 0
    assert await _last_attempt(handle) == 3


@pytest.mark.slow
async def test_persistent_5xx_ends_in_a_typed_failure_after_bounded_retries(
    harness: Harness,
) -> None:
    harness.admin.add_fault(method="GET", path="/v2/account", status=503)
    outcome, handle = await harness.run(CallRequest(call="get_account"))
    assert not outcome.ok and outcome.failure_type == "BrokerUnavailable"
    assert await _last_attempt(handle) == BROKER_READ.retry.maximum_attempts


@pytest.mark.slow
async def test_a_hanging_broker_ends_in_a_typed_failure_within_the_deadline(
    harness: Harness,
) -> None:
    harness.admin.add_fault(method="GET", path="/v2/account", hang=True, hang_seconds=30)
    outcome, handle = await harness.run(CallRequest(call="get_account"))
    assert not outcome.ok and outcome.failure_type == "BrokerUnavailable"
    assert "timed out" in (outcome.message or "")
    assert await _last_attempt(handle) == BROKER_READ.retry.maximum_attempts


async def test_rejections_are_not_retried_and_keep_alpacas_message(harness: Harness) -> None:
    # 5 shares held, all reserved by a protective stop: a second sell must be refused.
    harness.admin.open_position("AAPL", 5)
    stop = _intent(
        5,
        OrderSide.SELL,
        type=OrderType.STOP,
        stop_price=Decimal("1.00"),
        time_in_force=TimeInForce.GTC,
    )
    placed, _ = await harness.run(CallRequest(call="submit_order", intent=stop))
    assert placed.ok
    outcome, handle = await harness.run(
        CallRequest(call="submit_order", intent=_intent(5, OrderSide.SELL))
    )
    assert not outcome.ok and outcome.failure_type == "InsufficientQty"
    assert outcome.non_retryable and "insufficient qty available" in (outcome.message or "")
    assert await _last_attempt(handle) == 1

    outcome, handle = await harness.run(
        CallRequest(
            call="submit_order",
            intent=_intent(1, OrderSide.BUY, type=OrderType.LIMIT, limit_price=Decimal("100.123")),
        )
    )
    assert not outcome.ok and outcome.failure_type == "InvalidPrice"
    assert "sub-penny" in (outcome.message or "")
    assert await _last_attempt(handle) == 1


async def test_accept_then_504_places_exactly_one_order(harness: Harness) -> None:
    harness.admin.add_fault(method="POST", path="/v2/orders", status=504, after=True, times=1)
    intent = _intent(1, OrderSide.BUY, type=OrderType.LIMIT, limit_price=Decimal("1.00"))
    outcome, _ = await harness.run(CallRequest(call="submit_order", intent=intent))
    assert outcome.ok and outcome.result is not None
    assert harness.admin.faults() == []  # the 504 was served
    truth, _ = await harness.run(CallRequest(call="get_broker_truth"))
    assert truth.result is not None
    ours = [
        o for o in truth.result["open_orders"] if o["client_order_id"] == intent.client_order_id
    ]
    assert [o["id"] for o in ours] == [outcome.result["id"]]


async def test_no_secret_in_history_results_or_logs(
    harness: Harness, paper_broker: RunningBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    handles = []
    for request in (
        CallRequest(call="get_account"),
        CallRequest(call="get_broker_truth"),
        CallRequest(call="submit_order", intent=_intent(1, OrderSide.BUY)),
        CallRequest(  # a rejection, so failures are covered too
            call="submit_order",
            intent=_intent(1, OrderSide.BUY, type=OrderType.LIMIT, limit_price=Decimal("1.001")),
        ),
    ):
        outcome, handle = await harness.run(request)
        handles.append((outcome, handle))
    secrets = (paper_broker.key_id, paper_broker.secret_key)
    for outcome, handle in handles:
        history = await handle.fetch_history()
        text = json.dumps(history.to_json_dict()) + outcome.model_dump_json()
        for secret in secrets:
            assert secret not in text
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "submit" in logged  # the logs were captured
    for secret in secrets:
        assert secret not in logged


async def test_a_429_storm_waits_for_the_reset_then_succeeds(harness: Harness) -> None:
    # Three requests per 5 s window. Two calls use two of them; the truth snapshot needs
    # three, so it meets a 429 and must wait for the window's reset to succeed.
    harness.admin.configure(rate_limit=3, rate_window_s=5)
    try:
        for _ in range(2):
            warmup, _ = await harness.run(CallRequest(call="get_account"))
            assert warmup.ok
        outcome, handle = await harness.run(CallRequest(call="get_broker_truth"))
    finally:
        harness.admin.configure(rate_limit=0, rate_window_s=60)
    assert outcome.ok
    started = [
        event
        async for event in handle.fetch_history_events()
        if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
    ][-1]
    attributes = started.activity_task_started_event_attributes
    assert attributes.attempt >= 2
    failure = attributes.last_failure
    assert failure.application_failure_info.type == "RateLimited"
    details = harness.client.data_converter.payload_converter.from_payloads(
        failure.application_failure_info.details.payloads
    )[0]
    reset_at = datetime.fromisoformat(details["reset_at"])
    # The successful attempt started only after the broker's X-RateLimit-Reset.
    assert started.event_time.ToDatetime(tzinfo=UTC) >= reset_at - timedelta(seconds=1)
