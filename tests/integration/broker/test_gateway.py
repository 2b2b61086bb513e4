"""AlpacaGateway against the paper broker, through alpaca-py: reads, orders, probes, errors."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import pytest

from broker import errors
from broker.alpaca import AlpacaGateway
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from tests.conftest import SESSION_START, endpoint_for
from trading.broker_models import (
    OrderClass,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    ProbeOutcome,
    ReplaceRequest,
    TimeInForce,
)

pytestmark = pytest.mark.integration


def _cid(tag: str) -> str:
    return f"t{uuid.uuid4().hex[:10]}.{tag}.0"


def _buy(qty: int = 10, **fields: object) -> OrderIntent:
    return OrderIntent(
        client_order_id=_cid("en"), symbol="AAPL", qty=Decimal(qty), side=OrderSide.BUY, **fields
    )


def test_reads(gateway: AlpacaGateway, broker_admin: AdminClient) -> None:
    account = gateway.get_account()
    assert account.buying_power > 0 and account.equity > 0
    clock = gateway.get_clock()
    assert clock.is_open and clock.next_close > clock.timestamp
    sessions = gateway.get_calendar(SESSION_START.date() - timedelta(days=7), SESSION_START.date())
    assert sessions[-1].date == SESSION_START.date()
    assert sessions[-1].open.hour == 9 and sessions[-1].open.minute == 30  # New York time
    assert gateway.get_positions() == [] and gateway.get_open_orders() == []
    quotes = gateway.latest_quotes(["AAPL", "MSFT"])
    assert {q.symbol for q in quotes} == {"AAPL", "MSFT"}
    assert all(q.ask >= q.bid > 0 for q in quotes)


def test_bracket_entry_fills_and_legs_follow(
    gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    price = gateway.latest_quotes(["AAPL"])[0].ask
    intent = _buy(
        order_class=OrderClass.BRACKET,
        time_in_force=TimeInForce.GTC,
        take_profit_limit_price=(price * Decimal("1.10")).quantize(Decimal("0.01")),
        stop_loss_stop_price=(price * Decimal("0.95")).quantize(Decimal("0.01")),
    )
    order = gateway.submit_order(intent)
    broker_admin.sync()
    order = gateway.get_order(order.id)
    assert order.status is OrderStatus.FILLED and order.filled_qty == 10
    assert {leg.type for leg in order.legs} == {OrderType.LIMIT, OrderType.STOP}
    stop = next(leg for leg in order.legs if leg.type is OrderType.STOP)
    assert stop.is_active
    positions = gateway.get_positions()
    assert [(p.symbol, p.qty) for p in positions] == [("AAPL", Decimal(10))]
    assert gateway.get_order_by_client_id(intent.client_order_id).id == order.id
    # A sell for more than is free is refused with Alpaca's numbers: the stop holds the shares.
    with pytest.raises(errors.InsufficientQty) as caught:
        gateway.submit_order(
            OrderIntent(
                client_order_id=_cid("ex"), symbol="AAPL", qty=Decimal(10), side=OrderSide.SELL
            )
        )
    assert caught.value.held_for_orders == Decimal(10)


def test_duplicate_submit_returns_the_one_order(
    gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    intent = _buy(type=OrderType.LIMIT, limit_price=Decimal("1.00"))
    first = gateway.submit_order(intent)
    second = gateway.submit_order(intent)
    assert first.id == second.id
    matching = [o for o in gateway.get_open_orders() if o.client_order_id == intent.client_order_id]
    assert len(matching) == 1


def test_accepted_then_504_resolves_to_exactly_one_order(
    gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    broker_admin.add_fault(method="POST", path="/v2/orders", status=504, after=True, times=1)
    intent = _buy(type=OrderType.LIMIT, limit_price=Decimal("1.00"))
    order = gateway.submit_order(intent)
    assert order.client_order_id == intent.client_order_id
    matching = [o for o in gateway.get_open_orders() if o.client_order_id == intent.client_order_id]
    assert [o.id for o in matching] == [order.id]
    assert broker_admin.faults() == []  # the injected 504 really happened


def test_cancel_is_idempotent(gateway: AlpacaGateway, broker_admin: AdminClient) -> None:
    order = gateway.submit_order(_buy(type=OrderType.LIMIT, limit_price=Decimal("1.00")))
    first = gateway.cancel_order(order.id)
    assert first.order.status in (OrderStatus.CANCELED, OrderStatus.PENDING_CANCEL)
    broker_admin.sync()
    again = gateway.cancel_order(order.id)
    assert again.already_final and again.order.status is OrderStatus.CANCELED


def test_replace_returns_the_new_order(gateway: AlpacaGateway, broker_admin: AdminClient) -> None:
    order = gateway.submit_order(_buy(type=OrderType.LIMIT, limit_price=Decimal("1.00")))
    broker_admin.sync()
    new = gateway.replace_order(ReplaceRequest(order_id=order.id, limit_price=Decimal("1.05")))
    assert new.id != order.id and new.limit_price == Decimal("1.05")
    assert new.replaces == order.id
    # Alpaca replaces asynchronously: the old order passes through pending_replace first.
    assert gateway.get_order(order.id).status in (OrderStatus.PENDING_REPLACE, OrderStatus.REPLACED)
    broker_admin.sync()  # waits (bounded) for cancels and replaces in flight
    old = gateway.get_order(order.id)
    assert old.status is OrderStatus.REPLACED and old.replaced_by == new.id


def test_rejections_carry_alpacas_message(
    gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    with pytest.raises(errors.InvalidPrice, match="sub-penny"):
        gateway.submit_order(_buy(type=OrderType.LIMIT, limit_price=Decimal("100.123")))
    with pytest.raises(errors.InsufficientBuyingPower):
        gateway.submit_order(_buy(qty=10_000_000))


def test_probes_are_three_valued(gateway: AlpacaGateway, broker_admin: AdminClient) -> None:
    unknown_id = str(uuid.uuid4())
    assert gateway.probe_order(unknown_id).outcome is ProbeOutcome.ABSENT
    assert gateway.probe_position("MSFT").outcome is ProbeOutcome.ABSENT
    broker_admin.add_fault(method="GET", path="/v2/orders/*", status=500)
    broker_admin.add_fault(method="GET", path="/v2/positions/*", status=503)
    order_probe = gateway.probe_order(unknown_id)
    position_probe = gateway.probe_position("MSFT")
    assert order_probe.outcome is ProbeOutcome.UNKNOWN and "BrokerUnavailable" in (
        order_probe.error or ""
    )
    assert position_probe.outcome is ProbeOutcome.UNKNOWN
    broker_admin.clear_faults()
    broker_admin.open_position("MSFT", 5)
    found = gateway.probe_position("MSFT")
    assert found.outcome is ProbeOutcome.EXISTS and found.position is not None
    assert found.position.qty == Decimal(5)


def test_wrong_credentials_fail_as_auth(paper_broker: RunningBroker) -> None:
    bad = AlpacaGateway(endpoint_for(paper_broker, secret_key="not-the-secret"))
    with pytest.raises(errors.AuthFailed):
        bad.get_account()


def test_hang_is_bounded_by_the_http_deadline(
    paper_broker: RunningBroker, broker_admin: AdminClient
) -> None:
    quick = AlpacaGateway(endpoint_for(paper_broker), read_timeout_s=0.5)
    broker_admin.add_fault(method="GET", path="/v2/account", hang=True, hang_seconds=5)
    with pytest.raises(errors.BrokerUnavailable, match="timed out"):
        quick.get_account()


def test_open_orders_list_the_stop_leg_of_a_filled_entry(
    gateway: AlpacaGateway, broker_admin: AdminClient
) -> None:
    price = gateway.latest_quotes(["AAPL"])[0].ask
    entry = gateway.submit_order(
        _buy(
            order_class=OrderClass.OTO,
            time_in_force=TimeInForce.GTC,
            stop_loss_stop_price=(price * Decimal("0.95")).quantize(Decimal("0.01")),
        )
    )
    broker_admin.sync()
    filled = gateway.get_order(entry.id)
    assert filled.status is OrderStatus.FILLED
    (stop_leg,) = filled.legs
    listed = {o.id: o for o in gateway.get_open_orders()}
    assert entry.id not in listed  # the filled parent is no longer open ...
    assert stop_leg.id in listed and listed[stop_leg.id].is_active  # ... but its stop is
