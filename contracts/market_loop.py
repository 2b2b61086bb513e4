"""MarketLoopWorkflow's interface: truth -> reconcile -> scan -> drain -> gated entries, once.

Started by its schedule and by `starter.py market-loop`; it starts ReconcileWorkflow and
ScoreDrainWorkflow as children and each entered trade through TradeLink.start.
"""

from __future__ import annotations

from contracts.base import Query, WorkflowContract
from trading.entry import MarketLoopInput, MarketLoopResult

CLI_ID_PREFIX = "market-loop-cli"

PROGRESS = Query("market_loop.progress", MarketLoopResult, "the run's result so far")

WORKFLOW = WorkflowContract(
    name="MarketLoopWorkflow",
    input=MarketLoopInput,
    result=MarketLoopResult,
    queries=(PROGRESS,),
    fixed_ids=(CLI_ID_PREFIX,),
)
