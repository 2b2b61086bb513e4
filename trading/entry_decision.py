"""One entry decision per ranked signal: gate, then add-on or new entry through the risk engine.

Pure. The market loop walks its signals best rank first and asks `decide_entry` for each,
carrying an `EntryBook` (what this run already committed: trades started, their risk and
cost) so the heat cap, the position cap and buying power see the run's own entries.

The order of questions:
1. the shared gate (trading/entry_gate.py: trading control, broker truth; for a new
   position also the position and per-run caps);
2. long only; a signal older than its strategy's max_signal_age (a breakout of 10:02 is not
   bought at 14:00); the score threshold;
3. a symbol the broker already holds: an add-on to our own trade, under the add-on rules
   (trading/risk.py `addon_decision`), sized to the least of the remaining allocation, the
   risk budget and the room under the heat cap; an entry still on its way: skipped;
4. otherwise a new entry: the risk engine (`check_entry`) sizes it from the signal's stop (or
   the default stop distance) at the ask, and checks one signal per symbol a day, the daily
   loss limit, allocation, heat, buying power and the per-order caps.

Heat (`open_risks`) is every held position's risk to its covering stop, this run's entries,
and each open option trade's max loss (EntryContext.open_option_trades, from the ledger).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, Decimal

from pydantic import Field

from trading.broker_models import BrokerTruth, OrderSide, Quote
from trading.entry import EntryDecision, EntrySignal, MarketLoopInput
from trading.entry_context import EntryContext
from trading.entry_gate import ControlView, EntryReason, pending_entry_symbols, run_gate
from trading.ledger_records import TradeOrigin
from trading.models import Frozen, evolve
from trading.ranker import Ranked, RankInput, rank
from trading.risk import (
    AccountView,
    DefinedRisk,
    EntryProposal,
    HeldPosition,
    OpenRisk,
    Risk,
    RiskReason,
    addon_decision,
    check_entry,
    effective_stop,
    portfolio_heat,
    size_for_risk,
)
from trading.routing import covering_stop_of
from trading.ticks import take_profit_price

# Gate reasons an add-on does not hear: it opens no new position.
_POSITION_CAPS = (EntryReason.MAX_OPEN_POSITIONS, EntryReason.MAX_ENTRIES_PER_RUN)


class SignalAge(Frozen):
    """Now, and how long a signal of its strategy stays worth entering."""

    now: datetime
    max_age: timedelta


class EntryBook(Frozen):
    """What this run has committed so far: new trades, add-ons, their risk and their cost."""

    started: int = 0
    added: list[str] = Field(default_factory=list)  # symbols added to this run
    risks: list[OpenRisk] = Field(default_factory=list)
    spent: Decimal = Decimal(0)

    def after(self, signal: EntrySignal, decision: EntryDecision) -> EntryBook:
        """The book once `decision` is carried out (a skip changes nothing)."""
        if not decision.enter or decision.qty is None or decision.entry_price is None:
            return self
        risk = OpenRisk(
            symbol=signal.symbol,
            qty=decision.qty,
            price=decision.entry_price,
            stop=decision.stop_price,
        )
        return EntryBook(
            started=self.started + int(not decision.add_on),
            added=[*self.added, signal.symbol] if decision.add_on else self.added,
            risks=[*self.risks, risk],
            spent=self.spent + decision.qty * decision.entry_price,
        )


def account_view(truth: BrokerTruth, book: EntryBook) -> AccountView:
    """The broker's account, less what this run's entries will cost."""
    account = truth.account
    return AccountView(
        equity=account.equity,
        last_equity=account.last_equity,
        buying_power=max(account.buying_power - book.spent, Decimal(0)),
        options_buying_power=account.options_buying_power,
    )


def open_risks(
    truth: BrokerTruth, book: EntryBook, defined: Iterable[DefinedRisk] = ()
) -> list[Risk]:
    """Each held position's risk to the stop that covers it, this run's entries, and each
    defined-risk structure's max loss (the open option trades)."""
    risks: list[Risk] = []
    for position in truth.positions:
        if position.qty == 0:
            continue
        price = position.current_price or position.avg_entry_price
        stop = covering_stop_of(truth.open_orders, position.symbol, abs(position.qty))
        risks.append(
            OpenRisk(
                symbol=position.symbol,
                qty=position.qty,
                price=price,
                stop=stop.stop_price if stop is not None else None,
            )
        )
    return [*risks, *book.risks, *defined]


def ranked_signals(signals: list[EntrySignal]) -> list[tuple[EntrySignal, Ranked]]:
    """The signals best first, by the ranker's one rule (trading/ranker.py)."""
    by_key = {s.signal_key: s for s in signals}
    ranked = rank(
        [
            RankInput(
                signal_key=s.signal_key,
                symbol=s.symbol,
                strategy=s.strategy,
                score=s.score,
                confidence=s.setup_confidence,
                entry=s.entry,
                stop=s.stop,
                target=s.target,
                liquidity=s.liquidity,
            )
            for s in signals
        ]
    )
    return [(by_key[r.item.signal_key], r) for r in ranked]


def _skip(reason: str, detail: str = "") -> EntryDecision:
    return EntryDecision(enter=False, reason=reason, detail=detail)


def _ranked(decision: EntryDecision, ranked: Ranked | None) -> EntryDecision:
    if ranked is None:
        return decision
    return evolve(decision, rank=ranked.rank, rank_score=ranked.rank_score)


def decide_entry(
    signal: EntrySignal,
    ranked: Ranked | None,
    control: ControlView,
    truth: BrokerTruth | None,
    request: MarketLoopInput,
    context: EntryContext,
    quote: Quote | None,
    book: EntryBook,
    age: SignalAge | None = None,
) -> EntryDecision:
    """Enter, add to our trade, or skip this signal with the first reason that applies."""
    return _ranked(_decide(signal, control, truth, request, context, quote, book, age), ranked)


def _decide(
    signal: EntrySignal,
    control: ControlView,
    truth: BrokerTruth | None,
    request: MarketLoopInput,
    context: EntryContext,
    quote: Quote | None,
    book: EntryBook,
    age: SignalAge | None,
) -> EntryDecision:
    gate = run_gate(control, truth, request, book.started)
    held = {p.symbol: p for p in truth.positions if p.qty != 0} if truth else {}
    position_cap_only = gate.reason in _POSITION_CAPS and signal.symbol in held
    if (not gate.open and not position_cap_only) or truth is None:
        return _skip(gate.reason or EntryReason.BROKER_TRUTH_UNAVAILABLE, gate.detail)
    if signal.side is not OrderSide.BUY:
        return _skip(EntryReason.SIDE_NOT_SUPPORTED, f"{signal.side.value} entries: long only")
    if age is not None and age.now - signal.created_at > age.max_age:
        return _skip(
            EntryReason.SIGNAL_STALE,
            f"created {signal.created_at:%H:%M:%S}, {signal.strategy} signals keep {age.max_age}",
        )
    if signal.score < request.score_threshold:
        return _skip(
            EntryReason.BELOW_THRESHOLD,
            f"score={signal.score} scoreThreshold={request.score_threshold}",
        )
    if quote is None or quote.ask <= 0:
        return _skip(EntryReason.NO_QUOTE, f"symbol={signal.symbol}")
    account = account_view(truth, book)
    if signal.symbol in held:
        return _add_on(signal, held[signal.symbol].qty, quote, request, context, truth, book)
    if signal.symbol in pending_entry_symbols(truth):
        return _skip(EntryReason.POSITION_OPEN, f"symbol={signal.symbol} entry on its way")
    verdict = check_entry(
        EntryProposal(
            symbol=signal.symbol,
            entry=quote.ask,
            stop=signal.stop,
            confidence=signal.setup_confidence,
        ),
        account,
        open_risks(truth, book, context.open_option_trades),
        request.risk,
        signal.symbol in context.entered_symbols,
    )
    if not verdict.approved or verdict.stop is None:
        return _skip(verdict.reason, verdict.detail)
    # The strategy's target is a feature (4 places): on the tick grid, away from the market.
    target = take_profit_price(signal.target) if signal.target is not None else None
    if target is not None and target <= quote.ask:
        target = None
    return EntryDecision(
        enter=True,
        reason=EntryReason.ENTERED.value,
        detail=f"qty={verdict.qty} entry={quote.ask} stop={verdict.stop} "
        f"risk={verdict.risk} score={signal.score}; {verdict.detail}",
        qty=verdict.qty,
        stop_price=verdict.stop,
        entry_price=quote.ask,
        target_price=target,
        slices=verdict.slices,
    )


def _add_on(
    signal: EntrySignal,
    held_qty: Decimal,
    quote: Quote,
    request: MarketLoopInput,
    context: EntryContext,
    truth: BrokerTruth,
    book: EntryBook,
) -> EntryDecision:
    """An add-on into the trade that holds the symbol, under the user's add-on rules, sized
    to the least of the remaining allocation, the risk budget and the room under the heat cap."""
    account = account_view(truth, book)
    trade = context.trade_of(signal.symbol)
    if signal.symbol in book.added:
        return _skip(RiskReason.ADDON_ALLOCATION, f"symbol={signal.symbol} added this run")
    position = HeldPosition(
        symbol=signal.symbol,
        qty=held_qty,
        market_value=held_qty * quote.bid if quote.bid > 0 else held_qty * quote.ask,
        external=trade is None or trade.origin is TradeOrigin.EXTERNAL,
    )
    verdict = addon_decision(position, signal.setup_confidence, account.equity, request.risk)
    if not verdict.approved or trade is None:
        return _skip(verdict.reason, verdict.detail)
    stop = trade.stop_price or effective_stop(quote.ask, None, request.risk)
    per_share = quote.ask - stop
    by_allocation = (verdict.max_notional / quote.ask).to_integral_value(rounding=ROUND_FLOOR)
    by_risk = size_for_risk(quote.ask, stop, account.equity, request.risk)
    heat = portfolio_heat(open_risks(truth, book, context.open_option_trades))
    cap = request.risk.max_heat_pct * account.equity
    by_heat = ((cap - heat) / per_share).to_integral_value(rounding=ROUND_FLOOR)
    if per_share > 0 and by_heat < 1:
        return _skip(
            RiskReason.HEAT_CAP,
            f"add-on to {trade.trade_id}: heat={heat:.2f} cap={cap:.2f}, no room at "
            f"ask={quote.ask} stop={stop}",
        )
    qty = min(by_allocation, by_risk, by_heat) if per_share > 0 else min(by_allocation, by_risk)
    if qty < 1:
        return _skip(
            RiskReason.RISK_TOO_SMALL,
            f"add-on to {trade.trade_id}: allocation allows {by_allocation}, "
            f"risk allows {by_risk} at ask={quote.ask} stop={stop}",
        )
    if qty * quote.ask > account.buying_power:
        return _skip(
            RiskReason.INSUFFICIENT_BUYING_POWER,
            f"cost={qty * quote.ask} buyingPower={account.buying_power}",
        )
    return EntryDecision(
        enter=True,
        add_on=True,
        reason="added",
        detail=f"add {qty} to {trade.trade_id} at ask={quote.ask}; {verdict.detail}",
        qty=qty,
        stop_price=stop,
        entry_price=quote.ask,
        trade_id=trade.trade_id,
    )
