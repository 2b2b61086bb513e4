"""The iron condor planner on a hand-built chain: exact legs and numbers, and every refusal."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal

import pytest

from trading.options.chain import (
    OptionChain,
    OptionContractQuote,
    OptionRight,
    format_occ_symbol,
    parse_occ_symbol,
)
from trading.options.condor import (
    CondorPlan,
    CondorReason,
    CondorRefusal,
    IronCondorConfig,
    plan_iron_condor,
)

D = Decimal
TODAY = date(2026, 12, 1)
TARGET = date(2027, 1, 8)  # 38 days: nearest the middle (37.5) of 30-45
OTHER_EXPIRIES = [date(2026, 12, 18), date(2027, 1, 15), date(2027, 2, 19)]  # 17, 45, 80 days

# (right, strike): (bid, ask, delta)
Quotes = dict[tuple[OptionRight, int], tuple[str, str, str | None]]
QUOTES: Quotes = {
    (OptionRight.PUT, 80): ("0.30", "0.40", "-0.05"),
    (OptionRight.PUT, 85): ("0.70", "0.80", "-0.10"),
    (OptionRight.PUT, 90): ("1.50", "1.60", "-0.17"),
    (OptionRight.PUT, 95): ("2.60", "2.75", "-0.30"),
    (OptionRight.PUT, 100): ("4.40", "4.60", "-0.50"),
    (OptionRight.CALL, 100): ("4.40", "4.60", "0.50"),
    (OptionRight.CALL, 105): ("2.50", "2.65", "0.30"),
    (OptionRight.CALL, 110): ("1.40", "1.50", "0.15"),
    (OptionRight.CALL, 115): ("0.60", "0.70", "0.08"),
    (OptionRight.CALL, 120): ("0.26", "0.34", "0.04"),
}


def quote(
    expiry: date,
    right: OptionRight,
    strike: int,
    bid: str,
    ask: str,
    delta: str | None,
    open_interest: int = 500,
) -> OptionContractQuote:
    return OptionContractQuote(
        symbol=format_occ_symbol("XYZ", expiry, right, D(strike)),
        underlying="XYZ",
        expiry=expiry,
        right=right,
        strike=D(strike),
        bid=D(bid),
        ask=D(ask),
        mid=(D(bid) + D(ask)) / 2,
        delta=None if delta is None else D(delta),
        open_interest=open_interest,
    )


def chain(
    quotes: Mapping[tuple[OptionRight, int], tuple[str, str, str | None]] | None = None,
    expiries: list[date] | None = None,
) -> OptionChain:
    quotes = QUOTES if quotes is None else quotes
    contracts = [
        quote(expiry, right, strike, *values)
        for expiry in (expiries or [TARGET, *OTHER_EXPIRIES])
        for (right, strike), values in quotes.items()
    ]
    return OptionChain(
        underlying="XYZ",
        underlying_price=D(100),
        as_of=datetime(2026, 12, 1, 15, tzinfo=UTC),
        contracts=contracts,
    )


def plan(config: IronCondorConfig | None = None, of: OptionChain | None = None) -> CondorPlan:
    result = plan_iron_condor(of or chain(), TODAY, config or IronCondorConfig())
    assert isinstance(result, CondorPlan), result
    return result


def refusal(
    config: IronCondorConfig, of: OptionChain | None = None, today: date = TODAY
) -> CondorRefusal:
    result = plan_iron_condor(of or chain(), today, config)
    assert isinstance(result, CondorRefusal), result
    return result


def test_the_defaults() -> None:
    config = IronCondorConfig()
    assert (config.dte_min, config.dte_max) == (30, 45)
    assert config.short_delta == D("0.16")
    assert config.wing_width == D(5)
    assert config.min_credit_to_width == D("0.25")
    assert config.qty == 1


def test_the_known_chain_gives_exact_strikes_credit_risk_and_break_evens() -> None:
    result = plan()
    assert result.expiry == TARGET and result.dte == 38
    assert (result.long_put.strike, result.short_put.strike) == (D(85), D(90))
    assert (result.short_call.strike, result.long_call.strike) == (D(110), D(115))
    assert result.short_put.right is OptionRight.PUT and result.long_call.right is OptionRight.CALL
    # mids: 1.55 + 1.45 - 0.75 - 0.65; natural: 1.50 + 1.40 - 0.80 - 0.70
    assert result.credit_mid == D("1.60")
    assert result.credit_natural == D("1.40")
    assert result.credit == D(160)
    assert result.credit_natural_usd == D(140)
    assert result.max_loss == D(340)  # 5 * 100 - 160
    assert result.max_loss_natural == D(360)
    assert result.credit_to_width == D("0.32")
    assert (result.break_even_low, result.break_even_high) == (D("88.40"), D("111.60"))
    assert result.probability_of_profit == D("0.68")  # 1 - 0.17 - 0.15
    assert result.probability_of_max_loss == D("0.18")  # 0.10 + 0.08


def test_quantity_scales_the_dollars_not_the_per_share_numbers() -> None:
    result = plan(IronCondorConfig(qty=3))
    assert result.credit_mid == D("1.60")
    assert result.credit == D(480)
    assert result.max_loss == D(1020)  # 5 * 100 * 3 - 480


def test_a_wider_wing_on_the_step_reaches_further_strikes() -> None:
    config = IronCondorConfig(wing_width=D(10), min_credit_to_width=D("0.2"))
    result = plan(config)
    assert (result.long_put.strike, result.long_call.strike) == (D(80), D(120))
    assert result.credit_mid == D("2.35")  # 1.55 + 1.45 - 0.35 - 0.30
    assert result.max_loss == D(765)  # 10 * 100 - 235
    # the same wing is below the default 0.25 credit-to-width
    default = refusal(IronCondorConfig(wing_width=D(10)))
    assert default.reason is CondorReason.CREDIT_BELOW_MINIMUM


def test_the_expiry_nearest_the_window_middle_wins_and_the_earlier_on_a_tie() -> None:
    assert plan().expiry == TARGET
    # 35 and 40 days are both 2.5 from 37.5: the earlier one
    tied = chain(expiries=[date(2027, 1, 5), date(2027, 1, 10)])
    assert plan(of=tied).expiry == date(2027, 1, 5)
    # both ends of the window count
    edge = chain(expiries=[date(2026, 12, 31), date(2027, 3, 1)])  # 30 and 90 days
    assert plan(of=edge).dte == 30


def test_no_expiry_in_the_window_is_refused() -> None:
    result = refusal(IronCondorConfig(), chain(expiries=[date(2026, 12, 30), date(2027, 1, 16)]))
    assert result.reason is CondorReason.NO_EXPIRY_IN_WINDOW  # 29 and 46 days
    assert "29d" in result.detail and "46d" in result.detail


@pytest.mark.parametrize("width", [D("2.5"), D("7.5"), D(3)])
def test_a_width_off_the_strike_step_is_refused(width: Decimal) -> None:
    result = refusal(IronCondorConfig(wing_width=width))
    assert result.reason is CondorReason.WIDTH_NOT_STRIKE_STEP
    assert "strike step 5" in result.detail


def test_no_strike_near_the_target_delta_is_refused() -> None:
    # puts at 0.30 and 0.50 are 0.10 from 0.40; the limit is 0.05
    result = refusal(IronCondorConfig(short_delta=D("0.40")))
    assert result.reason is CondorReason.NO_STRIKE_NEAR_DELTA
    # exactly at the distance still plans: 0.17 is 0.02 from 0.15 and 0.15 is 0
    assert plan(IronCondorConfig(short_delta=D("0.15"), max_delta_distance=D("0.02"))).short_put


def test_contracts_without_deltas_cannot_be_shorts() -> None:
    bare = {key: (bid, ask, None) for key, (bid, ask, _) in QUOTES.items()}
    result = refusal(IronCondorConfig(), chain(bare))
    assert result.reason is CondorReason.NO_STRIKE_NEAR_DELTA
    assert "none with a delta" in result.detail


def test_crossed_shorts_are_refused() -> None:
    quotes = dict(QUOTES)
    quotes[(OptionRight.PUT, 90)] = ("1.50", "1.60", "-0.40")
    quotes[(OptionRight.PUT, 100)] = ("4.40", "4.60", "-0.16")
    quotes[(OptionRight.CALL, 110)] = ("1.40", "1.50", "0.40")
    quotes[(OptionRight.CALL, 100)] = ("4.40", "4.60", "0.16")
    quotes[(OptionRight.PUT, 105)] = ("6.00", "6.20", "-0.70")
    quotes[(OptionRight.CALL, 95)] = ("6.00", "6.20", "0.70")
    quotes[(OptionRight.CALL, 90)] = ("9.00", "9.20", "0.80")
    result = refusal(IronCondorConfig(), chain(quotes))
    assert result.reason is CondorReason.SHORTS_CROSS


def test_a_missing_wing_strike_is_refused() -> None:
    result = refusal(IronCondorConfig(wing_width=D(15)))  # no 75 put
    assert result.reason is CondorReason.WING_STRIKE_MISSING
    assert "put 75" in result.detail
    no_call = {k: v for k, v in QUOTES.items() if k != (OptionRight.CALL, 115)}
    result = refusal(IronCondorConfig(), chain(no_call))
    assert result.reason is CondorReason.WING_STRIKE_MISSING
    assert "call 115" in result.detail


def test_an_illiquid_spread_on_any_leg_is_refused() -> None:
    # the 85 put: 0.10 / 0.75 = 0.1333; the shorts are tighter
    result = refusal(IronCondorConfig(max_relative_spread=D("0.13")))
    assert result.reason is CondorReason.ILLIQUID_SPREAD
    assert "P00085000" in result.detail
    # the widest leg is the 115 call: 0.10 / 0.65 = 0.1538...
    assert plan(IronCondorConfig(max_relative_spread=D("0.16")))


def test_a_leg_without_a_mid_is_illiquid() -> None:
    quotes = dict(QUOTES)
    quotes[(OptionRight.CALL, 115)] = ("0", "0", "0.08")
    result = refusal(IronCondorConfig(), chain(quotes))
    assert result.reason is CondorReason.ILLIQUID_SPREAD
    assert "no mid" in result.detail


def test_thin_open_interest_is_refused() -> None:
    result = refusal(IronCondorConfig(min_open_interest=501))
    assert result.reason is CondorReason.ILLIQUID_OPEN_INTEREST
    assert plan(IronCondorConfig(min_open_interest=500))  # at the minimum: allowed


def test_credit_below_the_minimum_ratio_is_refused() -> None:
    result = refusal(IronCondorConfig(min_credit_to_width=D("0.3201")))
    assert result.reason is CondorReason.CREDIT_BELOW_MINIMUM
    assert "0.3200" in result.detail
    assert plan(IronCondorConfig(min_credit_to_width=D("0.32")))  # exactly at it: allowed


def test_a_config_with_an_empty_window_is_invalid() -> None:
    with pytest.raises(ValueError, match="dte_min"):
        IronCondorConfig(dte_min=46, dte_max=45)


def test_occ_symbols_round_trip() -> None:
    symbol = format_occ_symbol("SPY", date(2026, 12, 18), OptionRight.PUT, D("452.5"))
    assert symbol == "SPY261218P00452500"
    parsed = parse_occ_symbol(symbol)
    assert (parsed.underlying, parsed.expiry, parsed.right, parsed.strike) == (
        "SPY",
        date(2026, 12, 18),
        OptionRight.PUT,
        D("452.5"),
    )
    with pytest.raises(ValueError):
        parse_occ_symbol("SPY261218X00452500")
    with pytest.raises(ValueError):
        format_occ_symbol("SPY", date(2026, 12, 18), OptionRight.CALL, D("1.0001"))


def test_a_missing_mid_is_the_middle_of_the_quote_and_a_crossed_quote_is_refused() -> None:
    contract = OptionContractQuote.model_validate(
        {
            "symbol": "XYZ270108P00090000",
            "underlying": "XYZ",
            "expiry": TARGET,
            "right": "put",
            "strike": "90",
            "bid": "1.50",
            "ask": "1.60",
        }
    )
    assert contract.mid == D("1.55")
    with pytest.raises(ValueError, match="below bid"):
        quote(TARGET, OptionRight.PUT, 90, "1.60", "1.50", "-0.17")
