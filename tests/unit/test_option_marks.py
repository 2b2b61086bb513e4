"""broker/option_marks.py without a broker: grouping, the marks it builds, and the poll's
cache and shared reads against a hand-written fake of the gateway and a fake clock."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, TypeVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.option_marks import (
    MARKS_MAX_AGE,
    ExpiryGroup,
    OptionQuotePoll,
    StampedQuote,
    chain_quotes,
    expiry_groups,
    marks_of,
)
from settings import Settings
from trading.options.chain import OptionRight, format_occ_symbol
from trading.options.trade_models import OptionMarks, OptionQuote

T = TypeVar("T")
FRIDAY = date(2024, 3, 8)
NEXT_FRIDAY = date(2024, 3, 15)
STAMP = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


def occ(strike: int, right: OptionRight = OptionRight.PUT, expiry: date = FRIDAY) -> str:
    return format_occ_symbol("SPY", expiry, right, Decimal(strike))


def condor(low: int, expiry: date = FRIDAY) -> list[str]:
    """Four legs: puts at low and low+5, calls at low+30 and low+35."""
    return [
        occ(low, OptionRight.PUT, expiry),
        occ(low + 5, OptionRight.PUT, expiry),
        occ(low + 30, OptionRight.CALL, expiry),
        occ(low + 35, OptionRight.CALL, expiry),
    ]


class FakeChains:
    """Chain snapshots of listed strikes 400..600 of every expiry, priced by `bid` (mutable)."""

    def __init__(self) -> None:
        self.chain_reads: list[tuple[str, date, date]] = []
        self.latest_reads: list[list[str]] = []
        self.bid = Decimal("1.00")
        self.unknown: set[str] = set()
        self.failing = False

    def _quote(self) -> SimpleNamespace:
        return SimpleNamespace(
            bid_price=float(self.bid), ask_price=float(self.bid) + 0.1, timestamp=STAMP
        )

    def chain_snapshots(self, underlying: str, start: date, end: date) -> dict[str, Any]:
        self.chain_reads.append((underlying, start, end))
        if self.failing:
            raise RuntimeError("chain read failed")
        return {
            format_occ_symbol(underlying, start, right, Decimal(k)): SimpleNamespace(
                latest_quote=self._quote()
            )
            for k in range(400, 605, 5)
            for right in OptionRight
        }

    def latest_quotes(self, symbols: list[str]) -> OptionMarks:
        self.latest_reads.append(list(symbols))
        quotes = [
            OptionQuote(symbol=s, bid=self.bid, ask=self.bid + Decimal("0.1"))
            for s in symbols
            if s not in self.unknown
        ]
        return OptionMarks(quotes=quotes, as_of=STAMP, session_date=STAMP.date())


class Payer:
    """Pays for each read (counts it) and, while `held`, keeps it in flight."""

    def __init__(self) -> None:
        self.paid = 0
        self.held = asyncio.Event()
        self.held.set()

    async def __call__(self, read: Callable[[], T], /) -> T:
        self.paid += 1
        await self.held.wait()
        return read()


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def poll_of(chains: FakeChains, payer: Payer, clock: Clock) -> OptionQuotePoll:
    return OptionQuotePoll(chains, payer, timedelta(seconds=10), clock=clock)


# ---- pure parts ----------------------------------------------------------------------------
def test_symbols_group_by_underlying_and_expiry_once_each_in_asked_order() -> None:
    first, second = condor(450), condor(460, NEXT_FRIDAY)
    qqq = format_occ_symbol("QQQ", FRIDAY, OptionRight.CALL, Decimal(440))
    groups, other = expiry_groups([*first, *second, first[0], qqq, "AAPL"])
    assert groups == {
        ExpiryGroup("SPY", FRIDAY): first,
        ExpiryGroup("SPY", NEXT_FRIDAY): second,
        ExpiryGroup("QQQ", FRIDAY): [qqq],
    }
    assert other == ["AAPL"]


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["SPY", "QQQ", "IWM"]),
            st.dates(date(2024, 1, 1), date(2030, 12, 31)),
            st.sampled_from(list(OptionRight)),
            st.integers(1, 99_999),
        ),
        max_size=20,
    )
)
def test_every_option_symbol_lands_in_the_group_of_its_own_expiry(
    legs: list[tuple[str, date, OptionRight, int]],
) -> None:
    symbols = [format_occ_symbol(u, e, r, Decimal(k)) for u, e, r, k in legs]
    groups, other = expiry_groups(symbols)
    assert other == []
    assert sorted(s for members in groups.values() for s in members) == sorted(set(symbols))
    for (underlying, expiry), members in groups.items():
        assert all(s.startswith(f"{underlying}{expiry:%y%m%d}") for s in members)


def test_marks_are_as_of_the_newest_quote_and_its_new_york_session_day() -> None:
    late_evening = datetime(2024, 3, 6, 1, 0, tzinfo=UTC)  # still 5 March in New York
    found = {
        "A": StampedQuote(OptionQuote(symbol="A", bid=Decimal(1), ask=Decimal(2)), STAMP),
        "B": StampedQuote(OptionQuote(symbol="B", bid=Decimal(1), ask=Decimal(2)), late_evening),
    }
    marks = marks_of(["B", "C", "A"], found, datetime(2024, 3, 7, tzinfo=UTC))
    assert [q.symbol for q in marks.quotes] == ["B", "A"]  # asked order; C has no quote
    assert marks.as_of == late_evening
    assert marks.session_date == date(2024, 3, 5)


def test_marks_without_a_broker_stamp_are_as_of_now() -> None:
    now = datetime(2024, 3, 5, 16, 0, tzinfo=UTC)
    found = {"A": StampedQuote(OptionQuote(symbol="A", bid=Decimal(1), ask=Decimal(2)), None)}
    assert marks_of(["A"], found, now).as_of == now


def test_a_snapshot_without_a_quote_is_not_a_mark() -> None:
    quote = SimpleNamespace(bid_price=1.5, ask_price=1.6, timestamp=STAMP)
    quotes = chain_quotes(
        {"A": SimpleNamespace(latest_quote=quote), "B": SimpleNamespace(latest_quote=None)}
    )
    assert list(quotes) == ["A"]
    assert quotes["A"].quote.bid == Decimal("1.5") and quotes["A"].at == STAMP


def test_the_setting_defaults_to_the_polls_max_age() -> None:
    default = Settings.model_fields["option_marks_max_age_s"].default
    assert default == MARKS_MAX_AGE.total_seconds()


# ---- the poll ------------------------------------------------------------------------------
async def test_concurrent_asks_of_one_expiry_share_one_chain_read() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    payer.held.clear()
    asks = [asyncio.ensure_future(poll.marks(condor(low))) for low in range(400, 500, 5)]
    await asyncio.sleep(0.01)
    payer.held.set()
    answers = await asyncio.gather(*asks)
    assert chains.chain_reads == [("SPY", FRIDAY, FRIDAY)]
    assert payer.paid == 1 and chains.latest_reads == []
    for low, marks in zip(range(400, 500, 5), answers, strict=True):
        assert [q.symbol for q in marks.quotes] == condor(low)
        assert marks.as_of == STAMP


async def test_each_expiry_is_one_read() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    await asyncio.gather(*(poll.marks(condor(450, e)) for e in (FRIDAY, NEXT_FRIDAY, FRIDAY)))
    assert sorted(chains.chain_reads) == [
        ("SPY", FRIDAY, FRIDAY),
        ("SPY", NEXT_FRIDAY, NEXT_FRIDAY),
    ]
    assert payer.paid == 2


async def test_a_fresh_read_is_served_and_a_stale_one_read_again() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    await poll.marks(condor(450))
    chains.bid = Decimal("2.00")
    clock.now += 9.9
    cached = await poll.marks(condor(460))
    assert payer.paid == 1 and cached.quotes[0].bid == Decimal("1.00")
    clock.now += 0.2
    fresh = await poll.marks(condor(460))
    assert payer.paid == 2 and fresh.quotes[0].bid == Decimal("2.00")


async def test_symbols_not_in_the_chain_are_read_once_together_and_kept() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    far = [occ(700, OptionRight.CALL), occ(705, OptionRight.CALL)]  # listed only 400..600
    gone = occ(710, OptionRight.CALL)
    chains.unknown.add(gone)
    legs = [*condor(450)[:2], *far, gone]
    marks = await poll.marks(legs)
    assert [q.symbol for q in marks.quotes] == [*condor(450)[:2], *far]  # gone: no quote
    assert chains.latest_reads == [sorted([*far, gone])]
    assert payer.paid == 2
    await poll.marks(legs)  # the off-chain answers (an absent one too) are kept as long
    assert payer.paid == 2
    clock.now += 11
    await poll.marks(legs)
    assert payer.paid == 4 and len(chains.latest_reads) == 2


async def test_a_failed_read_fails_every_asker_and_the_next_ask_reads_again() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    chains.failing = True
    payer.held.clear()
    asks = [asyncio.ensure_future(poll.marks(condor(low))) for low in (440, 450)]
    await asyncio.sleep(0.01)
    payer.held.set()
    outcomes = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(o, RuntimeError) for o in outcomes) and payer.paid == 1
    chains.failing = False
    assert len((await poll.marks(condor(450))).quotes) == 4
    assert payer.paid == 2


async def test_an_asker_that_gives_up_does_not_cancel_the_read_for_the_others() -> None:
    chains, payer, clock = FakeChains(), Payer(), Clock()
    poll = poll_of(chains, payer, clock)
    payer.held.clear()
    quitter = asyncio.ensure_future(poll.marks(condor(440)))
    stayer = asyncio.ensure_future(poll.marks(condor(450)))
    await asyncio.sleep(0.01)
    quitter.cancel()
    await asyncio.sleep(0.01)
    payer.held.set()
    assert len((await stayer).quotes) == 4
    with pytest.raises(asyncio.CancelledError):
        await quitter
    assert payer.paid == 1
