"""Option trades repository on real PostgreSQL: forward-only writes, audited once, ghosts."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import asyncpg
import pytest

from ledger.option_trades import OptionTrades
from trading.broker_models import OrderSide
from trading.ledger_records import TradeOrigin
from trading.options.records import OptionTradeGhost, OptionTradesQuery, OptionTradeWrite
from trading.options.trade_models import OptionLeg, OptionTradeStatus

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
LEGS = [
    OptionLeg(symbol="SPY240419P00480000", side=OrderSide.BUY),
    OptionLeg(symbol="SPY240419P00485000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00540000", side=OrderSide.SELL),
    OptionLeg(symbol="SPY240419C00545000", side=OrderSide.BUY),
]


def _write(
    trade_id: str, status: OptionTradeStatus, minutes: int, **fields: object
) -> OptionTradeWrite:
    base: dict[str, object] = {
        "trade_id": trade_id,
        "underlying": "SPY",
        "status": status,
        "expiry": date(2024, 4, 19),
        "qty": 2,
        "legs": LEGS,
        "width": Decimal(5),
        "max_loss": Decimal(700),
        "workflow_id": f"option-trade-{trade_id}",
        "at": T0 + timedelta(minutes=minutes),
    }
    base.update(fields)
    return OptionTradeWrite.model_validate(base)


async def _audits(pool: asyncpg.Pool, trade_id: str) -> list[str]:
    rows = await pool.fetch(
        "SELECT action FROM audit_log WHERE trade_id = $1 ORDER BY id", trade_id
    )
    return [row["action"] for row in rows]


async def test_a_trade_moves_forward_once_per_status_and_never_back(pool: asyncpg.Pool) -> None:
    trades, tid = OptionTrades(pool), f"ic-{uuid.uuid4().hex[:8]}"
    first = await trades.record(_write(tid, OptionTradeStatus.PENDING_ENTRY, 0))
    assert first.applied and first.trade.status is OptionTradeStatus.PENDING_ENTRY
    assert first.trade.legs == LEGS and first.trade.opened_at is None

    opened = _write(tid, OptionTradeStatus.OPEN, 1, credit=Decimal("1.50"), max_loss=Decimal(700))
    assert (await trades.record(opened)).applied
    assert not (await trades.record(opened)).applied  # a retry changes nothing
    stale = await trades.record(_write(tid, OptionTradeStatus.PENDING_ENTRY, 2))
    assert not stale.applied and stale.trade.status is OptionTradeStatus.OPEN
    assert stale.trade.opened_at == T0 + timedelta(minutes=1)

    closed = _write(
        tid,
        OptionTradeStatus.CLOSED,
        3,
        credit=Decimal("1.50"),
        exit_debit=Decimal("0.70"),
        exit_reason="take_profit",
        realized_pnl=Decimal(160),
    )
    done = await trades.record(closed)
    assert done.applied and done.trade.closed_at == T0 + timedelta(minutes=3)
    again = await trades.record(_write(tid, OptionTradeStatus.CLOSING, 4, credit=Decimal("1.5")))
    assert not again.applied and again.trade.status is OptionTradeStatus.CLOSED
    assert again.trade.realized_pnl == Decimal(160)
    assert await _audits(pool, tid) == [
        "option_trade_pending_entry",
        "option_trade_open",
        "option_trade_closed",
    ]


async def test_open_trades_are_listed_and_a_ghost_closes_once(pool: asyncpg.Pool) -> None:
    trades, tid = OptionTrades(pool), f"ic-{uuid.uuid4().hex[:8]}"
    await trades.record(
        _write(tid, OptionTradeStatus.OPEN, 0, credit=Decimal(1), origin=TradeOrigin.EXTERNAL)
    )
    listed = await trades.list(OptionTradesQuery(open_only=True))
    assert tid in [t.id for t in listed.trades]
    ghost = OptionTradeGhost(trade_id=tid, reason="ghost: no legs at the broker", at=T0)
    first = await trades.close_ghost(ghost)
    assert first.applied and first.trade.status is OptionTradeStatus.CLOSED
    assert first.trade.origin is TradeOrigin.EXTERNAL
    assert not (await trades.close_ghost(ghost)).applied
    assert tid not in [t.id for t in (await trades.list(OptionTradesQuery(open_only=True))).trades]
    assert tid in [t.id for t in (await trades.list(OptionTradesQuery(limit=5))).trades]
    assert (await _audits(pool, tid))[-1] == "option_trade_ghost_closed"
