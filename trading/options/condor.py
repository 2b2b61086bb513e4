"""The iron condor planner: one short put spread and one short call spread, same expiry.

Pure: a chain, the session date and a config in; a `CondorPlan` or a `CondorRefusal` with a
stable `CondorReason` out. Prices are per share; dollar amounts are * 100 * qty.

Rules, in the order they are checked:
- Expiry: the expiries whose days to expiry (expiry - today, calendar days) lie in
  [dte_min, dte_max]; the one nearest the middle of the window wins, the earlier on a tie.
  None -> `no_expiry_in_window`.
- Width: `wing_width` (dollars) must be a whole multiple of the expiry's strike step (the
  smallest gap between its adjacent strikes) -> else `width_not_strike_step`.
- Shorts: the put and the call whose |delta| is closest to `short_delta` (a tie goes to the
  strike further from the money), each within `max_delta_distance` of it ->
  else `no_strike_near_delta`; the short put's strike must be below the short call's ->
  else `shorts_cross`.
- Wings: the long put `wing_width` below the short put, the long call `wing_width` above the
  short call, both quoted -> else `wing_strike_missing`.
- Liquidity, every leg: (ask - bid) / mid <= `max_relative_spread` -> else `illiquid_spread`;
  open interest >= `min_open_interest` -> else `illiquid_open_interest`.
- Credit: credit at mids (short mids - long mids) / width >= `min_credit_to_width` ->
  else `credit_below_minimum`.

The plan's numbers: credit at mids and at the natural (sell at the bid, buy at the ask);
max loss = width * 100 * qty - credit (the worst case at expiry, beyond a wing); break-evens
= short put - credit and short call + credit (per share, at the mid credit); probability of
profit ~= 1 - |delta short put| - delta short call (a short's |delta| is read as its chance of
expiring in the money, so this is the chance both shorts expire worthless - a conservative
estimate, since the break-evens lie a credit beyond the shorts); probability of max loss
~= |delta long put| + delta long call (the chance of finishing beyond a wing).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from trading.models import Frozen
from trading.options.chain import (
    CONTRACT_MULTIPLIER,
    OptionChain,
    OptionContractQuote,
    OptionRight,
)

PROBABILITY_QUANTUM = Decimal("0.0001")
# Alpaca's options levels: 1 covered calls and cash-secured puts, 2 adds long calls and puts,
# 3 adds spreads - an iron condor is a multi-leg spread (docs.alpaca.markets, Options Trading).
SPREADS_LEVEL = 3
_ZERO = Decimal(0)
_ONE = Decimal(1)
_TWO = Decimal(2)


class IronCondorConfig(Frozen):
    """How to pick an iron condor: window, deltas, wing width, credit floor, liquidity, size."""

    dte_min: int = Field(default=30, ge=1)
    dte_max: int = Field(default=45, ge=1)
    short_delta: Decimal = Field(default=Decimal("0.16"), gt=0, lt=Decimal("0.5"))
    max_delta_distance: Decimal = Field(default=Decimal("0.05"), gt=0)
    wing_width: Decimal = Field(default=Decimal(5), gt=0)  # dollars between short and long
    min_credit_to_width: Decimal = Field(default=Decimal("0.25"), ge=0, lt=1)
    max_relative_spread: Decimal = Field(default=Decimal("0.30"), gt=0)
    min_open_interest: int = Field(default=100, ge=0)
    qty: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _window(self) -> Self:
        """The DTE window is not empty."""
        if self.dte_min > self.dte_max:
            raise ValueError(f"dte_min {self.dte_min} is above dte_max {self.dte_max}")
        return self


class CondorReason(StrEnum):
    """Why no condor was planned (stable codes; the detail names the numbers)."""

    NO_EXPIRY_IN_WINDOW = "no_expiry_in_window"
    WIDTH_NOT_STRIKE_STEP = "width_not_strike_step"
    NO_STRIKE_NEAR_DELTA = "no_strike_near_delta"
    SHORTS_CROSS = "shorts_cross"
    WING_STRIKE_MISSING = "wing_strike_missing"
    ILLIQUID_SPREAD = "illiquid_spread"
    ILLIQUID_OPEN_INTEREST = "illiquid_open_interest"
    CREDIT_BELOW_MINIMUM = "credit_below_minimum"


class CondorRefusal(Frozen):
    """No condor: the first rule the chain broke, and the numbers it compared."""

    underlying: str
    reason: CondorReason
    detail: str


class CondorPlan(Frozen):
    """An iron condor to open: its four legs, credit, risk, break-evens and probabilities."""

    underlying: str
    expiry: date
    dte: int
    qty: int
    width: Decimal  # per share, dollars between each short and its long
    short_put: OptionContractQuote
    long_put: OptionContractQuote
    short_call: OptionContractQuote
    long_call: OptionContractQuote
    credit_mid: Decimal  # per share, at the mids
    credit_natural: Decimal  # per share, selling at the bids and buying at the asks
    credit: Decimal  # dollars at the mids: credit_mid * 100 * qty
    credit_natural_usd: Decimal
    max_loss: Decimal  # dollars: width * 100 * qty - credit
    max_loss_natural: Decimal
    credit_to_width: Decimal
    break_even_low: Decimal
    break_even_high: Decimal
    probability_of_profit: Decimal
    probability_of_max_loss: Decimal
    detail: str


def days_to_expiry(expiry: date, today: date) -> int:
    """Calendar days from today to the expiry (0 on the expiry day)."""
    return (expiry - today).days


def _refuse(chain: OptionChain, reason: CondorReason, detail: str) -> CondorRefusal:
    return CondorRefusal(underlying=chain.underlying, reason=reason, detail=detail)


def _prob(value: Decimal) -> Decimal:
    return max(_ZERO, min(_ONE, value)).quantize(PROBABILITY_QUANTUM, rounding=ROUND_HALF_EVEN)


def pick_expiry(chain: OptionChain, today: date, config: IronCondorConfig) -> date | None:
    """The expiry in [dte_min, dte_max] nearest the window's middle (earlier on a tie)."""
    middle = Decimal(config.dte_min + config.dte_max) / _TWO
    inside = [
        e for e in chain.expiries() if config.dte_min <= days_to_expiry(e, today) <= config.dte_max
    ]
    if not inside:
        return None
    return min(inside, key=lambda e: (abs(days_to_expiry(e, today) - middle), e))


def pick_short(
    chain: OptionChain, expiry: date, right: OptionRight, target: Decimal
) -> OptionContractQuote | None:
    """The contract whose |delta| is closest to target; a tie goes further from the money."""
    with_delta = [c for c in chain.at(expiry, right) if c.delta is not None]
    if not with_delta:
        return None
    # Further from the money: lower strikes for puts, higher for calls.
    sign = 1 if right is OptionRight.PUT else -1
    return min(with_delta, key=lambda c: (abs(abs(c.delta or _ZERO) - target), sign * c.strike))


def _illiquid(
    legs: list[OptionContractQuote], config: IronCondorConfig
) -> tuple[CondorReason, str] | None:
    for leg in legs:
        spread = leg.relative_spread
        if spread is None or spread > config.max_relative_spread:
            shown = "no mid" if spread is None else f"{spread:.4f}"
            return (
                CondorReason.ILLIQUID_SPREAD,
                f"{leg.symbol} bid={leg.bid} ask={leg.ask} relative spread {shown} > "
                f"max {config.max_relative_spread}",
            )
    for leg in legs:
        if leg.open_interest < config.min_open_interest:
            return (
                CondorReason.ILLIQUID_OPEN_INTEREST,
                f"{leg.symbol} open interest {leg.open_interest} < min {config.min_open_interest}",
            )
    return None


def plan_iron_condor(
    chain: OptionChain, today: date, config: IronCondorConfig
) -> CondorPlan | CondorRefusal:
    """An iron condor from the chain, or the first rule that refuses one (see the module)."""
    expiry = pick_expiry(chain, today, config)
    if expiry is None:
        found = ", ".join(f"{e}({days_to_expiry(e, today)}d)" for e in chain.expiries())
        return _refuse(
            chain,
            CondorReason.NO_EXPIRY_IN_WINDOW,
            f"no expiry with {config.dte_min}-{config.dte_max} days to expiry "
            f"on {today}; chain has [{found}]",
        )
    dte = days_to_expiry(expiry, today)
    width = config.wing_width
    step = chain.strike_step(expiry)
    if step is None or width % step != 0:
        return _refuse(
            chain,
            CondorReason.WIDTH_NOT_STRIKE_STEP,
            f"wing width {width} is not a multiple of the strike step {step} on {expiry}",
        )
    short_put = pick_short(chain, expiry, OptionRight.PUT, config.short_delta)
    short_call = pick_short(chain, expiry, OptionRight.CALL, config.short_delta)
    for right, short in ((OptionRight.PUT, short_put), (OptionRight.CALL, short_call)):
        distance = None if short is None else abs(abs(short.delta or _ZERO) - config.short_delta)
        if short is None or distance is None or distance > config.max_delta_distance:
            nearest = (
                "none with a delta" if short is None else f"{short.symbol} delta={short.delta}"
            )
            return _refuse(
                chain,
                CondorReason.NO_STRIKE_NEAR_DELTA,
                f"no {right} on {expiry} within {config.max_delta_distance} of delta "
                f"{config.short_delta}; nearest {nearest}",
            )
    assert short_put is not None and short_call is not None  # checked in the loop
    if short_put.strike >= short_call.strike:
        return _refuse(
            chain,
            CondorReason.SHORTS_CROSS,
            f"short put {short_put.strike} is not below short call {short_call.strike}",
        )
    long_put = chain.find(expiry, OptionRight.PUT, short_put.strike - width)
    long_call = chain.find(expiry, OptionRight.CALL, short_call.strike + width)
    if long_put is None or long_call is None:
        missing = (
            f"put {short_put.strike - width}"
            if long_put is None
            else f"call {short_call.strike + width}"
        )
        return _refuse(
            chain,
            CondorReason.WING_STRIKE_MISSING,
            f"no {missing} on {expiry} for a {width} wing",
        )
    legs = [short_put, long_put, short_call, long_call]
    illiquid = _illiquid(legs, config)
    if illiquid is not None:
        return _refuse(chain, *illiquid)
    credit_mid = short_put.mid + short_call.mid - long_put.mid - long_call.mid
    credit_natural = short_put.bid + short_call.bid - long_put.ask - long_call.ask
    ratio = credit_mid / width
    if ratio < config.min_credit_to_width:
        return _refuse(
            chain,
            CondorReason.CREDIT_BELOW_MINIMUM,
            f"credit {credit_mid} / width {width} = {ratio:.4f} < min {config.min_credit_to_width}",
        )
    per_contract = Decimal(CONTRACT_MULTIPLIER * config.qty)
    credit = credit_mid * per_contract
    credit_natural_usd = credit_natural * per_contract
    risk = width * per_contract
    pop = _prob(_ONE - abs(short_put.delta or _ZERO) - abs(short_call.delta or _ZERO))
    wing_deltas = [leg.delta for leg in (long_put, long_call)]
    p_max_loss = _prob(sum((abs(d) for d in wing_deltas if d is not None), _ZERO))
    return CondorPlan(
        underlying=chain.underlying,
        expiry=expiry,
        dte=dte,
        qty=config.qty,
        width=width,
        short_put=short_put,
        long_put=long_put,
        short_call=short_call,
        long_call=long_call,
        credit_mid=credit_mid,
        credit_natural=credit_natural,
        credit=credit,
        credit_natural_usd=credit_natural_usd,
        max_loss=risk - credit,
        max_loss_natural=risk - credit_natural_usd,
        credit_to_width=ratio,
        break_even_low=short_put.strike - credit_mid,
        break_even_high=short_call.strike + credit_mid,
        probability_of_profit=pop,
        probability_of_max_loss=p_max_loss,
        detail=(
            f"{chain.underlying} {expiry} ({dte}d) {long_put.strike}/{short_put.strike}p "
            f"{short_call.strike}/{long_call.strike}c x{config.qty}: credit {credit_mid} "
            f"(natural {credit_natural}) max loss {risk - credit} pop {pop}"
        ),
    )


def options_level_refusal(level: int | None) -> str | None:
    """Why the account cannot open an iron condor at this options level (None: it can, or the
    broker did not say - the order itself would then be refused)."""
    if level is None or level >= SPREADS_LEVEL:
        return None
    return (
        f"this account's options trading level is {level}; an iron condor is a multi-leg "
        f"spread, level {SPREADS_LEVEL}: raise the account's options level in the Alpaca "
        f"dashboard"
    )
