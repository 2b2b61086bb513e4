"""MarketLoopWorkflow's interface: truth -> reconcile -> scan -> drain -> gated entries, once.

Started by its schedule and by `starter.py market-loop`; it starts ReconcileWorkflow and
ScoreDrainWorkflow as children and each entered trade through TradeLink.start.
"""

from __future__ import annotations

from contracts.base import run_contract, run_progress
from trading.entry import MarketLoopInput, MarketLoopResult

CLI_ID_PREFIX = "market-loop-cli"

PROGRESS = run_progress(MarketLoopResult)
WORKFLOW = run_contract(
    "MarketLoopWorkflow", MarketLoopInput, MarketLoopResult, PROGRESS, CLI_ID_PREFIX
)
