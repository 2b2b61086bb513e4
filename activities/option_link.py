"""OptionLinkActivities: reach option trade workflows (`option-trade-<id>`) from a workflow.

A workflow cannot hold a Temporal client; trading control's flatten tells each open option
trade to close through this activity, with contracts/option_trade.py's FORCE_EXIT. A workflow
that ended (or never ran) is reported as not delivered, not failed: the caller decides what an
option trade with no running workflow means (the ledger still shows it open until reconcile
closes it as a ghost).
"""

from __future__ import annotations

from temporalio import activity
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from contracts import option_trade
from trading.control import OptionTradeExitRequest
from trading.trade_models import SignalDelivery

# A workflow that ended (or never ran) answers a signal with one of these.
_GONE = (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION)


class OptionLinkActivities:
    """Signals option trade workflows by trade id."""

    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn
    async def force_exit_option_trade(self, request: OptionTradeExitRequest) -> SignalDelivery:
        """Tell an option trade to close now (FORCE_EXIT); a repeat is one exit (the workflow's
        own rule), and a trade whose workflow is not running is reported, not failed."""
        workflow_id = option_trade.workflow_id(request.trade_id)
        try:
            await self._client.get_workflow_handle(workflow_id).signal(
                option_trade.FORCE_EXIT.name, request.exit
            )
        except RPCError as err:
            if err.status not in _GONE:
                raise
            activity.logger.warning(
                "option trade %s: FORCE_EXIT not delivered, %s is not running (%s)",
                request.trade_id,
                workflow_id,
                request.exit.reason,
            )
            return SignalDelivery(
                trade_id=request.trade_id, delivered=False, note="no running option trade workflow"
            )
        activity.logger.info(
            "option trade %s: FORCE_EXIT signalled (%s)", request.trade_id, request.exit.reason
        )
        return SignalDelivery(trade_id=request.trade_id, delivered=True)
