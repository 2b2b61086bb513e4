"""Option positions against the ledger's open option trades, as a pure diff.

The broker holds option legs (signed contracts: a short is negative); the ledger holds option
trades, each a structure of legs x qty. Given one successful read of the option positions
(absence from it is a definitive answer) and the open option rows, read after it, plus the
rows closed since the legs were read, `option_reconcile_plan` says:

- ghosts: open rows none of whose legs the broker holds and that have not changed within
  `grace` (an entry just sent may not show yet). The plan only names them: a row is closed
  when its workflow is not running, as reconcile closes a stock ghost; a running workflow
  closes its own row.
- leg mismatches: open rows some of whose legs are held, but not every leg at legs x qty (the
  sum of every open row claiming the symbol). Reported with the numbers, never auto-fixed.
- adoptable condors and unmanaged legs: the legs no row claims, paired into iron condors by
  trading/options/condor_pairing.py (`find_condors`, which says how legs pair).
- a row closed at or after `now` (the run's time, taken before the legs were read) closed
  between the two reads: its legs may be in the read though no open row claims them any more.
  It only claims its legs (they are not adopted or unmanaged in this run; the next run sees
  them gone, or truly unclaimed); it is no ghost, mismatch or held trade, and it does not add
  to the quantities open rows expect (its legs may or may not have left before the read).
- held trades: open rows every leg of which is held as the rows claiming it say. Their
  workflows should run; reconcile asks, and restarts those that ended without closing the
  trade (terminated, failed, timed out, or gone): `restartable` picks them.

What a new OptionTradeWorkflow run of an adopted condor or a restarted trade starts with is
trading/options/adoption.py's. Nothing here does I/O.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal

from pydantic import Field

from trading.broker_models import OrderSide
from trading.ledger_records import TradeOrigin
from trading.models import Frozen
from trading.options.chain import OptionRight, parse_occ_symbol
from trading.options.condor_pairing import (
    AdoptableCondor,
    OptionPosition,
    UnmanagedLeg,
    adoptable_condor,
    find_condors,
)
from trading.options.records import OptionTradeRecord
from trading.options.trade_models import OptionTradeStatus

DEFAULT_OPTION_GRACE = timedelta(minutes=2)
_ZERO = Decimal(0)


class OptionGhost(Frozen):
    """An open option trade the broker holds none of the legs of."""

    trade_id: str
    underlying: str
    status: OptionTradeStatus
    legs: list[str]


class LegQty(Frozen):
    """One leg of an open trade: what the open rows claiming it expect and what is held."""

    symbol: str
    expected: Decimal  # signed, legs x qty summed over every open row claiming the symbol
    held: Decimal  # signed, 0 when the broker holds none


class LegMismatch(Frozen):
    """An open option trade some of whose legs are held at a quantity other than expected."""

    trade_id: str
    underlying: str
    status: OptionTradeStatus
    qty: int
    legs: list[LegQty]

    @property
    def summary(self) -> str:
        """`symbol held/expected` for each leg that differs."""
        return ", ".join(
            f"{leg.symbol} held {leg.held} expected {leg.expected}"
            for leg in self.legs
            if leg.held != leg.expected
        )


class HeldOptionTrade(Frozen):
    """An open row whose legs the broker holds as the row says: what restarting it needs.

    `condor` is the row's structure at the row's size with the positions' prices, under the
    row's id; its credit is the row's (an entry filled unseen: the positions' entry prices).
    """

    trade_id: str
    status: OptionTradeStatus  # the row's
    origin: TradeOrigin
    exit_reason: str | None = None
    condor: AdoptableCondor


class OptionsPlan(Frozen):
    """The options half of a reconcile: adoptions and ghosts to act on, the rest reported."""

    checked_trades: int = 0
    checked_positions: int = 0
    adoptions: list[AdoptableCondor] = Field(default_factory=list)
    ghosts: list[OptionGhost] = Field(default_factory=list)
    mismatches: list[LegMismatch] = Field(default_factory=list)
    unmanaged: list[UnmanagedLeg] = Field(default_factory=list)
    held: list[HeldOptionTrade] = Field(default_factory=list)  # restarted if not running
    deferred: int = 0  # actions left for the next run by max_actions

    @property
    def actions(self) -> int:
        """Adoptions and ghost closes: what a run changes (the rest is reported only)."""
        return len(self.adoptions) + len(self.ghosts)

    def findings(self) -> list[tuple[str, str, str, str]]:
        """(action, underlying or leg, trade id, detail) of each finding, actions first."""
        rows = [
            (
                "adopt condor",
                c.underlying,
                c.trade_id,
                f"{c.expiry} {c.strikes} x{c.qty} for a credit of {c.credit}",
            )
            for c in self.adoptions
        ]
        rows += [
            (
                "close option",
                g.underlying,
                g.trade_id,
                f"{g.status.value}: no leg held (closed unless its workflow runs)",
            )
            for g in self.ghosts
        ]
        rows += [
            ("leg mismatch", m.underlying, m.trade_id, f"x{m.qty}: {m.summary} (not fixed)")
            for m in self.mismatches
        ]
        rows += [("unmanaged", u.symbol, "-", f"{u.qty}: {u.reason}") for u in self.unmanaged]
        return rows

    def restarted_findings(self, trade_ids: Iterable[str]) -> list[tuple[str, str, str, str]]:
        """Finding rows of the held trades a run restarted (their ids: the run's result)."""
        restarted = set(trade_ids)
        return [
            (
                "restart option",
                h.condor.underlying,
                h.trade_id,
                f"{h.status.value} {h.condor.expiry} {h.condor.strikes} x{h.condor.qty}: "
                f"workflow ended, every leg held; new run at a credit of {h.condor.credit}",
            )
            for h in self.held
            if h.trade_id in restarted
        ]


# --- the diff ------------------------------------------------------------------------------


def _sign(side: OrderSide) -> int:
    return 1 if side is OrderSide.BUY else -1


def expected_legs(trade: OptionTradeRecord) -> dict[str, Decimal]:
    """The signed contracts a trade holds once open: +ratio x qty long, -ratio x qty short."""
    expected: dict[str, Decimal] = defaultdict(Decimal)
    for leg in trade.legs:
        expected[leg.symbol] += Decimal(_sign(leg.side) * leg.ratio_qty * trade.qty)
    return dict(expected)


def _settled(trade: OptionTradeRecord, now: datetime, grace: timedelta) -> bool:
    last_change = max(trade.created_at, trade.status_at)
    return now - last_change >= grace


def closed_since(trade: OptionTradeRecord, since: datetime) -> bool:
    """Closed at or after `since`: a row that may have held legs a read taken then saw."""
    return trade.closed_at is not None and trade.closed_at >= since


def option_reconcile_plan(
    positions: list[OptionPosition],
    rows: list[OptionTradeRecord],
    now: datetime,
    today: date,
    grace: timedelta = DEFAULT_OPTION_GRACE,
) -> OptionsPlan:
    """Diff one successful read of the option positions against the option rows.

    `rows` are the open rows and those closed since the legs were read (OptionTrades.claiming);
    `now` is the run's time, taken before the legs were read: a row closed at or after it only
    claims its legs, and one closed before it is not looked at. `today` is the New York session
    date (an adopted condor's days to expiry count from it).
    """
    held = {p.symbol: p for p in positions if p.qty != 0}
    live = sorted((t for t in rows if t.is_open), key=lambda t: (t.created_at, t.id))
    claimed: dict[str, Decimal] = defaultdict(Decimal)
    for trade in live:
        for symbol, qty in expected_legs(trade).items():
            claimed[symbol] += qty
    just_closed = {s for t in rows if closed_since(t, now) for s in expected_legs(t)}

    ghosts: list[OptionGhost] = []
    mismatches: list[LegMismatch] = []
    held_trades: list[HeldOptionTrade] = []
    for trade in live:
        expected = expected_legs(trade)
        legs = [
            LegQty(
                symbol=symbol,
                expected=claimed[symbol],
                held=held[symbol].qty if symbol in held else _ZERO,
            )
            for symbol in expected
        ]
        if not _settled(trade, now, grace):
            continue
        if all(leg.held == 0 for leg in legs):
            ghosts.append(
                OptionGhost(
                    trade_id=trade.id,
                    underlying=trade.underlying,
                    status=trade.status,
                    legs=list(expected),
                )
            )
        elif any(leg.held != leg.expected for leg in legs):
            mismatches.append(
                LegMismatch(
                    trade_id=trade.id,
                    underlying=trade.underlying,
                    status=trade.status,
                    qty=trade.qty,
                    legs=legs,
                )
            )
        elif (held_trade := held_option_trade(trade, held, today)) is not None:
            held_trades.append(held_trade)

    unclaimed = [held[s] for s in sorted(held) if s not in claimed and s not in just_closed]
    adoptions, unmanaged = find_condors(unclaimed, today)
    return OptionsPlan(
        checked_trades=len(live),
        checked_positions=len(held),
        adoptions=adoptions,
        ghosts=ghosts,
        mismatches=mismatches,
        unmanaged=unmanaged,
        held=held_trades,
    )


# --- held trades and whether their workflows ended -----------------------------------------

# Latest-run statuses (activities/option_adoption.py's names) of a workflow that ended without
# closing its trade, or is gone (`missing`: never started, or its history aged out).
# `completed` is not among them: the workflow completes only after writing its final row, so a
# completed run under an open row is nothing a restart repairs (the start refuses it too).
RESTARTABLE_ENDS = frozenset({"terminated", "failed", "timed_out", "canceled", "missing"})
_CONDOR_SHAPE = [
    (OptionRight.PUT, OrderSide.BUY),
    (OptionRight.PUT, OrderSide.SELL),
    (OptionRight.CALL, OrderSide.SELL),
    (OptionRight.CALL, OrderSide.BUY),
]


def held_option_trade(
    trade: OptionTradeRecord, held: dict[str, OptionPosition], today: date
) -> HeldOptionTrade | None:
    """The row as the condor it holds; None if its legs are no iron condor's or none is held,
    or no credit is known (the row's, else - an entry filled unseen - the entry prices')."""
    legs = trade.legs
    if len(legs) != len(_CONDOR_SHAPE) or any(leg.ratio_qty != 1 for leg in legs):
        return None
    try:
        occs = [parse_occ_symbol(leg.symbol) for leg in legs]
    except ValueError:
        return None
    strikes = [occ.strike for occ in occs]
    if (
        [(occ.right, leg.side) for occ, leg in zip(occs, legs, strict=True)] != _CONDOR_SHAPE
        or strikes != sorted(set(strikes))
        or len({(occ.underlying, occ.expiry) for occ in occs}) != 1
        or any(leg.symbol not in held for leg in legs)
    ):
        return None
    lp, sp, sc, lc = (
        OptionPosition(
            symbol=leg.symbol,
            qty=Decimal(_sign(leg.side) * trade.qty),
            avg_entry_price=held[leg.symbol].avg_entry_price,
            current_price=held[leg.symbol].current_price,
        )
        for leg in legs
    )
    credit = trade.credit
    if trade.status is OptionTradeStatus.PENDING_ENTRY or credit is None or credit <= 0:
        credit = sp.avg_entry_price + sc.avg_entry_price - lp.avg_entry_price - lc.avg_entry_price
    if credit <= 0:
        return None
    condor = adoptable_condor((lp, sp, sc, lc), occs[1], credit, today)
    return HeldOptionTrade(
        trade_id=trade.id,
        status=trade.status,
        origin=trade.origin,
        exit_reason=trade.exit_reason,
        condor=condor.model_copy(update={"trade_id": trade.id}),
    )


def restartable(
    held: Iterable[HeldOptionTrade], workflows: Mapping[str, str]
) -> list[HeldOptionTrade]:
    """Held trades whose workflow ended without closing them (by latest-run status); a trade
    whose status is not known is left alone."""
    return [h for h in held if workflows.get(h.trade_id) in RESTARTABLE_ENDS]


def capped_options(plan: OptionsPlan, room: int | None) -> OptionsPlan:
    """At most `room` actions (adoptions first: an unmanaged condor is the bigger risk)."""
    if room is None or plan.actions <= room:
        return plan
    room = max(room, 0)
    adoptions = plan.adoptions[:room]
    ghosts = plan.ghosts[: room - len(adoptions)]
    kept = len(adoptions) + len(ghosts)
    return plan.model_copy(
        update={"adoptions": adoptions, "ghosts": ghosts, "deferred": plan.actions - kept}
    )
