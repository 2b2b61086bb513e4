"""Orders repository on real PostgreSQL: one row per client_order_id, newer state wins."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest

from ledger.orders import Orders
from ledger.trades import Trades
from tests.integration.ledger.factories import at, new_trade, stop_order
from trading.broker_models import OrderStatus
from trading.ledger_records import LedgerRecordMissing, OrderRole, UnsubmittedStatus

pytestmark = pytest.mark.integration


async def _trade_id(pool: asyncpg.Pool) -> str:
    return (await Trades(pool).create(new_trade())).trade.id


async def test_first_write_inserts_and_a_repeat_changes_nothing(pool: asyncpg.Pool) -> None:
    orders = Orders(pool)
    trade_id = await _trade_id(pool)
    planned = stop_order(trade_id)

    first = await orders.upsert(planned)
    again = await orders.upsert(planned)

    assert first.applied and not again.applied
    assert again.order == first.order
    order = first.order
    assert (order.client_order_id, order.trade_id, order.role, order.status) == (
        planned.client_order_id,
        trade_id,
        OrderRole.STOP,
        UnsubmittedStatus.PLANNED,
    )
    assert (order.qty, order.stop_price, order.filled_qty) == (
        Decimal(10),
        Decimal("95.00"),
        Decimal(0),
    )
    assert await orders.get(planned.client_order_id) == order
    count = await pool.fetchval(
        "SELECT count(*) FROM orders WHERE client_order_id = $1", planned.client_order_id
    )
    assert count == 1


async def test_broker_state_updates_and_an_older_update_never_overwrites_a_newer(
    pool: asyncpg.Pool,
) -> None:
    orders = Orders(pool)
    trade_id = await _trade_id(pool)
    planned = stop_order(trade_id)
    await orders.upsert(planned)
    accepted = planned.model_copy(
        update={
            "status": OrderStatus.NEW,
            "broker_order_id": f"b-{trade_id}",
            "submitted_at": at(1),
            "broker_updated_at": at(1),
        }
    )
    filled = accepted.model_copy(
        update={
            "status": OrderStatus.FILLED,
            "filled_qty": Decimal(10),
            "filled_avg_price": Decimal("94.98"),
            "broker_updated_at": at(50),
        }
    )

    assert (await orders.upsert(filled)).applied
    stale = await orders.upsert(accepted)  # the "new" event arrives after the fill
    replanned = await orders.upsert(planned)  # a retried pre-submission write

    assert not stale.applied and not replanned.applied
    order = replanned.order
    assert order.status is OrderStatus.FILLED
    assert (order.broker_order_id, order.filled_qty, order.filled_avg_price) == (
        f"b-{trade_id}",
        Decimal(10),
        Decimal("94.98"),
    )
    assert (order.submitted_at, order.broker_updated_at) == (at(1), at(50))


async def test_same_broker_time_is_ordered_by_fill_progress(pool: asyncpg.Pool) -> None:
    orders = Orders(pool)
    trade_id = await _trade_id(pool)
    base = stop_order(trade_id, broker_order_id=f"b-{trade_id}", broker_updated_at=at(5))
    partial = base.model_copy(
        update={
            "status": OrderStatus.PARTIALLY_FILLED,
            "filled_qty": Decimal(3),
            "filled_avg_price": Decimal("95"),
        }
    )
    accepted = base.model_copy(update={"status": OrderStatus.ACCEPTED})
    await orders.upsert(partial)
    result = await orders.upsert(accepted)
    assert not result.applied and result.order.status is OrderStatus.PARTIALLY_FILLED


async def test_orders_of_a_trade_are_listed_oldest_first(pool: asyncpg.Pool) -> None:
    orders = Orders(pool)
    trade_id = await _trade_id(pool)
    entry = stop_order(
        trade_id,
        client_order_id=f"{trade_id}-entry-1",
        role=OrderRole.ENTRY,
        side="buy",
        order_type="market",
        stop_price=None,
    )
    await orders.upsert(entry)
    await orders.upsert(stop_order(trade_id))
    await orders.upsert(stop_order(await _trade_id(pool)))  # another trade's order

    listed = await orders.of_trade(trade_id)
    assert [o.client_order_id for o in listed] == [f"{trade_id}-entry-1", f"{trade_id}-stop-1"]


async def test_an_order_for_an_unknown_trade_is_refused(pool: asyncpg.Pool) -> None:
    with pytest.raises(LedgerRecordMissing, match="no trade 'ghost-trade'"):
        await Orders(pool).upsert(stop_order("ghost-trade"))


def test_client_order_ids_are_at_most_48_characters() -> None:
    with pytest.raises(ValueError, match="48"):
        stop_order("t", client_order_id="x" * 49)
