"""The harness itself: the time-skipping dev server skips durable timers."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

pytestmark = pytest.mark.integration


@workflow.defn(sandboxed=False)
class TwoDayTimerWorkflow:
    """Sleeps two days of workflow time and reports how much time passed."""

    @workflow.run
    async def run(self) -> float:
        started = workflow.now()
        await workflow.sleep(timedelta(days=2))
        return (workflow.now() - started).total_seconds()


async def test_time_skipping_env_skips_a_two_day_timer(
    time_skipping_env: WorkflowEnvironment, task_queue: str
) -> None:
    client = time_skipping_env.client
    async with Worker(client, task_queue=task_queue, workflows=[TwoDayTimerWorkflow]):
        elapsed = await client.execute_workflow(
            TwoDayTimerWorkflow.run, id=f"timer-{uuid.uuid4()}", task_queue=task_queue
        )
    # Two days of workflow time passed inside the suite's per-test timeout of 300 s.
    assert elapsed >= timedelta(days=2).total_seconds()
