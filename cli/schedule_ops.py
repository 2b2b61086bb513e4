"""The Temporal side of `schedules`: each planned operation as a Temporal Schedule, applied.

Each schedule carries the fingerprint of its definition in the action's memo, so `apply_plan`
leaves an unchanged one alone, updates a changed one in place (keeping its paused state and
note) and creates a missing one. The plan itself is trading/schedule_plan.py.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from datetime import timedelta
from typing import Any, Literal

from pydantic import JsonValue
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionExecutionStartWorkflow,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleDescription,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from contracts.schedules import (
    OPERATION_NAMES,
    SCHEDULE_PREFIX,
    schedule_id_for,
)
from settings import Settings
from trading.schedule_plan import (
    CalendarCadence,
    MatchRange,
    ScheduledOperation,
    SchedulePlan,
    ScheduleProfile,
    schedule_plan,
)

FINGERPRINT_MEMO = "schedule_fingerprint"
PROFILE_MEMO = "schedule_profile"
ApplyResult = Literal["created", "updated", "unchanged", "stale", "deleted"]


@dataclasses.dataclass(frozen=True)
class ApplyOutcome:
    """What `apply` did to one schedule id."""

    schedule_id: str
    result: ApplyResult
    workflow_type: str = "-"
    summary: str = "-"


def _ranges(match: MatchRange) -> tuple[ScheduleRange, ...]:
    return (ScheduleRange(match.start, match.last, match.step),)


def to_temporal(operation: ScheduledOperation, plan: SchedulePlan, task_queue: str) -> Schedule:
    """The Temporal Schedule for one planned operation."""
    cadence = operation.cadence
    if isinstance(cadence, CalendarCadence):
        spec = ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(
                    second=(ScheduleRange(0),),
                    minute=_ranges(rule.minute),
                    hour=_ranges(rule.hour),
                    day_of_week=_ranges(rule.day_of_week),
                    comment=rule.comment or None,
                )
                for rule in cadence.rules
            ],
            time_zone_name=cadence.time_zone,
        )
    else:
        spec = ScheduleSpec(
            intervals=[ScheduleIntervalSpec(every=cadence.every, offset=cadence.offset or None)]
        )
    return Schedule(
        action=ScheduleActionStartWorkflow(
            operation.workflow_type,
            operation.input,
            id=operation.workflow_id,
            task_queue=task_queue,
            execution_timeout=operation.execution_timeout,
            memo={
                FINGERPRINT_MEMO: operation.fingerprint(task_queue),
                PROFILE_MEMO: plan.profile,
            },
            static_summary=f"{operation.name}: {operation.summary}",
        ),
        spec=spec,
        policy=SchedulePolicy(
            overlap=ScheduleOverlapPolicy.SKIP,
            catchup_window=operation.catchup_window,
            pause_on_failure=operation.pause_on_failure,
        ),
        state=ScheduleState(note=f"installed by `schedules apply` ({plan.profile} profile)"),
    )


async def describe_or_none(client: Client, schedule_id: str) -> ScheduleDescription | None:
    """The schedule's description, or None when it does not exist."""
    try:
        return await client.get_schedule_handle(schedule_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return None
        raise


async def _memo_of(client: Client, description: ScheduleDescription, key: str) -> Any:
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or not action.memo:
        return None
    raw = action.memo.get(key)
    if raw is None:
        return None
    if not hasattr(raw, "data"):  # already a plain value
        return raw
    return (await client.data_converter.decode([raw]))[0]


def plan_for(
    settings: Settings, profile: ScheduleProfile, prefix: str = SCHEDULE_PREFIX
) -> SchedulePlan:
    """The plan `schedules apply` and `dev up` install: the market loop's entry limit,
    watchlist, strategies and risk limits from the settings."""
    return schedule_plan(
        profile,
        prefix,
        settings.max_open_positions,
        watchlist=settings.watchlist_symbols,
        market_loop=market_loop_settings(settings),
    )


def market_loop_settings(settings: Settings) -> dict[str, JsonValue]:
    """The market loop's strategies, their parameters and the risk limits, as input JSON."""
    return {
        "strategies": list[JsonValue](settings.strategy_names),
        "strategy_configs": settings.strategy_configs.model_dump(mode="json"),
        "risk": settings.risk_limits.model_dump(mode="json"),
    }


async def apply_plan(
    client: Client, plan: SchedulePlan, task_queue: str, *, prune: bool = False
) -> list[ApplyOutcome]:
    """Create missing schedules, update changed ones, report (or delete) stale ones."""
    outcomes: list[ApplyOutcome] = []
    for operation in plan.operations:
        desired = to_temporal(operation, plan, task_queue)
        result: ApplyResult = "unchanged"
        current = await describe_or_none(client, operation.schedule_id)
        if current is None:
            try:
                await client.create_schedule(operation.schedule_id, desired)
                result = "created"
            except ScheduleAlreadyRunningError:  # created concurrently: compare with it
                current = await describe_or_none(client, operation.schedule_id)
        if current is not None:
            installed = await _memo_of(client, current, FINGERPRINT_MEMO)
            if installed != operation.fingerprint(task_queue):
                await client.get_schedule_handle(operation.schedule_id).update(_keep_state(desired))
                result = "updated"
        outcomes.append(
            ApplyOutcome(operation.schedule_id, result, operation.workflow_type, operation.summary)
        )
    planned = {operation.schedule_id for operation in plan.operations}
    for stale_id in sorted(set(await installed_ids(client, plan.prefix)) - planned):
        if prune:
            await client.get_schedule_handle(stale_id).delete()
        outcomes.append(ApplyOutcome(stale_id, "deleted" if prune else "stale"))
    return outcomes


def _keep_state(desired: Schedule) -> Callable[[ScheduleUpdateInput], ScheduleUpdate]:
    """An updater that installs `desired` but keeps the paused state and note an operator set."""

    def updater(update: ScheduleUpdateInput) -> ScheduleUpdate:
        state = update.description.schedule.state
        return ScheduleUpdate(schedule=dataclasses.replace(desired, state=state))

    return updater


async def installed_ids(client: Client, prefix: str) -> list[str]:
    """Ids of the schedules under `prefix` (from visibility: eventually consistent)."""
    return [
        entry.id async for entry in await client.list_schedules() if entry.id.startswith(prefix)
    ]


async def schedule_rows(client: Client, prefix: str) -> list[dict[str, Any]]:
    """One JSON-able dict per installed schedule: state, next runs and the last run."""
    ids = [schedule_id_for(name, prefix) for name in OPERATION_NAMES]
    ids += sorted(set(await installed_ids(client, prefix)) - set(ids))
    rows: list[dict[str, Any]] = []
    for schedule_id in ids:
        description = await describe_or_none(client, schedule_id)
        if description is None:
            continue
        action = description.schedule.action
        info = description.info
        last: dict[str, Any] | None = None
        if info.recent_actions:
            recent = info.recent_actions[-1]
            last = {"scheduled_at": recent.scheduled_at, "started_at": recent.started_at}
            if isinstance(recent.action, ScheduleActionExecutionStartWorkflow):
                last["workflow_id"] = recent.action.workflow_id
                last["status"] = await _workflow_status(
                    client, recent.action.workflow_id, recent.action.first_execution_run_id
                )
        rows.append(
            {
                "id": schedule_id,
                "workflow_type": getattr(action, "workflow", "-"),
                "profile": await _memo_of(client, description, PROFILE_MEMO),
                "paused": description.schedule.state.paused,
                "note": description.schedule.state.note,
                "next_action_times": list(info.next_action_times),
                "actions": info.num_actions,
                "skipped_overlap": info.num_actions_skipped_overlap,
                "missed_catchup_window": info.num_actions_missed_catchup_window,
                "last_action": last,
            }
        )
    return rows


async def _workflow_status(client: Client, workflow_id: str, run_id: str) -> str:
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as exc:
        return f"unknown ({exc.status.name if exc.status else 'error'})"
    return described.status.name if described.status else "UNKNOWN"


async def set_paused(
    client: Client, schedule_ids: Sequence[str], *, paused: bool, note: str | None
) -> list[tuple[str, bool]]:
    """Pause or resume each schedule; (id, found) per id."""
    done: list[tuple[str, bool]] = []
    for schedule_id in schedule_ids:
        handle = client.get_schedule_handle(schedule_id)
        try:
            if paused:
                await handle.pause(note=note or "paused with `schedules pause`")
            else:
                await handle.unpause(note=note or "resumed with `schedules resume`")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            done.append((schedule_id, False))
            continue
        done.append((schedule_id, True))
    return done


async def trigger(client: Client, schedule_id: str, *, wait: timedelta) -> str | None:
    """Start one run now; the started workflow id, or None if none showed up within `wait`."""
    handle = client.get_schedule_handle(schedule_id)
    before = (await handle.describe()).info.num_actions
    await handle.trigger()
    deadline = asyncio.get_running_loop().time() + wait.total_seconds()
    while asyncio.get_running_loop().time() < deadline:
        info = (await handle.describe()).info
        if info.num_actions > before and info.recent_actions:
            action = info.recent_actions[-1].action
            if isinstance(action, ScheduleActionExecutionStartWorkflow):
                return action.workflow_id
        await asyncio.sleep(0.2)
    return None
