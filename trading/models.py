"""Pydantic models that cross workflow, activity and ledger boundaries."""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

JsonScalar = str | int | float | bool | None
ModelT = TypeVar("ModelT", bound=BaseModel)


def evolve(model: ModelT, **changes: Any) -> ModelT:
    """A copy of `model` with `changes`, validated like a new one (unlike `model_copy(update=)`).

    A field the model does not have is an error, not silently ignored.
    """
    unknown = sorted(set(changes) - set(type(model).model_fields))
    if unknown:
        raise ValueError(f"{type(model).__name__} has no field {', '.join(unknown)}")
    return type(model).model_validate({**dict(model), **changes})


class Frozen(BaseModel):
    """Base for immutable values."""

    model_config = ConfigDict(frozen=True)


class AuditEntry(Frozen):
    """An append-only audit record: who did what, and why."""

    actor: str = Field(min_length=1)
    action: str = Field(min_length=1)
    reason: str = ""
    trade_id: str | None = None
    detail: dict[str, JsonScalar] = Field(default_factory=dict)
    event_key: str | None = None  # retried writes with the same key land once


class AuditRow(Frozen):
    """An audit record as stored."""

    id: int
    at: datetime
    actor: str
    action: str
    reason: str
    trade_id: str | None
    detail: dict[str, JsonScalar]
    event_key: str | None


class AuditLookup(Frozen):
    """Which audit row to read."""

    id: int


class StackCheckInput(Frozen):
    """Input of the stack check: who asked."""

    requested_by: str = "cli"
    check_broker: bool = True


class StackCheckResult(Frozen):
    """Outcome of the stack check: the audit row the workflow wrote and read back."""

    workflow_id: str
    audit_id: int
    round_trip_ok: bool
    written_at: datetime
    broker_checked: bool = False
    market_open: bool | None = None
    broker_time: datetime | None = None
