"""BrokerSyncWorkflow's interface: the singleton `broker-sync` that owns the trade_updates
stream and the broker-truth poll, and fans what it learns out to trades (contracts/trade.py's
ORDER_EVENT and POSITION_UPDATE). Started by `dev up`; `POLL_NOW` and `STOP` from operators.
"""

from __future__ import annotations

from pydantic import BaseModel

from contracts.base import Query, Signal, WorkflowContract
from trading.broker_sync_models import BrokerSyncRun, BrokerSyncState

WORKFLOW_ID = "broker-sync"

POLL_NOW: Signal[BaseModel] = Signal(
    "broker_sync.poll_now", None, "poll at once instead of waiting"
)
STOP: Signal[BaseModel] = Signal(
    "broker_sync.stop", None, "stop listening and polling; the workflow completes"
)
STATUS = Query("broker_sync.status", BrokerSyncState, "counters, last poll and errors")

WORKFLOW = WorkflowContract(
    name="BrokerSyncWorkflow",
    input=BrokerSyncRun,
    result=BrokerSyncState,
    state=BrokerSyncState,
    signals=(POLL_NOW, STOP),
    queries=(STATUS,),
    fixed_ids=(WORKFLOW_ID,),
)
