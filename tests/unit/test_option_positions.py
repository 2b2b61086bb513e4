"""trading/options/positions.py: option legs held against the open option trades (pure)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from broker.option_positions import OPTION_POSITIONS_CALL
from ops import metrics
from trading.broker_models import OrderSide
from trading.ledger_records import TradeOrigin
from trading.options.adoption import RESTARTED_CLOSE, adoption_input, restart_input
from trading.options.chain import OptionRight, format_occ_symbol
from trading.options.condor_pairing import (
    MAX_TRADE_ID,
    AdoptableCondor,
    OptionPosition,
    find_condors,
)
from trading.options.positions import (
    OptionsPlan,
    capped_options,
    option_reconcile_plan,
    restartable,
)
from trading.options.records import OptionTradeRecord, max_loss_usd
from trading.options.trade_models import (
    MAX_CLIENT_ORDER_ID,
    OptionLeg,
    OptionTradeStatus,
    client_order_id,
    opening_legs,
)

NOW = datetime(2024, 3, 5, 15, 0, tzinfo=UTC)
TODAY = date(2024, 3, 5)
EXPIRY = date(2024, 3, 8)
HOUR_AGO = NOW - timedelta(hours=1)


def occ(strike: int | Decimal, right: OptionRight, expiry: date = EXPIRY, root: str = "SPY") -> str:
    return format_occ_symbol(root, expiry, right, Decimal(strike))


def leg(
    strike: int, right: OptionRight, qty: int, price: str = "1", **kw: object
) -> OptionPosition:
    return OptionPosition(
        symbol=occ(strike, right, **kw),  # type: ignore[arg-type]
        qty=Decimal(qty),
        avg_entry_price=Decimal(price),
        current_price=Decimal(price),
    )


def condor_legs(
    qty: int = 1, prices: tuple[str, str, str, str] = ("1", "3", "2.5", "0.8")
) -> list[OptionPosition]:
    """500/510p 530/535c: long put, short put, short call, long call."""
    return [
        leg(500, OptionRight.PUT, qty, prices[0]),
        leg(510, OptionRight.PUT, -qty, prices[1]),
        leg(530, OptionRight.CALL, -qty, prices[2]),
        leg(535, OptionRight.CALL, qty, prices[3]),
    ]


def row(
    trade_id: str,
    symbols: list[str],
    qty: int = 1,
    status: OptionTradeStatus = OptionTradeStatus.OPEN,
    at: datetime = HOUR_AGO,
) -> OptionTradeRecord:
    sides = [OrderSide.BUY, OrderSide.SELL, OrderSide.SELL, OrderSide.BUY]
    return OptionTradeRecord(
        id=trade_id,
        underlying="SPY",
        strategy="iron_condor",
        origin=TradeOrigin.INTERNAL,
        status=status,
        expiry=EXPIRY,
        qty=qty,
        legs=[OptionLeg(symbol=s, side=side) for s, side in zip(symbols, sides, strict=True)],
        width=Decimal(10),
        credit=Decimal("3.7"),
        max_loss=Decimal(630),
        workflow_id=f"option-trade-{trade_id}",
        status_at=at,
        created_at=at,
        updated_at=at,
    )


def plan(positions: list[OptionPosition], rows: list[OptionTradeRecord]) -> OptionsPlan:
    return option_reconcile_plan(positions, rows, NOW, TODAY, timedelta(minutes=2))


# --- adoption ------------------------------------------------------------------------------


def test_an_unclaimed_condor_is_adopted_with_the_credit_it_was_opened_for() -> None:
    result = plan(condor_legs(qty=2), [])
    (condor,) = result.adoptions
    assert condor.credit == Decimal("3") + Decimal("2.5") - Decimal("1") - Decimal("0.8")
    assert (condor.qty, condor.width, condor.dte) == (2, Decimal(10), 3)
    assert [p.symbol for p in condor.legs] == [p.symbol for p in condor_legs()]
    assert result.unmanaged == [] and result.ghosts == [] and result.mismatches == []
    assert condor.trade_id.startswith("ic-spy-240308-") and len(condor.trade_id) <= MAX_TRADE_ID


def test_the_adoption_input_starts_open_external_at_the_credit() -> None:
    (condor,) = plan(condor_legs(), []).adoptions
    trade = adoption_input(condor)
    spec, state = trade.spec, trade.state
    assert state is not None and state.status is OptionTradeStatus.OPEN
    assert state.credit == condor.credit == spec.limit_credit
    assert spec.origin is TradeOrigin.EXTERNAL and spec.qty == condor.qty
    assert [x.symbol for x in opening_legs(spec.plan)] == [p.symbol for p in condor.legs]
    assert [x.side for x in opening_legs(spec.plan)] == [
        OrderSide.BUY,
        OrderSide.SELL,
        OrderSide.SELL,
        OrderSide.BUY,
    ]
    # The ledger's max loss is the held structure's: (width - credit) x100 x qty.
    assert max_loss_usd(spec, state.credit) == (Decimal(10) - condor.credit) * 100
    assert len(client_order_id(spec.trade_id, "close", 99)) <= MAX_CLIENT_ORDER_ID


def test_a_condor_opened_for_a_debit_is_not_adopted_and_its_legs_are_named() -> None:
    legs = condor_legs(prices=("3", "1", "1", "3"))
    result = plan(legs, [])
    assert result.adoptions == []
    assert sorted(u.symbol for u in result.unmanaged) == sorted(p.symbol for p in legs)
    assert all("debit" in u.reason for u in result.unmanaged)


def test_legs_that_form_no_condor_are_unmanaged() -> None:
    lonely = [
        leg(510, OptionRight.PUT, -1),  # a short put spread without a call side
        leg(500, OptionRight.PUT, 1),
        leg(530, OptionRight.CALL, -2),  # sizes differ: no condor
        leg(535, OptionRight.CALL, 1),
        OptionPosition(symbol="NOTANOPTION", qty=Decimal(1), avg_entry_price=Decimal(1)),
    ]
    result = plan(lonely, [])
    assert result.adoptions == []
    assert sorted(u.symbol for u in result.unmanaged) == sorted(p.symbol for p in lonely)


def test_shorts_must_lie_inside_the_wings() -> None:
    # Long put above the short put (a debit put spread), calls fine: no condor.
    legs = [
        leg(515, OptionRight.PUT, 1),
        leg(510, OptionRight.PUT, -1, "3"),
        leg(530, OptionRight.CALL, -1, "3"),
        leg(535, OptionRight.CALL, 1),
    ]
    assert plan(legs, []).adoptions == []


def test_two_condors_in_one_expiry_are_both_found() -> None:
    near = condor_legs()
    far = [
        leg(480, OptionRight.PUT, 1, "0.5"),
        leg(490, OptionRight.PUT, -1, "1.5"),
        leg(550, OptionRight.CALL, -1, "1.2"),
        leg(560, OptionRight.CALL, 1, "0.4"),
    ]
    found, left = find_condors([*far, *near], TODAY)
    assert left == []
    assert sorted(c.strikes for c in found) == ["480/490p 550/560c", "500/510p 530/535c"]


def test_legs_a_ledger_row_claims_are_not_adopted() -> None:
    legs = condor_legs()
    result = plan(legs, [row("mine", [p.symbol for p in legs])])
    assert result.adoptions == [] and result.unmanaged == []
    assert result.ghosts == [] and result.mismatches == []


# --- ghosts and mismatches -----------------------------------------------------------------


def test_an_open_row_with_no_leg_held_is_a_ghost_once_past_the_grace() -> None:
    symbols = [p.symbol for p in condor_legs()]
    old = row("old", symbols)
    fresh = row("fresh", symbols, status=OptionTradeStatus.PENDING_ENTRY, at=NOW)
    result = plan([], [old, fresh])
    assert [g.trade_id for g in result.ghosts] == ["old"]
    assert result.ghosts[0].legs == symbols


def test_a_row_held_at_another_size_is_a_mismatch_with_the_numbers() -> None:
    legs = condor_legs(qty=1)
    result = plan(legs, [row("big", [p.symbol for p in legs], qty=2)])
    (mismatch,) = result.mismatches
    assert mismatch.trade_id == "big" and result.ghosts == [] and result.adoptions == []
    assert [(x.held, x.expected) for x in mismatch.legs] == [
        (Decimal(1), Decimal(2)),
        (Decimal(-1), Decimal(-2)),
        (Decimal(-1), Decimal(-2)),
        (Decimal(1), Decimal(2)),
    ]
    assert "held 1 expected 2" in mismatch.summary


def test_a_row_with_some_legs_gone_is_a_mismatch_not_a_ghost() -> None:
    legs = condor_legs()
    result = plan(legs[:2], [row("half", [p.symbol for p in legs])])
    assert result.ghosts == []
    (mismatch,) = result.mismatches
    assert [x.held for x in mismatch.legs] == [Decimal(1), Decimal(-1), 0, 0]


def closed(trade: OptionTradeRecord, at: datetime) -> OptionTradeRecord:
    """The row CLOSED at `at`."""
    return trade.model_copy(
        update={"status": OptionTradeStatus.CLOSED, "closed_at": at, "status_at": at}
    )


def test_rows_closed_before_the_legs_were_read_are_not_looked_at() -> None:
    legs = condor_legs()
    done = closed(row("done", [p.symbol for p in legs]), HOUR_AGO)
    result = plan(legs, [done])
    assert result.ghosts == [] and len(result.adoptions) == 1 and result.checked_trades == 0


def test_a_row_closed_after_the_legs_were_read_claims_them_and_is_nothing_else() -> None:
    """Closed between the legs read and the rows read: its legs are in the read but no open
    row claims them. They are not adopted (a phantom trade on legs that are gone) nor named
    unmanaged; the row is no ghost, mismatch or held trade."""
    legs = condor_legs()
    symbols = [p.symbol for p in legs]
    for at in (NOW, NOW + timedelta(seconds=5)):
        result = plan(legs, [closed(row("just-closed", symbols), at)])
        assert result.adoptions == [] and result.unmanaged == []
        assert result.ghosts == [] and result.mismatches == [] and result.held == []
        assert (result.checked_trades, result.checked_positions) == (0, 4)
    # Its legs gone from the read too: still nothing (a closed row is never a ghost).
    assert plan([], [closed(row("just-closed", symbols), NOW)]) == OptionsPlan()


def test_a_just_closed_row_claims_only_its_own_legs_and_adds_nothing_to_open_rows() -> None:
    legs = condor_legs()
    symbols = [p.symbol for p in legs]
    other = [
        leg(480, OptionRight.PUT, 1, "0.5"),
        leg(490, OptionRight.PUT, -1, "1.5"),
        leg(550, OptionRight.CALL, -1, "1.2"),
        leg(560, OptionRight.CALL, 1, "0.4"),
    ]
    result = plan([*legs, *other], [closed(row("just-closed", symbols), NOW)])
    (condor,) = result.adoptions
    assert condor.strikes == "480/490p 550/560c" and result.unmanaged == []
    # An open row on the same legs expects its own size only: held as it says, no mismatch.
    result = plan(legs, [closed(row("just-closed", symbols), NOW), row("open", symbols)])
    assert result.mismatches == [] and result.adoptions == [] and result.ghosts == []
    assert [h.trade_id for h in result.held] == ["open"] and result.checked_trades == 1


def test_capped_keeps_adoptions_first_and_counts_the_rest() -> None:
    ghost_rows = [
        row("g1", [occ(400 + i, OptionRight.PUT) for i in range(4)]),
        row("g2", [occ(300 + i, OptionRight.PUT) for i in range(4)]),
    ]
    full = plan(condor_legs(), ghost_rows)
    assert full.actions == 3
    capped = capped_options(full, 2)
    assert len(capped.adoptions) == 1 and len(capped.ghosts) == 1 and capped.deferred == 1
    assert capped_options(full, None) == full
    assert capped_options(full, 0).deferred == 3


def test_the_option_positions_read_counts_on_the_positions_route() -> None:
    # Before it was declared, the read counted under route "other".
    routes = metrics.BROKER_ROUTES.get(OPTION_POSITIONS_CALL)
    assert routes == ("GET /v2/positions",)
    labels = {"route": routes[0], "outcome": "ok"}
    assert metrics.bounded("dt_broker_calls_total", labels) == labels


# --- held trades and restarts --------------------------------------------------------------


def test_a_row_whose_legs_are_all_held_is_a_held_trade_at_its_own_credit() -> None:
    legs = condor_legs(qty=2)
    external = row("ext", [p.symbol for p in legs], qty=2).model_copy(
        update={"origin": TradeOrigin.EXTERNAL}
    )
    result = plan(legs, [external])
    assert result.ghosts == [] and result.mismatches == [] and result.adoptions == []
    (held,) = result.held
    assert (held.trade_id, held.status, held.origin) == (
        "ext",
        OptionTradeStatus.OPEN,
        external.origin,
    )
    condor = held.condor
    assert condor.trade_id == "ext" and condor.qty == 2 and condor.credit == Decimal("3.7")
    assert [p.symbol for p in condor.legs] == [p.symbol for p in legs]
    assert [p.qty for p in condor.legs] == [2, -2, -2, 2]
    assert (condor.width, condor.dte) == (Decimal(10), 3)


def test_ghosts_mismatches_and_fresh_rows_are_not_held_trades() -> None:
    legs = condor_legs()
    symbols = [p.symbol for p in legs]
    rows = [
        row("ghost", [occ(400 + i, OptionRight.PUT) for i in range(4)]),
        row("big", symbols, qty=2),  # held at one: a mismatch
        row("fresh", symbols, at=NOW),  # within the grace: not looked at
    ]
    assert plan(legs, rows).held == []
    assert plan(legs[:3], [row("half", symbols)]).held == []


def test_an_entry_filled_unseen_is_held_at_the_credit_of_the_entry_prices() -> None:
    legs = condor_legs()
    pending = row("p", [p.symbol for p in legs], status=OptionTradeStatus.PENDING_ENTRY)
    pending = pending.model_copy(update={"credit": None})
    (held,) = plan(legs, [pending]).held
    assert held.status is OptionTradeStatus.PENDING_ENTRY
    assert held.condor.credit == Decimal("3") + Decimal("2.5") - Decimal("1") - Decimal("0.8")
    trade = restart_input(held, "terminated")
    assert trade.state is not None and trade.state.status is OptionTradeStatus.OPEN
    assert trade.state.credit == trade.spec.limit_credit == held.condor.credit


def test_a_row_that_is_no_iron_condor_is_not_a_held_trade() -> None:
    # Held exactly as the row says, but four puts: no condor to restart it as.
    legs = [leg(k, OptionRight.PUT, q) for k, q in ((500, 1), (510, -1), (520, -1), (530, 1))]
    result = plan(legs, [row("puts", [p.symbol for p in legs])])
    assert result.held == [] and result.mismatches == [] and result.ghosts == []


def test_only_trades_whose_workflow_ended_without_closing_them_are_restarted() -> None:
    legs = condor_legs()
    rows = [row(name, [p.symbol for p in legs]) for name in "abcdefgh"]
    held = plan([x.model_copy(update={"qty": x.qty * 8}) for x in legs], rows).held
    assert len(held) == 8
    statuses = {
        "a": "terminated",
        "b": "failed",
        "c": "timed_out",
        "d": "canceled",
        "e": "missing",
        "f": "running",
        "g": "completed",  # its final row was written: nothing to repair
    }  # "h": not known - left alone
    assert [h.trade_id for h in restartable(held, statuses)] == ["a", "b", "c", "d", "e"]


def test_the_restart_input_is_the_row_open_at_its_credit_with_its_origin() -> None:
    legs = condor_legs()
    (held,) = plan(legs, [row("ic-1", [p.symbol for p in legs])]).held
    trade = restart_input(held, "terminated")
    spec, state = trade.spec, trade.state
    assert state is not None and state.status is OptionTradeStatus.OPEN
    assert spec.trade_id == "ic-1" and spec.origin is TradeOrigin.INTERNAL and spec.qty == 1
    assert state.credit == spec.limit_credit == Decimal("3.7")
    assert [(x.symbol, x.side) for x in opening_legs(spec.plan)] == [
        (p.symbol, OrderSide.BUY if p.qty > 0 else OrderSide.SELL) for p in legs
    ]
    assert max_loss_usd(spec, state.credit) == (Decimal(10) - Decimal("3.7")) * 100
    assert "terminated" in state.note and "restarted" in spec.plan.detail
    assert state.exit_reason is None


def test_a_closing_row_resumes_closing_under_its_exit_reason() -> None:
    legs = condor_legs()
    closing = row("c", [p.symbol for p in legs], status=OptionTradeStatus.CLOSING)
    (held,) = plan(legs, [closing.model_copy(update={"exit_reason": "stop_loss"})]).held
    state = restart_input(held, "failed").state
    assert state is not None and state.status is OptionTradeStatus.CLOSING
    assert state.exit_reason == "stop_loss"
    (bare,) = plan(legs, [closing]).held
    bare_state = restart_input(bare, "failed").state
    assert bare_state is not None and bare_state.exit_reason == RESTARTED_CLOSE


def test_restarted_findings_name_only_the_restarted_trades() -> None:
    legs = condor_legs()
    options = plan(legs, [row("r1", [p.symbol for p in legs])])
    assert options.restarted_findings([]) == []
    ((action, underlying, trade_id, detail),) = options.restarted_findings(["r1", "other"])
    assert (action, underlying, trade_id) == ("restart option", "SPY", "r1")
    assert "500/510p 530/535c x1" in detail and "3.7" in detail


# --- properties ----------------------------------------------------------------------------

strikes = st.lists(
    st.integers(min_value=1, max_value=400).map(lambda n: Decimal(n) * Decimal("2.5")),
    min_size=4,
    max_size=4,
    unique=True,
).map(sorted)
prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal(20), places=2)


@settings(max_examples=200, deadline=None)
@given(strikes, st.integers(min_value=1, max_value=50), st.lists(prices, min_size=4, max_size=4))
def test_any_credit_condor_is_adopted_the_same_whatever_the_order(
    k: list[Decimal], qty: int, p: list[Decimal]
) -> None:
    rights = [OptionRight.PUT, OptionRight.PUT, OptionRight.CALL, OptionRight.CALL]
    signs = [1, -1, -1, 1]
    legs = [
        OptionPosition(
            symbol=format_occ_symbol("QQQ", EXPIRY, r, s),
            qty=Decimal(sign * qty),
            avg_entry_price=price,
        )
        for r, s, sign, price in zip(rights, k, signs, p, strict=True)
    ]
    credit = p[1] + p[2] - p[0] - p[3]
    forward = plan(legs, [])
    backward = plan(list(reversed(legs)), [])
    assert forward == backward
    if credit <= 0:
        assert forward.adoptions == [] and len(forward.unmanaged) == 4
        return
    (condor,) = forward.adoptions
    assert isinstance(condor, AdoptableCondor)
    assert condor.credit == credit and condor.qty == qty
    assert condor.width == max(k[1] - k[0], k[3] - k[2])
    assert len(condor.trade_id) <= MAX_TRADE_ID
    # Deterministic: the same legs give the same id; another size gives another.
    bigger = [x.model_copy(update={"qty": x.qty * 2}) for x in legs]
    (other,) = plan(bigger, []).adoptions
    assert other.trade_id != condor.trade_id


held_leg = st.builds(
    lambda strike, right, qty, price: OptionPosition(
        symbol=format_occ_symbol("IWM", EXPIRY, right, Decimal(strike)),
        qty=Decimal(qty),
        avg_entry_price=price,
    ),
    st.integers(min_value=100, max_value=130),
    st.sampled_from(list(OptionRight)),
    st.integers(min_value=-3, max_value=3).filter(bool),
    prices,
)


@settings(max_examples=300, deadline=None)
@given(st.lists(held_leg, max_size=12, unique_by=lambda x: x.symbol), st.data())
def test_every_unclaimed_leg_is_adopted_or_named_exactly_once(
    legs: list[OptionPosition], data: st.DataObject
) -> None:
    claimed = data.draw(
        st.sets(st.sampled_from([x.symbol for x in legs])) if legs else st.just(set())
    )
    rows = [row(f"r{i}", [s, s, s, s]) for i, s in enumerate(sorted(claimed))]
    result = plan(legs, rows)
    adopted = [p.symbol for c in result.adoptions for p in c.legs]
    named = [u.symbol for u in result.unmanaged]
    unclaimed = sorted(x.symbol for x in legs if x.symbol not in claimed)
    assert sorted(adopted + named) == unclaimed
    for condor in result.adoptions:
        lp, sp, sc, lc = (x.symbol for x in condor.legs)
        assert condor.long_put.qty > 0 > condor.short_put.qty
        assert condor.long_call.qty > 0 > condor.short_call.qty
        assert len({abs(x.qty) for x in condor.legs}) == 1
        assert condor.credit > 0
        strikes_ = [Decimal(s[-8:]) for s in (lp, sp, sc, lc)]
        assert strikes_ == sorted(strikes_) and len(set(strikes_)) == 4
    # Every row claims only its symbol: one held is fine or mismatched, none held a ghost.
    assert len(result.ghosts) + len(result.mismatches) <= len(rows)
    assert result.held == []  # [s, s, s, s] is no iron condor: nothing to restart it as


@settings(max_examples=200, deadline=None)
@given(st.lists(held_leg, max_size=12, unique_by=lambda x: x.symbol), st.data())
def test_rows_closed_since_the_read_claim_their_legs_and_earlier_closes_do_not(
    legs: list[OptionPosition], data: st.DataObject
) -> None:
    """Each row claims one held symbol; it is open, or closed some seconds before or after the
    run's now: the open and the just-closed claim their legs, the earlier closes do not."""
    symbols = sorted(x.symbol for x in legs)
    rows: list[OptionTradeRecord] = []
    claiming: set[str] = set()
    for i, symbol in enumerate(symbols):
        closed_at = data.draw(
            st.none()
            | st.integers(min_value=-600, max_value=600).map(lambda s: NOW + timedelta(seconds=s))
        )
        base = row(f"r{i}", [symbol] * 4)
        rows.append(base if closed_at is None else closed(base, closed_at))
        if closed_at is None or closed_at >= NOW:
            claiming.add(symbol)
    result = plan(legs, rows)
    adopted = [p.symbol for c in result.adoptions for p in c.legs]
    named = [u.symbol for u in result.unmanaged]
    assert sorted(adopted + named) == sorted(set(symbols) - claiming)
    open_ids = {r.id for r in rows if r.is_open}
    assert {g.trade_id for g in result.ghosts} <= open_ids
    assert {m.trade_id for m in result.mismatches} <= open_ids
    assert result.checked_trades == len(open_ids)
