"""BrokerGateway: what the system needs from a broker, in domain terms."""

from __future__ import annotations

from datetime import date
from typing import Protocol

from broker.errors import NotFound
from trading.broker_models import (
    AssetInfo,
    Bar,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    CancelResult,
    MarketClock,
    OrderIntent,
    OrderProbe,
    PositionProbe,
    Quote,
    ReplaceRequest,
    SessionDay,
)


class BrokerGateway(Protocol):
    """Synchronous broker operations; errors are broker.errors types, never SDK ones."""

    def get_account(self) -> BrokerAccount:
        """The account."""
        ...

    def get_clock(self) -> MarketClock:
        """The market clock."""
        ...

    def get_calendar(self, start: date, end: date) -> list[SessionDay]:
        """Trading sessions between two dates, inclusive."""
        ...

    def get_asset(self, symbol: str) -> AssetInfo:
        """One asset (NotFound for an unknown symbol)."""
        ...

    def get_positions(self) -> list[BrokerPosition]:
        """All open positions."""
        ...

    def probe_position(self, symbol: str) -> PositionProbe:
        """exists / absent (404) / unknown (error)."""
        ...

    def get_open_orders(self) -> list[BrokerOrder]:
        """Every open order, each leg listed on its own (a filled entry's stop leg included)."""
        ...

    def get_order(self, order_id: str) -> BrokerOrder:
        """One order by broker id (NotFound if unknown)."""
        ...

    def probe_order(self, order_id: str) -> OrderProbe:
        """exists / absent (404) / unknown (error)."""
        ...

    def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        """One order by our client_order_id (NotFound if unknown)."""
        ...

    def submit_order(self, intent: OrderIntent) -> BrokerOrder:
        """Place an order at most once; a duplicate resolves to the existing order."""
        ...

    def cancel_order(self, order_id: str) -> CancelResult:
        """Cancel; an order already final counts as success."""
        ...

    def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace a working order; returns the new order."""
        ...

    def close_position(
        self, symbol: str, qty: str | None = None, percentage: str | None = None
    ) -> BrokerOrder:
        """Close all or part of a position at market."""
        ...

    def latest_quotes(self, symbols: list[str]) -> list[Quote]:
        """Latest quote per symbol."""
        ...

    def get_bars(
        self, symbols: list[str], timeframe: str, start: str, end: str | None, limit: int | None
    ) -> list[Bar]:
        """Bars for symbols (all pages)."""
        ...


def find_asset(gateway: BrokerGateway, symbol: str) -> AssetInfo | None:
    """The broker's asset for the symbol, or None when the broker does not know it."""
    try:
        return gateway.get_asset(symbol)
    except NotFound:
        return None
