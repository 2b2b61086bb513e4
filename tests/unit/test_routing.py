"""Routing broker facts to trade workflows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from contracts.trade import workflow_id as trade_workflow_id
from trading.broker_models import BrokerOrder, BrokerPosition
from trading.routing import (
    OpenTradeRef,
    owners_of_order,
    route_positions,
    untracked_positions,
)

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
TRADES = [
    OpenTradeRef("aapl-1", "AAPL"),
    OpenTradeRef("aapl-2", "AAPL"),
    OpenTradeRef("msft-1", "MSFT"),
]


def _order(client_order_id: str, symbol: str = "AAPL") -> BrokerOrder:
    return BrokerOrder.model_validate(
        {
            "id": "o1",
            "client_order_id": client_order_id,
            "symbol": symbol,
            "side": "sell",
            "type": "stop",
            "order_class": "simple",
            "time_in_force": "gtc",
            "status": "new",
            "qty": "5",
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def test_our_orders_go_to_their_trade_only() -> None:
    assert owners_of_order(_order("aapl-1.sl.0"), TRADES) == ["aapl-1"]


def test_legs_and_outside_orders_go_to_every_open_trade_in_the_symbol() -> None:
    leg = _order("5f0c6a8e-7b4f-4f83-9d11-3c1f0b2a9e77")
    assert owners_of_order(leg, TRADES) == ["aapl-1", "aapl-2"]
    assert owners_of_order(_order("manual-1", "TSLA"), TRADES) == []


def test_every_open_trade_hears_its_symbol_position_absent_means_flat() -> None:
    positions = [
        BrokerPosition(symbol="AAPL", qty=Decimal(7), avg_entry_price=Decimal(100)),
        BrokerPosition(symbol="SPY", qty=Decimal(1), avg_entry_price=Decimal(500)),
    ]
    routes = route_positions(positions, [_order("aapl-1.sl.0")], TRADES, NOW)
    assert [(r.trade_id, r.qty, len(r.open_orders)) for r in routes] == [
        ("aapl-1", Decimal(7), 1),
        ("aapl-2", Decimal(7), 1),
        ("msft-1", Decimal(0), 0),
    ]
    assert [p.symbol for p in untracked_positions(positions, TRADES)] == ["SPY"]
    assert trade_workflow_id("aapl-1") == "trade-aapl-1"
