"""A test partially fills an option order through `/_sim/orders/{id}/fill` with a qty.

Alpaca's orders may fill partially (status ``partially_filled``, ``filled_qty`` so far) and a
cancel keeps the filled part (``canceled`` with its ``filled_qty``). Orders and positions are
read through alpaca-py; the iron condor is the one of test_options_orders.py.
"""

from __future__ import annotations

from decimal import Decimal

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.models import Order, TradeAccount
from alpaca.trading.requests import GetOrderByIdRequest, LimitOrderRequest

from paperbroker.admin_client import AdminClient
from paperbroker.testing import StreamRecorder
from tests.paperbroker.test_options_orders import (
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    WIDTH_COST,
    iron_condor,
    options_buying_power,
    positions_by_symbol,
)

CREDIT = Decimal("-9.50")  # asks a 9.50 credit: never marketable on its own


def cash(trading: TradingClient) -> Decimal:
    """The account's cash."""
    account = trading.get_account()
    assert isinstance(account, TradeAccount)
    return Decimal(str(account.cash))


def submit(trading: TradingClient, request: LimitOrderRequest) -> str:
    """Submit an order and return its id."""
    order = trading.submit_order(request)
    assert isinstance(order, Order)
    return str(order.id)


def nested(trading: TradingClient, order_id: str) -> Order:
    """The order with its legs."""
    found = trading.get_order_by_id(order_id, GetOrderByIdRequest(nested=True))
    assert isinstance(found, Order)
    return found


def condor_positions(qty: int) -> dict[str, Decimal]:
    """The positions a condor of `qty` units leaves."""
    return {
        LONG_PUT: Decimal(qty),
        SHORT_PUT: Decimal(-qty),
        SHORT_CALL: Decimal(-qty),
        LONG_CALL: Decimal(qty),
    }


def test_partial_fill_of_a_condor_then_cancel_keeps_the_filled_part(
    trading: TradingClient, sim: AdminClient
) -> None:
    cash_before = cash(trading)
    power_before = options_buying_power(trading)
    order_id = submit(trading, iron_condor(3, limit=float(CREDIT)))
    sim.sync()

    sim.fill_order(order_id, qty=2)

    parent = nested(trading, order_id)
    assert parent.status is OrderStatus.PARTIALLY_FILLED
    assert Decimal(str(parent.filled_qty)) == 2
    assert Decimal(str(parent.filled_avg_price)) == CREDIT
    assert parent.legs is not None
    assert {leg.status for leg in parent.legs} == {OrderStatus.PARTIALLY_FILLED}
    assert {Decimal(str(leg.filled_qty)) for leg in parent.legs} == {Decimal(2)}
    legs_net = sum(
        Decimal(str(leg.filled_avg_price)) * (1 if leg.side is OrderSide.BUY else -1)
        for leg in parent.legs
    )
    assert legs_net == CREDIT
    assert positions_by_symbol(trading) == condor_positions(2)
    assert cash(trading) == cash_before - 2 * CREDIT * 100

    trading.cancel_order_by_id(order_id)
    sim.sync()

    parent = nested(trading, order_id)
    assert parent.status is OrderStatus.CANCELED
    assert Decimal(str(parent.filled_qty)) == 2
    assert parent.legs is not None
    assert {leg.status for leg in parent.legs} == {OrderStatus.CANCELED}
    assert {Decimal(str(leg.filled_qty)) for leg in parent.legs} == {Decimal(2)}
    assert positions_by_symbol(trading) == condor_positions(2)
    assert cash(trading) == cash_before - 2 * CREDIT * 100
    # As if 2 condors had filled whole: each holds back the wider wing plus its short legs'
    # market value; the credit gives nothing back (options_margin.py, held_back).
    short_legs = sum(
        -Decimal(str(trading.get_open_position(s).market_value)) for s in (SHORT_PUT, SHORT_CALL)
    )
    assert options_buying_power(trading) == power_before - 2 * WIDTH_COST - short_legs


def test_partial_fill_then_the_rest_fills_at_the_weighted_net(
    trading: TradingClient, sim: AdminClient
) -> None:
    cash_before = cash(trading)
    order_id = submit(trading, iron_condor(3, limit=float(CREDIT)))
    sim.sync()

    sim.fill_order(order_id, qty=1)
    assert nested(trading, order_id).status is OrderStatus.PARTIALLY_FILLED
    sim.fill_order(order_id, price=Decimal("-9.00"))  # the rest (2) at a 9.00 credit

    parent = nested(trading, order_id)
    assert parent.status is OrderStatus.FILLED
    assert Decimal(str(parent.filled_qty)) == 3
    weighted = (CREDIT + 2 * Decimal("-9.00")) / 3
    assert Decimal(str(parent.filled_avg_price)) == weighted.quantize(Decimal("0.0001"))
    assert parent.legs is not None
    assert {leg.status for leg in parent.legs} == {OrderStatus.FILLED}
    assert {Decimal(str(leg.filled_qty)) for leg in parent.legs} == {Decimal(3)}
    assert positions_by_symbol(trading) == condor_positions(3)
    assert cash(trading) == cash_before - (CREDIT + 2 * Decimal("-9.00")) * 100


def test_partial_fill_streams_partial_fill_for_each_leg_and_the_parent(
    trading: TradingClient, sim: AdminClient, stream: StreamRecorder
) -> None:
    order_id = submit(trading, iron_condor(3, limit=float(CREDIT)))
    sim.sync()
    sim.fill_order(order_id, qty=2)

    parent = stream.wait_for(lambda u: u.event == "partial_fill" and str(u.order.id) == order_id)
    assert Decimal(str(parent.qty)) == 2
    assert Decimal(str(parent.price)) == CREDIT
    legs = [u for u in stream.seen if u.event == "partial_fill" and str(u.order.id) != order_id]
    assert {u.order.symbol for u in legs} == {LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL}
    assert {Decimal(str(u.qty)) for u in legs} == {Decimal(2)}
    assert {Decimal(str(u.position_qty)) for u in legs} == {Decimal(2), Decimal(-2)}
    assert not any(u.event == "fill" for u in stream.seen)


def test_single_leg_option_order_fills_partly_at_its_limit(
    trading: TradingClient, sim: AdminClient
) -> None:
    cash_before = cash(trading)
    order_id = submit(
        trading,
        LimitOrderRequest(
            symbol=LONG_CALL,
            qty=5,
            side=OrderSide.BUY,
            limit_price=0.01,  # far below the ask: waits
            time_in_force=TimeInForce.DAY,
        ),
    )
    sim.sync()

    sim.fill_order(order_id, qty=2)
    partly = nested(trading, order_id)
    assert partly.status is OrderStatus.PARTIALLY_FILLED
    assert Decimal(str(partly.filled_qty)) == 2
    assert positions_by_symbol(trading) == {LONG_CALL: Decimal(2)}
    assert cash(trading) == cash_before - Decimal("0.01") * 2 * 100

    sim.fill_order(order_id)
    filled = nested(trading, order_id)
    assert filled.status is OrderStatus.FILLED
    assert Decimal(str(filled.filled_qty)) == 5
    assert positions_by_symbol(trading) == {LONG_CALL: Decimal(5)}
