"""Broker reads several workflows share, each answering "known" or "unknown, and why".

Unknown is never absent: a caller that gets no snapshot closes, cancels and adopts nothing.
"""

from __future__ import annotations

from temporalio import workflow
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.broker import BrokerActivities
    from trading.broker_models import BrokerTruth
    from workflows.calls import call, failure
    from workflows.policies import broker_snapshot


async def broker_truth(attempts: int, purpose: str) -> tuple[BrokerTruth | None, str]:
    """One snapshot (account, positions, open orders), or None and why it failed."""
    try:
        truth: BrokerTruth = await call(
            BrokerActivities.get_broker_truth,
            None,
            broker_snapshot(attempts),
            f"broker truth: account, positions and open orders ({purpose})",
        )
    except ActivityError as err:
        return None, f"broker snapshot failed: {failure(err)}"
    return truth, ""
