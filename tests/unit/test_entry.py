"""check_entry: control gate, broker-count cap, one entry a day, threshold, risk sizing."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import (
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerTruth,
    OrderSide,
    Quote,
)
from trading.control import ControlMode
from trading.entry import (
    EntryDecision,
    EntrySignal,
    check_entry,
    ledger_day_start,
    size_position,
    summarize,
    trade_id_for_signal,
    trade_spec_for,
)
from trading.entry_gate import ControlPresence, ControlView, EntryLimits, EntryReason, run_gate
from trading.ticks import is_on_tick

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
OPEN = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.ACTIVE)
LIMITS = EntryLimits(
    max_open_positions=3,
    risk_per_trade=Decimal(100),
    stop_distance=Decimal("0.05"),
    score_threshold=Decimal("0.5"),
)


def _truth(*symbols: str, buying_power: Decimal = Decimal(100_000)) -> BrokerTruth:
    return BrokerTruth(
        account=BrokerAccount(
            status="ACTIVE",
            cash=buying_power,
            buying_power=buying_power,
            equity=buying_power,
            last_equity=buying_power,
        ),
        positions=[
            BrokerPosition(symbol=s, qty=Decimal(5), avg_entry_price=Decimal(100)) for s in symbols
        ],
        open_orders=[],
        fetched_at=NOW,
    )


def _signal(
    symbol: str = "AAPL", score: str = "0.8", side: OrderSide = OrderSide.BUY
) -> EntrySignal:
    return EntrySignal(
        signal_id=42,
        signal_key=f"momentum:{symbol}:2024-03-05",
        symbol=symbol,
        strategy="momentum",
        side=side,
        score=Decimal(score),
        created_at=NOW,
    )


def _quote(ask: str = "100.00", symbol: str = "AAPL") -> Quote:
    return Quote(symbol=symbol, bid=Decimal(ask) - Decimal("0.02"), ask=Decimal(ask), timestamp=NOW)


def test_a_good_signal_is_entered_with_the_risk_sized_quantity_and_a_tick_stop() -> None:
    decision = check_entry(_signal(), OPEN, _truth(), LIMITS, False, _quote("100.00"))
    assert decision.enter and decision.reason == "entered"
    assert decision.stop_price == Decimal("95.00") and decision.qty == Decimal(20)


def test_the_broker_count_caps_entries_with_the_detail() -> None:
    decision = check_entry(_signal(), OPEN, _truth("MSFT", "NVDA", "TSLA"), LIMITS, False, _quote())
    assert (decision.enter, decision.reason, decision.detail) == (
        False,
        "max_open_positions",
        "brokerPositionsCount=3 maxOpenPositions=3",
    )


def test_entries_started_this_run_and_pending_buys_count_against_the_cap() -> None:
    truth = _truth("MSFT").model_copy(
        update={
            "open_orders": [
                BrokerOrder.model_validate(
                    {
                        "id": "o1",
                        "client_order_id": "x",
                        "symbol": "NVDA",
                        "side": "buy",
                        "type": "market",
                        "qty": "1",
                        "status": "new",
                        "order_class": "simple",
                        "time_in_force": "day",
                        "created_at": NOW,
                        "updated_at": NOW,
                    }
                )
            ]
        }
    )
    decision = check_entry(_signal(), OPEN, truth, LIMITS, False, _quote(), started_this_run=1)
    assert decision.reason == "max_open_positions"
    assert decision.detail == (
        "brokerPositionsCount=1 maxOpenPositions=3 pendingEntries=1 enteredThisRun=1"
    )


def test_the_control_gate_comes_first() -> None:
    halted = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.HALTED, reason="y")
    decision = check_entry(_signal(), halted, None, LIMITS, False, _quote())
    assert decision.reason == "control_halted"


def test_no_control_workflow_lets_entries_pass_with_a_note_and_silence_holds_them() -> None:
    missing = ControlView(presence=ControlPresence.NOT_STARTED, detail="never started")
    answer = run_gate(missing, _truth(), LIMITS)
    assert answer.open and answer.note.startswith("control_not_started")
    silent = ControlView(presence=ControlPresence.UNREACHABLE, detail="no worker")
    answer = run_gate(silent, _truth(), LIMITS)
    assert (answer.open, answer.reason, answer.detail) == (
        False,
        EntryReason.CONTROL_UNAVAILABLE,
        "no worker",
    )
    paused = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.REDUCING)
    assert run_gate(paused, _truth(), LIMITS).reason is EntryReason.CONTROL_PAUSED


def test_no_truth_means_no_entry() -> None:
    decision = check_entry(_signal(), OPEN, None, LIMITS, False, _quote())
    assert decision.reason == "broker_truth_unavailable" and not decision.enter


def test_one_entry_per_symbol_per_day_and_none_on_a_held_symbol() -> None:
    assert check_entry(_signal(), OPEN, _truth(), LIMITS, True, _quote()).reason == (
        "already_entered_today"
    )
    assert check_entry(_signal(), OPEN, _truth("AAPL"), LIMITS, False, _quote()).reason == (
        "position_open"
    )


def test_threshold_quote_risk_and_buying_power() -> None:
    assert check_entry(_signal(score="0.3"), OPEN, _truth(), LIMITS, False, _quote()).reason == (
        "below_threshold"
    )
    assert check_entry(_signal(), OPEN, _truth(), LIMITS, False, None).reason == "no_quote"
    tiny = LIMITS.model_copy(update={"risk_per_trade": Decimal(1)})
    assert check_entry(_signal(), OPEN, _truth(), tiny, False, _quote()).reason == "risk_too_small"
    poor = _truth(buying_power=Decimal(500))
    assert check_entry(_signal(), OPEN, poor, LIMITS, False, _quote()).reason == (
        "insufficient_buying_power"
    )
    sell = _signal(side=OrderSide.SELL)
    assert check_entry(sell, OPEN, _truth(), LIMITS, False, _quote()).reason == (
        "side_not_supported"
    )


@given(
    entry=st.decimals(min_value=Decimal("0.05"), max_value=Decimal(5000), places=2),
    risk=st.decimals(min_value=Decimal(1), max_value=Decimal(10_000), places=2),
    distance=st.decimals(min_value=Decimal("0.005"), max_value=Decimal("0.5"), places=3),
)
def test_sizing_never_risks_more_than_the_budget(
    entry: Decimal, risk: Decimal, distance: Decimal
) -> None:
    limits = LIMITS.model_copy(update={"risk_per_trade": risk, "stop_distance": distance})
    qty, stop = size_position(entry, limits)
    assert is_on_tick(stop) and stop < entry
    assert qty == qty.to_integral_value() and qty >= 0
    assert qty * (entry - stop) <= risk
    assert (qty + 1) * (entry - stop) > risk


def test_a_signal_always_maps_to_the_same_trade_id() -> None:
    decision = check_entry(_signal(), OPEN, _truth(), LIMITS, False, _quote())
    first = trade_spec_for(_signal(), decision)
    assert first.trade_id == trade_id_for_signal(_signal()) == "aapl-20240305-153000-s16"
    assert first.signal_id == 42 and first.qty == decision.qty


def test_the_run_summary_names_what_gated_it() -> None:
    skip = EntryDecision(enter=False, reason="max_open_positions", detail="d")
    assert summarize([], skip) == ("max_open_positions", "d")
    assert summarize([], None) == ("no_signals", "")
    entered = EntryDecision(enter=True, reason="entered")
    low = EntryDecision(enter=False, reason="below_threshold", detail="score=0.1")
    assert summarize([entered, low], None) == ("entered", "entered=1; skipped below_threshold=1")
    assert summarize([low, skip], None) == (
        "below_threshold",
        "score=0.1; below_threshold=1, max_open_positions=1",
    )


def test_the_ledger_day_starts_at_the_broker_clock_midnight() -> None:
    clock = datetime.fromisoformat("2024-03-05T10:30:00-05:00")
    real = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert ledger_day_start(clock, real) == datetime(2026, 1, 1, 1, 30, tzinfo=UTC)
