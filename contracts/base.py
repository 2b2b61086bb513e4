"""The shapes a workflow contract is written in: its type, and named, typed messages.

A contract names a workflow's Temporal type, its id, its input / state / result models and
every signal, query and update with the model it carries. Workflows register their handlers
under these names (`@workflow.signal(name=FORCE_EXIT.name)`), and everything that talks to a
workflow - activities, the CLI, tests - takes the name from here, so each is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

PayloadT = TypeVar("PayloadT", bound=BaseModel)
ResultT = TypeVar("ResultT")
# Every run-to-completion workflow answers this query with its progress so far.
RUN_PROGRESS = "run.progress"


@dataclass(frozen=True)
class Signal(Generic[PayloadT]):
    """A signal's name and the model it carries (None: a signal without a payload)."""

    name: str
    payload: type[PayloadT] | None
    doc: str


@dataclass(frozen=True)
class Query(Generic[ResultT]):
    """A query's name and the model it answers with."""

    name: str
    result: type[ResultT]
    doc: str


@dataclass(frozen=True)
class Update(Generic[PayloadT, ResultT]):
    """An update's name, the model it takes and the model it answers with."""

    name: str
    payload: type[PayloadT]
    result: type[ResultT]
    doc: str


@dataclass(frozen=True)
class WorkflowContract:
    """A workflow's Temporal type name, its models and its messages."""

    name: str
    input: type[BaseModel]
    result: type[Any]
    state: type[BaseModel] | None = None
    signals: tuple[Signal[Any], ...] = ()
    queries: tuple[Query[Any], ...] = ()
    updates: tuple[Update[Any, Any], ...] = ()
    fixed_ids: tuple[str, ...] = field(default=())  # singleton ids and id prefixes

    def message_names(self) -> list[str]:
        """Every signal, query and update name of this workflow."""
        return [
            *(s.name for s in self.signals),
            *(q.name for q in self.queries),
            *(u.name for u in self.updates),
        ]


def run_progress(model: type[ResultT]) -> Query[ResultT]:
    """The `run.progress` query of a run-to-completion workflow, answered with `model`."""
    return Query(RUN_PROGRESS, model, "the run's progress so far")


def run_contract(
    name: str, input: type[BaseModel], result: type[Any], progress: Query[Any], *ids: str
) -> WorkflowContract:
    """A workflow that runs once to `result`, answers `progress`, and starts under `ids`."""
    return WorkflowContract(
        name=name, input=input, result=result, queries=(progress,), fixed_ids=ids
    )
