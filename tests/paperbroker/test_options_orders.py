"""Option orders through alpaca-py: single-leg, mleg all-or-none, positions, buying power, expiry.

The broker's manual clock starts at SESSION_START (Tuesday 2024-03-05, 10:30 New York);
the contracts below expire on Friday 2024-03-08 (close 16:00 New York = 21:00 UTC).
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    OrderClass,
    OrderSide,
    OrderStatus,
    PositionIntent,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
)

from paperbroker.admin_client import AdminClient
from paperbroker.testing import StreamRecorder

LONG_PUT = "SPY240308P00500000"
SHORT_PUT = "SPY240308P00510000"
SHORT_CALL = "SPY240308C00530000"
LONG_CALL = "SPY240308C00535000"
AT_THE_MONEY_CALL = "SPY240308C00520000"
AFTER_EXPIRY_CLOSE = datetime(2024, 3, 8, 21, 5, tzinfo=UTC)
WIDTH_COST = Decimal(1000)  # the wider (put) wing: 510 - 500 = 10 points x 100


def iron_condor(qty: int, limit: float) -> LimitOrderRequest:
    """An iron condor 500/510 puts, 530/535 calls at a net limit (negative: credit)."""
    legs = [
        OptionLegRequest(symbol=LONG_PUT, ratio_qty=1, side=OrderSide.BUY),
        OptionLegRequest(symbol=SHORT_PUT, ratio_qty=1, side=OrderSide.SELL),
        OptionLegRequest(symbol=SHORT_CALL, ratio_qty=1, side=OrderSide.SELL),
        OptionLegRequest(symbol=LONG_CALL, ratio_qty=1, side=OrderSide.BUY),
    ]
    return LimitOrderRequest(
        qty=qty,
        order_class=OrderClass.MLEG,
        legs=legs,
        limit_price=limit,
        time_in_force=TimeInForce.DAY,
    )


def positions_by_symbol(trading: TradingClient) -> dict[str, Decimal]:
    """Every position's signed qty by symbol."""
    found = {}
    for position in trading.get_all_positions():
        signed = Decimal(position.qty)
        found[position.symbol] = signed
    return found


def options_buying_power(trading: TradingClient) -> Decimal:
    """The account's options_buying_power."""
    return Decimal(str(trading.get_account().options_buying_power))


def test_single_leg_market_order_fills_and_is_a_us_option_position(
    trading: TradingClient, sim: AdminClient
) -> None:
    cash_before = Decimal(str(trading.get_account().cash))
    order = trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL,
            qty=2,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            position_intent=PositionIntent.BUY_TO_OPEN,
        )
    )
    sim.sync()
    filled = trading.get_order_by_id(order.id)
    assert filled.status is OrderStatus.FILLED
    assert filled.asset_class is AssetClass.US_OPTION
    assert filled.position_intent is PositionIntent.BUY_TO_OPEN
    price = Decimal(str(filled.filled_avg_price))
    position = trading.get_open_position(AT_THE_MONEY_CALL)
    assert position.asset_class is AssetClass.US_OPTION
    assert Decimal(position.qty) == 2
    current = Decimal(str(position.current_price))
    assert Decimal(str(position.market_value)) == pytest.approx(
        2 * current * 100, abs=Decimal("0.01")
    )
    assert Decimal(str(trading.get_account().cash)) == cash_before - 2 * price * 100


def test_single_leg_limit_below_the_ask_waits_then_cancels(
    trading: TradingClient, sim: AdminClient
) -> None:
    order = trading.submit_order(
        LimitOrderRequest(
            symbol=AT_THE_MONEY_CALL,
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.DAY,
            limit_price=0.05,
        )
    )
    sim.sync()
    assert trading.get_order_by_id(order.id).status is OrderStatus.NEW
    assert AT_THE_MONEY_CALL not in positions_by_symbol(trading)
    trading.cancel_order_by_id(order.id)
    sim.sync()
    assert trading.get_order_by_id(order.id).status is OrderStatus.CANCELED


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_in_force": "gtc"}, "DAY"),
        ({"qty": "1.5"}, "whole number"),
        ({"type": "stop", "stop_price": "1"}, "market or limit"),
        ({"extended_hours": True, "type": "limit", "limit_price": "1"}, "extended hours"),
    ],
)
def test_single_leg_requests_alpaca_refuses(
    trading: TradingClient, change: dict[str, object], message: str
) -> None:
    body: dict[str, object] = {
        "symbol": AT_THE_MONEY_CALL,
        "qty": "1",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
        **change,
    }
    with pytest.raises(APIError) as refused:
        trading.post("/orders", body)
    assert refused.value.status_code == 422
    assert message in str(refused.value)


def test_naked_short_call_is_refused(trading: TradingClient) -> None:
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=SHORT_CALL, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
    assert refused.value.status_code == 403
    assert "uncovered" in str(refused.value)


def test_sell_to_close_without_a_position_is_refused(trading: TradingClient) -> None:
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol=LONG_CALL,
                qty=1,
                side=OrderSide.SELL,
                time_in_force=TimeInForce.DAY,
                position_intent=PositionIntent.SELL_TO_CLOSE,
            )
        )
    assert refused.value.status_code == 403
    assert "insufficient qty" in str(refused.value)


def test_invalid_mleg_leg_is_refused(trading: TradingClient) -> None:
    body = {
        "order_class": "mleg",
        "qty": "1",
        "type": "limit",
        "limit_price": "1",
        "time_in_force": "day",
        "legs": [
            {"symbol": LONG_PUT, "ratio_qty": "2", "side": "buy"},
            {"symbol": SHORT_PUT, "ratio_qty": "4", "side": "sell"},
        ],
    }
    with pytest.raises(APIError) as refused:
        trading.post("/orders", body)
    assert refused.value.status_code == 422
    assert "simplest form" in str(refused.value)


def test_iron_condor_that_cannot_fill_stays_open_with_no_leg_filled(
    trading: TradingClient, sim: AdminClient
) -> None:
    order = trading.submit_order(iron_condor(1, limit=-9.50))  # asks a 9.50 credit
    sim.sync()
    sim.advance(600)
    nested = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert [o.id for o in nested] == [order.id]
    parent = nested[0]
    assert parent.order_class is OrderClass.MLEG
    assert parent.status is OrderStatus.NEW
    assert parent.legs is not None and len(parent.legs) == 4
    assert {leg.symbol for leg in parent.legs} == {LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL}
    assert all(Decimal(str(leg.filled_qty)) == 0 for leg in parent.legs)
    assert all(Decimal(str(leg.ratio_qty)) == 1 for leg in parent.legs)
    assert positions_by_symbol(trading) == {}


def test_iron_condor_at_a_marketable_limit_fills_all_four_legs(
    trading: TradingClient, sim: AdminClient
) -> None:
    cash_before = Decimal(str(trading.get_account().cash))
    order = trading.submit_order(iron_condor(2, limit=1.00))  # pays up to a 1.00 debit
    sim.sync()
    parent = trading.get_order_by_id(order.id, GetOrderByIdRequest(nested=True))
    assert parent.status is OrderStatus.FILLED
    assert parent.legs is not None
    assert all(leg.status is OrderStatus.FILLED for leg in parent.legs)
    assert positions_by_symbol(trading) == {
        LONG_PUT: 2,
        SHORT_PUT: -2,
        SHORT_CALL: -2,
        LONG_CALL: 2,
    }
    net = Decimal(str(parent.filled_avg_price))
    assert net <= Decimal("1.00")
    assert Decimal(str(trading.get_account().cash)) == cash_before - net * 2 * 100


def test_defined_risk_spread_holds_back_its_wider_wing_and_short_legs(
    trading: TradingClient, sim: AdminClient
) -> None:
    before = options_buying_power(trading)
    trading.submit_order(iron_condor(1, limit=1.00))
    sim.sync()
    short_legs = sum(
        -Decimal(str(trading.get_open_position(s).market_value)) for s in (SHORT_PUT, SHORT_CALL)
    )
    # The condor's wider wing (10 points x 100) plus its short legs' market value; its net price
    # gives nothing back (options_margin.py, held_back).
    assert options_buying_power(trading) == before - (WIDTH_COST + short_legs)


def test_spread_beyond_options_buying_power_is_refused(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.reset(cash=500)
    with pytest.raises(APIError) as refused:
        trading.submit_order(iron_condor(1, limit=-0.50))
    assert refused.value.status_code == 403
    assert "insufficient options buying power" in str(refused.value)


def test_expiry_exercises_long_itm_assigns_short_itm_and_otm_expire(
    trading: TradingClient, sim: AdminClient
) -> None:
    trading.submit_order(iron_condor(1, limit=1.00))
    sim.sync()
    sim.set_price("SPY", price=540, volatility=0)  # calls in the money, puts out
    cash_before = Decimal(str(trading.get_account().cash))
    sim.set_clock(AFTER_EXPIRY_CLOSE)
    held = positions_by_symbol(trading)
    assert not any(symbol.startswith("SPY2") for symbol in held)
    # Long 535 call exercised (+100 at 535), short 530 call assigned (-100 at 530).
    assert "SPY" not in held
    cash_after = Decimal(str(trading.get_account().cash))
    assert cash_after == cash_before - 535 * 100 + 530 * 100


def test_expiry_assignment_leaves_a_stock_position(
    trading: TradingClient, sim: AdminClient
) -> None:
    sim.reset(cash=100_000)
    trading.submit_order(
        MarketOrderRequest(
            symbol=SHORT_PUT, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
        )
    )  # cash-secured put (level 1)
    trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    sim.set_price("SPY", price=505, volatility=0)
    sim.set_clock(AFTER_EXPIRY_CLOSE)
    held = positions_by_symbol(trading)
    assert held == {"SPY": Decimal(100)}  # assigned 100 at 510; the 520 call expired
    position = trading.get_open_position("SPY")
    assert Decimal(str(position.avg_entry_price)) == 510


def test_exercise_by_request_turns_a_long_call_into_shares(
    trading: TradingClient, sim: AdminClient
) -> None:
    trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    cash_before = Decimal(str(trading.get_account().cash))
    trading.exercise_options_position(AT_THE_MONEY_CALL)
    held = positions_by_symbol(trading)
    assert held == {"SPY": Decimal(100)}
    assert Decimal(str(trading.get_account().cash)) == cash_before - 520 * 100


def test_unlisted_contract_is_refused(trading: TradingClient) -> None:
    with pytest.raises(APIError) as refused:
        trading.submit_order(
            MarketOrderRequest(
                symbol="SPY240308C00523170",
                qty=1,
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
            )
        )
    assert refused.value.status_code == 422
    assert "not found" in str(refused.value)


def test_exercise_by_contract_id(trading: TradingClient, sim: AdminClient) -> None:
    trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    contract_id = trading.get_open_position(AT_THE_MONEY_CALL).asset_id
    trading.exercise_options_position(contract_id)
    assert positions_by_symbol(trading) == {"SPY": Decimal(100)}


def test_exercise_of_a_missing_position_is_404(trading: TradingClient) -> None:
    with pytest.raises(APIError) as refused:
        trading.exercise_options_position(AT_THE_MONEY_CALL)
    assert refused.value.status_code == 404


def test_mleg_fill_streams_each_leg_then_the_parent_and_expiry_streams_nothing(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    order = trading.submit_order(iron_condor(1, limit=1.00))
    parent = stream.wait_for(lambda u: u.event == "fill" and u.order.id == order.id)
    assert parent.order.order_class is OrderClass.MLEG
    leg_fills = [u for u in stream.seen if u.event == "fill" and u.order.id != order.id]
    assert {u.order.symbol for u in leg_fills} == {LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL}
    assert {u.order.asset_class for u in leg_fills} == {AssetClass.US_OPTION}
    sim.set_price("SPY", price=540, volatility=0)
    seen = len(stream.drain())
    sim.set_clock(AFTER_EXPIRY_CLOSE)
    assert len(stream.drain()) == seen  # exercise/assignment are non-trade activities
    assert not any(s.startswith("SPY2") for s in positions_by_symbol(trading))


def test_missing_option_position_is_404(trading: TradingClient) -> None:
    with pytest.raises(APIError) as refused:
        trading.get_open_position(AT_THE_MONEY_CALL)
    assert refused.value.status_code == 404
