"""Multi-leg option orders and option quotes through alpaca-py (Alpaca or the paper broker).

`OptionOrdersGateway` is broker/options.py's AlpacaOptionsGateway (the same TradingClient and
OptionHistoricalDataClient, deadlines and rate-limit observer) plus the order side: it places
`mleg` LIMIT orders at most once (a duplicate client_order_id or an uncertain POST resolves by
looking the id up), probes orders by client_order_id (exists / absent / unknown), cancels, and
reads the latest option quotes. SDK errors become broker errors through broker/alpaca.py's
map_error (the inherited `_call`), nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from alpaca.common.enums import Sort
from alpaca.data.requests import OptionLatestQuoteRequest
from alpaca.trading import enums as sdk_enums
from alpaca.trading import requests as sdk

from broker.errors import BrokerError, BrokerUnavailable, DuplicateClientOrderId, NotFound
from broker.metered import Metered
from broker.options import AlpacaOptionsGateway
from trading.broker_budget import Priority
from trading.broker_models import ProbeOutcome, order_status
from trading.options.trade_models import (
    MlegOrderIntent,
    OptionMarks,
    OptionOrderProbe,
    OptionOrderView,
    OptionQuote,
)

logger = logging.getLogger(__name__)
NEW_YORK = ZoneInfo("America/New_York")
T = TypeVar("T")


def _dec(value: Any) -> Decimal | None:
    return None if value is None or value == "" else Decimal(str(value))


def to_option_order(order: Any) -> OptionOrderView:
    """alpaca-py Order (an mleg parent) -> OptionOrderView."""
    return OptionOrderView(
        id=str(order.id),
        client_order_id=order.client_order_id,
        status=order_status(str(getattr(order.status, "value", order.status))),
        qty=_dec(order.qty),
        filled_qty=_dec(order.filled_qty) or Decimal(0),
        filled_avg_price=_dec(order.filled_avg_price),
        limit_price=_dec(order.limit_price),
    )


def mleg_request(intent: MlegOrderIntent) -> sdk.LimitOrderRequest:
    """The alpaca-py request of an mleg LIMIT order (day)."""
    legs = [
        sdk.OptionLegRequest(
            symbol=leg.symbol, ratio_qty=leg.ratio_qty, side=sdk_enums.OrderSide(leg.side.value)
        )
        for leg in intent.legs
    ]
    return sdk.LimitOrderRequest(
        qty=intent.qty,
        order_class=sdk_enums.OrderClass.MLEG,
        legs=legs,
        limit_price=float(intent.limit_price),
        time_in_force=sdk_enums.TimeInForce.DAY,
        client_order_id=intent.client_order_id,
    )


class OptionOrdersGateway(AlpacaOptionsGateway):
    """mleg orders, order probes and latest option quotes over alpaca-py."""

    def order_by_client_id(self, client_order_id: str) -> OptionOrderView:
        """One order by our client_order_id."""
        order = self._call(
            f"get_order_by_client_id {client_order_id}",
            lambda: self._trading.get_order_by_client_id(client_order_id),
        )
        return to_option_order(order)

    def probe_by_client_id(self, client_order_id: str) -> OptionOrderProbe:
        """exists / absent (404) / unknown (any other failure)."""
        try:
            order = self.order_by_client_id(client_order_id)
        except NotFound:
            return OptionOrderProbe(outcome=ProbeOutcome.ABSENT)
        except BrokerError as exc:
            return OptionOrderProbe(outcome=ProbeOutcome.UNKNOWN, error=exc.message)
        return OptionOrderProbe(outcome=ProbeOutcome.EXISTS, order=order)

    def order(self, order_id: str) -> OptionOrderView:
        """One order by broker id."""
        order = self._call(f"get_order {order_id}", lambda: self._trading.get_order_by_id(order_id))
        return to_option_order(order)

    def open_orders(self, prefix: str) -> list[OptionOrderView]:
        """The working mleg orders whose client_order_id starts with `prefix` (one trade's),
        oldest first."""
        request = sdk.GetOrdersRequest(
            status=sdk_enums.QueryOrderStatus.OPEN, limit=500, direction=Sort.ASC
        )
        orders: Any = self._call(
            f"open orders {prefix}*", lambda: self._trading.get_orders(request)
        )
        return [
            to_option_order(order)
            for order in orders
            if str(order.client_order_id).startswith(prefix)
            and str(getattr(order.order_class, "value", order.order_class)) == "mleg"
        ]

    def submit_mleg(self, intent: MlegOrderIntent) -> OptionOrderView:
        """Place the mleg order at most once; a duplicate or uncertain POST resolves by lookup."""
        cid = intent.client_order_id
        request = mleg_request(intent)
        try:
            order = self._call(f"submit {cid}", lambda: self._trading.submit_order(request))
        except DuplicateClientOrderId:
            logger.info("submit %s: already at the broker; looking it up", cid)
            return self.order_by_client_id(cid)
        except BrokerUnavailable as unavailable:
            try:
                return self.order_by_client_id(cid)
            except NotFound:
                raise unavailable from None
            except BrokerError:
                raise BrokerUnavailable(f"submit {cid}: outcome unknown") from None
        logger.info("submitted mleg %s x%s limit %s", cid, intent.qty, intent.limit_price)
        return to_option_order(order)

    def cancel(self, order_id: str) -> OptionOrderView:
        """Cancel (an order already final is fine) and return the order as it stands."""
        try:
            self._call(f"cancel {order_id}", lambda: self._trading.cancel_order_by_id(order_id))
        except BrokerError as exc:
            if exc.status != 422:  # 422: the order is already final
                raise
        return self.order(order_id)

    def latest_quotes(self, symbols: list[str]) -> OptionMarks:
        """The latest quote of each option symbol, and the New York session date they are of."""
        request = OptionLatestQuoteRequest(symbol_or_symbols=symbols)
        answer: Any = self._call(
            f"option quotes {','.join(symbols)}",
            lambda: self._options.get_option_latest_quote(request),
        )
        quotes = [
            OptionQuote(symbol=symbol, bid=Decimal(str(q.bid_price)), ask=Decimal(str(q.ask_price)))
            for symbol, q in answer.items()
        ]
        stamps = [q.timestamp for q in answer.values() if q.timestamp is not None]
        as_of = max(stamps) if stamps else datetime.now(UTC)
        return OptionMarks(
            quotes=quotes, as_of=as_of, session_date=as_of.astimezone(NEW_YORK).date()
        )


class MeteredOptionOrders(Metered[OptionOrdersGateway]):
    """OptionOrdersGateway's calls, async, metered as every broker call is (broker/metered.py):
    paid for from the account-wide budget first, counted, traced; no patience (an activity
    lets Temporal retry after the reset)."""

    async def paid(self, priority: Priority, call: str, fn: Callable[[], T]) -> T:
        """Run one gateway call (`fn`, blocking) under the metering of `call` at `priority`."""
        return await self._call(priority, call, fn)
