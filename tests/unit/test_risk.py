"""The risk engine: sizing, heat, daily loss, allocation, order caps, system guard, add-ons."""

from __future__ import annotations

from decimal import ROUND_FLOOR, Decimal

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydantic import ValidationError

from trading.risk import (
    MAX_SLICES,
    AccountView,
    EntryProposal,
    GuardInput,
    HeldPosition,
    OpenRisk,
    RiskLimits,
    RiskReason,
    addon_decision,
    check_entry,
    daily_loss_breach,
    drawdown,
    losing_streak,
    portfolio_heat,
    risk_budget,
    size_for_risk,
    slice_qty,
    system_guard,
)
from trading.ticks import is_on_tick

D = Decimal
EQUITY = D(10_000)
ACCOUNT = AccountView(equity=EQUITY, last_equity=EQUITY, buying_power=D(40_000))
# Loose allocation so the risk rules, not the allocation cap, bind unless a test says so.
WIDE = RiskLimits(max_allocation_pct=D("0.9"))

prices = st.decimals(min_value=D("1.00"), max_value=D(2_000), places=2)
equities = st.decimals(min_value=D(100), max_value=D(10_000_000), places=2)


def proposal(entry: str = "50", stop: str | None = "49", symbol: str = "AAPL") -> EntryProposal:
    return EntryProposal(symbol=symbol, entry=D(entry), stop=None if stop is None else D(stop))


# --- limits ---------------------------------------------------------------------------------


def test_defaults_are_the_designed_ones() -> None:
    limits = RiskLimits()
    assert limits.risk_per_trade_pct == D("0.005") and limits.risk_per_trade_usd is None
    assert limits.max_heat_pct == D("0.06") and limits.daily_loss_limit_pct == D("0.03")
    assert limits.max_allocation_pct == D("0.05") and limits.max_drawdown_pct == D("0.10")
    assert limits.max_consecutive_losses == 3 and limits.addon_min_confidence == 5
    assert not limits.split_oversized and not limits.addons_enabled


@pytest.mark.parametrize(
    "bad",
    [
        {"risk_per_trade_pct": D(0)},
        {"risk_per_trade_pct": D(1)},
        {"max_heat_pct": D("1.5")},
        {"daily_loss_limit_pct": D(0)},
        {"default_stop_distance": D(1)},
        {"max_allocation_pct": D(-1)},
        {"max_drawdown_pct": D(1)},
        {"risk_per_trade_usd": D(0)},
        {"daily_loss_limit_usd": D(-5)},
        {"max_order_notional": D(0)},
        {"max_order_qty": D(0)},
        {"max_order_qty": D("2.5")},  # whole shares
        {"max_consecutive_losses": 0},
        {"addon_min_confidence": 0},
        {"addon_min_confidence": 6},
        # contradictory: a full-size trade could never pass the heat cap
        {"risk_per_trade_pct": D("0.05"), "max_heat_pct": D("0.04")},
    ],
)
def test_invalid_limits_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        RiskLimits.model_validate(bad)


def test_the_heat_check_is_about_the_budget_in_use() -> None:
    # dollars win over the pct, so the pct no longer contradicts the heat cap
    limits = RiskLimits(
        risk_per_trade_pct=D("0.5"), max_heat_pct=D("0.1"), risk_per_trade_usd=D(50)
    )
    assert risk_budget(EQUITY, limits) == D(50)


# --- sizing ---------------------------------------------------------------------------------


def test_size_from_the_pct_of_equity() -> None:
    # 0.5% of 10,000 = 50 dollars; 1.50 a share at risk -> 33.33 -> 33 shares
    assert size_for_risk(D(50), D("48.50"), EQUITY, RiskLimits()) == D(33)


def test_dollars_win_over_the_pct() -> None:
    limits = RiskLimits(risk_per_trade_usd=D(120))
    assert size_for_risk(D(50), D(48), EQUITY, limits) == D(60)
    assert size_for_risk(D(50), D(48), D(1_000_000), limits) == D(60)  # equity does not matter


def test_sizes_floor_to_whole_shares_and_zero_when_one_share_is_too_much() -> None:
    assert size_for_risk(D(100), D("99.01"), EQUITY, RiskLimits()) == D(50)  # 50.5 -> 50
    assert size_for_risk(D(1_000), D(900), EQUITY, RiskLimits()) == D(0)  # 100 > 50
    assert size_for_risk(D(50), D(50), EQUITY, RiskLimits()) == D(0)  # no distance: no size
    assert size_for_risk(D(50), D(51), EQUITY, RiskLimits()) == D(0)
    assert size_for_risk(D(50), D(49), D(0), RiskLimits()) == D(0)  # no equity


def test_no_stop_takes_the_default_distance_on_the_tick_grid() -> None:
    # 5% below 33.33 is 31.6635 -> 31.66 (rounded down, away from the market)
    verdict = check_entry(proposal("33.33", None), ACCOUNT, [], WIDE, False)
    assert verdict.approved and verdict.stop == D("31.66") and is_on_tick(verdict.stop)
    assert verdict.qty == size_for_risk(D("33.33"), None, EQUITY, WIDE) == D(29)


@given(prices, st.decimals(min_value=D("0.001"), max_value=D("0.5"), places=3), equities)
def test_sizing_never_risks_more_than_the_budget(
    entry: Decimal, distance: Decimal, equity: Decimal
) -> None:
    stop = (entry * (1 - distance)).quantize(D("0.01"))
    assume(D(0) < stop < entry)
    limits = RiskLimits()
    qty = size_for_risk(entry, stop, equity, limits)
    budget = risk_budget(equity, limits)
    assert qty == qty.to_integral_value() and qty >= 0
    assert qty * (entry - stop) <= budget < (qty + 1) * (entry - stop)


@given(prices, equities, st.decimals(min_value=D(1), max_value=D(5_000), places=2))
def test_dollar_budget_is_never_exceeded(entry: Decimal, equity: Decimal, usd: Decimal) -> None:
    limits = RiskLimits(risk_per_trade_usd=usd)
    qty = size_for_risk(entry, None, equity, limits)
    verdict = check_entry(
        EntryProposal(symbol="X", entry=entry),
        AccountView(equity=equity, last_equity=equity, buying_power=equity * 4),
        [],
        limits,
        False,
    )
    stop = verdict.stop
    assert stop is not None and stop < entry
    assert qty * (entry - stop) <= usd
    if verdict.approved:
        assert verdict.risk <= usd and verdict.qty <= qty


# --- heat -----------------------------------------------------------------------------------


def test_heat_sums_each_trade_to_its_stop() -> None:
    open_risks = [
        OpenRisk(symbol="AAPL", qty=D(10), price=D(100), stop=D(95)),  # 50
        OpenRisk(symbol="MSFT", qty=D(4), price=D(50), stop=None),  # no stop: 200, all of it
        OpenRisk(symbol="TSLA", qty=D(5), price=D(90), stop=D(92)),  # stop above: 0 at risk
        OpenRisk(symbol="SPY", qty=D(-3), price=D(100), stop=D(104)),  # short: 12
    ]
    assert [r.risk for r in open_risks] == [D(50), D(200), D(0), D(12)]
    assert portfolio_heat(open_risks) == D(262)
    assert portfolio_heat([]) == D(0)


def test_the_heat_cap_refuses_a_second_entry() -> None:
    limits = RiskLimits(risk_per_trade_pct=D("0.02"), max_heat_pct=D("0.03"), **_wide())
    first = check_entry(proposal("50", "48"), ACCOUNT, [], limits, False)
    assert first.approved and first.qty == D(100) and first.risk == D(200)
    assert first.heat_after == D(200)
    held = [OpenRisk(symbol="AAPL", qty=first.qty, price=D(50), stop=first.stop)]
    second = check_entry(proposal("25", "24", "MSFT"), ACCOUNT, held, limits, False)
    assert not second.approved and second.reason is RiskReason.HEAT_CAP
    assert second.detail == "heat=200.00 new=200.00 cap=300.00 (3% of 10000)"
    # a smaller second trade fits under the cap
    small = RiskLimits(risk_per_trade_usd=D(100), max_heat_pct=D("0.03"), **_wide())
    third = check_entry(proposal("25", "24", "MSFT"), ACCOUNT, held, small, False)
    assert third.approved and third.heat_after == D(300)


def test_a_position_without_a_stop_counts_whole_in_the_heat() -> None:
    held = [OpenRisk(symbol="MSFT", qty=D(12), price=D(50), stop=None)]  # 600 = the 6% cap
    verdict = check_entry(proposal(), ACCOUNT, held, WIDE, False)
    assert verdict.reason is RiskReason.HEAT_CAP and "heat=600.00" in verdict.detail


def _wide() -> dict[str, Decimal]:
    return {"max_allocation_pct": D("0.9")}


# --- daily loss -----------------------------------------------------------------------------


def _account(equity: str, last: str = "10000") -> AccountView:
    return AccountView(equity=D(equity), last_equity=D(last), buying_power=D(40_000))


def test_the_dollar_daily_loss_limit_at_the_boundary() -> None:
    limits = RiskLimits(daily_loss_limit_usd=D(500), daily_loss_limit_pct=None)
    assert daily_loss_breach(_account("9500.01"), limits) is None
    assert daily_loss_breach(_account("9500"), limits) == "daily loss 500 reached the limit 500"
    assert daily_loss_breach(_account("12000"), limits) is None


def test_the_pct_daily_loss_limit_at_the_boundary() -> None:
    limits = RiskLimits()  # 3% of the previous close
    assert daily_loss_breach(_account("9700.01"), limits) is None
    detail = daily_loss_breach(_account("9700"), limits)
    assert detail == "daily loss 300 reached the limit 3% of 10000 (300.00)"
    assert daily_loss_breach(_account("9000", "0"), limits) is None  # no close to compare


def test_either_daily_limit_breaches_and_none_means_no_check() -> None:
    both = RiskLimits(daily_loss_limit_usd=D(100))
    assert daily_loss_breach(_account("9900"), both) is not None  # dollars first
    off = RiskLimits(daily_loss_limit_pct=None)
    assert daily_loss_breach(_account("1"), off) is None


def test_a_breached_day_refuses_entries() -> None:
    verdict = check_entry(proposal(), _account("9650"), [], WIDE, False)
    assert verdict.reason is RiskReason.DAILY_LOSS_LIMIT and "350" in verdict.detail


# --- allocation and buying power ------------------------------------------------------------


def test_the_allocation_cap_cuts_the_size_to_fit() -> None:
    # risk sizing says 50 shares of 50 (2,500); 5% of 10,000 is 500 -> 10 shares
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], RiskLimits(), False)
    assert verdict.approved and verdict.qty == D(10) and verdict.risk == D(10)
    assert "allocation cap 500.00" in verdict.detail


def test_the_allocation_cap_counts_what_is_held_in_the_symbol() -> None:
    held = [OpenRisk(symbol="AAPL", qty=D(8), price=D(50), stop=D(49))]  # 400 of 500
    verdict = check_entry(proposal("50", "49"), ACCOUNT, held, RiskLimits(), False)
    assert verdict.approved and verdict.qty == D(2)
    other = [OpenRisk(symbol="MSFT", qty=D(8), price=D(50), stop=D(49))]
    assert check_entry(proposal("50", "49"), ACCOUNT, other, RiskLimits(), False).qty == D(10)


def test_the_allocation_cap_refuses_when_not_one_share_fits() -> None:
    verdict = check_entry(proposal("600", "599"), ACCOUNT, [], RiskLimits(), False)
    assert not verdict.approved and verdict.reason is RiskReason.MAX_ALLOCATION
    assert "cap=500.00 (5% of 10000)" in verdict.detail


def test_buying_power_refuses_what_the_account_cannot_pay() -> None:
    poor = AccountView(equity=EQUITY, last_equity=EQUITY, buying_power=D(1_000))
    verdict = check_entry(proposal("50", "49"), poor, [], WIDE, False)
    assert verdict.reason is RiskReason.INSUFFICIENT_BUYING_POWER
    assert verdict.detail == "cost=2500.00 buying_power=1000.00 (qty=50 entry=50)"


# --- order caps -----------------------------------------------------------------------------


def test_an_order_above_the_qty_cap_is_refused_unless_splitting() -> None:
    refuse = RiskLimits(max_order_qty=D(20), **_wide())
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], refuse, False)
    assert verdict.reason is RiskReason.FREEZE_QTY and verdict.detail == "qty=50 max_order_qty=20"
    split = RiskLimits(max_order_qty=D(20), split_oversized=True, **_wide())
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], split, False)
    assert verdict.approved and verdict.slices == [D(17), D(17), D(16)] and verdict.qty == D(50)


def test_an_order_above_the_notional_cap_is_refused_unless_splitting() -> None:
    refuse = RiskLimits(max_order_notional=D(1_000), **_wide())
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], refuse, False)
    assert verdict.reason is RiskReason.FREEZE_NOTIONAL
    assert verdict.detail.startswith("notional=2500.00 max_order_notional=1000.00")
    split = RiskLimits(max_order_notional=D(1_000), split_oversized=True, **_wide())
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], split, False)
    assert verdict.approved and verdict.slices == [D(17), D(17), D(16)]


def test_a_share_above_the_notional_cap_cannot_be_split() -> None:
    limits = RiskLimits(max_order_notional=D(40), split_oversized=True, **_wide())
    assert slice_qty(D(5), D(50), limits) == []
    verdict = check_entry(proposal("50", "49"), ACCOUNT, [], limits, False)
    assert verdict.reason is RiskReason.FREEZE_NOTIONAL and "cannot be split" in verdict.detail


def test_slicing_within_the_caps_is_one_order_and_too_many_slices_refuse() -> None:
    limits = RiskLimits(max_order_qty=D(1), split_oversized=True)
    assert slice_qty(D(1), D(10), limits) == [D(1)]
    assert len(slice_qty(D(MAX_SLICES), D(10), limits)) == MAX_SLICES
    assert slice_qty(D(MAX_SLICES + 1), D(10), limits) == []
    with pytest.raises(ValueError):
        slice_qty(D("2.5"), D(10), limits)


@given(
    st.integers(min_value=1, max_value=5_000),
    prices,
    st.one_of(st.none(), st.integers(min_value=1, max_value=500)),
    st.one_of(st.none(), st.decimals(min_value=D(1), max_value=D(200_000), places=2)),
)
def test_slices_sum_to_the_qty_and_each_fits_both_caps(
    qty: int, price: Decimal, cap_qty: int | None, cap_notional: Decimal | None
) -> None:
    limits = RiskLimits(
        max_order_qty=None if cap_qty is None else D(cap_qty),
        max_order_notional=cap_notional,
        split_oversized=True,
    )
    slices = slice_qty(D(qty), price, limits)
    per_order = min(
        D(qty) if cap_qty is None else D(cap_qty),
        D(qty)
        if cap_notional is None
        else (cap_notional / price).to_integral_value(rounding=ROUND_FLOOR),
    )
    if per_order < 1 or -(-qty // int(per_order)) > MAX_SLICES:
        assert slices == []
        return
    assert sum(slices) == qty
    assert max(slices) - min(slices) <= 1  # as equal as possible
    for size in slices:
        assert size >= 1 and size == size.to_integral_value()
        assert cap_qty is None or size <= cap_qty
        assert cap_notional is None or size * price <= cap_notional
    assert len(slices) == -(-qty // int(per_order))  # no more orders than needed


# --- order of checks and an approved entry --------------------------------------------------


def test_an_invalid_stop_is_refused_first() -> None:
    above = check_entry(proposal("50", "50"), _account("1"), [], WIDE, True)
    assert above.reason is RiskReason.INVALID_STOP and "not below entry=50" in above.detail
    zero = check_entry(proposal("50", "0"), ACCOUNT, [], WIDE, False)
    assert zero.reason is RiskReason.INVALID_STOP


def test_a_symbol_signalled_today_comes_before_the_daily_loss() -> None:
    verdict = check_entry(proposal(), _account("1"), [], WIDE, True)
    assert verdict.reason is RiskReason.SIGNAL_ALREADY_TODAY and "AAPL" in verdict.detail


def test_the_daily_loss_comes_before_sizing() -> None:
    verdict = check_entry(proposal("1000", "900"), _account("9000"), [], WIDE, False)
    assert verdict.reason is RiskReason.DAILY_LOSS_LIMIT


def test_a_stop_too_far_for_one_share_is_risk_too_small() -> None:
    verdict = check_entry(proposal("1000", "900"), ACCOUNT, [], WIDE, False)
    assert verdict.reason is RiskReason.RISK_TOO_SMALL
    assert verdict.detail.startswith("budget=50.00 per_share=100.00")


def test_an_approved_entry_carries_qty_stop_risk_and_heat() -> None:
    held = [OpenRisk(symbol="MSFT", qty=D(10), price=D(100), stop=D(90))]
    verdict = check_entry(proposal("50", "49.555"), ACCOUNT, held, WIDE, False)
    assert verdict.approved and verdict.reason is RiskReason.APPROVED
    assert verdict.stop == D("49.55")  # rounded down onto the tick grid
    assert verdict.qty == D(111) and verdict.slices == [D(111)]
    assert verdict.risk == D("49.95") and verdict.heat_after == D("149.95")


@given(
    prices,
    st.decimals(min_value=D("0.002"), max_value=D("0.3"), places=3),
    equities,
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=500),
            prices,
            st.one_of(st.none(), st.decimals(min_value=D("0.5"), max_value=D(1500), places=2)),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_an_approved_entry_keeps_every_limit(
    entry: Decimal,
    distance: Decimal,
    equity: Decimal,
    held: list[tuple[int, Decimal, Decimal | None]],
    split: bool,
) -> None:
    limits = RiskLimits(max_order_qty=D(40), split_oversized=split)
    account = AccountView(equity=equity, last_equity=equity, buying_power=equity * 2)
    open_risks = [
        OpenRisk(symbol=f"S{n}", qty=D(q), price=p, stop=s) for n, (q, p, s) in enumerate(held)
    ]
    stop = (entry * (1 - distance)).quantize(D("0.01"))
    assume(stop > 0)
    verdict = check_entry(
        EntryProposal(symbol="NEW", entry=entry, stop=stop), account, open_risks, limits, False
    )
    if not verdict.approved:
        assert verdict.reason is not RiskReason.APPROVED and verdict.detail
        return
    assert verdict.stop is not None and verdict.stop < entry
    assert verdict.qty >= 1 and sum(verdict.slices) == verdict.qty
    assert verdict.risk == verdict.qty * (entry - verdict.stop) <= risk_budget(equity, limits)
    assert verdict.heat_after == portfolio_heat(open_risks) + verdict.risk
    assert verdict.heat_after <= limits.max_heat_pct * equity
    assert verdict.qty * entry <= limits.max_allocation_pct * equity
    assert verdict.qty * entry <= account.buying_power
    assert all(size <= 40 for size in verdict.slices)


# --- system guard ---------------------------------------------------------------------------


def _guard(*pnls: int, unrealized: int = 0, equity: int = 10_000) -> GuardInput:
    return GuardInput(closed_pnls=[D(p) for p in pnls], unrealized=D(unrealized), equity=D(equity))


def test_the_guard_pauses_after_n_losses_in_a_row() -> None:
    limits = RiskLimits()
    assert system_guard(_guard(-10, -10), limits) is None
    reason = system_guard(_guard(50, -10, -20, -30), limits)
    assert reason == "3 losing trades in a row (limit 3): -10.00, -20.00, -30.00"


def test_a_win_resets_the_losing_streak() -> None:
    assert losing_streak([D(-1), D(-1), D(5), D(-1)]) == 1
    assert losing_streak([D(-1), D(-1), D(0)]) == 0  # a flat trade ends it too
    assert system_guard(_guard(-10, -10, 5, -10, -10), RiskLimits()) is None


def test_nothing_closed_since_the_resume_never_pauses() -> None:
    assert system_guard(_guard(unrealized=-5_000), RiskLimits()) is None


def test_the_guard_pauses_on_drawdown_from_the_peak() -> None:
    limits = RiskLimits()  # 10% of equity
    # curve 0 -> 600 -> 200 -> 150: drawdown 450; with unrealized -550 it is 1000 = 10%
    assert drawdown([D(600), D(-400), D(-50)], D(-550)) == D(1000)
    assert system_guard(_guard(600, -400, -50, unrealized=-549), limits) is None
    reason = system_guard(_guard(600, -400, -50, unrealized=-550), limits)
    assert reason == "drawdown=1000.00 reached 1000.00 (10% of 10000)"
    assert drawdown([D(100), D(200)], D(50)) == D(0)  # a new high is no drawdown


def test_resuming_starts_the_count_afresh() -> None:
    limits = RiskLimits(max_consecutive_losses=2)
    assert system_guard(_guard(-10, -10), limits) is not None
    # after a resume the caller passes only what closed since: one loss is not two
    assert system_guard(_guard(-10), limits) is None


# --- add-ons --------------------------------------------------------------------------------

ADDONS = RiskLimits(addons_enabled=True)


def _held(value: str = "300", external: bool = False) -> HeldPosition:
    return HeldPosition(symbol="AAPL", qty=D(3), market_value=D(value), external=external)


def test_addon_no_position() -> None:
    verdict = addon_decision(None, 5, EQUITY, ADDONS)
    assert not verdict.approved and verdict.reason is RiskReason.NO_POSITION


def test_addon_external_position() -> None:
    verdict = addon_decision(_held(external=True), 5, EQUITY, ADDONS)
    assert verdict.reason is RiskReason.ADDON_EXTERNAL
    assert verdict.detail == "cannot add to an external position"


def test_addon_disabled() -> None:
    verdict = addon_decision(_held(), 5, EQUITY, RiskLimits())
    assert verdict.reason is RiskReason.ADDON_DISABLED


def test_addon_at_the_allocation_cap() -> None:
    verdict = addon_decision(_held("500"), 5, EQUITY, ADDONS)  # 5% of 10,000
    assert verdict.reason is RiskReason.ADDON_ALLOCATION and "allocation=5%" in verdict.detail


@pytest.mark.parametrize("confidence", [None, 1, 4])
def test_addon_confidence_below_the_threshold(confidence: int | None) -> None:
    verdict = addon_decision(_held(), confidence, EQUITY, ADDONS)
    assert verdict.reason is RiskReason.ADDON_CONFIDENCE


def test_addon_approved_up_to_the_cap() -> None:
    verdict = addon_decision(_held("300"), 5, EQUITY, ADDONS)
    assert verdict.approved and verdict.reason is RiskReason.APPROVED
    assert verdict.max_notional == D(200)
    lower = RiskLimits(addons_enabled=True, addon_min_confidence=3)
    assert addon_decision(_held(), 3, EQUITY, lower).approved


def test_addon_rows_apply_in_order() -> None:
    # external wins over disabled, disabled over allocation, allocation over confidence
    assert addon_decision(_held("900", True), None, EQUITY, RiskLimits()).reason is (
        RiskReason.ADDON_EXTERNAL
    )
    assert addon_decision(_held("900"), None, EQUITY, RiskLimits()).reason is (
        RiskReason.ADDON_DISABLED
    )
    assert addon_decision(_held("900"), None, EQUITY, ADDONS).reason is RiskReason.ADDON_ALLOCATION


def test_reasons_are_stable_snake_case() -> None:
    for reason in RiskReason:
        assert reason.value == reason.name.lower()
