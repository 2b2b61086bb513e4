"""`broker verify` checks of how orders behave: bracket legs, group cancel, replace, reservation.

Each places one-share day orders priced far from the market; the ones that share an order get
it from `session.once`, so the bracket placed for "legs are held" is the one "group cancel"
cancels later. The position checks buy one share with a market bracket (--with-position).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, NamedTuple

from alpaca.common.exceptions import APIError
from alpaca.trading.enums import OrderSide as SdkSide
from alpaca.trading.requests import ReplaceOrderRequest

from broker.verify_answers import far_buy_limit, limit_request
from broker.verify_session import (
    NEVER_FILLS_BUY,
    NEVER_FILLS_SELL,
    BrokerAnswer,
    Check,
    Needs,
    Observed,
    Skip,
    VerifySession,
    answer_of,
    failed,
    passed,
    verdict_of,
)
from trading.broker_models import BrokerOrder, OrderClass, OrderSide, OrderStatus, OrderType

HIDDEN_LEGS_NOTE = (
    "held legs are hidden from status=open here; the guard tolerates this: it probes by id "
    "the orders the ledger knows and never concludes 'no stop' from a listing"
)


def unfilled_bracket(session: VerifySession) -> BrokerOrder:
    """A one-share buy-limit bracket far below the market: its entry never fills."""
    return session.once(
        "unfilled_bracket",
        lambda: session.place(
            session.intent(
                OrderSide.BUY,
                OrderType.LIMIT,
                limit=session.price(NEVER_FILLS_BUY),
                order_class=OrderClass.BRACKET,
                take_profit=session.price("0.55"),
                stop_loss=session.price("0.45"),
            )
        ),
    )


def filled_bracket(session: VerifySession) -> BrokerOrder:
    """One share bought with a market bracket (exits far away), once the entry has filled."""

    def buy() -> BrokerOrder:
        # The run's resting buys would make the sells below wash trades: end them first.
        session.cancel_open_orders()
        order = session.place(
            session.intent(
                OrderSide.BUY,
                OrderType.MARKET,
                order_class=OrderClass.BRACKET,
                take_profit=session.price(NEVER_FILLS_SELL),
                stop_loss=session.price(NEVER_FILLS_BUY),
            )
        )
        final, seen = session.wait_for(
            order.id, lambda o: o.status is OrderStatus.FILLED or o.is_terminal, 20.0
        )
        if final.status is not OrderStatus.FILLED:
            raise Skip(f"the 1-share bracket entry did not fill within 20 s ({_path(seen)})")
        return final

    return session.once("filled_bracket", buy)


def _legs(order: BrokerOrder) -> tuple[BrokerOrder | None, BrokerOrder | None]:
    """(take-profit, stop-loss) of a bracket: legs are told apart by type, not client id."""
    take = [leg for leg in order.legs if leg.type is OrderType.LIMIT]
    stop = [leg for leg in order.legs if leg.type in (OrderType.STOP, OrderType.STOP_LIMIT)]
    return (take[-1] if take else None), (stop[-1] if stop else None)


def _path(statuses: list[str]) -> str:
    return " -> ".join(statuses) or "nothing"


def _status(order: BrokerOrder | None) -> str:
    return order.status.value if order is not None else "missing"


# ---- brackets: legs, listing, replace rules, group cancel -------------------------------
def bracket_legs_held(session: VerifySession) -> Observed:
    """An unfilled bracket nests both legs under the entry, each held, each for its qty."""
    parent = session.gateway.get_order(unfilled_bracket(session).id)
    take, stop = _legs(parent)
    observed = (
        f"entry {parent.status.value}; {len(parent.legs)} legs: take-profit {_status(take)}, "
        f"stop-loss {_status(stop)}"
    )
    ok = (
        take is not None
        and stop is not None
        and take.status is stop.status is OrderStatus.HELD
        and take.qty == stop.qty == parent.qty
    )
    return verdict_of(ok, observed)


def held_legs_listed(session: VerifySession) -> Observed:
    """The entry is in status=open; its held legs are listed too, or at least found by id."""
    parent = session.gateway.get_order(unfilled_bracket(session).id)
    if not parent.legs:
        return failed("the entry has no legs to look for")
    listed = {order.id for order in session.gateway.get_open_orders()}
    if parent.id not in listed:
        return failed(f"the working entry ({parent.status.value}) is missing from status=open")
    hidden = [leg for leg in parent.legs if leg.id not in listed]
    if not hidden:
        return passed(f"entry and its {len(parent.legs)} held legs listed in status=open")
    return passed(
        f"{len(hidden)} of {len(parent.legs)} held legs hidden from status=open, found by id",
        note=HIDDEN_LEGS_NOTE,
    )


def bracket_leg_qty_refused(session: VerifySession) -> Observed:
    """PATCH of a bracket stop leg's qty is refused: only a leg's price may change."""
    _, stop = _legs(session.gateway.get_order(unfilled_bracket(session).id))
    if stop is None:
        raise Skip("the bracket has no stop-loss leg (see bracket_legs_held)")
    # No client_order_id: Alpaca ignores it on legs, and a refusal must be about the qty.
    answer = session.replace_raw(stop.id, ReplaceOrderRequest(qty=2))
    if not isinstance(answer, BrokerAnswer):
        return failed(f"replaced: new leg {answer.get('id')} with qty {answer.get('qty')}")
    refused = answer.status is not None and 400 <= answer.status < 500
    return verdict_of(refused, f"refused: {answer.describe()}")


def group_cancel_entry(session: VerifySession) -> Observed:
    """Cancelling an unfilled bracket entry cancels its held legs."""
    entry = unfilled_bracket(session)
    session.gateway.cancel_order(entry.id)
    final, seen = session.wait_for(
        entry.id, lambda o: o.is_terminal and all(leg.is_terminal for leg in o.legs)
    )
    take, stop = _legs(final)
    ok = (
        final.status is OrderStatus.CANCELED
        and take is not None
        and stop is not None
        and take.status is stop.status is OrderStatus.CANCELED
    )
    return verdict_of(
        ok,
        f"entry {_path(seen)}; take-profit {_status(take)}, stop-loss {_status(stop)}",
    )


def cancel_final_order(session: VerifySession) -> Observed:
    """DELETE of an order that already ended: 422 (or 204), read as already final."""
    entry = session.gateway.get_order(unfilled_bracket(session).id)
    if not entry.is_terminal:
        raise Skip(f"the bracket entry is still {entry.status.value} (see group_cancel_entry)")
    try:
        session.client_call(lambda: session.raw.client.cancel_order_by_id(entry.id))
        raw = "answered success"
        status_ok = True
    except APIError as exc:
        answer = answer_of(exc)
        raw = answer.describe()
        status_ok = answer.status == 422
    result = session.gateway.cancel_order(entry.id)
    ok = status_ok and result.order.is_terminal
    return verdict_of(
        ok,
        f"{raw}; gateway: {'already final' if result.already_final else 'cancelled'} "
        f"({result.order.status.value})",
    )


# ---- replace ----------------------------------------------------------------------------
class _Replaced(NamedTuple):
    """A replace that took: the new order's id, the old order once ended (and its path), the new."""

    new_id: str
    old: BrokerOrder
    seen: list[str]
    new: BrokerOrder


def _replace(
    session: VerifySession, order_id: str, change: ReplaceOrderRequest, shared_key: str
) -> _Replaced | Observed:
    """PATCH the order and wait for the old one to end; the new one is shared as `shared_key`.

    A refusal comes back as the check's FAIL.
    """
    answer = session.replace_raw(order_id, change)
    if isinstance(answer, BrokerAnswer):
        return failed(f"refused: {answer.describe()}")
    new_id = str(answer.get("id"))
    old, seen = session.wait_for(order_id, lambda o: o.is_terminal)
    new = session.gateway.get_order(new_id)
    session.shared[shared_key] = new
    return _Replaced(new_id, old, seen, new)


def replace_working_limit(session: VerifySession) -> Observed:
    """PATCH of a working limit: a new order at the new price; the old one ends replaced."""
    order = far_buy_limit(session)
    current, _ = session.wait_for(
        order.id,
        lambda o: o.status not in (OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW),
        5.0,
    )
    if current.status is not OrderStatus.NEW:
        raise Skip(f"the test order is {current.status.value}, not new: nothing working to replace")
    price = session.price("0.48")
    change = ReplaceOrderRequest(
        limit_price=float(price), client_order_id=session.client_order_id()
    )
    replaced = _replace(session, order.id, change, "far_buy")
    if isinstance(replaced, Observed):
        return replaced
    new_id, old, seen, new = replaced
    ok = (
        new_id != order.id
        and new.limit_price == price
        and new.replaces == order.id
        and new.is_active
        and old.status is OrderStatus.REPLACED
        and old.replaced_by == new_id
    )
    return verdict_of(
        ok,
        f"new order {'with a new id' if new_id != order.id else 'KEPT the old id'}, limit "
        f"{new.limit_price}, replaces {'the old id' if new.replaces == order.id else new.replaces}"
        f", {new.status.value}; old {_path(seen)}, replaced_by "
        f"{'the new id' if old.replaced_by == new_id else old.replaced_by}",
    )


def replace_refused_while_accepted(session: VerifySession) -> Observed:
    """PATCH of an order still accepted / pending_new is refused."""
    order = session.place(
        session.intent(OrderSide.BUY, OrderType.LIMIT, limit=session.price(NEVER_FILLS_BUY))
    )
    if order.status not in (OrderStatus.ACCEPTED, OrderStatus.PENDING_NEW):
        raise Skip(f"the order was already {order.status.value} when placed")
    answer = session.replace_raw(
        order.id,
        ReplaceOrderRequest(
            limit_price=float(session.price("0.49")), client_order_id=session.client_order_id()
        ),
    )
    if isinstance(answer, BrokerAnswer):
        refused = answer.status is not None and 400 <= answer.status < 500
        return verdict_of(refused, f"placed {order.status.value}; refused: {answer.describe()}")
    if session.market_open:
        raise Skip(
            "the order was routed (new) before the replace arrived, as it is within "
            "milliseconds while the market is open; run with the market closed to see this"
        )
    return failed(f"replaced while {order.status.value}: new order {answer.get('id')}")


# ---- with a position --------------------------------------------------------------------
def filled_bracket_legs(session: VerifySession) -> Observed:
    """After the entry fills, the take-profit works (new) and the stop-loss rests held."""
    parent = session.gateway.get_order(filled_bracket(session).id)
    take, stop = _legs(parent)
    listed = {order.id for order in session.gateway.get_open_orders()}
    shown = "listed in" if stop is not None and stop.id in listed else "hidden from"
    observed = (
        f"entry {parent.status.value}; take-profit {_status(take)}, stop-loss {_status(stop)}; "
        f"the stop leg is {shown} status=open"
    )
    ok = take is not None and stop is not None and take.is_active and stop.is_active
    documented = (_status(take), _status(stop)) == ("new", "held")
    note = None if documented else "active, though not the documented new/held pair"
    if shown == "hidden from":
        note = HIDDEN_LEGS_NOTE
    return verdict_of(ok, observed, note)


def replace_stop_leg_price(session: VerifySession) -> Observed:
    """PATCH of a filled bracket's stop leg price: a new stop leg, the old one replaced."""
    _, stop = _legs(session.gateway.get_order(filled_bracket(session).id))
    if stop is None:
        return failed("the filled bracket has no stop-loss leg")
    price = session.price("0.51")
    replaced = _replace(session, stop.id, ReplaceOrderRequest(stop_price=float(price)), "stop_leg")
    if isinstance(replaced, Observed):
        return replaced
    _, old, seen, new = replaced
    ok = old.status is OrderStatus.REPLACED and new.stop_price == price and new.is_active
    return verdict_of(
        ok, f"new stop leg at {new.stop_price}, {new.status.value}; old {_path(seen)}"
    )


def group_cancel_take_profit(session: VerifySession) -> Observed:
    """Cancelling a filled bracket's take-profit cancels its stop-loss too."""
    parent = session.gateway.get_order(filled_bracket(session).id)
    take, stop = _legs(parent)
    stop = session.shared.get("stop_leg") or stop
    if take is None or stop is None:
        return failed("the filled bracket lacks a leg")
    session.gateway.cancel_order(take.id)
    final, seen = session.wait_for(stop.id, lambda o: o.is_terminal)
    if not final.is_terminal:  # free the share for the next check
        session.gateway.cancel_order(stop.id)
        session.wait_for(stop.id, lambda o: o.is_terminal)
    return verdict_of(
        final.status is OrderStatus.CANCELED,
        f"take-profit cancelled; stop-loss {_path(seen)}"
        + ("" if final.is_terminal else " (still working after 10 s; cancelled it)"),
    )


def share_reservation(session: VerifySession) -> Observed:
    """A sell stop holds the share: a second sell is refused with the held quantity."""
    filled_bracket(session)
    session.place(
        session.intent(OrderSide.SELL, OrderType.STOP, stop=session.price(NEVER_FILLS_BUY))
    )
    answer = session.submit_raw(
        limit_request(session, SdkSide.SELL, session.price(NEVER_FILLS_SELL))
    )
    if not isinstance(answer, BrokerAnswer):
        return failed(f"a second sell of the held share was accepted ({answer.get('status')})")
    fields = answer.fields
    available, held = _decimal(fields.get("available")), _decimal(fields.get("held_for_orders"))
    ok = (
        answer.status == 403
        and answer.code == 40310000
        and "insufficient qty" in answer.message.lower()
        and (available, held) == (Decimal(0), Decimal(1))
        and answer.maps_to == "InsufficientQty"
    )
    return verdict_of(
        ok,
        f"{answer.describe()}; available {fields.get('available')}, held_for_orders "
        f"{fields.get('held_for_orders')}, existing_qty {fields.get('existing_qty')}",
    )


def _decimal(value: Any) -> Decimal | None:
    try:
        return Decimal(str(value)) if value is not None else None
    except ArithmeticError:
        return None


ORDER_CHECKS: tuple[Check, ...] = (
    Check(
        "bracket_legs_held",
        "An unfilled bracket's legs rest held",
        "take-profit and stop-loss nested under the entry (nested=true), both held",
        "a held stop leg counts as active protection; legs are mapped by parent and type",
        bracket_legs_held,
    ),
    Check(
        "held_legs_listed",
        "Held legs are listed in status=open (hidden is tolerated)",
        "the entry listed; its held legs listed, or found by id when hidden",
        "reconcile, auto-manage and flatten probe by id instead of trusting the listing",
        held_legs_listed,
    ),
    Check(
        "bracket_leg_qty_refused",
        "Only a bracket leg's price may be replaced",
        "PATCH of a stop leg's qty refused (4xx)",
        "resize of a bracket stop falls back to cancel-confirm-place",
        bracket_leg_qty_refused,
    ),
    Check(
        "group_cancel_entry",
        "Cancelling a bracket entry cancels its held legs",
        "entry and both legs canceled within 10 s (pending_cancel on the way is fine)",
        "a partly filled entry cancelled leaves its shares bare: the guard places a stop",
        group_cancel_entry,
    ),
    Check(
        "cancel_final_order",
        "Cancelling an order that already ended is refused, not an error",
        "422 on DELETE of a canceled order; the gateway reads it as already final",
        "exits and flatten treat 'already final' as success instead of retrying a cancel",
        cancel_final_order,
    ),
    Check(
        "replace_working_limit",
        "A replace makes a new order and marks the old one replaced",
        "new id at the new price (replaces = old id); old replaced (maybe via pending_replace)",
        "tighten via replace: the trade adopts the new id once the old one reads replaced",
        replace_working_limit,
        Needs.OPEN_MARKET,
    ),
    Check(
        "replace_refused_while_accepted",
        "A replace is refused while the order is accepted or pending_new",
        "4xx on PATCH of an order still accepted / pending_new",
        "tighten right after placing a stop: a refused replace falls back to cancel-and-place",
        replace_refused_while_accepted,
    ),
)

POSITION_CHECKS: tuple[Check, ...] = (
    Check(
        "filled_bracket_legs",
        "After the entry fills, the take-profit is new and the stop-loss rests held",
        "entry filled; take-profit new; stop-loss held (both active)",
        "a filled bracket's held stop leg counts as active protection",
        filled_bracket_legs,
        Needs.POSITION,
    ),
    Check(
        "replace_stop_leg_price",
        "A bracket stop leg's price can be replaced",
        "a new stop leg at the new price; the old leg replaced",
        "tighten via replace of the stop leg (else cancel-confirm-place, gap measured)",
        replace_stop_leg_price,
        Needs.POSITION,
    ),
    Check(
        "group_cancel_take_profit",
        "Cancelling the take-profit cancels the stop-loss too",
        "the stop-loss leg canceled within 10 s of cancelling the take-profit",
        "freeing shares by cancelling the take-profit kills the stop: protection is restored",
        group_cancel_take_profit,
        Needs.POSITION,
    ),
    Check(
        "share_reservation",
        "An open sell order holds the shares",
        "403 40310000 'insufficient qty available' with available 0, held_for_orders 1",
        "an exit needs the stop cancelled first, or an OCO that carries the stop",
        share_reservation,
        Needs.POSITION,
    ),
)
