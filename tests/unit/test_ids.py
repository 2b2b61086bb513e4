"""Trade ids and client_order_ids: deterministic, unique per leg/attempt, <= 48 chars."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.errors import TradingInputError
from trading.ids import (
    MAX_ATTEMPT,
    MAX_CLIENT_ORDER_ID,
    Leg,
    client_order_id,
    new_trade_id,
    parse_client_order_id,
    trade_id_of,
)

trade_ids = st.from_regex(r"[a-z0-9][a-z0-9-]{0,35}", fullmatch=True)
legs = st.sampled_from(list(Leg))
attempts = st.integers(min_value=0, max_value=MAX_ATTEMPT)


@given(trade_ids, legs, attempts)
def test_deterministic_bounded_and_reversible(trade_id: str, leg: Leg, attempt: int) -> None:
    value = client_order_id(trade_id, leg, attempt)
    assert value == client_order_id(trade_id, leg, attempt)
    assert len(value) <= MAX_CLIENT_ORDER_ID
    assert parse_client_order_id(value) == (trade_id, leg, attempt)
    assert trade_id_of(value) == trade_id


@given(trade_ids, legs, attempts, trade_ids, legs, attempts)
def test_distinct_inputs_never_collide(
    t1: str, l1: Leg, a1: int, t2: str, l2: Leg, a2: int
) -> None:
    if (t1, l1, a1) != (t2, l2, a2):
        assert client_order_id(t1, l1, a1) != client_order_id(t2, l2, a2)


@given(st.text(min_size=1, max_size=10), st.datetimes(timezones=st.just(UTC)), st.text())
def test_new_trade_ids_are_valid(symbol: str, at: datetime, entropy: str) -> None:
    trade_id = new_trade_id(symbol, at, entropy)
    assert len(client_order_id(trade_id, Leg.RESCUE, MAX_ATTEMPT)) <= MAX_CLIENT_ORDER_ID


@pytest.mark.parametrize("foreign", ["", "abc", "my-order-1", "X.en.1", "abc.zz.1", "a.en.x"])
def test_foreign_ids_are_not_ours(foreign: str) -> None:
    assert parse_client_order_id(foreign) is None


def test_bad_trade_id_and_attempt_are_refused() -> None:
    with pytest.raises(TradingInputError, match="trade id"):
        client_order_id("Has.Dots", Leg.ENTRY, 0)
    with pytest.raises(TradingInputError, match="attempt"):
        client_order_id("t1", Leg.ENTRY, MAX_ATTEMPT + 1)
