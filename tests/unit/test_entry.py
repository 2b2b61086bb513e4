"""decide_entry: the gate, stale signals, the risk engine's sizing and caps, add-ons, specs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from hypothesis import given
from hypothesis import strategies as st

from trading.broker_models import (
    BrokerAccount,
    BrokerOrder,
    BrokerPosition,
    BrokerTruth,
    OrderSide,
    Quote,
)
from trading.control import ControlMode
from trading.entry import (
    EntryDecision,
    EntrySignal,
    MarketLoopInput,
    ledger_day_start,
    summarize,
    trade_id_for_signal,
    trade_specs_for,
)
from trading.entry_context import EntryContext, LedgerTrade
from trading.entry_decision import EntryBook, SignalAge, account_view, decide_entry, open_risks
from trading.entry_gate import ControlPresence, ControlView, run_gate
from trading.ledger_records import TradeOrigin
from trading.models import JsonScalar
from trading.risk import RiskLimits, RiskReason
from trading.ticks import is_on_tick

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
OPEN = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.ACTIVE)
EQUITY = Decimal(100_000)
# $100 at risk per trade, half the equity per symbol: at ask 100 with the default 5% stop
# (95.00) an entry is 20 shares, and neither the allocation nor the heat cap cuts it.
RISK = RiskLimits(risk_per_trade_usd=Decimal(100), max_allocation_pct=Decimal("0.5"))
REQUEST = MarketLoopInput(
    max_open_positions=3,
    max_entries_per_run=3,
    score_threshold=Decimal("0.5"),
    risk=RISK,
)
NO_CONTEXT = EntryContext()
EMPTY_BOOK = EntryBook()


def _truth(
    *held: str,
    equity: Decimal = EQUITY,
    buying_power: Decimal | None = None,
    pending: tuple[str, ...] = (),
) -> BrokerTruth:
    return BrokerTruth(
        account=BrokerAccount(
            status="ACTIVE",
            cash=equity,
            buying_power=equity if buying_power is None else buying_power,
            equity=equity,
            last_equity=equity,
        ),
        positions=[
            BrokerPosition(symbol=s, qty=Decimal(5), avg_entry_price=Decimal(100)) for s in held
        ],
        open_orders=[_buy_order(s) for s in pending],
        fetched_at=NOW,
    )


def _buy_order(symbol: str) -> BrokerOrder:
    return BrokerOrder.model_validate(
        {
            "id": f"o-{symbol}",
            "client_order_id": f"x-{symbol}",
            "symbol": symbol,
            "side": "buy",
            "type": "market",
            "qty": "1",
            "status": "new",
            "order_class": "simple",
            "time_in_force": "day",
            "created_at": NOW,
            "updated_at": NOW,
        }
    )


def _signal(
    symbol: str = "AAPL",
    score: str = "0.8",
    side: OrderSide = OrderSide.BUY,
    created_at: datetime = NOW,
    signal_id: int = 42,
    **features: JsonScalar,
) -> EntrySignal:
    return EntrySignal(
        signal_id=signal_id,
        signal_key=f"orb:{symbol}:2024-03-05",
        symbol=symbol,
        strategy="orb",
        side=side,
        score=Decimal(score),
        created_at=created_at,
        features=dict(features),
    )


def _quote(ask: str = "100.00", symbol: str = "AAPL") -> Quote:
    return Quote(symbol=symbol, bid=Decimal(ask) - Decimal("0.02"), ask=Decimal(ask), timestamp=NOW)


def _decide(
    signal: EntrySignal | None = None,
    *,
    control: ControlView = OPEN,
    truth: BrokerTruth | None = None,
    request: MarketLoopInput = REQUEST,
    context: EntryContext = NO_CONTEXT,
    quote: Quote | None = None,
    book: EntryBook = EMPTY_BOOK,
    age: SignalAge | None = None,
    no_quote: bool = False,
) -> EntryDecision:
    return decide_entry(
        signal or _signal(),
        None,
        control,
        _truth() if truth is None else truth,
        request,
        context,
        None if no_quote else (quote or _quote()),
        book,
        age,
    )


def _with_risk(**changes: object) -> MarketLoopInput:
    return REQUEST.model_copy(update={"risk": RISK.model_copy(update=changes)})


# --- a new entry ---------------------------------------------------------------------------


def test_a_good_signal_is_entered_with_the_risk_sized_quantity_and_a_tick_stop() -> None:
    decision = _decide()
    assert decision.enter and decision.reason == "entered" and not decision.add_on
    assert decision.entry_price == Decimal("100.00")
    assert decision.stop_price == Decimal("95.00") and decision.qty == Decimal(20)
    assert decision.slices == [Decimal(20)] and decision.target_price is None


def test_the_signals_own_stop_sizes_the_entry() -> None:
    decision = _decide(_signal(stop=98.0))
    assert decision.enter and decision.stop_price == Decimal("98.00")
    assert decision.qty == Decimal(50)  # floor(100 / (100.00 - 98.00))
    odd = _decide(_signal(stop=97.5), quote=_quote("100.37"))
    assert odd.stop_price == Decimal("97.50")
    assert odd.qty == (Decimal(100) / (Decimal("100.37") - Decimal("97.50"))).to_integral_value(
        rounding=ROUND_FLOOR
    )


def test_a_stop_between_ticks_is_rounded_away_from_the_market() -> None:
    decision = _decide(_signal(stop=98.005))
    assert decision.stop_price == Decimal("98.00") and decision.qty == Decimal(50)


def test_a_stop_at_or_above_the_ask_is_refused() -> None:
    decision = _decide(_signal(stop=100.5))
    assert (decision.enter, decision.reason) == (False, RiskReason.INVALID_STOP.value)


def test_the_target_is_taken_only_when_above_the_ask() -> None:
    above = _decide(_signal(stop=98.0, target=104.0))
    assert above.target_price == Decimal("104")
    below = _decide(_signal(stop=98.0, target=104.0), quote=_quote("104.50"))
    assert below.enter and below.target_price is None
    at = _decide(_signal(stop=98.0, target=104.0), quote=_quote("104.00"))
    assert at.enter and at.target_price is None


def test_a_target_between_ticks_becomes_a_valid_take_profit() -> None:
    decision = _decide(_signal(stop=98.0, target=104.1234))
    assert decision.enter and decision.target_price is not None
    assert is_on_tick(decision.target_price) and decision.target_price >= Decimal("104.1234")
    (spec,) = trade_specs_for(_signal(stop=98.0, target=104.1234), decision)
    assert spec.take_profit_price == decision.target_price


# --- the gate ----------------------------------------------------------------------------------


def test_the_control_gate_comes_first() -> None:
    halted = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.HALTED, reason="y")
    assert _decide(control=halted).reason == "control_halted"
    paused = ControlView(presence=ControlPresence.RUNNING, mode=ControlMode.REDUCING)
    assert _decide(control=paused).reason == "control_paused"
    silent = ControlView(presence=ControlPresence.UNREACHABLE, detail="no worker")
    decision = _decide(control=silent)
    assert (decision.enter, decision.reason, decision.detail) == (
        False,
        "control_unavailable",
        "no worker",
    )


def test_no_control_workflow_lets_entries_pass_with_a_note() -> None:
    missing = ControlView(presence=ControlPresence.NOT_STARTED, detail="never started")
    answer = run_gate(missing, _truth(), REQUEST)
    assert answer.open and answer.note.startswith("control_not_started")
    assert _decide(control=missing).enter


def test_no_truth_means_no_entry() -> None:
    decision = decide_entry(_signal(), None, OPEN, None, REQUEST, NO_CONTEXT, _quote(), EMPTY_BOOK)
    assert decision.reason == "broker_truth_unavailable" and not decision.enter


def test_the_broker_count_caps_entries_with_the_detail() -> None:
    decision = _decide(truth=_truth("MSFT", "NVDA", "TSLA"))
    assert (decision.enter, decision.reason, decision.detail) == (
        False,
        "max_open_positions",
        "brokerPositionsCount=3 maxOpenPositions=3",
    )


def test_pending_buys_and_entries_started_this_run_count_against_the_cap() -> None:
    truth = _truth("MSFT", pending=("NVDA",))
    assert _decide(truth=truth).enter
    decision = _decide(truth=truth, book=EntryBook(started=1))
    assert decision.reason == "max_open_positions"
    assert decision.detail == (
        "brokerPositionsCount=1 maxOpenPositions=3 pendingEntries=1 enteredThisRun=1"
    )


def test_the_per_run_cap_counts_the_books_entries() -> None:
    request = REQUEST.model_copy(update={"max_open_positions": 10, "max_entries_per_run": 2})
    assert _decide(request=request, book=EntryBook(started=1)).enter
    decision = _decide(request=request, book=EntryBook(started=2))
    assert (decision.reason, decision.detail) == (
        "max_entries_per_run",
        "enteredThisRun=2 maxEntriesPerRun=2",
    )


# --- the signal, the quote and the risk engine ------------------------------------------------


def test_a_stale_signal_is_skipped() -> None:
    age = SignalAge(now=NOW + timedelta(minutes=30), max_age=timedelta(minutes=30))
    assert _decide(age=age).enter  # exactly as old as allowed is still fresh
    later = SignalAge(now=NOW + timedelta(minutes=30, seconds=1), max_age=timedelta(minutes=30))
    decision = _decide(age=later)
    assert (decision.enter, decision.reason) == (False, "signal_stale")
    assert "orb" in decision.detail


def test_one_entry_per_symbol_a_day() -> None:
    decision = _decide(context=EntryContext(entered_symbols=["AAPL"]))
    assert (decision.enter, decision.reason) == (False, RiskReason.SIGNAL_ALREADY_TODAY.value)
    assert decision.reason == "signal_already_today"
    assert _decide(context=EntryContext(entered_symbols=["MSFT"])).enter


def test_an_entry_on_its_way_keeps_the_symbol_from_a_second_one() -> None:
    decision = _decide(truth=_truth(pending=("AAPL",)))
    assert (decision.enter, decision.reason) == (False, "position_open")


def test_threshold_quote_side_risk_and_buying_power() -> None:
    assert _decide(_signal(score="0.3")).reason == "below_threshold"
    assert _decide(no_quote=True).reason == "no_quote"
    assert _decide(quote=_quote("0")).reason == "no_quote"
    assert _decide(_signal(side=OrderSide.SELL)).reason == "side_not_supported"
    tiny = _with_risk(risk_per_trade_usd=Decimal(1))
    assert _decide(request=tiny).reason == "risk_too_small"
    poor = _decide(truth=_truth(buying_power=Decimal(500)))
    assert (poor.enter, poor.reason) == (False, "insufficient_buying_power")


def test_this_runs_spending_comes_off_the_buying_power() -> None:
    truth = _truth(buying_power=Decimal(2500))
    first = _decide(truth=truth)
    assert first.enter and first.qty == Decimal(20)  # 2000 of 2500
    book = EMPTY_BOOK.after(_signal(), first)
    assert account_view(truth, book).buying_power == Decimal(500)
    second = _decide(
        _signal("MSFT", signal_id=43), truth=truth, quote=_quote(symbol="MSFT"), book=book
    )
    assert (second.enter, second.reason) == (False, "insufficient_buying_power")


def test_the_heat_cap_refuses_the_second_entry_of_a_run() -> None:
    # Heat cap 0.15% of 100000 = 150: one entry risking 100 fits, a second does not.
    request = _with_risk(max_heat_pct=Decimal("0.0015"))
    aapl, msft = _signal("AAPL"), _signal("MSFT", signal_id=43)
    first = _decide(aapl, request=request)
    assert first.enter and first.qty == Decimal(20)
    book = EMPTY_BOOK.after(aapl, first)
    assert [r.symbol for r in open_risks(_truth(), book)] == ["AAPL"]
    second = _decide(msft, request=request, quote=_quote(symbol="MSFT"), book=book)
    assert (second.enter, second.reason) == (False, "heat_cap")
    assert "heat=100.00 new=100.00 cap=150.00" in second.detail
    # Without the first entry in the book the second would have passed.
    assert _decide(msft, request=request, quote=_quote(symbol="MSFT")).enter


def test_held_positions_heat_counts_to_their_covering_stop() -> None:
    request = _with_risk(max_heat_pct=Decimal("0.0015"))
    # MSFT held without a stop: all of its 500 is at risk, so nothing more fits.
    decision = _decide(request=request, truth=_truth("MSFT"))
    assert (decision.enter, decision.reason) == (False, "heat_cap")


# --- add-ons -----------------------------------------------------------------------------------


def _ours(symbol: str = "AAPL", stop: str | None = "95.00") -> EntryContext:
    trade = LedgerTrade(
        trade_id="aapl-20240305-140000-s1",
        symbol=symbol,
        origin=TradeOrigin.INTERNAL,
        qty=Decimal(5),
        stop_price=None if stop is None else Decimal(stop),
    )
    return EntryContext(open_trades=[trade])


ADDONS = _with_risk(addons_enabled=True, max_allocation_pct=Decimal("0.01"))


def test_an_add_on_grows_our_trade_by_the_smaller_of_allocation_room_and_risk_size() -> None:
    # Cap 1% of 100000 = 1000; held 5 x 99.98 = 499.90; room 500.10 -> 5 shares at 100.
    # Risk: 100 / (100 - 95) = 20 shares. The smaller wins.
    decision = _decide(_signal(confidence=5), truth=_truth("AAPL"), request=ADDONS, context=_ours())
    assert decision.enter and decision.add_on and decision.reason == "added"
    assert decision.trade_id == "aapl-20240305-140000-s1"
    assert decision.qty == Decimal(5) and decision.stop_price == Decimal("95.00")
    roomy = _with_risk(addons_enabled=True, max_allocation_pct=Decimal("0.1"))
    by_risk = _decide(_signal(confidence=5), truth=_truth("AAPL"), request=roomy, context=_ours())
    assert by_risk.add_on and by_risk.qty == Decimal(20)
    tight_stop = _decide(
        _signal(confidence=5), truth=_truth("AAPL"), request=roomy, context=_ours(stop="99.00")
    )
    assert tight_stop.qty == Decimal(95)  # risk allows 100 (at 1.00 a share), room 95


def test_an_add_on_ignores_the_position_cap_but_not_the_add_on_rules() -> None:
    full = _truth("AAPL", "MSFT", "NVDA")  # max_open_positions=3 reached
    assert _decide(_signal("TSLA", confidence=5), truth=full, request=ADDONS).reason == (
        "max_open_positions"
    )
    added = _decide(_signal(confidence=5), truth=full, request=ADDONS, context=_ours())
    assert added.enter and added.add_on
    disabled = _decide(_signal(confidence=5), truth=full, context=_ours())
    assert (disabled.enter, disabled.reason) == (False, RiskReason.ADDON_DISABLED.value)
    per_run = ADDONS.model_copy(update={"max_entries_per_run": 1})
    started = _decide(
        _signal(confidence=5),
        truth=_truth("AAPL"),
        request=per_run,
        context=_ours(),
        book=EntryBook(started=1),
    )
    assert started.enter and started.add_on


def test_an_add_on_needs_a_trade_of_ours() -> None:
    no_trade = _decide(_signal(confidence=5), truth=_truth("AAPL"), request=ADDONS)
    assert (no_trade.enter, no_trade.reason) == (False, "addon_external")
    external = EntryContext(
        open_trades=[
            LedgerTrade(
                trade_id="aapl-20240301-100000-ext",
                symbol="AAPL",
                origin=TradeOrigin.EXTERNAL,
                qty=Decimal(5),
            )
        ]
    )
    decision = _decide(
        _signal(confidence=5), truth=_truth("AAPL"), request=ADDONS, context=external
    )
    assert (decision.enter, decision.reason) == (False, "addon_external")


def test_add_ons_disabled_confidence_too_low_and_one_add_on_a_run() -> None:
    held = _truth("AAPL")
    disabled = _decide(_signal(confidence=5), truth=held, context=_ours())
    assert (disabled.enter, disabled.reason) == (False, "addon_disabled")
    unsure = _decide(_signal(confidence=4), truth=held, request=ADDONS, context=_ours())
    assert (unsure.enter, unsure.reason) == (False, "addon_confidence")
    first = _decide(_signal(confidence=5), truth=held, request=ADDONS, context=_ours())
    book = EMPTY_BOOK.after(_signal(confidence=5), first)
    assert book.added == ["AAPL"] and book.started == 0 and book.spent == Decimal(500)
    again = _decide(_signal(confidence=5), truth=held, request=ADDONS, context=_ours(), book=book)
    assert (again.enter, again.reason) == (False, "addon_allocation")


def test_an_add_on_without_a_stop_on_the_trade_uses_the_default_stop() -> None:
    roomy = _with_risk(addons_enabled=True, max_allocation_pct=Decimal("0.1"))
    decision = _decide(
        _signal(confidence=5), truth=_truth("AAPL"), request=roomy, context=_ours(stop=None)
    )
    assert decision.add_on and decision.stop_price == Decimal("95.00")
    assert decision.qty == Decimal(20)


# --- specs, ids and the run summary ------------------------------------------------------------


def test_a_signal_always_maps_to_the_same_trade_id() -> None:
    decision = _decide(_signal(stop=98.0, target=104.0))
    (spec,) = trade_specs_for(_signal(), decision)
    assert spec.trade_id == trade_id_for_signal(_signal()) == "aapl-20240305-153000-s16"
    assert spec.signal_id == 42 and spec.qty == decision.qty
    assert spec.stop_price == Decimal("98.00") and spec.take_profit_price == Decimal("104")


def test_split_slices_give_one_trade_per_slice() -> None:
    request = _with_risk(max_order_qty=Decimal(20), split_oversized=True)
    decision = _decide(_signal(stop=98.0), request=request)  # 50 shares in orders of <= 20
    assert decision.enter and decision.qty == Decimal(50)
    assert decision.slices == [Decimal(17), Decimal(17), Decimal(16)]
    specs = trade_specs_for(_signal(), decision)
    base = trade_id_for_signal(_signal())
    assert [s.trade_id for s in specs] == [base, f"{base}-2", f"{base}-3"]
    assert [s.qty for s in specs] == decision.slices
    assert all(s.stop_price == Decimal("98.00") and s.signal_id == 42 for s in specs)
    refused = _decide(_signal(stop=98.0), request=_with_risk(max_order_qty=Decimal(20)))
    assert (refused.enter, refused.reason) == (False, "freeze_qty")


def test_skips_and_add_ons_have_no_trade_specs() -> None:
    for decision in (
        _decide(_signal(score="0.1")),
        _decide(_signal(confidence=5), truth=_truth("AAPL"), request=ADDONS, context=_ours()),
    ):
        try:
            trade_specs_for(_signal(), decision)
        except ValueError:
            continue
        raise AssertionError(f"{decision.reason} produced trade specs")


def test_the_run_summary_names_what_gated_it() -> None:
    skip = EntryDecision(enter=False, reason="max_open_positions", detail="d")
    assert summarize([], skip) == ("max_open_positions", "d")
    assert summarize([], None) == ("no_signals", "")
    entered = EntryDecision(enter=True, reason="entered")
    low = EntryDecision(enter=False, reason="below_threshold", detail="score=0.1")
    heat = EntryDecision(enter=False, reason="heat_cap", detail="heat=1")
    assert summarize([entered, low], None) == ("entered", "entered=1; skipped below_threshold=1")
    assert summarize([entered], skip) == ("entered", "entered=1")
    assert summarize([low, heat], None) == (
        "below_threshold",
        "score=0.1; below_threshold=1, heat_cap=1",
    )
    assert summarize([low, low], None) == ("below_threshold", "score=0.1")


def test_the_ledger_day_starts_at_the_broker_clock_midnight() -> None:
    clock = datetime.fromisoformat("2024-03-05T10:30:00-05:00")
    real = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert ledger_day_start(clock, real) == datetime(2026, 1, 1, 1, 30, tzinfo=UTC)


# --- properties --------------------------------------------------------------------------------

prices = st.decimals(min_value=Decimal("1.00"), max_value=Decimal(2000), places=2)
fractions = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("0.5"), places=3)


@given(
    ask=prices,
    distance=fractions,
    equity=st.decimals(min_value=Decimal(1000), max_value=Decimal(10_000_000), places=2),
    risk_pct=st.decimals(min_value=Decimal("0.0005"), max_value=Decimal("0.02"), places=4),
    allocation=st.decimals(min_value=Decimal("0.01"), max_value=Decimal("0.5"), places=2),
    spend=st.decimals(min_value=Decimal(0), max_value=Decimal("1.5"), places=2),
)
def test_an_approved_entry_stays_within_its_budget_allocation_and_buying_power(
    ask: Decimal,
    distance: Decimal,
    equity: Decimal,
    risk_pct: Decimal,
    allocation: Decimal,
    spend: Decimal,
) -> None:
    request = REQUEST.model_copy(
        update={
            "risk": RiskLimits(
                risk_per_trade_pct=risk_pct,
                max_heat_pct=Decimal("0.5"),
                max_allocation_pct=allocation,
            )
        }
    )
    stop = float(ask * (1 - distance))
    truth = _truth(equity=equity, buying_power=equity * spend)
    decision = _decide(_signal(stop=stop), truth=truth, request=request, quote=_quote(str(ask)))
    if not decision.enter:
        assert decision.reason in {"risk_too_small", "max_allocation", "insufficient_buying_power"}
        return
    assert decision.qty is not None and decision.stop_price is not None
    assert decision.qty >= 1 and decision.qty == decision.qty.to_integral_value()
    assert is_on_tick(decision.stop_price) and decision.stop_price < ask
    assert decision.qty * (ask - decision.stop_price) <= risk_pct * equity
    assert decision.qty * ask <= allocation * equity
    assert decision.qty * ask <= equity * spend
    assert sum(decision.slices) == decision.qty


@given(
    entries=st.lists(
        st.tuples(
            st.booleans(),  # entered
            st.booleans(),  # add-on
            st.integers(min_value=1, max_value=500),
            st.decimals(min_value=Decimal("0.01"), max_value=Decimal(1000), places=2),
        ),
        max_size=12,
    )
)
def test_the_book_accumulates_what_the_run_committed(
    entries: list[tuple[bool, bool, int, Decimal]],
) -> None:
    book = EMPTY_BOOK
    for n, (enter, add_on, qty, price) in enumerate(entries):
        decision = EntryDecision(
            enter=enter,
            add_on=add_on,
            reason="added" if add_on else "entered",
            qty=Decimal(qty),
            entry_price=price,
            stop_price=price / 2,
        )
        book = book.after(_signal(f"S{n}", signal_id=n), decision)
    taken = [(a, q, p) for e, a, q, p in entries if e]
    assert book.spent == sum((q * p for _, q, p in taken), Decimal(0))
    assert book.started == sum(1 for a, _, _ in taken if not a)
    assert book.added == [f"S{n}" for n, (e, a, _, _) in enumerate(entries) if e and a]
    assert len(book.risks) == len(taken)
