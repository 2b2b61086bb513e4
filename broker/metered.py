"""MeteredGateway: the broker as every caller sees it - async, and paid for from one budget.

The gateway's methods, with the same names, awaitable: each takes its slots from the
account-wide BrokerBudget first (at the priority of what it does), runs the synchronous
alpaca-py call on a thread, counts the requests it really sent, passes on the broker's
X-RateLimit-* count and, on a 429, makes every process wait for the reset. Worker activities
and the CLI use it; nothing else calls the broker.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from typing import Generic, Protocol, TypeVar

from broker.budget import BrokerBudget
from broker.errors import BrokerError, BudgetExhausted, NotFound, RateLimited
from broker.gateway import BrokerGateway, find_asset
from broker.rate_limits import RateLimitObserver, RequestTally
from broker.truth import broker_truth
from ops import metrics
from ops.tracing import broker_call_span
from trading.broker_budget import BrokerLimitSeen, Priority, block_after_429, submit_priority
from trading.broker_models import (
    AssetInfo,
    Bar,
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerTruth,
    CancelResult,
    MarketClock,
    OrderIntent,
    OrderProbe,
    PositionProbe,
    ProbeOutcome,
    Quote,
    ReplaceRequest,
    SessionDay,
)

T = TypeVar("T")
P = TypeVar("P", OrderProbe, PositionProbe)
# Blocking alpaca-py calls of every metered gateway in the process (asyncio's default pool
# has min(32, cores + 4) threads, too few for a worker's concurrent broker activities).
BROKER_THREADS = ThreadPoolExecutor(max_workers=32, thread_name_prefix="broker-call")
# Market data has its own limit on Alpaca: its 429 does not stop the trading key's calls.
# Market data has its own limit at Alpaca: a 429 there does not block the account's calls.
MARKET_DATA_CALLS = frozenset({"latest_quotes", "get_bars", "option_chain", "option_marks"})
SNAPSHOT_SLOTS = 3  # account, positions, open orders
CANCEL_SLOTS = 2  # the cancel, then the order's state


class Observed(Protocol):
    """A broker client that reports its requests and the broker's rate-limit headers."""

    rate_limits: RateLimitObserver


class ObservedGateway(BrokerGateway, Observed, Protocol):
    """A BrokerGateway that reports its requests and the broker's rate-limit headers."""


WaitNotice = Callable[[BrokerError, float], None]
G = TypeVar("G", bound=Observed)


class Metered(Generic[G]):
    """The metering every metered broker client shares: each call is paid for from the
    account-wide budget first, counted, traced, and waited out on a 429 while patience lasts."""

    def __init__(
        self,
        gateway: G,
        budget: BrokerBudget,
        *,
        patience: timedelta = timedelta(0),
        on_wait: WaitNotice | None = None,
    ) -> None:
        """`patience`: how long a call waits out a 429 or a spent budget (the CLI's bound);
        activities keep none and let Temporal retry after the reset."""
        self._gateway = gateway
        self.budget = budget
        self._patience_s = patience.total_seconds()
        self._on_wait = on_wait
        self._learned: BrokerLimitSeen | None = None

    # ---- metering ----------------------------------------------------------------------
    async def _call(self, priority: Priority, call: str, fn: Callable[[], T], slots: int = 1) -> T:
        with broker_call_span(call):  # one span per call, its 429/budget waits included
            return await self._patiently(lambda: self._once(priority, call, fn, slots))

    async def _once(self, priority: Priority, call: str, fn: Callable[[], T], slots: int) -> T:
        try:
            await self.budget.acquire(priority, call, slots)
        except BudgetExhausted:
            metrics.broker_call(call, metrics.CallOutcome.BUDGET)
            raise
        tally = RequestTally()
        loop = asyncio.get_running_loop()
        outcome = metrics.CallOutcome.ERROR
        try:
            answer = await loop.run_in_executor(BROKER_THREADS, self._tallied, tally, fn)
            outcome = _outcome_of(answer)
            return answer
        except RateLimited as exc:
            outcome = metrics.CallOutcome.RATE_LIMITED
            if call not in MARKET_DATA_CALLS:
                await self.budget.block(exc.reset_at, f"{call} was answered 429")
            raise
        except NotFound:
            outcome = metrics.CallOutcome.OK  # a definitive answer (404), not a failure
            raise
        finally:
            metrics.broker_call(call, outcome)
            await self._settle(priority, call, slots, tally)

    def _tallied(self, tally: RequestTally, fn: Callable[[], T]) -> T:
        with self._gateway.rate_limits.tallying(tally):
            return fn()

    async def _settle(self, priority: Priority, call: str, slots: int, tally: RequestTally) -> None:
        """Count what the call sent beyond its slots; pass on the broker's newest count."""
        if tally.sent > slots:
            await self.budget.charge(priority, call, tally.sent - slots)
        seen = self._gateway.rate_limits.latest
        if seen is not None and seen != self._learned:
            self._learned = seen
            if seen.remaining is not None:
                metrics.ratelimit_remaining(seen.remaining)
            await self.budget.learn(seen)

    async def _patiently(self, attempt: Callable[[], Awaitable[T]]) -> T:
        """Wait out a 429 or a spent budget while the patience lasts, telling on_wait."""
        deadline = time.monotonic() + self._patience_s
        while True:
            try:
                return await attempt()
            except (RateLimited, BudgetExhausted) as exc:
                wait_s = retry_in(exc)
                if time.monotonic() + wait_s > deadline:
                    raise
                if self._on_wait is not None:
                    self._on_wait(exc, wait_s)
                await asyncio.sleep(wait_s)


class MeteredGateway(Metered[ObservedGateway]):
    """The BrokerGateway's calls, async, each paid for from the account-wide budget first."""

    # ---- reads -------------------------------------------------------------------------
    async def get_account(self) -> BrokerAccount:
        """The account."""
        return await self._call(Priority.READ, "get_account", self._gateway.get_account)

    async def get_clock(self) -> MarketClock:
        """The market clock."""
        return await self._call(Priority.READ, "get_clock", self._gateway.get_clock)

    async def get_calendar(self, start: date, end: date) -> list[SessionDay]:
        """Trading sessions between two dates, inclusive."""
        return await self._call(
            Priority.READ, "get_calendar", lambda: self._gateway.get_calendar(start, end)
        )

    async def get_asset(self, symbol: str) -> AssetInfo:
        """One asset (NotFound for an unknown symbol)."""
        return await self._call(Priority.READ, "get_asset", lambda: self._gateway.get_asset(symbol))

    async def find_asset(self, symbol: str) -> AssetInfo | None:
        """The broker's asset for the symbol, or None when the broker does not know it."""
        return await self._call(
            Priority.READ, "get_asset", lambda: find_asset(self._gateway, symbol)
        )

    async def get_positions(self) -> list[BrokerPosition]:
        """All open positions."""
        return await self._call(Priority.READ, "get_positions", self._gateway.get_positions)

    async def get_open_orders(self) -> list[BrokerOrder]:
        """Every open order, each leg listed on its own."""
        return await self._call(Priority.READ, "get_open_orders", self._gateway.get_open_orders)

    async def broker_truth(self) -> BrokerTruth:
        """Account, positions and open orders in one snapshot; any failure fails it whole."""
        return await self._call(
            Priority.READ, "broker_truth", lambda: broker_truth(self._gateway), SNAPSHOT_SLOTS
        )

    async def get_order(self, order_id: str) -> BrokerOrder:
        """One order by broker id (NotFound if unknown)."""
        return await self._call(
            Priority.READ, "get_order", lambda: self._gateway.get_order(order_id)
        )

    async def get_order_by_client_id(self, client_order_id: str) -> BrokerOrder:
        """One order by our client_order_id (NotFound if unknown)."""
        return await self._call(
            Priority.READ,
            "get_order_by_client_id",
            lambda: self._gateway.get_order_by_client_id(client_order_id),
        )

    async def probe_order(self, order_id: str) -> OrderProbe:
        """exists / absent / unknown; a probe the budget does not allow now is unknown."""
        return await self._probe(
            OrderProbe, "probe_order", lambda: self._gateway.probe_order(order_id)
        )

    async def probe_position(self, symbol: str) -> PositionProbe:
        """exists / absent / unknown; a probe the budget does not allow now is unknown."""
        return await self._probe(
            PositionProbe, "probe_position", lambda: self._gateway.probe_position(symbol)
        )

    async def latest_quotes(self, symbols: list[str]) -> list[Quote]:
        """Latest quote per symbol."""
        return await self._call(
            Priority.READ, "latest_quotes", lambda: self._gateway.latest_quotes(symbols)
        )

    async def get_bars(
        self, symbols: list[str], timeframe: str, start: str, end: str | None, limit: int | None
    ) -> list[Bar]:
        """Bars for symbols (all pages)."""
        return await self._call(
            Priority.READ,
            "get_bars",
            lambda: self._gateway.get_bars(symbols, timeframe, start, end, limit),
        )

    # ---- writes ------------------------------------------------------------------------
    async def submit_order(self, intent: OrderIntent) -> BrokerOrder:
        """Place an order at most once; a stop, exit or rescue leg protects, an entry trades."""
        return await self._call(
            submit_priority(intent.client_order_id),
            "submit_order",
            lambda: self._gateway.submit_order(intent),
        )

    async def cancel_order(self, order_id: str) -> CancelResult:
        """Cancel (an order already final counts as success); protective: exits and rescues
        cancel before they place."""
        return await self._call(
            Priority.PROTECT,
            "cancel_order",
            lambda: self._gateway.cancel_order(order_id),
            CANCEL_SLOTS,
        )

    async def replace_order(self, request: ReplaceRequest) -> BrokerOrder:
        """Replace a working order (a stop's tighten or resize); protective."""
        return await self._call(
            Priority.PROTECT, "replace_order", lambda: self._gateway.replace_order(request)
        )

    async def close_position(
        self, symbol: str, qty: str | None = None, percentage: str | None = None
    ) -> BrokerOrder:
        """Close all or part of a position at market; protective (an exit)."""
        return await self._call(
            Priority.PROTECT,
            "close_position",
            lambda: self._gateway.close_position(symbol, qty, percentage),
        )

    # ---- probes ------------------------------------------------------------------------
    async def _probe(self, kind: type[P], call: str, fn: Callable[[], P]) -> P:
        """A read whose answer may be unknown: a spent budget answers UNKNOWN, not an error."""
        try:
            return await self._call(Priority.READ, call, fn)
        except BudgetExhausted as exc:
            return kind(outcome=ProbeOutcome.UNKNOWN, error=_describe(exc))


def retry_in(exc: RateLimited | BudgetExhausted) -> float:
    """Seconds until the call may be tried again: the broker's reset, or the budget's next slot."""
    if isinstance(exc, BudgetExhausted):
        return exc.retry_after.total_seconds()
    now = datetime.now(UTC)
    return (block_after_429(exc.reset_at, now) - now).total_seconds()


def _outcome_of(answer: object) -> metrics.CallOutcome:
    """ok, unless a probe came back unknown (the gateway turned its error into UNKNOWN)."""
    if isinstance(answer, OrderProbe | PositionProbe) and answer.outcome is ProbeOutcome.UNKNOWN:
        return metrics.CallOutcome.ERROR
    return metrics.CallOutcome.OK


def _describe(exc: BrokerError) -> str:
    return f"{type(exc).__name__}: {exc.message}"
