"""The add-on's pure rules: who may add, its client_order_id, its order, its cost, the average."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from trading.broker_models import OrderClass, OrderSide, OrderType, TimeInForce
from trading.ids import MAX_CLIENT_ORDER_ID, Leg, parse_client_order_id
from trading.ledger_records import TradeStatus
from trading.trade_logic import (
    ADD_ON_FIRST_ATTEMPT,
    add_on_client_order_id,
    add_on_intent,
    add_on_refusal,
    add_on_too_large,
    average_entry,
)
from trading.trade_models import AddOn

TRADE = "aapl-20240305-153000-abc123"


def test_only_an_open_internal_trade_without_an_exit_takes_an_add_on() -> None:
    five = Decimal(5)
    assert add_on_refusal(TradeStatus.OPEN, False, False, five) is None
    assert add_on_refusal(TradeStatus.OPEN, False, True, five) == (
        "cannot add to an external position"
    )
    assert add_on_refusal(TradeStatus.OPEN, True, False, five) == (
        "cannot add to a trade with an exit planned"
    )
    for status in TradeStatus:
        if status is not TradeStatus.OPEN:
            refusal = add_on_refusal(status, False, False, five)
            assert refusal == f"cannot add to a trade in {status.value}"


@pytest.mark.parametrize("qty", ["0", "-1", "1.5", "NaN"])
def test_an_add_on_buys_whole_shares_above_zero(qty: str) -> None:
    refusal = add_on_refusal(TradeStatus.OPEN, False, False, Decimal(qty))
    assert refusal is not None and "whole number" in refusal
    with pytest.raises(ValidationError):
        AddOn(qty=Decimal(qty), signal_key="k")


@given(st.text(min_size=1, max_size=200))
def test_the_client_order_id_is_stable_ours_and_short(signal_key: str) -> None:
    cid = add_on_client_order_id(TRADE, signal_key, set())
    assert cid == add_on_client_order_id(TRADE, signal_key, set())
    assert len(cid) <= MAX_CLIENT_ORDER_ID
    parsed = parse_client_order_id(cid)
    assert parsed is not None and parsed[0] == TRADE and parsed[1] is Leg.ENTRY
    assert parsed[2] >= ADD_ON_FIRST_ATTEMPT  # never the entry's own id


def test_a_taken_id_moves_to_the_next_free_one() -> None:
    first = add_on_client_order_id(TRADE, "sig-a", set())
    second = add_on_client_order_id(TRADE, "sig-b", {first})
    assert second != first
    # Another key that lands on a taken attempt gets a different, still deterministic id.
    moved = add_on_client_order_id(TRADE, "sig-a", {first})
    assert moved != first and moved == add_on_client_order_id(TRADE, "sig-a", {first})


def test_the_add_on_is_a_day_market_buy_oto_with_the_trades_stop() -> None:
    intent = add_on_intent(f"{TRADE}.en.12345", "AAPL", Decimal(5), Decimal("180.50"))
    assert intent.side is OrderSide.BUY and intent.type is OrderType.MARKET
    assert intent.order_class is OrderClass.OTO and intent.time_in_force is TimeInForce.DAY
    assert intent.stop_loss_stop_price == Decimal("180.50")
    assert intent.take_profit_limit_price is None and intent.qty == 5


def test_max_notional_bounds_the_cost_at_the_ask() -> None:
    assert add_on_too_large(Decimal(5), Decimal(100), None) is None
    assert add_on_too_large(Decimal(5), Decimal(100), Decimal(500)) is None
    too_large = add_on_too_large(Decimal(5), Decimal("100.01"), Decimal(500))
    assert too_large is not None and "above max_notional" in too_large
    assert add_on_too_large(Decimal(5), None, Decimal(500)) is not None


def test_the_average_entry_weighs_both_fills() -> None:
    assert average_entry(Decimal(10), Decimal(100), Decimal(5), Decimal(106)) == Decimal(102)
    assert average_entry(Decimal(3), Decimal(10), Decimal(1), Decimal(11)) == Decimal("10.25")
    assert average_entry(Decimal(0), None, Decimal(5), Decimal(106)) == Decimal(106)


@given(
    st.integers(1, 10_000),
    st.decimals("0.01", "5000", places=2),
    st.integers(1, 10_000),
    st.decimals("0.01", "5000", places=2),
)
def test_the_average_lies_between_the_two_prices(
    qty: int, price: Decimal, added: int, added_price: Decimal
) -> None:
    average = average_entry(Decimal(qty), price, Decimal(added), added_price)
    assert min(price, added_price) <= average <= max(price, added_price)
