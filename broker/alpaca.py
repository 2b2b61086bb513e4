"""AlpacaGateway: BrokerGateway on alpaca-py; the one place SDK errors become broker errors.

Works unchanged against Alpaca (paper or live) and the local paper broker: only the URLs
differ. alpaca-py is synchronous; activities call this from a thread pool.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.data.historical import StockHistoricalDataClient
from alpaca.data.requests import StockBarsRequest, StockLatestQuoteRequest
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading import enums as sdk_enums
from alpaca.trading import requests as sdk
from alpaca.trading.client import TradingClient
from alpaca.trading.models import Order as SdkOrder
from alpaca.trading.models import Position as SdkPosition
from requests.adapters import HTTPAdapter

from broker.endpoint import BrokerEndpoint
from broker.errors import (
    AuthFailed,
    BrokerError,
    BrokerUnavailable,
    DuplicateClientOrderId,
    InsufficientBuyingPower,
    InsufficientQty,
    InvalidOrder,
    InvalidPrice,
    NotFound,
    OrderRejected,
    RateLimited,
    WashTrade,
)
from broker.rate_limits import RateLimitObserver

# Qualified, like `sdk`: both sides name OrderSide, OrderType, TimeInForce, Quote, Bar, ...
from trading import broker_models as domain
from trading.options.chain import is_option_symbol

logger = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 7.0
T = TypeVar("T")


class DeadlineAdapter(HTTPAdapter):
    """A connect/read timeout for every request (alpaca-py sets none), each one reported."""

    def __init__(
        self,
        connect_timeout_s: float,
        read_timeout_s: float,
        observer: RateLimitObserver | None = None,
        *,
        learn_headers: bool = True,
    ) -> None:
        super().__init__()
        self._deadline = (connect_timeout_s, read_timeout_s)
        self._observer = observer
        self._learn_headers = learn_headers

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: float | tuple[float | None, float | None] | None = None,
        verify: bool | str = True,
        cert: str | tuple[str, str] | None = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        """Send with the default deadline unless the caller gave one."""
        if self._observer is not None:
            self._observer.sent()
        response = super().send(request, stream, timeout or self._deadline, verify, cert, proxies)
        if self._observer is not None and self._learn_headers:
            self._observer.answered(response.headers)
        return response


def harden(client: Any, adapter: DeadlineAdapter) -> None:
    # alpaca-py keeps its requests.Session and retry counter in private attributes; bounded
    # timeouts are mandatory here, and retries belong to Temporal (which honours the reset).
    session: requests.Session = client._session
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    client._retry = 0


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


# ------------------------------------------------------------------------- error mapping
def map_error(exc: Exception) -> BrokerError:
    """Translate an alpaca-py / requests exception into our broker error types."""
    if isinstance(exc, BrokerError):
        return exc
    if isinstance(exc, requests.Timeout):
        return BrokerUnavailable(f"broker timed out: {type(exc).__name__}")
    if isinstance(exc, requests.ConnectionError):
        return BrokerUnavailable("cannot connect to the broker")
    if not isinstance(exc, APIError):
        return BrokerUnavailable(f"unexpected broker failure: {type(exc).__name__}: {exc}")
    status = exc.status_code
    body = _body(exc)
    message = str(body.get("message") or _plain(_raw_text(exc)) or f"HTTP {status}")
    code = body.get("code") if isinstance(body.get("code"), int) else None
    lowered = message.lower()
    if status == 429:
        return RateLimited(message, reset_at=_reset_at(exc))
    if status is None or status >= 500:
        return BrokerUnavailable(f"broker error {status}: {message}", status=status, code=code)
    if status == 401 or (status == 403 and code is None and "unauthorized" in lowered):
        return AuthFailed(f"broker refused the credentials ({status}): {message}", status=status)
    if status == 404:
        if not body:  # not Alpaca's JSON: a proxy or a wrong URL, so nothing is known
            return BrokerUnavailable(
                f"broker error 404 without an Alpaca answer: {message}", status=status
            )
        return NotFound(message, status=status, code=code)
    if code == 40010001 or "client_order_id must be unique" in lowered:
        return DuplicateClientOrderId(message, status=status, code=code)
    if "insufficient buying power" in lowered:
        return InsufficientBuyingPower(message, status=status, code=code)
    if "insufficient qty" in lowered:
        return InsufficientQty(
            message,
            status=status,
            code=code,
            available=_dec(body.get("available")),
            held_for_orders=_dec(body.get("held_for_orders")),
        )
    if "wash trade" in lowered:
        return WashTrade(message, status=status, code=code)
    if "sub-penny" in lowered or ("price" in lowered and "invalid" in lowered):
        return InvalidPrice(message, status=status, code=code)
    if status == 403:
        return OrderRejected(message, status=status, code=code)
    return InvalidOrder(message, status=status, code=code)


def _raw_text(exc: APIError) -> str:
    return str(exc.args[0]) if exc.args else ""


def _plain(text: str) -> str:
    """A non-JSON error body (an HTML error page, say) shortened to its words."""
    words = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return words[:200]


def _body(exc: APIError) -> dict[str, Any]:
    try:
        parsed = json.loads(_raw_text(exc))
    except (TypeError, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _reset_at(exc: APIError) -> datetime | None:
    response = exc.response
    raw = response.headers.get("X-RateLimit-Reset") if response is not None else None
    try:
        return datetime.fromtimestamp(int(raw), UTC) if raw else None
    except (TypeError, ValueError):
        return None


# ------------------------------------------------------------------------- conversions
def to_order(order: SdkOrder) -> domain.BrokerOrder:
    """alpaca-py Order -> BrokerOrder."""
    kind = order.type or order.order_type
    order_class = _enum_value(order.order_class) or "simple"
    return domain.BrokerOrder(
        id=str(order.id),
        client_order_id=order.client_order_id,
        symbol=order.symbol or "",
        side=domain.OrderSide(_enum_value(order.side)),
        type=domain.OrderType(_enum_value(kind)),
        order_class=domain.OrderClass(order_class),
        time_in_force=domain.TimeInForce(_enum_value(order.time_in_force)),
        status=domain.order_status(_enum_value(order.status)),
        qty=_dec(order.qty),
        filled_qty=_dec(order.filled_qty) or Decimal(0),
        filled_avg_price=_dec(order.filled_avg_price),
        limit_price=_dec(order.limit_price),
        stop_price=_dec(order.stop_price),
        created_at=order.created_at,
        updated_at=order.updated_at,
        submitted_at=order.submitted_at,
        filled_at=order.filled_at,
        canceled_at=order.canceled_at,
        expired_at=order.expired_at,
        replaced_by=str(order.replaced_by) if order.replaced_by else None,
        replaces=str(order.replaces) if order.replaces else None,
        legs=[to_order(leg) for leg in order.legs or []],
    )


def is_option_item(item: Any) -> bool:
    """An options position or order (its asset class, or an OCC symbol; an mleg parent).

    `item` is an alpaca-py model or its JSON (a dict, as a trade_updates frame carries it).
    """

    def field(name: str) -> Any:
        return item.get(name) if isinstance(item, Mapping) else getattr(item, name, None)

    if _enum_value(field("asset_class")) == "us_option":
        return True
    if _enum_value(field("order_class")) == "mleg":
        return True
    symbol = field("symbol")
    return bool(symbol) and is_option_symbol(str(symbol))


D = TypeVar("D")


def hardened_clients(
    endpoint: BrokerEndpoint,
    data_client: Callable[..., D],
    rate_limits: RateLimitObserver,
    connect_timeout_s: float,
    read_timeout_s: float,
) -> tuple[TradingClient, D]:
    """A TradingClient and a market-data client on the endpoint, both under the deadlines and
    counted by `rate_limits`. Every request counts against the key; the market-data API keeps
    its own limit on Alpaca, so only trading answers tell the budget where the key's count
    stands (the data client's headers are not learned)."""
    key, secret = endpoint.key_id.get_secret_value(), endpoint.secret_key.get_secret_value()
    trading = TradingClient(key, secret, paper=endpoint.paper, url_override=endpoint.trading_url)
    data = data_client(key, secret, url_override=endpoint.data_url)
    deadlines = (connect_timeout_s, read_timeout_s)
    harden(trading, DeadlineAdapter(*deadlines, rate_limits))
    harden(data, DeadlineAdapter(*deadlines, rate_limits, learn_headers=False))
    return trading, data


def mapped_call(what: str, fn: Callable[[], T]) -> T:
    """Run one alpaca-py call; any failure becomes the BrokerError it means (logged once)."""
    try:
        return fn()
    except Exception as exc:
        mapped = map_error(exc)
        logger.info("broker %s failed: %s %s", what, type(mapped).__name__, mapped.message)
        raise mapped from None


def to_position(position: SdkPosition) -> domain.BrokerPosition:
    """alpaca-py Position -> BrokerPosition (qty negative for a short)."""
    qty = Decimal(position.qty)
    if _enum_value(position.side) == "short" and qty > 0:
        qty = -qty
    return domain.BrokerPosition(
        symbol=position.symbol,
        qty=qty,
        qty_available=_dec(position.qty_available),
        avg_entry_price=Decimal(position.avg_entry_price),
        current_price=_dec(position.current_price),
        market_value=_dec(position.market_value),
        unrealized_pl=_dec(position.unrealized_pl),
    )


def _order_request(intent: domain.OrderIntent) -> sdk.OrderRequest:
    common: dict[str, Any] = {
        "symbol": intent.symbol,
        "qty": float(intent.qty),
        "side": sdk_enums.OrderSide(intent.side.value),
        "time_in_force": sdk_enums.TimeInForce(intent.time_in_force.value),
        "client_order_id": intent.client_order_id,
        "extended_hours": intent.extended_hours,
    }
    if intent.order_class is not domain.OrderClass.SIMPLE:
        common["order_class"] = sdk_enums.OrderClass(intent.order_class.value)
    if intent.take_profit_limit_price is not None:
        common["take_profit"] = sdk.TakeProfitRequest(
            limit_price=float(intent.take_profit_limit_price)
        )
    if intent.stop_loss_stop_price is not None:
        common["stop_loss"] = sdk.StopLossRequest(
            stop_price=float(intent.stop_loss_stop_price),
            limit_price=_float(intent.stop_loss_limit_price),
        )
    builders: dict[domain.OrderType, Callable[[], sdk.OrderRequest]] = {
        domain.OrderType.MARKET: lambda: sdk.MarketOrderRequest(**common),
        domain.OrderType.LIMIT: lambda: sdk.LimitOrderRequest(
            limit_price=_float(intent.limit_price), **common
        ),
        domain.OrderType.STOP: lambda: sdk.StopOrderRequest(
            stop_price=_float(intent.stop_price), **common
        ),
        domain.OrderType.STOP_LIMIT: lambda: sdk.StopLimitOrderRequest(
            stop_price=_float(intent.stop_price), limit_price=_float(intent.limit_price), **common
        ),
        domain.OrderType.TRAILING_STOP: lambda: sdk.TrailingStopOrderRequest(
            trail_percent=_float(intent.trail_percent),
            trail_price=_float(intent.trail_price),
            **common,
        ),
    }
    try:
        return builders[intent.type]()
    except ValueError as exc:  # alpaca-py's own request validation
        raise InvalidOrder(f"order {intent.client_order_id} is invalid: {exc}") from None


def _float(value: Decimal | None) -> float | None:
    return None if value is None else float(value)


_TIMEFRAMES = {
    "1Min": TimeFrame(1, TimeFrameUnit.Minute),
    "5Min": TimeFrame(5, TimeFrameUnit.Minute),
    "15Min": TimeFrame(15, TimeFrameUnit.Minute),
    "1Hour": TimeFrame(1, TimeFrameUnit.Hour),
    "1Day": TimeFrame(1, TimeFrameUnit.Day),
}


# ------------------------------------------------------------------------- the gateway
class AlpacaGateway:
    """BrokerGateway over alpaca-py's TradingClient and StockHistoricalDataClient."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        *,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
    ) -> None:
        self.endpoint = endpoint
        self.rate_limits = RateLimitObserver()
        self._trading, self._data = hardened_clients(
            endpoint, StockHistoricalDataClient, self.rate_limits, connect_timeout_s, read_timeout_s
        )

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        return mapped_call(what, fn)

    def get_account(self) -> domain.BrokerAccount:
        """The account."""
        account: Any = self._call("get_account", self._trading.get_account)
        return domain.BrokerAccount(
            status=_enum_value(account.status),
            cash=Decimal(account.cash or 0),
            buying_power=Decimal(account.buying_power or 0),
            equity=Decimal(account.equity or 0),
            last_equity=Decimal(account.last_equity or 0),
            trading_blocked=bool(account.trading_blocked),
            account_blocked=bool(account.account_blocked),
            options_trading_level=account.options_trading_level,
            options_buying_power=_dec(account.options_buying_power),
        )

    def get_clock(self) -> domain.MarketClock:
        """The market clock."""
        clock: Any = self._call("get_clock", self._trading.get_clock)
        return domain.MarketClock(
            timestamp=clock.timestamp,
            is_open=clock.is_open,
            next_open=clock.next_open,
            next_close=clock.next_close,
        )

    def get_calendar(self, start: date, end: date) -> list[domain.SessionDay]:
        """Trading sessions between two dates, New York times made aware."""
        request = sdk.GetCalendarRequest(start=start, end=end)
        days: Any = self._call("get_calendar", lambda: self._trading.get_calendar(request))
        return [
            domain.SessionDay(date=d.date, open=_new_york(d.open), close=_new_york(d.close))
            for d in days
        ]

    def get_asset(self, symbol: str) -> domain.AssetInfo:
        """One asset (NotFound for an unknown symbol)."""
        asset: Any = self._call(f"get_asset {symbol}", lambda: self._trading.get_asset(symbol))
        return domain.AssetInfo(
            symbol=asset.symbol,
            tradable=bool(asset.tradable),
            shortable=bool(asset.shortable),
            fractionable=bool(asset.fractionable),
            status=_enum_value(asset.status),
        )

    def get_positions(self) -> list[domain.BrokerPosition]:
        """All open stock positions. Options positions are left out: a protective sell stop is
        the stock guard's answer and never an option leg's (OptionTradeWorkflow manages those
        by its exit rules; broker/options.py reads them)."""
        positions: Any = self._call("get_positions", self._trading.get_all_positions)
        return [to_position(p) for p in positions if not is_option_item(p)]

    def probe_position(self, symbol: str) -> domain.PositionProbe:
        """exists / absent (404) / unknown (error)."""
        try:
            position: Any = self._call(
                f"get_position {symbol}", lambda: self._trading.get_open_position(symbol)
            )
        except NotFound:
            return domain.PositionProbe(outcome=domain.ProbeOutcome.ABSENT)
        except BrokerError as exc:
            return domain.PositionProbe(outcome=domain.ProbeOutcome.UNKNOWN, error=_describe(exc))
        return domain.PositionProbe(
            outcome=domain.ProbeOutcome.EXISTS, position=to_position(position)
        )

    def get_open_orders(self) -> list[domain.BrokerOrder]:
        """Every open order, each leg listed on its own, paging past the 500 limit.

        Never nested: a filled bracket/OTO parent is no longer open, and Alpaca then leaves its
        held stop leg out of a nested listing - a live protective stop would look absent.
        """
        seen: set[str] = set()
        found: list[domain.BrokerOrder] = []
        until: datetime | None = None
        while True:
            request = sdk.GetOrdersRequest(
                status=sdk_enums.QueryOrderStatus.OPEN,
                limit=500,
                nested=False,
                until=until,
                direction=Sort.DESC,
            )
            page: Any = self._call("get_orders", _bind(self._trading.get_orders, request))
            before = len(seen)
            for order in page:
                if str(order.id) in seen:
                    continue
                seen.add(str(order.id))
                # Options orders are OptionTradeWorkflow's, not the stock guard's (see
                # get_positions): they page like the rest but are never mapped (an mleg
                # parent is no stock order class) and never listed.
                if not is_option_item(order):
                    found.append(to_order(order))
            if len(page) < 500:
                return found
            if len(seen) == before:  # a full page of nothing new: the listing is not whole
                raise BrokerUnavailable("open orders could not be paged completely")
            # `until` is exclusive: step just past the oldest so same-instant orders are kept.
            oldest = min(o.submitted_at or o.created_at for o in page)
            until = oldest + timedelta(microseconds=1)

    def get_order(self, order_id: str) -> domain.BrokerOrder:
        """One order by broker id, legs nested."""
        request = sdk.GetOrderByIdRequest(nested=True)
        order: Any = self._call(
            f"get_order {order_id}", lambda: self._trading.get_order_by_id(order_id, request)
        )
        return to_order(order)

    def probe_order(self, order_id: str) -> domain.OrderProbe:
        """exists / absent (404) / unknown (error)."""
        try:
            order = self.get_order(order_id)
        except NotFound:
            return domain.OrderProbe(outcome=domain.ProbeOutcome.ABSENT)
        except BrokerError as exc:
            return domain.OrderProbe(outcome=domain.ProbeOutcome.UNKNOWN, error=_describe(exc))
        return domain.OrderProbe(outcome=domain.ProbeOutcome.EXISTS, order=order)

    def get_order_by_client_id(self, client_order_id: str) -> domain.BrokerOrder:
        """One order by our client_order_id."""
        order: Any = self._call(
            f"get_order_by_client_id {client_order_id}",
            lambda: self._trading.get_order_by_client_id(client_order_id),
        )
        return to_order(order)

    def submit_order(self, intent: domain.OrderIntent) -> domain.BrokerOrder:
        """Place the order at most once; a duplicate or an uncertain POST resolves by lookup."""
        request = _order_request(intent)
        cid = intent.client_order_id
        try:
            order: Any = self._call(f"submit {cid}", lambda: self._trading.submit_order(request))
            logger.info(
                "submitted %s %s %s x%s -> %s",
                cid,
                intent.side,
                intent.symbol,
                intent.qty,
                order.status,
            )
            return to_order(order)
        except DuplicateClientOrderId:
            logger.info("submit %s: already at the broker; looking it up", cid)
            return self.get_order_by_client_id(cid)
        except BrokerUnavailable as unavailable:
            # The POST may have landed before the failure: find out before anyone retries.
            try:
                existing = self.get_order_by_client_id(cid)
            except NotFound:
                raise unavailable from None  # it did not land: a retry may post it again
            except BrokerError:
                raise BrokerUnavailable(
                    f"submit {cid}: outcome unknown (broker unavailable)"
                ) from None
            logger.info("submit %s: landed despite the error; returning it", cid)
            return existing

    def cancel_order(self, order_id: str) -> domain.CancelResult:
        """Cancel; an order already final (filled, cancelled, ...) is success."""
        try:
            self._call(f"cancel {order_id}", lambda: self._trading.cancel_order_by_id(order_id))
        except OrderRejected:
            order = self.get_order(order_id)  # 422 "not cancelable": report its final state
            if order.is_terminal:
                return domain.CancelResult(order=order, already_final=True)
            raise
        order = self.get_order(order_id)
        return domain.CancelResult(order=order, already_final=False)

    def replace_order(self, request: domain.ReplaceRequest) -> domain.BrokerOrder:
        """Replace a working order; returns the new order."""
        body = sdk.ReplaceOrderRequest(
            qty=int(request.qty) if request.qty is not None else None,
            limit_price=_float(request.limit_price),
            stop_price=_float(request.stop_price),
            client_order_id=request.client_order_id,
        )
        order: Any = self._call(
            f"replace {request.order_id}",
            lambda: self._trading.replace_order_by_id(request.order_id, body),
        )
        return to_order(order)

    def close_position(
        self, symbol: str, qty: str | None = None, percentage: str | None = None
    ) -> domain.BrokerOrder:
        """Close all or part of a position at market."""
        options = (
            sdk.ClosePositionRequest(qty=qty, percentage=percentage)
            if (qty or percentage)
            else None
        )
        order: Any = self._call(
            f"close_position {symbol}",
            lambda: self._trading.close_position(symbol, close_options=options),
        )
        return to_order(order)

    def latest_quotes(self, symbols: list[str]) -> list[domain.Quote]:
        """Latest quote per symbol."""
        request = StockLatestQuoteRequest(symbol_or_symbols=symbols)
        quotes: Any = self._call(
            "latest_quotes", lambda: self._data.get_stock_latest_quote(request)
        )
        return [
            domain.Quote(
                symbol=s,
                bid=Decimal(str(q.bid_price)),
                ask=Decimal(str(q.ask_price)),
                bid_size=Decimal(str(q.bid_size)),
                ask_size=Decimal(str(q.ask_size)),
                timestamp=q.timestamp,
            )
            for s, q in quotes.items()
        ]

    def get_bars(
        self, symbols: list[str], timeframe: str, start: str, end: str | None, limit: int | None
    ) -> list[domain.Bar]:
        """Bars for symbols (alpaca-py follows next_page_token)."""
        if timeframe not in _TIMEFRAMES:
            raise InvalidOrder(
                f"unknown timeframe {timeframe!r}; use one of " + ", ".join(_TIMEFRAMES)
            )
        request = StockBarsRequest(
            symbol_or_symbols=symbols,
            timeframe=_TIMEFRAMES[timeframe],
            start=datetime.fromisoformat(start),
            end=datetime.fromisoformat(end) if end else None,
            limit=limit,
        )
        bars: Any = self._call("get_bars", lambda: self._data.get_stock_bars(request))
        return [
            domain.Bar(
                symbol=symbol,
                timestamp=b.timestamp,
                open=Decimal(str(b.open)),
                high=Decimal(str(b.high)),
                low=Decimal(str(b.low)),
                close=Decimal(str(b.close)),
                volume=Decimal(str(b.volume)),
            )
            for symbol, series in bars.data.items()
            for b in series
        ]


def _bind(fn: Callable[[Any], T], argument: Any) -> Callable[[], T]:
    return lambda: fn(argument)


def _new_york(value: datetime) -> datetime:
    return value.replace(tzinfo=NEW_YORK) if value.tzinfo is None else value


def _describe(exc: BrokerError) -> str:
    return f"{type(exc).__name__}: {exc.message}"
