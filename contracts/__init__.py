"""One contract per workflow: the only place a workflow's interface is written.

Each module names a workflow's Temporal type, its ids, its input / state / result models and
every signal, query and update with its payload, and says who sends what. Workflows register
their handlers under these names; activities, the CLI and the tests take names and ids from
here, so none is written twice (tests/unit/test_contracts.py checks it).

Message names follow `<workflow>.<message>`, except the trade workflow's signals and update and
trading control's `report_rescue_alert`, which keep the names running trades and saved
histories carry.
"""

from __future__ import annotations

from contracts import (
    auto_manage,
    broker_sync,
    control,
    drain,
    exit_review,
    market_loop,
    option_trade,
    reconcile,
    stack_check,
    trade,
)
from contracts.base import WorkflowContract

ALL: tuple[WorkflowContract, ...] = (
    auto_manage.WORKFLOW,
    broker_sync.WORKFLOW,
    control.WORKFLOW,
    drain.WORKFLOW,
    exit_review.WORKFLOW,
    market_loop.WORKFLOW,
    option_trade.WORKFLOW,
    reconcile.WORKFLOW,
    stack_check.WORKFLOW,
    trade.WORKFLOW,
)
