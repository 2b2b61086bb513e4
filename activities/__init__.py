"""Every side effect of the system, as activity methods on classes built with their clients."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import asyncpg
from temporalio import activity
from temporalio.client import Client

from activities.broker import BrokerActivities
from activities.broker_sync import BrokerSyncActivities
from activities.entries import EntryActivities
from activities.ledger import LedgerActivities
from activities.reconcile import TradeGuardActivities
from activities.scoring import ScoringActivities
from broker.endpoint import BrokerEndpoint
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
    client: Client | None = None,
    endpoint: BrokerEndpoint | None = None,
) -> list[Callable[..., Any]]:
    """All activity callables the worker registers, bound to their dependencies.

    Without a gateway (ledger-only test workers) the broker activities are left out; those
    that start or signal workflows need the Temporal client, and BrokerSync's listener the
    broker endpoint as well.
    """
    methods = activity_methods(LedgerActivities(pool))
    methods += activity_methods(ScoringActivities(pool))
    if gateway is not None:
        methods += activity_methods(BrokerActivities(gateway))
    if client is not None:
        methods += activity_methods(TradeGuardActivities(client))
        methods += activity_methods(EntryActivities(client, pool))
        if gateway is not None and endpoint is not None:
            methods += activity_methods(BrokerSyncActivities(gateway, endpoint, client, pool))
    return methods
