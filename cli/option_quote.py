"""`starter.py options quote CONTRACT...`: named option contracts' quotes, greeks and interest.

Each contract is an OCC symbol (`SPY240419C00500000`). The contracts of one underlying and
expiry are read together as that expiry's chain (cli/options.py `read_chain`: listed contracts
and snapshots through alpaca-py, paid from the broker-call budget). Bad input is exit 2 with one
line: a symbol that is not OCC, a contract whose expiry is past (by the broker's clock), or one
the broker does not list.
"""

from __future__ import annotations

import argparse
import asyncio

from pydantic import Field

from broker.errors import BrokerError
from cli.broker_calls import broker_failed
from cli.output import emit_model, fail, say_table
from settings import Settings
from trading.models import Frozen
from trading.options.chain import OccSymbol, OptionContractQuote, parse_occ_symbol

EXAMPLE = "SPY240419C00500000"


class QuoteResult(Frozen):
    """`options quote --json`: the contracts asked, in the order asked."""

    contracts: list[OptionContractQuote] = Field(default_factory=list)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `options quote` to the `options` group."""
    quote = sub.add_parser("quote", help="named contracts: quote, greeks, IV, open interest")
    quote.add_argument(
        "contracts", nargs="+", metavar="CONTRACT", help=f"OCC symbol, e.g. {EXAMPLE}"
    )
    quote.add_argument("--json", action="store_true", help="print JSON")
    quote.set_defaults(handler=cmd_quote)


def parse_contracts(texts: list[str]) -> list[tuple[str, OccSymbol]]:
    """OCC symbols (upper-cased) and their parts; ValueError names the first bad one."""
    parsed: list[tuple[str, OccSymbol]] = []
    for text in texts:
        symbol = text.strip().upper()
        try:
            parsed.append((symbol, parse_occ_symbol(symbol)))
        except ValueError:
            raise ValueError(
                f"not an option contract symbol: {text!r} (expected an OCC symbol such as "
                f"{EXAMPLE}: root, YYMMDD, C or P, strike x 1000 in 8 digits)"
            ) from None
    return parsed


async def read_quotes(settings: Settings, wanted: list[tuple[str, OccSymbol]]) -> QuoteResult:
    """Each wanted contract from its expiry's chain; OptionsInputError for one not listed."""
    from cli.options import OptionsInputError, read_chain  # the group's reader (no cycle)

    found: dict[str, OptionContractQuote] = {}
    groups = sorted({(occ.underlying, occ.expiry) for _, occ in wanted})
    for underlying, expiry in groups:
        read = await read_chain(settings, underlying, expiry)
        found.update({c.symbol: c for c in read.chain.contracts})
        missing = [
            s
            for s, occ in wanted
            if (occ.underlying, occ.expiry) == (underlying, expiry) and s not in found
        ]
        if missing:
            strikes = sorted({c.strike for c in read.chain.contracts})
            shown = f"{strikes[0]:f}-{strikes[-1]:f}" if strikes else "none"
            raise OptionsInputError(
                f"unknown contract {missing[0]}: the broker lists no such contract for "
                f"{underlying} {expiry} (listed strikes {shown}; see `options chain "
                f"{underlying} --expiry {expiry}`)"
            )
    return QuoteResult(contracts=[found[s] for s, _ in wanted])


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def cmd_quote(args: argparse.Namespace, settings: Settings) -> int:
    """Print the contracts' quotes (a table, or JSON)."""
    from cli.options import EXIT_BAD_INPUT, OptionsInputError

    try:
        wanted = parse_contracts(args.contracts)
    except ValueError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    try:
        result = asyncio.run(read_quotes(settings, wanted))
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    except BrokerError as exc:
        return broker_failed(exc, settings)
    if args.json:
        return emit_model(result)
    say_table(
        [
            (
                c.symbol,
                str(c.bid),
                str(c.ask),
                str(c.mid),
                _cell(c.delta),
                _cell(c.iv),
                str(c.open_interest),
            )
            for c in result.contracts
        ],
        header=("contract", "bid", "ask", "mid", "delta", "iv", "open interest"),
    )
    return 0
