"""What a trade may decide from events and snapshots alone (trading/trade_knowledge.py)."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from activities.listener_positions import ListenerPositions
from broker.errors import BrokerUnavailable
from tests.unit.test_trade_logic import NOW, order
from trading.broker_models import BrokerPosition, OrderStatus, ProbeOutcome
from trading.broker_sync_models import BrokerSyncInput
from trading.routing import PositionRoute, view_digest
from trading.trade_knowledge import (
    ACT_MAX_AGE,
    Knowledge,
    broker_answers_again,
    event_time,
    moved_by_its_fill,
)
from trading.trade_models import OrderEvent, PositionSeen, PositionUpdate

MAX_AGE = timedelta(seconds=45)
STOP_ID = "o-1"


def event(kind: str, status: OrderStatus, **fields: object) -> OrderEvent:
    return OrderEvent(event=kind, order=order(status=status), timestamp=NOW, **fields)


def snapshot(qty: int, at_s: float = 0, with_stop: bool = True) -> PositionUpdate:
    return PositionUpdate(
        symbol="AAPL",
        qty=Decimal(qty),
        observed_at=NOW + timedelta(seconds=at_s),
        open_orders=[order()] if with_stop else [],
    )


def test_nothing_is_known_before_any_signal() -> None:
    known = Knowledge().known("AAPL", STOP_ID, NOW, MAX_AGE)
    assert known.position is None and known.stop is None and not known.complete


def test_a_fresh_snapshot_answers_both_questions() -> None:
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(10))
    known = knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=5), MAX_AGE)
    assert known.complete
    assert known.position is not None and known.position.position is not None
    assert known.position.position.qty == Decimal(10)
    assert known.stop is not None and known.stop.order is not None and known.stop.order.is_active


def test_a_stale_snapshot_answers_nothing() -> None:
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(10))
    known = knowledge.known("AAPL", STOP_ID, NOW + MAX_AGE + timedelta(seconds=1), MAX_AGE)
    assert known.position is None and known.stop is None


def test_a_snapshot_that_does_not_list_the_stop_proves_nothing_about_it() -> None:
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(10, with_stop=False))
    assert knowledge.known("AAPL", STOP_ID, NOW, MAX_AGE).stop is None  # probe it


def test_an_ended_stop_stays_ended_whatever_comes_later() -> None:
    knowledge = Knowledge()
    knowledge.saw_event(event("canceled", OrderStatus.CANCELED), NOW)
    knowledge.saw_snapshot(snapshot(10, at_s=1))  # listed as open, but cancelled is final
    knowledge.saw_order(order(status=OrderStatus.NEW), NOW + timedelta(seconds=2))
    stop = knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=3), MAX_AGE).stop
    assert stop is not None and stop.order is not None
    assert stop.order.status is OrderStatus.CANCELED
    assert knowledge.ended() == frozenset({STOP_ID})


def test_an_active_event_older_than_a_fresh_snapshot_that_omits_the_stop_is_not_believed() -> None:
    knowledge = Knowledge()
    knowledge.saw_event(event("new", OrderStatus.NEW), NOW)
    knowledge.saw_snapshot(snapshot(10, at_s=2, with_stop=False))
    assert knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=3), MAX_AGE).stop is None


def test_a_fill_of_unknown_size_makes_older_positions_stale() -> None:
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(10))
    knowledge.saw_event(
        event("partial_fill", OrderStatus.PARTIALLY_FILLED), NOW + timedelta(seconds=1)
    )
    assert knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=2), MAX_AGE).position is None
    knowledge.saw_snapshot(snapshot(10, at_s=0.5))  # taken before the fill: ignored
    assert knowledge.position is None


def test_a_fill_with_its_position_size_is_the_newest_position() -> None:
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(10))
    knowledge.saw_event(
        event("fill", OrderStatus.FILLED, position_qty=Decimal(0)), NOW + timedelta(seconds=1)
    )
    position = knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=2), MAX_AGE).position
    assert position is not None and position.outcome is ProbeOutcome.ABSENT


def test_only_a_position_read_moments_ago_may_size_a_new_stop() -> None:
    knowledge = Knowledge()
    knowledge.saw_event(
        event(
            "canceled",
            OrderStatus.CANCELED,
            position_seen=PositionSeen(qty=Decimal(10), observed_at=NOW),
        ),
        NOW,
    )
    fresh = knowledge.known("AAPL", STOP_ID, NOW + timedelta(seconds=1), MAX_AGE)
    assert fresh.complete and fresh.fit_to_act(NOW + timedelta(seconds=1))
    later = NOW + ACT_MAX_AGE + timedelta(seconds=1)
    old = knowledge.known("AAPL", STOP_ID, later, MAX_AGE)
    assert old.complete and not old.fit_to_act(later)  # enough to keep, not to place


def test_a_stop_with_fills_moved_the_position() -> None:
    knowledge = Knowledge()
    knowledge.saw_order(order(status=OrderStatus.FILLED, filled_qty=Decimal(10)), NOW)
    assert moved_by_its_fill(knowledge.known("AAPL", STOP_ID, NOW, MAX_AGE).stop)
    knowledge2 = Knowledge()
    knowledge2.saw_order(order(status=OrderStatus.CANCELED), NOW)
    assert not moved_by_its_fill(knowledge2.known("AAPL", STOP_ID, NOW, MAX_AGE).stop)


def test_only_a_snapshot_after_a_transient_failure_cuts_the_backoff() -> None:
    later = NOW + timedelta(seconds=1)
    assert broker_answers_again("BrokerUnavailable", NOW, later)
    assert not broker_answers_again("BrokerUnavailable", NOW, NOW - timedelta(seconds=1))
    assert not broker_answers_again("InsufficientQty", NOW, later)  # a refusal is no outage
    assert not broker_answers_again(None, None, later)


@given(st.integers(min_value=0, max_value=1000), st.integers(min_value=0, max_value=1000))
def test_a_view_digest_changes_exactly_when_the_view_does(a: int, b: int) -> None:
    stops = (order(qty=Decimal(a or 1)),)
    assert (view_digest(Decimal(a), stops) == view_digest(Decimal(b), stops)) == (a == b)
    moved = (order(qty=Decimal(a or 1), status=OrderStatus.CANCELED),)
    assert view_digest(Decimal(a), stops) != view_digest(Decimal(a), moved)


def test_a_route_is_covered_only_by_an_active_sell_stop_for_all_of_it() -> None:
    def route(qty: int, *orders: object) -> PositionRoute:
        return PositionRoute("t1", "AAPL", Decimal(qty), tuple(orders), NOW)  # type: ignore[arg-type]

    assert route(10, order()).covered
    assert not route(11, order()).covered
    assert not route(10, order(status=OrderStatus.CANCELED)).covered
    assert route(0).covered  # nothing to cover


def test_the_listener_reads_positions_once_for_many_ending_events() -> None:
    reads: list[int] = []

    async def read() -> list[BrokerPosition]:
        reads.append(1)
        return [BrokerPosition(symbol="AAPL", qty=Decimal(10), avg_entry_price=Decimal(100))]

    async def scenario() -> None:
        positions = ListenerPositions(read)
        ended = [await positions.attach(event("canceled", OrderStatus.CANCELED)) for _ in range(5)]
        assert len(reads) == 1
        assert all(e.position_seen is not None and e.position_seen.qty == 10 for e in ended)
        await positions.attach(event("fill", OrderStatus.FILLED))  # a fill: AAPL moved
        after = await positions.attach(event("new", OrderStatus.NEW))
        assert after.position_seen is None  # not refreshed for a non-ending event
        again = await positions.attach(event("canceled", OrderStatus.CANCELED))
        assert len(reads) == 2 and again.position_seen is not None

    asyncio.run(scenario())


def test_a_failed_positions_read_attaches_nothing() -> None:
    async def read() -> list[BrokerPosition]:
        raise BrokerUnavailable("down")

    async def scenario() -> None:
        ended = await ListenerPositions(read).attach(event("canceled", OrderStatus.CANCELED))
        assert ended.position_seen is None

    asyncio.run(scenario())


def test_a_late_event_dates_from_when_it_happened_unless_the_clocks_are_not_comparable() -> None:
    late = event("fill", OrderStatus.FILLED, position_qty=Decimal(100))  # happened at NOW
    arrived = NOW + timedelta(seconds=90)
    assert event_time(late, arrived) == NOW
    simulated = NOW + timedelta(days=3)  # a paper broker's clock days away
    assert event_time(late, simulated) == simulated
    knowledge = Knowledge()
    knowledge.saw_snapshot(snapshot(60, at_s=30))  # taken after the fill
    knowledge.saw_event(late, arrived)
    assert knowledge.position is not None and knowledge.position.qty == Decimal(60)


def test_broker_sync_polls_a_large_account_less_often_to_stay_within_its_calls() -> None:
    settings = BrokerSyncInput()
    assert settings.open_interval(2) == timedelta(seconds=15)  # positions + one orders page
    assert settings.open_interval(4) == timedelta(seconds=30)  # 1,000 open orders: 3 pages
    assert 60 / settings.open_interval(4).total_seconds() * 4 + 1 <= 10  # with the clock
