"""Shared helpers for ledger repositories: connection type and JSONB values."""

from __future__ import annotations

import json
from typing import Any

import asyncpg
from asyncpg.pool import PoolConnectionProxy

from trading.models import JsonScalar

Connection = asyncpg.Connection | PoolConnectionProxy


def dump_json(value: Any) -> str | None:
    """A value as JSON text for a `$n::jsonb` parameter (None stays SQL NULL)."""
    return None if value is None else json.dumps(value)


def load_json_object(value: str | dict[str, JsonScalar] | None) -> dict[str, JsonScalar]:
    """A JSONB object column as a dict (asyncpg returns JSONB as text by default)."""
    if value is None:
        return {}
    return json.loads(value) if isinstance(value, str) else value


def load_json(value: str | None) -> Any:
    """A JSONB column as Python values, or None."""
    return None if value is None else json.loads(value)
