"""Schedules on the real dev server: idempotent apply, session-only fire times, operator verbs."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    ScheduleSpec,
    WorkflowExecutionStatus,
)

from cli import schedule_ops, schedules
from cli.output import fail
from settings import ConfigError, Settings
from trading.schedule_plan import (
    CalendarCadence,
    IntervalCadence,
    outside_market_window,
    schedule_plan,
)

pytestmark = pytest.mark.integration


async def _describe_all(client: Client, ids: list[str]) -> dict[str, ScheduleDescription]:
    return {i: await client.get_schedule_handle(i).describe() for i in ids}


async def _eventually(check: Callable[[], Awaitable[bool]], seconds: float = 10) -> None:
    """Wait for visibility (list_schedules is eventually consistent)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


def _run_cli(settings: Settings, *argv: str) -> int:
    """`starter.py schedules ARGV` as main() dispatches it (ConfigError -> exit 2)."""
    parser = argparse.ArgumentParser(prog="starter.py")
    schedules.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["schedules", *argv])
    try:
        return int(args.handler(args, settings))
    except ConfigError as exc:
        return fail(str(exc), code=2)


async def test_market_apply_is_idempotent_and_fires_only_in_the_new_york_session(
    client: Client, task_queue: str, prefix: str
) -> None:
    plan = schedule_plan("market", prefix)
    ids = [op.schedule_id for op in plan.operations]

    first = await schedule_ops.apply_plan(client, plan, task_queue)
    second = await schedule_ops.apply_plan(client, plan, task_queue)

    assert [(o.schedule_id, o.result) for o in first] == [(i, "created") for i in ids]
    assert [(o.schedule_id, o.result) for o in second] == [(i, "unchanged") for i in ids]

    async def listed_once() -> bool:
        return sorted(await schedule_ops.installed_ids(client, prefix)) == sorted(ids)

    await _eventually(listed_once)

    for op in plan.operations:
        description = await client.get_schedule_handle(op.schedule_id).describe()
        upcoming = list(description.info.next_action_times)
        assert len(upcoming) >= 5, op.schedule_id
        assert outside_market_window(op, upcoming) == [], op.schedule_id
        # The server and the pure plan agree on every instant it reports.
        assert op.next_fire_times(upcoming[0] - timedelta(seconds=1), len(upcoming)) == upcoming
        assert description.schedule.policy.overlap == ScheduleOverlapPolicy.SKIP
        assert description.schedule.policy.catchup_window == timedelta(minutes=1)
        assert description.schedule.policy.pause_on_failure is False
        assert description.schedule.spec.time_zone_name == "America/New_York"
        action = description.schedule.action
        assert isinstance(action, ScheduleActionStartWorkflow)
        assert (action.workflow, action.task_queue) == (op.workflow_type, task_queue)
        assert description.schedule.state.paused is False


async def test_changed_definition_is_updated_in_place_keeping_a_pause_and_stale_ones_pruned(
    client: Client, task_queue: str, prefix: str
) -> None:
    dev = schedule_plan("dev", prefix)
    market = schedule_plan("market", prefix)
    created = await schedule_ops.apply_plan(client, dev, task_queue)
    assert {o.result for o in created} == {"created"}
    for op in dev.operations:
        spec = (await client.get_schedule_handle(op.schedule_id).describe()).schedule.spec
        assert isinstance(op.cadence, IntervalCadence)
        assert [i.every for i in spec.intervals] == [op.cadence.every]
        assert list(spec.calendars) == []
    reconcile_id = f"{prefix}reconcile"
    await client.get_schedule_handle(reconcile_id).pause(note="broker maintenance")
    stale_id = f"{prefix}retired-job"
    await client.create_schedule(
        stale_id,
        Schedule(
            action=ScheduleActionStartWorkflow(
                "ReconcileWorkflow", {}, id=stale_id, task_queue=task_queue
            ),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))]),
        ),
    )

    async def stale_listed() -> bool:
        return stale_id in await schedule_ops.installed_ids(client, prefix)

    await _eventually(stale_listed)

    switched = await schedule_ops.apply_plan(client, market, task_queue)
    assert {o.schedule_id: o.result for o in switched} == {
        **{op.schedule_id: "updated" for op in market.operations},
        stale_id: "stale",
    }
    after = await _describe_all(client, [op.schedule_id for op in market.operations])
    for op in market.operations:
        spec = after[op.schedule_id].schedule.spec
        assert isinstance(op.cadence, CalendarCadence)
        assert len(spec.calendars) == len(op.cadence.rules)
        assert list(spec.intervals) == []
    assert after[reconcile_id].schedule.state.paused is True
    assert after[reconcile_id].schedule.state.note == "broker maintenance"
    # A task queue change is a definition change too.
    moved = await schedule_ops.apply_plan(client, market, f"{task_queue}-moved")
    assert {o.result for o in moved if o.schedule_id != stale_id} == {"updated"}

    pruned = await schedule_ops.apply_plan(client, market, task_queue, prune=True)
    assert [(o.schedule_id, o.result) for o in pruned if o.result != "updated"] == [
        (stale_id, "deleted")
    ]
    assert await schedule_ops.describe_or_none(client, stale_id) is None


async def test_pause_resume_and_trigger_through_the_cli_change_what_the_server_reports(
    client: Client,
    settings: Settings,
    prefix: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert (
        await asyncio.to_thread(_run_cli, settings, "apply", "--profile", "dev", "--prefix", prefix)
        == 0
    )
    assert "created" in capsys.readouterr().out
    reconcile_id = f"{prefix}reconcile"
    handle = client.get_schedule_handle(reconcile_id)

    assert (
        await asyncio.to_thread(
            _run_cli, settings, "pause", "reconcile", "--prefix", prefix, "--note", "holiday"
        )
        == 0
    )
    paused = (await handle.describe()).schedule.state
    assert (paused.paused, paused.note) == (True, "holiday")

    assert await asyncio.to_thread(_run_cli, settings, "pause", "--all", "--prefix", prefix) == 0
    capsys.readouterr()
    assert await asyncio.to_thread(_run_cli, settings, "list", "--json", "--prefix", prefix) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [row["id"] for row in listed] == [
        op.schedule_id for op in schedule_plan("dev", prefix).operations
    ]
    assert {row["paused"] for row in listed} == {True}
    assert {row["profile"] for row in listed} == {"dev"}
    assert all(row["next_action_times"] for row in listed)

    assert await asyncio.to_thread(_run_cli, settings, "resume", "--all", "--prefix", prefix) == 0
    states = await _describe_all(client, [row["id"] for row in listed])
    assert {d.schedule.state.paused for d in states.values()} == {False}

    before = (await handle.describe()).info.num_actions
    capsys.readouterr()
    assert (
        await asyncio.to_thread(_run_cli, settings, "trigger", "reconcile", "--prefix", prefix) == 0
    )
    out = capsys.readouterr().out
    info = (await handle.describe()).info
    assert info.num_actions > before
    started = info.recent_actions[-1].action
    workflow_id = getattr(started, "workflow_id", "")
    assert workflow_id.startswith(f"{reconcile_id}-")
    assert f"started workflow {workflow_id}" in out
    execution = await client.get_workflow_handle(workflow_id).describe()
    assert execution.workflow_type == "ReconcileWorkflow"
    assert execution.status == WorkflowExecutionStatus.RUNNING  # no worker on this queue
    assert execution.task_queue == settings.temporal_task_queue
    await client.get_workflow_handle(workflow_id).terminate("test done")

    assert await asyncio.to_thread(_run_cli, settings, "list", "--prefix", prefix) == 0
    table = capsys.readouterr().out
    # The interval may have started a newer run since; the row shows the newest one.
    assert reconcile_id in table
    assert "TERMINATED" in table or "RUNNING" in table


async def test_cli_errors_are_one_line(
    settings: Settings, prefix: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await asyncio.to_thread(_run_cli, settings, "pause", "nightly", "--prefix", prefix) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown schedule 'nightly'") and err.count("\n") == 1
    assert await asyncio.to_thread(_run_cli, settings, "trigger", "drain", "--prefix", prefix) == 2
    err = capsys.readouterr().err
    assert f"schedule {prefix}drain is not installed" in err and err.count("\n") == 1
    assert await asyncio.to_thread(_run_cli, settings, "resume", "drain", "--prefix", prefix) == 1
    assert "is not installed" in capsys.readouterr().err
    assert await asyncio.to_thread(_run_cli, settings, "list", "--prefix", prefix) == 0
    assert "no schedules under" in capsys.readouterr().out
