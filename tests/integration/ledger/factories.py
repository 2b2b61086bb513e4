"""Builders for ledger commands with unique ids, so tests sharing a database never collide."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from trading.broker_models import OrderSide, OrderType
from trading.ledger_records import OrderRole, OrderUpsert, TradeCreate, UnsubmittedStatus

T0 = datetime(2025, 3, 3, 14, 30, tzinfo=UTC)


def at(seconds: float) -> datetime:
    """A fixed instant `seconds` after T0."""
    return T0 + timedelta(seconds=seconds)


def uid(prefix: str) -> str:
    """A short unique id with a readable prefix."""
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def new_trade(trade_id: str | None = None, **overrides: Any) -> TradeCreate:
    """A PENDING_ENTRY long AAPL trade."""
    trade_id = trade_id or uid("t")
    fields: dict[str, Any] = {
        "trade_id": trade_id,
        "symbol": "AAPL",
        "workflow_id": f"trade-{trade_id}",
        "as_of": at(0),
    }
    return TradeCreate(**fields | overrides)


def stop_order(
    trade_id: str | None, client_order_id: str | None = None, **overrides: Any
) -> OrderUpsert:
    """A sell stop order for 10 shares of AAPL at 95.00, not yet submitted."""
    fields: dict[str, Any] = {
        "client_order_id": client_order_id or f"{trade_id or uid('o')}-stop-1",
        "trade_id": trade_id,
        "role": OrderRole.STOP,
        "symbol": "AAPL",
        "side": OrderSide.SELL,
        "order_type": OrderType.STOP,
        "qty": Decimal(10),
        "stop_price": Decimal("95.00"),
        "status": UnsubmittedStatus.PLANNED,
    }
    return OrderUpsert(**fields | overrides)
