"""Every side effect of the system, as activity methods on classes built with their clients.

`build_activities` is the one list of what a worker registers: bound methods, listed by hand
as Temporal's samples do, so nothing depends on the SDK's private registration details.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
from temporalio.client import Client

from activities.broker import BrokerActivities
from activities.broker_sync import BrokerSyncActivities
from activities.entries import EntryActivities
from activities.ledger import LedgerActivities
from activities.notify import NotifyActivities
from activities.option_adoption import OptionAdoptionActivities
from activities.option_ledger import OptionLedgerActivities
from activities.option_link import OptionLinkActivities
from activities.option_positions import OptionPositionActivities
from activities.options import OptionOrderActivities
from activities.reconcile import ReconcileActivities
from activities.scan import ScanActivities
from activities.scoring import ScoringActivities
from activities.trade_link import TradeLink, TradeLinkActivities
from broker.budget import BrokerBudget
from broker.endpoint import BrokerEndpoint
from broker.metered import MeteredGateway, ObservedGateway
from broker.option_marks import MARKS_MAX_AGE
from broker.option_orders import OptionOrdersGateway
from broker.option_positions import MeteredOptionPositions, OptionPositionsGateway
from ops.notifier import AlertTarget
from trading.broker_budget import BudgetConfig
from trading.broker_sync_models import SyncRequest, SyncSummary


@dataclass(frozen=True)
class ActivityDeps:
    """What a worker's activities are built with: ledger pool, broker, Temporal, queue, budget.

    Broker calls go through one MeteredGateway, whose budget every process using the same
    keys shares through the ledger's PostgreSQL (`budget_config`: the settings' limit and
    reserves; the defaults when not given).
    """

    pool: asyncpg.Pool
    gateway: ObservedGateway
    client: Client
    endpoint: BrokerEndpoint
    task_queue: str
    budget_config: BudgetConfig | None = None
    alerts: AlertTarget | None = None  # ALERT_WEBHOOK_URL; None: notices recorded, not sent
    marks_max_age: timedelta = MARKS_MAX_AGE  # OPTION_MARKS_MAX_AGE_S: the marks poll's cache

    def metered(self) -> MeteredGateway:
        """The gateway behind the account's shared budget."""
        budget = BrokerBudget.for_endpoint(
            self.pool, self.endpoint, self.budget_config or BudgetConfig()
        )
        return MeteredGateway(self.gateway, budget)

    def broker_sync(self, metered: MeteredGateway) -> BrokerSyncActivities:
        """The listener and poller, telling trades through a TradeLink on this queue."""
        link = TradeLink(self.client, self.task_queue)
        return BrokerSyncActivities(metered, self.endpoint, link, self.pool)


def build_activities(deps: ActivityDeps) -> list[Callable[..., Any]]:
    """All activity callables a worker registers, bound to their clients (on its event loop)."""
    pool, client = deps.pool, deps.client
    ledger = LedgerActivities(pool)
    metered = deps.metered()
    broker = BrokerActivities(metered, asyncio.get_running_loop())
    link = TradeLink(client, deps.task_queue)
    sync = deps.broker_sync(metered)
    entries = EntryActivities(client, pool)
    scan = ScanActivities(broker)
    trades = TradeLinkActivities(link)
    scoring = ScoringActivities(pool)
    option_positions = MeteredOptionPositions(OptionPositionsGateway(deps.endpoint), metered.budget)
    reconcile = ReconcileActivities(metered, pool, option_positions)
    option_adoption = OptionAdoptionActivities(client, deps.task_queue, pool)
    notify = NotifyActivities(pool, deps.alerts)
    options = OptionOrderActivities(
        OptionOrdersGateway(deps.endpoint), metered.budget, marks_max_age=deps.marks_max_age
    )
    option_ledger = OptionLedgerActivities(pool)
    option_link = OptionLinkActivities(client)
    option_legs = OptionPositionActivities(option_positions)
    return [
        ledger.append_audit,
        ledger.get_audit,
        ledger.create_trade,
        ledger.transition_trade,
        ledger.record_entry_fill,
        ledger.record_protection,
        ledger.record_exit_intent,
        ledger.close_trade,
        ledger.close_trades_audited,
        ledger.list_open_trades,
        ledger.upsert_order,
        ledger.insert_signal,
        ledger.insert_signals,
        ledger.expire_signals,
        ledger.signal_funnel,
        ledger.record_risk_event,
        ledger.start_reconcile_run,
        ledger.finish_reconcile_run,
        ledger.record_entry_run,
        broker.get_account,
        broker.get_clock,
        broker.get_calendar,
        broker.get_positions,
        broker.probe_position,
        broker.get_open_orders,
        broker.get_broker_truth,
        broker.get_order,
        broker.probe_order,
        broker.get_order_by_client_id,
        broker.submit_order,
        broker.cancel_order,
        broker.replace_order,
        broker.close_position,
        broker.latest_quotes,
        broker.get_bars,
        scan.scan_watchlist,
        sync.listen_trade_updates,
        sync.sync_positions,
        sync.stored_view,
        entries.list_entry_candidates,
        entries.control_view,
        entries.entry_context,
        entries.record_signal_decisions,
        entries.signal_paths,
        entries.tell_control,
        trades.start_trade,
        trades.force_exit_trade,
        trades.add_on,
        trades.guard_trade,
        trades.guard_trades,
        scoring.score_signals,
        reconcile.plan_reconcile,
        notify.notify,
        notify.watch_uncovered,
        options.probe_option_order,
        options.submit_mleg_order,
        options.get_option_order,
        options.open_option_orders,
        options.cancel_option_order,
        options.option_marks,
        option_ledger.record_option_trade,
        option_ledger.list_option_trades,
        option_ledger.close_ghost_option_trade,
        option_link.force_exit_option_trade,
        option_legs.option_legs_held,
        option_adoption.adopt_option_trade,
        option_adoption.option_workflows,
    ]


async def sync_at_start(deps: ActivityDeps) -> SyncSummary:
    """A worker that starts - perhaps after one crashed - polls the broker once itself.

    Stops that died while no worker listened are seen now, not at BrokerSync's next poll
    (which would first wait for BrokerSync's own task to leave the dead worker's queue); the
    trades it wakes are unstuck from the dead worker's sticky queue first.
    """
    sync = deps.broker_sync(deps.metered())
    return await sync.sync_positions(SyncRequest(reason="worker start", unstick=True))
