"""Trades repository on real PostgreSQL: idempotent create, stale-safe updates, close once."""

from __future__ import annotations

from decimal import Decimal

import asyncpg
import pytest
from pydantic import ValidationError

from ledger.trades import Trades
from tests.integration.ledger.factories import at, new_trade, uid
from trading.ledger_records import (
    CloseReason,
    ExitIntent,
    ExitUrgency,
    LedgerRecordMissing,
    TradeClose,
    TradeEntryFill,
    TradeExitIntent,
    TradeOrigin,
    TradeProtection,
    TradeStatus,
    TradeTransition,
)
from trading.models import AuditEntry

pytestmark = pytest.mark.integration


async def _count(pool: asyncpg.Pool, sql: str, *args: object) -> int:
    value = await pool.fetchval(sql, *args)
    assert isinstance(value, int)
    return value


async def test_create_round_trips_and_repeating_it_leaves_one_row(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    cmd = new_trade(signal_id=None)
    first = await trades.create(cmd)
    again = await trades.create(cmd.model_copy(update={"symbol": "MSFT"}))

    assert first.applied and not again.applied
    assert again.trade == first.trade  # the stored row, unchanged by the repeat
    trade = first.trade
    assert (trade.id, trade.symbol, trade.status, trade.origin) == (
        cmd.trade_id,
        "AAPL",
        TradeStatus.PENDING_ENTRY,
        TradeOrigin.INTERNAL,
    )
    assert trade.workflow_id == f"trade-{cmd.trade_id}"
    assert trade.qty == Decimal(0) and trade.opened_at is None and not trade.is_closed
    assert await trades.get(cmd.trade_id) == trade
    assert await _count(pool, "SELECT count(*) FROM trades WHERE id = $1", cmd.trade_id) == 1
    audit = "SELECT count(*) FROM audit_log WHERE trade_id = $1 AND action = 'trade_created'"
    assert await _count(pool, audit, cmd.trade_id) == 1


async def test_an_adopted_trade_starts_open_with_its_position(pool: asyncpg.Pool) -> None:
    cmd = new_trade(
        origin=TradeOrigin.EXTERNAL,
        status=TradeStatus.OPEN,
        qty=Decimal(7),
        entry_price=Decimal("101.25"),
    )
    trade = (await Trades(pool).create(cmd)).trade
    assert trade.origin is TradeOrigin.EXTERNAL and trade.status is TradeStatus.OPEN
    assert (trade.qty, trade.entry_price, trade.opened_at) == (Decimal(7), Decimal("101.25"), at(0))


def test_a_trade_cannot_be_created_closed() -> None:
    with pytest.raises(ValidationError, match="starts PENDING_ENTRY"):
        new_trade(status=TradeStatus.CLOSED)
    with pytest.raises(ValidationError, match="terminal statuses come from close_trade"):
        TradeTransition(trade_id="t1", status=TradeStatus.CLOSED, as_of=at(1))


async def test_transitions_apply_newest_first_and_ignore_stale_or_repeated(
    pool: asyncpg.Pool,
) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id

    opened = await trades.transition(TradeTransition(trade_id=trade_id, status="OPEN", as_of=at(1)))
    exiting = await trades.transition(
        TradeTransition(trade_id=trade_id, status="EXITING", as_of=at(3))
    )
    stale = await trades.transition(
        TradeTransition(trade_id=trade_id, status="EXIT_PLANNED", as_of=at(2))
    )
    repeated = await trades.transition(
        TradeTransition(trade_id=trade_id, status="EXITING", as_of=at(3))
    )

    assert opened.applied and exiting.applied
    assert not stale.applied and not repeated.applied
    assert repeated.trade.status is TradeStatus.EXITING
    assert repeated.trade.status_at == at(3)
    audit = "SELECT count(*) FROM audit_log WHERE trade_id = $1 AND action = 'trade_status'"
    assert await _count(pool, audit, trade_id) == 2


async def test_a_closed_trade_never_moves_back(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id
    await trades.transition(TradeTransition(trade_id=trade_id, status="OPEN", as_of=at(1)))
    await trades.close(
        TradeClose(
            trade_id=trade_id,
            close_reason=CloseReason.STOP_FILLED,
            exit_price=Decimal("95.00"),
            realized_pnl=Decimal("-50.00"),
            closed_at=at(5),
        )
    )
    # A transition decided later than the close still cannot reopen the trade.
    late = await trades.transition(TradeTransition(trade_id=trade_id, status="OPEN", as_of=at(9)))
    assert not late.applied
    assert late.trade.status is TradeStatus.CLOSED
    assert trade_id not in {t.id for t in await trades.list_open()}


async def test_closing_twice_returns_the_first_close(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id
    first = await trades.close(
        TradeClose(
            trade_id=trade_id,
            close_reason=CloseReason.TAKE_PROFIT,
            exit_price=Decimal("110.50"),
            realized_pnl=Decimal("105.00"),
            closed_at=at(10),
        )
    )
    second = await trades.close(
        TradeClose(trade_id=trade_id, close_reason=CloseReason.GHOST, closed_at=at(20))
    )
    assert first.applied and not second.applied
    assert second.trade == first.trade
    closed = second.trade
    assert closed.status is TradeStatus.CLOSED and closed.close_reason is CloseReason.TAKE_PROFIT
    assert (closed.exit_price, closed.realized_pnl, closed.closed_at) == (
        Decimal("110.50"),
        Decimal("105.00"),
        at(10),
    )
    audit = "SELECT reason FROM audit_log WHERE trade_id = $1 AND action = 'trade_closed'"
    assert [r["reason"] for r in await pool.fetch(audit, trade_id)] == ["TAKE_PROFIT"]


async def test_closing_several_appends_each_closers_row_only_with_the_close_that_applies(
    pool: asyncpg.Pool,
) -> None:
    trades = Trades(pool)
    ids = [(await trades.create(new_trade())).trade.id for _ in range(3)]
    stopped = TradeClose(trade_id=ids[1], close_reason=CloseReason.STOP_FILLED, closed_at=at(5))
    await trades.close(stopped)

    def closer_row(trade_id: str) -> AuditEntry:
        return AuditEntry(
            actor="reconcile-1",
            action="ghost_closed",
            reason="no position, no order, no workflow",
            trade_id=trade_id,
            event_key=f"reconcile-1:ghost_closed:{trade_id}",
        )

    # Given out of id order: results come back in the order asked.
    asked = [ids[2], ids[1], ids[0]]

    def ghost(trade_id: str) -> TradeClose:
        return TradeClose(trade_id=trade_id, close_reason=CloseReason.GHOST, closed_at=at(10))

    written = await trades.close_all([(ghost(i), closer_row(i)) for i in asked])

    assert [w.trade.id for w in written] == asked
    assert [w.applied for w in written] == [True, False, True]
    assert written[1].trade.close_reason is CloseReason.STOP_FILLED  # the first close stands
    audit = "SELECT action FROM audit_log WHERE trade_id = $1 AND action LIKE '%closed'"
    for trade_id, actions in (
        (ids[0], ["trade_closed", "ghost_closed"]),
        (ids[1], ["trade_closed"]),  # already closed: no ghost_closed row for it
        (ids[2], ["trade_closed", "ghost_closed"]),
    ):
        assert sorted(r["action"] for r in await pool.fetch(audit, trade_id)) == sorted(actions)
    again = await trades.close_all(
        [(TradeClose(trade_id=ids[0], close_reason=CloseReason.GHOST, closed_at=at(20)), None)]
    )
    assert not again[0].applied


async def test_a_batch_close_naming_an_unknown_trade_closes_none(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    known = (await trades.create(new_trade())).trade.id
    with pytest.raises(LedgerRecordMissing):
        await trades.close_all(
            [
                (TradeClose(trade_id=t, close_reason=CloseReason.GHOST, closed_at=at(1)), None)
                for t in (known, "nope")
            ]
        )
    trade = await trades.get(known)
    assert trade is not None and not trade.is_closed  # one transaction: all or nothing


async def test_a_cancelled_entry_ends_in_entry_cancelled(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id
    result = await trades.close(
        TradeClose(trade_id=trade_id, close_reason=CloseReason.ENTRY_CANCELLED, closed_at=at(2))
    )
    assert result.trade.status is TradeStatus.ENTRY_CANCELLED
    assert result.trade.is_closed and result.trade.exit_price is None


async def test_entry_fills_only_grow_and_keep_the_first_fill_time(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id
    full = TradeEntryFill(
        trade_id=trade_id, qty=Decimal(10), avg_price=Decimal("100.10"), filled_at=at(4)
    )
    partial = TradeEntryFill(
        trade_id=trade_id, qty=Decimal(4), avg_price=Decimal("100.00"), filled_at=at(2)
    )

    assert (await trades.record_entry_fill(full)).applied
    late_partial = await trades.record_entry_fill(partial)  # older event arriving late
    repeat = await trades.record_entry_fill(full)

    assert late_partial.applied  # it only moves opened_at back to the first fill
    assert not repeat.applied
    trade = repeat.trade
    assert (trade.qty, trade.entry_price, trade.opened_at) == (
        Decimal(10),
        Decimal("100.10"),
        at(2),
    )


async def test_protection_and_exit_intent_keep_the_newest(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    trade_id = (await trades.create(new_trade())).trade.id
    newer = TradeProtection(
        trade_id=trade_id,
        stop_price=Decimal("97.50"),
        stop_order_id=f"{trade_id}-stop-2",
        take_profit_price=Decimal("112.00"),
        take_profit_order_id=f"{trade_id}-tp-1",
        as_of=at(20),
    )
    older = TradeProtection(
        trade_id=trade_id,
        stop_price=Decimal("95.00"),
        stop_order_id=f"{trade_id}-stop-1",
        as_of=at(10),
    )
    assert (await trades.record_protection(newer)).applied
    kept = await trades.record_protection(older)
    assert not kept.applied
    assert (kept.trade.stop_price, kept.trade.stop_order_id, kept.trade.take_profit_order_id) == (
        Decimal("97.50"),
        f"{trade_id}-stop-2",
        f"{trade_id}-tp-1",
    )

    intent = ExitIntent(urgency=ExitUrgency.NEXT_OPEN, reason="eod review", planned_for=at(3600))
    recorded = await trades.record_exit_intent(
        TradeExitIntent(trade_id=trade_id, exit_intent=intent, as_of=at(30))
    )
    assert recorded.applied and recorded.trade.exit_intent == intent
    withdrawn = await trades.record_exit_intent(
        TradeExitIntent(trade_id=trade_id, exit_intent=None, as_of=at(40))
    )
    assert withdrawn.applied and withdrawn.trade.exit_intent is None
    stale = await trades.record_exit_intent(
        TradeExitIntent(trade_id=trade_id, exit_intent=intent, as_of=at(35))
    )
    assert not stale.applied and stale.trade.exit_intent is None


async def test_list_open_returns_live_trades_by_symbol(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    symbol = uid("S").upper()[:8]
    live = (await trades.create(new_trade(symbol=symbol))).trade.id
    ended = (await trades.create(new_trade(symbol=symbol))).trade.id
    await trades.close(TradeClose(trade_id=ended, close_reason=CloseReason.GHOST, closed_at=at(1)))

    assert [t.id for t in await trades.list_open(symbol)] == [live]
    assert live in {t.id for t in await trades.list_open()}


async def test_writes_to_an_unknown_trade_raise_record_missing(pool: asyncpg.Pool) -> None:
    trades = Trades(pool)
    with pytest.raises(LedgerRecordMissing, match="no trade"):
        await trades.transition(TradeTransition(trade_id="nope", status="OPEN", as_of=at(1)))
    with pytest.raises(LedgerRecordMissing):
        await trades.close(TradeClose(trade_id="nope", close_reason="GHOST", closed_at=at(1)))
    assert await trades.get("nope") is None
