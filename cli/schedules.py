"""`starter.py schedules ...`: install and operate the Temporal schedules of the plan.

`apply` is idempotent: each schedule carries the fingerprint of its definition in the action's
memo, so an unchanged one is left alone, a changed one is updated in place (keeping its
paused state and note) and a missing one is created. The plan itself is trading/schedule_plan.py;
the Temporal calls are cli/schedule_ops.py.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import (
    Client,
)

from cli.output import emit_json, fail, say, table
from cli.run import with_client
from cli.schedule_ops import (
    apply_plan,
    describe_or_none,
    plan_for,
    schedule_rows,
    set_paused,
    trigger,
)
from contracts.schedules import (
    OPERATION_NAMES,
    SCHEDULE_PREFIX,
    schedule_id_for,
)
from settings import ConfigError, Settings
from trading.schedule_plan import (
    MARKET_TIME_ZONE,
    SCHEDULE_PROFILES,
    ScheduleProfile,
    schedule_plan,
)

_SHOWN = ZoneInfo(MARKET_TIME_ZONE)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `schedules` command group."""
    group = commands.add_parser(
        "schedules", help="install and operate the market-hours (or dev) schedules"
    )
    sub = group.add_subparsers(dest="schedules_command", required=True, metavar="COMMAND")

    def prefixed(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
        parser.add_argument(
            "--prefix",
            default=SCHEDULE_PREFIX,
            help=f"schedule id prefix (default {SCHEDULE_PREFIX})",
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
    plan = plan_for(settings, profile, args.prefix)

    outcomes = with_client(
        settings,
        lambda client: apply_plan(client, plan, settings.temporal_task_queue, prune=args.prune),
    )
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

    rows = with_client(settings, lambda client: schedule_rows(client, args.prefix))
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


def _pause_or_resume(args: argparse.Namespace, settings: Settings, *, paused: bool) -> int:
    targets = _targets(args)

    results = with_client(
        settings, lambda client: set_paused(client, targets, paused=paused, note=args.note)
    )
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


def cmd_trigger(args: argparse.Namespace, settings: Settings) -> int:
    """Start one run of a schedule now."""
    schedule_id = _resolve_id(args.name, args.prefix)

    async def go(client: Client) -> str | None:
        if await describe_or_none(client, schedule_id) is None:
            raise ConfigError(
                f"schedule {schedule_id} is not installed; run `schedules apply` first"
            )
        return await trigger(client, schedule_id, wait=timedelta(seconds=5))

    workflow_id = with_client(settings, go)
    if workflow_id is None:
        say(f"triggered {schedule_id}; no run started yet (a run may still be in progress)")
    else:
        say(f"triggered {schedule_id}: started workflow {workflow_id}")
        say(
            f"{settings.temporal_ui_url}/namespaces/{settings.temporal_namespace}/workflows/{workflow_id}"
        )
    return 0
