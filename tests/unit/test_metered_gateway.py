"""MeteredGateway over a fake broker and an in-process budget: priorities, degraded reads,
requests counted as sent, a 429 that stops every later call, and the CLI's patience."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from activities.broker import as_application_error
from broker.budget import BrokerBudget
from broker.errors import BrokerError, BudgetExhausted, RateLimited
from broker.metered import MeteredGateway
from broker.rate_limits import RateLimitObserver
from trading.broker_budget import BudgetConfig, Priority
from trading.broker_models import (
    BrokerOrder,
    MarketClock,
    OrderClass,
    OrderIntent,
    OrderProbe,
    OrderSide,
    OrderStatus,
    OrderType,
    ProbeOutcome,
    TimeInForce,
)

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
SMALL = BudgetConfig(
    calls_per_min=10,
    read_reserve=4,
    trade_reserve=2,
    read_wait=timedelta(0),
    trade_wait=timedelta(0),
    protect_wait=timedelta(0),
)


class FakeBroker:
    """Answers like the gateway and reports its requests as the DeadlineAdapter would."""

    def __init__(self) -> None:
        self.rate_limits = RateLimitObserver()
        self.requests = 0
        self.limited_until: datetime | None = None
        self.remaining = 100

    def _request(self) -> None:
        self.requests += 1
        self.rate_limits.sent()
        if self.limited_until is not None and datetime.now(UTC) < self.limited_until:
            raise RateLimited("rate limit exceeded", reset_at=self.limited_until)
        self.remaining -= 1
        reset = int((datetime.now(UTC) + timedelta(seconds=30)).timestamp())
        self.rate_limits.answered(
            {"X-RateLimit-Remaining": str(self.remaining), "X-RateLimit-Reset": str(reset)}
        )

    def get_clock(self) -> MarketClock:
        self._request()
        return MarketClock(timestamp=NOW, is_open=True, next_open=NOW, next_close=NOW)

    def get_open_orders(self) -> list[BrokerOrder]:
        self._request()
        self._request()  # a second page
        return []

    def probe_order(self, order_id: str) -> OrderProbe:
        self._request()
        return OrderProbe(outcome=ProbeOutcome.ABSENT)

    def submit_order(self, intent: OrderIntent) -> BrokerOrder:
        self._request()
        return BrokerOrder(
            id=f"id-{intent.client_order_id}",
            client_order_id=intent.client_order_id,
            symbol=intent.symbol,
            side=intent.side,
            type=intent.type,
            order_class=OrderClass.SIMPLE,
            time_in_force=intent.time_in_force,
            status=OrderStatus.NEW,
            qty=intent.qty,
            stop_price=intent.stop_price,
            created_at=NOW,
            updated_at=NOW,
        )


def _metered(broker: FakeBroker, config: BudgetConfig = SMALL, **options: Any) -> MeteredGateway:
    return MeteredGateway(broker, BrokerBudget(None, "0123456789abcdef", config), **options)  # type: ignore[arg-type]


def _intent(leg: str) -> OrderIntent:
    return OrderIntent(
        client_order_id=f"aapl-1.{leg}.0",
        symbol="AAPL",
        qty=Decimal(5),
        side=OrderSide.SELL,
        type=OrderType.STOP,
        stop_price=Decimal("90.00"),
        time_in_force=TimeInForce.GTC,
    )


async def test_reads_give_way_first_then_entries_and_protective_orders_take_the_rest() -> None:
    broker = FakeBroker()
    metered = _metered(broker)
    for _ in range(6):
        await metered.get_clock()
    with pytest.raises(BudgetExhausted, match="reads leave the last 4"):
        await metered.get_clock()
    probe = await metered.probe_order("some-id")  # degraded, never "absent"
    assert probe.outcome is ProbeOutcome.UNKNOWN and "BudgetExhausted" in (probe.error or "")
    assert broker.requests == 6  # nothing refused reached the broker

    await metered.submit_order(_intent("en"))  # an entry: TRADE, up to 8
    await metered.submit_order(_intent("en"))
    with pytest.raises(BudgetExhausted, match="trades leave the last 2"):
        await metered.submit_order(_intent("en"))
    await metered.submit_order(_intent("sl"))  # the stop: PROTECT, the whole window
    await metered.submit_order(_intent("rs"))
    with pytest.raises(BudgetExhausted):
        await metered.submit_order(_intent("rs"))

    used = (await metered.budget.view()).used_by_priority
    assert (used.read, used.trade, used.protect) == (6, 2, 2)


async def test_requests_beyond_the_slots_taken_are_counted_too() -> None:
    broker = FakeBroker()
    metered = _metered(broker)
    await metered.get_open_orders()  # one slot taken, two requests sent
    view = await metered.budget.view()
    assert view.used_last_60s == 2 == broker.requests
    assert view.broker_remaining == 98  # the broker's own count, passed on


async def test_a_429_stops_every_later_call_until_the_reset() -> None:
    broker = FakeBroker()
    metered = _metered(broker)
    broker.limited_until = datetime.now(UTC) + timedelta(seconds=20)
    with pytest.raises(RateLimited):
        await metered.get_clock()
    with pytest.raises(BudgetExhausted) as refused:
        await metered.submit_order(_intent("sl"))  # even a protective order waits
    assert refused.value.broker_limited
    assert timedelta(seconds=18) < refused.value.retry_after <= timedelta(seconds=20)
    assert broker.requests == 1  # no hammering
    view = await metered.budget.view()
    assert view.blocked_until is not None and "429" in (view.blocked_reason or "")


async def test_the_brokers_count_at_zero_stops_calls_before_any_429() -> None:
    broker = FakeBroker()
    broker.remaining = 1
    metered = _metered(broker)
    await metered.get_clock()  # the broker says: 0 left until the reset
    with pytest.raises(BudgetExhausted, match="X-RateLimit-Remaining reached 0"):
        await metered.get_clock()
    assert broker.requests == 1


async def test_with_patience_a_limit_is_waited_out_and_told_once() -> None:
    broker = FakeBroker()
    broker.limited_until = datetime.now(UTC) + timedelta(milliseconds=600)
    waits: list[tuple[str, float]] = []

    def on_wait(exc: BrokerError, wait_s: float) -> None:
        waits.append((type(exc).__name__, wait_s))

    patient = BudgetConfig(calls_per_min=10, read_reserve=4, trade_reserve=2)
    metered = _metered(broker, patient, patience=timedelta(seconds=5), on_wait=on_wait)
    clock = await metered.get_clock()
    assert clock.is_open and broker.requests == 2  # the 429, then the call after the reset
    assert waits and waits[0][0] == "RateLimited" and 0 < waits[0][1] <= 1.6

    broker.limited_until = datetime.now(UTC) + timedelta(seconds=60)
    with pytest.raises(RateLimited):  # longer than the patience: fails at once
        await metered.get_clock()


async def test_a_budget_without_postgresql_counts_in_process_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="broker.budget")
    budget = BrokerBudget(None, "0123456789abcdef", SMALL)
    await budget.acquire(Priority.PROTECT, "submit_order")
    assert not (await budget.view()).shared
    assert [r.getMessage() for r in caplog.records if "in this process only" in r.getMessage()]


def test_a_refused_call_is_retried_when_its_slot_frees() -> None:
    failure = as_application_error(
        BudgetExhausted("get_positions not sent", retry_after=timedelta(seconds=12))
    )
    assert failure.type == "BudgetExhausted" and not failure.non_retryable
    assert failure.next_retry_delay == timedelta(seconds=12)
