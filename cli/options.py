"""`starter.py options chain|rank|quote`: option chains, ranked credit spreads and named
contracts' quotes, read from the broker; `condor open` is cli/condor.py's (it reads chains
with this module's readers).

Chains come from the broker through alpaca-py (broker/options.py), every read paid for from
the account's broker-call budget.
Exit codes: 0 done; 1 the broker failed; 2 bad input; 75 rate limited.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from broker.endpoint import broker_endpoint
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from broker.options import (
    CHAIN_HORIZON_DAYS,
    AlpacaOptionsGateway,
    MeteredOptions,
    build_chain,
)
from cli import option_quote
from cli.broker_calls import WaitLine, broker_failed, cli_broker
from cli.output import emit_model, fail, say, say_table
from settings import Settings
from trading.models import Frozen
from trading.options.chain import OptionChain, OptionContractQuote, OptionRight
from trading.options.condor import IronCondorConfig, days_to_expiry
from trading.options.ranker import (
    WEIGHTS,
    OptionRankConfig,
    RankedCandidate,
    rank_candidates,
    vertical_candidates,
)

EXIT_BAD_INPUT = 2
NEW_YORK = ZoneInfo("America/New_York")
SYMBOL = re.compile(r"^[A-Z][A-Z0-9.]{0,5}$")
DEFAULT_WIDTH = IronCondorConfig().wing_width


class OptionsInputError(Exception):
    """A command-line value is wrong; the message says which and what was expected."""


class ChainRead(Frozen):
    """A chain as read for a command, with the New York session date it was read on."""

    today: date
    chain: OptionChain


class OptionRankReport(Frozen):
    """`options rank --json`: the ranked verticals of one width, with the rule that scored them."""

    underlying: str
    underlying_price: Decimal
    as_of: datetime
    today: date
    width: Decimal
    config: OptionRankConfig
    weights: dict[str, Decimal]
    candidates: list[RankedCandidate]


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `options chain|rank|quote`."""
    group = commands.add_parser("options", help="option chains and ranked credit spreads (read)")
    sub = group.add_subparsers(dest="options_command", required=True, metavar="COMMAND")
    chain = sub.add_parser("chain", help="the option chain: quotes, greeks, IV, open interest")
    chain.add_argument("symbol", help="underlying, e.g. AAPL")
    chain.add_argument("--expiry", help="one expiry, YYYY-MM-DD (default: all listed)")
    chain.add_argument("--json", action="store_true", help="print JSON")
    chain.set_defaults(handler=cmd_chain)
    rank = sub.add_parser("rank", help="credit verticals ranked, every score explained")
    rank.add_argument("symbol", help="underlying, e.g. AAPL")
    rank.add_argument("--width", help=f"dollars between short and long (default {DEFAULT_WIDTH})")
    rank.add_argument("--top", type=int, default=20, help="rows in the table (JSON has all)")
    rank.add_argument("--json", action="store_true", help="print JSON")
    rank.set_defaults(handler=cmd_rank)
    option_quote.register(sub)


# ---- input -----------------------------------------------------------------------------
def parse_symbol(text: str) -> str:
    """An upper-case stock symbol."""
    symbol = text.strip().upper()
    if not SYMBOL.match(symbol):
        raise OptionsInputError(f"not a stock symbol: {text!r}")
    return symbol


def parse_expiry(text: str | None) -> date | None:
    """A YYYY-MM-DD date, or None."""
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise OptionsInputError(f"--expiry must be a date YYYY-MM-DD, got {text!r}") from None


def parse_width(text: str | None) -> Decimal:
    """A positive dollar width (the default when not given)."""
    if text is None:
        return DEFAULT_WIDTH
    try:
        width = Decimal(text)
    except InvalidOperation:
        width = Decimal(0)
    if not width.is_finite() or width <= 0:
        raise OptionsInputError(f"--width must be a positive dollar amount, got {text!r}")
    return width


def check_width(chain: OptionChain, width: Decimal, expiries: list[date]) -> None:
    """The width must be a whole multiple of the strike step of (one of) the expiries."""
    steps = sorted({s for e in expiries if (s := chain.strike_step(e)) is not None})
    if steps and not any(width % step == 0 for step in steps):
        shown = ", ".join(f"{s:f}" for s in steps)
        raise OptionsInputError(
            f"width {width:f} is not a multiple of the strike step ({shown}) of "
            f"{chain.underlying}'s options"
        )


# ---- reading ---------------------------------------------------------------------------
async def read_chain(settings: Settings, symbol: str, expiry: date | None) -> ChainRead:
    """The chain of one expiry, or of every expiry in the next CHAIN_HORIZON_DAYS."""
    async with cli_broker(settings) as broker:
        clock = await broker.get_clock()
        today = clock.timestamp.astimezone(NEW_YORK).date()
        if expiry is not None and expiry < today:
            raise OptionsInputError(f"expiry {expiry} is in the past (today is {today})")
        if await broker.find_asset(symbol) is None:
            raise OptionsInputError(f"unknown symbol {symbol}: the broker lists no such asset")
        options = MeteredOptions(
            AlpacaOptionsGateway(broker_endpoint(settings)),
            broker.budget,
            patience=timedelta(seconds=settings.broker_cli_wait_s),
            on_wait=WaitLine(),
        )
        end = max(today + timedelta(days=CHAIN_HORIZON_DAYS), expiry or today)
        listed = await options.list_contracts(symbol, today, end)
        if not listed:
            raise OptionsInputError(f"no option contracts are listed for {symbol}")
        if expiry is not None and expiry not in {c.expiry for c in listed}:
            shown = ", ".join(str(e) for e in sorted({c.expiry for c in listed}))
            raise OptionsInputError(f"expiry {expiry} is not listed for {symbol}; listed: {shown}")
        price = await _underlying_price(broker, symbol)
        snapshots = await options.chain_snapshots(symbol, expiry or today, expiry or end)
    chain = build_chain(symbol, price, clock.timestamp, listed, snapshots, expiry)
    return ChainRead(today=today, chain=chain)


async def _underlying_price(broker: MeteredGateway, symbol: str) -> Decimal:
    quotes = await broker.latest_quotes([symbol])
    sides = [p for q in quotes for p in (q.bid, q.ask) if p > 0]
    if not sides:
        raise BrokerError(f"no quote for {symbol}")
    return sum(sides, Decimal(0)) / len(sides)


def read_or_exit(settings: Settings, symbol: str, expiry: date | None) -> ChainRead | int:
    """The chain, or the exit code of the one line already printed."""
    try:
        return asyncio.run(read_chain(settings, symbol, expiry))
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    except BrokerError as exc:
        return broker_failed(exc, settings)


# ---- options chain ---------------------------------------------------------------------
def cmd_chain(args: argparse.Namespace, settings: Settings) -> int:
    """Print the chain, a table per expiry (or JSON)."""
    try:
        symbol, expiry = parse_symbol(args.symbol), parse_expiry(args.expiry)
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    read = read_or_exit(settings, symbol, expiry)
    if isinstance(read, int):
        return read
    chain = read.chain
    if args.json:
        return emit_model(chain)
    say(
        f"{symbol} options at {chain.as_of:%Y-%m-%d %H:%M} UTC, "
        f"underlying {chain.underlying_price:.2f}"
    )
    for day in chain.expiries():
        say("")
        say(f"{day} ({days_to_expiry(day, read.today)}d), strike step {chain.strike_step(day)}")
        calls = {c.strike: c for c in chain.at(day, OptionRight.CALL)}
        puts = {c.strike: c for c in chain.at(day, OptionRight.PUT)}
        rows = [
            (f"{strike:f}", *contract_cells(calls.get(strike)), *contract_cells(puts.get(strike)))
            for strike in sorted(set(calls) | set(puts))
        ]
        say_table(rows, header=("STRIKE", *_side("CALL"), *_side("PUT")))
    return 0


def _side(name: str) -> tuple[str, ...]:
    return (f"{name} BID", "ASK", "DELTA", "IV", "OI")


def contract_cells(contract: OptionContractQuote | None) -> tuple[str, ...]:
    if contract is None:
        return ("-",) * 5
    return (
        f"{contract.bid:.2f}",
        f"{contract.ask:.2f}",
        "-" if contract.delta is None else f"{contract.delta:.2f}",
        "-" if contract.iv is None else f"{contract.iv:.1%}",
        str(contract.open_interest),
    )


# ---- options rank ----------------------------------------------------------------------
def cmd_rank(args: argparse.Namespace, settings: Settings) -> int:
    """Rank the chain's credit verticals of one width and explain each score."""
    try:
        symbol, width = parse_symbol(args.symbol), parse_width(args.width)
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    read = read_or_exit(settings, symbol, None)
    if isinstance(read, int):
        return read
    chain = read.chain
    try:
        check_width(chain, width, chain.expiries())
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    config = OptionRankConfig()
    ranked = rank_candidates(vertical_candidates(chain, width), read.today, config)
    report = OptionRankReport(
        underlying=symbol,
        underlying_price=chain.underlying_price,
        as_of=chain.as_of,
        today=read.today,
        width=width,
        config=config,
        weights=WEIGHTS,
        candidates=ranked,
    )
    if args.json:
        return emit_model(report)
    rule = " + ".join(f"{weight} * {name}" for name, weight in WEIGHTS.items())
    say(f"{symbol} {width:f}-wide credit verticals, underlying {chain.underlying_price:.2f}")
    say(f"rank_score = {rule}; each part in [0, 1]")
    say(
        f"target |delta| {config.target_delta} +- {config.delta_band}, "
        f"{config.dte_min}-{config.dte_max} days to expiry"
    )
    say("")
    rows = [
        (
            str(r.rank),
            f"{r.rank_score:.4f}",
            f"{r.candidate.expiry} {r.candidate.right.value} "
            f"{r.candidate.short_strike:f}/{r.candidate.long_strike:f}",
            f"{r.candidate.credit:.2f}",
            "-" if r.candidate.short_delta is None else f"{r.candidate.short_delta:.2f}",
            *(f"{r.parts[name]:.4f}" for name in WEIGHTS),
        )
        for r in ranked[: max(args.top, 0)]
    ]
    header = ("RANK", "SCORE", "VERTICAL", "CREDIT", "SHORT DELTA", *(n.upper() for n in WEIGHTS))
    say_table(rows, header=header, empty="no credit verticals of that width")
    if len(ranked) > len(rows):
        say(f"({len(ranked) - len(rows)} more; --top N or --json for all)")
    return 0
