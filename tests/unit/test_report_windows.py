"""The day report's window rules, shared by stock and option trade rows (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from trading.report.windows import WindowCount, WindowTally, inside, open_at, window_count

START = datetime(2025, 3, 12, 4, 0, tzinfo=UTC)
END = START + timedelta(days=1)
HOUR = timedelta(hours=1)


def count(
    created_at: datetime,
    closed_at: datetime | None = None,
    *,
    filled: bool = True,
    held_before_fill: bool = False,
) -> WindowCount:
    return window_count(
        created_at,
        closed_at,
        filled=filled,
        held_before_fill=held_before_fill,
        start=START,
        end=END,
    )


def test_the_window_holds_its_start_not_its_end() -> None:
    assert inside(START, START, END)
    assert not inside(END, START, END)
    assert not inside(None, START, END)


def test_a_row_closed_at_the_moment_is_still_open_then() -> None:
    assert open_at(START, END, END)
    assert not open_at(START, END - HOUR, END)
    assert not open_at(END, None, END)


def test_a_fill_opens_a_row_created_in_the_window_only() -> None:
    assert count(START + HOUR).opened_today
    assert not count(START + HOUR, filled=False).opened_today
    assert not count(START - HOUR).opened_today


def test_an_unfilled_row_is_held_only_where_its_entry_already_risks() -> None:
    yesterday = START - HOUR
    stock = count(yesterday, filled=False, held_before_fill=False)
    option = count(yesterday, filled=False, held_before_fill=True)
    assert not stock.held_at_end and not stock.listed
    assert option.held_at_end and option.listed


def test_a_row_of_an_earlier_day_closed_in_the_window_is_listed() -> None:
    window = count(START - HOUR, START + HOUR)
    assert window.closed_today and window.listed
    assert not window.created_today and not window.held_at_end


def test_the_tally_counts_closes_failed_entries_and_rows_held_at_the_end() -> None:
    tally = WindowTally()
    closed = count(START + HOUR, START + 2 * HOUR)
    assert tally.add(closed, entry_failed=False, realized_pnl=Decimal(5), external=True)
    assert tally.add(closed, entry_failed=False, realized_pnl=None, external=False)
    assert not tally.add(closed, entry_failed=True, realized_pnl=Decimal(-1), external=False)
    assert not tally.add(
        count(START + HOUR), entry_failed=False, realized_pnl=Decimal(-2), external=False
    )
    assert tally == WindowTally(
        opened=4,
        closed=2,
        entries_failed=1,
        adopted=1,
        open_at_end=1,
        winners=1,
        losers=0,
        realized_pnl=Decimal(5),
    )
