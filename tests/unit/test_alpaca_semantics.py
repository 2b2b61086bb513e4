"""The guard's pure answers to Alpaca as it really is: partial entries, asynchronous replaces,
take-profits lost with their group, and statuses this code does not know yet."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from tests.unit.test_trade_logic import NOW, STOP, order
from trading.broker_models import (
    BrokerPosition,
    OrderClass,
    OrderProbe,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionProbe,
    ProbeOutcome,
    TimeInForce,
    order_status,
)
from trading.trade_escalation import (
    ReplaceFailed,
    ReplacePending,
    ReplaceSettled,
    replace_state,
)
from trading.trade_logic import (
    EntryDue,
    EntryWorking,
    Wait,
    entry_step,
    protection_action,
    rescue_intent,
)

GRACE = timedelta(seconds=5)


def test_a_partly_filled_entry_is_due_after_the_grace_and_not_before() -> None:
    working = order(
        id="e-1",
        side=OrderSide.BUY,
        type=OrderType.LIMIT,
        qty=Decimal(10),
        filled_qty=Decimal(4),
        status=OrderStatus.PARTIALLY_FILLED,
    )
    deadline = NOW + timedelta(minutes=5)
    early = entry_step(working, NOW + timedelta(seconds=4), deadline, NOW, GRACE)
    assert isinstance(early, EntryWorking)
    due = entry_step(working, NOW + GRACE, deadline, NOW, GRACE)
    assert isinstance(due, EntryDue) and due.partial
    # Without the grace (trades from before it) only the deadline ends it.
    assert isinstance(entry_step(working, NOW + GRACE, deadline, NOW, None), EntryWorking)
    nothing_filled = order(id="e-1", side=OrderSide.BUY, type=OrderType.LIMIT, qty=Decimal(10))
    assert isinstance(entry_step(nothing_filled, NOW + GRACE, deadline, None, GRACE), EntryWorking)


def test_a_replace_settles_only_when_the_old_stop_is_replaced() -> None:
    old = order(id="s-1", status=OrderStatus.PENDING_REPLACE, qty=Decimal(10))
    new = order(id="s-2", status=OrderStatus.PENDING_NEW, qty=Decimal(10))
    assert replace_state(old, new) == ReplacePending(new_order_id="s-2")
    replaced = order(id="s-1", status=OrderStatus.REPLACED, qty=Decimal(10), replaced_by="s-2")
    settled = replace_state(replaced, order(id="s-2", status=OrderStatus.NEW, qty=Decimal(10)))
    assert isinstance(settled, ReplaceSettled) and settled.order.id == "s-2"


def test_a_replace_refused_or_rejected_after_acceptance_has_failed() -> None:
    old = order(id="s-1", status=OrderStatus.NEW, qty=Decimal(10))
    refused = replace_state(old, None, "InvalidOrder: order is pending_new")
    assert isinstance(refused, ReplaceFailed) and "pending_new" in refused.reason
    rejected = order(id="s-2", status=OrderStatus.REJECTED, qty=Decimal(10))
    failed = replace_state(old, rejected)
    assert isinstance(failed, ReplaceFailed) and "rejected" in failed.reason


def test_a_stop_that_filled_before_its_replace_settles_nothing_new() -> None:
    filled = order(id="s-1", status=OrderStatus.FILLED, qty=Decimal(10), filled_qty=Decimal(10))
    pending = order(id="s-2", status=OrderStatus.PENDING_NEW, qty=Decimal(10))
    assert isinstance(replace_state(filled, pending), ReplaceFailed)


def test_a_rescue_with_a_take_profit_restores_both_as_a_gtc_oco() -> None:
    bare = rescue_intent("t1", "AAPL", Decimal(10), STOP, 0)
    assert (bare.type, bare.order_class, bare.stop_price) == (
        OrderType.STOP,
        OrderClass.SIMPLE,
        STOP,
    )
    oco = rescue_intent("t1", "AAPL", Decimal(10), STOP, 1, Decimal("110.00"))
    assert (oco.order_class, oco.type, oco.time_in_force) == (
        OrderClass.OCO,
        OrderType.LIMIT,
        TimeInForce.GTC,
    )
    assert (oco.limit_price, oco.take_profit_limit_price, oco.stop_loss_stop_price) == (
        Decimal("110.00"),
        Decimal("110.00"),
        STOP,
    )
    assert oco.stop_price is None and oco.side is OrderSide.SELL and oco.qty == Decimal(10)
    assert oco.client_order_id != bare.client_order_id


def test_an_unknown_or_pending_status_is_waited_on_never_rescued() -> None:
    assert order_status("pending_review") is OrderStatus.PENDING_REVIEW
    assert order_status("some_status_alpaca_adds_later") is OrderStatus.UNKNOWN
    position = PositionProbe(
        outcome=ProbeOutcome.EXISTS,
        position=BrokerPosition(symbol="AAPL", qty=Decimal(10), avg_entry_price=Decimal(100)),
    )
    for status in (
        OrderStatus.UNKNOWN,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.PENDING_REVIEW,
    ):
        stop = order(id="s-1", status=status, qty=Decimal(10))
        probe = OrderProbe(outcome=ProbeOutcome.EXISTS, order=stop)
        action = protection_action(STOP, "s-1", position, probe)
        assert isinstance(action, Wait), status
        # A cancel settling is looked at again within a second; a review is not polled that fast.
        assert action.in_transition is (status is OrderStatus.PENDING_CANCEL), status
    # A stop the broker could not be asked about is unknown, not in transition: no fast polling.
    silent = OrderProbe(outcome=ProbeOutcome.UNKNOWN, error="timeout")
    action = protection_action(STOP, "s-1", position, silent)
    assert isinstance(action, Wait) and not action.in_transition
