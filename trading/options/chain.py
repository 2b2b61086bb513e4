"""Option chain values: one quoted contract, a chain for an underlying, and OCC symbols.

Prices are per share (a contract is 100 shares); a put's delta is negative. `mid` is taken
from the feed when given, else (bid + ask) / 2.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from itertools import pairwise
from typing import Any, Self

from pydantic import Field, model_validator

from trading.models import Frozen

CONTRACT_MULTIPLIER = 100
_STRIKE_SCALE = 1000  # OCC strikes are in thousandths of a dollar, 8 digits
_TWO = Decimal(2)


class OptionRight(StrEnum):
    """Call or put."""

    CALL = "call"
    PUT = "put"


class OccSymbol(Frozen):
    """The parts of an OCC option symbol, e.g. SPY261218P00450000."""

    underlying: str = Field(min_length=1, max_length=6)
    expiry: date
    right: OptionRight
    strike: Decimal = Field(gt=0)


def format_occ_symbol(underlying: str, expiry: date, right: OptionRight, strike: Decimal) -> str:
    """The OCC symbol: root, YYMMDD, C or P, strike * 1000 as 8 digits (no padding of the root)."""
    thousandths = strike * _STRIKE_SCALE
    if thousandths != thousandths.to_integral_value() or not 0 < thousandths < 10**8:
        raise ValueError(f"strike {strike} does not fit an OCC symbol")
    letter = "C" if right is OptionRight.CALL else "P"
    return f"{underlying}{expiry:%y%m%d}{letter}{int(thousandths):08d}"


def is_option_symbol(symbol: str) -> bool:
    """True for an OCC option symbol (`SPY261218P00450000`), False for a stock's."""
    try:
        parse_occ_symbol(symbol)
    except ValueError:
        return False
    return True


def parse_occ_symbol(symbol: str) -> OccSymbol:
    """The parts of an OCC symbol (the inverse of `format_occ_symbol`)."""
    if len(symbol) < 16:  # a root of at least one letter, YYMMDD, C/P and 8 strike digits
        raise ValueError(f"not an OCC option symbol: {symbol!r}")
    root, tail = symbol[:-15], symbol[-15:]
    letter, digits = tail[6], tail[7:]
    if not root or letter not in "CP" or not tail[:6].isdigit() or not digits.isdigit():
        raise ValueError(f"not an OCC option symbol: {symbol!r}")
    expiry = datetime.strptime(tail[:6], "%y%m%d").date()
    right = OptionRight.CALL if letter == "C" else OptionRight.PUT
    strike = (Decimal(digits) / _STRIKE_SCALE).normalize()
    return OccSymbol(underlying=root, expiry=expiry, right=right, strike=strike)


class OptionContractQuote(Frozen):
    """One contract of a chain: identity, quote (per share), greeks and interest."""

    symbol: str  # OCC
    underlying: str
    expiry: date
    right: OptionRight
    strike: Decimal = Field(gt=0)
    bid: Decimal = Field(ge=0)
    ask: Decimal = Field(ge=0)
    mid: Decimal = Field(ge=0)
    delta: Decimal | None = None  # negative for a put; None when the feed has none
    gamma: Decimal | None = None
    theta: Decimal | None = None
    vega: Decimal | None = None
    iv: Decimal | None = None
    open_interest: int = Field(default=0, ge=0)
    volume: int | None = Field(default=None, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _mid_from_quote(cls, data: Any) -> Any:
        """Fill a missing mid with (bid + ask) / 2."""
        if isinstance(data, dict) and data.get("mid") is None and "bid" in data and "ask" in data:
            return {**data, "mid": (Decimal(data["bid"]) + Decimal(data["ask"])) / _TWO}
        return data

    @model_validator(mode="after")
    def _ask_not_below_bid(self) -> Self:
        """A crossed quote is bad data."""
        if self.ask < self.bid:
            raise ValueError(f"{self.symbol}: ask {self.ask} is below bid {self.bid}")
        return self

    @property
    def relative_spread(self) -> Decimal | None:
        """(ask - bid) / mid, or None when the mid is zero (no market)."""
        if self.mid <= 0:
            return None
        return (self.ask - self.bid) / self.mid


class OptionChain(Frozen):
    """The quoted contracts of one underlying at one moment."""

    underlying: str
    underlying_price: Decimal = Field(gt=0)
    as_of: datetime
    contracts: list[OptionContractQuote]

    def expiries(self) -> list[date]:
        """The distinct expiries, earliest first."""
        return sorted({c.expiry for c in self.contracts})

    def at(self, expiry: date, right: OptionRight) -> list[OptionContractQuote]:
        """The contracts of one expiry and right, by strike."""
        chosen = [c for c in self.contracts if c.expiry == expiry and c.right is right]
        return sorted(chosen, key=lambda c: (c.strike, c.symbol))

    def find(self, expiry: date, right: OptionRight, strike: Decimal) -> OptionContractQuote | None:
        """The contract at exactly this expiry, right and strike, if quoted."""
        for contract in self.at(expiry, right):
            if contract.strike == strike:
                return contract
        return None

    def strike_step(self, expiry: date) -> Decimal | None:
        """The smallest gap between adjacent strikes of an expiry (None with < 2 strikes)."""
        strikes = sorted({c.strike for c in self.contracts if c.expiry == expiry})
        gaps = [high - low for low, high in pairwise(strikes)]
        return min(gaps) if gaps else None
