"""The account-wide broker-call budget's rules: a sliding 60 s window, priorities, reserves.

Alpaca allows 200 REST requests per minute per API key. The stricter reading is a sliding
window - no 60 s interval holds more than the limit - which also satisfies a server that counts
in fixed one-minute windows. Pure: broker/budget.py keeps the calls (in PostgreSQL, shared by
every process using the keys) and asks `decide` before each call.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from pydantic import Field, model_validator

from trading.ids import Leg, parse_client_order_id
from trading.models import Frozen

WINDOW = timedelta(seconds=60)
# The most broker requests one gateway call is charged up front (the broker-truth snapshot).
MAX_CALL_SLOTS = 3
# A 429 without X-RateLimit-Reset still stops every caller for this long.
UNKNOWN_RESET_BLOCK = timedelta(seconds=15)
PROTECTIVE_LEGS = frozenset({Leg.STOP, Leg.EXIT, Leg.RESCUE})


class Priority(StrEnum):
    """Who may spend the last calls of the window."""

    PROTECT = "protect"  # protective orders: stop submits, replaces, cancels, exits
    TRADE = "trade"  # entries and other writes
    READ = "read"  # reads: the first to give way


class BudgetConfig(Frozen):
    """The limit, the reserve each priority leaves to those above it, how long each waits."""

    calls_per_min: int = Field(190, ge=MAX_CALL_SLOTS)
    read_reserve: int = Field(40, ge=0)
    trade_reserve: int = Field(10, ge=0)
    read_wait: timedelta = timedelta(seconds=1)
    trade_wait: timedelta = timedelta(seconds=5)
    protect_wait: timedelta = timedelta(seconds=10)

    @model_validator(mode="after")
    def _reserves_fit(self) -> BudgetConfig:
        if self.trade_reserve > self.read_reserve:
            raise ValueError("the trade reserve cannot be larger than the read reserve")
        if self.read_reserve > self.calls_per_min - MAX_CALL_SLOTS:
            raise ValueError(
                f"the read reserve must leave reads at least {MAX_CALL_SLOTS} calls a minute"
            )
        return self

    def reserve(self, priority: Priority) -> int:
        """Calls this priority must leave unused for the ones above it."""
        reserves = {
            Priority.READ: self.read_reserve,
            Priority.TRADE: self.trade_reserve,
            Priority.PROTECT: 0,
        }
        return reserves[priority]

    def patience(self, priority: Priority) -> timedelta:
        """How long a call of this priority waits for a slot before it gives up."""
        waits = {
            Priority.READ: self.read_wait,
            Priority.TRADE: self.trade_wait,
            Priority.PROTECT: self.protect_wait,
        }
        return waits[priority]


class SpentCall(Frozen):
    """Broker requests granted at one instant (a gateway call may take several slots)."""

    at: datetime
    priority: Priority
    slots: int = 1


class BrokerLimitSeen(Frozen):
    """The broker's own count, from the X-RateLimit-* headers of its latest answer."""

    limit: int | None = None
    remaining: int | None = None
    reset_at: datetime | None = None
    observed_at: datetime

    @classmethod
    def from_headers(
        cls, headers: Mapping[str, str], observed_at: datetime
    ) -> BrokerLimitSeen | None:
        """Parse X-RateLimit-Limit/-Remaining/-Reset (epoch seconds); None when there are none."""
        lowered = {name.lower(): value for name, value in headers.items()}
        limit = _integer(lowered.get("x-ratelimit-limit"))
        remaining = _integer(lowered.get("x-ratelimit-remaining"))
        reset = _integer(lowered.get("x-ratelimit-reset"))
        if limit is None and remaining is None and reset is None:
            return None
        reset_at = datetime.fromtimestamp(reset, UTC) if reset is not None else None
        return cls(limit=limit, remaining=remaining, reset_at=reset_at, observed_at=observed_at)


class BudgetState(Frozen):
    """What the budget knows besides its calls: a recorded 429 and the broker's last count."""

    blocked_until: datetime | None = None
    blocked_reason: str | None = None
    broker: BrokerLimitSeen | None = None


class Verdict(Frozen):
    """May the call go now; if not, when to ask again and why."""

    granted: bool
    retry_after: timedelta = timedelta(0)
    reason: str = ""
    broker_limited: bool = False  # the broker's own limit holds (a 429, or its count at 0)


class UsedByPriority(Frozen):
    """Broker calls of the last 60 s, per priority."""

    protect: int = 0
    trade: int = 0
    read: int = 0


class BudgetView(Frozen):
    """The broker-call budget right now, as `status` shows it."""

    shared: bool = Field(
        description="true: the PostgreSQL window every process shares; false: this process only"
    )
    limit_per_min: int
    used_last_60s: int
    used_by_priority: UsedByPriority
    remaining: int
    read_reserve: int
    trade_reserve: int
    broker_limit: int | None = None
    broker_remaining: int | None = None
    broker_reset_at: datetime | None = None
    broker_observed_at: datetime | None = None
    blocked_until: datetime | None = None
    blocked_reason: str | None = None


def in_window(calls: Iterable[SpentCall], now: datetime) -> list[SpentCall]:
    """The calls of the last 60 s, oldest first."""
    return sorted((c for c in calls if now - WINDOW < c.at <= now), key=lambda c: c.at)


def blocked(state: BudgetState, now: datetime) -> tuple[datetime, str] | None:
    """Until when the broker refuses every call, and why: a recorded 429, or its count at 0."""
    found: list[tuple[datetime, str]] = []
    if state.blocked_until is not None and state.blocked_until > now:
        found.append((state.blocked_until, state.blocked_reason or "the broker answered 429"))
    seen = state.broker
    if (
        seen is not None
        and seen.remaining is not None
        and seen.remaining <= 0
        and seen.reset_at is not None
        and seen.reset_at > now
    ):
        found.append((seen.reset_at, "the broker's X-RateLimit-Remaining reached 0"))
    return max(found, default=None)


def block_after_429(reset_at: datetime | None, now: datetime) -> datetime:
    """When a 429 ends: the broker's X-RateLimit-Reset, or a short pause when it gave none."""
    return reset_at if reset_at is not None and reset_at > now else now + UNKNOWN_RESET_BLOCK


def decide(
    calls: Iterable[SpentCall],
    state: BudgetState,
    priority: Priority,
    slots: int,
    now: datetime,
    config: BudgetConfig,
) -> Verdict:
    """Grant `slots` calls of `priority` now, or say how long until they would be granted."""
    block = blocked(state, now)
    if block is not None:
        until, reason = block
        return Verdict(
            granted=False,
            retry_after=until - now,
            reason=f"the broker's rate limit holds until {until:%H:%M:%S} UTC ({reason})",
            broker_limited=True,
        )
    recent = in_window(calls, now)
    used = sum(c.slots for c in recent)
    ceiling = config.calls_per_min - config.reserve(priority)
    excess = used + min(slots, MAX_CALL_SLOTS) - ceiling
    if excess <= 0:
        return Verdict(granted=True)
    return Verdict(
        granted=False,
        retry_after=_frees_after(recent, excess, now),
        reason=_spent_reason(used, priority, config),
    )


def _frees_after(recent: list[SpentCall], excess: int, now: datetime) -> timedelta:
    """How long until the oldest calls leave the window and free `excess` slots."""
    freed = 0
    for call in recent:
        freed += call.slots
        if freed >= excess:
            return call.at + WINDOW - now
    return WINDOW


def _spent_reason(used: int, priority: Priority, config: BudgetConfig) -> str:
    spent = f"{used} of {config.calls_per_min} broker calls used in the last 60 s"
    if priority is Priority.READ:
        return f"{spent}; reads leave the last {config.read_reserve} to orders"
    if priority is Priority.TRADE:
        return f"{spent}; trades leave the last {config.trade_reserve} to protective orders"
    return spent


def budget_view(
    calls: Iterable[SpentCall],
    state: BudgetState,
    now: datetime,
    config: BudgetConfig,
    *,
    shared: bool,
) -> BudgetView:
    """The budget for `status`: usage by priority, what is left, the broker's own count."""
    recent = in_window(calls, now)
    by_priority = {p: sum(c.slots for c in recent if c.priority is p) for p in Priority}
    used = sum(by_priority.values())
    seen = state.broker
    block = blocked(state, now)
    return BudgetView(
        shared=shared,
        limit_per_min=config.calls_per_min,
        used_last_60s=used,
        used_by_priority=UsedByPriority(**{p.value: n for p, n in by_priority.items()}),
        remaining=max(0, config.calls_per_min - used),
        read_reserve=config.read_reserve,
        trade_reserve=config.trade_reserve,
        broker_limit=seen.limit if seen else None,
        broker_remaining=seen.remaining if seen else None,
        broker_reset_at=seen.reset_at if seen else None,
        broker_observed_at=seen.observed_at if seen else None,
        blocked_until=block[0] if block else None,
        blocked_reason=block[1] if block else None,
    )


def submit_priority(client_order_id: str) -> Priority:
    """A stop, exit or rescue order protects a position; an entry (or a foreign id) trades."""
    parsed = parse_client_order_id(client_order_id)
    return (
        Priority.PROTECT if parsed is not None and parsed[1] in PROTECTIVE_LEGS else Priority.TRADE
    )


def account_key(trading_url: str, key_id: str) -> str:
    """A short digest naming the budget of one API key at one broker (never the key itself)."""
    material = f"{trading_url.rstrip('/')}\n{key_id}".encode()
    return hashlib.sha256(material).hexdigest()[:16]


def _integer(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None
