"""Every workflow class the worker registers."""

from __future__ import annotations

from workflows.broker_sync import BrokerSyncWorkflow
from workflows.drain import ScoreDrainWorkflow
from workflows.stack_check import StackCheckWorkflow
from workflows.trade import TradeWorkflow

ALL_WORKFLOWS: list[type] = [
    BrokerSyncWorkflow,
    ScoreDrainWorkflow,
    StackCheckWorkflow,
    TradeWorkflow,
]
