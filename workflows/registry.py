"""Every workflow class the worker registers."""

from __future__ import annotations

from workflows.auto_manage import AutoManageWorkflow
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.control import TradingControlWorkflow
from workflows.drain import ScoreDrainWorkflow
from workflows.exit_review import EodExitReviewWorkflow
from workflows.market_loop import MarketLoopWorkflow
from workflows.option_trade import OptionTradeWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.stack_check import StackCheckWorkflow
from workflows.trade import TradeWorkflow

ALL_WORKFLOWS: list[type] = [
    AutoManageWorkflow,
    BrokerSyncWorkflow,
    EodExitReviewWorkflow,
    MarketLoopWorkflow,
    OptionTradeWorkflow,
    ReconcileWorkflow,
    ScoreDrainWorkflow,
    StackCheckWorkflow,
    TradeWorkflow,
    TradingControlWorkflow,
]
