"""`broker verify` checks of the options assumptions the iron-condor trades rely on.

OptionTradeWorkflow opens and closes a condor with one `mleg` LIMIT order
(broker/option_orders.py), plans it from the contracts listing and the chain's quotes, greeks
and IV (broker/options.py); an assignment's P&L can only be known from the account's non-trade
activities (not booked yet). These checks ask the account the same questions through alpaca-py,
built the way our gateways build them: the options level and buying power, paging of
/v2/options/contracts, the chain snapshot, a 1-lot iron condor that can never fill (a credit of
the width less a cent: no one pays that), its replace, cancel and duplicate client_order_id, and
GET /v2/account/activities for OPEXC/OPASN/OPEXP. No option position is ever opened; the condor
is cancelled in the check and again by the session's cleanup.

Below options level 3 (an account that does not trade spreads) every check SKIPs, the first
saying what to do: that is no broker misbehaving, and stock trading does not need options, so
`prelive` still passes a stocks-only account (`condor open` refuses on it with the same advice).
An account that answers no options level at all FAILs.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from alpaca.trading.models import NonTradeActivity, OptionContractsResponse
from alpaca.trading.requests import GetOptionContractsRequest, ReplaceOrderRequest

from broker.option_orders import OptionOrdersGateway, mleg_request
from broker.options import ListedContract, build_chain, listed_contract
from broker.verify_session import (
    READ_TIMEOUT_S,
    BrokerAnswer,
    Check,
    Observed,
    Skip,
    VerifySession,
    failed,
    passed,
    verdict_of,
)
from trading.broker_models import TERMINAL_STATUSES, OrderSide, order_status
from trading.options.chain import OptionRight
from trading.options.condor import SPREADS_LEVEL
from trading.options.trade_models import MlegOrderIntent, OptionLeg

CONTRACTS_PAGE = 5
DAYS_OUT = (30, 45)
OPTION_EVENTS = ("OPEXC", "OPASN", "OPEXP")
CENT = Decimal("0.01")
ORDER_END_TIMEOUT_S = 10.0
OPTIONS_GATEWAY = "options_gateway"
OPTIONS_LEVEL = "options_level"
CONDOR_EXPIRY = "condor_expiry"
ENABLE_LEVEL_3 = (
    "enable options trading level 3 (multi-leg spreads) for this account in the Alpaca "
    "dashboard, then run broker verify again"
)


def _gateway(session: VerifySession) -> OptionOrdersGateway:
    """The options gateway our workers use (same clients, deadlines, error mapping), made once."""
    found = session.shared.get(OPTIONS_GATEWAY)
    if not isinstance(found, OptionOrdersGateway):
        found = OptionOrdersGateway(
            session.endpoint,
            read_timeout_s=READ_TIMEOUT_S,
            rate_limits=session.gateway.rate_limits,  # counted with the run's other requests
        )
        session.shared[OPTIONS_GATEWAY] = found
    return found


def _account(session: VerifySession) -> dict[str, Any]:
    account: Any = session.client_call(session.raw.client.get_account)
    return dict(account)


def _level(value: Any) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _options_level(session: VerifySession) -> int | None:
    """The account's options_trading_level, read once per run."""
    if OPTIONS_LEVEL not in session.shared:
        session.shared[OPTIONS_LEVEL] = _level(_account(session).get("options_trading_level"))
    level: int | None = session.shared[OPTIONS_LEVEL]
    return level


def _needs_spreads(session: VerifySession) -> None:
    """Skip unless the account trades multi-leg spreads (level 3)."""
    level = _options_level(session)
    if level is None or level < SPREADS_LEVEL:
        raise Skip(
            f"the account's options level is {level}, not {SPREADS_LEVEL} (see options_account)"
        )


def _window(session: VerifySession) -> tuple[date, date]:
    return session.today + timedelta(days=DAYS_OUT[0]), session.today + timedelta(days=DAYS_OUT[1])


def _contracts_page(session: VerifySession, token: str | None) -> OptionContractsResponse:
    """One small page of the run symbol's contracts 30-45 days out, read by alpaca-py's model."""
    start, end = _window(session)
    request = GetOptionContractsRequest(
        underlying_symbols=[session.symbol],
        expiration_date_gte=start,
        expiration_date_lte=end,
        limit=CONTRACTS_PAGE,
        page_token=token,
    )
    raw: Any = session.client_call(lambda: session.raw.client.get_option_contracts(request))
    return OptionContractsResponse(**raw)


def _condor_expiry(session: VerifySession) -> tuple[date, list[ListedContract]]:
    """The first expiry 30-45 days out and its contracts (every page, as the planner lists)."""
    found = session.shared.get(CONDOR_EXPIRY)
    if found is None:
        first = _contracts_page(session, None).option_contracts or []
        if not first:
            start, end = _window(session)
            raise Skip(f"no {session.symbol} contracts expire between {start} and {end}")
        expiry = min(c.expiration_date for c in first)
        found = (expiry, _gateway(session).list_contracts(session.symbol, expiry, expiry))
        session.shared[CONDOR_EXPIRY] = found
    expiry_contracts: tuple[date, list[ListedContract]] = found
    return expiry_contracts


# ---- the checks ---------------------------------------------------------------------------
def options_account(session: VerifySession) -> Observed:
    """The account trades options at level 3 and answers an options buying power."""
    account = _account(session)
    level = _level(account.get("options_trading_level"))
    approved = _level(account.get("options_approved_level"))
    session.shared[OPTIONS_LEVEL] = level
    power_raw = account.get("options_buying_power")
    try:
        power: Decimal | None = Decimal(str(power_raw)) if power_raw is not None else None
    except ArithmeticError:
        power = None
    observed = (
        f"options_trading_level {level}, options_approved_level {approved}, "
        f"options_buying_power {power_raw}"
    )
    if level is None:
        return failed(f"{observed}: the account answered no options trading level")
    if level < SPREADS_LEVEL:
        # Not a broker misbehaving: an account that does not trade spreads. `condor open`
        # refuses on it with the same advice; stock trading does not need options.
        raise Skip(
            f"{observed}: below level {SPREADS_LEVEL}, no iron condor can open; {ENABLE_LEVEL_3}"
        )
    if power is None:
        return failed(f"{observed}: no options buying power answered")
    return passed(observed)


def contracts_paging(session: VerifySession) -> Observed:
    """GET /v2/options/contracts pages with next_page_token; page 2 differs from page 1."""
    _needs_spreads(session)
    first = _contracts_page(session, None)
    one = [listed_contract(c) for c in first.option_contracts or []]
    if len(one) < CONTRACTS_PAGE or not first.next_page_token:
        return failed(
            f"page 1: {len(one)} contracts (limit {CONTRACTS_PAGE}), next_page_token "
            f"{first.next_page_token!r}: the listing did not page"
        )
    second = _contracts_page(session, first.next_page_token)
    two = [listed_contract(c) for c in second.option_contracts or []]
    overlap = {c.symbol for c in one} & {c.symbol for c in two}
    start, end = _window(session)
    outside = [
        c.symbol
        for c in one + two
        if c.underlying != session.symbol or not start <= c.expiry <= end
    ]
    observed = (
        f"page 1: {len(one)} contracts ({one[0].symbol}..{one[-1].symbol}); page 2: "
        f"{len(two)} contracts" + (f" ({two[0].symbol}..)" if two else "")
    )
    problems = []
    if not two:
        problems.append("page 2 is empty")
    if overlap:
        problems.append(f"page 2 repeats {', '.join(sorted(overlap)[:3])}")
    if outside:
        problems.append(f"outside the filters: {', '.join(outside[:3])}")
    return verdict_of(not problems, "; ".join([observed, *problems]))


def chain_snapshot(session: VerifySession) -> Observed:
    """The chain snapshot answers quotes and, for some contracts, greeks and implied volatility."""
    _needs_spreads(session)
    expiry, listed = _condor_expiry(session)
    snapshots = _gateway(session).chain_snapshots(session.symbol, expiry, expiry)
    chain = build_chain(
        session.symbol, session.reference_price, datetime.now(UTC), listed, snapshots, expiry
    )
    quoted = [c for c in chain.contracts if c.bid > 0 or c.ask > 0]
    with_greeks = [c for c in quoted if c.delta is not None and c.iv is not None]
    observed = (
        f"expiry {expiry}: {len(listed)} contracts listed, {len(snapshots)} snapshots, "
        f"{len(quoted)} quoted, {len(with_greeks)} with greeks and implied volatility"
    )
    if with_greeks:
        sample = with_greeks[len(with_greeks) // 2]
        observed += f" (e.g. {sample.symbol}: delta {sample.delta}, iv {sample.iv})"
    return verdict_of(bool(quoted) and bool(with_greeks), observed)


def condor_legs(
    contracts: list[ListedContract], price: Decimal
) -> tuple[list[OptionLeg], Decimal] | None:
    """A 1-lot iron condor around `price` (short strikes ~3% out, the next strikes long) and
    its wider wing's width; None when the listing lacks the strikes."""
    puts = sorted(
        (c for c in contracts if c.right is OptionRight.PUT and c.strike < price),
        key=lambda c: c.strike,
    )
    calls = sorted(
        (c for c in contracts if c.right is OptionRight.CALL and c.strike > price),
        key=lambda c: c.strike,
    )
    short_puts = [c for c in puts if c.strike <= price * Decimal("0.97")] or puts
    short_calls = [c for c in calls if c.strike >= price * Decimal("1.03")] or calls
    if not short_puts or not short_calls:
        return None
    short_put, short_call = short_puts[-1], short_calls[0]
    long_puts = [c for c in puts if c.strike < short_put.strike]
    long_calls = [c for c in calls if c.strike > short_call.strike]
    if not long_puts or not long_calls:
        return None
    long_put, long_call = long_puts[-1], long_calls[0]
    legs = [
        OptionLeg(symbol=long_put.symbol, side=OrderSide.BUY),
        OptionLeg(symbol=short_put.symbol, side=OrderSide.SELL),
        OptionLeg(symbol=short_call.symbol, side=OrderSide.SELL),
        OptionLeg(symbol=long_call.symbol, side=OrderSide.BUY),
    ]
    width = max(short_put.strike - long_put.strike, long_call.strike - short_call.strike)
    return legs, width


def _read_order(session: VerifySession, order_id: str) -> dict[str, Any]:
    order: Any = session.client_call(lambda: session.raw.client.get_order_by_id(order_id))
    return dict(order)


def _wait_end(session: VerifySession, order_id: str) -> tuple[str, list[str]]:
    """Poll the order (as JSON) until it is final or 10 s pass: its status and the path."""
    deadline = time.monotonic() + ORDER_END_TIMEOUT_S
    seen: list[str] = []
    delay = 0.1
    while True:
        status = str(_read_order(session, order_id).get("status"))
        if not seen or seen[-1] != status:
            seen.append(status)
        if order_status(status) in TERMINAL_STATUSES or time.monotonic() >= deadline:
            return status, seen
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _cancel_and_wait(session: VerifySession, order_id: str) -> tuple[str, list[str]]:
    """Cancel the order as OptionOrdersGateway.cancel does and poll it to its end."""
    _gateway(session).cancel(order_id)
    return _wait_end(session, order_id)


def mleg_condor_order(session: VerifySession) -> Observed:
    """A never-filling 1-lot iron condor: accepted as mleg with its legs; the replace answer
    reported; cancelled to canceled; its client_order_id refused on resubmit."""
    _needs_spreads(session)
    expiry, listed = _condor_expiry(session)
    condor = condor_legs(listed, session.reference_price)
    if condor is None:
        raise Skip(f"the {expiry} listing lacks the strikes of an iron condor")
    legs, width = condor
    # A credit (negative limit) of the full width less a cent: the condor's worst loss is then
    # one cent a share, so no one fills it, and it takes almost no buying power.
    intent = MlegOrderIntent(
        client_order_id=session.client_order_id(), qty=1, legs=legs, limit_price=-(width - CENT)
    )
    placed = session.submit_option_raw(mleg_request(intent))
    if isinstance(placed, BrokerAnswer):
        return failed(f"the condor (limit {intent.limit_price}) was refused: {placed.describe()}")
    order_id = str(placed.get("id"))
    placed_legs = [leg for leg in placed.get("legs") or [] if isinstance(leg, dict)]
    leg_symbols = sorted(str(leg.get("symbol")) for leg in placed_legs)
    shape_ok = str(placed.get("order_class")) == "mleg" and leg_symbols == sorted(
        leg.symbol for leg in legs
    )
    shape = (
        f"placed ({placed.get('status')}) as {placed.get('order_class')!r} with "
        f"{len(placed_legs)} legs at limit {placed.get('limit_price')} (width {width})"
    )
    replace = session.replace_option_raw(
        order_id, ReplaceOrderRequest(limit_price=float(-(width - 2 * CENT)))
    )
    live_id = order_id
    if isinstance(replace, BrokerAnswer):
        replaced = f"replace refused: {replace.describe()}"
    else:
        # A replace is asynchronous: cancel the new order once the old one has ended.
        old_status, _ = _wait_end(session, order_id)
        live_id = str(replace.get("id"))
        replaced = f"replace accepted: new order {replace.get('status')}, old {old_status}"
    status, seen = _cancel_and_wait(session, live_id)
    again = session.submit_option_raw(mleg_request(intent))
    if isinstance(again, BrokerAnswer):
        probe = _gateway(session).probe_by_client_id(intent.client_order_id)
        found_id = probe.order.id if probe.order is not None else None
        duplicate_ok = (
            again.status == 422 and again.code == 40010001 and "unique" in again.message.lower()
        ) and found_id == order_id
        if found_id == order_id:
            lookup = "found the first order"
        elif found_id is not None:
            lookup = f"found another order {found_id}"
        else:
            why = f": {probe.error}" if probe.error else ""
            lookup = f"found nothing ({probe.outcome.value}{why})"
        duplicate = f"resubmit refused: {again.describe()}; lookup by client_order_id {lookup}"
    else:
        duplicate_ok = False
        duplicate = f"resubmit ACCEPTED as a second order {again.get('id')}"
    ok = shape_ok and status == "canceled" and duplicate_ok
    return verdict_of(
        ok,
        f"{shape}; {replaced}; cancelled: {' -> '.join(seen)}; {duplicate}",
        note="our workflow never replaces an mleg order: it cancels and resubmits",
    )


def option_activities(session: VerifySession) -> Observed:
    """GET /v2/account/activities?activity_types=OPEXC,OPASN,OPEXP answers a list."""
    _needs_spreads(session)
    # alpaca-py 0.44's TradingClient has no activities method: its own RESTClient.get.
    answer: Any = session.client_call(
        lambda: session.raw.client.get(
            "/account/activities", {"activity_types": ",".join(OPTION_EVENTS), "page_size": 20}
        )
    )
    if not isinstance(answer, list):
        return failed(f"not a list: {type(answer).__name__} {str(answer)[:120]}")
    parsed = [NonTradeActivity(**row) for row in answer]  # every row as alpaca-py reads it
    kinds = sorted({a.activity_type.value for a in parsed})
    other = [k for k in kinds if k not in OPTION_EVENTS]
    if other:
        return failed(f"{len(parsed)} activities, including types not asked for: {other}")
    if not parsed:
        return passed("an empty list (no option was exercised, assigned or expired yet)")
    return passed(f"{len(parsed)} activities ({', '.join(kinds)}), each read by alpaca-py")


OPTION_CHECKS: tuple[Check, ...] = (
    Check(
        "options_account",
        "The account trades multi-leg option spreads (options level 3)",
        f"options_trading_level >= {SPREADS_LEVEL} and an options_buying_power",
        "an option trade's entry: an iron condor is an mleg spread, level 3 only",
        options_account,
    ),
    Check(
        "option_contracts_paging",
        "The contracts listing pages with next_page_token",
        f"limit {CONTRACTS_PAGE}: a full page 1 with a token; page 2 other contracts",
        "the condor planner lists every contract of an expiry window by following the token",
        contracts_paging,
    ),
    Check(
        "option_chain_snapshot",
        "The chain snapshot answers quotes, greeks and implied volatility",
        "quotes for the expiry's contracts; greeks and IV for at least one",
        "the condor planner picks strikes by delta; option marks price exits and risk",
        chain_snapshot,
    ),
    Check(
        "mleg_condor_order",
        "A 1-lot iron condor is one mleg limit order; its client_order_id is used once",
        "accepted with order_class mleg and 4 legs; replace answer reported; canceled; "
        "a resubmit with the same client_order_id 422 40010001, the lookup finds the first",
        "an option trade's entry and exit: one mleg limit order, at most once by "
        "client_order_id, cancelled and resubmitted (never replaced) to walk the price",
        mleg_condor_order,
    ),
    Check(
        "option_activities",
        "Account activities answer the option events (OPEXC, OPASN, OPEXP)",
        "GET /v2/account/activities?activity_types=OPEXC,OPASN,OPEXP: a list (maybe empty)",
        "booking an assigned or exercised condor's P&L from the account's non-trade activities",
        option_activities,
    ),
)
