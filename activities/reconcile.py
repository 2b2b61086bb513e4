"""ReconcileActivities: reconcile's read side - one broker snapshot and the open trades, diffed.

The snapshot (every position and open order) and the ledger's open trades grow with the
account: at a few thousand trades each is larger than a Temporal payload may be (2 MB), and
decoding them in the workflow would hold its task for seconds. So neither enters the
workflow's history. This activity reads the snapshot first and the open trades second (a
trade opened in between is younger than the grace, so it is never taken for a ghost), diffs
them with trading/reconcile.py's pure `reconcile_plan`, and returns the plan with the
snapshot's view of each symbol a quantity sync will tell its trade.

Asked `with_options`, it also reads the option positions (after the stock snapshot, before
the ledger, for the same reason) and the open option trades, and puts their diff
(trading/options/positions.py) in `plan.options`. Either read failing fails the plan whole.
A trade that closes between the two reads has its legs in the positions read but no open
row: the rows read also hold those closed since the run's `as_of` (taken before the legs were
read, on the clock a row's closed_at is written with), so its legs are not taken for
unclaimed ones and adopted under a new id.
"""

from __future__ import annotations

import asyncio
from zoneinfo import ZoneInfo

import asyncpg
from temporalio import activity

from activities.broker import as_application_error
from broker.errors import BrokerError
from broker.metered import MeteredGateway
from broker.option_positions import MeteredOptionPositions
from ledger.option_trades import OptionTrades
from ledger.trades import Trades
from trading.options.condor_pairing import OptionPosition
from trading.options.positions import (
    OptionsPlan,
    capped_options,
    option_reconcile_plan,
)
from trading.reconcile import position_updates, reconcile_plan
from trading.reconcile_models import PlannedReconcile, ReconcilePlanRequest

NEW_YORK = ZoneInfo("America/New_York")


class ReconcileActivities:
    """Plans a reconcile where its inputs are read, so only the plan crosses into history."""

    def __init__(
        self,
        broker: MeteredGateway,
        pool: asyncpg.Pool,
        option_positions: MeteredOptionPositions | None = None,
    ) -> None:
        self._broker = broker
        self._trades = Trades(pool)
        self._option_trades = OptionTrades(pool)
        self._option_positions = option_positions

    @activity.defn
    async def plan_reconcile(self, request: ReconcilePlanRequest) -> PlannedReconcile:
        """One snapshot and the open trades, diffed; a failed snapshot fails it whole."""
        options = request.with_options and self._option_positions is not None
        try:
            truth = await self._broker.broker_truth()
            held = await self._read_option_positions() if options else None
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
        if held is not None:
            room = None if request.max_actions is None else request.max_actions - plan.actions
            plan = plan.model_copy(
                update={"options": capped_options(await self._options_plan(held, request), room)}
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

    async def _read_option_positions(self) -> list[OptionPosition]:
        assert self._option_positions is not None
        return await self._option_positions.option_positions()

    async def _options_plan(
        self, held: list[OptionPosition], request: ReconcilePlanRequest
    ) -> OptionsPlan:
        """The option legs held against the option trades open, or closed since the legs were
        read (read now, after the legs: a trade closed in between still claims its legs)."""
        rows = await self._option_trades.claiming(request.as_of)
        today = request.as_of.astimezone(NEW_YORK).date()
        options = option_reconcile_plan(held, rows.trades, request.as_of, today, request.grace)
        activity.logger.info(
            "reconcile options over %d legs, %d open option trades (%d closed since the legs "
            "were read): %d condors to adopt, %d ghosts, %d leg mismatches, %d unmanaged legs",
            len(held),
            options.checked_trades,
            len(rows.trades) - options.checked_trades,
            len(options.adoptions),
            len(options.ghosts),
            len(options.mismatches),
            len(options.unmanaged),
        )
        return options
