"""Pure decisions of the option trade: legs, client ids, the entry walk, the mark, P&L."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from trading.broker_models import OrderSide, OrderStatus
from trading.options.chain import OptionContractQuote, parse_occ_symbol
from trading.options.condor import CondorPlan
from trading.options.records import option_trade_write, options_requirement_usd
from trading.options.trade_models import (
    OptionMarks,
    OptionOrderView,
    OptionQuote,
    OptionTradeSpec,
    OptionTradeState,
    OptionTradeStatus,
    book_close_fill,
    client_order_id,
    close_intent,
    closing_legs,
    entry_credit,
    entry_intent,
    is_closing_order,
    mark_to_close,
    natural_debit,
    opening_legs,
    order_attempt,
    realized_pnl,
    units_open,
    unusable_quotes,
)

D = Decimal

SYMBOLS = {
    "long_put": "SPY240308P00500000",
    "short_put": "SPY240308P00510000",
    "short_call": "SPY240308C00530000",
    "long_call": "SPY240308C00535000",
}
QUOTES = {  # bid, ask
    "SPY240308P00500000": ("0.10", "0.12"),
    "SPY240308P00510000": ("0.40", "0.44"),
    "SPY240308C00530000": ("0.50", "0.54"),
    "SPY240308C00535000": ("0.20", "0.22"),
}


def _leg(symbol: str) -> OptionContractQuote:
    occ = parse_occ_symbol(symbol)
    bid, ask = QUOTES[symbol]
    return OptionContractQuote(
        symbol=symbol,
        underlying=occ.underlying,
        expiry=occ.expiry,
        right=occ.right,
        strike=occ.strike,
        bid=Decimal(bid),
        ask=Decimal(ask),
    )


def _plan() -> CondorPlan:
    legs = {name: _leg(symbol) for name, symbol in SYMBOLS.items()}
    names = ["credit_mid", "credit_natural", "credit", "credit_natural_usd", "max_loss"]
    names += ["max_loss_natural", "credit_to_width", "break_even_low", "break_even_high"]
    numbers = {name: Decimal(1) for name in names}
    return CondorPlan(
        underlying="SPY",
        expiry=date(2024, 3, 8),
        dte=3,
        qty=1,
        width=Decimal(10),
        probability_of_profit=Decimal("0.5"),
        probability_of_max_loss=Decimal("0.1"),
        detail="",
        **legs,
        **numbers,
    )


def _spec(**fields: object) -> OptionTradeSpec:
    base: dict[str, object] = {
        "trade_id": "ic-1",
        "plan": _plan(),
        "limit_credit": Decimal("0.60"),
        "walk_step": Decimal("0.05"),
        "max_walk": Decimal("0.10"),
    }
    base.update(fields)
    return OptionTradeSpec(**base)  # type: ignore[arg-type]


def _marks() -> OptionMarks:
    quotes = [OptionQuote(symbol=s, bid=Decimal(b), ask=Decimal(a)) for s, (b, a) in QUOTES.items()]
    return OptionMarks(
        quotes=quotes, as_of=datetime(2024, 3, 5, 15, 30, tzinfo=UTC), session_date=date(2024, 3, 5)
    )


def test_opening_sells_the_shorts_and_buys_the_wings_and_closing_flips_each() -> None:
    legs = opening_legs(_plan())
    assert [(leg.symbol, leg.side) for leg in legs] == [
        (SYMBOLS["long_put"], OrderSide.BUY),
        (SYMBOLS["short_put"], OrderSide.SELL),
        (SYMBOLS["short_call"], OrderSide.SELL),
        (SYMBOLS["long_call"], OrderSide.BUY),
    ]
    assert [leg.side for leg in closing_legs(legs)] == [
        OrderSide.SELL,
        OrderSide.BUY,
        OrderSide.BUY,
        OrderSide.SELL,
    ]


def test_the_entry_walks_down_by_steps_and_stops_past_the_limit() -> None:
    spec = _spec()
    assert [entry_credit(spec, n) for n in range(4)] == [
        Decimal("0.60"),
        Decimal("0.55"),
        Decimal("0.50"),
        None,
    ]
    first = entry_intent(spec, 0)
    assert first is not None
    assert first.limit_price == Decimal("-0.60")  # a credit is a negative net price
    assert first.client_order_id == "ic-1-open-0"
    assert entry_intent(spec, 3) is None


def test_a_credit_never_walks_to_zero() -> None:
    spec = _spec(limit_credit=Decimal("0.05"), max_walk=Decimal("1"))
    assert entry_credit(spec, 1) is None


def test_client_order_ids_are_deterministic_and_bounded() -> None:
    assert client_order_id("t", "close", 2) == "t-close-2"
    with pytest.raises(ValueError):
        client_order_id("x" * 40, "close", 10)


def test_mark_is_the_cost_to_close_at_the_mids_and_natural_at_the_far_side() -> None:
    legs = opening_legs(_plan())
    # shorts 0.42 + 0.52, longs 0.11 + 0.21
    assert mark_to_close(legs, _marks()) == Decimal("0.62")
    # shorts bought at the ask 0.44 + 0.54, longs sold at the bid 0.10 + 0.20
    assert natural_debit(legs, _marks()) == Decimal("0.68")
    intent = close_intent(_spec(), Decimal("0.68"), 1)
    assert intent.limit_price == Decimal("0.68") and intent.client_order_id == "ic-1-close-1"


def test_a_worthless_structure_closes_at_a_one_cent_limit_not_zero() -> None:
    assert close_intent(_spec(), Decimal(0), 0).limit_price == Decimal("0.01")
    assert close_intent(_spec(), Decimal("0.004"), 0).limit_price == Decimal("0.01")


def test_a_missing_quote_is_an_error_not_a_zero_mark() -> None:
    marks = _marks().model_copy(deep=True)
    short = OptionMarks(quotes=marks.quotes[1:], as_of=marks.as_of, session_date=marks.session_date)
    with pytest.raises(ValueError, match="no quote"):
        mark_to_close(opening_legs(_plan()), short)


def test_realized_pnl_is_credit_less_debit_per_contract() -> None:
    assert realized_pnl(Decimal("0.60"), Decimal("0.25"), 2) == Decimal("70.00")


def test_closing_orders_are_told_by_their_client_order_id() -> None:
    assert is_closing_order("ic-1-close-0")
    assert not is_closing_order("ic-1-open-3")
    assert not is_closing_order("close-ic-open-1")


def test_partial_closes_add_their_pnl_and_average_the_exit_debit() -> None:
    state = OptionTradeState(credit=Decimal("1.50"), open_qty=3)
    assert units_open(_spec(), state) == 3
    assert book_close_fill(state, 2, Decimal("0.50")) == 1
    assert state.realized_pnl == Decimal(200)  # (1.50 - 0.50) x 100 x 2
    assert book_close_fill(state, 1, Decimal("0.80")) == 0
    assert state.realized_pnl == Decimal(270)  # + (1.50 - 0.80) x 100
    assert state.closed_qty == 3 and state.exit_debit == Decimal("0.60")  # (1.00 + 0.80) / 3
    with pytest.raises(ValueError, match="closed 1 units of 0"):
        book_close_fill(state, 1, Decimal("0.10"))


def test_the_close_is_sized_to_the_units_open() -> None:
    assert close_intent(_spec(), Decimal("0.68"), 2, 1).qty == 1
    assert units_open(_spec(), OptionTradeState()) == _spec().qty


def test_a_close_never_pays_more_than_the_condors_width() -> None:
    spec = _spec()  # a 10-wide condor
    assert close_intent(spec, Decimal("12.40"), 0).limit_price == Decimal(10)
    assert close_intent(spec, Decimal("9.99"), 0).limit_price == Decimal("9.99")


@pytest.mark.parametrize(
    ("bid", "ask", "why"),
    [
        ("0", "0", "SPY240308C00530000 0/0"),  # no quote at all would mark the condor at 0
        ("0.60", "0.50", "SPY240308C00530000 0.60/0.50"),  # crossed
    ],
)
def test_quotes_without_an_ask_or_crossed_cannot_mark_the_condor(
    bid: str, ask: str, why: str
) -> None:
    legs = opening_legs(_plan())
    assert unusable_quotes(legs, _marks()) is None
    quotes = [
        q
        if q.symbol != "SPY240308C00530000"
        else q.model_copy(update={"bid": D(bid), "ask": D(ask)})
        for q in _marks().quotes
    ]
    bad = _marks().model_copy(update={"quotes": quotes})
    assert unusable_quotes(legs, bad) == f"no usable quote for {why}"


def test_an_attempt_number_is_read_back_from_its_own_client_order_id_only() -> None:
    assert order_attempt("ic-1-close-7", "ic-1", "close") == 7
    assert order_attempt("ic-1-open-7", "ic-1", "close") is None
    assert order_attempt("ic-12-close-7", "ic-1", "close") is None
    assert order_attempt("ic-1-close-x", "ic-1", "close") is None


@pytest.mark.parametrize(
    ("status", "final"),
    [
        (OrderStatus.FILLED, True),
        (OrderStatus.CANCELED, True),
        (OrderStatus.EXPIRED, True),
        (OrderStatus.REJECTED, True),
        # A fill is guaranteed, it may trade again, a replacement works: not over.
        (OrderStatus.STOPPED, False),
        (OrderStatus.SUSPENDED, False),
        (OrderStatus.DONE_FOR_DAY, False),
        (OrderStatus.REPLACED, False),
        (OrderStatus.NEW, False),
    ],
)
def test_only_four_statuses_end_an_option_order_for_the_walk(
    status: OrderStatus, final: bool
) -> None:
    assert OptionOrderView(id="o", client_order_id="ic-1-open-0", status=status).is_final is final


def test_the_row_counts_the_units_still_open_and_after_the_end_the_units_opened() -> None:
    spec = _spec(qty=3)
    state = OptionTradeState(status=OptionTradeStatus.CLOSING, credit=Decimal("0.60"), open_qty=3)
    book_close_fill(state, 2, Decimal("0.30"))  # two of three closed
    live = option_trade_write(spec, state, "option-trade-ic-1", datetime(2024, 3, 5, tzinfo=UTC))
    assert live.qty == 1 and live.max_loss == (Decimal(10) - Decimal("0.60")) * 100
    state.status = OptionTradeStatus.CLOSED
    done = option_trade_write(spec, state, "option-trade-ic-1", datetime(2024, 3, 5, tzinfo=UTC))
    assert done.qty == 3 and done.max_loss == (Decimal(10) - Decimal("0.60")) * 100 * 3


def test_a_condor_needs_its_width_and_its_short_legs_of_options_buying_power() -> None:
    spec = _spec(qty=2)  # 10 wide; short put mid 0.42, short call mid 0.52
    assert options_requirement_usd(spec) == (Decimal(10) + Decimal("0.94")) * 100 * 2
