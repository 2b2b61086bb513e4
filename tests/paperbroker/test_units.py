"""Pure pieces of the broker: ticks, clock, calendar, price paths and order validation."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperbroker.calendar import demo_session_time, nyse_calendar
from paperbroker.clock import ClockMode, SimClock
from paperbroker.errors import ApiError
from paperbroker.prices import PriceEngine, SymbolParams
from paperbroker.ticks import fmt, is_sub_penny
from paperbroker.validation import parse_order


@given(st.decimals(min_value=Decimal("1"), max_value=Decimal("10000"), places=2))
def test_whole_cents_above_a_dollar_are_valid(price: Decimal) -> None:
    assert not is_sub_penny(price)


@given(st.integers(min_value=100, max_value=10**6), st.integers(min_value=1, max_value=9))
def test_a_third_decimal_above_a_dollar_is_sub_penny(cents: int, extra: int) -> None:
    assert is_sub_penny(Decimal(cents) / 100 + Decimal(extra) / 1000)


def test_sub_dollar_prices_allow_four_decimals() -> None:
    assert not is_sub_penny(Decimal("0.1234")) and is_sub_penny(Decimal("0.12345"))
    assert fmt(Decimal("10.500")) == "10.5" and fmt(Decimal("0E-8")) == "0"


def test_manual_and_accelerated_clocks() -> None:
    start = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
    manual = SimClock(ClockMode.MANUAL, start)
    assert manual.now() == start
    assert manual.advance(90) == start + timedelta(seconds=90)
    fast = SimClock(ClockMode.ACCELERATED, start, rate=1000)
    assert fast.rate == 1000 and fast.now() >= start
    fast.set_mode(ClockMode.MANUAL)
    frozen = fast.now()
    assert fast.now() == frozen


def test_demo_time_moves_a_weekend_into_the_last_session() -> None:
    calendar = nyse_calendar()
    saturday = datetime(2024, 3, 9, 18, 0, tzinfo=UTC)
    demo = demo_session_time(saturday, calendar)
    assert demo == datetime(2024, 3, 8, 15, 30, tzinfo=UTC)
    assert calendar.is_open(demo)
    open_now = datetime(2024, 3, 8, 16, 0, tzinfo=UTC)
    assert demo_session_time(open_now, calendar) == open_now


def test_price_paths_are_seeded_and_a_set_price_leaves_history_alone() -> None:
    origin = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
    params = [SymbolParams(symbol="AAPL", price=Decimal(190))]
    one = PriceEngine(params, 7, origin, nyse_calendar())
    two = PriceEngine(params, 7, origin, nyse_calendar())
    other = PriceEngine(params, 8, origin, nyse_calendar())
    later = origin + timedelta(hours=2)
    assert one.quote("AAPL", later) == two.quote("AAPL", later)
    assert one.quote("AAPL", later).mid != other.quote("AAPL", later).mid
    earlier = origin + timedelta(minutes=30)
    before = one.quote("AAPL", earlier)
    one.set_price("AAPL", origin + timedelta(hours=1), 150)
    assert one.quote("AAPL", earlier) == before
    assert one.quote("AAPL", origin + timedelta(hours=1)).mid == Decimal("150.00")
    quote = one.quote("AAPL", later)
    assert quote.bid < quote.mid < quote.ask


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (
            {"symbol": "AAPL", "qty": 1, "side": "buy", "type": "market", "time_in_force": "day"},
            None,
        ),
        ({"symbol": "AAPL", "qty": 1, "side": "up", "type": "market", "time_in_force": "day"}, 422),
        (
            {"symbol": "AAPL", "qty": 0, "side": "buy", "type": "market", "time_in_force": "day"},
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "market",
                "time_in_force": "day",
                "limit_price": 10,
            },
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1.5,
                "side": "buy",
                "type": "limit",
                "time_in_force": "gtc",
                "limit_price": 10,
            },
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "limit",
                "time_in_force": "day",
                "limit_price": 10,
                "order_class": "bracket",
                "take_profit": {"limit_price": 11},
            },
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "sell",
                "type": "market",
                "time_in_force": "day",
                "order_class": "oco",
                "take_profit": {"limit_price": 11},
                "stop_loss": {"stop_price": 9},
            },
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "trailing_stop",
                "time_in_force": "ioc",
                "trail_percent": 2,
            },
            422,
        ),
        (
            {
                "symbol": "AAPL",
                "qty": 1,
                "side": "buy",
                "type": "stop",
                "time_in_force": "day",
                "extended_hours": True,
                "stop_price": 5,
            },
            422,
        ),
        ("not an object", 400),
    ],
)
def test_order_validation(body: object, status: int | None) -> None:
    if status is None:
        assert parse_order(body).symbol == "AAPL"
        return
    with pytest.raises(ApiError) as error:
        parse_order(body)
    assert error.value.status == status
