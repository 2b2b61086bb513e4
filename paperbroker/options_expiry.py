"""Option payoffs at expiry: the defined-risk requirement, and exercise / assignment / expiry.

Pure functions over frozen values (no broker state), unit-tested on their own.

Sources (the stricter reading where they differ):
* Alpaca "Options Trading" (docs.alpaca.markets/docs/options-trading): trading levels 0-3;
  level 1 sells covered calls and cash-secured puts, level 2 buys calls and puts, level 3
  adds call and put spreads; uncovered (naked) short calls are not offered at any level.
  Contracts are for 100 shares. ITM contracts are exercised automatically at expiry;
  Alpaca's expiry handling runs after the close of the expiration date.
* Alpaca "Non-Trade Activities for Option Events": exercise (OPEXC), assignment (OPASN)
  and expiry (OPEXP) are non-trade activities: the option position goes, the underlying
  moves at the strike; no order and no trade_updates event.
* OCC exercise by exception: a contract in the money by $0.01 or more is exercised.
* Alpaca "Options Level 3 Trading" (docs.alpaca.markets/docs/options-level-3-trading) and the
  levels table of "Options Trading": spreads are level 3, uncovered (naked) short calls are
  offered at no level. A long leg covers a short leg only while it lives: once a long that
  expires before the short is gone, the short is naked. So only a long expiring on or after
  the short covers it (a reverse calendar's short call is uncovered; its short put must be
  cash-secured on its own).
* Alpaca support "What is automatic exercise" (alpaca.markets/support/what-is-automatic-exercise):
  "If your account has long available shares to cover the exercise deliverables of the put
  contract, the put will be exercised ... if your account does not have enough available
  shares to cover the exercise deliverable, and the put is in-the-money, the put contract will
  either be closed prior the market close or a do not exercise may be placed after the close";
  shares securing a covered call "would not be considered available to sell". Support "What
  happens when my long call or put option position expires" says the same. The stricter
  reading: an ITM long put is exercised only for the whole contracts the available shares
  deliver (held before expiry, less shares securing short calls or held for sell orders);
  the rest get a do-not-exercise and expire (OPEXP), never short stock.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum

from paperbroker.options_contracts import parse_occ

CONTRACT_MULTIPLIER = Decimal(100)
EXERCISE_THRESHOLD = Decimal("0.01")
ZERO = Decimal(0)


class Right(StrEnum):
    """Call or put."""

    CALL = "call"
    PUT = "put"


@dataclass(frozen=True)
class Contract:
    """One option contract named by its OCC symbol (e.g. SPY240308C00510000)."""

    symbol: str
    underlying: str
    expiry: date
    right: Right
    strike: Decimal


def parse_contract(symbol: str) -> Contract | None:
    """Return the contract an OCC symbol names (options_contracts.parse_occ), or None."""
    try:
        occ = parse_occ(symbol)
    except ValueError:
        return None
    return Contract(
        symbol=occ.symbol,
        underlying=occ.underlying,
        expiry=occ.expiry,
        right=Right(occ.right.value),
        strike=occ.strike,
    )


@dataclass(frozen=True)
class Holding:
    """A signed number of contracts (positive long, negative short)."""

    contract: Contract
    contracts: Decimal


def intrinsic(contract: Contract, spot: Decimal) -> Decimal:
    """Return the per-share value of the contract exercised at `spot`."""
    if contract.right is Right.CALL:
        return max(ZERO, spot - contract.strike)
    return max(ZERO, contract.strike - spot)


def settlement_value(holdings: list[Holding], spot: Decimal, shares: Decimal = ZERO) -> Decimal:
    """Return what the holdings (and covering shares) are worth at expiry, underlying at `spot`."""
    value = shares * spot
    for holding in holdings:
        value += holding.contracts * intrinsic(holding.contract, spot) * CONTRACT_MULTIPLIER
    return value


def settlement_requirement(holdings: list[Holding], shares: Decimal = ZERO) -> Decimal | None:
    """Return the cash that covers the worst settlement of one underlying's holdings.

    Checked at each expiry date that has a short: only the holdings still alive then (expiring
    on or after it) count, so a long that expires first never covers a later short. None means
    an uncovered short call, which no Alpaca level allows.
    """
    worst = ZERO
    for expiry in sorted({h.contract.expiry for h in holdings if h.contracts < 0}):
        alive = [h for h in holdings if h.contract.expiry >= expiry]
        needed = _requirement_at_once(alive, shares)
        if needed is None:
            return None
        worst = max(worst, needed)
    return worst


def _requirement_at_once(holdings: list[Holding], shares: Decimal) -> Decimal | None:
    """Return the worst settlement of holdings taken as expiring together (None: uncovered).

    The payoff is piecewise linear in the underlying, so its minimum is at 0, at a strike,
    or (when the slope above the highest strike is negative) unbounded. Long shares of the
    underlying cover short calls (covered calls, level 1), never more than the calls they
    cover. Later-expiring longs are taken at intrinsic value, a lower bound.
    """
    call_slope = (
        sum((h.contracts for h in holdings if h.contract.right is Right.CALL), ZERO)
        * CONTRACT_MULTIPLIER
    )
    cover = ZERO
    if call_slope < 0 and shares > 0:
        cover = min(shares - shares % CONTRACT_MULTIPLIER, -call_slope)
    if call_slope + cover < 0:
        return None
    points = {ZERO, *(h.contract.strike for h in holdings)}
    worst = min(settlement_value(holdings, spot, cover) for spot in points)
    return max(ZERO, -worst)


def requirement_by_underlying(
    holdings: list[Holding], shares: dict[str, Decimal]
) -> Decimal | None:
    """Return the summed settlement requirement of every underlying (None if any is uncovered)."""
    groups: dict[str, list[Holding]] = {}
    for holding in holdings:
        groups.setdefault(holding.contract.underlying, []).append(holding)
    total = ZERO
    for underlying, group in groups.items():
        needed = settlement_requirement(group, max(ZERO, shares.get(underlying, ZERO)))
        if needed is None:
            return None
        total += needed
    return total


class Outcome(StrEnum):
    """What happens to a position at expiry or on an exercise request."""

    EXERCISE = "exercise"
    ASSIGNMENT = "assignment"
    EXPIRE = "expire"


@dataclass(frozen=True)
class ExpiryAction:
    """One position's fate: the option goes; `shares` of the underlying move at the strike."""

    symbol: str
    outcome: Outcome
    contracts: Decimal
    underlying: str
    shares: Decimal
    cash: Decimal
    strike: Decimal


def is_in_the_money(contract: Contract, spot: Decimal) -> bool:
    """Return True when the contract is in the money by at least $0.01 (exercise by exception)."""
    return intrinsic(contract, spot) >= EXERCISE_THRESHOLD


def exercise(holding: Holding) -> ExpiryAction:
    """Return the action of exercising (long) or being assigned (short) on the whole holding."""
    contract, contracts = holding.contract, holding.contracts
    per_call = contracts * CONTRACT_MULTIPLIER
    # A call delivers shares to the long side; a put takes them from it.
    shares = per_call if contract.right is Right.CALL else -per_call
    return ExpiryAction(
        symbol=contract.symbol,
        outcome=Outcome.EXERCISE if contracts > 0 else Outcome.ASSIGNMENT,
        contracts=contracts,
        underlying=contract.underlying,
        shares=shares,
        cash=-shares * contract.strike,
        strike=contract.strike,
    )


def expiry_actions(
    holdings: list[Holding], spots: dict[str, Decimal], available: dict[str, Decimal] | None = None
) -> list[ExpiryAction]:
    """Return each holding's fate: ITM longs exercised, ITM shorts assigned, OTM expire.

    An ITM long put is exercised only for the whole contracts that `available` shares of its
    underlying deliver (Alpaca "What is automatic exercise"); the rest get a do-not-exercise
    and expire. Without `available`, no shares are available.
    """
    left = dict(available or {})
    actions: list[ExpiryAction] = []
    for holding in holdings:
        contract = holding.contract
        if not is_in_the_money(contract, spots[contract.underlying]):
            actions.append(_expire(holding))
            continue
        if contract.right is Right.CALL or holding.contracts < 0:
            actions.append(exercise(holding))
            continue
        shares = left.get(contract.underlying, ZERO)
        deliverable = min(holding.contracts, max(ZERO, shares // CONTRACT_MULTIPLIER))
        left[contract.underlying] = shares - deliverable * CONTRACT_MULTIPLIER
        if deliverable > 0:
            actions.append(exercise(Holding(contract=contract, contracts=deliverable)))
        if deliverable < holding.contracts:
            rest = Holding(contract=contract, contracts=holding.contracts - deliverable)
            actions.append(_expire(rest))  # do not exercise: no shares to deliver
    return actions


def _expire(holding: Holding) -> ExpiryAction:
    """Return the action of a holding that expires worthless (or is not exercised)."""
    return ExpiryAction(
        symbol=holding.contract.symbol,
        outcome=Outcome.EXPIRE,
        contracts=holding.contracts,
        underlying=holding.contract.underlying,
        shares=ZERO,
        cash=ZERO,
        strike=holding.contract.strike,
    )
