"""Properties of the ledger's idempotent writes, against real PostgreSQL.

For any history of order or trade events, applying them in any order and with any
duplication leaves one row, in the same state as applying each once in order.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import asyncpg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger.orders import Orders
from ledger.trades import Trades
from tests.integration.ledger.factories import at, new_trade, stop_order
from trading.broker_models import OrderStatus
from trading.ledger_records import (
    TRANSITION_TARGETS,
    CloseReason,
    ExitIntent,
    ExitUrgency,
    LedgerOrderStatus,
    OrderUpsert,
    TradeClose,
    TradeEntryFill,
    TradeExitIntent,
    TradeProtection,
    TradeRecord,
    TradeStatus,
    TradeTransition,
    UnsubmittedStatus,
    order_status_rank,
)

pytestmark = pytest.mark.integration

PROPERTY_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

# --- orders ----------------------------------------------------------------------------


@dataclass(frozen=True)
class BrokerUpdate:
    """One broker view of an order, before it is bound to a client_order_id."""

    second: int | None  # broker updated_at as seconds after T0; None: planned, not submitted
    status: LedgerOrderStatus
    filled: int

    def key(self) -> tuple[int, int, int, str]:
        """The order the ledger sorts updates by (mirrors the SQL guard)."""
        second = -1 if self.second is None else self.second
        return (second, self.filled, order_status_rank(self.status), self.status.value)

    def bind(self, client_order_id: str) -> OrderUpsert:
        """The upsert command for this update of `client_order_id`."""
        submitted = self.second is not None
        return stop_order(
            None,
            client_order_id=client_order_id,
            status=self.status,
            broker_order_id=f"b-{client_order_id}" if submitted else None,
            filled_qty=Decimal(self.filled),
            # Cumulative fills: the same filled quantity always has the same average price.
            filled_avg_price=Decimal(95) + Decimal(self.filled) / 100 if self.filled else None,
            submitted_at=at(0) if submitted else None,
            broker_updated_at=at(self.second) if self.second is not None else None,
        )


@st.composite
def order_histories(draw: st.DrawFn) -> list[BrokerUpdate]:
    """A planned write plus broker updates; time and filled qty never go backwards."""
    count = draw(st.integers(1, 6))
    seconds = sorted(draw(st.lists(st.integers(1, 4), min_size=count, max_size=count)))
    filled = sorted(draw(st.lists(st.integers(0, 10), min_size=count, max_size=count)))
    updates = [
        BrokerUpdate(second, draw(st.sampled_from(OrderStatus)), qty)
        for second, qty in zip(seconds, filled, strict=True)
    ]
    unique = {u.key(): u for u in [BrokerUpdate(None, UnsubmittedStatus.PLANNED, 0), *updates]}
    return list(unique.values())


@st.composite
def arrivals(draw: st.DrawFn, history_size: int) -> list[int]:
    """Indexes into a history: each event at least once, in any order, some repeated."""
    repeats = draw(st.lists(st.integers(0, history_size - 1), max_size=history_size))
    return draw(st.permutations(list(range(history_size)) + repeats))


def _order_state(order: Any) -> dict[str, Any]:
    return {
        "status": order.status,
        "filled_qty": order.filled_qty,
        "filled_avg_price": order.filled_avg_price,
        "broker_updated_at": order.broker_updated_at,
        "submitted_at": order.submitted_at,
        "has_broker_id": order.broker_order_id is not None,
        "terms": (order.role, order.side, order.order_type, order.qty, order.stop_price),
    }


@PROPERTY_SETTINGS
@given(data=st.data(), history=order_histories())
async def test_order_updates_converge_in_any_order(
    pool: asyncpg.Pool, data: st.DataObject, history: list[BrokerUpdate]
) -> None:
    orders = Orders(pool)
    shuffled_id, in_order_id = f"p-{uuid.uuid4().hex[:16]}", f"q-{uuid.uuid4().hex[:16]}"
    order_of_arrival = data.draw(arrivals(len(history)), label="arrival")

    for index in order_of_arrival:
        await orders.upsert(history[index].bind(shuffled_id))
    for update in sorted(history, key=BrokerUpdate.key):
        await orders.upsert(update.bind(in_order_id))

    shuffled, in_order = await orders.get(shuffled_id), await orders.get(in_order_id)
    assert shuffled is not None and in_order is not None
    assert _order_state(shuffled) == _order_state(in_order)
    newest = max(history, key=BrokerUpdate.key)
    assert shuffled.status is newest.status
    assert shuffled.filled_qty == newest.filled
    rows = await pool.fetchval(
        "SELECT count(*) FROM orders WHERE client_order_id = $1", shuffled_id
    )
    assert rows == 1


# --- trades ----------------------------------------------------------------------------

TradeEvent = TradeEntryFill | TradeTransition | TradeProtection | TradeExitIntent | TradeClose


def _retarget(event: TradeEvent, trade_id: str) -> TradeEvent:
    return event.model_copy(update={"trade_id": trade_id})


@st.composite
def trade_histories(draw: st.DrawFn) -> list[TradeEvent]:
    """Fills, transitions, protections, exit intents and at most one close, for trade 'x'."""
    times = iter(draw(st.lists(st.integers(1, 10_000), min_size=16, max_size=16, unique=True)))
    events: list[TradeEvent] = []
    fills = sorted(draw(st.sets(st.integers(1, 100), max_size=3)))
    for qty in fills:
        events.append(
            TradeEntryFill(
                trade_id="x",
                qty=Decimal(qty),
                avg_price=Decimal(100) + Decimal(qty) / 1000,
                filled_at=at(next(times)),
            )
        )
    for status in draw(st.lists(st.sampled_from(sorted(TRANSITION_TARGETS)), max_size=4)):
        events.append(TradeTransition(trade_id="x", status=status, as_of=at(next(times))))
    for n in range(draw(st.integers(0, 3))):
        events.append(
            TradeProtection(
                trade_id="x",
                stop_price=Decimal(90 + n),
                stop_order_id=f"stop-{n}",
                as_of=at(next(times)),
            )
        )
    for n in range(draw(st.integers(0, 2))):
        intent = ExitIntent(urgency=ExitUrgency.NEXT_OPEN, reason=f"review {n}")
        withdrawn = draw(st.booleans())
        events.append(
            TradeExitIntent(
                trade_id="x", exit_intent=None if withdrawn else intent, as_of=at(next(times))
            )
        )
    if draw(st.booleans()):
        events.append(
            TradeClose(
                trade_id="x",
                close_reason=draw(st.sampled_from(list(CloseReason))),
                exit_price=Decimal("101.5"),
                realized_pnl=Decimal("-12.34"),
                closed_at=at(next(times)),
            )
        )
    return events


async def _apply(trades: Trades, event: TradeEvent) -> None:
    if isinstance(event, TradeEntryFill):
        await trades.record_entry_fill(event)
    elif isinstance(event, TradeTransition):
        await trades.transition(event)
    elif isinstance(event, TradeProtection):
        await trades.record_protection(event)
    elif isinstance(event, TradeExitIntent):
        await trades.record_exit_intent(event)
    else:
        await trades.close(event)


def _trade_state(trade: TradeRecord) -> dict[str, Any]:
    return trade.model_dump(exclude={"id", "workflow_id", "created_at", "updated_at"})


def _event_time(event: TradeEvent) -> Any:
    if isinstance(event, TradeEntryFill):
        return event.filled_at
    if isinstance(event, TradeClose):
        return event.closed_at
    return event.as_of


@PROPERTY_SETTINGS
@given(data=st.data(), history=trade_histories())
async def test_trade_events_converge_in_any_order(
    pool: asyncpg.Pool, data: st.DataObject, history: list[TradeEvent]
) -> None:
    trades = Trades(pool)
    shuffled_id, in_order_id = f"p-{uuid.uuid4().hex[:12]}", f"q-{uuid.uuid4().hex[:12]}"
    order_of_arrival = data.draw(arrivals(len(history)), label="arrival") if history else []
    # The trade is always created first (its workflow creates it before anything else);
    # a retried create can land at any time after.
    for trade_id in (shuffled_id, in_order_id):
        await trades.create(new_trade(trade_id))
    for index in order_of_arrival:
        await _apply(trades, _retarget(history[index], shuffled_id))
        if data.draw(st.booleans(), label="retried create"):
            await trades.create(new_trade(shuffled_id))
    for event in sorted(history, key=_event_time):
        await _apply(trades, _retarget(event, in_order_id))

    shuffled, in_order = await trades.get(shuffled_id), await trades.get(in_order_id)
    assert shuffled is not None and in_order is not None
    assert _trade_state(shuffled) == _trade_state(in_order)

    closes = [e for e in history if isinstance(e, TradeClose)]
    if closes:
        assert shuffled.status.is_terminal and shuffled.close_reason is closes[0].close_reason
        assert shuffled.closed_at == closes[0].closed_at
    else:
        moves = [e for e in history if isinstance(e, TradeTransition)]
        newest = max(moves, key=lambda e: e.as_of).status if moves else TradeStatus.PENDING_ENTRY
        assert shuffled.status is newest and not shuffled.is_closed
    fills = [e for e in history if isinstance(e, TradeEntryFill)]
    assert shuffled.qty == max((f.qty for f in fills), default=Decimal(0))
    assert shuffled.opened_at == min((f.filled_at for f in fills), default=None)
    rows = await pool.fetchval("SELECT count(*) FROM trades WHERE id = $1", shuffled_id)
    assert rows == 1
