"""TradeWorkflow against the paper broker: entry, the stop invariant, rescue, tighten, exits."""

from __future__ import annotations

import asyncio
import logging
import time
from decimal import Decimal
from typing import Any

import pytest
from alpaca.trading.client import TradingClient
from temporalio.client import WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from tests.integration.trade.conftest import SYMBOL, TradeHarness
from trading.broker_models import OrderStatus as BrokerStatus
from trading.broker_models import OrderType
from trading.ledger_records import CloseReason, ExitUrgency, OrderRole, TradeStatus
from trading.trade_models import ForceExit, TightenStop, TradeResult
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration
logger = logging.getLogger("tests.trade")


async def test_entry_opens_with_an_active_stop_at_the_broker(trades: TradeHarness) -> None:
    handle, view = await trades.open_trade()
    spec_stop = view.state.stop_price
    assert view.state.stop_order_id is not None
    stop = trades.gateway.get_order(view.state.stop_order_id)
    assert stop.is_active and stop.type is OrderType.STOP and stop.qty == Decimal(10)
    assert stop.stop_price == spec_stop
    row = await trades.settled(
        lambda: trades.trade_row(view.trade_id), lambda r: r.stop_order_id == stop.id
    )
    assert row.status is TradeStatus.OPEN
    assert row.entry_price is not None and row.qty == 10
    position = trades.gateway.probe_position(SYMBOL).position
    assert position is not None and position.qty == Decimal(10)
    roles = [order.role for order in await trades.orders(view.trade_id)]
    assert roles == [OrderRole.ENTRY]
    described = await handle.describe()
    assert described.typed_search_attributes is not None


async def test_a_stop_cancelled_outside_is_replaced_by_a_new_active_stop(
    trades: TradeHarness,
) -> None:
    handle, view = await trades.open_trade()
    original = view.state.stop_order_id
    assert original is not None
    trades.admin.cancel_order(original)
    started = time.monotonic()
    rescued = await trades.wait_for(
        handle, lambda v: v.state.stop_order_id != original and v.state.rescue.ok == 1
    )
    logger.info("stop rescue latency %.2f s (self-check timer only)", time.monotonic() - started)
    assert rescued.state.stop_order_id is not None
    stop = trades.gateway.get_order(rescued.state.stop_order_id)
    assert stop.is_active and stop.qty == Decimal(10) and stop.type is OrderType.STOP
    assert stop.client_order_id == f"{view.trade_id}.rs.0"
    assert trades.gateway.get_order(original).status is BrokerStatus.CANCELED
    row = await trades.settled(
        lambda: trades.trade_row(view.trade_id), lambda r: r.stop_order_id == stop.id
    )
    assert row.status is TradeStatus.OPEN
    events = await trades.settled(
        lambda: trades.risk_events(view.trade_id),
        lambda found: any(e.kind == "stop_rescued" for e in found),
    )
    assert [e.kind for e in events].count("stop_rescued") == 1


async def test_a_failing_rescue_keeps_the_trade_records_telemetry_and_retries(
    trades: TradeHarness,
) -> None:
    handle, view = await trades.open_trade()
    original = view.state.stop_order_id
    assert original is not None
    # Two 5xx answers (both activity attempts of the first rescue), then one 403.
    trades.admin.add_fault(method="POST", path="/v2/orders", status=503, times=2)
    trades.admin.add_fault(method="POST", path="/v2/orders", status=403, times=1)
    trades.admin.cancel_order(original)
    failed = await trades.wait_for(handle, lambda v: v.state.rescue.failed >= 1)
    assert failed.state.stop_order_id == original and failed.status is TradeStatus.OPEN
    assert failed.state.rescue.last_status == "failed"
    assert failed.state.rescue.last_error and "BrokerUnavailable" in failed.state.rescue.last_error
    row = await trades.trade_row(view.trade_id)
    assert row.stop_order_id == original and row.status is TradeStatus.OPEN
    rescued = await trades.wait_for(handle, lambda v: v.state.rescue.ok == 1, within=45)
    telemetry = rescued.state.rescue
    assert telemetry.failed == 2 and telemetry.attempted == 3
    assert telemetry.consecutive_failures == 0 and telemetry.last_error is None
    assert rescued.state.stop_order_id is not None
    assert trades.gateway.get_order(rescued.state.stop_order_id).is_active
    events = await trades.settled(
        lambda: trades.risk_events(view.trade_id),
        lambda found: any(e.kind == "stop_rescued" for e in found),
    )
    kinds = [event.kind for event in events]
    assert kinds.count("stop_rescue_failed") == 2 and kinds.count("stop_rescued") == 1


async def _closed(handle: object) -> TradeResult:
    result = await handle.result()  # type: ignore[attr-defined]
    assert isinstance(result, TradeResult)
    return result


async def test_immediate_force_exit_closes_with_one_exit_order_and_a_measured_gap(
    trades: TradeHarness,
) -> None:
    handle, view = await trades.open_trade()
    await handle.signal(
        TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="test")
    )
    result = await _closed(handle)
    assert result.status is TradeStatus.CLOSED and result.close_reason is CloseReason.FORCE_EXIT
    final = await handle.query(TradeWorkflow.status)
    assert final.state.exit is not None and final.state.exit.gap_ms is not None
    logger.info("immediate exit unprotected gap: %s ms", final.state.exit.gap_ms)
    row = await trades.trade_row(view.trade_id)
    assert row.status is TradeStatus.CLOSED and row.close_reason is CloseReason.FORCE_EXIT
    assert row.exit_price is not None and row.realized_pnl is not None
    exits = [o for o in await trades.orders(view.trade_id) if o.role is OrderRole.EXIT]
    assert len(exits) == 1
    assert trades.gateway.probe_position(SYMBOL).position is None


async def test_a_double_force_exit_converges_to_one_close(trades: TradeHarness) -> None:
    handle, view = await trades.open_trade()
    for reason in ("first", "second"):
        await handle.signal(
            TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason=reason)
        )
    result = await _closed(handle)
    assert result.close_reason is CloseReason.FORCE_EXIT
    exits = [o for o in await trades.orders(view.trade_id) if o.role is OrderRole.EXIT]
    assert [o.client_order_id for o in exits] == [f"{view.trade_id}.ex.0"]
    row = await trades.trade_row(view.trade_id)
    assert row.status is TradeStatus.CLOSED


async def test_tighten_refuses_a_looser_stop_and_moves_a_tighter_one_at_the_broker(
    trades: TradeHarness,
) -> None:
    handle, view = await trades.open_trade()
    current = view.state.stop_price
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await handle.execute_update(
            TradeWorkflow.tighten_stop, TightenStop(price=current - Decimal(1))
        )
    cause = refused.value.cause
    assert isinstance(cause, ApplicationError) and "only moves up" in cause.message
    tighter = current + Decimal("1.005")
    result = await handle.execute_update(TradeWorkflow.tighten_stop, TightenStop(price=tighter))
    assert result.stop_price == current + Decimal("1.00")
    moved = trades.gateway.get_order(result.stop_order_id)
    assert moved.is_active and moved.stop_price == result.stop_price and moved.qty == 10
    # The entry is an OTO: Alpaca does not replace an OTO's legs, so the old stop was cancelled
    # (confirmed) and a new one placed in its place - one stop working, never two.
    assert view.state.stop_order_id is not None
    old = trades.gateway.get_order(view.state.stop_order_id)
    assert old.status is BrokerStatus.CANCELED and "cancel and place" in result.note
    stops = [o for o in trades.gateway.get_open_orders() if o.type is OrderType.STOP]
    assert [o.id for o in stops] == [moved.id]
    row = await trades.trade_row(view.trade_id)
    assert row.stop_price == result.stop_price and row.stop_order_id == moved.id


async def test_a_position_closed_outside_ends_the_trade_as_external_close(
    trades: TradeHarness,
) -> None:
    handle, view = await trades.open_trade()
    trades.admin.close_position(SYMBOL)
    result = await _closed(handle)
    assert result.close_reason is CloseReason.EXTERNAL_CLOSE
    row = await trades.trade_row(view.trade_id)
    assert row.status is TradeStatus.CLOSED and row.close_reason is CloseReason.EXTERNAL_CLOSE
    assert view.state.stop_order_id is not None
    assert not trades.gateway.get_order(view.state.stop_order_id).is_active  # no stray stop


async def test_a_stop_triggered_by_price_closes_as_stop_filled(trades: TradeHarness) -> None:
    handle, view = await trades.open_trade()
    trades.admin.set_price(SYMBOL, view.state.stop_price - Decimal(2))
    result = await _closed(handle)
    assert result.close_reason is CloseReason.STOP_FILLED
    assert result.exit_price is not None and result.realized_pnl is not None
    assert result.realized_pnl < 0
    row = await trades.trade_row(view.trade_id)
    assert row.status is TradeStatus.CLOSED and row.close_reason is CloseReason.STOP_FILLED


async def test_a_stop_that_filled_after_the_position_was_read_is_not_rescued(
    trades: TradeHarness,
) -> None:
    """The guard reads the position, then its stop: a stop that filled in between shows FILLED
    beside a position read before the fill. A rescue sized on that read would place a sell
    stop for shares no longer held (a short once triggered); the guard reads the position
    again instead and closes the trade as stopped out."""
    handle, view = await trades.open_trade()
    endpoint = trades.gateway.endpoint
    raw = TradingClient(
        endpoint.key_id.get_secret_value(),
        endpoint.secret_key.get_secret_value(),
        paper=True,
        raw_data=True,
        url_override=endpoint.trading_url,
    )
    held: Any = raw.get_open_position(SYMBOL)
    trades.admin.set_price(SYMBOL, view.state.stop_price - Decimal(2))  # the stop fills
    # The guard's next position read answers as before the fill (the read that raced it).
    trades.admin.add_fault(
        method="GET", path=f"/v2/positions/{SYMBOL}", status=200, body=held, times=1
    )
    result = await asyncio.wait_for(_closed(handle), timeout=30)
    assert result.close_reason is CloseReason.STOP_FILLED
    final = await handle.query(TradeWorkflow.status)
    assert final.state.rescue.attempted == 0
    assert not [o for o in trades.gateway.get_open_orders() if o.symbol == SYMBOL]
    assert trades.gateway.probe_position(SYMBOL).position is None
