"""`condor open`'s checks and its entry: the risk engine, the claimed legs and the trading
control gate on a plan, and - without --dry-run - the trade's ledger row reserved under the
option-entry lock before its workflow starts.

Two `condor open` commands at the same moment would each check their risk against ledger
rows that do not hold the other's yet, and both could pass the heat cap. So the check and
the new trade's first row (PENDING_ENTRY, its max loss at the worst credit the entry may
accept - what OptionTradeWorkflow itself writes first) are one step under
ledger/entry_lock.py's lock: the second command waits, then checks against the first's row.
The workflow starts after the lock is released; its own first write finds the row as it
would have written it.

A start that fails leaves a row no workflow runs: when Temporal says the workflow does not
exist, the row is closed at once (`entry_not_started`); when it cannot say, the row is left
for reconcile, which closes a row with no legs held and no workflow running (a stricter
reading: meanwhile its max loss still counts in the heat).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

import asyncpg
from pydantic import Field
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.service import RPCError, RPCStatusCode

from activities.control_link import read_control_now
from broker.errors import BrokerError
from cli.broker_calls import metered_broker
from clients import make_client, make_pool
from contracts import option_trade
from ledger.entry_lock import EntryLockBusy, option_entry_lock
from ledger.option_trades import OptionTrades
from settings import ConfigError, Settings
from trading.entry_decision import EntryBook, account_view, open_risks
from trading.entry_gate import control_gate
from trading.models import Frozen
from trading.options.condor import CondorPlan, options_level_refusal
from trading.options.records import (
    OptionTradeGhost,
    OptionTradeRecord,
    OptionTradesQuery,
    max_loss_usd,
    option_trade_write,
    options_requirement_usd,
)
from trading.options.trade_models import (
    OptionTradeInput,
    OptionTradeSpec,
    OptionTradeState,
    OptionTradeStatus,
    opening_legs,
)
from trading.risk import DefinedRisk, DefinedRiskProposal, RiskVerdict, check_defined_risk
from workflows.option_trade import OptionTradeWorkflow

NOT_STARTED = "entry_not_started"


class ClaimedLeg(Frozen):
    """A leg of the plan that is already a leg of an open option trade."""

    symbol: str
    trade_id: str
    status: OptionTradeStatus


class RiskReadError(Exception):
    """The account, the positions, the ledger's option trades or trading control could not
    be read, or another condor open held the option-entry lock too long."""


class StartError(Exception):
    """The trade's row was reserved but its workflow could not be started."""


class CondorCheck(Frozen):
    """What the ledger and the broker say of a plan: the risk verdict and its claimed legs."""

    risk: RiskVerdict
    claimed: list[ClaimedLeg] = Field(default_factory=list)
    blocked: str | None = None  # trading control holds entries (halted, paused, unknown)
    options_level: str | None = None  # the account cannot trade spreads: why

    @property
    def refused(self) -> bool:
        return bool(self.options_level or self.blocked or self.claimed or not self.risk.approved)


class CondorEntry(Frozen):
    """`condor open`'s outcome: the check, and the workflow started when it passed."""

    check: CondorCheck
    workflow_id: str | None = None


def claimed_legs(plan: CondorPlan, open_trades: Iterable[OptionTradeRecord]) -> list[ClaimedLeg]:
    """The plan's legs that are legs of an open option trade (one contract, one trade), in
    the plan's leg order."""
    owners: dict[str, OptionTradeRecord] = {}
    for trade in open_trades:
        if trade.is_open:
            for leg in trade.legs:
                owners.setdefault(leg.symbol, trade)
    return [
        ClaimedLeg(symbol=leg.symbol, trade_id=owner.id, status=owner.status)
        for leg in opening_legs(plan)
        if (owner := owners.get(leg.symbol)) is not None
    ]


async def _open_pool(settings: Settings) -> asyncpg.Pool:
    try:
        return await make_pool(settings, min_size=1, max_size=3)
    except ConfigError as exc:
        raise RiskReadError(str(exc)) from None


async def _check(settings: Settings, pool: asyncpg.Pool, spec: OptionTradeSpec) -> CondorCheck:
    """The risk engine on the condor - its max loss at the worst credit the entry may accept
    (what its ledger row counts until it fills), against the broker's account, the stock
    positions' risk to their covering stops and the ledger's open option trades - the plan's
    legs those trades hold, and the market loop's own trading-control gate."""
    try:
        truth = await metered_broker(settings, pool).broker_truth()
        held = await OptionTrades(pool).list(OptionTradesQuery(open_only=True))
    except BrokerError as exc:
        raise RiskReadError(f"the broker could not be asked ({exc.message})") from None
    options = [
        DefinedRisk(trade_id=t.id, symbol=t.underlying, max_loss=t.max_loss) for t in held.trades
    ]
    book = EntryBook()
    proposal = DefinedRiskProposal(
        underlying=spec.plan.underlying,
        qty=spec.qty,
        max_loss=max_loss_usd(spec, None),
        requirement=options_requirement_usd(spec),
    )
    verdict = check_defined_risk(
        proposal, account_view(truth, book), open_risks(truth, book, options), settings.risk_limits
    )
    # A halted or paused (or unknown) trading control opens nothing.
    try:
        gate = control_gate(await read_control_now(await make_client(settings)))
    except ConfigError as exc:
        raise RiskReadError(f"trading control could not be asked ({exc})") from None
    return CondorCheck(
        risk=verdict,
        claimed=claimed_legs(spec.plan, held.trades),
        blocked=None if gate.allowed else gate.reason,
        options_level=options_level_refusal(truth.account.options_trading_level),
    )


async def condor_check(settings: Settings, spec: OptionTradeSpec) -> CondorCheck:
    """The plan's check alone (--dry-run): nothing is locked, written or started."""
    pool = await _open_pool(settings)
    try:
        return await _check(settings, pool, spec)
    finally:
        await pool.close()


async def open_condor(settings: Settings, spec: OptionTradeSpec) -> CondorEntry:
    """Check the plan and reserve its ledger row under the option-entry lock, then start its
    workflow; a refused plan writes and starts nothing."""
    pool = await _open_pool(settings)
    workflow_id = option_trade.workflow_id(spec.trade_id)
    try:
        try:
            async with option_entry_lock(pool):
                check = await _check(settings, pool, spec)
                if check.refused:
                    return CondorEntry(check=check)
                first = option_trade_write(spec, OptionTradeState(), workflow_id, datetime.now(UTC))
                await OptionTrades(pool).record(first)
        except EntryLockBusy as exc:
            raise RiskReadError(str(exc)) from None
        client: Client | None = None
        try:
            client = await make_client(settings)
            await _start(client, settings, spec)
        except Exception as exc:  # any failure to start: the row must not count forever
            if client is not None:
                await _unreserve(client, pool, spec, workflow_id)
            raise StartError(f"{workflow_id} could not be started: {exc}") from None
        return CondorEntry(check=check, workflow_id=workflow_id)
    finally:
        await pool.close()


async def _start(client: Client, settings: Settings, spec: OptionTradeSpec) -> None:
    """Start the trade's workflow (its id is used once)."""
    await client.start_workflow(
        OptionTradeWorkflow.run,
        OptionTradeInput(spec=spec),
        id=option_trade.workflow_id(spec.trade_id),
        task_queue=settings.temporal_task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
    )


async def _unreserve(
    client: Client, pool: asyncpg.Pool, spec: OptionTradeSpec, workflow_id: str
) -> None:
    """Close the reserved row when Temporal says its workflow does not exist; otherwise (it
    may have started, or Temporal cannot say) leave it to its workflow or to reconcile."""
    try:
        await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            ghost = OptionTradeGhost(
                trade_id=spec.trade_id, reason=NOT_STARTED, at=datetime.now(UTC)
            )
            await OptionTrades(pool).close_ghost(ghost)
