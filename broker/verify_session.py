"""One `broker verify` run's connection to the broker: what it placed, and how it cleans up.

The checks (broker/verify_checks.py) talk to the broker only through this session: through
AlpacaGateway where it has the call, and through alpaca-py's TradingClient answering plain JSON
(`raw`) for what the gateway deliberately hides - refused orders' exact answers, a PATCH of a
bracket leg, the rate-limit headers. Every order a check places carries this run's
client_order_id prefix and is tracked, so `cleanup()` can cancel all of it (also after Ctrl-C)
and close the one share that `--with-position` buys. Option orders (the options checks' mleg
condor) are tracked apart and read and cancelled as plain JSON: the stock gateway does not map them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from enum import StrEnum
from functools import partial
from typing import Any
from uuid import uuid4

import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.requests import OrderRequest, ReplaceOrderRequest
from pydantic import BaseModel, ConfigDict, Field

from broker.alpaca import AlpacaGateway, DeadlineAdapter, map_error
from broker.endpoint import BrokerEndpoint
from broker.errors import BrokerError, NotFound
from broker.rate_limits import RateLimitObserver
from trading.broker_models import (
    TERMINAL_STATUSES,
    BrokerOrder,
    OrderClass,
    OrderIntent,
    OrderSide,
    OrderStatus,
    OrderType,
    ProbeOutcome,
    TimeInForce,
    order_status,
)
from trading.ticks import Rounding, normalize_price

logger = logging.getLogger(__name__)
CLIENT_ORDER_ID_PREFIX = "verify-"
CONNECT_TIMEOUT_S = 3.0
READ_TIMEOUT_S = 10.0
CLEANUP_TIMEOUT_S = 20.0
POSITION_CLOSE_TIMEOUT_S = 20.0
# Far from the market: a buy at half the price never fills, a sell at 1.5 times never fills.
NEVER_FILLS_BUY = Decimal("0.5")
NEVER_FILLS_SELL = Decimal("1.5")


class Verdict(StrEnum):
    """Whether the broker behaved as the guard assumes."""

    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


class Observed(BaseModel):
    """What one check saw: its verdict, what the broker answered, and an optional note."""

    model_config = ConfigDict(frozen=True)

    verdict: Verdict
    observed: str
    note: str | None = None


def passed(observed: str, note: str | None = None) -> Observed:
    """The broker behaved as assumed."""
    return Observed(verdict=Verdict.PASS, observed=observed, note=note)


def failed(observed: str, note: str | None = None) -> Observed:
    """The broker answered differently from the assumption."""
    return Observed(verdict=Verdict.FAIL, observed=observed, note=note)


def verdict_of(ok: bool, observed: str, note: str | None = None) -> Observed:
    """PASS when ok, else FAIL, with the same observation."""
    return passed(observed, note) if ok else failed(observed, note)


class Skip(Exception):
    """The check cannot run here (the reason says why and what would make it run)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Needs(StrEnum):
    """What a check needs before it can run."""

    NOTHING = "nothing"
    OPEN_MARKET = "open_market"
    POSITION = "position"


@dataclass(frozen=True)
class Check:
    """One assumption, how to observe it, and the guard behaviour that relies on it."""

    name: str
    assumption: str
    expected: str
    affects: str
    probe: Callable[[VerifySession], Observed]
    needs: Needs = Needs.NOTHING


class BrokerAnswer(BaseModel):
    """An error answer as the broker sent it, and the gateway's reading of it."""

    model_config = ConfigDict(frozen=True)

    status: int | None
    code: int | None
    message: str
    fields: dict[str, Any] = Field(default_factory=dict)
    maps_to: str

    def describe(self) -> str:
        """`403 40310000 'message' (WashTrade)`."""
        code = f" {self.code}" if self.code is not None else ""
        return f"{self.status}{code} {self.message!r} ({self.maps_to})"


def answer_of(exc: APIError) -> BrokerAnswer:
    """The status, code, message and extra fields of an alpaca-py APIError."""
    raw = str(exc.args[0]) if exc.args else ""
    try:
        body = json.loads(raw)
    except ValueError:
        body = {}
    body = body if isinstance(body, dict) else {}
    code = body.get("code")
    return BrokerAnswer(
        status=exc.status_code,
        code=code if isinstance(code, int) else None,
        message=str(body.get("message") or raw[:200]),
        fields={k: v for k, v in body.items() if k not in ("code", "message")},
        maps_to=type(map_error(exc)).__name__,
    )


class CleanupReport(BaseModel):
    """What the run left behind: ideally nothing."""

    model_config = ConfigDict(frozen=True)

    complete: bool = Field(description="every order the run placed has ended and no share stays")
    orders_placed: int = Field(description="orders (legs included) the run created")
    orders_cancelled: list[str] = Field(description="ids the cleanup cancelled")
    orders_left_open: list[str] = Field(description="ids still open when the cleanup gave up")
    position_opened: bool = Field(description="a share was bought (--with-position)")
    position_left: str | None = Field(None, description="qty still held after the cleanup")
    errors: list[str] = Field(default_factory=list)


class RawTrading:
    """alpaca-py's TradingClient answering plain JSON; remembers the last rate-limit headers."""

    def __init__(self, endpoint: BrokerEndpoint, counted: RateLimitObserver | None = None) -> None:
        """`counted`: the observer that counts this client's requests too (the run's budget)."""
        self.client = TradingClient(
            endpoint.key_id.get_secret_value(),
            endpoint.secret_key.get_secret_value(),
            paper=endpoint.paper,
            raw_data=True,
            url_override=endpoint.trading_url,
        )
        # alpaca-py keeps its requests.Session private; it is the only place for a deadline
        # and for reading response headers (only X-RateLimit-* are kept, never a request's).
        session: requests.Session = self.client._session
        deadlines = DeadlineAdapter(CONNECT_TIMEOUT_S, READ_TIMEOUT_S, counted)
        session.mount("http://", deadlines)
        session.mount("https://", deadlines)
        session.hooks["response"].append(self._remember)
        self.rate_limit_headers: dict[str, str] = {}

    def _remember(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        found = {
            name: value
            for name, value in response.headers.items()
            if name.lower().startswith("x-ratelimit-")
        }
        self.rate_limit_headers = found


class VerifySession:
    """The broker as the checks see it, plus everything this run placed there."""

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        symbol: str,
        reference_price: Decimal,
        *,
        market_open: bool,
        with_position: bool,
        today: date,
        gateway: AlpacaGateway | None = None,
    ) -> None:
        self.endpoint = endpoint
        self.gateway = gateway or AlpacaGateway(endpoint, read_timeout_s=READ_TIMEOUT_S)
        # Every request of the run is counted on the gateway's observer, which `broker verify`
        # and prelive charge to the shared budget.
        self.raw = RawTrading(endpoint, self.gateway.rate_limits)
        self.symbol = symbol
        self.reference_price = reference_price
        self.market_open = market_open
        self.with_position = with_position
        self.today = today  # the broker's date in New York
        self.prefix = f"{CLIENT_ORDER_ID_PREFIX}{uuid4().hex[:8]}-"
        self.may_hold_position = False
        self.shared: dict[str, Any] = {}  # orders several checks look at, made once
        self._sequence = 0
        self._tracked: dict[str, None] = {}  # order ids, in the order they were placed
        self._sent: list[str] = []  # client_order_ids sent
        self._answered: set[str] = set()  # ... whose order (or definite refusal) came back
        # Option orders: the stock gateway does not read them (an mleg parent is no stock
        # order class), so the cleanup reads and cancels them as plain JSON.
        self._options: dict[str, None] = {}  # parent ids, in the order they were placed
        self._option_legs: set[str] = set()
        self._option_sent: dict[str, None] = {}  # client_order_ids of option orders sent

    def once(self, key: str, make: Callable[[], BrokerOrder]) -> BrokerOrder:
        """The order several checks share, made on first use (a failure is remembered too)."""
        if key not in self.shared:
            try:
                self.shared[key] = make()
            except Exception as exc:
                self.shared[key] = exc
        found = self.shared[key]
        if isinstance(found, BaseException):
            raise found
        order: BrokerOrder = found
        return order

    # ---- prices and ids -----------------------------------------------------------------
    def price(self, fraction: Decimal | str) -> Decimal:
        """The reference price times `fraction`, on the tick grid."""
        return normalize_price(self.reference_price * Decimal(fraction), Rounding.DOWN)

    def client_order_id(self) -> str:
        """A fresh client_order_id of this run (e.g. verify-1a2b3c4d-07)."""
        self._sequence += 1
        cid = f"{self.prefix}{self._sequence:02d}"
        self._sent.append(cid)
        return cid

    def intent(
        self,
        side: OrderSide,
        kind: OrderType,
        *,
        limit: Decimal | None = None,
        stop: Decimal | None = None,
        order_class: OrderClass = OrderClass.SIMPLE,
        take_profit: Decimal | None = None,
        stop_loss: Decimal | None = None,
    ) -> OrderIntent:
        """A one-share day order on the run's symbol."""
        return OrderIntent(
            client_order_id=self.client_order_id(),
            symbol=self.symbol,
            qty=Decimal(1),
            side=side,
            type=kind,
            time_in_force=TimeInForce.DAY,
            order_class=order_class,
            limit_price=limit,
            stop_price=stop,
            take_profit_limit_price=take_profit,
            stop_loss_stop_price=stop_loss,
        )

    # ---- placing and tracking -----------------------------------------------------------
    def place(self, intent: OrderIntent) -> BrokerOrder:
        """Submit through the gateway and track the order and its legs."""
        if intent.side is OrderSide.BUY and intent.type is OrderType.MARKET:
            self.may_hold_position = True
        order = self.gateway.submit_order(intent)
        self.track(order)
        return order

    def submit_raw(self, request: OrderRequest) -> dict[str, Any] | BrokerAnswer:
        """POST an order through alpaca-py as is: the order placed (tracked) or the refusal."""
        cid = request.client_order_id
        if cid and cid not in self._sent:
            self._sent.append(cid)
        return self._post(request, self.track_raw)

    def submit_option_raw(self, request: OrderRequest) -> dict[str, Any] | BrokerAnswer:
        """POST an option order through alpaca-py as is: the order (tracked as an option
        order) or the refusal."""
        if request.client_order_id:
            self._option_sent.setdefault(request.client_order_id)
        return self._post(request, self.track_option)

    def replace_raw(
        self, order_id: str, change: ReplaceOrderRequest
    ) -> dict[str, Any] | BrokerAnswer:
        """PATCH an order through alpaca-py as is: the new order (tracked) or the refusal."""
        return self._patch(order_id, change, self.track_raw)

    def replace_option_raw(
        self, order_id: str, change: ReplaceOrderRequest
    ) -> dict[str, Any] | BrokerAnswer:
        """PATCH an option order through alpaca-py as is: the new order (tracked) or the refusal."""
        return self._patch(order_id, change, self.track_option)

    def _post(
        self, request: OrderRequest, track: Callable[[Any], None]
    ) -> dict[str, Any] | BrokerAnswer:
        cid = request.client_order_id
        try:
            placed: Any = self.client_call(lambda: self.raw.client.submit_order(request))
        except APIError as exc:
            answer = answer_of(exc)
            if cid and answer.status is not None and answer.status < 500:
                self._answered.add(cid)  # refused: nothing to clean up
            return answer
        track(placed)
        return dict(placed)

    def _patch(
        self, order_id: str, change: ReplaceOrderRequest, track: Callable[[Any], None]
    ) -> dict[str, Any] | BrokerAnswer:
        try:
            placed: Any = self.client_call(
                lambda: self.raw.client.replace_order_by_id(order_id, change)
            )
        except APIError as exc:
            return answer_of(exc)
        track(placed)
        return dict(placed)

    def track_option(self, order: Any) -> None:
        """Remember an option order given as JSON (its legs end with it)."""
        if isinstance(order, dict) and order.get("id"):
            self._options.setdefault(str(order["id"]))
            self._answered.add(str(order.get("client_order_id")))
            for leg in order.get("legs") or []:
                if isinstance(leg, dict) and leg.get("id"):
                    self._option_legs.add(str(leg["id"]))

    def client_call(self, call: Callable[[], Any]) -> Any:
        """Run a raw alpaca-py call; transport failures become broker errors."""
        try:
            return call()
        except APIError:
            raise
        except Exception as exc:
            raise map_error(exc) from None

    def track(self, order: BrokerOrder) -> None:
        """Remember an order (and its legs) for the cleanup."""
        self._tracked.setdefault(order.id)
        self._answered.add(order.client_order_id)
        for leg in order.legs:
            self._tracked.setdefault(leg.id)

    def track_raw(self, order: Any) -> None:
        """Remember an order given as JSON (and its legs)."""
        if isinstance(order, dict) and order.get("id"):
            self._tracked.setdefault(str(order["id"]))
            self._answered.add(str(order.get("client_order_id")))
            for leg in order.get("legs") or []:
                if isinstance(leg, dict) and leg.get("id"):
                    self._tracked.setdefault(str(leg["id"]))

    @property
    def tracked(self) -> list[str]:
        """Every order id this run created, in order."""
        return list(self._tracked)

    # ---- waiting ------------------------------------------------------------------------
    def wait_for(
        self, order_id: str, done: Callable[[BrokerOrder], bool], timeout_s: float = 10.0
    ) -> tuple[BrokerOrder, list[str]]:
        """Poll the order (by id, legs nested) until `done` or the timeout; the statuses seen."""
        deadline = time.monotonic() + timeout_s
        delay = 0.1
        seen: list[str] = []
        while True:
            order = self.gateway.get_order(order_id)
            self.track(order)
            if not seen or seen[-1] != order.status.value:
                seen.append(order.status.value)
            left = deadline - time.monotonic()
            if done(order) or left <= 0:
                return order, seen
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    # ---- cleanup ------------------------------------------------------------------------
    def cancel_open_orders(self) -> list[str]:
        """Cancel every order of this run still open and wait for them to end; ids left open."""
        _, still_open = self._cancel_tracked({})
        return still_open

    def cleanup(self) -> CleanupReport:
        """Cancel every order of this run, then sell a share it bought; say what is left."""
        errors: dict[str, str] = {}
        try:
            self._adopt_strays(errors)
            cancelled, still_open = self._cancel_tracked(errors)
            options_cancelled, options_open = self._cancel_options(errors)
            cancelled, still_open = cancelled + options_cancelled, still_open + options_open
            position_left = self._close_position(errors) if self.may_hold_position else None
        except Exception as exc:  # the report must still say what may be left behind
            logger.debug("cleanup failed", exc_info=True)
            return CleanupReport(
                complete=False,
                orders_placed=self.orders_placed,
                orders_cancelled=[],
                orders_left_open=self.tracked + list(self._options),
                position_opened=self.may_hold_position,
                position_left="unknown" if self.may_hold_position else None,
                errors=[f"cleanup failed: {type(exc).__name__}: {exc}"],
            )
        left_errors = [errors[i] for i in still_open if i in errors]
        left_errors += [v for k, v in errors.items() if k.startswith("@")]
        return CleanupReport(
            complete=not still_open and position_left is None,
            orders_placed=self.orders_placed,
            orders_cancelled=cancelled,
            orders_left_open=still_open,
            position_opened=self.may_hold_position,
            position_left=position_left,
            errors=left_errors,
        )

    @property
    def orders_placed(self) -> int:
        """Orders this run created, legs and option orders included."""
        return len(self._tracked) + len(self._options) + len(self._option_legs)

    def _raw_order(self, order_id: str) -> dict[str, Any]:
        order: Any = self.client_call(lambda: self.raw.client.get_order_by_id(order_id))
        return dict(order)

    def _cancel_options(self, errors: dict[str, str]) -> tuple[list[str], list[str]]:
        """Cancel every option order of this run still open and wait for them to end."""
        for cid in self._option_sent:
            if cid in self._answered:
                continue
            try:  # an option order whose answer never arrived
                self.track_option(
                    self.client_call(partial(self.raw.client.get_order_by_client_id, cid))
                )
            except APIError as exc:
                if exc.status_code != 404:
                    errors[f"@{cid}"] = f"{cid} not looked up: {answer_of(exc).describe()}"
            except BrokerError as exc:
                errors[f"@{cid}"] = f"{cid} not looked up: {type(exc).__name__}: {exc.message}"
        return self._cancel_until_ended(
            self._options, self._read_option, self._cancel_option, errors
        )

    def _read_option(self, order_id: str) -> _Seen | None:
        try:
            order = self._raw_order(order_id)
        except APIError as exc:
            if exc.status_code == 404:
                return None
            raise
        replaced_by = order.get("replaced_by")
        return _Seen(
            order_status(str(order.get("status"))), str(replaced_by) if replaced_by else None
        )

    def _cancel_option(self, order_id: str) -> None:
        self.client_call(partial(self.raw.client.cancel_order_by_id, order_id))

    def _adopt_strays(self, errors: dict[str, str]) -> None:
        # Orders whose answer never arrived (Ctrl-C mid-request, a lost response) or that
        # were made by a replace still carry this run's prefix: find and track them.
        try:
            for order in self.gateway.get_open_orders():
                if order.client_order_id.startswith(self.prefix):
                    self.track(order)
        except BrokerError as exc:
            errors["@listing"] = f"open orders not listed: {type(exc).__name__}: {exc.message}"
        for cid in self._sent:
            if cid in self._answered:
                continue
            try:
                self.track(self.gateway.get_order_by_client_id(cid))
            except NotFound:
                continue
            except BrokerError as exc:
                errors[f"@{cid}"] = f"{cid} not looked up: {type(exc).__name__}: {exc.message}"

    def _cancel_tracked(self, errors: dict[str, str]) -> tuple[list[str], list[str]]:
        return self._cancel_until_ended(
            self._tracked, self._read_tracked, self.gateway.cancel_order, errors
        )

    def _read_tracked(self, order_id: str) -> _Seen | None:
        try:
            order = self.gateway.get_order(order_id)
        except NotFound:
            return None
        self.track(order)  # a replacement or a leg seen only now
        return _Seen(order.status, order.replaced_by)

    def _cancel_until_ended(
        self,
        orders: dict[str, None],
        read: Callable[[str], _Seen | None],
        cancel: Callable[[str], object],
        errors: dict[str, str],
    ) -> tuple[list[str], list[str]]:
        """Cancel each order until it has ended (a replacement joins `orders`), within
        CLEANUP_TIMEOUT_S; what was cancelled, and what is still open."""
        deadline = time.monotonic() + CLEANUP_TIMEOUT_S
        ended: set[str] = set()
        asked: set[str] = set()
        cancelled: list[str] = []
        delay = 0.1
        while True:
            still_open: list[str] = []
            for order_id in list(orders):
                if order_id in ended:
                    continue
                try:
                    seen = read(order_id)
                except (APIError, BrokerError) as exc:
                    errors[order_id] = f"{order_id}: {_error_text(exc)}"
                    still_open.append(order_id)
                    continue
                if seen is None:  # 404: nothing left to cancel
                    ended.add(order_id)
                    continue
                if seen.replaced_by:
                    orders.setdefault(seen.replaced_by)
                if seen.status in TERMINAL_STATUSES:
                    ended.add(order_id)
                    continue
                still_open.append(order_id)
                if order_id in asked or seen.status is OrderStatus.PENDING_CANCEL:
                    continue
                asked.add(order_id)
                try:
                    cancel(order_id)
                    cancelled.append(order_id)
                except (APIError, BrokerError) as exc:
                    # A leg may refuse its own cancel while its group is being cancelled.
                    errors[order_id] = f"{order_id}: {_error_text(exc)}"
                    asked.discard(order_id)
            left = deadline - time.monotonic()
            if not still_open or left <= 0:
                return cancelled, still_open
            time.sleep(min(delay, left))
            delay = min(delay * 2, 1.0)

    def _close_position(self, errors: dict[str, str]) -> str | None:
        """Sell what the run bought; the qty still held afterwards (None: nothing)."""
        deadline = time.monotonic() + POSITION_CLOSE_TIMEOUT_S
        sold = False
        while True:
            probe = self.gateway.probe_position(self.symbol)
            if probe.outcome is ProbeOutcome.ABSENT:
                return None
            if probe.outcome is ProbeOutcome.EXISTS and not sold:
                # The symbol was not held when the run began: the whole position is ours.
                try:
                    self.track(self.gateway.close_position(self.symbol))
                    sold = True
                except BrokerError as exc:
                    errors["@position"] = f"not closed: {type(exc).__name__}: {exc.message}"
            if time.monotonic() >= deadline:
                if probe.position is not None:
                    return str(probe.position.qty)
                errors["@position"] = f"position unknown: {probe.error}"
                return "unknown"
            time.sleep(0.5)


@dataclass(frozen=True)
class _Seen:
    """An order as the cleanup reads it: its status, and the order that replaced it."""

    status: OrderStatus
    replaced_by: str | None


def _error_text(exc: APIError | BrokerError) -> str:
    detail = exc.message if isinstance(exc, BrokerError) else str(exc)
    return f"{type(exc).__name__}: {detail}"
