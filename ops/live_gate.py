"""TRADING_MODE=live starts a worker only after the last prelive of its configuration passed.

The configuration is the digest of `live_config` below: trading mode, paper flag, broker
endpoint URLs and a digest of the key id. The last `starter.py prelive` run stored for that
digest must have passed within PRELIVE_MAX_AGE; LIVE_SKIP_PRELIVE=I-ACCEPT-NO-PRELIVE
overrides the gate, and says so loudly in the log.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

import asyncpg

from ledger.prelive import PreliveRuns
from settings import (
    ALPACA_DATA_URL,
    ALPACA_LIVE_STREAM_URL,
    ALPACA_LIVE_TRADING_URL,
    ALPACA_PAPER_STREAM_URL,
    ALPACA_PAPER_TRADING_URL,
    LIVE_CONFIRMATION,
    ConfigError,
    Settings,
)
from trading.prelive import LiveConfig, config_digest, key_id_digest, live_gate

logger = logging.getLogger(__name__)
LOCAL_PAPER_BROKER = "local paper broker"


def live_config(settings: Settings) -> LiveConfig:
    """The non-secret settings a prelive run vouches for (no broker or file is read)."""
    key_id = settings.alpaca_api_key.get_secret_value() if settings.alpaca_api_key else None
    paper = settings.alpaca_paper
    if key_id is None:  # the dev stack's paper broker: no keys in the settings
        trading = settings.alpaca_trading_url or LOCAL_PAPER_BROKER
        data = settings.alpaca_data_url or LOCAL_PAPER_BROKER
        stream = settings.alpaca_stream_url or LOCAL_PAPER_BROKER
    else:
        trading = settings.alpaca_trading_url or (
            ALPACA_PAPER_TRADING_URL if paper else ALPACA_LIVE_TRADING_URL
        )
        data = settings.alpaca_data_url or ALPACA_DATA_URL
        stream = settings.alpaca_stream_url or (
            ALPACA_PAPER_STREAM_URL if paper else ALPACA_LIVE_STREAM_URL
        )
    return LiveConfig(
        trading_mode=settings.trading_mode,
        alpaca_paper=paper,
        trading_url=trading,
        data_url=data,
        stream_url=stream,
        key_id_digest=key_id_digest(key_id),
        live_confirmed=settings.trading_live_confirm == LIVE_CONFIRMATION,
    )


def settings_digest(settings: Settings) -> str:
    """The config digest of these settings (what prelive_runs.config_digest holds)."""
    return config_digest(live_config(settings))


async def require_prelive(settings: Settings, pool: asyncpg.Pool) -> None:
    """Raise ConfigError when live trading has no passing prelive (paper: nothing to check)."""
    if settings.trading_mode != "live":
        return
    digest = settings_digest(settings)
    last = await PreliveRuns(pool).last_for(digest)
    decision = live_gate(
        settings.trading_mode, digest, last, datetime.now(UTC), settings.live_skip_prelive
    )
    if not decision.allowed:
        raise ConfigError(f"TRADING_MODE=live refused: {decision.reason}")
    if decision.overridden:
        for _ in range(3):  # three lines, so a skim of the log cannot miss it
            logger.critical("LIVE TRADING WITHOUT PRELIVE: %s", decision.reason)
    else:
        logger.warning("live trading: %s (config %s)", decision.reason, digest)
