"""Broker errors with stable names; broker/alpaca.py maps every SDK failure onto these.

The class names are the Temporal failure types, so retry policies list them by name.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal


class BrokerError(Exception):
    """Base: something the broker said (or failed to say)."""

    retryable = False

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code


class BrokerUnavailable(BrokerError):
    """5xx, timeout or connection failure: the answer is unknown; retrying may help."""

    retryable = True


class RateLimited(BrokerError):
    """429: wait until the limit resets (X-RateLimit-Reset), then retry."""

    retryable = True

    def __init__(self, message: str, *, reset_at: datetime | None = None) -> None:
        super().__init__(message, status=429)
        self.reset_at = reset_at


class BudgetExhausted(BrokerError):
    """Not sent: the account-wide broker-call budget has no slot now; retry after `retry_after`."""

    retryable = True

    def __init__(
        self, message: str, *, retry_after: timedelta, broker_limited: bool = False
    ) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.broker_limited = broker_limited  # the broker's limit holds, not only our window


class AuthFailed(BrokerError):
    """401/403 on credentials: retrying with the same keys cannot help."""


class NotFound(BrokerError):
    """404: the order or position definitively does not exist."""


class DuplicateClientOrderId(BrokerError):
    """422 40010001: an order with this client_order_id already exists (resolved by lookup)."""


class OrderRejected(BrokerError):
    """The broker refused the order; the same order will be refused again."""


class InsufficientBuyingPower(OrderRejected):
    """403: not enough buying power for the order."""


class InsufficientQty(OrderRejected):
    """403: the shares are held by other open orders, or the position is too small."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: int | None = None,
        available: Decimal | None = None,
        held_for_orders: Decimal | None = None,
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.available = available
        self.held_for_orders = held_for_orders


class WashTrade(OrderRejected):
    """403: an opposite-side order for the symbol is open; use a bracket/OCO/OTO."""


class InvalidPrice(OrderRejected):
    """422: a price is off the tick grid (sub-penny) or otherwise invalid."""


class InvalidOrder(OrderRejected):
    """400/422: the order itself is malformed or not allowed."""


def _leaf_names(cls: type[BrokerError]) -> list[str]:
    names = [cls.__name__]
    for sub in cls.__subclasses__():
        names += _leaf_names(sub)
    return names


# Failure types a retry cannot fix; used by workflows/policies.py.
NON_RETRYABLE_TYPES: tuple[str, ...] = tuple(
    [
        *_leaf_names(OrderRejected),
        AuthFailed.__name__,
        NotFound.__name__,
        DuplicateClientOrderId.__name__,
        "TradingInputError",
    ]
)
