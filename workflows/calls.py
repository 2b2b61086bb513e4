"""One way for every workflow to call an activity method under a named policy.

Deterministic: it only forwards to `workflow.execute_activity_method` with the policy's
deadline, heartbeat and retry, so a workflow that uses it schedules the same commands. Every
call carries a short summary (what it does, for which trade or symbol): the Web UI shows it on
the event, so a workflow's timeline reads as its story without opening payloads.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError, ChildWorkflowError
from temporalio.types import (
    MethodAsyncNoParam,
    MethodAsyncSingleParam,
    MethodSyncNoParam,
    MethodSyncSingleParam,
)

with workflow.unsafe.imports_passed_through():
    from workflows.policies import LEDGER_WRITE, ActivityPolicy

A = TypeVar("A")
R = TypeVar("R")


@overload
async def call(
    method: MethodAsyncNoParam[Any, R], arg: None, policy: ActivityPolicy, summary: str
) -> R: ...


@overload
async def call(
    method: MethodSyncNoParam[Any, R], arg: None, policy: ActivityPolicy, summary: str
) -> R: ...


@overload
async def call(
    method: MethodAsyncSingleParam[Any, A, R], arg: A, policy: ActivityPolicy, summary: str
) -> R: ...


@overload
async def call(
    method: MethodSyncSingleParam[Any, A, R], arg: A, policy: ActivityPolicy, summary: str
) -> R: ...


async def call(
    method: Callable[..., Any], arg: object, policy: ActivityPolicy, summary: str
) -> Any:
    """Run an activity method with `arg` (none when `arg` is None) under `policy`."""
    return await workflow.execute_activity_method(
        method,
        args=[] if arg is None else [arg],
        start_to_close_timeout=policy.start_to_close,
        heartbeat_timeout=policy.heartbeat,
        retry_policy=policy.retry,
        summary=summary[:200],
    )


async def local(
    method: MethodAsyncSingleParam[Any, A, R], arg: A, policy: ActivityPolicy, summary: str
) -> R:
    """Run a short activity method as a local activity: one marker event instead of three.

    For quick reads whose answer only informs a decision (a stored snapshot), where an idle
    guard's history and billable actions matter more than a separate retry schedule.
    """
    result: R = await workflow.execute_local_activity_method(
        method,
        arg,
        start_to_close_timeout=policy.start_to_close,
        retry_policy=policy.retry,
        summary=summary[:200],
    )
    return result


async def ledger(method: MethodAsyncSingleParam[Any, A, R], arg: A, summary: str) -> R:
    """Run a ledger activity method under LEDGER_WRITE."""
    return await call(method, arg, LEDGER_WRITE, summary)


@dataclass(frozen=True)
class Failed:
    """An activity that failed for good (its retries spent or non-retryable): why, in words."""

    why: str


async def attempt(pending: Awaitable[R]) -> R | Failed:
    """The activity's result, or Failed when it failed: for calls whose failure is an answer."""
    try:
        return await pending
    except ActivityError as err:
        return Failed(failure(err))


def failure(err: Exception) -> str:
    """`Type: message` of an activity or child-workflow failure, for notes and audit rows."""
    cause = err.cause if isinstance(err, ActivityError | ChildWorkflowError) else err
    if isinstance(cause, ApplicationError):
        return f"{cause.type or 'ApplicationError'}: {cause.message}"
    return str(cause or err)


def failure_kind(err: ActivityError) -> tuple[str, str]:
    """(type, message) of an activity failure."""
    cause = err.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "ApplicationError", cause.message
    return type(cause).__name__ if cause else "ActivityError", str(cause or err)
