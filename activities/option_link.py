"""OptionLinkActivities: reach option trade workflows (`option-trade-<id>`) from a workflow.

A workflow cannot hold a Temporal client; trading control's flatten tells each open option
trade to close through this activity, with contracts/option_trade.py's FORCE_EXIT. A workflow
that ended (or never ran) is reported as not delivered, not failed: the caller decides what an
option trade with no running workflow means (the ledger still shows it open until reconcile
closes it as a ghost).
"""

from __future__ import annotations

from typing import Any

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from contracts import option_trade
from trading.control import OptionTradeExitRequest
from trading.options.trade_models import OptionForceExit, OptionTradeView
from trading.trade_models import SignalDelivery

# A workflow that ended (or never ran) answers a signal with one of these.
_GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


class OptionTradeLink:
    """The one way to reach an option trade's workflow by trade id (the CLI, flatten and
    reconcile use it): its run status, FORCE_EXIT, and the STATUS query."""

    def __init__(self, client: Client) -> None:
        self._client = client

    def handle(self, trade_id: str) -> WorkflowHandle[Any, Any]:
        """The handle of `option-trade-<trade_id>` (its latest run)."""
        return self._client.get_workflow_handle(option_trade.workflow_id(trade_id))

    async def status(self, trade_id: str) -> WorkflowExecutionStatus | None:
        """The latest run's status, or None when the workflow id was never used."""
        try:
            return (await self.handle(trade_id).describe()).status
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return None
            raise

    async def force_exit(self, trade_id: str, request: OptionForceExit) -> bool:
        """FORCE_EXIT (a repeat is one exit); False when the workflow is not running."""
        try:
            await self.handle(trade_id).signal(option_trade.FORCE_EXIT.name, request)
        except RPCError as err:
            if err.status in _GONE:
                return False
            raise
        return True

    async def view(self, trade_id: str) -> OptionTradeView:
        """The STATUS query's answer (legs, credit, mark, P&L, next rule)."""
        view: OptionTradeView = await self.handle(trade_id).query(
            option_trade.STATUS.name, result_type=OptionTradeView
        )
        return view


class OptionLinkActivities:
    """Signals option trade workflows by trade id."""

    def __init__(self, client: Client) -> None:
        self._link = OptionTradeLink(client)

    @activity.defn
    async def force_exit_option_trade(self, request: OptionTradeExitRequest) -> SignalDelivery:
        """Tell an option trade to close now (FORCE_EXIT); a repeat is one exit (the workflow's
        own rule), and a trade whose workflow is not running is reported, not failed."""
        if not await self._link.force_exit(request.trade_id, request.exit):
            activity.logger.warning(
                "option trade %s: FORCE_EXIT not delivered, %s is not running (%s)",
                request.trade_id,
                option_trade.workflow_id(request.trade_id),
                request.exit.reason,
            )
            return SignalDelivery(
                trade_id=request.trade_id, delivered=False, note="no running option trade workflow"
            )
        activity.logger.info(
            "option trade %s: FORCE_EXIT signalled (%s)", request.trade_id, request.exit.reason
        )
        return SignalDelivery(trade_id=request.trade_id, delivered=True)
