"""OptionQuotePoll: every open option structure's marks from one shared read per expiry.

Each OptionTradeWorkflow asks for its legs' quotes every check interval; one latest-quote
request per ask made market-data calls grow with the open structures. The poll reads the
whole chain of an (underlying, expiry) instead - alpaca-py's get_option_chain, every page,
through AlpacaOptionsGateway.chain_snapshots - keeps its quotes for `max_age` and serves
every structure of that expiry from them; askers of a stale expiry share the one read in
flight. A symbol the chain does not list (a strike the broker no longer centres its listing
on) is read with one latest-quote request for all such symbols of the ask and kept as long.
Requests per minute are then at most (expiries asked about) x 60 / max_age, however many
structures are open; a cache hit sends nothing.

The poll lives on the worker's event loop (option_marks is an async activity); whoever owns
it pays each request through `PaidRead` (activities/options.py: one READ slot of the
account's broker budget, the request run on BROKER_THREADS). `as_of` is the newest quote's
timestamp, as OptionOrdersGateway.latest_quotes gives it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, Protocol, TypeVar
from zoneinfo import ZoneInfo

from trading.options.chain import parse_occ_symbol
from trading.options.trade_models import OptionMarks, OptionQuote

logger = logging.getLogger(__name__)
T = TypeVar("T")
NEW_YORK = ZoneInfo("America/New_York")
# A quote older than this is read again (Settings.option_marks_max_age_s has the same default).
MARKS_MAX_AGE = timedelta(seconds=10)


class ExpiryGroup(NamedTuple):
    """The options of one underlying and expiry: what one chain read answers."""

    underlying: str
    expiry: date


class MarksSource(Protocol):
    """The two broker reads the poll sends (OptionOrdersGateway's)."""

    def chain_snapshots(self, underlying: str, start: date, end: date) -> dict[str, Any]:
        """Snapshots by OCC symbol of the underlying's expiries in [start, end], every page."""
        ...

    def latest_quotes(self, symbols: list[str]) -> OptionMarks:
        """The latest quote of each of these option symbols the broker knows."""
        ...


class PaidRead(Protocol):
    """Runs one blocking broker read after paying for it; what the read returns."""

    def __call__(self, read: Callable[[], T], /) -> Awaitable[T]:
        """Pay, then run `read` (off the event loop)."""
        ...


@dataclass(frozen=True)
class StampedQuote:
    """One option's quote and the broker's timestamp of it (None when the broker gave none)."""

    quote: OptionQuote
    at: datetime | None


@dataclass(frozen=True)
class QuoteRead:
    """What one broker read answered, by symbol, and when (the poll's monotonic clock).

    A symbol mapped to None was asked for and not answered; that answer is kept too.
    """

    read_at: float
    quotes: Mapping[str, StampedQuote | None]


def expiry_groups(symbols: list[str]) -> tuple[dict[ExpiryGroup, list[str]], list[str]]:
    """The OCC symbols by (underlying, expiry), each once in asked order, and the symbols that
    are not OCC symbols (no chain can answer those)."""
    groups: dict[ExpiryGroup, list[str]] = {}
    other: list[str] = []
    for symbol in dict.fromkeys(symbols):
        try:
            occ = parse_occ_symbol(symbol)
        except ValueError:
            other.append(symbol)
            continue
        groups.setdefault(ExpiryGroup(occ.underlying, occ.expiry), []).append(symbol)
    return groups, other


def chain_quotes(snapshots: Mapping[str, Any]) -> dict[str, StampedQuote]:
    """The latest quote of every snapshot that has one (alpaca-py OptionsSnapshot)."""
    quotes: dict[str, StampedQuote] = {}
    for symbol, snapshot in snapshots.items():
        latest = getattr(snapshot, "latest_quote", None)
        if latest is None or latest.bid_price is None or latest.ask_price is None:
            continue
        quote = OptionQuote(
            symbol=symbol, bid=Decimal(str(latest.bid_price)), ask=Decimal(str(latest.ask_price))
        )
        quotes[symbol] = StampedQuote(quote, latest.timestamp)
    return quotes


def stamped_marks(marks: OptionMarks) -> dict[str, StampedQuote]:
    """A latest-quote answer by symbol, each quote stamped with the answer's `as_of`."""
    return {q.symbol: StampedQuote(q, marks.as_of) for q in marks.quotes}


def marks_of(symbols: list[str], found: Mapping[str, StampedQuote], now: datetime) -> OptionMarks:
    """The OptionMarks of the symbols found, in asked order: as of the newest quote's stamp
    (now without one) and that moment's New York session date."""
    chosen = [found[s] for s in dict.fromkeys(symbols) if s in found]
    stamps = [q.at for q in chosen if q.at is not None]
    as_of = max(stamps) if stamps else now
    return OptionMarks(
        quotes=[q.quote for q in chosen],
        as_of=as_of,
        session_date=as_of.astimezone(NEW_YORK).date(),
    )


class OptionQuotePoll:
    """Option marks for any symbols from chain reads shared by every asker (one per worker)."""

    def __init__(
        self,
        source: MarksSource,
        read: PaidRead,
        max_age: timedelta = MARKS_MAX_AGE,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = source
        self._read = read
        self._max_age_s = max_age.total_seconds()
        self._clock = clock
        self._chains: dict[ExpiryGroup, QuoteRead] = {}
        self._off_chain: dict[str, QuoteRead] = {}  # by symbol: its latest-quote read
        self._flights: dict[Hashable, asyncio.Future[QuoteRead]] = {}

    async def marks(self, symbols: list[str]) -> OptionMarks:
        """The quotes of these symbols, from reads no older than max_age."""
        self._forget_stale()
        groups, _ = expiry_groups(symbols)  # a symbol of no chain is read as missing
        reads = await asyncio.gather(*(self._chain(group) for group in groups))
        found: dict[str, StampedQuote] = {}
        for wanted, read in zip(groups.values(), reads, strict=True):
            found.update((s, q) for s in wanted if (q := read.quotes.get(s)) is not None)
        missing = [s for s in dict.fromkeys(symbols) if s not in found]
        if missing:
            found.update(await self._latest(missing))
        return marks_of(symbols, found, datetime.now(UTC))

    async def _chain(self, group: ExpiryGroup) -> QuoteRead:
        cached = self._chains.get(group)
        if cached is not None:
            return cached
        return await self._shared(("chain", group), lambda: self._read_chain(group))

    async def _read_chain(self, group: ExpiryGroup) -> QuoteRead:
        underlying, expiry = group
        snapshots = await self._read(
            lambda: self._source.chain_snapshots(underlying, expiry, expiry)
        )
        read = QuoteRead(self._clock(), chain_quotes(snapshots))
        self._chains[group] = read
        logger.debug("option marks: %s %s chain read, %d quotes", *group, len(read.quotes))
        return read

    async def _latest(self, symbols: list[str]) -> dict[str, StampedQuote]:
        """The symbols no chain answered: kept answers first, then one latest-quote read."""
        kept = {s: self._off_chain[s] for s in symbols if s in self._off_chain}
        unread = sorted(s for s in symbols if s not in kept)
        if unread:
            read = await self._shared(("latest", *unread), lambda: self._read_latest(unread))
            kept.update(dict.fromkeys(unread, read))
        return {s: q for s, read in kept.items() if (q := read.quotes.get(s)) is not None}

    async def _read_latest(self, symbols: list[str]) -> QuoteRead:
        answer = await self._read(lambda: self._source.latest_quotes(symbols))
        quotes: dict[str, StampedQuote | None] = dict.fromkeys(symbols)
        quotes.update(stamped_marks(answer))
        read = QuoteRead(self._clock(), quotes)
        self._off_chain.update(dict.fromkeys(symbols, read))
        logger.debug("option marks: %s not in their chain; latest quotes read", ",".join(symbols))
        return read

    async def _shared(self, key: Hashable, read: Callable[[], Awaitable[QuoteRead]]) -> QuoteRead:
        """One read per key in flight; every asker awaits it, none can cancel it for others."""
        flight = self._flights.get(key)
        if flight is None:
            flight = asyncio.ensure_future(read())
            self._flights[key] = flight
            flight.add_done_callback(lambda done: self._landed(key, done))
        return await asyncio.shield(flight)

    def _landed(self, key: Hashable, flight: asyncio.Future[QuoteRead]) -> None:
        self._flights.pop(key, None)
        if not flight.cancelled():
            flight.exception()  # retrieved: when every asker gave up, nobody else will

    def _forget_stale(self) -> None:
        """Drop reads older than max_age: the next ask of them reads again."""
        oldest = self._clock() - self._max_age_s
        self._chains = {g: r for g, r in self._chains.items() if r.read_at > oldest}
        self._off_chain = {s: r for s, r in self._off_chain.items() if r.read_at > oldest}
