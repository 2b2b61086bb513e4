"""Reconcile and protection sweep as pure functions: broker truth + ledger in, a plan out.

The broker is the source of truth. Given one successful snapshot (absence from it is a
definitive answer) and the ledger's open trades, `reconcile_plan` says which trades are
ghosts, which broker positions nobody claims (to adopt), and whose quantity drifted;
`protection_sweep` says, for every broker position, which trade should guard it and how to
restart that guard if it is not running. Nothing here does I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import Decimal

from pydantic import Field

from trading.broker_models import BrokerOrder, BrokerPosition, BrokerTruth, OrderType
from trading.ids import new_trade_id
from trading.ledger_records import CloseReason, TradeRecord, TradeStatus
from trading.models import Frozen
from trading.options.positions import OptionsPlan
from trading.routing import covering_stop_of
from trading.ticks import protective_stop_price
from trading.trade_models import PositionUpdate, TradeSpec

DEFAULT_GRACE = timedelta(minutes=2)
DEFAULT_STOP_DISTANCE = Decimal("0.05")  # an adopted position's stop: 5% under its price
_STOP_TYPES = (OrderType.STOP, OrderType.STOP_LIMIT)


class GhostClose(Frozen):
    """A ledger trade the broker shows no position and no open order for."""

    trade_id: str
    symbol: str
    status: TradeStatus
    close_reason: CloseReason


class Adoption(Frozen):
    """A broker position no open trade claims: guard it as an external trade."""

    trade_id: str
    symbol: str
    qty: Decimal
    avg_entry_price: Decimal
    stop_price: Decimal
    existing_stop_order_id: str | None = None


class QuantitySync(Frozen):
    """A live trade whose ledger quantity differs from the broker position in its symbol."""

    trade_id: str
    symbol: str
    ledger_qty: Decimal
    broker_qty: Decimal
    avg_entry_price: Decimal
    sole_owner: bool  # the only live trade in the symbol: the broker qty is all its own


class SkippedPosition(Frozen):
    """A broker position reconcile leaves alone, and why."""

    symbol: str
    qty: Decimal
    reason: str


class ReconcilePlan(Frozen):
    """What one reconcile will do, in order: adoptions, ghost closes, quantity syncs."""

    checked_trades: int
    checked_positions: int
    adoptions: list[Adoption] = Field(default_factory=list)
    ghost_closes: list[GhostClose] = Field(default_factory=list)
    quantity_syncs: list[QuantitySync] = Field(default_factory=list)
    skipped: list[SkippedPosition] = Field(default_factory=list)
    deferred: int = 0  # actions left for the next run by max_actions
    # The option legs' diff (trading/options/positions.py); None: runs that did not read them.
    options: OptionsPlan | None = None

    @property
    def actions(self) -> int:
        """How many stock actions the plan holds (the options part counts its own)."""
        return len(self.adoptions) + len(self.ghost_closes) + len(self.quantity_syncs)


class GuardTarget(Frozen):
    """One broker position and who guards it: signal the running owner, else restart it."""

    symbol: str
    qty: Decimal
    trade_ids: list[str]  # open trades in the symbol, oldest first (empty: unclaimed)
    restart: TradeSpec  # the protect-only guard to start when none of them is running
    covered: bool  # the snapshot shows an active sell stop covering the whole position
    update: PositionUpdate


# --- helpers -------------------------------------------------------------------------------


def _orders_with_legs(orders: Iterable[BrokerOrder]) -> list[BrokerOrder]:
    return [o for order in orders for o in (order, *order.legs)]


def covering_stop(truth: BrokerTruth, symbol: str, qty: Decimal) -> BrokerOrder | None:
    """An active sell stop in the symbol whose unfilled quantity covers `qty`, if any."""
    return covering_stop_of(truth.open_orders, symbol, qty)


def default_stop_price(position: BrokerPosition, distance: Decimal) -> Decimal:
    """`distance` under the lower of entry and current price, on the tick grid (rounded down)."""
    base = position.avg_entry_price
    if position.current_price is not None and 0 < position.current_price < base:
        base = position.current_price
    return protective_stop_price(base * (Decimal(1) - distance))


def adoption_trade_id(position: BrokerPosition, day: datetime) -> str:
    """A stable trade id for adopting this position: repeat reconciles find the same id."""
    identity = (
        f"{position.symbol}|{position.qty.normalize()}|{position.avg_entry_price.normalize()}"
    )
    digest = hashlib.sha256(identity.encode()).hexdigest()
    midnight = day.replace(hour=0, minute=0, second=0, microsecond=0)
    return new_trade_id(position.symbol, midnight, digest)


def position_update_for(truth: BrokerTruth, symbol: str) -> PositionUpdate:
    """What the snapshot says about one symbol, as the trade workflow's signal (0 = flat)."""
    qty = next((p.qty for p in truth.positions if p.symbol == symbol), Decimal(0))
    return PositionUpdate(
        symbol=symbol,
        qty=qty,
        observed_at=truth.fetched_at,
        open_orders=[o for o in truth.open_orders if o.symbol == symbol],
    )


def position_updates(truth: BrokerTruth, symbols: Iterable[str]) -> dict[str, PositionUpdate]:
    """`position_update_for` each of `symbols`, reading the snapshot once (not once a symbol)."""
    wanted = set(symbols)
    qty: dict[str, Decimal] = {}
    for position in truth.positions:
        if position.symbol in wanted:
            qty.setdefault(position.symbol, position.qty)
    orders: dict[str, list[BrokerOrder]] = {}
    for order in truth.open_orders:
        if order.symbol in wanted:
            orders.setdefault(order.symbol, []).append(order)
    return {
        symbol: PositionUpdate(
            symbol=symbol,
            qty=qty.get(symbol, Decimal(0)),
            observed_at=truth.fetched_at,
            open_orders=orders.get(symbol, []),
        )
        for symbol in sorted(wanted)
    }


def protect_only_spec(
    trade_id: str,
    position: BrokerPosition,
    truth: BrokerTruth,
    distance: Decimal,
    preferred_stop_order_id: str | None = None,
    preferred_stop_price: Decimal | None = None,
    take_profit: tuple[Decimal | None, str | None] = (None, None),
) -> TradeSpec:
    """A protect-only TradeSpec guarding `position`, reusing a working stop when there is one.

    The ledger's stop (`preferred_stop_order_id`) is kept when the listing shows it working,
    and also when the listing does not show it at all: Alpaca may leave held legs out of open
    listings, so "not listed" is not "gone" - the guard probes it by id and rescues only if the
    broker says it is over. The ledger's take-profit (price, order id) goes with it, so a
    restarted guard keeps it and a later rescue restores it with the stop.
    """
    stop = covering_stop(truth, position.symbol, position.qty)
    listed = {o.id: o for o in _orders_with_legs(truth.open_orders)}
    preferred = listed.get(preferred_stop_order_id or "")
    if preferred is not None and preferred.is_active:
        stop_order_id: str | None = preferred.id
    elif stop is not None:
        stop_order_id = stop.id
    elif preferred_stop_order_id is not None and preferred is None:
        stop_order_id = preferred_stop_order_id  # unseen, maybe hidden: probe it by id
    else:
        stop_order_id = None
    fallback = default_stop_price(position, distance)
    candidates = [preferred_stop_price, stop.stop_price if stop is not None else None]
    price = next((p for p in candidates if p is not None and p > 0), fallback)
    market = position.current_price or position.avg_entry_price
    stop_price = protective_stop_price(price) if price < market else fallback
    take_profit_price, take_profit_order_id = take_profit
    if take_profit_price is None or take_profit_price <= stop_price:
        take_profit_price = take_profit_order_id = None  # not a take-profit for this stop
    return TradeSpec(
        trade_id=trade_id,
        symbol=position.symbol,
        qty=position.qty,
        stop_price=stop_price,
        take_profit_price=take_profit_price,
        protect_only=True,
        existing_stop_order_id=stop_order_id,
        existing_take_profit_order_id=take_profit_order_id,
    )


# --- the plans -----------------------------------------------------------------------------


def _is_ghost(trade: TradeRecord, busy_symbols: set[str], now: datetime, grace: timedelta) -> bool:
    if trade.symbol in busy_symbols:
        return False
    last_change = max(trade.created_at, trade.status_at or trade.created_at)
    return now - last_change >= grace


def reconcile_plan(
    truth: BrokerTruth,
    open_trades: list[TradeRecord],
    now: datetime,
    grace: timedelta = DEFAULT_GRACE,
    max_actions: int | None = None,
    close_reason: CloseReason = CloseReason.GHOST,
    stop_distance: Decimal = DEFAULT_STOP_DISTANCE,
) -> ReconcilePlan:
    """Diff the ledger's open trades against one successful broker snapshot.

    A ghost has no position and no open order in its symbol and has not changed within
    `grace` (an entry just submitted may not show yet). A position no open trade claims is
    adopted (long only: the guard places sell stops). Actions past `max_actions` are
    deferred to the next run, adoptions first since a naked position is the bigger risk.
    """
    live = [t for t in open_trades if not t.is_closed]
    positions = {p.symbol: p for p in truth.positions if p.qty != 0}
    busy = set(positions) | {o.symbol for o in truth.open_orders}
    claimed = {t.symbol for t in live}

    adoptions: list[Adoption] = []
    skipped: list[SkippedPosition] = []
    for symbol in sorted(positions):
        position = positions[symbol]
        if symbol in claimed:
            continue
        if position.qty < 0:
            skipped.append(
                SkippedPosition(symbol=symbol, qty=position.qty, reason="short: not adoptable")
            )
            continue
        spec = protect_only_spec(
            adoption_trade_id(position, truth.fetched_at), position, truth, stop_distance
        )
        adoptions.append(
            Adoption(
                trade_id=spec.trade_id,
                symbol=symbol,
                qty=position.qty,
                avg_entry_price=position.avg_entry_price,
                stop_price=spec.stop_price,
                existing_stop_order_id=spec.existing_stop_order_id,
            )
        )

    ghosts = [
        GhostClose(trade_id=t.id, symbol=t.symbol, status=t.status, close_reason=close_reason)
        for t in live
        if _is_ghost(t, busy, now, grace)
    ]

    syncs: list[QuantitySync] = []
    settled: dict[str, list[TradeRecord]] = {}  # by symbol, in the ledger's order
    for trade in live:
        if trade.status is not TradeStatus.PENDING_ENTRY:
            settled.setdefault(trade.symbol, []).append(trade)
    for symbol in sorted(settled.keys() & positions.keys()):
        owners = settled[symbol]
        position = positions[symbol]
        if sum((t.qty for t in owners), Decimal(0)) == position.qty:
            continue
        syncs += [
            QuantitySync(
                trade_id=t.id,
                symbol=symbol,
                ledger_qty=t.qty,
                broker_qty=position.qty,
                avg_entry_price=position.avg_entry_price,
                sole_owner=len(owners) == 1,
            )
            for t in owners
        ]

    plan = ReconcilePlan(
        checked_trades=len(live),
        checked_positions=len(positions),
        adoptions=adoptions,
        ghost_closes=ghosts,
        quantity_syncs=syncs,
        skipped=skipped,
    )
    return _capped(plan, max_actions)


def _capped(plan: ReconcilePlan, max_actions: int | None) -> ReconcilePlan:
    if max_actions is None or plan.actions <= max_actions:
        return plan
    room = max(max_actions, 0)
    adoptions = plan.adoptions[:room]
    room -= len(adoptions)
    ghosts = plan.ghost_closes[:room]
    room -= len(ghosts)
    syncs = plan.quantity_syncs[:room]
    kept = len(adoptions) + len(ghosts) + len(syncs)
    return plan.model_copy(
        update={
            "adoptions": adoptions,
            "ghost_closes": ghosts,
            "quantity_syncs": syncs,
            "deferred": plan.actions - kept,
        }
    )


def protection_sweep(
    truth: BrokerTruth,
    open_trades: list[TradeRecord],
    stop_distance: Decimal = DEFAULT_STOP_DISTANCE,
) -> list[GuardTarget]:
    """For every long broker position: its trades, whether a stop covers it, how to restart.

    The restart guards the symbol's oldest open trade (reusing its recorded stop when that
    order is still working); an unclaimed position gets the same adoption id reconcile
    would give it, so the two never start two guards for one position.
    """
    live = sorted((t for t in open_trades if not t.is_closed), key=lambda t: (t.created_at, t.id))
    targets: list[GuardTarget] = []
    for position in sorted(truth.positions, key=lambda p: p.symbol):
        if position.qty <= 0:
            continue
        owners = [t for t in live if t.symbol == position.symbol]
        if owners:
            first = owners[0]
            restart = protect_only_spec(
                first.id,
                position,
                truth,
                stop_distance,
                preferred_stop_order_id=first.stop_order_id,
                preferred_stop_price=first.stop_price,
                take_profit=(first.take_profit_price, first.take_profit_order_id),
            )
        else:
            restart = protect_only_spec(
                adoption_trade_id(position, truth.fetched_at), position, truth, stop_distance
            )
        targets.append(
            GuardTarget(
                symbol=position.symbol,
                qty=position.qty,
                trade_ids=[t.id for t in owners],
                restart=restart,
                covered=covering_stop(truth, position.symbol, position.qty) is not None,
                update=position_update_for(truth, position.symbol),
            )
        )
    return targets
