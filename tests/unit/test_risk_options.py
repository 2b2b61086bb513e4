"""The risk engine and defined-risk structures: an iron condor's max loss in heat and per trade.

Each refusal of `check_defined_risk` is tested at its boundary: a max loss exactly at a limit
passes, a cent above it is refused with its stable reason and a detail naming the numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import BrokerAccount, BrokerTruth
from trading.entry_decision import EntryBook, open_risks
from trading.risk import (
    AccountView,
    DefinedRisk,
    DefinedRiskProposal,
    EntryProposal,
    OpenRisk,
    Risk,
    RiskLimits,
    RiskReason,
    check_defined_risk,
    check_entry,
    portfolio_heat,
    risk_budget,
)

D = Decimal
CENT = D("0.01")
EQUITY = D(100_000)
ACCOUNT = AccountView(equity=EQUITY, last_equity=EQUITY, buying_power=D(200_000))
# Budget $500 (0.5 %), heat cap $6,000 (6 %), daily loss limit $3,000 (3 %).
LIMITS = RiskLimits()
CONDOR = DefinedRisk(trade_id="ic-1", symbol="SPY", max_loss=D(400))


def held(max_loss: Decimal, trade_id: str = "ic-0") -> DefinedRisk:
    """An open option trade on SPY with this max loss."""
    return DefinedRisk(trade_id=trade_id, symbol="SPY", max_loss=max_loss)


money = st.decimals(min_value=D(0), max_value=D(20_000), places=2)


def condor(max_loss: Decimal, qty: int = 1) -> DefinedRiskProposal:
    return DefinedRiskProposal(underlying="SPY", qty=qty, max_loss=max_loss)


# --- heat ------------------------------------------------------------------------------------


def test_heat_counts_a_condors_max_loss_beside_stock_risk() -> None:
    stock = OpenRisk(symbol="AAPL", qty=D(10), price=D(100), stop=D(95))  # $50 to its stop
    assert CONDOR.risk == D(400)
    assert portfolio_heat([stock, CONDOR]) == D(450)
    assert portfolio_heat([CONDOR, held(D(400), "ic-2")]) == D(800)


def test_a_condor_takes_heat_room_from_a_stock_entry_but_no_allocation() -> None:
    limits = RiskLimits(max_heat_pct=D("0.01"), max_allocation_pct=D("0.5"))  # cap $1,000
    entry = EntryProposal(symbol="SPY", entry=D(100), stop=D(99))  # $500 budget: 500 shares
    assert check_entry(entry, ACCOUNT, [], limits, False).approved
    # The condor holds no SPY shares: the allocation cap ($50,000) is untouched, the heat is not.
    big = held(D("500.01"))
    verdict = check_entry(entry, ACCOUNT, [big], limits, False)
    assert verdict.reason is RiskReason.HEAT_CAP
    assert verdict.detail.startswith("heat=500.01 new=500.00 cap=1000.00")
    fits = held(D(500))
    assert check_entry(entry, ACCOUNT, [fits], limits, False).approved


def test_the_market_loops_heat_includes_open_option_trades() -> None:
    truth = BrokerTruth(
        account=BrokerAccount(
            status="ACTIVE", equity=EQUITY, last_equity=EQUITY, cash=EQUITY, buying_power=EQUITY
        ),
        positions=[],
        open_orders=[],
        fetched_at=datetime(2024, 3, 5, 15, 30, tzinfo=UTC),
    )
    risks = open_risks(truth, EntryBook(), [CONDOR])
    assert risks == [CONDOR] and portfolio_heat(risks) == D(400)
    assert open_risks(truth, EntryBook()) == []


# --- check_defined_risk: each refusal at its boundary ------------------------------------------


def test_a_condor_within_every_limit_is_approved_with_its_heat_after() -> None:
    verdict = check_defined_risk(condor(D(400), qty=2), ACCOUNT, [CONDOR], LIMITS)
    assert verdict.approved and verdict.reason is RiskReason.APPROVED
    assert (verdict.qty, verdict.risk, verdict.heat_after, verdict.slices) == (
        D(2),
        D(400),
        D(800),
        [D(2)],
    )
    assert verdict.detail == ("SPY x2 max_loss=400.00 budget=500.00 heat_after=800.00 cap=6000.00")


def test_per_trade_risk_boundary() -> None:
    assert check_defined_risk(condor(D(500)), ACCOUNT, [], LIMITS).approved
    verdict = check_defined_risk(condor(D(500) + CENT), ACCOUNT, [], LIMITS)
    assert not verdict.approved and verdict.reason is RiskReason.MAX_LOSS_OVER_BUDGET
    assert verdict.reason.value == "max_loss_over_budget"
    assert verdict.detail == "SPY x1: max_loss=500.01 budget=500.00 (0.5% of 100000)"
    assert verdict.risk == D("500.01") and verdict.heat_after is None


def test_per_trade_risk_in_dollars_wins_over_the_pct() -> None:
    limits = RiskLimits(risk_per_trade_usd=D(250))
    assert check_defined_risk(condor(D(250)), ACCOUNT, [], limits).approved
    verdict = check_defined_risk(condor(D("250.01")), ACCOUNT, [], limits)
    assert verdict.reason is RiskReason.MAX_LOSS_OVER_BUDGET
    assert verdict.detail == "SPY x1: max_loss=250.01 budget=250.00 (risk_per_trade_usd)"


def test_daily_loss_boundary() -> None:
    down = AccountView(equity=D(97_000), last_equity=EQUITY, buying_power=D(200_000))
    verdict = check_defined_risk(condor(D(100)), down, [], LIMITS)
    assert verdict.reason is RiskReason.DAILY_LOSS_LIMIT
    assert verdict.detail == "daily loss 3000 reached the limit 3% of 100000 (3000.00)"
    almost = down.model_copy(update={"equity": D(97_000) + CENT})
    assert check_defined_risk(condor(D(100)), almost, [], LIMITS).approved


def test_heat_cap_boundary() -> None:
    stock = OpenRisk(symbol="AAPL", qty=D(100), price=D(100), stop=D(50))  # $5,000
    room: list[Risk] = [stock, held(D(600))]  # heat $5,600 of $6,000
    assert check_defined_risk(condor(D(400)), ACCOUNT, room, LIMITS).approved
    verdict = check_defined_risk(condor(D(400) + CENT), ACCOUNT, room, LIMITS)
    assert verdict.reason is RiskReason.HEAT_CAP
    assert verdict.detail == "heat=5600.00 new=400.01 cap=6000.00 (6% of 100000)"


def test_buying_power_boundary() -> None:
    poor = ACCOUNT.model_copy(update={"buying_power": D(300)})
    assert check_defined_risk(condor(D(300)), poor, [], LIMITS).approved
    verdict = check_defined_risk(condor(D(300) + CENT), poor, [], LIMITS)
    assert verdict.reason is RiskReason.INSUFFICIENT_BUYING_POWER
    assert verdict.detail == "max_loss=300.01 buying_power=300.00 (SPY x1)"


def test_the_options_buying_power_holds_what_the_broker_holds_back() -> None:
    """The broker holds back more than the max loss (the width and the short legs): a condor
    the stock buying power would pass is refused when the options buying power is short."""
    rich = ACCOUNT.model_copy(update={"options_buying_power": D(1_200)})
    needs = condor(D(300)).model_copy(update={"requirement": D(1_200)})
    assert check_defined_risk(needs, rich, [], LIMITS).approved
    short = needs.model_copy(update={"requirement": D(1_200) + CENT})
    verdict = check_defined_risk(short, rich, [], LIMITS)
    assert verdict.reason is RiskReason.INSUFFICIENT_BUYING_POWER
    assert verdict.detail == (
        "needs=1200.01 options_buying_power=1200.00 (SPY x1, max_loss=300.00)"
    )
    # A broker that states no options buying power: the max loss against the buying power.
    assert check_defined_risk(short, ACCOUNT, [], LIMITS).approved


def test_rules_are_asked_in_order_daily_loss_budget_heat_buying_power() -> None:
    broke = AccountView(equity=D(90_000), last_equity=EQUITY, buying_power=D(0))
    hot = [held(D(10_000))]
    assert check_defined_risk(condor(D(600)), broke, hot, LIMITS).reason is (
        RiskReason.DAILY_LOSS_LIMIT
    )
    flat = broke.model_copy(update={"equity": EQUITY})
    assert check_defined_risk(condor(D(600)), flat, hot, LIMITS).reason is (
        RiskReason.MAX_LOSS_OVER_BUDGET
    )
    assert check_defined_risk(condor(D(500)), flat, hot, LIMITS).reason is RiskReason.HEAT_CAP
    assert check_defined_risk(condor(D(500)), flat, [], LIMITS).reason is (
        RiskReason.INSUFFICIENT_BUYING_POWER
    )


@pytest.mark.parametrize("qty", [1, 3])
def test_a_proposal_refuses_a_negative_max_loss_or_no_structures(qty: int) -> None:
    with pytest.raises(ValueError):
        DefinedRiskProposal(underlying="SPY", qty=qty, max_loss=D(-1))
    with pytest.raises(ValueError):
        DefinedRiskProposal(underlying="SPY", qty=0, max_loss=D(1))


@given(max_loss=money, heat=money, buying_power=money, equity=st.integers(1_000, 1_000_000))
def test_approved_exactly_when_every_limit_holds(
    max_loss: Decimal, heat: Decimal, buying_power: Decimal, equity: int
) -> None:
    account = AccountView(equity=D(equity), last_equity=D(equity), buying_power=buying_power)
    verdict = check_defined_risk(condor(max_loss), account, [held(heat)], LIMITS)
    fits = (
        max_loss <= risk_budget(D(equity), LIMITS)
        and heat + max_loss <= LIMITS.max_heat_pct * D(equity)
        and max_loss <= buying_power
    )
    assert verdict.approved is fits
    assert verdict.risk == max_loss
    if fits:
        assert verdict.heat_after == heat + max_loss
    else:
        assert verdict.reason in {
            RiskReason.MAX_LOSS_OVER_BUDGET,
            RiskReason.HEAT_CAP,
            RiskReason.INSUFFICIENT_BUYING_POWER,
        }
        assert f"{max_loss:.2f}" in verdict.detail
