"""TradeWorkflow's interface: one long-lived guard per trade, id `trade-<trade_id>`.

Who talks to it (all through activities/trade_link.py's TradeLink, the one way in):
- BrokerSync's stream listener and truth poll send ORDER_EVENT and POSITION_UPDATE;
- reconcile and auto-manage send POSITION_UPDATE, or start it protect-only (`guard`);
- the market loop starts it for an entered signal;
- the exit review (NEXT_OPEN), trading control's flatten (IMMEDIATE) and the CLI send FORCE_EXIT;
- the CLI asks TIGHTEN_STOP and STATUS;
- the market loop asks ADD_ON (through TradeLinkActivities.add_on, update id = signal_key).
The models live beside the trade logic that computes them (trading/trade_models.py).
"""

from __future__ import annotations

from contracts.base import Query, Signal, Update, WorkflowContract
from trading import trade_models as models

ID_PREFIX = "trade-"

ORDER_EVENT = Signal(
    "order_event", models.OrderEvent, "BrokerSync: an order of this trade changed; check now"
)
POSITION_UPDATE = Signal(
    "position_update",
    models.PositionUpdate,
    "a fresh broker snapshot of this symbol; check against it",
)
FORCE_EXIT = Signal(
    "force_exit", models.ForceExit, "exit now or at the next open; repeats converge on one exit"
)
TIGHTEN_STOP = Update(
    "tighten_stop",
    models.TightenStop,
    models.TightenResult,
    "raise the stop (replaced at the broker)",
)
ADD_ON = Update(
    "add_on",
    models.AddOn,
    models.AddOnResult,
    "buy more of this trade's symbol as an OTO; the stop is resized to the whole position",
)
STATUS = Query("trade.status", models.TradeStatusView, "the trade's status and full state")

WORKFLOW = WorkflowContract(
    name="TradeWorkflow",
    input=models.TradeWorkflowInput,
    result=models.TradeResult,
    state=models.TradeState,
    signals=(ORDER_EVENT, POSITION_UPDATE, FORCE_EXIT),
    queries=(STATUS,),
    updates=(TIGHTEN_STOP, ADD_ON),
    fixed_ids=(ID_PREFIX,),
)


def workflow_id(trade_id: str) -> str:
    """The workflow id of a trade: `trade-<trade_id>` (one guard per trade)."""
    return f"{ID_PREFIX}{trade_id}"


def trade_id_of(workflow_id: str) -> str | None:
    """The trade id in a trade workflow's id, or None for any other workflow id."""
    return workflow_id.removeprefix(ID_PREFIX) if workflow_id.startswith(ID_PREFIX) else None


def start_input(spec: models.TradeSpec) -> models.TradeWorkflowInput:
    """The input that starts a trade's workflow (no state: a fresh run)."""
    return models.TradeWorkflowInput(spec=spec)
