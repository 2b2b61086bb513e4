"""aiohttp handlers for options: contracts (/v2/options), market data (/v1beta1/options), IV.

Shapes follow Alpaca's references for GET /v2/options/contracts (filters, `limit` default 100
and max 10000, `page_token` / `next_page_token`) and the v1beta1 options market data
endpoints (latest quotes and trades, bars, snapshots and the per-underlying chain with
`greeks` and `impliedVolatility`), as alpaca-py 0.44 reads them
(https://docs.alpaca.markets/reference/get-options-contracts,
https://docs.alpaca.markets/reference/optionchain). Both feeds (`opra`, `indicative`) serve
the same simulated quotes. Options trade in the regular session only, so "latest" outside it
means the last regular close, and bars cover regular-session minutes only.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from aiohttp import web

from paperbroker.calendar import NEW_YORK, MarketCalendar
from paperbroker.errors import CODE_INVALID, CODE_NOT_FOUND, ApiError, bad_body
from paperbroker.http_data import MARKET_DATA_KEY, _paginate, _untoken, _window
from paperbroker.http_trading import BROKER_KEY, json_response
from paperbroker.marketdata import Bar, MarketData, parse_timeframe
from paperbroker.options_contracts import (
    OccSymbol,
    OptionContract,
    OptionRight,
    OptionUniverse,
    PriceSource,
    parse_occ,
)
from paperbroker.options_pricing import OptionPricer, OptionQuote, tick_for_option
from paperbroker.serialize import ts

CONTRACTS_DEFAULT_LIMIT = 100
CONTRACTS_MAX_LIMIT = 10_000
SNAPSHOTS_DEFAULT_LIMIT = 100
SNAPSHOTS_MAX_LIMIT = 1000
MAX_SYMBOLS = 100
FEEDS = ("opra", "indicative")
EXCHANGE = "C"


@dataclass(frozen=True)
class OptionsDesk:
    """The contract universe and the pricer, shared by the options routes."""

    universe: OptionUniverse
    pricer: OptionPricer


OPTIONS_KEY = web.AppKey("options", OptionsDesk)
options_routes = web.RouteTableDef()


def register_options(app: web.Application, source: PriceSource, calendar: MarketCalendar) -> None:
    """Add the options routes to `app`, pricing from `source`'s live engine."""
    app[OPTIONS_KEY] = OptionsDesk(OptionUniverse(source, calendar), OptionPricer(source, calendar))
    app.add_routes(options_routes)


# ---- parameters ---------------------------------------------------------------------------
def _trading_bad(message: str) -> ApiError:
    return ApiError(422, message, 42210000)


def _data_bad(message: str) -> ApiError:
    return ApiError(400, message, CODE_INVALID)


def _param(request: web.Request, name: str) -> str | None:
    raw = request.query.get(name)
    return None if raw is None or raw in ("", "None") else raw.strip()


def _date(request: web.Request, name: str, bad: Any) -> date | None:
    raw = _param(request, name)
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw[:10])
    except ValueError as exc:
        raise bad(f"invalid {name}: {raw}") from exc


def _number(request: web.Request, name: str, bad: Any) -> Decimal | None:
    raw = _param(request, name)
    if raw is None:
        return None
    try:
        value = Decimal(raw)
    except ArithmeticError as exc:
        raise bad(f"invalid {name}: {raw}") from exc
    if not value.is_finite():
        raise bad(f"invalid {name}: {raw}")
    return value


def _int(request: web.Request, name: str, default: int, cap: int, bad: Any) -> int:
    raw = _param(request, name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise bad(f"invalid {name}: {raw}") from exc
    if value < 1:
        raise bad(f"invalid {name}: {raw}")
    return min(value, cap)


def _choice(request: web.Request, name: str, allowed: tuple[str, ...], bad: Any) -> str | None:
    raw = _param(request, name)
    if raw is not None and raw.lower() not in allowed:
        raise bad(f"invalid {name}: {raw}")
    return raw.lower() if raw is not None else None


def _offset_token(offset: int) -> str:
    return base64.urlsafe_b64encode(str(offset).encode()).decode()


def _offset(request: web.Request, bad: Any) -> int:
    raw = _param(request, "page_token")
    if raw is None:
        return 0
    try:
        value = int(base64.urlsafe_b64decode(raw.encode()).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad("invalid page_token") from exc
    if value < 0:
        raise bad("invalid page_token")
    return value


@dataclass(frozen=True)
class ContractFilter:
    """The contract filters shared by /v2/options/contracts and the chain snapshot."""

    right: str | None
    expiration_date: date | None
    expiration_gte: date | None
    expiration_lte: date | None
    strike_gte: Decimal | None
    strike_lte: Decimal | None
    root_symbol: str | None

    @classmethod
    def from_request(cls, request: web.Request, bad: Any) -> ContractFilter:
        """Read the filters from the query string."""
        root = _param(request, "root_symbol")
        return cls(
            right=_choice(request, "type", ("call", "put"), bad),
            expiration_date=_date(request, "expiration_date", bad),
            expiration_gte=_date(request, "expiration_date_gte", bad),
            expiration_lte=_date(request, "expiration_date_lte", bad),
            strike_gte=_number(request, "strike_price_gte", bad),
            strike_lte=_number(request, "strike_price_lte", bad),
            root_symbol=root.upper() if root else None,
        )

    def accepts(self, occ: OccSymbol) -> bool:
        """Return True when the contract passes every filter given."""
        checks = (
            self.right is None or occ.right.value == self.right,
            self.expiration_date is None or occ.expiry == self.expiration_date,
            self.expiration_gte is None or occ.expiry >= self.expiration_gte,
            self.expiration_lte is None or occ.expiry <= self.expiration_lte,
            self.strike_gte is None or occ.strike >= self.strike_gte,
            self.strike_lte is None or occ.strike <= self.strike_lte,
            self.root_symbol is None or occ.underlying == self.root_symbol,
        )
        return all(checks)


# ---- contracts (Trading API) --------------------------------------------------------------
def _desk(request: web.Request) -> OptionsDesk:
    return request.app[OPTIONS_KEY]


def _last_close(calendar: MarketCalendar, now: datetime) -> tuple[datetime, date] | None:
    session = calendar.previous_session(now)
    while session is not None and session.close > now:
        session = calendar.previous_session(session.open - timedelta(seconds=1))
    return (session.close, session.day) if session is not None else None


def _contract_json(desk: OptionsDesk, contract: OptionContract, now: datetime) -> dict[str, Any]:
    close = _last_close(desk.pricer.calendar, now)
    if close is None:
        return contract.json(None, None)
    quote = desk.pricer.quote(contract.occ, close[0])
    return contract.json(_on_grid(quote.mid), close[1])


@options_routes.get("/v2/options/contracts")
async def list_contracts(request: web.Request) -> web.Response:
    """GET /v2/options/contracts: filters, limit (default 100, max 10000), page_token."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    raw = _param(request, "underlying_symbols")
    wanted = [s.strip().upper() for s in raw.split(",") if s.strip()] if raw else None
    status = _choice(request, "status", ("active", "inactive"), _trading_bad) or "active"
    style = _choice(request, "style", ("american", "european"), _trading_bad)
    limit = _int(request, "limit", CONTRACTS_DEFAULT_LIMIT, CONTRACTS_MAX_LIMIT, _trading_bad)
    offset = _offset(request, _trading_bad)
    filters = ContractFilter.from_request(request, _trading_bad)
    underlyings = [u for u in desk.universe.underlyings() if wanted is None or u in wanted]
    matching = [
        contract
        for underlying in underlyings
        for contract in desk.universe.contracts(underlying, now)
        if contract.status == status
        and style in (None, "american")
        and filters.accepts(contract.occ)
    ]
    page = matching[offset : offset + limit]
    token = _offset_token(offset + limit) if offset + limit < len(matching) else None
    return json_response(
        {
            "option_contracts": [_contract_json(desk, c, now) for c in page],
            "next_page_token": token,
        }
    )


@options_routes.get("/v2/options/contracts/{symbol_or_id}")
async def get_contract(request: web.Request) -> web.Response:
    """GET /v2/options/contracts/{symbol_or_id}: 404 when no such contract is listed."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    contract = desk.universe.lookup(request.match_info["symbol_or_id"], now)
    if contract is None:
        raise ApiError(404, "option contract not found", CODE_NOT_FOUND)
    return json_response(_contract_json(desk, contract, now))


# ---- market data (v1beta1) ----------------------------------------------------------------
def _on_grid(price: Decimal) -> Decimal:
    """Round to the nearest option tick ($0.01 below $3, $0.05 from $3)."""
    tick = tick_for_option(price)
    return ((price / tick).quantize(Decimal(1), ROUND_HALF_UP) * tick).quantize(Decimal("0.01"))


def _contracts_param(request: web.Request) -> list[OccSymbol]:
    raw = _param(request, "symbols")
    symbols = [s.strip().upper() for s in raw.split(",") if s.strip()] if raw else []
    if not symbols:
        raise _data_bad("missing symbols")
    if len(symbols) > MAX_SYMBOLS:
        raise _data_bad(f"too many symbols (at most {MAX_SYMBOLS})")
    _choice(request, "feed", FEEDS, _data_bad)
    parsed: list[OccSymbol] = []
    for symbol in symbols:
        try:
            parsed.append(parse_occ(symbol))
        except ValueError as exc:
            raise _data_bad(f"invalid symbol: {symbol}") from exc
    return parsed


def _listed(desk: OptionsDesk, symbols: list[OccSymbol], now: datetime) -> list[OccSymbol]:
    """Keep the contracts the broker lists; well-formed but unknown ones are left out.

    Alpaca Market Data (option latest quotes/trades/snapshots, /v1beta1/options/...): the
    answer maps each symbol that has data to it and has no entry for the others (an empty
    map when none has: ALPACA.md "Market data"); alpaca-py 0.44 builds its dict from the keys
    answered (alpaca/data/historical/option.py, parse_obj_as_symbol_dict), so a missing key
    is how "no such contract" reads. Malformed symbols are refused (400) above.
    """
    return [occ for occ in symbols if desk.universe.lookup(occ.symbol, now) is not None]


def _latest_instant(calendar: MarketCalendar, now: datetime) -> datetime:
    """Return `now` inside a regular session, else the last regular close."""
    if calendar.is_open(now):
        return now
    close = _last_close(calendar, now)
    return close[0] if close is not None else now


def _quote_json(quote: OptionQuote) -> dict[str, Any]:
    return {
        "t": ts(quote.time),
        "ax": EXCHANGE,
        "ap": float(quote.ask),
        "as": quote.ask_size,
        "bx": EXCHANGE,
        "bp": float(quote.bid),
        "bs": quote.bid_size,
        "c": "A",
    }


def _trade_json(quote: OptionQuote) -> dict[str, Any]:
    price = min(max(_on_grid(quote.mid), quote.bid), quote.ask)
    digest = hashlib.sha256(f"{quote.occ.symbol}:{quote.time.timestamp()}".encode()).digest()
    return {
        "t": ts(quote.time),
        "x": EXCHANGE,
        "p": float(price),
        "s": 1 + digest[0] % 10,
        "c": "I",
    }


def _greeks_json(quote: OptionQuote) -> dict[str, float]:
    g = quote.greeks
    return {
        "delta": round(g.delta, 4),
        "gamma": round(g.gamma, 4),
        "rho": round(g.rho, 4),
        "theta": round(g.theta, 4),
        "vega": round(g.vega, 4),
    }


def _snapshot_json(quote: OptionQuote) -> dict[str, Any]:
    return {
        "latestQuote": _quote_json(quote),
        "latestTrade": _trade_json(quote),
        "impliedVolatility": round(quote.iv, 4),
        "greeks": _greeks_json(quote),
    }


@options_routes.get("/v1beta1/options/quotes/latest")
async def latest_quotes(request: web.Request) -> web.Response:
    """GET /v1beta1/options/quotes/latest?symbols=."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    when = _latest_instant(desk.pricer.calendar, now)
    symbols = _listed(desk, _contracts_param(request), now)
    quotes = {occ.symbol: _quote_json(desk.pricer.quote(occ, when)) for occ in symbols}
    return json_response({"quotes": quotes})


@options_routes.get("/v1beta1/options/trades/latest")
async def latest_trades(request: web.Request) -> web.Response:
    """GET /v1beta1/options/trades/latest?symbols= (a print at the mid, on the tick grid)."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    when = _latest_instant(desk.pricer.calendar, now)
    symbols = _listed(desk, _contracts_param(request), now)
    trades = {occ.symbol: _trade_json(desk.pricer.quote(occ, when)) for occ in symbols}
    return json_response({"trades": trades})


@options_routes.get("/v1beta1/options/snapshots")
async def snapshots(request: web.Request) -> web.Response:
    """GET /v1beta1/options/snapshots?symbols=: latest quote and trade, IV and greeks."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    when = _latest_instant(desk.pricer.calendar, now)
    symbols = _listed(desk, _contracts_param(request), now)
    out = {occ.symbol: _snapshot_json(desk.pricer.quote(occ, when)) for occ in symbols}
    return json_response({"snapshots": out, "next_page_token": None})


@options_routes.get("/v1beta1/options/snapshots/{underlying}")
async def chain(request: web.Request) -> web.Response:
    """GET /v1beta1/options/snapshots/{underlying}: the chain, filtered and paged."""
    desk = _desk(request)
    now = request.app[BROKER_KEY].sync()
    _choice(request, "feed", FEEDS, _data_bad)
    underlying = request.match_info["underlying"].upper()
    filters = ContractFilter.from_request(request, _data_bad)
    limit = _int(request, "limit", SNAPSHOTS_DEFAULT_LIMIT, SNAPSHOTS_MAX_LIMIT, _data_bad)
    offset = _offset(request, _data_bad)
    if not desk.pricer.prices.has(underlying):
        return json_response({"snapshots": {}, "next_page_token": None})
    when = _latest_instant(desk.pricer.calendar, now)
    matching = [c.occ for c in desk.universe.contracts(underlying, now) if filters.accepts(c.occ)]
    page = matching[offset : offset + limit]
    token = _offset_token(offset + limit) if offset + limit < len(matching) else None
    out = {occ.symbol: _snapshot_json(desk.pricer.quote(occ, when)) for occ in page}
    return json_response({"snapshots": out, "next_page_token": token})


def _regular_minutes(
    data: MarketData, symbol: str, start: datetime, end: datetime, now: datetime
) -> list[Bar]:
    calendar = data.calendar
    first = start.astimezone(UTC).date() - timedelta(days=1)
    out: list[Bar] = []
    for session in calendar.sessions_between(first, min(end, now).astimezone(UTC).date()):
        lo, hi = max(session.open, start).timestamp(), min(session.close, end, now).timestamp()
        out.extend(b for b in data.minute_bars(symbol, session, now) if lo <= b.start < hi)
    return out


def _option_bars(
    desk: OptionsDesk,
    data: MarketData,
    occ: OccSymbol,
    timeframe: tuple[int, str],
    start: datetime,
    end: datetime,
    now: datetime,
) -> Iterator[dict[str, Any]]:
    """Price the option along the underlying's regular-session bars.

    An option's value rises with the underlying for a call and falls for a put, so a bar's
    open, high, low and close are the option priced at the underlying's open, high (low for a
    put), low (high) and close, at the bar's start (open, extremes) and end (close).
    """
    amount, unit = timeframe
    minutes = _regular_minutes(data, occ.underlying, start, end, now)
    if unit in ("Min", "Hour"):
        size = amount * (60 if unit == "Min" else 3600)
        keys = [b.start - b.start % size for b in minutes]
    else:
        keys = [_day_key(b.start, unit) for b in minutes]
    groups: dict[float, list[Bar]] = {}
    for key, bar in zip(keys, minutes, strict=True):
        groups.setdefault(key, []).append(bar)
    base = desk.pricer.base_iv(occ.underlying, now)
    for key, bars in groups.items():
        first, last = bars[0], bars[-1]
        t_open = datetime.fromtimestamp(first.start, UTC)
        t_close = datetime.fromtimestamp(last.start + 60, UTC)
        high_s, low_s = max(b.high for b in bars), min(b.low for b in bars)
        if occ.right is OptionRight.PUT:
            high_s, low_s = low_s, high_s

        def value(spot: float, when: datetime) -> Decimal:
            quote = desk.pricer.quote_at(occ, when, Decimal(repr(round(spot, 4))), base)
            return _on_grid(quote.mid)

        o, c = value(first.open, t_open), value(last.close, t_close)
        h = max(value(high_s, t_open), o, c)
        low = min(value(low_s, t_open), o, c)
        volume = sum(b.volume for b in bars)
        moneyness = math.log(float(occ.strike) / max(first.open, 0.01))
        contracts = max(1, int(volume * 0.001 * math.exp(-(moneyness**2) / 0.02)))
        yield {
            "t": ts(datetime.fromtimestamp(key, UTC)),
            "o": float(o),
            "h": float(h),
            "l": float(low),
            "c": float(c),
            "v": contracts,
            "n": max(1, contracts // 5),
            "vw": float(_on_grid((h + low + c) / 3)),
        }


def _day_key(start: float, unit: str) -> float:
    day = datetime.fromtimestamp(start, NEW_YORK).date()
    if unit == "Week":
        day -= timedelta(days=day.weekday())
    elif unit == "Month":
        day = day.replace(day=1)
    return datetime.combine(day, datetime.min.time(), NEW_YORK).timestamp()


@options_routes.get("/v1beta1/options/bars")
async def bars(request: web.Request) -> web.Response:
    """GET /v1beta1/options/bars: symbols, timeframe, start, end, limit, page_token, sort."""
    desk = _desk(request)
    data = request.app[MARKET_DATA_KEY]
    now = request.app[BROKER_KEY].sync()
    try:
        timeframe = parse_timeframe(request.query.get("timeframe", ""))
    except ValueError as exc:
        raise _data_bad(str(exc)) from exc
    start, end = _window(request, now)
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    symbols = {occ.symbol: occ for occ in _listed(desk, _contracts_param(request), now)}
    descending = request.query.get("sort", "asc") == "desc"
    limit = _int(request, "limit", 1000, CONTRACTS_MAX_LIMIT, _data_bad)

    def series(symbol: str) -> Iterator[tuple[float, dict[str, Any]]]:
        items = list(_option_bars(desk, data, symbols[symbol], timeframe, start, end, now))
        keyed = [
            (datetime.fromisoformat(i["t"].replace("Z", "+00:00")).timestamp(), i) for i in items
        ]
        if descending:
            return ((-k, i) for k, i in reversed(keyed))
        return iter(keyed)

    out, token = _paginate(list(symbols), series, limit, _untoken(request.query.get("page_token")))
    return json_response({"bars": out, "next_page_token": token})


# ---- simulator control --------------------------------------------------------------------
@options_routes.post("/_sim/options/iv")
async def set_iv(request: web.Request) -> web.Response:
    """POST /_sim/options/iv {"underlying", "iv" and/or "shift"}: move implied volatility."""
    desk = _desk(request)
    try:
        body = await request.json()
    except ValueError as exc:
        raise bad_body() from exc
    if not isinstance(body, dict) or not isinstance(body.get("underlying"), str):
        raise bad_body()
    underlying = body["underlying"].upper()
    if not desk.pricer.prices.has(underlying):
        raise ApiError(404, f"unknown underlying {underlying}", CODE_NOT_FOUND)
    try:
        iv = None if body.get("iv") is None else float(body["iv"])
        shift = None if body.get("shift") is None else float(body["shift"])
        if iv is None and shift is None:
            raise ValueError("give iv or shift")
        desk.pricer.set_iv(underlying, iv=iv, shift=shift)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, str(exc), 42210000) from exc
    now = request.app[BROKER_KEY].sync()
    return json_response({"underlying": underlying, "iv": desk.pricer.base_iv(underlying, now)})
