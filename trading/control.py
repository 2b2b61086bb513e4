"""Trading control: ACTIVE / REDUCING / HALTED, the entry gate, auto-halt and flatten decisions.

Pure logic and models for TradingControlWorkflow (its interface: contracts/control.py). The
entry gate reads the mode through trading/entry_gate.py; the workflow asks `decide` for each
command, `rescue_alert_outcome` on each rescue alert, `loss_outcome` on each loss check and
`flatten_step` on each flatten round. Nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from pydantic import BaseModel, Field

from trading.broker_models import BrokerOrder, BrokerPosition, OrderSide, OrderType
from trading.models import Frozen
from trading.options.trade_models import OptionForceExit
from trading.risk import AccountView, RiskLimits, daily_loss_breach

HISTORY_KEPT = 50  # changes kept in the state (the audit log keeps them all)


class ControlMode(StrEnum):
    """Whether new entries may start."""

    ACTIVE = "ACTIVE"  # entries allowed
    REDUCING = "REDUCING"  # no new entries; open trades are managed as usual
    HALTED = "HALTED"  # no new entries until an explicit resume; stops stay in place


class ControlCommand(StrEnum):
    """What can be asked of the control workflow."""

    PAUSE_ENTRIES = "pause_entries"
    RESUME = "resume"
    HALT = "halt"
    FLATTEN = "flatten"
    AUTO_HALT = "auto_halt"


_TARGET = {
    ControlCommand.PAUSE_ENTRIES: ControlMode.REDUCING,
    ControlCommand.RESUME: ControlMode.ACTIVE,
    ControlCommand.HALT: ControlMode.HALTED,
    ControlCommand.FLATTEN: ControlMode.HALTED,
    ControlCommand.AUTO_HALT: ControlMode.HALTED,
}


class ControlRequest(Frozen):
    """A mode change asked for by someone, with the reason that goes into the audit log."""

    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(default="operator", min_length=1, max_length=100)


class RescueAlert(Frozen):
    """A trade's stop could not be rescued repeatedly (RescueEscalation.HALT_ENTRIES)."""

    trade_id: str = Field(min_length=1)
    symbol: str = ""
    detail: str = ""


class ControlChange(Frozen):
    """One audited change of mode (or a command that ran without changing it)."""

    change_id: str
    command: ControlCommand
    from_mode: ControlMode
    to_mode: ControlMode
    reason: str
    actor: str
    at: datetime


class RescueAlertSeen(Frozen):
    """When a rescue alert arrived, and from which trade."""

    trade_id: str
    at: datetime


class LossCheck(Frozen):
    """One look at the day's P&L: equity against the previous close's equity."""

    at: datetime
    equity: Decimal | None = None
    last_equity: Decimal | None = None
    daily_pnl: Decimal | None = None
    limit: Decimal | None = None  # dollars
    limit_pct: Decimal | None = None  # of last_equity
    error: str | None = None


class FlattenRequest(Frozen):
    """Exit everything: halt, cancel entries, exit every position, wait until flat."""

    reason: str = Field(min_length=1, max_length=500)
    actor: str = Field(default="operator", min_length=1, max_length=100)
    timeout: timedelta = timedelta(minutes=3)
    poll_interval: timedelta = timedelta(seconds=1)
    # How long a running trade workflow gets to exit its own position before flatten
    # closes what is left itself (it still waits while an exit order works).
    trade_grace: timedelta = timedelta(seconds=30)


class FlattenReport(BaseModel):
    """How a flatten went (also the live progress shown by the `state` query)."""

    flatten_id: str = ""  # the FLATTEN command's change id: keys this flatten's records
    reason: str
    actor: str
    started_at: datetime
    finished_at: datetime | None = None
    rounds: int = 0
    done: bool = False
    signalled_trades: list[str] = Field(default_factory=list)
    unreachable_trades: list[str] = Field(default_factory=list)
    cancelled_orders: list[str] = Field(default_factory=list)
    closed_symbols: list[str] = Field(default_factory=list)
    # symbol -> when the first cancel of its protective orders was asked (its unprotected gap)
    unprotected_since: dict[str, datetime] = Field(default_factory=dict)
    positions_left: list[str] = Field(default_factory=list)
    orders_left: int = 0
    # Option trades (flattens since FLATTEN_CLOSES_OPTION_TRADES): told to close through their
    # workflow's FORCE_EXIT, found with no running workflow (each by its latest delivery: in one
    # list, never both), and still open in the ledger at the last round. A flatten is done only
    # when none is open.
    signalled_option_trades: list[str] = Field(default_factory=list)
    unreachable_option_trades: list[str] = Field(default_factory=list)
    option_trades_left: list[str] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)
    note: str = ""


class OptionTradeExitRequest(Frozen):
    """Tell one option trade's workflow (`option-trade-<id>`) to close its structure now."""

    trade_id: str = Field(min_length=1)
    exit: OptionForceExit


class ControlState(BaseModel):
    """Everything the control workflow knows; carried whole across continue-as-new."""

    mode: ControlMode = ControlMode.ACTIVE
    reason: str = "started"
    since: datetime | None = None
    actor: str = "system"
    seq: int = 0  # one more per audited command
    history: list[ControlChange] = Field(default_factory=list)
    rescue_alerts: list[RescueAlertSeen] = Field(default_factory=list)
    loss_breached: bool = False
    last_loss_check: LossCheck | None = None
    flatten: FlattenReport | None = None
    flattens: int = 0


class ControlInput(BaseModel):
    """Settings of the singleton control workflow, plus the state carried over."""

    daily_loss_limit: Decimal | None = Field(default=None, gt=0)  # in dollars; None: no check
    # A fraction of the previous close's equity; None: no check. Either limit halts.
    daily_loss_limit_pct: Decimal | None = Field(default=None, gt=0, lt=1)
    loss_check_interval: timedelta = timedelta(seconds=60)
    rescue_alert_threshold: int = Field(default=2, ge=1)
    rescue_alert_window: timedelta = timedelta(hours=1)
    state: ControlState | None = None


# --- mode changes ------------------------------------------------------------------------


def decide(mode: ControlMode, command: ControlCommand) -> ControlMode | None:
    """The mode a command leads to, or None when it changes nothing.

    Pausing entries never loosens a halt: leaving HALTED takes an explicit resume.
    """
    target = _TARGET[command]
    if target is mode:
        return None
    if command is ControlCommand.PAUSE_ENTRIES and mode is ControlMode.HALTED:
        return None
    return target


def unchanged_note(mode: ControlMode, command: ControlCommand) -> str:
    """Why a command changed nothing, in words for the operator."""
    if command is ControlCommand.PAUSE_ENTRIES and mode is ControlMode.HALTED:
        return "trading is HALTED; pausing would loosen it (resume first)"
    return f"already {mode.value}"


def apply_change(state: ControlState, change: ControlChange) -> None:
    """Record a change in the state (mutates it); the history keeps the latest changes."""
    state.seq += 1
    state.history = [*state.history, change][-HISTORY_KEPT:]
    if change.to_mode is not change.from_mode:
        state.mode = change.to_mode
        state.reason = change.reason
        state.since = change.at
        state.actor = change.actor
    if change.command is ControlCommand.RESUME:
        state.rescue_alerts = []  # acknowledged: count afresh from here


# --- automatic halt ----------------------------------------------------------------------


def daily_pnl(equity: Decimal, last_equity: Decimal) -> Decimal:
    """Today's P&L: equity now against equity at the previous close."""
    return equity - last_equity


def loss_limit_breach(
    daily_pnl: Decimal,
    last_equity: Decimal | None,
    loss_limit: Decimal | None,
    loss_limit_pct: Decimal | None = None,
) -> str | None:
    """Why today's P&L breaches the dollar or percentage limit, or None (risk's one rule).

    Without `last_equity` only the dollar limit can be judged.
    """
    if loss_limit is None and loss_limit_pct is None:
        return None
    base = last_equity if last_equity is not None else Decimal(0)
    account = AccountView(equity=base + daily_pnl, last_equity=base, buying_power=Decimal(0))
    limits = RiskLimits(daily_loss_limit_usd=loss_limit, daily_loss_limit_pct=loss_limit_pct)
    return daily_loss_breach(account, limits)


def should_auto_halt(
    daily_pnl: Decimal | None,
    loss_limit: Decimal | None,
    recent_rescue_alerts: int,
    threshold: int,
    last_equity: Decimal | None = None,
    loss_limit_pct: Decimal | None = None,
) -> str | None:
    """Why trading must halt now, or None: a breached daily loss limit or repeated rescue alerts."""
    if daily_pnl is not None:
        breach = loss_limit_breach(daily_pnl, last_equity, loss_limit, loss_limit_pct)
        if breach is not None:
            return breach
    if recent_rescue_alerts >= threshold:
        return f"{recent_rescue_alerts} stop rescue alerts (threshold {threshold})"
    return None


def recent_alerts(
    alerts: Iterable[RescueAlertSeen], now: datetime, window: timedelta
) -> list[RescueAlertSeen]:
    """Alerts inside the window ending now."""
    return [alert for alert in alerts if now - alert.at <= window]


class AlertOutcome(Frozen):
    """A rescue alert counted: the alerts still in the window, and why to halt (None: don't)."""

    alerts: list[RescueAlertSeen]
    halt_reason: str | None


def rescue_alert_outcome(
    state: ControlState, trade_id: str, now: datetime, window: timedelta, threshold: int
) -> AlertOutcome:
    """Count a trade's rescue alert in the window; halt when the count reaches the threshold.

    A halt is only asked for when it would change the mode (HALTED already: nothing to do).
    """
    alerts = [
        *recent_alerts(state.rescue_alerts, now, window),
        RescueAlertSeen(trade_id=trade_id, at=now),
    ]
    reason = should_auto_halt(None, None, len(alerts), threshold)
    if reason is not None and decide(state.mode, ControlCommand.AUTO_HALT) is None:
        reason = None
    return AlertOutcome(alerts=alerts, halt_reason=reason)


class LossOutcome(Frozen):
    """One loss check: what was seen, whether the limit is breached, and whether to halt now."""

    check: LossCheck
    breached: bool
    first_breach: bool  # edge-triggered: a resume after a loss halt holds until a new breach
    halt_reason: str | None  # set on the first breach when it would change the mode


def loss_outcome(
    state: ControlState,
    equity: Decimal,
    last_equity: Decimal,
    limit: Decimal | None,
    threshold: int,
    now: datetime,
    limit_pct: Decimal | None = None,
) -> LossOutcome:
    """The day's P&L against the loss limits, and what the control workflow does about it."""
    pnl = daily_pnl(equity, last_equity)
    check = LossCheck(
        at=now,
        equity=equity,
        last_equity=last_equity,
        daily_pnl=pnl,
        limit=limit,
        limit_pct=limit_pct,
    )
    reason = loss_limit_breach(pnl, last_equity, limit, limit_pct)
    first = reason is not None and not state.loss_breached
    halt = reason if first and decide(state.mode, ControlCommand.AUTO_HALT) is not None else None
    return LossOutcome(
        check=check, breached=reason is not None, first_breach=first, halt_reason=halt
    )


# --- flatten -----------------------------------------------------------------------------


class UntrackedClose(Frozen):
    """A position no running trade workflow exits: cancel its orders, then close at market."""

    symbol: str
    qty: Decimal
    cancel_first: list[BrokerOrder]  # its stops/take-profits, cancelled right before the close
    # Orders the ledger knows in the symbol that the listing does not show (held legs may be
    # hidden from open listings): cancelled by id too, or the close finds its shares held.
    cancel_known: list[str] = Field(default_factory=list)


class FlattenStep(Frozen):
    """What one flatten round does, given the broker's positions and open orders."""

    cancel: list[BrokerOrder]  # entry orders, and orders protecting nothing
    close: list[UntrackedClose]
    waiting_on: list[str]  # symbols whose exit is in hand (trade workflow, or exit working)
    done: bool  # no position and no open order at the broker


def working_orders(orders: Iterable[BrokerOrder]) -> Iterator[BrokerOrder]:
    """Every active order, legs included (a filled parent's legs still work)."""
    for order in orders:
        if order.is_active:
            yield order
        yield from working_orders(order.legs)


def closing_side(position: BrokerPosition) -> OrderSide:
    """The side that reduces a position."""
    return OrderSide.SELL if position.qty > 0 else OrderSide.BUY


def flatten_step(
    positions: Iterable[BrokerPosition],
    open_orders: Iterable[BrokerOrder],
    tracked_symbols: Iterable[str],
    known_orders: Mapping[str, Iterable[str]] | None = None,
) -> FlattenStep:
    """One round of flatten against a successful broker snapshot.

    Entry orders (orders on the opening side) go at once. A position a running trade
    workflow is exiting is left to it. Any other position keeps its protective orders until
    it is closed here: they are cancelled right before the market close, so the unprotected
    gap is one cancel plus one close. A market order on the closing side is an exit already
    working: wait for it. Orders in a symbol with no position protect nothing: cancel them.
    `known_orders` (symbol -> order ids the ledger holds) adds what the listing may hide.
    """
    held = {p.symbol: p for p in positions if p.qty != 0}
    tracked = set(tracked_symbols)
    orders = list(working_orders(open_orders))
    cancel: list[BrokerOrder] = []
    by_symbol: dict[str, list[BrokerOrder]] = {}
    for order in orders:
        position = held.get(order.symbol)
        if position is None or order.side is not closing_side(position):
            cancel.append(order)
        else:
            by_symbol.setdefault(order.symbol, []).append(order)
    close: list[UntrackedClose] = []
    waiting: list[str] = []
    for symbol in sorted(held):
        position = held[symbol]
        protective = by_symbol.get(symbol, [])
        exit_working = any(o.type is OrderType.MARKET for o in protective)
        if symbol in tracked or exit_working:
            waiting.append(symbol)
            continue
        hidden = sorted(set((known_orders or {}).get(symbol, ())) - {o.id for o in orders})
        close.append(
            UntrackedClose(
                symbol=symbol, qty=position.qty, cancel_first=protective, cancel_known=hidden
            )
        )
    return FlattenStep(cancel=cancel, close=close, waiting_on=waiting, done=not held and not orders)


def option_delivery_seen(report: FlattenReport, trade_id: str, *, delivered: bool) -> None:
    """Record an option trade's latest FORCE_EXIT delivery (mutates the report): signalled or
    unreachable, never both. A trade unreachable in one round may be signalled in the next
    (reconcile restarted its workflow), and one signalled may be found with no run later."""
    signalled, unreachable = report.signalled_option_trades, report.unreachable_option_trades
    into, out_of = (signalled, unreachable) if delivered else (unreachable, signalled)
    if trade_id in out_of:
        out_of.remove(trade_id)
    if trade_id not in into:
        into.append(trade_id)


def flatten_note(report: FlattenReport, timeout: timedelta) -> str:
    """How a finished flatten ended, in one line for people."""
    if report.done:
        note = "flat: no position and no open order at the broker"
        if report.signalled_option_trades:
            note += f"; {len(report.signalled_option_trades)} option trades closed"
        return note
    left = [
        f"{', '.join(report.positions_left)} positions",
        f"{report.orders_left} open orders",
    ]
    if report.option_trades_left:
        unreachable = set(report.unreachable_option_trades)
        shown = ", ".join(
            f"{t} (no running workflow)" if t in unreachable else t
            for t in report.option_trades_left
        )
        left.append(f"option trades {shown}")
    return f"not flat after {timeout}: {', '.join(left)} left"


def order_label(order: BrokerOrder) -> str:
    """`sell stop AAPL`: how flatten names an order to people."""
    return f"{order.side.value} {order.type.value} {order.symbol}"
