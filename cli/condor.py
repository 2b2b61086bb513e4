"""`starter.py condor open [--dry-run]`: an iron condor planned - and, without --dry-run,
opened as an OptionTradeWorkflow.

The chain is read as `options chain` reads it (cli/options.py). `condor open` plans
(trading/options/condor.py) and checks the plan with the risk engine (trading/risk.py
`check_defined_risk`: its max loss at the worst credit the entry may accept, against the risk
budget, the daily loss limit, the heat of the stock positions to their covering stops plus
the ledger's open option trades, and buying power); without --dry-run, and only when the risk
engine approves, it starts `option-trade-<id>` (workflows/option_trade.py), which enters with
one mleg limit order and closes by the exit rules (trading/options/exits.py) or on FORCE_EXIT.
One option contract belongs to at most one open option trade: OptionTradeWorkflow checks,
before every close, that the account holds each leg as its trade opened it (the total held of
each contract against its own size, trading/options/legs.py), so two trades sharing a contract
would both hold their closes back forever. `condor open` refuses a plan any leg of which is a
leg of an open option trade in the ledger (`claimed_legs`), naming the contract and the trade.
An --expiry at or inside the exit rules' close_at_dte (21 days) is bad input: the condor would
be closed as soon as it opened.
Without --dry-run the checks and the new trade's ledger row are one step under the
option-entry lock, and the workflow starts after (cli/condor_entry.py): two commands at once
take turns, so they cannot both pass the heat cap.
--dry-run shows the risk verdict and the claimed legs and places nothing (its exit code is the
planner's).
Exit codes: 0 done; 1 the planner or the risk engine refused, a leg belongs to an open option
trade, or the broker failed; 2 bad input; 75 rate limited.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
from datetime import date, datetime
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from zoneinfo import ZoneInfo

from pydantic import Field

from cli.condor_entry import (
    ClaimedLeg,
    CondorEntry,
    RiskReadError,
    StartError,
    condor_check,
    open_condor,
)
from cli.options import (
    DEFAULT_WIDTH,
    EXIT_BAD_INPUT,
    OptionsInputError,
    check_width,
    contract_cells,
    parse_expiry,
    parse_symbol,
    parse_width,
    read_or_exit,
)
from cli.output import emit_model, fail, say, say_table
from settings import Settings
from trading.ids import new_trade_id
from trading.models import Frozen, evolve
from trading.options.chain import CONTRACT_MULTIPLIER
from trading.options.condor import (
    CondorPlan,
    CondorRefusal,
    IronCondorConfig,
    days_to_expiry,
    pick_expiry,
    plan_iron_condor,
)
from trading.options.exits import CondorExitRules
from trading.options.trade_models import (
    PRICE_TICK,
    OptionTradeSpec,
)
from trading.risk import RiskVerdict

EXIT_REFUSED = 1


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
    claimed: list[ClaimedLeg] = Field(default_factory=list)  # legs open trades hold: refused
    blocked: str | None = None  # trading control holds entries: refused (the gate's reason)
    options_level: str | None = None  # the account's options level allows no spread: refused


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `condor open`."""
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


# ---- condor open -----------------------------------------------------------------------
def cmd_condor_open(args: argparse.Namespace, settings: Settings) -> int:
    """Plan an iron condor, check it with the risk engine and (without --dry-run, when it is
    approved) open it as an option trade."""
    try:
        symbol, expiry = parse_symbol(args.symbol), parse_expiry(args.expiry)
        width, delta, qty = parse_width(args.width), parse_delta(args.delta), parse_qty(args.qty)
    except OptionsInputError as exc:
        return fail(str(exc), code=EXIT_BAD_INPUT)
    read = read_or_exit(settings, symbol, expiry)
    if isinstance(read, int):
        return read
    chain, today = read.chain, read.today
    config = IronCondorConfig(short_delta=delta, wing_width=width, qty=qty)
    if expiry is not None:
        dte = days_to_expiry(expiry, today)
        if dte < 1:
            return fail(f"expiry {expiry} is today; a condor needs one at least a day away", 2)
        if (too_close := expiry_too_close(expiry, dte)) is not None:
            return fail(too_close, code=EXIT_BAD_INPUT)
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
            if args.dry_run:
                entry = CondorEntry(check=asyncio.run(condor_check(settings, spec)))
            else:
                entry = asyncio.run(open_condor(settings, spec))
        except RiskReadError as exc:
            if not args.dry_run:
                return fail(f"condor not placed: its risk cannot be checked: {exc}")
            result = evolve(result, risk_error=str(exc))
        except StartError as exc:
            return fail(f"condor not placed: {exc}")
        else:
            checked = entry.check
            result = evolve(
                result,
                risk=checked.risk,
                claimed=checked.claimed,
                blocked=checked.blocked,
                options_level=checked.options_level,
            )
            if entry.workflow_id is not None:
                result = evolve(
                    result, placed=True, trade_id=spec.trade_id, workflow_id=entry.workflow_id
                )
            elif not args.dry_run:
                code = EXIT_REFUSED
    if args.json:
        return emit_model(result, code)
    if refusal is not None:
        return fail(f"no condor: {refusal.reason.value}: {refusal.detail}", code=EXIT_REFUSED)
    assert plan is not None
    if code == EXIT_REFUSED and result.options_level:
        return fail(f"condor not placed: {result.options_level}")
    if code == EXIT_REFUSED and result.blocked:
        return fail(f"condor not placed: {result.blocked} (`control resume` allows entries)")
    if code == EXIT_REFUSED and result.claimed:
        return fail(f"condor not placed: {claimed_message(result.claimed)}")
    if code == EXIT_REFUSED and result.risk is not None:
        verdict = result.risk
        return fail(f"condor not placed: risk refused: {verdict.reason.value}: {verdict.detail}")
    _print_plan(plan, chain.underlying_price, placed=result.placed)
    say(_risk_line(result))
    if result.options_level:
        say(f"options level: would be refused: {result.options_level}")
    if result.blocked:
        say(f"trading control: would be refused: {result.blocked}")
    if result.claimed:
        say(f"legs: would be refused: {claimed_message(result.claimed)}")
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


def expiry_too_close(expiry: date, dte: int, rules: CondorExitRules | None = None) -> str | None:
    """Why a condor cannot be opened at this expiry (None: it can): at or inside the exit
    rules' close_at_dte it would be closed on its first check, right after it opened."""
    close_at = (rules or CondorExitRules()).close_at_dte
    if dte > close_at:
        return None
    return (
        f"expiry {expiry} is {dte} days out; condors are closed at {close_at} days to expiry: "
        f"pick an expiry more than {close_at} days out"
    )


def claimed_message(claimed: list[ClaimedLeg]) -> str:
    """The claimed legs, their trades and what to do instead."""
    legs = ", ".join(
        f"{c.symbol} is a leg of open option trade {c.trade_id} ({c.status.value})" for c in claimed
    )
    trades = ", ".join(dict.fromkeys(c.trade_id for c in claimed))
    return (
        f"{legs}; an option contract belongs to one open option trade (two trades sharing it "
        f"would each hold their close back): pick another --expiry, --delta or --width, or "
        f"close {trades} first (python starter.py trade exit <id>)"
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
            *contract_cells(leg)[2:],
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
