"""`starter.py trade ...`: open, exit, tighten and inspect trades.

Stock trades are TradeWorkflows; `exit`, `status` and `list` also serve option trades
(OptionTradeWorkflow, see cli/option_trades.py): an id that names no stock trade is looked
up as an option trade.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, TypeVar

from temporalio.client import WorkflowUpdateFailedError

from activities.option_link import OptionTradeLink
from activities.trade_link import TradeLink
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from cli import option_trades
from cli.broker_calls import broker_failed, cli_broker
from cli.output import emit_json, fail, say, table
from clients import make_client
from contracts import option_trade, trade
from settings import Settings
from trading.ids import new_trade_id, validate_trade_id
from trading.ledger_records import ExitUrgency
from trading.options.trade_models import OptionForceExit, OptionTradeView
from trading.ticks import is_on_tick, tick_size
from trading.trade_models import (
    EntryType,
    ForceExit,
    TightenResult,
    TightenStop,
    TradeSpec,
    TradeStatusView,
)

T = TypeVar("T")


class CliInputError(Exception):
    """A command-line value is wrong; the message says which and what to do."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `trade` command group."""
    group = commands.add_parser("trade", help="open, exit, tighten and inspect trades")
    sub = group.add_subparsers(dest="trade_command", required=True, metavar="COMMAND")

    opened = sub.add_parser("open", help="enter a long position guarded by a stop")
    opened.add_argument("symbol", help="ticker, e.g. AAPL")
    opened.add_argument("--qty", required=True, help="whole shares to buy")
    opened.add_argument("--stop", required=True, help="protective stop price (below market)")
    opened.add_argument("--limit", help="limit entry price (default: market order)")
    opened.add_argument("--take-profit", help="take-profit limit price (above market)")
    opened.set_defaults(handler=cmd_open)

    exited = sub.add_parser("exit", help="exit a trade now or at the next open")
    exited.add_argument("trade_id")
    when = exited.add_mutually_exclusive_group()
    when.add_argument("--now", action="store_true", help="market exit now (default)")
    when.add_argument(
        "--next-open",
        action="store_true",
        help="plan the exit for the next session's opening window",
    )
    exited.add_argument("--reason", default="manual exit from the CLI", help="why (audited)")
    exited.set_defaults(handler=cmd_exit)

    tighten = sub.add_parser("tighten", help="raise the protective stop (never lowers it)")
    tighten.add_argument("trade_id")
    tighten.add_argument("price")
    tighten.set_defaults(handler=cmd_tighten)

    status = sub.add_parser("status", help="one trade's state")
    status.add_argument("trade_id")
    status.add_argument("--json", action="store_true", help="print JSON")
    status.set_defaults(handler=cmd_status)

    listed = sub.add_parser(
        "list", help="recent trades: stock (Temporal visibility) and option (the ledger)"
    )
    listed.add_argument("--json", action="store_true", help="print JSON")
    listed.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    listed.set_defaults(handler=cmd_list)


def _decimal(value: str, what: str) -> Decimal:
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise CliInputError(f"{what} must be a number, got {value!r}") from None
    if not number.is_finite() or number <= 0:
        raise CliInputError(f"{what} must be positive, got {value}")
    return number


def _price(value: str, what: str) -> Decimal:
    price = _decimal(value, what)
    if not is_on_tick(price):
        tick = tick_size(price)
        raise CliInputError(
            f"{what} {price} is a sub-penny price; prices at or above $1.00 use ${tick} "
            f"steps (e.g. {price.quantize(tick)})"
        )
    return price


def _ui_link(settings: Settings, workflow_id: str) -> str:
    return (
        f"{settings.temporal_ui_url.rstrip('/')}/namespaces/{settings.temporal_namespace}"
        f"/workflows/{workflow_id}"
    )


async def validate_open(args: argparse.Namespace, broker: MeteredGateway) -> TradeSpec:
    """Check the order against the broker before anything starts; raise CliInputError."""
    symbol = args.symbol.strip().upper()
    qty = _decimal(args.qty, "--qty")
    if qty != qty.to_integral_value():
        raise CliInputError(f"--qty must be whole shares, got {qty}")
    stop = _price(args.stop, "--stop")
    limit = _price(args.limit, "--limit") if args.limit else None
    take_profit = _price(args.take_profit, "--take-profit") if args.take_profit else None
    asset = await broker.find_asset(symbol)
    if asset is None:
        raise CliInputError(f"unknown symbol {symbol!r}: the broker has no such asset")
    if not asset.tradable:
        raise CliInputError(f"{symbol} is not tradable at the broker (status {asset.status})")
    quote = (await broker.latest_quotes([symbol]))[0]
    reference = limit or quote.ask
    if stop >= reference:
        raise CliInputError(
            f"--stop {stop} must be below the entry price {reference} for a long "
            f"({'limit' if limit else 'current ask'})"
        )
    if take_profit is not None and take_profit <= reference:
        raise CliInputError(
            f"--take-profit {take_profit} must be above the entry price {reference}"
        )
    trade_id = new_trade_id(symbol, datetime.now(UTC), uuid.uuid4().hex)
    return TradeSpec(
        trade_id=trade_id,
        symbol=symbol,
        qty=qty,
        entry_type=EntryType.LIMIT if limit else EntryType.MARKET,
        limit_price=limit,
        stop_price=stop,
        take_profit_price=take_profit,
    )


def cmd_open(args: argparse.Namespace, settings: Settings) -> int:
    """Validate against the broker (waiting out a rate limit), then start TradeWorkflow."""

    async def validated() -> TradeSpec:
        async with cli_broker(settings) as broker:
            return await validate_open(args, broker)

    try:
        spec = asyncio.run(validated())
    except CliInputError as exc:
        return fail(str(exc), code=2)
    except BrokerError as exc:
        return broker_failed(exc, settings)
    workflow_id = trade.workflow_id(spec.trade_id)

    async def start() -> None:
        link = TradeLink(await make_client(settings), settings.temporal_task_queue)
        await link.start(spec, once=True)

    asyncio.run(start())
    say(
        f"trade {spec.trade_id} started: buy {spec.qty} {spec.symbol} "
        f"({spec.entry_type.value}{f' @ {spec.limit_price}' if spec.limit_price else ''}), "
        f"stop {spec.stop_price}"
        + (f", take-profit {spec.take_profit_price}" if spec.take_profit_price else "")
    )
    say(f"workflow: {workflow_id}")
    say(f"web UI:   {_ui_link(settings, workflow_id)}")
    return 0


def _checked_id(trade_id: str) -> str:
    try:
        return validate_trade_id(trade_id)
    except ValueError as exc:
        raise CliInputError(str(exc)) from None


def _unknown(trade_id: str) -> CliInputError:
    return CliInputError(
        f"unknown trade {trade_id!r} (no workflow {trade.workflow_id(trade_id)} or "
        f"{option_trade.workflow_id(trade_id)}); see `python starter.py trade list`"
    )


async def _is_option_trade(settings: Settings, trade_id: str) -> bool:
    """True when the id names no stock trade but an option trade; CliInputError for neither."""
    client = await make_client(settings)
    if await TradeLink(client, settings.temporal_task_queue).status(trade_id) is not None:
        return False
    if await OptionTradeLink(client).status(trade_id) is not None:
        return True
    raise _unknown(trade_id)


def _run_on_trade(
    settings: Settings, trade_id: str, action: Callable[[TradeLink], Awaitable[T]]
) -> T:
    """Run `action` on a stock trade that exists (running or ended); else CliInputError."""
    _checked_id(trade_id)

    async def go() -> T:
        link = TradeLink(await make_client(settings), settings.temporal_task_queue)
        if await link.status(trade_id) is None:
            raise _unknown(trade_id)
        return await action(link)

    return asyncio.run(go())


def cmd_exit(args: argparse.Namespace, settings: Settings) -> int:
    """Signal force_exit (a stock trade's, or an option trade's FORCE_EXIT)."""
    urgency = ExitUrgency.NEXT_OPEN if args.next_open else ExitUrgency.IMMEDIATE
    try:
        is_option = asyncio.run(_is_option_trade(settings, _checked_id(args.trade_id)))
    except CliInputError as exc:
        return fail(str(exc), code=2)
    if is_option:
        return _exit_option(args, settings)

    async def signal(link: TradeLink) -> bool:
        request = ForceExit(urgency=urgency, reason=args.reason)
        return await link.signal(args.trade_id, trade.FORCE_EXIT, request)

    try:
        delivered = _run_on_trade(settings, args.trade_id, signal)
    except CliInputError as exc:
        return fail(str(exc), code=2)
    if not delivered:
        return fail(f"trade {args.trade_id} is no longer running; nothing to exit", code=1)
    say(f"exit ({urgency.value}) requested for trade {args.trade_id}: {args.reason}")
    say(f"web UI: {_ui_link(settings, trade.workflow_id(args.trade_id))}")
    return 0


def _exit_option(args: argparse.Namespace, settings: Settings) -> int:
    """An option trade closes now with one mleg order (it has no next-open exit)."""
    if args.next_open:
        return fail(
            f"trade {args.trade_id} is an option trade: it exits now only (one mleg order "
            "at the natural debit); run it again without --next-open",
            code=2,
        )

    async def signal() -> bool:
        client = await make_client(settings)
        request = OptionForceExit(reason=args.reason)
        return await OptionTradeLink(client).force_exit(args.trade_id, request)

    if not asyncio.run(signal()):
        return fail(f"option trade {args.trade_id} is no longer running; nothing to exit", 1)
    say(f"exit requested for option trade {args.trade_id}: {args.reason}")
    say(f"web UI: {_ui_link(settings, option_trade.workflow_id(args.trade_id))}")
    return 0


def cmd_tighten(args: argparse.Namespace, settings: Settings) -> int:
    """Run the tighten_stop update; a looser stop is refused by the workflow's validator."""
    try:
        price = _price(args.price, "price")

        async def update(link: TradeLink) -> TightenResult:
            return await link.update(args.trade_id, trade.TIGHTEN_STOP, TightenStop(price=price))

        result = _run_on_trade(settings, args.trade_id, update)
    except CliInputError as exc:
        return fail(str(exc), code=2)
    except WorkflowUpdateFailedError as exc:
        return fail(f"tighten refused: {exc.cause}", code=2)
    say(f"stop for trade {args.trade_id} is now {result.stop_price} (order {result.stop_order_id})")
    if result.note and not result.note.startswith("protected"):
        say(f"  note: {result.note}")
    return 0


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    """Query a trade's state (stock or option)."""
    try:
        is_option = asyncio.run(_is_option_trade(settings, _checked_id(args.trade_id)))
    except CliInputError as exc:
        return fail(str(exc), code=2)
    if is_option:
        return _option_status(args, settings)

    async def query(link: TradeLink) -> TradeStatusView:
        return await link.query(args.trade_id, trade.STATUS)

    try:
        view: TradeStatusView = _run_on_trade(settings, args.trade_id, query)
    except CliInputError as exc:
        return fail(str(exc), code=2)
    if args.json:
        emit_json({"kind": "stock", **view.model_dump(mode="json")})
        return 0
    state = view.state
    rows = [
        ("trade", view.trade_id),
        ("symbol", view.symbol),
        ("status", view.status.value),
        ("position", str(state.position_qty)),
        ("entry price", str(state.entry_price or "-")),
        ("stop", f"{state.stop_price} (order {state.stop_order_id or '-'})"),
        ("take-profit", str(state.take_profit_price or "-")),
        ("rescues", f"{state.rescue.ok} ok / {state.rescue.failed} failed"),
        ("close reason", str(state.close_reason.value if state.close_reason else "-")),
        ("web UI", _ui_link(settings, trade.workflow_id(view.trade_id))),
    ]
    say(table(rows))
    return 0


def _option_status(args: argparse.Namespace, settings: Settings) -> int:
    async def query() -> OptionTradeView:
        return await OptionTradeLink(await make_client(settings)).view(args.trade_id)

    view = asyncio.run(query())
    if args.json:
        emit_json({"kind": "iron_condor", **view.model_dump(mode="json")})
        return 0
    link = _ui_link(settings, option_trade.workflow_id(view.trade_id))
    say(table(option_trades.status_rows(view, link)))
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Recent TradeWorkflows (visibility) and option trades (ledger), newest first."""
    if args.limit < 1:
        return fail(f"--limit must be at least 1, got {args.limit}", code=2)

    async def listing() -> list[dict[str, Any]]:
        client = await make_client(settings)
        found: list[dict[str, Any]] = []
        query = f"WorkflowType = '{trade.WORKFLOW.name}'"
        async for wf in client.list_workflows(query, limit=args.limit):
            attrs = wf.search_attributes
            found.append(
                {
                    "trade_id": trade.trade_id_of(wf.id),
                    "kind": "stock",
                    "workflow_id": wf.id,
                    "symbol": (attrs.get("TradeSymbol") or [None])[0],
                    "status": (attrs.get("TradeStatus") or [None])[0],
                    "running": wf.status is not None and wf.status.name == "RUNNING",
                    "started_at": wf.start_time.isoformat(),
                }
            )
        found += await option_trades.option_listing(settings, args.limit)
        found.sort(key=lambda t: t["started_at"], reverse=True)
        return found[: args.limit]

    trades = asyncio.run(listing())
    if args.json:
        emit_json(trades)
        return 0
    if not trades:
        say("no trades yet (open one with: python starter.py trade open SYMBOL --qty N --stop P)")
        return 0
    say(
        table(
            [
                (t["trade_id"], t["kind"], str(t["symbol"]), str(t["status"]), t["started_at"][:19])
                for t in trades
            ],
            header=("trade", "kind", "symbol", "status", "started (UTC)"),
        )
    )
    return 0
