"""Option quotes: Black-Scholes on a simple volatility surface, quoted on the OPRA tick grid.

Model (documented here because market data, fills and tests all depend on it):

* Underlying S: the stock's mid from `prices.py` at the instant asked.
* Time T: calendar time to the expiry's 16:00 New York close, in years of 365 days (floored
  at one minute; at and after the close a contract is worth its intrinsic value).
* Rate: `RISK_FREE_RATE` (4 %, continuously compounded); no dividends. Prices are European
  Black-Scholes: with no dividends an American call is worth the European one, and the small
  early-exercise premium of American puts is ignored.
* Volatility surface: sigma(K, T) = atm * smile(k, w), atm = base * term(T), k = ln(K / S),
  w = atm^2 T (the at-the-money total variance),
  base = the symbol's path volatility (times its current `set_volatility` scale) unless
  `/_sim/options/iv` set one, plus any shift set there;
  term(T) = 1 + TERM_SLOPE * (sqrt(T) - sqrt(30/365)) (contango: longer dates carry more
  volatility, so total variance grows with T); smile(k, w) = 1 + (SKEW k + SMILE k^2) / (1 + w)
  (SKEW < 0: downside strikes richer, the equity skew; the quadratic keeps it positive; the
  1 / (1 + w) damping flattens the smile where total variance is large - a steep smile on a
  high-vol, long-dated surface prices butterflies below zero), with
  k saturated smoothly at +-SMILE_CAP (k -> SMILE_CAP tanh(k / SMILE_CAP)) so far wings go flat
  instead of growing without bound (which would price far strikes above nearer ones).
  The slopes are mild so prices stay free of butterfly arbitrage on the listed strikes
  (a hypothesis test checks calls fall, puts rise and both are convex in strike).
* Spread: width = max(tick, SPREAD_FRACTION * mid * (1 + OTM_WIDENING * |k| / (sigma sqrt T)))
  - wider the further out of the money; bid floored and ask ceiled onto the tick grid.
* Tick grid: $0.01 below $3.00 and $0.05 from $3.00 up - the Penny Interval Program's
  increments (OPRA / Cboe rule 5.4). Alpaca flags penny-program classes with `ppind`
  (https://docs.alpaca.markets/changelog, 2026-09-23); classes outside the program trade in
  $0.05 / $0.10, so quoting every class on the penny grid is the looser reading for the
  increment but every quote it produces is also a valid price inside the program.
* Greeks: delta (per $1 of S), gamma (per $1), theta (per calendar day), vega (per 1 vol
  point, i.e. 0.01 of sigma), rho (per 1 % of rate) - the units Alpaca's snapshot greeks use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, time
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from weakref import WeakKeyDictionary

from paperbroker.calendar import NEW_YORK, MarketCalendar
from paperbroker.options_contracts import OccSymbol, OptionRight, PriceSource, engine_of
from paperbroker.prices import PriceEngine

RISK_FREE_RATE = 0.04
YEAR_SECONDS = 365 * 24 * 3600
MIN_TIME_YEARS = 60 / YEAR_SECONDS
EXPIRY_CLOSE = time(16, 0)
TERM_SLOPE = 0.2
TERM_PIVOT_YEARS = 30 / 365
SKEW = -0.15
SMILE = 0.3
SMILE_CAP = 0.5
SPREAD_FRACTION = 0.03
OTM_WIDENING = 0.25
PENNY = Decimal("0.01")
NICKEL = Decimal("0.05")
TICK_BREAK = Decimal(3)
MIN_IV = 0.01


@dataclass(frozen=True)
class Greeks:
    """Black-Scholes sensitivities in the units Alpaca quotes them."""

    delta: float
    gamma: float
    theta: float
    vega: float
    rho: float


@dataclass(frozen=True)
class OptionQuote:
    """A contract's quote at an instant: NBBO on the tick grid, theoretical mid, IV, greeks."""

    occ: OccSymbol
    time: datetime
    underlying_price: Decimal
    bid: Decimal
    ask: Decimal
    mid: Decimal
    iv: float
    greeks: Greeks
    bid_size: int
    ask_size: int

    @property
    def delta(self) -> float:
        """Return delta."""
        return self.greeks.delta

    @property
    def gamma(self) -> float:
        """Return gamma."""
        return self.greeks.gamma

    @property
    def theta(self) -> float:
        """Return theta per calendar day."""
        return self.greeks.theta

    @property
    def vega(self) -> float:
        """Return vega per vol point."""
        return self.greeks.vega

    @property
    def rho(self) -> float:
        """Return rho per 1 % of rate."""
        return self.greeks.rho


def _norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2))


def _norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def black_scholes(
    right: OptionRight, spot: float, strike: float, years: float, sigma: float, rate: float
) -> float:
    """Return the European Black-Scholes value (no dividends); intrinsic when years <= 0."""
    if years <= 0 or sigma <= 0:
        intrinsic = spot - strike if right is OptionRight.CALL else strike - spot
        return max(intrinsic, 0.0)
    root = sigma * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * sigma * sigma) * years) / root
    d2 = d1 - root
    discount = strike * math.exp(-rate * years)
    if right is OptionRight.CALL:
        return spot * _norm_cdf(d1) - discount * _norm_cdf(d2)
    return discount * _norm_cdf(-d2) - spot * _norm_cdf(-d1)


def bs_greeks(
    right: OptionRight, spot: float, strike: float, years: float, sigma: float, rate: float
) -> Greeks:
    """Return Black-Scholes greeks (theta per day, vega per vol point, rho per 1 %)."""
    if years <= 0 or sigma <= 0:
        itm = spot > strike if right is OptionRight.CALL else spot < strike
        delta = (1.0 if right is OptionRight.CALL else -1.0) if itm else 0.0
        return Greeks(delta, 0.0, 0.0, 0.0, 0.0)
    root = sigma * math.sqrt(years)
    d1 = (math.log(spot / strike) + (rate + 0.5 * sigma * sigma) * years) / root
    d2 = d1 - root
    discount = strike * math.exp(-rate * years)
    gamma = _norm_pdf(d1) / (spot * root)
    vega = spot * _norm_pdf(d1) * math.sqrt(years) / 100
    decay = -spot * _norm_pdf(d1) * sigma / (2 * math.sqrt(years))
    if right is OptionRight.CALL:
        delta = _norm_cdf(d1)
        theta = (decay - rate * discount * _norm_cdf(d2)) / 365
        rho = discount * years * _norm_cdf(d2) / 100
    else:
        delta = _norm_cdf(d1) - 1
        theta = (decay + rate * discount * _norm_cdf(-d2)) / 365
        rho = -discount * years * _norm_cdf(-d2) / 100
    return Greeks(delta, gamma, theta, vega, rho)


def tick_for_option(price: Decimal) -> Decimal:
    """Return the option tick: $0.01 below $3.00, $0.05 from $3.00 (Penny Interval Program)."""
    return PENNY if price < TICK_BREAK else NICKEL


def floor_option_price(value: Decimal) -> Decimal:
    """Round down onto the option tick grid (never below zero)."""
    if value <= 0:
        return Decimal("0.00")
    tick = tick_for_option(value)
    return ((value / tick).to_integral_value(ROUND_FLOOR) * tick).quantize(PENNY)


def ceil_option_price(value: Decimal) -> Decimal:
    """Round up onto the option tick grid (at least one cent)."""
    if value <= PENNY:
        return PENNY
    tick = tick_for_option(value)
    return ((value / tick).to_integral_value(ROUND_CEILING) * tick).quantize(PENNY)


def is_on_option_grid(price: Decimal) -> bool:
    """Return True when `price` is a valid option price increment."""
    tick = tick_for_option(price)
    return price >= 0 and (price / tick) == (price / tick).to_integral_value()


def years_to_expiry(occ: OccSymbol, when: datetime) -> float:
    """Return calendar years from `when` to the expiry's 16:00 New York close."""
    close = datetime.combine(occ.expiry, EXPIRY_CLOSE, NEW_YORK)
    return (close - when).total_seconds() / YEAR_SECONDS


def smile(log_moneyness: float, total_variance: float = 0.0) -> float:
    """Return 1 + (SKEW k + SMILE k^2) / (1 + w): k saturated at +-SMILE_CAP, damped by w."""
    k = SMILE_CAP * math.tanh(log_moneyness / SMILE_CAP)
    return 1 + (SKEW * k + SMILE * k * k) / (1 + total_variance)


def term(years: float) -> float:
    """Return the term factor 1 + TERM_SLOPE (sqrt(T) - sqrt(30/365))."""
    return 1 + TERM_SLOPE * (math.sqrt(max(years, 0.0)) - math.sqrt(TERM_PIVOT_YEARS))


def surface_iv(base: float, spot: float, strike: float, years: float) -> float:
    """Return sigma(K, T) = atm * smile(ln(K / S), atm^2 T), atm = base * term(T), >= MIN_IV."""
    atm = base * term(years)
    return max(MIN_IV, atm * smile(math.log(strike / spot), atm * atm * max(years, 0.0)))


def implied_volatility(
    right: OptionRight, price: float, spot: float, strike: float, years: float, rate: float
) -> float | None:
    """Return the sigma whose Black-Scholes value is `price` (bisection), or None."""
    if years <= 0:
        return None
    lo, hi = 1e-4, 5.0
    if (
        not black_scholes(right, spot, strike, years, lo, rate)
        <= price
        <= black_scholes(right, spot, strike, years, hi, rate)
    ):
        return None
    for _ in range(100):
        mid = (lo + hi) / 2
        if black_scholes(right, spot, strike, years, mid, rate) < price:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


@dataclass
class IvOverrides:
    """IV set through /_sim/options/iv: base levels and shifts per underlying."""

    base: dict[str, float] = field(default_factory=dict)
    shift: dict[str, float] = field(default_factory=dict)


# Overrides belong to a price engine, not to one pricer: every OptionPricer over the same
# engine (market data, order fills) sees them, and a reset (a new engine) drops them; a
# snapshot saves them and a restore puts them on its new engine (paperbroker/snapshot.py).
_IV_OVERRIDES: WeakKeyDictionary[PriceEngine, IvOverrides] = WeakKeyDictionary()


def iv_overrides(engine: PriceEngine) -> IvOverrides:
    """Return a copy of the IV overrides set on `engine` (empty when none were set)."""
    overrides = _IV_OVERRIDES.get(engine)
    if overrides is None:
        return IvOverrides()
    return IvOverrides(base=dict(overrides.base), shift=dict(overrides.shift))


def adopt_iv_overrides(engine: PriceEngine, overrides: IvOverrides) -> None:
    """Make (a copy of) `overrides` the IV overrides of `engine`, replacing any it had."""
    _IV_OVERRIDES[engine] = IvOverrides(base=dict(overrides.base), shift=dict(overrides.shift))


class OptionPricer:
    """Quotes any OCC contract on a priced underlying from the same paths stocks fill on."""

    def __init__(self, prices: PriceEngine | PriceSource, calendar: MarketCalendar) -> None:
        self._prices = prices
        self.calendar = calendar
        self.rate = RISK_FREE_RATE

    @property
    def prices(self) -> PriceEngine:
        """Return the live price engine (it changes on reset and restore)."""
        return engine_of(self._prices)

    def _overrides(self) -> IvOverrides:
        engine = self.prices
        overrides = _IV_OVERRIDES.get(engine)
        if overrides is None:
            overrides = _IV_OVERRIDES[engine] = IvOverrides()
        return overrides

    def set_iv(self, underlying: str, iv: float | None = None, shift: float | None = None) -> None:
        """Set the underlying's base IV (replacing any shift) and/or add a shift to it."""
        overrides = self._overrides()
        if iv is not None:
            if not iv > 0:
                raise ValueError("iv must be positive")
            overrides.base[underlying] = iv
            overrides.shift.pop(underlying, None)
        if shift is not None:
            overrides.shift[underlying] = overrides.shift.get(underlying, 0.0) + shift

    def base_iv(self, underlying: str, when: datetime) -> float:
        """Return the underlying's base IV at `when` (the surface's 30-day at-the-money level)."""
        overrides = self._overrides()
        base = overrides.base.get(underlying)
        if base is None:
            path = self.prices.path(underlying)
            scale = 1.0
            for segment in path.segments:
                if segment.start <= when:
                    scale = segment.vol_scale
            base = path.params.volatility * scale
        return max(MIN_IV, base + overrides.shift.get(underlying, 0.0))

    def spot(self, underlying: str, when: datetime) -> Decimal:
        """Return the underlying's mid at `when`."""
        return self.prices.quote(underlying, when).mid

    def quote(self, occ: OccSymbol, when: datetime) -> OptionQuote:
        """Return the contract's quote at `when` (KeyError when the underlying is not priced)."""
        spot = self.spot(occ.underlying, when)
        return self.quote_at(occ, when, spot, self.base_iv(occ.underlying, when))

    def quote_at(self, occ: OccSymbol, when: datetime, spot: Decimal, base: float) -> OptionQuote:
        """Return the quote for a given underlying mid and base IV (pure; used by tests)."""
        s, k = float(spot), float(occ.strike)
        years = years_to_expiry(occ, when)
        live = years > 0
        t = max(years, MIN_TIME_YEARS) if live else 0.0
        sigma = surface_iv(base, s, k, t)
        value = black_scholes(occ.right, s, k, t, sigma, self.rate)
        greeks = bs_greeks(occ.right, s, k, t, sigma, self.rate)
        mid = Decimal(repr(round(value, 4)))
        standardised = abs(math.log(k / s)) / (sigma * math.sqrt(max(t, MIN_TIME_YEARS)))
        width = max(
            float(PENNY), SPREAD_FRACTION * value * (1 + OTM_WIDENING * min(standardised, 8.0))
        )
        half = Decimal(repr(round(width / 2, 6)))
        bid = floor_option_price(mid - half)
        ask = ceil_option_price(mid + half)
        if ask <= bid:
            ask = ceil_option_price(bid + tick_for_option(bid))
        size = 1 + int(abs(greeks.delta) * 50) if live else 0
        return OptionQuote(
            occ=occ,
            time=when,
            underlying_price=spot,
            bid=bid,
            ask=ask,
            mid=mid,
            iv=sigma,
            greeks=greeks,
            bid_size=size,
            ask_size=size + 3,
        )
