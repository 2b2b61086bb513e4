"""Protection at the edges: a fill nobody owns, and a dead stop across a broker outage.

Both run the production worker with BrokerSync listening (no reconcile, no AutoManage): what
guards the position can only be the stream listener and the trades themselves.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest

from broker.alpaca import AlpacaGateway
from contracts import trade as trade_contract
from ledger.trades import Trades
from paperbroker.admin_client import AdminClient
from tests.integration.trade.conftest import Synced
from trading.broker_models import OrderIntent, OrderSide
from trading.ledger_records import ExitUrgency, TradeOrigin, TradeRecord
from trading.trade_models import ForceExit, TradeStatusView

pytestmark = pytest.mark.integration


async def _adopted(synced: Synced, symbol: str, within_s: float = 15) -> TradeRecord:
    trades = Trades(synced.harness.pool)
    for _ in range(int(within_s * 10)):
        found = [t for t in await trades.list_open(symbol) if t.origin is TradeOrigin.EXTERNAL]
        if found:
            return found[0]
        await asyncio.sleep(0.1)
    raise AssertionError(f"no guard adopted {symbol} within {within_s}s")


async def test_a_fill_nobody_owns_is_guarded_from_the_stream(
    synced: Synced, broker_admin: AdminClient, gateway: AlpacaGateway
) -> None:
    symbol = "PEP"
    broker_admin.set_price(symbol, volatility=0)
    manual = OrderIntent(
        client_order_id=f"by-hand-{uuid.uuid4().hex[:8]}",
        symbol=symbol,
        qty=Decimal(7),
        side=OrderSide.BUY,
    )
    gateway.submit_order(manual)  # another client of the same account, as a person would

    adopted = await _adopted(synced, symbol)
    handle = synced.harness.client.get_workflow_handle(trade_contract.workflow_id(adopted.id))
    synced.harness.handles.append(handle)
    view = await synced.harness.wait_for(
        handle, lambda v: v.status == "OPEN" and v.state.stop_order_id is not None
    )
    stop = gateway.get_order(view.state.stop_order_id or "")
    assert stop.is_active and stop.symbol == symbol and stop.qty == Decimal(7)
    assert stop.side is OrderSide.SELL


async def test_a_stop_that_died_in_an_outage_is_replaced_when_the_broker_answers_not_after_backoff(
    synced: Synced, broker_admin: AdminClient
) -> None:
    harness = synced.harness
    handle, view = await harness.open_trade(
        check_interval=timedelta(seconds=60),
        rescue_backoff_initial=timedelta(seconds=30),
        rescue_backoff_max=timedelta(minutes=5),
    )
    await harness.wait_for(handle, lambda v: v.state.snapshot_checks >= 1)
    old_stop = view.state.stop_order_id or ""
    outage = broker_admin.add_fault(path="/v2/*", status=503, body={"message": "down"})
    broker_admin.cancel_order(old_stop)  # the stream still reports it; REST answers 503
    failed = await harness.wait_for(handle, lambda v: v.state.rescue.failed >= 1)
    backoff_until = failed.state.rescue.next_at
    assert backoff_until is not None and failed.state.rescue.last_failure_kind is not None
    await asyncio.sleep(2)  # the outage goes on a little: BrokerSync's polls fail meanwhile
    broker_admin.remove_fault(outage)

    rescued: TradeStatusView = await harness.wait_for(
        handle, lambda v: v.state.rescue.ok >= 1, within=20
    )
    landed_at: datetime | None = rescued.state.rescue.last_at
    assert landed_at is not None and landed_at < backoff_until  # backoff cut short
    assert rescued.state.stop_order_id not in (None, old_stop)

    # Close it, so its history (quiet guard, outage, rescue, exit) is a replayable record.
    await handle.signal(
        trade_contract.FORCE_EXIT.name, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="test done")
    )
    closed = await harness.wait_for(handle, lambda v: v.status == "CLOSED")
    assert closed.state.close_reason is not None
