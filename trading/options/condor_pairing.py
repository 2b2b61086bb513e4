"""Held option legs paired into iron condors: the ones reconcile may adopt, and the rest.

Given option legs the broker holds that no open option trade claims, `find_condors` says:

- adoptable condors: legs that form an iron condor - same underlying and expiry, long put <
  short put < short call < long call, all |qty| equal, shorts negative, and opened for a
  credit (short entry prices - long entry prices, per share, > 0). Each gets a deterministic
  trade id, so a repeated reconcile adopts the same structure under the same id.
- unmanaged legs: legs that form no such condor, each with the reason.

How legs are paired (deterministic): within one underlying, expiry and size, each short put
(highest strike first) takes the nearest unused long put below it and each short call (lowest
first) the nearest unused long call above it; put spreads (nearest the money first) then take
the nearest unused call spread whose short strike is above theirs, so condors nest rather
than cross. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal

from pydantic import Field

from trading.models import Frozen
from trading.options.chain import OccSymbol, OptionRight, parse_occ_symbol
from trading.options.trade_models import MAX_CLIENT_ORDER_ID

MAX_TRADE_ID = 32
ADOPTED_PREFIX = "ic-"


class OptionPosition(Frozen):
    """One option leg the broker holds: OCC symbol, signed contracts, prices per share."""

    symbol: str
    qty: Decimal  # contracts; negative for a short
    avg_entry_price: Decimal = Field(ge=0)
    current_price: Decimal | None = Field(default=None, ge=0)


class AdoptableCondor(Frozen):
    """Unclaimed legs that form an iron condor opened for a credit: adopt it as a trade."""

    trade_id: str = Field(min_length=1, max_length=MAX_TRADE_ID)
    underlying: str
    expiry: date
    dte: int  # calendar days from the planning day (New York) to the expiry
    qty: int = Field(ge=1)
    long_put: OptionPosition
    short_put: OptionPosition
    short_call: OptionPosition
    long_call: OptionPosition
    credit: Decimal = Field(gt=0)  # per share, from the legs' entry prices
    width: Decimal = Field(gt=0)  # the wider of the two spreads

    @property
    def legs(self) -> list[OptionPosition]:
        """Long put, short put, short call, long call."""
        return [self.long_put, self.short_put, self.short_call, self.long_call]

    @property
    def strikes(self) -> str:
        """`lp/sp p sc/lc c`, as the condor planner writes them."""
        s = [format(parse_occ_symbol(leg.symbol).strike, "f") for leg in self.legs]
        return f"{s[0]}/{s[1]}p {s[2]}/{s[3]}c"


class UnmanagedLeg(Frozen):
    """An unclaimed option leg reconcile does not adopt, and why."""

    symbol: str
    qty: Decimal
    reason: str


_Leg = tuple[OccSymbol, OptionPosition]


def find_condors(
    legs: Iterable[OptionPosition], today: date
) -> tuple[list[AdoptableCondor], list[UnmanagedLeg]]:
    """The iron condors these legs form (see the module for the pairing), and the rest."""
    groups: dict[tuple[str, date, Decimal], list[_Leg]] = defaultdict(list)
    unmanaged: list[UnmanagedLeg] = []
    for position in legs:
        if position.qty == 0:
            continue
        try:
            occ = parse_occ_symbol(position.symbol)
        except ValueError:
            unmanaged.append(_unmanaged(position, "not an OCC option symbol"))
            continue
        if position.qty != position.qty.to_integral_value():
            unmanaged.append(_unmanaged(position, "fractional contracts"))
            continue
        groups[(occ.underlying, occ.expiry, abs(position.qty))].append((occ, position))

    condors: list[AdoptableCondor] = []
    for key in sorted(groups):
        found, left = _condors_of(groups[key], today)
        condors += found
        unmanaged += left
    unmanaged.sort(key=lambda u: u.symbol)
    return condors, unmanaged


def _condors_of(group: list[_Leg], today: date) -> tuple[list[AdoptableCondor], list[UnmanagedLeg]]:
    """Condors within one underlying, expiry and size."""

    def pick(right: OptionRight, long: bool) -> list[_Leg]:
        chosen = [x for x in group if x[0].right is right and (x[1].qty > 0) is long]
        return sorted(chosen, key=lambda x: x[0].strike)

    long_puts, short_puts = pick(OptionRight.PUT, True), pick(OptionRight.PUT, False)
    long_calls, short_calls = pick(OptionRight.CALL, True), pick(OptionRight.CALL, False)
    put_spreads: list[tuple[_Leg, _Leg]] = []  # (long, short)
    for short in reversed(short_puts):
        below = [x for x in long_puts if x[0].strike < short[0].strike]
        if below:
            wing = below[-1]
            long_puts.remove(wing)
            put_spreads.append((wing, short))
    call_spreads: list[tuple[_Leg, _Leg]] = []  # (short, long)
    for short in short_calls:
        above = [x for x in long_calls if x[0].strike > short[0].strike]
        if above:
            wing = above[0]
            long_calls.remove(wing)
            call_spreads.append((short, wing))
    put_spreads.sort(key=lambda s: s[1][0].strike, reverse=True)
    call_spreads.sort(key=lambda s: s[0][0].strike)

    condors: list[AdoptableCondor] = []
    unmanaged: list[UnmanagedLeg] = []
    used: set[str] = set()
    for put_wing, put_short in put_spreads:
        call = next((c for c in call_spreads if c[0][0].strike > put_short[0].strike), None)
        if call is None:
            continue
        call_spreads.remove(call)
        legs = (put_wing[1], put_short[1], call[0][1], call[1][1])
        credit = legs[1].avg_entry_price + legs[2].avg_entry_price
        credit -= legs[0].avg_entry_price + legs[3].avg_entry_price
        used.update(leg.symbol for leg in legs)
        if credit <= 0:
            unmanaged += [
                _unmanaged(leg, f"iron condor opened for a debit of {-credit}: not adopted")
                for leg in legs
            ]
            continue
        condors.append(adoptable_condor(legs, put_short[0], credit, today))
    for _, position in group:
        if position.symbol not in used:
            unmanaged.append(
                _unmanaged(
                    position,
                    "not part of an iron condor (same underlying, expiry and size: "
                    "long put < short put < short call < long call)",
                )
            )
    return condors, unmanaged


def adoptable_condor(
    legs: tuple[OptionPosition, OptionPosition, OptionPosition, OptionPosition],
    short_put: OccSymbol,
    credit: Decimal,
    today: date,
) -> AdoptableCondor:
    """Long put, short put, short call and long call as a condor under its adopted trade id."""
    long_put, short_put_position, short_call, long_call = legs
    strikes = [parse_occ_symbol(leg.symbol).strike for leg in legs]
    width = max(strikes[1] - strikes[0], strikes[3] - strikes[2])
    qty = int(abs(short_put_position.qty))
    return AdoptableCondor(
        trade_id=adopted_trade_id(legs, qty),
        underlying=short_put.underlying,
        expiry=short_put.expiry,
        dte=(short_put.expiry - today).days,
        qty=qty,
        long_put=long_put,
        short_put=short_put_position,
        short_call=short_call,
        long_call=long_call,
        credit=credit,
        width=width,
    )


def _unmanaged(position: OptionPosition, reason: str) -> UnmanagedLeg:
    return UnmanagedLeg(symbol=position.symbol, qty=position.qty, reason=reason)


def adopted_trade_id(legs: Iterable[OptionPosition], qty: int) -> str:
    """`ic-<underlying>-<yymmdd>-<digest>`: the same legs, size and entry prices, the same id.

    The entry prices make a condor opened again later at the same strikes a new trade (an
    adopted trade's workflow id is used once).
    """
    legs = list(legs)
    occ = parse_occ_symbol(legs[0].symbol)
    identity = "|".join(
        [str(qty), *(f"{leg.symbol}@{leg.avg_entry_price.normalize()}" for leg in legs)]
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()[:10]
    root = "".join(c for c in occ.underlying.lower() if c.isalnum())[:6] or "x"
    trade_id = f"{ADOPTED_PREFIX}{root}-{occ.expiry:%y%m%d}-{digest}"
    assert len(trade_id) <= MAX_TRADE_ID and len(trade_id) + 8 <= MAX_CLIENT_ORDER_ID
    return trade_id
