"""Every workflow class the worker registers."""

from __future__ import annotations

from workflows.stack_check import StackCheckWorkflow
from workflows.trade import TradeWorkflow

ALL_WORKFLOWS: list[type] = [StackCheckWorkflow, TradeWorkflow]
