"""The market loop's entry gate: one decision per SCORED signal, with a reason and a detail.

Pure: `check_entry(signal, control, truth, limits, entered_today, quote)` first asks the shared
entry gate (trading/entry_gate.py: the trading control's mode, the broker's real open-position
count, never the ledger's), then one entry per symbol per day, the score threshold and a basic
risk check (size from the stop distance and the risk per trade). The market loop records every
decision and one entry-run row per run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from decimal import ROUND_FLOOR, Decimal

from pydantic import AwareDatetime, Field

from trading.broker_models import BrokerTruth, OrderSide, Quote
from trading.entry_gate import (
    ControlView,
    EntryLimits,
    EntryReason,
    GateAnswer,
    pending_entry_symbols,
    run_gate,
)
from trading.ids import new_trade_id
from trading.models import Frozen, JsonScalar
from trading.scoring import DEFAULT_SCORER
from trading.strategies import DEFAULT_STRATEGY
from trading.ticks import protective_stop_price
from trading.trade_models import TradeSpec

_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


class EntrySignal(Frozen):
    """A SCORED signal the entry gate considers."""

    signal_id: int
    signal_key: str
    symbol: str
    strategy: str
    side: OrderSide = OrderSide.BUY
    score: Decimal
    confidence: Decimal | None = None
    created_at: datetime


class EntryDecision(Frozen):
    """Enter (with qty and stop) or skip, with a stable reason and a detail for people."""

    enter: bool
    reason: str
    detail: str = ""
    qty: Decimal | None = None
    stop_price: Decimal | None = None
    entry_price: Decimal | None = None


def _skip(reason: EntryReason | str, detail: str = "") -> EntryDecision:
    return EntryDecision(enter=False, reason=str(reason), detail=detail)


def gate_skip(gate: GateAnswer) -> EntryDecision:
    """The skip decision of a closed gate (every signal of the run shares it)."""
    return _skip(gate.reason or EntryReason.BROKER_TRUTH_UNAVAILABLE, gate.detail)


def size_position(entry_price: Decimal, limits: EntryLimits) -> tuple[Decimal, Decimal]:
    """(whole-share qty, tick-normalised stop): floor(risk_per_trade / (entry - stop))."""
    stop = protective_stop_price(entry_price * (1 - limits.stop_distance))
    per_share = entry_price - stop
    if per_share <= 0:
        return Decimal(0), stop
    qty = (limits.risk_per_trade / per_share).to_integral_value(rounding=ROUND_FLOOR)
    return qty, stop


def check_entry(
    signal: EntrySignal,
    control: ControlView,
    truth: BrokerTruth | None,
    limits: EntryLimits,
    entered_today: bool,
    quote: Quote | None,
    started_this_run: int = 0,
) -> EntryDecision:
    """Enter this signal now, or skip it with the first reason that applies."""
    gate = run_gate(control, truth, limits, started_this_run)
    if not gate.open or truth is None:
        return gate_skip(gate)
    if signal.side is not OrderSide.BUY:
        return _skip(EntryReason.SIDE_NOT_SUPPORTED, f"{signal.side.value} entries: long only")
    if entered_today:
        return _skip(EntryReason.ALREADY_ENTERED_TODAY, f"symbol={signal.symbol}")
    held = {p.symbol: p.qty for p in truth.positions if p.qty != 0}
    if signal.symbol in held or signal.symbol in pending_entry_symbols(truth):
        qty = held.get(signal.symbol, Decimal(0))
        return _skip(EntryReason.POSITION_OPEN, f"symbol={signal.symbol} brokerQty={qty}")
    if signal.score < limits.score_threshold:
        return _skip(
            EntryReason.BELOW_THRESHOLD,
            f"score={signal.score} scoreThreshold={limits.score_threshold}",
        )
    if quote is None or quote.ask <= 0:
        return _skip(EntryReason.NO_QUOTE, f"symbol={signal.symbol}")
    entry_price = quote.ask
    qty, stop = size_position(entry_price, limits)
    if qty < 1:
        return _skip(
            EntryReason.RISK_TOO_SMALL,
            f"riskPerTrade={limits.risk_per_trade} entry={entry_price} stop={stop}",
        )
    cost = qty * entry_price
    if cost > truth.account.buying_power:
        return _skip(
            EntryReason.INSUFFICIENT_BUYING_POWER,
            f"cost={cost} buyingPower={truth.account.buying_power}",
        )
    return EntryDecision(
        enter=True,
        reason=EntryReason.ENTERED.value,
        detail=f"qty={qty} entry={entry_price} stop={stop} score={signal.score}",
        qty=qty,
        stop_price=stop,
        entry_price=entry_price,
    )


def _base36(number: int) -> str:
    digits = ""
    number = abs(number)
    while True:
        number, rest = divmod(number, 36)
        digits = _BASE36[rest] + digits
        if number == 0:
            return digits


def trade_id_for_signal(signal: EntrySignal) -> str:
    """The same signal always gets the same trade id, so its workflow id allows one entry."""
    return new_trade_id(signal.symbol, signal.created_at, f"s{_base36(signal.signal_id)}")


def trade_spec_for(signal: EntrySignal, decision: EntryDecision) -> TradeSpec:
    """The TradeWorkflow spec of an entered decision (market entry, stop from the sizing)."""
    if not decision.enter or decision.qty is None or decision.stop_price is None:
        raise ValueError("only an entered decision has a trade spec")
    return TradeSpec(
        trade_id=trade_id_for_signal(signal),
        symbol=signal.symbol,
        qty=decision.qty,
        stop_price=decision.stop_price,
        signal_id=signal.signal_id,
    )


def session_day_start(clock_now: datetime) -> datetime:
    """Midnight of the broker clock's day, in the clock's own (New York) offset."""
    return clock_now.replace(hour=0, minute=0, second=0, microsecond=0)


def ledger_day_start(clock_now: datetime, workflow_now: datetime) -> datetime:
    """The session day's start on the ledger's clock (the broker clock may be simulated)."""
    return workflow_now - (clock_now - session_day_start(clock_now))


def summarize(
    decisions: Sequence[EntryDecision], run_skip: EntryDecision | None
) -> tuple[str, str]:
    """The entry run's (reason, detail): what stopped entries, or what was entered.

    A run-wide gate wins (market closed, control, broker truth, position cap); otherwise the
    first skip's reason and detail, with counts of the others.
    """
    if run_skip is not None and not any(d.enter for d in decisions):
        return run_skip.reason, run_skip.detail
    if not decisions:
        return EntryReason.NO_SIGNALS.value, ""
    skips = [d for d in decisions if not d.enter]
    entered = len(decisions) - len(skips)
    counts = Counter(d.reason for d in skips)
    others = ", ".join(f"{reason}={n}" for reason, n in sorted(counts.items()))
    if entered:
        return EntryReason.ENTERED.value, f"entered={entered}" + (
            f"; skipped {others}" if skips else ""
        )
    first = skips[0]
    return first.reason, first.detail if len(counts) == 1 else f"{first.detail}; {others}"


# --- the workflow's and activities' values ---------------------------------------------------


class MarketLoopInput(EntryLimits):
    """One market-loop run: its entry limits, plus what to scan and score, and how."""

    watchlist: list[str] = Field(default_factory=list)
    strategy: str = Field(default=DEFAULT_STRATEGY, min_length=1)
    scorer: str = Field(default=DEFAULT_SCORER, min_length=1)
    run_source: str = Field(default="manual", min_length=1)
    reconcile: bool = True
    truth_attempts: int = Field(default=3, ge=1)
    bars_lookback_days: int = Field(default=40, ge=1)


class SignalOutcome(Frozen):
    """One signal's decision, as the run reports it."""

    signal_key: str
    symbol: str
    score: Decimal | None = None
    decision: EntryDecision
    trade_id: str | None = None


class MarketLoopResult(Frozen):
    """What a run did, step by step."""

    run_id: str
    ended_early: bool = False
    reason: str = ""
    detail: str = ""
    session_date: date | None = None
    control: ControlView | None = None
    gate: GateAnswer | None = None
    broker_positions: int | None = None
    reconcile: str = ""
    scanned: int = 0
    signals_created: int = 0
    drain: str = ""
    entered: int = 0
    skipped: int = 0
    decisions: list[SignalOutcome] = Field(default_factory=list)
    notes: list[str] = Field(default_factory=list)


class EntryCandidatesQuery(Frozen):
    """SCORED signals created since `since` that no trade has taken yet."""

    since: AwareDatetime
    limit: int = Field(default=200, ge=1, le=1000)


class EntryCandidates(Frozen):
    """Signals to gate, best score first."""

    signals: list[EntrySignal]


class EnteredSymbolsQuery(Frozen):
    """Which of these symbols already have a trade created since `since`."""

    symbols: list[str]
    since: AwareDatetime


class EnteredSymbols(Frozen):
    """Symbols that already have a trade today."""

    symbols: list[str]


class TradeStart(Frozen):
    """Start the trade workflow for an entered decision (its workflow id allows one run)."""

    spec: TradeSpec


class TradeStartOutcome(Frozen):
    """Started now, or the workflow id was already taken."""

    workflow_id: str
    started: bool
    run_id: str | None = None


def audit_detail(signal: EntrySignal, decision: EntryDecision) -> dict[str, JsonScalar]:
    """The audit row's detail for one entry decision."""
    detail: dict[str, JsonScalar] = {
        "signal_key": signal.signal_key,
        "symbol": signal.symbol,
        "score": str(signal.score),
        "detail": decision.detail,
    }
    if decision.qty is not None:
        detail["qty"] = str(decision.qty)
    if decision.stop_price is not None:
        detail["stop_price"] = str(decision.stop_price)
    if decision.entry_price is not None:
        detail["entry_price"] = str(decision.entry_price)
    return detail
