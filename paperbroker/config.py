"""Broker configuration: one frozen model, filled from CLI flags, env vars or test fixtures."""

from __future__ import annotations

import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from paperbroker.assets import DEFAULT_UNIVERSE
from paperbroker.clock import ClockMode
from paperbroker.fidelity import Fidelity, LegReplace

KEY_ID_ENV = "PAPERBROKER_KEY_ID"
SECRET_KEY_ENV = "PAPERBROKER_SECRET_KEY"


class BrokerConfig(BaseModel):
    """Everything the paper broker needs to start."""

    model_config = ConfigDict(frozen=True)

    key_id: SecretStr
    secret_key: SecretStr
    host: str = "127.0.0.1"
    port: int = 8765
    clock: ClockMode = ClockMode.REAL
    rate: float = 1.0
    start: datetime | None = None
    seed: int = 7
    state_file: Path | None = None
    rate_limit: int = 200
    symbols: tuple[str, ...] = tuple(DEFAULT_UNIVERSE)
    cash: Decimal = Decimal(100_000)
    volatility: float = 0.3
    drift: float = 0.0
    spread_bps: float = 2.0
    partial_fill_probability: float = 0.0
    fill_delay_ms: int = 0
    replay_csv: Path | None = None
    max_bars_page: int = Field(default=10_000, ge=1)
    tick_seconds: float = 0.2
    cancel_delay_ms: int = Field(default=50, ge=0)
    replace_delay_ms: int = Field(default=50, ge=0)
    leg_replace: LegReplace = LegReplace.PRICES
    hide_held_legs: bool = False
    skip_sibling_cancel_events: bool = False
    # Alpaca options trading levels 0-3 (docs.alpaca.markets Options Trading; alpaca-py
    # TradeAccount: 0=disabled, 1=Covered Call/Cash-Secured Put, 2=Long Call/Put,
    # 3=Spreads/Straddles). /_sim/options/level changes it until the next reset.
    options_level: int = Field(default=3, ge=0, le=3)

    def fidelity(self) -> Fidelity:
        """The run-time switches this configuration starts with (and /_sim/reset restores)."""
        return Fidelity(
            cancel_delay_ms=self.cancel_delay_ms,
            replace_delay_ms=self.replace_delay_ms,
            leg_replace=self.leg_replace,
            hide_held_legs=self.hide_held_legs,
            skip_sibling_cancel_events=self.skip_sibling_cancel_events,
        )


def credentials_from_env() -> tuple[SecretStr, SecretStr]:
    """Read the accepted key id and secret from PAPERBROKER_KEY_ID / PAPERBROKER_SECRET_KEY."""
    key_id = os.environ.get(KEY_ID_ENV, "")
    secret = os.environ.get(SECRET_KEY_ENV, "")
    if not key_id or not secret:
        raise SystemExit(f"set {KEY_ID_ENV} and {SECRET_KEY_ENV} to the credentials to accept")
    return SecretStr(key_id), SecretStr(secret)
