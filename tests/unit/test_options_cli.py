"""The options commands' pure parts: chain mapping from alpaca-py's shapes, input checks, and
`condor open`'s refusals (an expiry the exit rules would close at once, a leg an open option
trade holds)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from types import SimpleNamespace

import pytest

from broker.options import ListedContract, build_chain
from cli.condor import (
    claimed_message,
    expiry_too_close,
    parse_delta,
    parse_qty,
)
from cli.condor_entry import claimed_legs
from cli.options import OptionsInputError, check_width, parse_symbol, parse_width
from tests.unit.test_option_positions import condor_legs, plan, row
from trading.options.adoption import adopted_condor_plan
from trading.options.chain import OptionRight, format_occ_symbol
from trading.options.exits import CondorExitRules
from trading.options.trade_models import OptionTradeStatus

D = Decimal
EXPIRY = date(2024, 3, 15)


def _listed(strike: int, right: OptionRight = OptionRight.CALL) -> ListedContract:
    return ListedContract(
        symbol=format_occ_symbol("XYZ", EXPIRY, right, D(strike)),
        underlying="XYZ",
        expiry=EXPIRY,
        right=right,
        strike=D(strike),
        open_interest=250,
    )


def _snapshot(bid: float, ask: float, delta: float) -> SimpleNamespace:
    """What alpaca-py's OptionsSnapshot offers the mapping (floats, as the SDK parses them)."""
    return SimpleNamespace(
        latest_quote=SimpleNamespace(bid_price=bid, ask_price=ask),
        greeks=SimpleNamespace(delta=delta, gamma=0.02, theta=-0.05, vega=0.1),
        implied_volatility=0.31,
    )


def test_chain_joins_quotes_by_symbol_keeps_no_market_and_drops_crossed_quotes() -> None:
    listed = [_listed(100), _listed(105), _listed(110), _listed(100, OptionRight.PUT)]
    snapshots = {
        listed[0].symbol: _snapshot(1.1, 1.3, 0.45),
        listed[1].symbol: _snapshot(0.9, 0.4, 0.30),  # crossed: bad data, left out
        listed[3].symbol: _snapshot(0.8, 0.9, -0.4),
    }
    chain = build_chain("XYZ", D(101), datetime(2024, 3, 5, tzinfo=UTC), listed, snapshots)
    by_strike = {(c.right, c.strike): c for c in chain.contracts}
    assert set(by_strike) == {
        (OptionRight.CALL, D(100)),
        (OptionRight.CALL, D(110)),
        (OptionRight.PUT, D(100)),
    }
    quoted = by_strike[(OptionRight.CALL, D(100))]
    assert (quoted.bid, quoted.ask, quoted.mid) == (D("1.1"), D("1.3"), D("1.2"))
    assert (quoted.delta, quoted.iv, quoted.open_interest) == (D("0.45"), D("0.31"), 250)
    no_market = by_strike[(OptionRight.CALL, D(110))]  # listed, no snapshot
    assert (no_market.bid, no_market.ask, no_market.delta) == (D(0), D(0), None)
    assert no_market.relative_spread is None
    only_puts = build_chain("XYZ", D(101), chain.as_of, listed, snapshots, date(2024, 3, 22))
    assert only_puts.contracts == []


def test_width_must_be_a_strike_step_multiple() -> None:
    chain = build_chain(
        "XYZ",
        D(101),
        datetime(2024, 3, 5, tzinfo=UTC),
        [_listed(100), _listed(105), _listed(110)],
        {},
    )
    check_width(chain, D(10), [EXPIRY])
    with pytest.raises(OptionsInputError, match=r"width 2\.5 is not a multiple of the strike step"):
        check_width(chain, D("2.5"), [EXPIRY])


@pytest.mark.parametrize(
    ("parse", "text", "message"),
    [
        (parse_symbol, "a/b", "not a stock symbol"),
        (parse_width, "-5", "--width must be a positive"),
        (parse_width, "five", "--width must be a positive"),
        (parse_delta, "0.5", r"--delta must be between 0 and 0\.5"),
        (parse_qty, "1.5", "--qty must be a whole number"),
        (parse_qty, "0", "--qty must be a whole number"),
    ],
)
def test_bad_values_say_what_was_expected(parse: object, text: str, message: str) -> None:
    with pytest.raises(OptionsInputError, match=message):
        parse(text)  # type: ignore[operator]


def test_good_values_and_defaults() -> None:
    assert parse_symbol(" aapl ") == "AAPL"
    assert (parse_width(None), parse_width("2.5")) == (D(5), D("2.5"))
    assert (parse_delta(None), parse_qty(None), parse_qty("3")) == (D("0.16"), 1, 3)


# ---- condor open: refusals -------------------------------------------------------------


def test_an_expiry_at_or_inside_the_close_at_dte_is_refused_with_what_to_pick() -> None:
    assert expiry_too_close(EXPIRY, 10) == (
        "expiry 2024-03-15 is 10 days out; condors are closed at 21 days to expiry: "
        "pick an expiry more than 21 days out"
    )
    assert expiry_too_close(EXPIRY, 21) is not None
    assert expiry_too_close(EXPIRY, 22) is None
    assert expiry_too_close(EXPIRY, 5, CondorExitRules(close_at_dte=0)) is None


def test_a_plan_sharing_a_contract_with_an_open_trade_names_the_contract_and_the_trade() -> None:
    legs = condor_legs()
    (condor,) = plan(legs, []).adoptions
    condor_plan = adopted_condor_plan(condor)
    symbols = [p.symbol for p in legs]
    assert claimed_legs(condor_plan, []) == []
    closed = row("done", symbols).model_copy(
        update={"status": OptionTradeStatus.CLOSED, "closed_at": datetime(2024, 3, 5, tzinfo=UTC)}
    )
    assert claimed_legs(condor_plan, [closed]) == []
    # Another open trade on the same put spread but other calls: the two put legs are its.
    other = row("ic-1", [*symbols[:2], "SPY240308C00600000", "SPY240308C00610000"])
    claimed = claimed_legs(condor_plan, [closed, other])
    assert [(c.symbol, c.trade_id) for c in claimed] == [(s, "ic-1") for s in symbols[:2]]
    message = claimed_message(claimed)
    assert f"{symbols[0]} is a leg of open option trade ic-1 (OPEN)" in message
    assert "pick another --expiry, --delta or --width, or close ic-1 first" in message
    closing = row("ic-2", symbols, status=OptionTradeStatus.CLOSING)
    assert [c.trade_id for c in claimed_legs(condor_plan, [closing])] == ["ic-2"] * 4
