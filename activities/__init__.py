"""Every side effect of the system, as activity methods on classes built with their clients."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio import activity

from activities.broker import BrokerActivities
from activities.broker_sync import BrokerSyncActivities
from activities.entries import EntryActivities
from activities.ledger import LedgerActivities
from activities.reconcile import TradeGuardActivities
from activities.scoring import ScoringActivities
from broker.gateway import BrokerGateway


def activity_methods(instance: object) -> list[Callable[..., Any]]:
    """The bound @activity.defn methods of an activities object."""
    methods: list[Callable[..., Any]] = []
    for name, member in inspect.getmembers(instance, inspect.ismethod):
        if name.startswith("_"):
            continue
        if activity._Definition.from_callable(member) is not None:
            methods.append(member)
    return methods


def build_activities(
    pool: asyncpg.Pool,
    gateway: BrokerGateway | None,
    sync: BrokerSyncActivities | None = None,
    guard: TradeGuardActivities | None = None,
) -> list[Callable[..., Any]]:
    """All activity callables the worker registers, bound to their dependencies.

    Without a gateway (ledger-only test workers) the broker activities are left out; the
    BrokerSync activities need a Temporal client and the broker endpoint as well.
    """
    methods = activity_methods(LedgerActivities(pool))
    methods += activity_methods(ScoringActivities(pool))
    if gateway is not None:
        methods += activity_methods(BrokerActivities(gateway))
    if sync is not None:
        methods += activity_methods(sync)
    if guard is not None:
        methods += activity_methods(guard)
        methods += activity_methods(EntryActivities(guard._client, pool))
    return methods
