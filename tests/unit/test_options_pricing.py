"""Option pricing and OCC symbols: parity, no arbitrage across strikes, greeks, tick grid."""

from __future__ import annotations

import itertools
import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from paperbroker.calendar import nyse_calendar
from paperbroker.options_contracts import (
    OccSymbol,
    OptionRight,
    OptionUniverse,
    contract_id_for,
    format_occ,
    listed_expiries,
    parse_occ,
    strike_step,
)
from paperbroker.options_pricing import (
    RISK_FREE_RATE,
    OptionPricer,
    black_scholes,
    implied_volatility,
    is_on_option_grid,
    years_to_expiry,
)
from paperbroker.prices import PriceEngine, SymbolParams

NOW = datetime(2024, 4, 10, 15, 0, tzinfo=UTC)
EXPIRY = date(2024, 5, 17)


@pytest.fixture(scope="module")
def pricer() -> OptionPricer:
    calendar = nyse_calendar()
    engine = PriceEngine([SymbolParams(symbol="AAPL", price=Decimal("190"))], 7, NOW, calendar)
    return OptionPricer(engine, calendar)


def occ(right: OptionRight, strike: Decimal, expiry: date = EXPIRY) -> OccSymbol:
    return OccSymbol("AAPL", expiry, right, strike)


def test_occ_symbols_round_trip() -> None:
    parsed = parse_occ("AAPL240419C00190000")
    assert parsed == OccSymbol("AAPL", date(2024, 4, 19), OptionRight.CALL, Decimal("190"))
    assert parsed.symbol == "AAPL240419C00190000"
    assert parse_occ("f240419p00011500").strike == Decimal("11.5")
    assert format_occ("SPY", date(2024, 12, 20), "put", Decimal("512.5")) == "SPY241220P00512500"
    assert contract_id_for("AAPL240419C00190000") == contract_id_for("aapl240419c00190000")
    for bad in ("AAPL", "AAPL240419X00190000", "AAPL241332C00190000", "AAPL240419C00000000"):
        with pytest.raises(ValueError):
            parse_occ(bad)


@given(
    st.sampled_from(["A", "F", "AAPL", "GOOGL", "BRKB"]),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    st.sampled_from(list(OptionRight)),
    st.integers(min_value=1, max_value=99_999_999),
)
def test_format_then_parse_is_identity(
    root: str, expiry: date, right: OptionRight, milli: int
) -> None:
    strike = Decimal(milli) / 1000
    parsed = parse_occ(format_occ(root, expiry, right, strike))
    assert (parsed.underlying, parsed.expiry, parsed.right, parsed.strike) == (
        root,
        expiry,
        right,
        strike,
    )


def test_expiries_are_fridays_or_the_session_before_a_holiday_friday() -> None:
    calendar = nyse_calendar()
    expiries = listed_expiries(date(2024, 3, 20), calendar)
    # 2024-03-29 is Good Friday: that week's options expire on Thursday the 28th.
    assert date(2024, 3, 28) in expiries and date(2024, 3, 29) not in expiries
    assert date(2024, 4, 19) in expiries and date(2024, 5, 17) in expiries  # monthlies
    assert all(e.weekday() in (3, 4) and calendar.session_on(e) for e in expiries)
    assert max(expiries) <= date(2024, 3, 20) + timedelta(days=90)


def test_strike_grid_by_price() -> None:
    assert strike_step(Decimal("11.5")) == 1
    assert strike_step(Decimal("190")) == Decimal("2.5")
    assert strike_step(Decimal("520")) == 5


def test_universe_lists_calls_and_puts_around_the_price(pricer: OptionPricer) -> None:
    universe = OptionUniverse(pricer.prices, pricer.calendar)
    contracts = universe.contracts("AAPL", NOW)
    strikes = sorted({c.occ.strike for c in contracts})
    spot = pricer.spot("AAPL", NOW)
    assert strikes[0] < spot < strikes[-1]
    assert {c.occ.right for c in contracts} == {OptionRight.CALL, OptionRight.PUT}
    assert universe.contracts("AAPL", NOW) == contracts
    first = contracts[0]
    assert universe.lookup(str(first.id), NOW) == first
    assert universe.lookup(first.symbol, NOW) == first
    assert universe.lookup("AAPL240419C00190100", NOW) is None  # off the strike grid
    assert universe.lookup("AAPL240418C00190000", NOW) is None  # not an expiry day


@given(st.decimals(min_value=Decimal("0"), max_value=Decimal("500"), places=4))
def test_quotes_sit_on_the_tick_grid(value: Decimal) -> None:
    assert is_on_option_grid(Decimal("2.99")) and not is_on_option_grid(Decimal("3.01"))
    from paperbroker.options_pricing import ceil_option_price, floor_option_price

    down, up = floor_option_price(value), ceil_option_price(value)
    assert is_on_option_grid(down) and is_on_option_grid(up)
    assert down <= value <= up or value < Decimal("0.01")


def test_put_call_parity_holds_within_the_spread(pricer: OptionPricer) -> None:
    for strike in (Decimal("170"), Decimal("190"), Decimal("212.5")):
        call = pricer.quote(occ(OptionRight.CALL, strike), NOW)
        put = pricer.quote(occ(OptionRight.PUT, strike), NOW)
        years = years_to_expiry(call.occ, NOW)
        forward = float(call.underlying_price) - float(strike) * math.exp(-RISK_FREE_RATE * years)
        assert float(call.mid - put.mid) == pytest.approx(forward, abs=2e-4)
        assert float(call.bid - put.ask) <= forward <= float(call.ask - put.bid)


@settings(max_examples=200, deadline=None)
@given(
    spot=st.floats(min_value=1, max_value=2000),
    base=st.floats(min_value=0.02, max_value=3.0),
    days=st.integers(min_value=0, max_value=365),
    steps=st.sampled_from([Decimal("0.5"), Decimal(1), Decimal("2.5"), Decimal(5), Decimal(10)]),
)
def test_no_arbitrage_across_strikes(
    pricer: OptionPricer, spot: float, base: float, days: int, steps: Decimal
) -> None:
    expiry = NOW.date() + timedelta(days=days)
    centre = (Decimal(repr(spot)) / steps).to_integral_value() * steps
    strikes = [centre + i * steps for i in range(-40, 41) if centre + i * steps > 0]
    underlying = Decimal(repr(round(spot, 2)))
    for right, falling in ((OptionRight.CALL, True), (OptionRight.PUT, False)):
        quotes = [pricer.quote_at(occ(right, k, expiry), NOW, underlying, base) for k in strikes]
        mids = [float(q.mid) for q in quotes]
        pairs = list(itertools.pairwise(mids))
        assert all((a >= b) if falling else (a <= b) for a, b in pairs)
        bids = [q.bid for q in quotes]
        asks = [q.ask for q in quotes]
        for lo, hi in (*itertools.pairwise(bids), *itertools.pairwise(asks)):
            assert (lo >= hi) if falling else (lo <= hi)
        # Butterflies cost something: a convex price curve (up to the 4-decimal mid rounding).
        for x, y, z in zip(mids, mids[1:], mids[2:], strict=False):
            assert x - 2 * y + z >= -2e-4
        assert all(q.bid < q.ask and is_on_option_grid(q.bid) for q in quotes)


def test_greeks_have_the_textbook_signs(pricer: OptionPricer) -> None:
    call = pricer.quote(occ(OptionRight.CALL, Decimal("190")), NOW)
    put = pricer.quote(occ(OptionRight.PUT, Decimal("190")), NOW)
    assert 0 < call.delta < 1 and -1 < put.delta < 0
    assert call.delta - put.delta == pytest.approx(1.0, abs=1e-9)
    assert call.gamma > 0 and put.gamma == pytest.approx(call.gamma)
    assert call.vega > 0 and put.vega == pytest.approx(call.vega)
    assert call.theta < 0 and put.theta < 0
    assert call.rho > 0 > put.rho


def test_implied_volatility_recovers_the_surface(pricer: OptionPricer) -> None:
    quote = pricer.quote(occ(OptionRight.CALL, Decimal("195")), NOW)
    years = years_to_expiry(quote.occ, NOW)
    theo = black_scholes(
        OptionRight.CALL, float(quote.underlying_price), 195.0, years, quote.iv, RISK_FREE_RATE
    )
    iv = implied_volatility(
        OptionRight.CALL, theo, float(quote.underlying_price), 195.0, years, RISK_FREE_RATE
    )
    assert iv == pytest.approx(quote.iv, rel=1e-6)


def test_iv_overrides_move_prices_and_reset_with_the_engine() -> None:
    calendar = nyse_calendar()
    engine = PriceEngine([SymbolParams(symbol="AAPL", price=Decimal("190"))], 7, NOW, calendar)
    pricer = OptionPricer(engine, calendar)
    contract = occ(OptionRight.PUT, Decimal("180"))
    before = pricer.quote(contract, NOW)
    pricer.set_iv("AAPL", iv=0.6)
    higher = pricer.quote(contract, NOW)
    pricer.set_iv("AAPL", shift=-0.2)
    lower = pricer.quote(contract, NOW)
    assert before.mid < lower.mid < higher.mid
    assert pricer.base_iv("AAPL", NOW) == pytest.approx(0.4)


def test_expired_contracts_are_worth_their_intrinsic_value(pricer: OptionPricer) -> None:
    expired = occ(OptionRight.CALL, Decimal("150"), date(2024, 4, 5))
    quote = pricer.quote(expired, NOW)
    assert quote.mid == pytest.approx(quote.underlying_price - 150, abs=Decimal("0.0001"))
    assert quote.gamma == 0 and quote.delta == 1
