"""ReconcileActivities: reconcile's read side - one broker snapshot and the open trades, diffed.

The snapshot (every position and open order) and the ledger's open trades grow with the
account: at a few thousand trades each is larger than a Temporal payload may be (2 MB), and
decoding them in the workflow would hold its task for seconds. So neither enters the
workflow's history. This activity reads the snapshot first and the open trades second (a
trade opened in between is younger than the grace, so it is never taken for a ghost), diffs
them with trading/reconcile.py's pure `reconcile_plan`, and returns the plan with the
snapshot's view of each symbol a quantity sync will tell its trade.
"""

from __future__ import annotations

import asyncio

import asyncpg
from temporalio import activity

from activities.broker import as_application_error
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from ledger.trades import Trades
from trading.reconcile import position_updates, reconcile_plan
from trading.reconcile_models import PlannedReconcile, ReconcilePlanRequest


class ReconcileActivities:
    """Plans a reconcile where its inputs are read, so only the plan crosses into history."""

    def __init__(self, broker: MeteredGateway, pool: asyncpg.Pool) -> None:
        self._broker = broker
        self._trades = Trades(pool)

    @activity.defn
    async def plan_reconcile(self, request: ReconcilePlanRequest) -> PlannedReconcile:
        """One snapshot and the open trades, diffed; a failed snapshot fails it whole."""
        try:
            truth = await self._broker.broker_truth()
        except BrokerError as exc:
            raise as_application_error(exc) from None
        open_trades = await self._trades.list_open()
        # Pure CPU over every position and trade: off the worker's event loop.
        plan = await asyncio.to_thread(
            reconcile_plan,
            truth,
            open_trades,
            request.as_of,
            request.grace,
            request.max_actions,
            request.close_reason,
            request.stop_distance,
        )
        activity.logger.info(
            "reconcile plan over %d positions, %d open orders, %d open trades: %d adoptions, "
            "%d ghosts, %d quantity syncs (%d deferred)",
            len(truth.positions),
            len(truth.open_orders),
            len(open_trades),
            len(plan.adoptions),
            len(plan.ghost_closes),
            len(plan.quantity_syncs),
            plan.deferred,
        )
        return PlannedReconcile(
            fetched_at=truth.fetched_at,
            plan=plan,
            sync_updates=position_updates(truth, {s.symbol for s in plan.quantity_syncs}),
        )
