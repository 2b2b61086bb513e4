"""Pure option-order logic: request checks, net price and the all-or-none rule, payoffs, expiry."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from paperbroker.errors import ApiError
from paperbroker.models import OrderClass, OrderType, Side
from paperbroker.options_expiry import (
    Holding,
    Outcome,
    Right,
    exercise,
    expiry_actions,
    is_in_the_money,
    parse_contract,
    requirement_by_underlying,
    settlement_requirement,
)
from paperbroker.options_margin import net_price
from paperbroker.options_orders import marketable
from paperbroker.validation import OptionLeg, is_option_order, parse_option_order

CALL_530 = "SPY240308C00530000"
CALL_535 = "SPY240308C00535000"
PUT_500 = "SPY240308P00500000"
PUT_510 = "SPY240308P00510000"


@dataclass(frozen=True)
class FakeQuote:
    """A fixed option quote."""

    bid: Decimal
    ask: Decimal

    @property
    def mid(self) -> Decimal:
        """Mid price."""
        return (self.bid + self.ask) / 2


def holding(symbol: str, contracts: int) -> Holding:
    """A holding of `contracts` (signed) of an OCC symbol."""
    contract = parse_contract(symbol)
    assert contract is not None
    return Holding(contract=contract, contracts=Decimal(contracts))


def condor(qty: int = 1) -> list[Holding]:
    """Iron condor 500/510 puts, 530/535 calls."""
    return [
        holding(PUT_500, qty),
        holding(PUT_510, -qty),
        holding(CALL_530, -qty),
        holding(CALL_535, qty),
    ]


# ---- contracts ------------------------------------------------------------------------------
def test_parse_contract_reads_the_occ_symbol() -> None:
    contract = parse_contract("SPY240308C00530000")
    assert contract is not None
    assert contract.underlying == "SPY"
    assert contract.expiry == date(2024, 3, 8)
    assert contract.right is Right.CALL
    assert contract.strike == Decimal(530)
    assert parse_contract("SPY") is None
    assert parse_contract("SPY241308C00530000") is None  # month 13


# ---- requests -------------------------------------------------------------------------------
def single(**change: object) -> dict[str, object]:
    """A valid single-leg body with `change` applied."""
    body: dict[str, object] = {
        "symbol": CALL_530,
        "qty": "1",
        "side": "buy",
        "type": "market",
        "time_in_force": "day",
    }
    body.update(change)
    return body


def mleg(legs: list[dict[str, object]], **change: object) -> dict[str, object]:
    """An mleg body."""
    body: dict[str, object] = {
        "order_class": "mleg",
        "qty": "1",
        "type": "limit",
        "limit_price": "-1.25",
        "time_in_force": "day",
        "legs": legs,
    }
    body.update(change)
    return body


def test_option_bodies_are_told_from_stock_bodies() -> None:
    assert is_option_order(single())
    assert is_option_order(mleg([]))
    assert not is_option_order({"symbol": "AAPL", "qty": "1"})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_in_force": "gtc"}, "DAY"),
        ({"time_in_force": "ioc"}, "DAY"),
        ({"qty": "0.5"}, "whole number"),
        ({"qty": None, "notional": "100"}, "notional"),
        ({"type": "stop", "stop_price": "1"}, "market or limit"),
        ({"type": "limit"}, "require a limit price"),
        ({"type": "limit", "limit_price": "1.005"}, "sub-penny"),
        ({"extended_hours": True}, "extended hours"),
        ({"position_intent": "sell_to_open"}, "does not match side"),
        ({"order_class": "bracket"}, "not supported"),
    ],
)
def test_single_leg_refusals(change: dict[str, object], message: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_option_order(single(**change))
    assert refused.value.status == 422
    assert message in refused.value.message


def test_side_follows_from_position_intent() -> None:
    intent = parse_option_order(single(side=None, position_intent="sell_to_close"))
    assert intent.legs[0].side is Side.SELL
    assert intent.order_class is OrderClass.SIMPLE


def test_mleg_parses_legs_with_ratios() -> None:
    intent = parse_option_order(
        mleg(
            [
                {"symbol": CALL_530, "ratio_qty": "1", "side": "buy"},
                {"symbol": CALL_535, "ratio_qty": "2", "position_intent": "sell_to_open"},
            ]
        )
    )
    assert intent.order_class is OrderClass.MLEG
    assert intent.type is OrderType.LIMIT
    assert intent.limit_price == Decimal("-1.25")
    assert [(leg.side, leg.ratio_qty) for leg in intent.legs] == [(Side.BUY, 1), (Side.SELL, 2)]


@pytest.mark.parametrize(
    ("legs", "message"),
    [
        ([{"symbol": CALL_530, "ratio_qty": "1", "side": "buy"}], "between 2 and 4"),
        ([{"symbol": CALL_530, "ratio_qty": "1", "side": "buy"}] * 2, "unique"),
        (
            [
                {"symbol": CALL_530, "ratio_qty": "2", "side": "buy"},
                {"symbol": CALL_535, "ratio_qty": "4", "side": "sell"},
            ],
            "simplest form",
        ),
        (
            [
                {"symbol": CALL_530, "ratio_qty": "1.5", "side": "buy"},
                {"symbol": CALL_535, "ratio_qty": "1", "side": "sell"},
            ],
            "ratio_qty",
        ),
        (
            [
                {"symbol": "AAPL", "ratio_qty": "1", "side": "buy"},
                {"symbol": CALL_535, "ratio_qty": "1", "side": "sell"},
            ],
            "not an option contract",
        ),
        (
            [
                {"symbol": CALL_530, "ratio_qty": "1"},
                {"symbol": CALL_535, "ratio_qty": "1", "side": "sell"},
            ],
            "side is required",
        ),
    ],
)
def test_invalid_legs_are_refused(legs: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ApiError) as refused:
        parse_option_order(mleg(legs))
    assert refused.value.status == 422
    assert message in refused.value.message


# ---- net price and the all-or-none rule -----------------------------------------------------
QUOTES = {
    PUT_500: FakeQuote(Decimal("0.40"), Decimal("0.45")),
    PUT_510: FakeQuote(Decimal("1.85"), Decimal("1.95")),
    CALL_530: FakeQuote(Decimal("2.00"), Decimal("2.10")),
    CALL_535: FakeQuote(Decimal("1.10"), Decimal("1.20")),
}
CONDOR_LEGS = [
    OptionLeg(symbol=PUT_500, side=Side.BUY, ratio_qty=1),
    OptionLeg(symbol=PUT_510, side=Side.SELL, ratio_qty=1),
    OptionLeg(symbol=CALL_530, side=Side.SELL, ratio_qty=1),
    OptionLeg(symbol=CALL_535, side=Side.BUY, ratio_qty=1),
]


def test_net_price_pays_asks_and_receives_bids() -> None:
    # 0.45 - 1.85 - 2.00 + 1.20 = -2.20: a 2.20 credit at the far sides.
    assert net_price(CONDOR_LEGS, QUOTES) == Decimal("-2.20")


def test_credit_limit_fills_only_at_or_better() -> None:
    net = net_price(CONDOR_LEGS, QUOTES)
    assert marketable(OrderType.LIMIT, Decimal("-2.20"), net)  # asks exactly the credit
    assert marketable(OrderType.LIMIT, Decimal("-2.00"), net)  # asks less credit
    assert not marketable(OrderType.LIMIT, Decimal("-2.21"), net)  # asks more than offered
    assert marketable(OrderType.MARKET, None, net)


def test_ratio_multiplies_a_legs_price() -> None:
    legs = [
        OptionLeg(symbol=CALL_530, side=Side.BUY, ratio_qty=1),
        OptionLeg(symbol=CALL_535, side=Side.SELL, ratio_qty=2),
    ]
    assert net_price(legs, QUOTES) == Decimal("2.10") - 2 * Decimal("1.10")


# ---- defined-risk requirement ---------------------------------------------------------------
def test_iron_condor_needs_its_wider_wing_not_naked_margin() -> None:
    assert settlement_requirement(condor()) == Decimal(1000)
    assert settlement_requirement(condor(3)) == Decimal(3000)


def test_long_options_need_nothing_at_settlement() -> None:
    assert settlement_requirement([holding(CALL_530, 2), holding(PUT_500, 1)]) == 0


def test_cash_secured_put_needs_its_strike() -> None:
    assert settlement_requirement([holding(PUT_510, -1)]) == Decimal(51_000)


def test_naked_short_call_is_uncovered() -> None:
    assert settlement_requirement([holding(CALL_530, -1)]) is None
    assert settlement_requirement([holding(CALL_530, -2), holding(CALL_535, 1)]) is None


def test_shares_cover_short_calls_only_as_far_as_they_go() -> None:
    assert settlement_requirement([holding(CALL_530, -1)], shares=Decimal(100)) == 0
    assert settlement_requirement([holding(CALL_530, -2)], shares=Decimal(150)) is None


def test_requirements_add_up_across_underlyings() -> None:
    aapl_put = holding("AAPL240308P00180000", -1)
    assert requirement_by_underlying([*condor(), aapl_put], {}) == Decimal(1000 + 18_000)
    assert requirement_by_underlying([holding(CALL_530, -1)], {"SPY": Decimal(100)}) == 0
    assert requirement_by_underlying([holding(CALL_530, -1)], {"SPY": Decimal(-100)}) is None


@given(
    low=st.integers(min_value=1, max_value=400),
    width=st.integers(min_value=1, max_value=50),
    qty=st.integers(min_value=1, max_value=20),
)
def test_vertical_credit_spread_needs_width_times_qty(low: int, width: int, qty: int) -> None:
    short = holding(f"SPY240308C{low * 1000:08d}", -qty)
    long = holding(f"SPY240308C{(low + width) * 1000:08d}", qty)
    assert settlement_requirement([short, long]) == Decimal(width * 100 * qty)


# ---- expiry ---------------------------------------------------------------------------------
def test_itm_longs_exercise_itm_shorts_assigned_otm_expire() -> None:
    actions = {a.symbol: a for a in expiry_actions(condor(), {"SPY": Decimal(540)})}
    assert actions[CALL_535].outcome is Outcome.EXERCISE
    assert actions[CALL_535].shares == 100
    assert actions[CALL_535].cash == -53_500
    assert actions[CALL_530].outcome is Outcome.ASSIGNMENT
    assert actions[CALL_530].shares == -100
    assert actions[CALL_530].cash == 53_000
    assert actions[PUT_500].outcome is Outcome.EXPIRE
    assert actions[PUT_510].outcome is Outcome.EXPIRE
    assert actions[PUT_510].shares == 0


def test_put_exercise_sells_and_put_assignment_buys() -> None:
    long_put = exercise(holding(PUT_510, 2))
    assert (long_put.shares, long_put.cash) == (-200, 102_000)
    short_put = exercise(holding(PUT_510, -1))
    assert short_put.outcome is Outcome.ASSIGNMENT
    assert (short_put.shares, short_put.cash) == (100, -51_000)


def test_exercise_by_exception_needs_one_cent() -> None:
    contract = parse_contract(CALL_530)
    assert contract is not None
    assert not is_in_the_money(contract, Decimal("530.00"))
    assert not is_in_the_money(contract, Decimal("530.009"))
    assert is_in_the_money(contract, Decimal("530.01"))
