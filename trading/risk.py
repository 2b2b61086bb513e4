"""The risk engine: how many shares an entry may take, and whether the book may take it at all.

Pure and cheap (the backtest calls `check_entry` for every candidate of every bar): Decimal
arithmetic on frozen values, no I/O, no clock. Every refusal carries a stable `RiskReason` and
a one-line detail that names the numbers it compared, e.g.
`heat=512.00 new=180.00 cap=600.00 (6% of 10000)`.

Rules (long entries):
- Risk per trade: the dollars lost if the stop fills. The budget is `risk_per_trade_usd` when
  set, else `risk_per_trade_pct` of equity; the size is the whole-share floor of budget /
  (entry - stop), so a trade never risks more than its budget. A proposal without a stop gets
  one `default_stop_distance` below the entry; every stop is rounded onto the tick grid away
  from the market (trading/ticks.py `protective_stop_price`).
- Heat: the sum of open risk, each position's qty * max(price - stop, 0) (without a stop all
  of its value is at risk), plus each open defined-risk structure's max loss (an iron condor:
  `DefinedRisk`). An entry passes when heat + its risk <= `max_heat_pct` of equity.
- Defined risk (`check_defined_risk`): a structure whose loss is capped opens when its max loss
  fits the risk budget, no daily loss limit is breached, heat + max loss <= the heat cap, and
  the max loss fits the buying power (what a level-3 account holds against a spread).
- Daily loss: today's P&L is equity - last_equity (realized and unrealized since the previous
  close). Breached when the loss reaches `daily_loss_limit_usd` or `daily_loss_limit_pct` of
  last_equity (whichever are set).
- Allocation: a symbol's position value (held + new) stays within `max_allocation_pct` of
  equity; an entry too big is cut to fit and refused only when less than one share is left.
- Order caps: `max_order_qty` and `max_order_notional` per order. An entry above either is
  refused, or with `split_oversized` sliced into as-equal-as-possible whole-share orders that
  each fit both caps (at most `MAX_SLICES` of them).
- System guard: pause after `max_consecutive_losses` losing trades in a row, or when the
  drawdown of the closed trades' P&L curve (plus unrealized P&L) reaches `max_drawdown_pct` of
  equity; both count from the last resume.
- Add-ons: only to a position of ours, only when enabled, only below the allocation cap, only
  at `addon_min_confidence` or more.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from enum import StrEnum
from typing import Self

from pydantic import Field, model_validator

from trading.models import Frozen
from trading.ticks import protective_stop_price

MAX_SLICES = 100  # more orders than this for one entry is a misconfigured cap, not a plan

_ZERO = Decimal(0)
_ONE = Decimal(1)
_HUNDRED = Decimal(100)


class RiskLimits(Frozen):
    """The risk settings: per trade, for the book, per day, per order and for the system."""

    risk_per_trade_pct: Decimal = Field(default=Decimal("0.005"), gt=0, lt=1)
    risk_per_trade_usd: Decimal | None = Field(default=None, gt=0)  # wins over the pct
    default_stop_distance: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)
    max_heat_pct: Decimal = Field(default=Decimal("0.06"), gt=0, lt=1)
    daily_loss_limit_pct: Decimal | None = Field(default=Decimal("0.03"), gt=0, lt=1)
    daily_loss_limit_usd: Decimal | None = Field(default=None, gt=0)
    max_order_qty: Decimal | None = Field(default=None, ge=1)
    max_order_notional: Decimal | None = Field(default=None, gt=0)
    split_oversized: bool = False
    max_allocation_pct: Decimal = Field(default=Decimal("0.05"), gt=0, lt=1)
    max_consecutive_losses: int = Field(default=3, ge=1)
    max_drawdown_pct: Decimal = Field(default=Decimal("0.10"), gt=0, lt=1)
    addons_enabled: bool = False
    addon_min_confidence: int = Field(default=5, ge=1, le=5)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        """Refuse settings that contradict each other."""
        if (
            self.max_order_qty is not None
            and self.max_order_qty != self.max_order_qty.to_integral()
        ):
            raise ValueError(f"max_order_qty must be whole shares, got {self.max_order_qty}")
        if self.risk_per_trade_usd is None and self.risk_per_trade_pct > self.max_heat_pct:
            raise ValueError(
                f"risk_per_trade_pct {self.risk_per_trade_pct} is above max_heat_pct "
                f"{self.max_heat_pct}: no full-size entry could pass the heat cap"
            )
        return self


class RiskReason(StrEnum):
    """Why the risk engine approved or refused (stable codes; the detail says more)."""

    APPROVED = "approved"
    INVALID_STOP = "invalid_stop"
    SIGNAL_ALREADY_TODAY = "signal_already_today"
    DAILY_LOSS_LIMIT = "daily_loss_limit"
    RISK_TOO_SMALL = "risk_too_small"
    MAX_LOSS_OVER_BUDGET = "max_loss_over_budget"
    MAX_ALLOCATION = "max_allocation"
    HEAT_CAP = "heat_cap"
    INSUFFICIENT_BUYING_POWER = "insufficient_buying_power"
    FREEZE_QTY = "freeze_qty"
    FREEZE_NOTIONAL = "freeze_notional"
    SYSTEM_GUARD = "system_guard"
    NO_POSITION = "no_position"
    ADDON_EXTERNAL = "addon_external"
    ADDON_DISABLED = "addon_disabled"
    ADDON_ALLOCATION = "addon_allocation"
    ADDON_CONFIDENCE = "addon_confidence"


class AccountView(Frozen):
    """What the risk engine reads of the account."""

    equity: Decimal
    last_equity: Decimal  # equity at the previous close
    buying_power: Decimal
    # What the broker lets option orders use (None: it did not say; the buying power counts).
    options_buying_power: Decimal | None = None


class OpenRisk(Frozen):
    """One open position as the heat sees it: its size, price now and protective stop."""

    symbol: str
    qty: Decimal  # negative for a short
    price: Decimal  # current price
    stop: Decimal | None = None

    @property
    def risk(self) -> Decimal:
        """Dollars lost if the stop fills now (all of the value without a stop; never < 0)."""
        size = abs(self.qty)
        if self.stop is None:
            return size * self.price
        gap = self.price - self.stop if self.qty >= 0 else self.stop - self.price
        return size * gap if gap > 0 else _ZERO


class DefinedRisk(Frozen):
    """An open structure whose loss is capped (an iron condor): heat counts its max loss.

    Kept apart from OpenRisk: it holds no shares of its underlying, so it is no part of that
    symbol's allocation, and its risk does not move with a price or a stop.
    """

    trade_id: str
    symbol: str  # the underlying
    max_loss: Decimal = Field(ge=0)  # dollars for the whole structure (x100 x qty)

    @property
    def risk(self) -> Decimal:
        """Dollars the structure can lose: its max loss."""
        return self.max_loss


Risk = OpenRisk | DefinedRisk  # what the heat sums


class DefinedRiskProposal(Frozen):
    """A defined-risk structure to open: its underlying, how many, and its max loss in dollars."""

    underlying: str
    qty: int = Field(ge=1)
    max_loss: Decimal = Field(ge=0)
    # What opening it holds back from the options buying power (None: its max loss).
    requirement: Decimal | None = Field(default=None, ge=0)


class EntryProposal(Frozen):
    """A long entry to check: the reference entry price and the signal's stop, if any."""

    symbol: str
    entry: Decimal = Field(gt=0)
    stop: Decimal | None = None
    confidence: int | None = Field(default=None, ge=1, le=5)


class RiskVerdict(Frozen):
    """Approved (qty, stop, the orders to send, its risk and the heat after) or refused."""

    approved: bool
    reason: RiskReason
    detail: str
    qty: Decimal = _ZERO
    stop: Decimal | None = None
    slices: list[Decimal] = Field(default_factory=list)  # approved: the order sizes, sum = qty
    risk: Decimal = _ZERO
    heat_after: Decimal | None = None


class GuardInput(Frozen):
    """What the system guard reads: closed trades' P&L since the last resume, and now."""

    closed_pnls: list[Decimal] = Field(default_factory=list)  # oldest first
    unrealized: Decimal = _ZERO
    equity: Decimal


class HeldPosition(Frozen):
    """A position an add-on would grow; `external` when no trade of ours opened it."""

    symbol: str
    qty: Decimal
    market_value: Decimal
    external: bool = False


class AddOnVerdict(Frozen):
    """May we add to a position, and for at most how many dollars."""

    approved: bool
    reason: RiskReason
    detail: str
    max_notional: Decimal = _ZERO


# --- formatting ---------------------------------------------------------------------------


def _usd(value: Decimal) -> str:
    return f"{value:.2f}"


def _plain(value: Decimal) -> str:
    return f"{value.normalize():f}"


def _pct(fraction: Decimal) -> str:
    return f"{_plain(fraction * _HUNDRED)}%"


def _floor(value: Decimal) -> Decimal:
    # quantize, not to_integral_value: 50 stays `50`, never `5E+1`, in details and JSON.
    return value.quantize(_ONE, rounding=ROUND_FLOOR)


# --- sizing, heat, daily loss, order caps -------------------------------------------------


def effective_stop(entry: Decimal, stop: Decimal | None, limits: RiskLimits) -> Decimal:
    """The stop an entry uses: its own or `default_stop_distance` below, on the tick grid."""
    raw = stop if stop is not None else entry * (_ONE - limits.default_stop_distance)
    return protective_stop_price(raw)


def risk_budget(equity: Decimal, limits: RiskLimits) -> Decimal:
    """Dollars one trade may lose: `risk_per_trade_usd` if set, else the pct of equity."""
    if limits.risk_per_trade_usd is not None:
        return limits.risk_per_trade_usd
    return limits.risk_per_trade_pct * equity if equity > 0 else _ZERO


def size_for_risk(
    entry: Decimal, stop: Decimal | None, equity: Decimal, limits: RiskLimits
) -> Decimal:
    """Whole shares whose loss at the stop stays within the risk budget (floor; 0 if none).

    `stop` is used as given (None: the default stop distance below the entry).
    """
    if stop is None:
        stop = effective_stop(entry, None, limits)
    per_share = entry - stop
    if per_share <= 0:
        return _ZERO
    return _floor(risk_budget(equity, limits) / per_share)


def portfolio_heat(open_risks: Iterable[Risk]) -> Decimal:
    """The book's open risk: each position's loss if its stop filled now, plus each
    defined-risk structure's max loss."""
    return sum((position.risk for position in open_risks), _ZERO)


def daily_loss_breach(account: AccountView, limits: RiskLimits) -> str | None:
    """A one-line detail when today's loss (equity - last_equity) reaches a limit, else None."""
    loss = account.last_equity - account.equity
    if loss <= 0:
        return None
    usd = limits.daily_loss_limit_usd
    if usd is not None and loss >= usd:
        return f"daily loss {loss} reached the limit {usd}"
    pct = limits.daily_loss_limit_pct
    if pct is not None and account.last_equity > 0:
        allowed = pct * account.last_equity
        if loss >= allowed:
            return (
                f"daily loss {loss} reached the limit {_pct(pct)} of {account.last_equity}"
                f" ({_usd(allowed)})"
            )
    return None


def order_cap_breach(
    qty: Decimal, price: Decimal, limits: RiskLimits
) -> tuple[RiskReason, str] | None:
    """The first per-order cap one order of `qty` at `price` would break, with a detail."""
    cap_qty = limits.max_order_qty
    if cap_qty is not None and qty > cap_qty:
        return RiskReason.FREEZE_QTY, f"qty={qty} max_order_qty={cap_qty}"
    cap_notional = limits.max_order_notional
    if cap_notional is not None and qty * price > cap_notional:
        return (
            RiskReason.FREEZE_NOTIONAL,
            f"notional={_usd(qty * price)} max_order_notional={_usd(cap_notional)} "
            f"(qty={qty} price={price})",
        )
    return None


def slice_qty(qty: Decimal, price: Decimal, limits: RiskLimits) -> list[Decimal]:
    """The order sizes for `qty` whole shares: [qty] within the caps; [] when refused.

    Above a cap: [] unless `split_oversized`, then as-equal-as-possible whole-share slices
    (larger first) that each fit both caps; [] when one share breaks the notional cap or it
    would take more than MAX_SLICES orders.
    """
    if qty < 1 or qty != qty.to_integral_value():
        raise ValueError(f"slice_qty needs a whole number of shares >= 1, got {qty}")
    if order_cap_breach(qty, price, limits) is None:
        return [qty]
    if not limits.split_oversized:
        return []
    per_order = qty if limits.max_order_qty is None else limits.max_order_qty
    if limits.max_order_notional is not None:
        per_order = min(per_order, _floor(limits.max_order_notional / price))
    if per_order < 1:
        return []
    count = (qty / per_order).to_integral_value(rounding=ROUND_CEILING)
    if count > MAX_SLICES:
        return []
    base, larger = divmod(int(qty), int(count))
    return [Decimal(base + 1)] * larger + [Decimal(base)] * (int(count) - larger)


# --- the entry check ----------------------------------------------------------------------


def _refuse(
    reason: RiskReason,
    detail: str,
    *,
    qty: Decimal = _ZERO,
    stop: Decimal | None = None,
    risk: Decimal = _ZERO,
) -> RiskVerdict:
    return RiskVerdict(approved=False, reason=reason, detail=detail, qty=qty, stop=stop, risk=risk)


def check_entry(
    proposal: EntryProposal,
    account: AccountView,
    open_risks: Iterable[Risk],
    limits: RiskLimits,
    signalled_today: bool,
) -> RiskVerdict:
    """Approve a long entry with its size, or refuse it with the first rule it breaks.

    Checks, in order: the stop (below the entry after tick rounding), one signal per symbol a
    day, the daily loss limit, the size for the risk budget (>= 1 share), the allocation cap
    (cuts the size to fit), the heat cap, buying power, then the per-order caps (refuse, or
    slice with `split_oversized`). An approved verdict's `slices` always sum to its qty.
    """
    entry, symbol = proposal.entry, proposal.symbol
    if proposal.stop is not None and proposal.stop <= 0:
        return _refuse(
            RiskReason.INVALID_STOP, f"symbol={symbol} stop={proposal.stop} is not a price"
        )
    stop = effective_stop(entry, proposal.stop, limits)
    if stop >= entry:
        return _refuse(
            RiskReason.INVALID_STOP,
            f"symbol={symbol} stop={stop} is not below entry={entry}",
            stop=stop,
        )
    if signalled_today:
        return _refuse(
            RiskReason.SIGNAL_ALREADY_TODAY, f"symbol={symbol} already had an entry signal today"
        )
    loss = daily_loss_breach(account, limits)
    if loss is not None:
        return _refuse(RiskReason.DAILY_LOSS_LIMIT, loss)
    equity = account.equity
    per_share = entry - stop
    qty = size_for_risk(entry, stop, equity, limits)
    if qty < 1:
        return _refuse(
            RiskReason.RISK_TOO_SMALL,
            f"budget={_usd(risk_budget(equity, limits))} per_share={_usd(per_share)} "
            f"(entry={entry} stop={stop}): less than one share",
            stop=stop,
        )
    risks = list(open_risks)
    held_value = sum(
        (abs(r.qty) * r.price for r in risks if isinstance(r, OpenRisk) and r.symbol == symbol),
        _ZERO,
    )
    allocation_cap = limits.max_allocation_pct * equity
    room = allocation_cap - held_value
    note = ""
    if qty * entry > room:
        fitted = _floor(room / entry) if room > 0 else _ZERO
        if fitted < 1:
            return _refuse(
                RiskReason.MAX_ALLOCATION,
                f"symbol={symbol} held={_usd(held_value)} cap={_usd(allocation_cap)} "
                f"({_pct(limits.max_allocation_pct)} of {_plain(equity)}) entry={entry}: "
                "not one share fits",
                stop=stop,
            )
        note = f" (cut from {qty} by allocation cap {_usd(allocation_cap)})"
        qty = fitted
    risk = qty * per_share
    heat = portfolio_heat(risks)
    heat_cap = limits.max_heat_pct * equity
    if heat + risk > heat_cap:
        return _refuse(
            RiskReason.HEAT_CAP,
            f"heat={_usd(heat)} new={_usd(risk)} cap={_usd(heat_cap)} "
            f"({_pct(limits.max_heat_pct)} of {_plain(equity)})",
            qty=qty,
            stop=stop,
            risk=risk,
        )
    cost = qty * entry
    if cost > account.buying_power:
        return _refuse(
            RiskReason.INSUFFICIENT_BUYING_POWER,
            f"cost={_usd(cost)} buying_power={_usd(account.buying_power)} "
            f"(qty={qty} entry={entry})",
            qty=qty,
            stop=stop,
            risk=risk,
        )
    slices = slice_qty(qty, entry, limits)
    if not slices:
        reason, detail = order_cap_breach(qty, entry, limits) or (RiskReason.FREEZE_QTY, "")
        if limits.split_oversized:
            detail += " and cannot be split within the caps"
        return _refuse(reason, detail, qty=qty, stop=stop, risk=risk)
    split = f" in {len(slices)} orders" if len(slices) > 1 else ""
    return RiskVerdict(
        approved=True,
        reason=RiskReason.APPROVED,
        detail=(
            f"qty={qty}{split} entry={entry} stop={stop} risk={_usd(risk)} "
            f"heat_after={_usd(heat + risk)}{note}"
        ),
        qty=qty,
        stop=stop,
        slices=slices,
        risk=risk,
        heat_after=heat + risk,
    )


def check_defined_risk(
    proposal: DefinedRiskProposal,
    account: AccountView,
    open_risks: Iterable[Risk],
    limits: RiskLimits,
) -> RiskVerdict:
    """Approve opening a defined-risk structure (an iron condor), or refuse it with the first
    rule it breaks.

    Checks, in order: the daily loss limit, the max loss against the risk budget
    (`risk_budget`), the heat cap (heat + max loss <= `max_heat_pct` of equity), then buying
    power: what opening it holds back (`requirement`, default its max loss) within the
    options buying power when the broker states one, else the buying power. Each limit is
    inclusive: a max loss exactly at it passes. The verdict's qty is the structures, its risk
    the max loss; one order opens them all.
    """
    qty, max_loss, underlying = Decimal(proposal.qty), proposal.max_loss, proposal.underlying
    loss = daily_loss_breach(account, limits)
    if loss is not None:
        return _refuse(RiskReason.DAILY_LOSS_LIMIT, loss, qty=qty, risk=max_loss)
    equity = account.equity
    budget = risk_budget(equity, limits)
    if max_loss > budget:
        source = (
            "risk_per_trade_usd"
            if limits.risk_per_trade_usd is not None
            else f"{_pct(limits.risk_per_trade_pct)} of {_plain(equity)}"
        )
        return _refuse(
            RiskReason.MAX_LOSS_OVER_BUDGET,
            f"{underlying} x{proposal.qty}: max_loss={_usd(max_loss)} budget={_usd(budget)} "
            f"({source})",
            qty=qty,
            risk=max_loss,
        )
    heat = portfolio_heat(open_risks)
    heat_cap = limits.max_heat_pct * equity
    if heat + max_loss > heat_cap:
        return _refuse(
            RiskReason.HEAT_CAP,
            f"heat={_usd(heat)} new={_usd(max_loss)} cap={_usd(heat_cap)} "
            f"({_pct(limits.max_heat_pct)} of {_plain(equity)})",
            qty=qty,
            risk=max_loss,
        )
    needed = proposal.requirement if proposal.requirement is not None else max_loss
    options_power = account.options_buying_power
    if options_power is None and needed > account.buying_power:
        return _refuse(
            RiskReason.INSUFFICIENT_BUYING_POWER,
            f"max_loss={_usd(max_loss)} buying_power={_usd(account.buying_power)} "
            f"({underlying} x{proposal.qty})",
            qty=qty,
            risk=max_loss,
        )
    if options_power is not None and needed > options_power:
        return _refuse(
            RiskReason.INSUFFICIENT_BUYING_POWER,
            f"needs={_usd(needed)} options_buying_power={_usd(options_power)} "
            f"({underlying} x{proposal.qty}, max_loss={_usd(max_loss)})",
            qty=qty,
            risk=max_loss,
        )
    return RiskVerdict(
        approved=True,
        reason=RiskReason.APPROVED,
        detail=(
            f"{underlying} x{proposal.qty} max_loss={_usd(max_loss)} budget={_usd(budget)} "
            f"heat_after={_usd(heat + max_loss)} cap={_usd(heat_cap)}"
        ),
        qty=qty,
        slices=[qty],
        risk=max_loss,
        heat_after=heat + max_loss,
    )


# --- system guard and add-ons -------------------------------------------------------------


def losing_streak(closed_pnls: list[Decimal]) -> int:
    """Losing trades (P&L < 0) in a row at the end of the list; a win or a flat trade ends it."""
    streak = 0
    for pnl in reversed(closed_pnls):
        if pnl >= 0:
            break
        streak += 1
    return streak


def drawdown(closed_pnls: list[Decimal], unrealized: Decimal) -> Decimal:
    """Peak-to-now of the realized P&L curve (starting at 0) plus unrealized P&L; >= 0."""
    cumulative = peak = _ZERO
    for pnl in closed_pnls:
        cumulative += pnl
        peak = max(peak, cumulative)
    return max(peak - (cumulative + unrealized), _ZERO)


def system_guard(guard: GuardInput, limits: RiskLimits) -> str | None:
    """Why entries must pause now (losing streak, then drawdown), or None.

    Both count from the last resume: with no trade closed since then the guard never pauses,
    so a resume holds until the next trade closes.
    """
    pnls = guard.closed_pnls
    if not pnls:
        return None
    streak = losing_streak(pnls)
    if streak >= limits.max_consecutive_losses:
        last = ", ".join(_usd(p) for p in pnls[-streak:])
        return f"{streak} losing trades in a row (limit {limits.max_consecutive_losses}): {last}"
    fall = drawdown(pnls, guard.unrealized)
    if fall <= 0:
        return None
    allowed = limits.max_drawdown_pct * guard.equity
    if guard.equity <= 0 or fall >= allowed:
        return (
            f"drawdown={_usd(fall)} reached {_usd(allowed)} "
            f"({_pct(limits.max_drawdown_pct)} of {_plain(guard.equity)})"
        )
    return None


def addon_decision(
    position: HeldPosition | None, confidence: int | None, equity: Decimal, limits: RiskLimits
) -> AddOnVerdict:
    """May we add to this position: ours, enabled, below the allocation cap, confident enough.

    Rows, first match wins: no position; an external position; add-ons disabled; allocation
    (market value / equity) at the cap; confidence below `addon_min_confidence` (unknown
    counts as below). Approved up to the cap: max_notional = cap * equity - market value.
    """
    if position is None:
        return AddOnVerdict(
            approved=False, reason=RiskReason.NO_POSITION, detail="no position to add to"
        )
    if position.external:
        return AddOnVerdict(
            approved=False,
            reason=RiskReason.ADDON_EXTERNAL,
            detail="cannot add to an external position",
        )
    if not limits.addons_enabled:
        return AddOnVerdict(
            approved=False, reason=RiskReason.ADDON_DISABLED, detail="add-ons are disabled"
        )
    value = abs(position.market_value)
    cap = limits.max_allocation_pct * equity
    if equity <= 0 or value >= cap:
        allocation = _pct((value / equity).quantize(Decimal("0.0001"))) if equity > 0 else "n/a"
        return AddOnVerdict(
            approved=False,
            reason=RiskReason.ADDON_ALLOCATION,
            detail=(
                f"symbol={position.symbol} allocation={allocation} cap="
                f"{_pct(limits.max_allocation_pct)} (market_value={_usd(value)} "
                f"equity={_plain(equity)})"
            ),
        )
    if confidence is None or confidence < limits.addon_min_confidence:
        return AddOnVerdict(
            approved=False,
            reason=RiskReason.ADDON_CONFIDENCE,
            detail=f"confidence={confidence} below {limits.addon_min_confidence}",
        )
    room = cap - value
    return AddOnVerdict(
        approved=True,
        reason=RiskReason.APPROVED,
        detail=f"symbol={position.symbol} up to {_usd(room)} more (cap {_usd(cap)})",
        max_notional=room,
    )
