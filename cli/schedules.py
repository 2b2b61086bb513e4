"""`starter.py schedules ...`: install and operate the Temporal schedules of the plan.

`apply` is idempotent: each schedule carries the fingerprint of its definition in the action's
memo, so an unchanged one is left alone, a changed one is updated in place (keeping its
paused state and note) and a missing one is created. The plan itself is trading/schedule_plan.py.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

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

from cli.output import emit_json, fail, say, table
from clients import make_client
from settings import ConfigError, Settings
from trading.schedule_plan import (
    DEFAULT_SCHEDULE_PREFIX,
    MARKET_TIME_ZONE,
    OPERATION_NAMES,
    SCHEDULE_PROFILES,
    CalendarCadence,
    MatchRange,
    ScheduledOperation,
    SchedulePlan,
    ScheduleProfile,
    schedule_id_for,
    schedule_plan,
)

FINGERPRINT_MEMO = "schedule_fingerprint"
PROFILE_MEMO = "schedule_profile"
ApplyResult = Literal["created", "updated", "unchanged", "stale", "deleted"]
_SHOWN = ZoneInfo(MARKET_TIME_ZONE)


@dataclasses.dataclass(frozen=True)
class ApplyOutcome:
    """What `apply` did to one schedule id."""

    schedule_id: str
    result: ApplyResult
    workflow_type: str = "-"
    summary: str = "-"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `schedules` command group."""
    group = commands.add_parser(
        "schedules", help="install and operate the market-hours (or dev) schedules"
    )
    sub = group.add_subparsers(dest="schedules_command", required=True, metavar="COMMAND")

    def prefixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--prefix",
            default=DEFAULT_SCHEDULE_PREFIX,
            help=f"schedule id prefix (default {DEFAULT_SCHEDULE_PREFIX})",
        )
        return parser

    apply = prefixed(
        sub.add_parser("apply", help="create or update the schedules of a profile (idempotent)")
    )
    apply.add_argument(
        "--profile",
        choices=SCHEDULE_PROFILES,
        help="market: NYSE hours, New York time; dev: intervals, any hour "
        "(default: SCHEDULE_PROFILE, else schedules.profile of temporal-dev.yaml)",
    )
    apply.add_argument(
        "--prune", action="store_true", help="delete schedules under the prefix not in the plan"
    )
    apply.add_argument("--json", action="store_true", help="print JSON")
    apply.set_defaults(handler=cmd_apply)

    listing = prefixed(sub.add_parser("list", help="installed schedules, next runs, last run"))
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(handler=cmd_list)

    names = ", ".join(OPERATION_NAMES)
    for verb, helptext, handler in (
        ("pause", "stop a schedule from starting runs", cmd_pause),
        ("resume", "let a paused schedule start runs again", cmd_resume),
    ):
        parser = prefixed(sub.add_parser(verb, help=helptext))
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("name", nargs="?", help=f"one of {names} (or its schedule id)")
        target.add_argument("--all", action="store_true", help="every schedule of the plan")
        parser.add_argument("--note", help="why (shown by `schedules list`)")
        parser.set_defaults(handler=handler)

    trigger = prefixed(
        sub.add_parser("trigger", help="start one run now (skipped while a run is in progress)")
    )
    trigger.add_argument("name", help=f"one of {names} (or its schedule id)")
    trigger.set_defaults(handler=cmd_trigger)


def resolve_profile(requested: str | None, settings: Settings) -> ScheduleProfile:
    """--profile, else SCHEDULE_PROFILE, else temporal-dev.yaml's schedules.profile."""
    for profile in SCHEDULE_PROFILES:
        if requested == profile:
            return profile
    if settings.schedule_profile is not None:
        return settings.schedule_profile
    if settings.dev_config.exists():
        from devstack.config import load_dev_config

        return load_dev_config(settings.dev_config).schedules.profile
    raise ConfigError(
        "no schedule profile: pass --profile dev|market or set SCHEDULE_PROFILE "
        f"({settings.dev_config} does not exist)"
    )


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


def _when(at: datetime) -> str:
    return at.astimezone(_SHOWN).strftime("%a %Y-%m-%d %H:%M %Z")


def _resolve_id(name: str, prefix: str) -> str:
    plan = schedule_plan("market", prefix)  # names and ids are the same in every profile
    operation = plan.find(name)
    if operation is not None:
        return operation.schedule_id
    if name.startswith(prefix):
        return name
    raise ConfigError(
        f"unknown schedule {name!r}; use one of {', '.join(OPERATION_NAMES)} or a schedule id"
    )


def cmd_apply(args: argparse.Namespace, settings: Settings) -> int:
    """Install the profile's schedules; print what changed."""
    profile = resolve_profile(args.profile, settings)
    plan = schedule_plan(profile, args.prefix, settings.max_open_positions)

    async def go() -> list[ApplyOutcome]:
        client = await make_client(settings)
        return await apply_plan(client, plan, settings.temporal_task_queue, prune=args.prune)

    outcomes = asyncio.run(go())
    if args.json:
        emit_json(
            {
                "profile": profile,
                "task_queue": settings.temporal_task_queue,
                "schedules": [dataclasses.asdict(outcome) for outcome in outcomes],
            }
        )
        return 0
    rows = [
        (
            o.schedule_id,
            o.workflow_type,
            o.summary,
            "not in the plan (delete with --prune)" if o.result == "stale" else o.result,
        )
        for o in outcomes
    ]
    say(table(rows, header=("SCHEDULE", "WORKFLOW", "WHEN", "RESULT")))
    say(f"{profile} profile on task queue {settings.temporal_task_queue}")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    """Show the installed schedules."""

    async def go() -> list[dict[str, Any]]:
        client = await make_client(settings)
        return await schedule_rows(client, args.prefix)

    rows = asyncio.run(go())
    if args.json:
        emit_json(rows)
        return 0
    if not rows:
        say(f"no schedules under {args.prefix!r}; install them with `schedules apply`")
        return 0
    shown = []
    for row in rows:
        upcoming: Sequence[datetime] = row["next_action_times"]
        last = row["last_action"]
        shown.append(
            (
                row["id"],
                row["workflow_type"],
                "PAUSED" if row["paused"] else "active",
                _when(upcoming[0]) if upcoming else "-",
                (
                    f"{_when(last['started_at'])} {last.get('status', '-')}"
                    if last is not None
                    else "never ran"
                ),
            )
        )
    say(table(shown, header=("SCHEDULE", "WORKFLOW", "STATE", "NEXT RUN", "LAST RUN")))
    for row in rows:
        if row["paused"] and row["note"]:
            say(f"{row['id']}: {row['note']}")
    return 0


def _targets(args: argparse.Namespace) -> list[str]:
    if args.all:
        return [schedule_id_for(name, args.prefix) for name in OPERATION_NAMES]
    return [_resolve_id(args.name, args.prefix)]


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


def _pause_or_resume(args: argparse.Namespace, settings: Settings, *, paused: bool) -> int:
    targets = _targets(args)

    async def go() -> list[tuple[str, bool]]:
        client = await make_client(settings)
        return await set_paused(client, targets, paused=paused, note=args.note)

    results = asyncio.run(go())
    verb = "paused" if paused else "resumed"
    for schedule_id, found in results:
        if found:
            say(f"{verb} {schedule_id}")
        elif not args.all:
            return fail(f"schedule {schedule_id} is not installed; run `schedules apply` first")
        else:
            say(f"{schedule_id} is not installed")
    if not any(found for _, found in results):
        return fail("no schedule is installed; run `schedules apply` first")
    return 0


def cmd_pause(args: argparse.Namespace, settings: Settings) -> int:
    """Pause one schedule or all of them."""
    return _pause_or_resume(args, settings, paused=True)


def cmd_resume(args: argparse.Namespace, settings: Settings) -> int:
    """Resume one schedule or all of them."""
    return _pause_or_resume(args, settings, paused=False)


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


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    """Start one run of a schedule now."""
    schedule_id = _resolve_id(args.name, args.prefix)

    async def go() -> str | None:
        client = await make_client(settings)
        if await describe_or_none(client, schedule_id) is None:
            raise ConfigError(
                f"schedule {schedule_id} is not installed; run `schedules apply` first"
            )
        return await trigger(client, schedule_id, wait=timedelta(seconds=5))

    workflow_id = asyncio.run(go())
    if workflow_id is None:
        say(f"triggered {schedule_id}; no run started yet (a run may still be in progress)")
    else:
        say(f"triggered {schedule_id}: started workflow {workflow_id}")
        say(
            f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
        )
    return 0
