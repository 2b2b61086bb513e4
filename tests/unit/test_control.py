"""Trading control's pure decisions: mode changes, the entry gate, auto-halt and flatten rounds."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import (
    BrokerOrder,
    BrokerPosition,
    OrderClass,
    OrderSide,
    OrderStatus,
    OrderType,
    TimeInForce,
)
from trading.control import (
    HISTORY_KEPT,
    ControlChange,
    ControlCommand,
    ControlInput,
    ControlMode,
    ControlState,
    RescueAlertSeen,
    apply_change,
    decide,
    flatten_step,
    loss_outcome,
    recent_alerts,
    rescue_alert_outcome,
    should_auto_halt,
    unchanged_note,
)
from trading.entry_gate import EntryReason, control_gate, control_view_of

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


def change(state: ControlState, command: ControlCommand, n: int = 0) -> ControlChange:
    target = decide(state.mode, command)
    return ControlChange(
        change_id=f"c{n}",
        command=command,
        from_mode=state.mode,
        to_mode=target or state.mode,
        reason=f"because {n}",
        actor="tester",
        at=NOW + timedelta(seconds=n),
    )


def order(**fields: Any) -> BrokerOrder:
    base: dict[str, Any] = {
        "id": "o-1",
        "client_order_id": "t1.sl.0",
        "symbol": "AAPL",
        "side": OrderSide.SELL,
        "type": OrderType.STOP,
        "order_class": OrderClass.SIMPLE,
        "time_in_force": TimeInForce.GTC,
        "status": OrderStatus.NEW,
        "qty": Decimal(10),
        "stop_price": Decimal(95),
        "created_at": NOW,
        "updated_at": NOW,
    }
    base.update(fields)
    return BrokerOrder(**base)


def position(symbol: str = "AAPL", qty: int = 10) -> BrokerPosition:
    return BrokerPosition(symbol=symbol, qty=Decimal(qty), avg_entry_price=Decimal(100))


# --- mode changes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "command", "expected"),
    [
        (ControlMode.ACTIVE, ControlCommand.PAUSE_ENTRIES, ControlMode.REDUCING),
        (ControlMode.ACTIVE, ControlCommand.HALT, ControlMode.HALTED),
        (ControlMode.ACTIVE, ControlCommand.FLATTEN, ControlMode.HALTED),
        (ControlMode.ACTIVE, ControlCommand.AUTO_HALT, ControlMode.HALTED),
        (ControlMode.ACTIVE, ControlCommand.RESUME, None),
        (ControlMode.REDUCING, ControlCommand.RESUME, ControlMode.ACTIVE),
        (ControlMode.REDUCING, ControlCommand.HALT, ControlMode.HALTED),
        (ControlMode.REDUCING, ControlCommand.PAUSE_ENTRIES, None),
        (ControlMode.HALTED, ControlCommand.RESUME, ControlMode.ACTIVE),
        (ControlMode.HALTED, ControlCommand.PAUSE_ENTRIES, None),
        (ControlMode.HALTED, ControlCommand.HALT, None),
        (ControlMode.HALTED, ControlCommand.FLATTEN, None),
        (ControlMode.HALTED, ControlCommand.AUTO_HALT, None),
    ],
)
def test_decide(mode: ControlMode, command: ControlCommand, expected: ControlMode | None) -> None:
    assert decide(mode, command) is expected


def test_pausing_a_halt_is_refused_with_a_reason() -> None:
    note = unchanged_note(ControlMode.HALTED, ControlCommand.PAUSE_ENTRIES)
    assert "resume first" in note
    assert unchanged_note(ControlMode.ACTIVE, ControlCommand.RESUME) == "already ACTIVE"


@given(st.lists(st.sampled_from(list(ControlCommand)), max_size=80))
def test_only_resume_leaves_halted_and_history_stays_bounded(
    commands: list[ControlCommand],
) -> None:
    state = ControlState()
    for n, command in enumerate(commands):
        before = state.mode
        apply_change(state, change(state, command, n))
        if before is ControlMode.HALTED and state.mode is not ControlMode.HALTED:
            assert command is ControlCommand.RESUME
    assert state.seq == len(commands)
    assert len(state.history) == min(len(commands), HISTORY_KEPT)


def test_apply_change_records_reason_actor_and_since() -> None:
    state = ControlState()
    apply_change(state, change(state, ControlCommand.HALT, 3))
    assert (state.mode, state.reason, state.actor) == (ControlMode.HALTED, "because 3", "tester")
    assert state.since == NOW + timedelta(seconds=3)
    apply_change(state, change(state, ControlCommand.HALT, 4))  # no-op keeps the first reason
    assert state.reason == "because 3" and state.seq == 2 and len(state.history) == 2


def test_resume_clears_rescue_alerts() -> None:
    state = ControlState(rescue_alerts=[RescueAlertSeen(trade_id="t1", at=NOW)])
    apply_change(state, change(state, ControlCommand.HALT, 1))
    assert state.rescue_alerts
    apply_change(state, change(state, ControlCommand.RESUME, 2))
    assert state.rescue_alerts == [] and state.mode is ControlMode.ACTIVE


# --- entry gate --------------------------------------------------------------------------


def test_entries_allowed_only_when_active() -> None:
    state = ControlState()
    assert control_gate(control_view_of(state)).allowed
    apply_change(state, change(state, ControlCommand.PAUSE_ENTRIES, 1))
    gate = control_gate(control_view_of(state))
    assert not gate.allowed and gate.code is EntryReason.CONTROL_PAUSED
    assert "REDUCING" in gate.reason and "because 1" in gate.reason and "tester" in gate.reason
    apply_change(state, change(state, ControlCommand.HALT, 2))
    gate = control_gate(control_view_of(state))
    assert not gate.allowed and gate.code is EntryReason.CONTROL_HALTED
    assert "because 2" in gate.reason


def test_a_rescue_alert_halts_at_the_threshold_inside_the_window() -> None:
    state = ControlState()
    window = timedelta(hours=1)
    first = rescue_alert_outcome(state, "t1", NOW, window, threshold=2)
    assert len(first.alerts) == 1 and first.halt_reason is None
    state.rescue_alerts = first.alerts
    second = rescue_alert_outcome(state, "t2", NOW + timedelta(minutes=5), window, threshold=2)
    assert len(second.alerts) == 2 and second.halt_reason is not None
    late = rescue_alert_outcome(state, "t2", NOW + timedelta(hours=2), window, threshold=2)
    assert len(late.alerts) == 1 and late.halt_reason is None  # the first one aged out


def test_a_rescue_alert_does_not_halt_twice() -> None:
    state = ControlState(mode=ControlMode.HALTED)
    outcome = rescue_alert_outcome(state, "t1", NOW, timedelta(hours=1), threshold=1)
    assert outcome.halt_reason is None and len(outcome.alerts) == 1


def test_the_loss_limit_halts_on_the_first_breach_only() -> None:
    state = ControlState()
    ok = loss_outcome(state, Decimal(9_600), Decimal(10_000), Decimal(500), 2, NOW)
    assert ok.check.daily_pnl == Decimal(-400) and not ok.breached and ok.halt_reason is None
    breach = loss_outcome(state, Decimal(9_400), Decimal(10_000), Decimal(500), 2, NOW)
    assert breach.breached and breach.first_breach and breach.halt_reason is not None
    state.loss_breached = True  # an operator resumed after the halt: the same breach holds off
    again = loss_outcome(state, Decimal(9_300), Decimal(10_000), Decimal(500), 2, NOW)
    assert again.breached and not again.first_breach and again.halt_reason is None
    no_limit = loss_outcome(ControlState(), Decimal(1), Decimal(10_000), None, 2, NOW)
    assert not no_limit.breached


def test_the_loss_limit_in_percent_of_the_previous_close() -> None:
    state = ControlState()
    ok = loss_outcome(state, Decimal("9_701"), Decimal(10_000), None, 2, NOW, Decimal("0.03"))
    assert not ok.breached and ok.check.limit_pct == Decimal("0.03")
    edge = loss_outcome(state, Decimal(9_700), Decimal(10_000), None, 2, NOW, Decimal("0.03"))
    assert edge.breached and edge.halt_reason is not None and "3%" in edge.halt_reason
    # either limit halts: the dollar limit first here
    both = loss_outcome(
        state, Decimal(9_800), Decimal(10_000), Decimal(200), 2, NOW, Decimal("0.5")
    )
    assert both.breached


def test_control_input_replays_without_a_percent_limit() -> None:
    saved = ControlInput.model_validate({"daily_loss_limit": "500"})
    assert saved.daily_loss_limit_pct is None
    with pytest.raises(ValueError):
        ControlInput(daily_loss_limit_pct=Decimal("1.5"))


@given(
    st.decimals(min_value=-20_000, max_value=20_000, places=2),
    st.decimals(min_value=1, max_value=5_000, places=2),
)
def test_the_dollar_limit_is_the_old_rule(pnl: Decimal, limit: Decimal) -> None:
    assert (should_auto_halt(pnl, limit, 0, 2) is not None) == (pnl <= -limit)


# --- automatic halt ----------------------------------------------------------------------


def test_should_auto_halt_on_loss_limit() -> None:
    assert should_auto_halt(Decimal(-500), Decimal(500), 0, 2) is not None
    assert should_auto_halt(Decimal("-499.99"), Decimal(500), 0, 2) is None
    assert should_auto_halt(Decimal(1000), Decimal(500), 0, 2) is None
    assert should_auto_halt(Decimal(-10_000), None, 0, 2) is None
    assert should_auto_halt(None, Decimal(500), 0, 2) is None


def test_should_auto_halt_on_repeated_rescue_alerts() -> None:
    assert should_auto_halt(None, None, 1, 2) is None
    reason = should_auto_halt(None, None, 2, 2)
    assert reason is not None and "rescue" in reason


def test_recent_alerts_drops_alerts_outside_the_window() -> None:
    alerts = [
        RescueAlertSeen(trade_id="old", at=NOW - timedelta(hours=2)),
        RescueAlertSeen(trade_id="new", at=NOW - timedelta(minutes=5)),
    ]
    assert [a.trade_id for a in recent_alerts(alerts, NOW, timedelta(hours=1))] == ["new"]


# --- flatten -----------------------------------------------------------------------------


def test_flatten_cancels_entries_and_leaves_tracked_positions_to_their_trades() -> None:
    entry = order(id="entry", side=OrderSide.BUY, type=OrderType.LIMIT, symbol="MSFT")
    stop = order(id="stop")
    step = flatten_step([position()], [entry, stop], tracked_symbols={"AAPL"})
    assert [o.id for o in step.cancel] == ["entry"]
    assert step.close == [] and step.waiting_on == ["AAPL"] and not step.done


def test_flatten_closes_untracked_positions_cancelling_their_stops_right_before() -> None:
    stop = order(id="stop", symbol="TSLA")
    step = flatten_step([position("TSLA", 5)], [stop], tracked_symbols=())
    assert step.cancel == []
    assert len(step.close) == 1
    assert step.close[0].symbol == "TSLA" and [o.id for o in step.close[0].cancel_first] == ["stop"]


def test_flatten_waits_while_a_market_exit_works() -> None:
    exiting = order(id="exit", type=OrderType.MARKET, stop_price=None)
    step = flatten_step([position()], [exiting, order(id="stop")], tracked_symbols=())
    assert step.close == [] and step.waiting_on == ["AAPL"]


def test_flatten_cancels_orders_protecting_nothing_including_live_legs() -> None:
    parent = order(
        id="parent",
        side=OrderSide.BUY,
        type=OrderType.MARKET,
        status=OrderStatus.FILLED,
        order_class=OrderClass.OTO,
        legs=[order(id="leg")],
    )
    step = flatten_step([], [parent], tracked_symbols=())
    assert [o.id for o in step.cancel] == ["leg"] and not step.done


def test_flatten_is_done_only_with_no_position_and_no_working_order() -> None:
    assert flatten_step([], [], ()).done
    assert flatten_step([], [order(status=OrderStatus.CANCELED)], ()).done
    assert not flatten_step([position()], [], ()).done


def test_a_short_position_keeps_its_buy_stop_until_closed() -> None:
    buy_stop = order(id="cover", side=OrderSide.BUY)
    step = flatten_step([position(qty=-10)], [buy_stop], tracked_symbols=())
    assert step.cancel == [] and [o.id for o in step.close[0].cancel_first] == ["cover"]
