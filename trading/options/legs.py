"""Are a structure's legs still held as it opened them? (pure; asked before every close)

A closing mleg order buys back the shorts and sells the wings. Sent for legs the account no
longer holds, it would OPEN the opposite position (a short call bought back that is not there
is a new long call; a wing sold that is not there is a new naked short). So before a close
goes out the workflow reads the legs held and asks `legs_verdict`:

- `held`: every leg at its opening size (ratio x qty; long positive, short negative): close.
- `gone`: no leg held at all: the structure was closed (or expired, or was assigned) outside
  the workflow; nothing is sent and the trade ends as `closed_outside`.
- `mismatch`: anything else (a leg closed, assigned or resized elsewhere): nothing is sent, the
  numbers are reported, and the check repeats each check interval until a person (or the
  legs) make it `held` or `gone`.
"""

from __future__ import annotations

from decimal import Decimal
from enum import StrEnum

from pydantic import Field

from trading.broker_models import OrderSide
from trading.models import Frozen
from trading.options.trade_models import OptionLeg

CLOSED_OUTSIDE = "closed_outside"  # the exit reason when no leg is held any more
# How the trade's note (and so its ledger row) starts while a mismatch holds its close back;
# the day report finds held-back closes by it.
CLOSE_HELD_BACK = "close held back"


def held_back_note(detail: str) -> str:
    """The trade's note while its close is held back: the prefix, then the legs' numbers."""
    return f"{CLOSE_HELD_BACK}, the legs held do not match the trade: {detail}"


class LegsHeldRequest(Frozen):
    """The signed quantities held of these option symbols."""

    symbols: list[str] = Field(min_length=1)


class LegsHeld(Frozen):
    """Signed contracts held per symbol (a symbol not held is 0)."""

    held: dict[str, Decimal]


class LegsVerdict(StrEnum):
    """What the legs held say about closing the structure."""

    HELD = "held"
    GONE = "gone"
    MISMATCH = "mismatch"


class LegsCheck(Frozen):
    """The verdict and the numbers behind it."""

    verdict: LegsVerdict
    detail: str


def expected_qty(leg: OptionLeg, qty: int) -> Decimal:
    """What opening left held of this leg: + for a bought leg, - for a sold one."""
    size = Decimal(leg.ratio_qty * qty)
    return size if leg.side is OrderSide.BUY else -size


def legs_verdict(legs: list[OptionLeg], qty: int, held: LegsHeld) -> LegsCheck:
    """held / gone / mismatch (see the module), with every leg's held and expected numbers."""
    rows = [
        (leg.symbol, held.held.get(leg.symbol, Decimal(0)), expected_qty(leg, qty)) for leg in legs
    ]
    detail = ", ".join(f"{symbol} held {have} expected {want}" for symbol, have, want in rows)
    if all(have == want for _, have, want in rows):
        return LegsCheck(verdict=LegsVerdict.HELD, detail=detail)
    if all(have == 0 for _, have, _ in rows):
        return LegsCheck(verdict=LegsVerdict.GONE, detail=detail)
    return LegsCheck(verdict=LegsVerdict.MISMATCH, detail=detail)
