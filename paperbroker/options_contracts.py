"""Listed option contracts per underlying: OCC symbols, expiries, strikes, contract ids.

The universe is deterministic: it depends only on the underlying's price path, the calendar
and the broker clock, so the same clock and seed list the same contracts.

* Expiries (from the broker clock's New York date): weekly Fridays out to
  `WEEKLY_HORIZON_DAYS`, monthly third Fridays out to `MONTHLY_HORIZON_DAYS`. A Friday that
  is a market holiday (Good Friday, Juneteenth on a Friday ...) expires on the session day
  before it, as the OCC does.
* Strikes: `STRIKES_EACH_SIDE` steps either side of the underlying's mid at the previous
  session's close, on a grid of $1 below $50, $2.50 below $200 and $5 from $200 up.
* Calls and puts, American style, 100 shares, status active (inactive once expired).

OCC symbols follow the OCC's 21-character option symbology without the padding Alpaca
drops: root, `YYMMDD`, `C`/`P`, strike x 1000 in 8 digits (`AAPL240419C00190000`), as
Alpaca's `GET /v2/options/contracts` returns them
(https://docs.alpaca.markets/reference/get-options-contracts).
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Protocol
from uuid import NAMESPACE_URL, UUID, uuid5

from paperbroker.assets import asset_id_for
from paperbroker.calendar import NEW_YORK, MarketCalendar
from paperbroker.prices import PriceEngine

WEEKLY_HORIZON_DAYS = 45
MONTHLY_HORIZON_DAYS = 90
STRIKES_EACH_SIDE = 20
CONTRACT_SIZE = 100
OCC_PATTERN = re.compile(r"^([A-Z][A-Z0-9.]{0,5})(\d{6})([CP])(\d{8})$")
STRIKE_SCALE = Decimal(1000)


class OptionRight(StrEnum):
    """Call or put (Alpaca's `type`)."""

    CALL = "call"
    PUT = "put"


@dataclass(frozen=True, order=True)
class OccSymbol:
    """A parsed OCC option symbol."""

    underlying: str
    expiry: date
    right: OptionRight
    strike: Decimal

    @property
    def symbol(self) -> str:
        """Return the OCC symbol text (`AAPL240419C00190000`)."""
        return format_occ(self.underlying, self.expiry, self.right, self.strike)


def format_occ(underlying: str, expiry: date, right: OptionRight | str, strike: Decimal) -> str:
    """Format an OCC symbol: root, YYMMDD, C/P, strike x 1000 zero-padded to 8 digits."""
    scaled = strike * STRIKE_SCALE
    if scaled != scaled.to_integral_value() or not 0 < scaled < 10**8:
        raise ValueError(f"strike {strike} cannot be written in an OCC symbol")
    flag = "C" if OptionRight(right) is OptionRight.CALL else "P"
    return f"{underlying.upper()}{expiry:%y%m%d}{flag}{int(scaled):08d}"


def parse_occ(symbol: str) -> OccSymbol:
    """Parse an OCC symbol (`AAPL240419C00190000`); ValueError when it is not one."""
    match = OCC_PATTERN.match(symbol.strip().upper())
    if match is None:
        raise ValueError(f"not an OCC option symbol: {symbol!r}")
    root, yymmdd, flag, strike = match.groups()
    try:
        # OCC years are two digits of the 2000s (strptime's %y would read 69-99 as 19xx).
        expiry = date(2000 + int(yymmdd[:2]), int(yymmdd[2:4]), int(yymmdd[4:]))
    except ValueError as exc:
        raise ValueError(f"invalid expiry in option symbol: {symbol!r}") from exc
    right = OptionRight.CALL if flag == "C" else OptionRight.PUT
    value = Decimal(int(strike)) / STRIKE_SCALE
    if value <= 0:
        raise ValueError(f"invalid strike in option symbol: {symbol!r}")
    return OccSymbol(root, expiry, right, _plain(value))


def is_occ_symbol(symbol: str) -> bool:
    """Return True when `symbol` parses as an OCC option symbol."""
    try:
        parse_occ(symbol)
    except ValueError:
        return False
    return True


def contract_id_for(symbol: str) -> UUID:
    """Return the contract's stable id (a uuid5 of its OCC symbol)."""
    return uuid5(NAMESPACE_URL, f"paperbroker/option/{symbol.upper()}")


def strike_step(price: Decimal) -> Decimal:
    """Return the strike grid for an underlying price: $1 < $50, $2.50 < $200, else $5."""
    if price < 50:
        return Decimal(1)
    if price < 200:
        return Decimal("2.5")
    return Decimal(5)


def third_friday(year: int, month: int) -> date:
    """Return the third Friday of a month (the standard monthly expiry)."""
    first = date(year, month, 1)
    return first + timedelta(days=(4 - first.weekday()) % 7 + 14)


def expiry_on_calendar(friday: date, calendar: MarketCalendar) -> date:
    """Move a holiday Friday's expiry to the session day before it."""
    day = friday
    while calendar.session_on(day) is None and day > friday - timedelta(days=7):
        day -= timedelta(days=1)
    return day


def listed_expiries(today: date, calendar: MarketCalendar) -> list[date]:
    """Weekly Fridays to WEEKLY_HORIZON_DAYS and monthly third Fridays to MONTHLY_HORIZON_DAYS."""
    fridays: set[date] = set()
    first = today + timedelta(days=(4 - today.weekday()) % 7)
    day = first
    while day <= today + timedelta(days=WEEKLY_HORIZON_DAYS):
        fridays.add(day)
        day += timedelta(days=7)
    year, month = today.year, today.month
    while True:
        monthly = third_friday(year, month)
        if monthly > today + timedelta(days=MONTHLY_HORIZON_DAYS):
            break
        if monthly >= today:
            fridays.add(monthly)
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    expiries = {expiry_on_calendar(f, calendar) for f in fridays}
    return sorted(e for e in expiries if e >= today)


def is_standard_expiry(day: date, calendar: MarketCalendar) -> bool:
    """Return True for a Friday session or the session before a holiday Friday."""
    friday = day + timedelta(days=(4 - day.weekday()) % 7)
    return calendar.session_on(day) is not None and expiry_on_calendar(friday, calendar) == day


@dataclass(frozen=True)
class OptionContract:
    """One listed option contract, as GET /v2/options/contracts describes it."""

    occ: OccSymbol
    status: str
    open_interest: int
    open_interest_date: date | None

    @property
    def symbol(self) -> str:
        """Return the OCC symbol."""
        return self.occ.symbol

    @property
    def id(self) -> UUID:
        """Return the stable contract id."""
        return contract_id_for(self.symbol)

    def json(self, close_price: Decimal | None, close_price_date: date | None) -> dict[str, object]:
        """Render like Alpaca's OptionContract (strings for money, as Alpaca sends them)."""
        occ = self.occ
        right = "Call" if occ.right is OptionRight.CALL else "Put"
        return {
            "id": str(self.id),
            "symbol": self.symbol,
            "name": f"{occ.underlying} {occ.expiry:%b %d %Y} {occ.strike:f} {right}",
            "status": self.status,
            "tradable": self.status == "active",
            "expiration_date": occ.expiry.isoformat(),
            "root_symbol": occ.underlying,
            "underlying_symbol": occ.underlying,
            "underlying_asset_id": str(asset_id_for(occ.underlying)),
            "type": occ.right.value,
            "style": "american",
            "strike_price": f"{occ.strike:f}",
            "multiplier": str(CONTRACT_SIZE),
            "size": str(CONTRACT_SIZE),
            "open_interest": str(self.open_interest),
            "open_interest_date": self.open_interest_date.isoformat()
            if self.open_interest_date
            else None,
            "close_price": None if close_price is None else f"{close_price:f}",
            "close_price_date": close_price_date.isoformat() if close_price_date else None,
        }


class PriceSource(Protocol):
    """Anything that exposes the current PriceEngine (the broker)."""

    prices: PriceEngine


def engine_of(prices: PriceEngine | PriceSource) -> PriceEngine:
    """Return the live engine: the engine itself, or the source's current one."""
    return prices if isinstance(prices, PriceEngine) else prices.prices


class OptionUniverse:
    """The listed contracts of every priced stock symbol at a broker instant."""

    def __init__(self, prices: PriceEngine | PriceSource, calendar: MarketCalendar) -> None:
        self._prices = prices
        self.calendar = calendar

    @property
    def prices(self) -> PriceEngine:
        """Return the live price engine."""
        return engine_of(self._prices)

    def underlyings(self) -> list[str]:
        """Return the stock symbols that have options (every priced symbol), sorted."""
        return sorted(self.prices.paths)

    def reference_price(self, underlying: str, now: datetime) -> Decimal:
        """Return the underlying's mid at the last regular close before `now` (strike centre)."""
        path = self.prices.path(underlying)
        session = self.calendar.previous_session(now)
        while session is not None and session.close > now:
            session = self.calendar.previous_session(session.open - timedelta(seconds=1))
        return path.mid(session.close if session is not None else now)

    def strikes(self, underlying: str, now: datetime) -> list[Decimal]:
        """Return the listed strikes: STRIKES_EACH_SIDE grid steps either side of the centre."""
        ref = self.reference_price(underlying, now)
        step = strike_step(ref)
        centre = (ref / step).to_integral_value() * step
        strikes = (centre + i * step for i in range(-STRIKES_EACH_SIDE, STRIKES_EACH_SIDE + 1))
        return [s.normalize() if s == s.to_integral_value() else s for s in strikes if s > 0]

    def contracts(self, underlying: str, now: datetime) -> list[OptionContract]:
        """Return the underlying's listed contracts, by expiry, right (call first), strike."""
        today = now.astimezone(NEW_YORK).date()
        strikes = self.strikes(underlying, now)
        ref, oi_day = self.reference_price(underlying, now), self._open_interest_day(today, now)
        out: list[OptionContract] = []
        for expiry in listed_expiries(today, self.calendar):
            for right in (OptionRight.CALL, OptionRight.PUT):
                for strike in strikes:
                    occ = OccSymbol(underlying, expiry, right, _plain(strike))
                    out.append(self._contract(occ, today, ref, oi_day))
        return out

    def lookup(self, symbol_or_id: str, now: datetime) -> OptionContract | None:
        """Return the contract for an OCC symbol or contract id, or None if not listed."""
        try:
            occ = parse_occ(symbol_or_id)
        except ValueError:
            return self._by_id(symbol_or_id, now)
        if not self.prices.has(occ.underlying):
            return None
        today = now.astimezone(NEW_YORK).date()
        if occ.expiry > today + timedelta(days=MONTHLY_HORIZON_DAYS) or not is_standard_expiry(
            occ.expiry, self.calendar
        ):
            return None
        ref = self.reference_price(occ.underlying, now)
        # Strikes listed earlier stay listed after the underlying moves: accept the grid
        # within half the price either side, not only today's centred window.
        steps = occ.strike / strike_step(ref)
        on_grid = steps == steps.to_integral_value() and ref / 2 <= occ.strike <= ref * 3 / 2
        if not on_grid and occ.strike not in self.strikes(occ.underlying, now):
            return None
        return self._contract(occ, today, ref, self._open_interest_day(today, now))

    def _by_id(self, raw: str, now: datetime) -> OptionContract | None:
        try:
            wanted = UUID(raw)
        except ValueError:
            return None
        for underlying in self.underlyings():
            for contract in self.contracts(underlying, now):
                if contract.id == wanted:
                    return contract
        return None

    def _open_interest_day(self, today: date, now: datetime) -> date | None:
        """Open interest is as of the last session before today (OCC publishes it overnight)."""
        previous = self.calendar.previous_session(now)
        while previous is not None and previous.day >= today:
            previous = self.calendar.previous_session(previous.open - timedelta(seconds=1))
        return previous.day if previous is not None else None

    @staticmethod
    def _contract(occ: OccSymbol, today: date, ref: Decimal, oi_day: date | None) -> OptionContract:
        status = "active" if occ.expiry >= today else "inactive"
        return OptionContract(occ, status, open_interest(occ, ref), oi_day)


def open_interest(occ: OccSymbol, reference: Decimal) -> int:
    """Deterministic open interest: a hash of the symbol, largest near the money."""
    digest = hashlib.sha256(occ.symbol.encode()).digest()
    base = 200 + int.from_bytes(digest[:4], "big") % 4800
    moneyness = math.log(float(occ.strike) / float(reference)) if reference > 0 else 0.0
    return int(base * math.exp(-(moneyness**2) / 0.02))


def _plain(strike: Decimal) -> Decimal:
    return (
        strike.quantize(Decimal(1)) if strike == strike.to_integral_value() else strike.normalize()
    )
