"""`starter.py options chain|rank` and `condor open [--dry-run]`: option chains, candidates,
and an iron condor planned - and, without --dry-run, opened as an OptionTradeWorkflow.

Chains come from the broker through alpaca-py (broker/options.py), every read paid for from
the account's broker-call budget. `condor open` plans (trading/options/condor.py) and checks the
plan with the risk engine (trading/risk.py `check_defined_risk`: its max loss at the worst
credit the entry may accept, against the risk budget, the daily loss limit, the heat of the
stock positions to their covering stops plus the ledger's open option trades, and buying
power); without --dry-run, and only when the risk engine approves, it starts
`option-trade-<id>` (workflows/option_trade.py), which enters with one mleg limit order and
closes by the exit rules (trading/options/exits.py) or on FORCE_EXIT. --dry-run shows the risk
verdict and places nothing (its exit code is the planner's).
Exit codes: 0 done; 1 the planner or the risk engine refused, or the broker failed; 2 bad
input; 75 rate limited.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import secrets
from datetime import date, datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from temporalio.common import WorkflowIDReusePolicy

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
from cli.broker_calls import WaitLine, broker_failed, cli_broker, metered_broker
from cli.output import emit_model, fail, say, say_table
from clients import make_client, make_pool
from contracts import option_trade
from ledger.option_trades import OptionTrades
from settings import ConfigError, Settings
from trading.entry_decision import EntryBook, account_view, open_risks
from trading.ids import new_trade_id
from trading.models import Frozen, evolve
from trading.options.chain import (
    CONTRACT_MULTIPLIER,
    OptionChain,
    OptionContractQuote,
    OptionRight,
)
from trading.options.condor import (
    CondorPlan,
    CondorRefusal,
    IronCondorConfig,
    days_to_expiry,
    pick_expiry,
    plan_iron_condor,
)
from trading.options.ranker import (
    WEIGHTS,
    OptionRankConfig,
    RankedCandidate,
    rank_candidates,
    vertical_candidates,
)
from trading.options.records import OptionTradesQuery, max_loss_usd
from trading.options.trade_models import PRICE_TICK, OptionTradeInput, OptionTradeSpec
from trading.risk import DefinedRisk, DefinedRiskProposal, RiskVerdict, check_defined_risk
from workflows.option_trade import OptionTradeWorkflow

EXIT_REFUSED = 1
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


class CondorDryRun(Frozen):
    """`condor open [--dry-run] --json`: the plan, or the planner's refusal, the risk engine's
    verdict on it, and (without --dry-run) the option trade started for it."""

    dry_run: bool = True
    placed: bool = False
    trade_id: str | None = None
    workflow_id: str | None = None
    today: date
    underlying_price: Decimal
    config: IronCondorConfig
    plan: CondorPlan | None = None
    refusal: CondorRefusal | None = None
    risk: RiskVerdict | None = None  # the risk engine on the plan (None: not asked)
    risk_error: str | None = None  # why the risk engine could not be asked


class RiskReadError(Exception):
    """The account, the positions or the ledger's option trades could not be read."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `options chain`, `options rank` and `condor open`."""
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

    condor = commands.add_parser("condor", help="iron condors: plan one, or open it")
    condor_sub = condor.add_subparsers(dest="condor_command", required=True, metavar="COMMAND")
    opened = condor_sub.add_parser(
        "open",
        help="plan an iron condor and open it as one mleg order guarded by its exit rules "
        "(--dry-run: plan only)",
    )
    opened.add_argument("symbol", help="underlying, e.g. AAPL")
    opened.add_argument("--expiry", help="YYYY-MM-DD (default: nearest the 30-45 day middle)")
    opened.add_argument("--delta", help="the shorts' |delta| (default 0.16)")
    opened.add_argument("--width", help=f"wing width in dollars (default {DEFAULT_WIDTH})")
    opened.add_argument("--qty", help="condors (default 1)")
    opened.add_argument("--dry-run", action="store_true", help="plan only; place nothing")
    opened.add_argument("--json", action="store_true", help="print JSON")
    opened.set_defaults(handler=cmd_condor_open)


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


def parse_delta(text: str | None) -> Decimal:
    """The shorts' |delta|, strictly between 0 and 0.5."""
    if text is None:
        return IronCondorConfig().short_delta
    try:
        delta = Decimal(text)
    except InvalidOperation:
        delta = Decimal(0)
    if not delta.is_finite() or not 0 < delta < Decimal("0.5"):
        raise OptionsInputError(f"--delta must be between 0 and 0.5 (exclusive), got {text!r}")
    return delta


def parse_qty(text: str | None) -> int:
    """Whole condors, at least 1."""
    if text is None:
        return 1
    try:
        qty = int(text)
    except ValueError:
        qty = 0
    if qty < 1:
        raise OptionsInputError(
            f"--qty must be a whole number of condors, at least 1, got {text!r}"
        )
    return qty


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


def _read(settings: Settings, symbol: str, expiry: date | None) -> ChainRead | int:
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
    read = _read(settings, symbol, expiry)
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
            (f"{strike:f}", *_cells(calls.get(strike)), *_cells(puts.get(strike)))
            for strike in sorted(set(calls) | set(puts))
        ]
        say_table(rows, header=("STRIKE", *_side("CALL"), *_side("PUT")))
    return 0


def _side(name: str) -> tuple[str, ...]:
    return (f"{name} BID", "ASK", "DELTA", "IV", "OI")


def _cells(contract: OptionContractQuote | None) -> tuple[str, ...]:
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
    read = _read(settings, symbol, None)
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


# ---- condor open -----------------------------------------------------------------------
def cmd_condor_open(args: argparse.Namespace, settings: Settings) -> int:
    """Plan an iron condor, check it with the risk engine and (without --dry-run, when it is
    approved) open it as an option trade."""
    try:
        symbol, expiry = parse_symbol(args.symbol), parse_expiry(args.expiry)
        width, delta, qty = parse_width(args.width), parse_delta(args.delta), parse_qty(args.qty)
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    read = _read(settings, symbol, expiry)
    if isinstance(read, int):
        return read
    chain, today = read.chain, read.today
    config = IronCondorConfig(short_delta=delta, wing_width=width, qty=qty)
    if expiry is not None:
        dte = days_to_expiry(expiry, today)
        if dte < 1:
            return fail(f"expiry {expiry} is today; a condor needs one at least a day away", 2)
        config = config.model_copy(update={"dte_min": dte, "dte_max": dte})
    chosen = pick_expiry(chain, today, config)
    try:
        check_width(chain, width, [chosen] if chosen is not None else [])
    except OptionsInputError as exc:
        return fail(f"{exc} on {chosen}", code=EXIT_BAD_INPUT)
    planned = plan_iron_condor(chain, today, config)
    plan = planned if isinstance(planned, CondorPlan) else None
    refusal = planned if isinstance(planned, CondorRefusal) else None
    result = CondorDryRun(
        dry_run=args.dry_run,
        today=today,
        underlying_price=chain.underlying_price,
        config=config,
        plan=plan,
        refusal=refusal,
    )
    code = 0 if plan is not None else EXIT_REFUSED
    if plan is not None:
        spec = condor_trade_spec(plan, datetime.now(ZoneInfo("UTC")))
        try:
            verdict = asyncio.run(condor_risk(settings, spec))
        except RiskReadError as exc:
            if not args.dry_run:
                return fail(f"condor not placed: its risk cannot be checked: {exc}")
            result = evolve(result, risk_error=str(exc))
        else:
            result = evolve(result, risk=verdict)
            if not args.dry_run and not verdict.approved:
                code = EXIT_REFUSED
            elif not args.dry_run:
                started = asyncio.run(_start_condor(settings, spec))
                result = evolve(result, placed=True, trade_id=spec.trade_id, workflow_id=started)
    if args.json:
        return emit_model(result, code)
    if refusal is not None:
        return fail(f"no condor: {refusal.reason.value}: {refusal.detail}", code=EXIT_REFUSED)
    assert plan is not None
    if code == EXIT_REFUSED and result.risk is not None:
        verdict = result.risk
        return fail(f"condor not placed: risk refused: {verdict.reason.value}: {verdict.detail}")
    _print_plan(plan, chain.underlying_price, placed=result.placed)
    say(_risk_line(result))
    if result.workflow_id is not None:
        say("")
        say(
            f"started {result.workflow_id}: one mleg limit order for a "
            f"{plan.credit_mid:.2f} credit, walking toward {plan.credit_natural:.2f} if unfilled"
        )
        say(f"Web UI: {_ui_link(settings, result.workflow_id)}")
    return 0


def _risk_line(result: CondorDryRun) -> str:
    verdict = result.risk
    if verdict is None:
        return f"risk: not checked ({result.risk_error})"
    if verdict.approved:
        return f"risk: approved: {verdict.detail}"
    return f"risk: would be refused: {verdict.reason.value}: {verdict.detail}"


async def condor_risk(settings: Settings, spec: OptionTradeSpec) -> RiskVerdict:
    """The risk engine on the condor: its max loss at the worst credit the entry may accept
    (what its ledger row counts until it fills), against the broker's account, the stock
    positions' risk to their covering stops and the ledger's open option trades."""
    try:
        pool = await make_pool(settings, min_size=1, max_size=2)
    except ConfigError as exc:
        raise RiskReadError(str(exc)) from None
    try:
        truth = await metered_broker(settings, pool).broker_truth()
        held = await OptionTrades(pool).list(OptionTradesQuery(open_only=True))
    except BrokerError as exc:
        raise RiskReadError(f"the broker could not be asked ({exc.message})") from None
    finally:
        await pool.close()
    options = [
        DefinedRisk(trade_id=t.id, symbol=t.underlying, max_loss=t.max_loss) for t in held.trades
    ]
    book = EntryBook()
    proposal = DefinedRiskProposal(
        underlying=spec.plan.underlying, qty=spec.qty, max_loss=max_loss_usd(spec, None)
    )
    return check_defined_risk(
        proposal, account_view(truth, book), open_risks(truth, book, options), settings.risk_limits
    )


def condor_trade_spec(plan: CondorPlan, now: datetime) -> OptionTradeSpec:
    """The option trade of a plan: ask the credit at the mids first and give up at most the
    way to the natural credit, one cent at a time; the default exit rules."""
    ask = plan.credit_mid.quantize(PRICE_TICK, rounding=ROUND_FLOOR)
    floor = plan.credit_natural.quantize(PRICE_TICK, rounding=ROUND_CEILING)
    return OptionTradeSpec(
        trade_id=new_trade_id(plan.underlying, now, secrets.token_hex(3)),
        plan=plan,
        qty=plan.qty,
        limit_credit=ask,
        max_walk=max(ask - max(floor, PRICE_TICK), Decimal(0)),
    )


async def _start_condor(settings: Settings, spec: OptionTradeSpec) -> str:
    """Start the trade's workflow (its id is used once)."""
    client = await make_client(settings)
    handle = await client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=option_trade.workflow_id(spec.trade_id),
        task_queue=settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )
    return handle.id


def _ui_link(settings: Settings, workflow_id: str) -> str:
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id}"
    )


def _print_plan(plan: CondorPlan, underlying_price: Decimal, *, placed: bool) -> None:
    say(
        f"iron condor {plan.underlying} {plan.expiry} ({plan.dte}d) x{plan.qty}, "
        f"underlying {underlying_price:.2f}" + ("" if placed else " - dry run, nothing placed")
    )
    say("")
    legs = (
        ("buy put", plan.long_put),
        ("sell put", plan.short_put),
        ("sell call", plan.short_call),
        ("buy call", plan.long_call),
    )
    rows = [
        (
            action,
            leg.symbol,
            f"{leg.strike:f}",
            f"{leg.bid:.2f}",
            f"{leg.ask:.2f}",
            f"{leg.mid:.3f}",
            *_cells(leg)[2:],
        )
        for action, leg in legs
    ]
    say_table(rows, header=("LEG", "SYMBOL", "STRIKE", "BID", "ASK", "MID", "DELTA", "IV", "OI"))
    say("")
    per = CONTRACT_MULTIPLIER * plan.qty
    say(
        f"credit: {plan.credit_mid:.3f} at the mids (${plan.credit:.2f}), "
        f"{plan.credit_natural:.2f} at the natural (${plan.credit_natural_usd:.2f}); "
        f"{plan.credit_to_width:.2%} of the {plan.width:f} width"
    )
    say(
        f"max loss: ${plan.max_loss:.2f} (${plan.width * per:.2f} width - credit at the mids); "
        f"${plan.max_loss_natural:.2f} at the natural"
    )
    say(f"break-evens: {plan.break_even_low:.2f} / {plan.break_even_high:.2f}")
    say(
        f"probability of profit ~ {plan.probability_of_profit:.2%}, "
        f"of max loss ~ {plan.probability_of_max_loss:.2%} (from the deltas)"
    )
