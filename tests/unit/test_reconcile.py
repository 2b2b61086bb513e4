"""The reconcile diff and the protection sweep (pure): examples and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trading.broker_models import BrokerAccount, BrokerOrder, BrokerPosition, BrokerTruth
from trading.ids import validate_trade_id
from trading.ledger_records import CloseReason, TradeOrigin, TradeRecord, TradeSide, TradeStatus
from trading.reconcile import (
    DEFAULT_GRACE,
    adoption_trade_id,
    position_update_for,
    position_updates,
    protection_sweep,
    reconcile_plan,
)
from trading.reconcile_models import PlannedReconcile
from trading.ticks import is_on_tick

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
OLD = NOW - timedelta(hours=1)
ACCOUNT = BrokerAccount(
    status="ACTIVE",
    cash=Decimal(1000),
    buying_power=Decimal(1000),
    equity=Decimal(1000),
    last_equity=Decimal(1000),
)
SYMBOLS = ["AAPL", "MSFT", "SPY", "TSLA"]


def _trade(
    trade_id: str,
    symbol: str,
    status: TradeStatus = TradeStatus.OPEN,
    qty: Decimal = Decimal(10),
    created_at: datetime = OLD,
    **fields: Any,
) -> TradeRecord:
    values: dict[str, Any] = {
        "id": trade_id,
        "symbol": symbol,
        "side": TradeSide.LONG,
        "origin": TradeOrigin.INTERNAL,
        "status": status,
        "status_at": created_at,
        "qty": qty,
        "entry_price": Decimal(100),
        "exit_price": None,
        "stop_price": None,
        "take_profit_price": None,
        "stop_order_id": None,
        "take_profit_order_id": None,
        "protected_at": None,
        "exit_intent": None,
        "exit_intent_at": None,
        "close_reason": None,
        "realized_pnl": None,
        "signal_id": None,
        "workflow_id": f"trade-{trade_id}",
        "opened_at": created_at,
        "closed_at": None,
        "created_at": created_at,
        "updated_at": created_at,
    }
    values.update(fields)
    return TradeRecord(**values)


def _position(symbol: str, qty: Decimal = Decimal(10), price: str = "100") -> BrokerPosition:
    return BrokerPosition(
        symbol=symbol, qty=qty, avg_entry_price=Decimal(price), current_price=Decimal(price)
    )


def _order(
    order_id: str, symbol: str, side: str = "sell", kind: str = "stop", qty: str = "10"
) -> BrokerOrder:
    return BrokerOrder.model_validate(
        {
            "id": order_id,
            "client_order_id": f"outside-{order_id}",
            "symbol": symbol,
            "side": side,
            "type": kind,
            "order_class": "simple",
            "time_in_force": "gtc",
            "status": "new",
            "qty": qty,
            "stop_price": "90" if kind == "stop" else None,
            "created_at": OLD,
            "updated_at": OLD,
        }
    )


def _truth(positions: list[BrokerPosition], orders: list[BrokerOrder] | None = None) -> BrokerTruth:
    return BrokerTruth(
        account=ACCOUNT, positions=positions, open_orders=orders or [], fetched_at=NOW
    )


# --- examples --------------------------------------------------------------------------------


def test_a_trade_with_no_position_and_no_order_is_a_ghost_closed_with_the_reason() -> None:
    plan = reconcile_plan(
        _truth([]), [_trade("aapl-1", "AAPL")], NOW, close_reason=CloseReason.EXTERNAL_CLOSE
    )
    assert [(g.trade_id, g.close_reason) for g in plan.ghost_closes] == [
        ("aapl-1", CloseReason.EXTERNAL_CLOSE)
    ]
    assert plan.adoptions == [] and plan.quantity_syncs == []


def test_an_open_order_or_a_position_in_the_symbol_keeps_the_trade() -> None:
    trades = [_trade("aapl-1", "AAPL"), _trade("msft-1", "MSFT")]
    plan = reconcile_plan(
        _truth([_position("AAPL")], [_order("o1", "MSFT", side="buy", kind="limit")]), trades, NOW
    )
    assert plan.ghost_closes == []


def test_a_just_submitted_entry_is_not_a_ghost_within_the_grace_period() -> None:
    fresh = _trade("aapl-1", "AAPL", status=TradeStatus.PENDING_ENTRY, created_at=NOW)
    assert reconcile_plan(_truth([]), [fresh], NOW).ghost_closes == []
    later = NOW + DEFAULT_GRACE
    assert [g.trade_id for g in reconcile_plan(_truth([]), [fresh], later).ghost_closes] == [
        "aapl-1"
    ]


def test_a_broker_only_position_is_adopted_with_a_stop_under_its_price() -> None:
    plan = reconcile_plan(_truth([_position("TSLA", Decimal(3), "200.37")]), [], NOW)
    (adoption,) = plan.adoptions
    assert adoption.symbol == "TSLA" and adoption.qty == 3
    assert adoption.stop_price == Decimal("190.35")  # 5% under, rounded down onto the tick
    assert adoption.existing_stop_order_id is None
    validate_trade_id(adoption.trade_id)
    again = reconcile_plan(_truth([_position("TSLA", Decimal(3), "200.37")]), [], NOW)
    assert again.adoptions[0].trade_id == adoption.trade_id  # a repeat finds the same guard


def test_an_adoption_reuses_an_outside_stop_that_covers_the_position() -> None:
    orders = [_order("small", "TSLA", qty="2"), _order("full", "TSLA", qty="3")]
    plan = reconcile_plan(_truth([_position("TSLA", Decimal(3), "200")], orders), [], NOW)
    assert plan.adoptions[0].existing_stop_order_id == "full"
    assert plan.adoptions[0].stop_price == Decimal(90)


def test_short_positions_are_reported_not_adopted() -> None:
    plan = reconcile_plan(_truth([_position("SPY", Decimal(-5))]), [], NOW)
    assert plan.adoptions == [] and [s.symbol for s in plan.skipped] == ["SPY"]


def test_a_drifted_quantity_is_synced_and_pending_entries_are_left_to_their_workflow() -> None:
    trades = [
        _trade("aapl-1", "AAPL", qty=Decimal(10)),
        _trade("msft-1", "MSFT", status=TradeStatus.PENDING_ENTRY, qty=Decimal(0)),
    ]
    truth = _truth([_position("AAPL", Decimal(7)), _position("MSFT", Decimal(4))])
    (sync,) = reconcile_plan(truth, trades, NOW).quantity_syncs
    assert (sync.trade_id, sync.ledger_qty, sync.broker_qty, sync.sole_owner) == (
        "aapl-1",
        Decimal(10),
        Decimal(7),
        True,
    )


def test_max_defers_the_rest_adoptions_first() -> None:
    truth = _truth([_position("TSLA"), _position("SPY")])
    plan = reconcile_plan(truth, [_trade("aapl-1", "AAPL")], NOW, max_actions=2)
    assert len(plan.adoptions) == 2 and plan.ghost_closes == [] and plan.deferred == 1


def test_the_sweep_restarts_the_oldest_trade_with_its_working_stop() -> None:
    trades = [
        _trade("aapl-2", "AAPL", created_at=NOW),
        _trade("aapl-1", "AAPL", stop_order_id="s1", stop_price=Decimal("95.00")),
    ]
    truth = _truth([_position("AAPL"), _position("TSLA")], [_order("s1", "AAPL")])
    aapl, tsla = protection_sweep(truth, trades)
    assert aapl.trade_ids == ["aapl-1", "aapl-2"] and aapl.covered
    assert aapl.restart.trade_id == "aapl-1" and aapl.restart.protect_only
    assert aapl.restart.existing_stop_order_id == "s1"
    assert aapl.restart.stop_price == Decimal("95.00")
    assert aapl.update.qty == 10 and [o.id for o in aapl.update.open_orders] == ["s1"]
    assert tsla.trade_ids == [] and not tsla.covered
    assert tsla.restart.trade_id == adoption_trade_id(_position("TSLA"), NOW)
    assert tsla.restart.existing_stop_order_id is None


# --- properties ------------------------------------------------------------------------------

quantities = st.integers(min_value=-5, max_value=50).map(Decimal)
prices = st.decimals(min_value=Decimal("0.5"), max_value=Decimal(900), places=2)
positions = st.dictionaries(st.sampled_from(SYMBOLS), st.tuples(quantities, prices), max_size=4)
order_symbols = st.lists(st.sampled_from(SYMBOLS), max_size=4)
trade_rows = st.lists(
    st.tuples(
        st.sampled_from(SYMBOLS),
        st.sampled_from(list(TradeStatus)[:4]),
        st.integers(min_value=0, max_value=20).map(Decimal),
        st.integers(min_value=0, max_value=600),
    ),
    max_size=6,
)


def _world(
    position_map: dict[str, tuple[Decimal, Decimal]],
    symbols_with_orders: list[str],
    rows: list[tuple[str, TradeStatus, Decimal, int]],
) -> tuple[BrokerTruth, list[TradeRecord]]:
    truth = _truth(
        [_position(s, q, str(p)) for s, (q, p) in position_map.items()],
        [_order(f"o{i}", s, side="buy", kind="limit") for i, s in enumerate(symbols_with_orders)],
    )
    trades = [
        _trade(f"t-{i}", s, status=st_, qty=q, created_at=NOW - timedelta(seconds=age))
        for i, (s, st_, q, age) in enumerate(rows)
    ]
    return truth, trades


@settings(max_examples=300, deadline=None)
@given(positions, order_symbols, trade_rows, st.none() | st.integers(min_value=0, max_value=5))
def test_the_plan_never_closes_a_trade_whose_symbol_is_live_at_the_broker(
    position_map: dict[str, tuple[Decimal, Decimal]],
    symbols_with_orders: list[str],
    rows: list[tuple[str, TradeStatus, Decimal, int]],
    max_actions: int | None,
) -> None:
    truth, trades = _world(position_map, symbols_with_orders, rows)
    plan = reconcile_plan(truth, trades, NOW, max_actions=max_actions)
    live = {p.symbol for p in truth.positions if p.qty != 0} | set(symbols_with_orders)
    by_id = {t.id: t for t in trades}
    for ghost in plan.ghost_closes:
        assert ghost.symbol not in live
        trade = by_id[ghost.trade_id]
        assert NOW - max(trade.created_at, trade.status_at or trade.created_at) >= DEFAULT_GRACE


@settings(max_examples=300, deadline=None)
@given(positions, order_symbols, trade_rows, st.none() | st.integers(min_value=0, max_value=5))
def test_the_plan_never_adopts_a_claimed_symbol_and_respects_max(
    position_map: dict[str, tuple[Decimal, Decimal]],
    symbols_with_orders: list[str],
    rows: list[tuple[str, TradeStatus, Decimal, int]],
    max_actions: int | None,
) -> None:
    truth, trades = _world(position_map, symbols_with_orders, rows)
    plan = reconcile_plan(truth, trades, NOW, max_actions=max_actions)
    claimed = {t.symbol for t in trades}
    assert not {a.symbol for a in plan.adoptions} & claimed
    assert len({a.symbol for a in plan.adoptions}) == len(plan.adoptions)
    for adoption in plan.adoptions:
        assert adoption.qty > 0 and is_on_tick(adoption.stop_price)
        assert adoption.stop_price < adoption.avg_entry_price
    full = reconcile_plan(truth, trades, NOW)
    if max_actions is not None:
        assert plan.actions <= max_actions
        assert plan.actions + plan.deferred == full.actions
    else:
        assert plan.deferred == 0


@settings(max_examples=200, deadline=None)
@given(positions, order_symbols, trade_rows)
def test_the_sweep_guards_every_long_position_exactly_once(
    position_map: dict[str, tuple[Decimal, Decimal]],
    symbols_with_orders: list[str],
    rows: list[tuple[str, TradeStatus, Decimal, int]],
) -> None:
    truth, trades = _world(position_map, symbols_with_orders, rows)
    targets = protection_sweep(truth, trades)
    longs = sorted(p.symbol for p in truth.positions if p.qty > 0)
    assert [t.symbol for t in targets] == longs
    for target in targets:
        assert target.restart.protect_only and target.restart.qty == target.qty
        assert set(target.trade_ids) == {t.id for t in trades if t.symbol == target.symbol}
        if target.trade_ids:
            assert target.restart.trade_id == target.trade_ids[0]


@settings(max_examples=300, deadline=None)
@given(positions, order_symbols, trade_rows)
def test_the_plan_carries_the_snapshot_of_every_symbol_an_action_tells(
    position_map: dict[str, tuple[Decimal, Decimal]],
    symbols_with_orders: list[str],
    rows: list[tuple[str, TradeStatus, Decimal, int]],
) -> None:
    # The snapshot stays in the planning activity; what a ghost's or a sync's trade is told
    # must still be exactly what the snapshot says of its symbol (a ghost's: flat, no orders).
    truth, trades = _world(position_map, symbols_with_orders, rows)
    plan = reconcile_plan(truth, trades, NOW)
    planned = PlannedReconcile(
        fetched_at=truth.fetched_at,
        plan=plan,
        sync_updates=position_updates(truth, {s.symbol for s in plan.quantity_syncs}),
    )
    for step in [*plan.ghost_closes, *plan.quantity_syncs]:
        assert planned.update_for(step.symbol) == position_update_for(truth, step.symbol)
    every = position_updates(truth, SYMBOLS)
    assert every == {symbol: position_update_for(truth, symbol) for symbol in SYMBOLS}
