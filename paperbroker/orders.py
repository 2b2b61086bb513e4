"""Build order records (with bracket/OCO/OTO legs) and their replacements."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from uuid import uuid4

from paperbroker.assets import Asset
from paperbroker.calendar import NEW_YORK, MarketCalendar
from paperbroker.models import (
    LegRole,
    OrderClass,
    OrderRecord,
    OrderType,
    Side,
    Status,
    TimeInForce,
)
from paperbroker.validation import OrderIntent, ReplaceIntent

# Aged-order policy: GTC orders carry expires_at 90 days out and are cancelled at 16:15
# New York on that date (ALPACA.md, "Aged GTC orders").
GTC_LIFETIME = timedelta(days=90)
GTC_CANCEL_TIME = time(16, 15)


def gtc_cancel_times(start: datetime, end: datetime) -> set[datetime]:
    """Return every 16:15 New York instant in (start, end], when aged GTC orders are cancelled."""
    found: set[datetime] = set()
    day = start.astimezone(NEW_YORK).date()
    while day <= end.astimezone(NEW_YORK).date():
        instant = datetime.combine(day, GTC_CANCEL_TIME, NEW_YORK).astimezone(UTC)
        if start < instant <= end:
            found.add(instant)
        day += timedelta(days=1)
    return found


def gtc_deadline(order: OrderRecord) -> datetime | None:
    """Return when Alpaca cancels an aged GTC order (16:15 New York on its expires_at date)."""
    if order.time_in_force is not TimeInForce.GTC or order.expires_at is None:
        return None
    day = order.expires_at.astimezone(NEW_YORK).date()
    return datetime.combine(day, GTC_CANCEL_TIME, NEW_YORK).astimezone(UTC)


def _opposite(side: Side) -> Side:
    return Side.SELL if side is Side.BUY else Side.BUY


def session_fields(
    calendar: MarketCalendar, now: datetime, tif: TimeInForce, extended: bool
) -> tuple[date | None, datetime | None]:
    """Return (session day, expires_at) for an order received at `now`."""
    session = calendar.extended_session_for(now) if extended else None
    if session is None or now >= session.post_close:
        session = calendar.trading_session_for(now)
    if session is None:
        return None, None
    if tif is TimeInForce.GTC:
        return session.day, now + GTC_LIFETIME
    if tif is TimeInForce.DAY:
        return session.day, session.post_close if extended else session.close
    return session.day, None


def build_orders(
    intent: OrderIntent, asset: Asset, client_order_id: str, now: datetime, calendar: MarketCalendar
) -> list[OrderRecord]:
    """Return the order and its legs (parent first) for a validated intent."""
    day, expires = session_fields(calendar, now, intent.time_in_force, intent.extended_hours)
    base = OrderRecord(
        id=uuid4(),
        client_order_id=client_order_id,
        symbol=asset.symbol,
        asset_id=asset.id,
        side=intent.side,
        type=intent.type,
        time_in_force=intent.time_in_force,
        order_class=intent.order_class,
        qty=intent.qty,
        notional=intent.notional,
        limit_price=intent.limit_price,
        stop_price=intent.stop_price,
        trail_price=intent.trail_price,
        trail_percent=intent.trail_percent,
        status=Status.ACCEPTED,
        extended_hours=intent.extended_hours,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        expires_at=expires,
        session_day=day,
    )
    if intent.order_class is OrderClass.SIMPLE:
        return [base]
    legs: list[OrderRecord] = []
    exit_side = intent.side if intent.order_class is OrderClass.OCO else _opposite(intent.side)
    if intent.order_class is OrderClass.OCO:
        base.leg_role = LegRole.TAKE_PROFIT
    elif intent.take_profit is not None:
        legs.append(_leg(base, exit_side, LegRole.TAKE_PROFIT, OrderType.LIMIT, now))
        legs[-1].limit_price = intent.take_profit.limit_price
    if intent.stop_loss is not None:
        stop_limit = intent.stop_loss.limit_price
        kind = OrderType.STOP_LIMIT if stop_limit is not None else OrderType.STOP
        leg = _leg(base, exit_side, LegRole.STOP_LOSS, kind, now)
        leg.stop_price, leg.limit_price = intent.stop_loss.stop_price, stop_limit
        legs.append(leg)
    base.leg_ids = [leg.id for leg in legs]
    exits = ([base] if intent.order_class is OrderClass.OCO else []) + legs
    if len(exits) == 2:
        exits[0].oco_peer_id, exits[1].oco_peer_id = exits[1].id, exits[0].id
    if intent.order_class is OrderClass.OCO:
        for leg in legs:
            leg.activated = True
    return [base, *legs]


def _leg(
    parent: OrderRecord, side: Side, role: LegRole, kind: OrderType, now: datetime
) -> OrderRecord:
    return OrderRecord(
        id=uuid4(),
        client_order_id=str(uuid4()),
        symbol=parent.symbol,
        asset_id=parent.asset_id,
        side=side,
        type=kind,
        time_in_force=parent.time_in_force,
        order_class=parent.order_class,
        qty=parent.qty,
        status=Status.HELD,
        created_at=now,
        updated_at=now,
        submitted_at=now,
        expires_at=parent.expires_at,
        session_day=parent.session_day,
        parent_id=parent.id,
        leg_role=role,
        activated=False,
    )


def build_replacement(
    old: OrderRecord, change: ReplaceIntent, client_order_id: str, now: datetime
) -> OrderRecord:
    """Return the order that replaces `old` with the requested changes."""
    new = old.model_copy(deep=True)
    new.id = uuid4()
    new.client_order_id = client_order_id
    new.replaces = old.id
    new.replaced_by = None
    new.qty = change.qty if change.qty is not None else old.remaining
    new.filled_qty = new.filled_qty * 0
    new.filled_avg_price = None
    new.created_at = new.updated_at = new.submitted_at = now
    new.filled_at = new.canceled_at = new.expired_at = new.replaced_at = None
    new.triggered = False
    if change.time_in_force is not None:
        new.time_in_force = change.time_in_force
    if change.limit_price is not None:
        new.limit_price = change.limit_price
    if change.stop_price is not None:
        new.stop_price = change.stop_price
    if change.trail is not None:
        if old.trail_price is not None:
            new.trail_price = change.trail
        else:
            new.trail_percent = change.trail
        new.hwm = None
    if new.status is Status.PARTIALLY_FILLED:
        new.status = Status.NEW
    return new
