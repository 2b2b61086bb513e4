"""TradeWorkflow's pure decisions: protection, tighten, entry steps, exit window, close reason."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import (
    BrokerOrder,
    BrokerPosition,
    OrderClass,
    OrderProbe,
    OrderSide,
    OrderStatus,
    OrderType,
    PositionProbe,
    ProbeOutcome,
    SessionDay,
    TimeInForce,
)
from trading.errors import TradingInputError
from trading.ledger_records import CloseReason, ExitUrgency
from trading.trade_logic import (
    EntryDead,
    EntryDue,
    EntryFilled,
    EntryWorking,
    Flat,
    Follow,
    Keep,
    Rescue,
    Resize,
    Wait,
    close_reason_for,
    entry_intent,
    entry_step,
    next_open_exit_window,
    protection_action,
    rescue_backoff,
    validate_tighten,
)
from trading.trade_models import EntryType, TradeSpec

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
STOP = Decimal("95.00")


def order(**fields: Any) -> BrokerOrder:
    base: dict[str, Any] = {
        "id": "o-1",
        "client_order_id": "t1.rs.0",
        "symbol": "AAPL",
        "side": OrderSide.SELL,
        "type": OrderType.STOP,
        "order_class": OrderClass.SIMPLE,
        "time_in_force": TimeInForce.GTC,
        "status": OrderStatus.NEW,
        "qty": Decimal(10),
        "stop_price": STOP,
        "created_at": NOW,
        "updated_at": NOW,
    }
    base.update(fields)
    return BrokerOrder(**base)


def holding(qty: int | Decimal) -> PositionProbe:
    return PositionProbe(
        outcome=ProbeOutcome.EXISTS,
        position=BrokerPosition(symbol="AAPL", qty=Decimal(qty), avg_entry_price=Decimal(100)),
    )


def found(stop: BrokerOrder) -> OrderProbe:
    return OrderProbe(outcome=ProbeOutcome.EXISTS, order=stop)


UNKNOWN_POS = PositionProbe(outcome=ProbeOutcome.UNKNOWN, error="timeout")
ABSENT_POS = PositionProbe(outcome=ProbeOutcome.ABSENT)


def test_active_stop_covering_the_position_is_kept() -> None:
    assert protection_action(STOP, "o-1", holding(10), found(order())) == Keep(qty=Decimal(10))
    held_leg = order(status=OrderStatus.HELD)
    assert isinstance(protection_action(STOP, "o-1", holding(10), found(held_leg)), Keep)


def test_nothing_is_decided_on_unknown() -> None:
    assert isinstance(protection_action(STOP, "o-1", UNKNOWN_POS, found(order())), Wait)
    unknown_stop = OrderProbe(outcome=ProbeOutcome.UNKNOWN, error="503")
    assert isinstance(protection_action(STOP, "o-1", holding(10), unknown_stop), Wait)
    assert isinstance(protection_action(STOP, "o-1", holding(10), None), Wait)


def test_flat_position_is_reported_not_rescued() -> None:
    assert isinstance(protection_action(STOP, "o-1", ABSENT_POS, None), Flat)
    assert isinstance(protection_action(STOP, None, holding(0), None), Flat)


@pytest.mark.parametrize(
    "status",
    [
        OrderStatus.CANCELED,
        OrderStatus.EXPIRED,
        OrderStatus.REJECTED,
        OrderStatus.FILLED,
        OrderStatus.DONE_FOR_DAY,
        OrderStatus.STOPPED,
        OrderStatus.SUSPENDED,
    ],
)
def test_a_stop_that_no_longer_works_is_rescued_for_the_full_position(
    status: OrderStatus,
) -> None:
    action = protection_action(STOP, "o-1", holding(7), found(order(status=status)))
    assert isinstance(action, Rescue)
    assert action.qty == Decimal(7) and action.stop_price == STOP


def test_missing_or_absent_stop_is_rescued() -> None:
    assert isinstance(protection_action(STOP, None, holding(10), None), Rescue)
    absent = OrderProbe(outcome=ProbeOutcome.ABSENT)
    assert isinstance(protection_action(STOP, "o-1", holding(10), absent), Rescue)


def test_a_stop_in_transition_waits() -> None:
    pending = order(status=OrderStatus.PENDING_CANCEL)
    assert isinstance(protection_action(STOP, "o-1", holding(10), found(pending)), Wait)


def test_a_replaced_stop_is_followed() -> None:
    replaced = order(status=OrderStatus.REPLACED, replaced_by="o-2")
    assert protection_action(STOP, "o-1", holding(10), found(replaced)) == Follow(order_id="o-2")


def test_a_wrong_kind_of_order_is_not_protection() -> None:
    limit = order(type=OrderType.LIMIT, limit_price=Decimal(110), stop_price=None)
    assert isinstance(protection_action(STOP, "o-1", holding(10), found(limit)), Rescue)


@given(
    position=st.integers(min_value=1, max_value=10_000),
    stop_qty=st.integers(min_value=1, max_value=10_000),
    stop_filled=st.integers(min_value=0, max_value=10_000),
)
def test_quantity_changes_resize_the_stop(position: int, stop_qty: int, stop_filled: int) -> None:
    filled = min(stop_filled, stop_qty - 1)
    status = OrderStatus.PARTIALLY_FILLED if filled else OrderStatus.NEW
    stop = order(qty=Decimal(stop_qty), filled_qty=Decimal(filled), status=status)
    action = protection_action(STOP, "o-1", holding(position), found(stop))
    if stop_qty - filled == position:
        assert action == Keep(qty=Decimal(position))
    else:
        assert action == Resize(order_id="o-1", qty=Decimal(position))


def test_rescue_backoff_doubles_and_caps() -> None:
    one, cap = timedelta(seconds=1), timedelta(seconds=10)
    assert [rescue_backoff(n, one, cap).total_seconds() for n in range(6)] == [0, 1, 2, 4, 8, 10]
    assert rescue_backoff(500, one, cap) == cap


# --- tighten -------------------------------------------------------------------------------


def test_tighten_accepts_a_higher_stop_tick_normalized_down() -> None:
    assert validate_tighten(STOP, Decimal("97.129"), Decimal(100)) == Decimal("97.12")


@pytest.mark.parametrize("price", ["94.99", "95.00", "95.004"])
def test_tighten_refuses_to_loosen_or_stand_still(price: str) -> None:
    with pytest.raises(TradingInputError, match="only moves up"):
        validate_tighten(STOP, Decimal(price), Decimal(100))


def test_tighten_refuses_a_stop_at_or_above_the_market() -> None:
    with pytest.raises(TradingInputError, match="below the market"):
        validate_tighten(STOP, Decimal("100.004"), Decimal(100))
    with pytest.raises(TradingInputError, match="positive"):
        validate_tighten(STOP, Decimal(-1), None)


@given(
    current=st.decimals(min_value=Decimal(1), max_value=Decimal(500), places=2),
    new=st.decimals(min_value=Decimal("0.5"), max_value=Decimal(600), places=4),
)
def test_tighten_never_loosens(current: Decimal, new: Decimal) -> None:
    try:
        accepted = validate_tighten(current, new, None)
    except TradingInputError:
        return
    assert current < accepted <= new


# --- entry ---------------------------------------------------------------------------------


def spec(**fields: Any) -> TradeSpec:
    base: dict[str, Any] = {"trade_id": "aapl-1", "symbol": "AAPL", "qty": 10, "stop_price": STOP}
    base.update(fields)
    return TradeSpec(**base)


def test_entry_is_oto_with_a_stop_or_a_bracket_with_a_take_profit() -> None:
    oto = entry_intent(spec(), 0)
    assert oto.order_class is OrderClass.OTO and oto.stop_loss_stop_price == STOP
    assert oto.take_profit_limit_price is None and oto.time_in_force is TimeInForce.GTC
    assert oto.client_order_id == "aapl-1.en.0"
    bracket = entry_intent(
        spec(entry_type=EntryType.LIMIT, limit_price=Decimal(100), take_profit_price=110), 1
    )
    assert bracket.order_class is OrderClass.BRACKET and bracket.type is OrderType.LIMIT
    assert bracket.take_profit_limit_price == Decimal(110) and bracket.limit_price == 100


def test_spec_refuses_inconsistent_prices() -> None:
    with pytest.raises(ValueError, match="limit_price"):
        spec(entry_type=EntryType.LIMIT)
    with pytest.raises(ValueError, match="tick"):
        spec(stop_price=Decimal("95.001"))
    with pytest.raises(ValueError, match="above stop_price"):
        spec(take_profit_price=Decimal(90))


def entry(**fields: Any) -> BrokerOrder:
    return order(side=OrderSide.BUY, type=OrderType.MARKET, stop_price=None, **fields)


def test_entry_steps() -> None:
    later = NOW + timedelta(minutes=5)
    assert isinstance(entry_step(entry(status=OrderStatus.NEW), NOW, later), EntryWorking)
    assert isinstance(entry_step(entry(status=OrderStatus.NEW), later, later), EntryDue)
    filled = entry(status=OrderStatus.FILLED, filled_qty=10, filled_avg_price=Decimal(100))
    assert entry_step(filled, later, later) == EntryFilled(
        filled_qty=Decimal(10), avg_price=Decimal(100), complete=True
    )
    partial = entry(status=OrderStatus.CANCELED, filled_qty=4, filled_avg_price=Decimal(100))
    step = entry_step(partial, later, later)
    assert isinstance(step, EntryFilled) and not step.complete and step.filled_qty == 4
    assert entry_step(entry(status=OrderStatus.CANCELED), NOW, None) == EntryDead(
        reason=CloseReason.ENTRY_CANCELLED
    )
    assert entry_step(entry(status=OrderStatus.REJECTED), NOW, None) == EntryDead(
        reason=CloseReason.ENTRY_FAILED
    )


# --- exits ---------------------------------------------------------------------------------


def session(day: int, close_hour: int = 21) -> SessionDay:
    return SessionDay(
        date=date(2024, 3, day),
        open=datetime(2024, 3, day, 14, 30, tzinfo=UTC),
        close=datetime(2024, 3, day, close_hour, 0, tzinfo=UTC),
    )


def test_next_open_window_is_after_the_next_sessions_open() -> None:
    days = [session(6), session(5), session(7)]
    five, thirty = timedelta(minutes=5), timedelta(minutes=30)
    window = next_open_exit_window(days, NOW, five, thirty)  # during the 5th: the 6th opens next
    assert window.session.date == date(2024, 3, 6)
    assert window.start == datetime(2024, 3, 6, 14, 35, tzinfo=UTC)
    assert window.end == datetime(2024, 3, 6, 15, 0, tzinfo=UTC)
    before_open = datetime(2024, 3, 5, 12, 0, tzinfo=UTC)
    assert next_open_exit_window(days, before_open, five, thirty).session.date == date(2024, 3, 5)
    with pytest.raises(TradingInputError, match="no session"):
        next_open_exit_window([session(5)], NOW, five, thirty)


def test_the_window_is_clipped_to_the_close() -> None:
    short = SessionDay(
        date=date(2024, 3, 6),
        open=datetime(2024, 3, 6, 14, 30, tzinfo=UTC),
        close=datetime(2024, 3, 6, 14, 50, tzinfo=UTC),
    )
    window = next_open_exit_window([short], NOW, timedelta(minutes=5), timedelta(minutes=30))
    assert window.end == short.close


def test_close_reason_names_the_leg_that_filled() -> None:
    filled_stop = order(status=OrderStatus.FILLED, filled_qty=10, filled_avg_price=STOP)
    filled_tp = order(id="tp", type=OrderType.LIMIT, status=OrderStatus.FILLED, filled_qty=10)
    market_exit = order(id="ex", type=OrderType.MARKET, status=OrderStatus.FILLED, filled_qty=10)
    assert close_reason_for(filled_stop, None, None, None) is CloseReason.STOP_FILLED
    assert close_reason_for(order(), filled_tp, None, None) is CloseReason.TAKE_PROFIT
    assert (
        close_reason_for(order(), None, market_exit, ExitUrgency.IMMEDIATE)
        is CloseReason.FORCE_EXIT
    )
    assert (
        close_reason_for(order(), None, market_exit, ExitUrgency.NEXT_OPEN)
        is CloseReason.EXIT_FILLED
    )
    oco = order(
        id="oco",
        type=OrderType.LIMIT,
        order_class=OrderClass.OCO,
        status=OrderStatus.CANCELED,
        legs=[filled_stop],
    )
    assert close_reason_for(None, None, oco, ExitUrgency.NEXT_OPEN) is CloseReason.STOP_FILLED
    assert close_reason_for(order(), None, None, None) is CloseReason.EXTERNAL_CLOSE
