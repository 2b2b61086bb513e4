"""Every side effect of the system, as activity methods on classes built with their clients."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from activities.ledger import LedgerActivities


def build_activities(pool: asyncpg.Pool) -> list[Callable[..., Any]]:
    """All activity callables the worker registers, bound to their dependencies."""
    ledger = LedgerActivities(pool)
    return [ledger.append_audit, ledger.get_audit]
