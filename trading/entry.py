"""The market loop's values: its input, the signals it gates, its decisions and its result.

Pure. trading/entry_decision.py decides each signal (the shared gate of trading/entry_gate.py,
then the risk engine of trading/risk.py); this module holds what those decisions are made of
and turns an entered decision into the trade's spec. The market loop records every decision
on its signal and one entry-run row per run.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal

from pydantic import AwareDatetime, Field

from trading.broker_models import OrderSide
from trading.entry_gate import ControlView, EntryLimits, EntryReason, GateAnswer
from trading.ids import new_trade_id
from trading.models import Frozen, JsonScalar
from trading.risk import RiskLimits
from trading.scoring import DEFAULT_SCORER
from trading.strategies import StrategyConfigs
from trading.trade_models import TradeSpec

# Every built-in strategy, in the order the market loop scans them (names of trading/strategies).
DEFAULT_STRATEGIES = ("orb", "trend_pullback", "momentum")
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
    features: dict[str, JsonScalar] = Field(default_factory=dict)

    def _price(self, name: str) -> Decimal | None:
        value = self.features.get(name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            return None
        return Decimal(str(value))

    @property
    def entry(self) -> Decimal | None:
        """The strategy's reference entry (feature `entry`), if it proposed one."""
        return self._price("entry")

    @property
    def stop(self) -> Decimal | None:
        """The strategy's protective stop (feature `stop`), if it proposed one."""
        return self._price("stop")

    @property
    def target(self) -> Decimal | None:
        """The strategy's target (feature `target`), if it proposed one."""
        return self._price("target")

    @property
    def setup_confidence(self) -> int | None:
        """The strategy's confidence 1-5 (feature `confidence`), if it gave one."""
        value = self.features.get("confidence")
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return int(value) if 1 <= value <= 5 else None

    @property
    def liquidity(self) -> Decimal | None:
        """Average dollar volume of the bars the strategy read (feature `dollar_volume`)."""
        return self._price("dollar_volume")


class EntryDecision(Frozen):
    """Enter (a new trade, or an add-on to ours) or skip, with a stable reason and a detail."""

    enter: bool
    reason: str
    detail: str = ""
    qty: Decimal | None = None
    stop_price: Decimal | None = None
    entry_price: Decimal | None = None
    target_price: Decimal | None = None
    slices: list[Decimal] = Field(default_factory=list)  # order sizes when split (sum = qty)
    add_on: bool = False  # buy into the open trade `trade_id` instead of starting one
    trade_id: str | None = None
    rank: int | None = None
    rank_score: Decimal | None = None


def _skip(reason: EntryReason | str, detail: str = "") -> EntryDecision:
    return EntryDecision(enter=False, reason=str(reason), detail=detail)


def gate_skip(gate: GateAnswer) -> EntryDecision:
    """The skip decision of a closed gate (every signal of the run shares it)."""
    return _skip(gate.reason or EntryReason.BROKER_TRUTH_UNAVAILABLE, gate.detail)


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


def trade_specs_for(signal: EntrySignal, decision: EntryDecision) -> list[TradeSpec]:
    """The TradeWorkflow specs of an entered decision: one trade, or one per order slice.

    A market entry with the risk engine's stop and the strategy's target (when above the
    entry); slices after the first get `-2`, `-3` ... so each still starts at most once.
    """
    if not decision.enter or decision.add_on or decision.qty is None or decision.stop_price is None:
        raise ValueError("only an entered decision (not an add-on) has trade specs")
    trade_id = trade_id_for_signal(signal)
    sizes = decision.slices or [decision.qty]
    return [
        TradeSpec(
            trade_id=trade_id if n == 1 else f"{trade_id}-{n}",
            symbol=signal.symbol,
            qty=qty,
            stop_price=decision.stop_price,
            take_profit_price=decision.target_price,
            signal_id=signal.signal_id,
        )
        for n, qty in enumerate(sizes, start=1)
    ]


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
    strategies: list[str] = Field(default_factory=lambda: list(DEFAULT_STRATEGIES), min_length=1)
    risk: RiskLimits = Field(default_factory=RiskLimits)
    scorer: str = Field(default=DEFAULT_SCORER, min_length=1)
    run_source: str = Field(default="manual", min_length=1)
    strategy_configs: StrategyConfigs = Field(default_factory=StrategyConfigs)
    reconcile: bool = True
    truth_attempts: int = Field(default=3, ge=1)


class SignalOutcome(Frozen):
    """One signal's decision, as the run reports it."""

    signal_key: str
    symbol: str
    strategy: str = ""
    score: Decimal | None = None
    decision: EntryDecision
    trade_id: str | None = None
    trade_ids: list[str] = Field(default_factory=list)  # every slice started


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
    signals_by_strategy: dict[str, int] = Field(default_factory=dict)
    bars_read: int = 0
    drain: str = ""
    entered: int = 0  # new trades and add-ons
    added: int = 0  # of which add-ons
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
