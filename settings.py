"""Runtime configuration: one pydantic-settings model read from the environment and .env."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trading.broker_budget import MAX_CALL_SLOTS, BudgetConfig

ROOT = Path(__file__).resolve().parent
LIVE_CONFIRMATION = "I-ACCEPT-REAL-MONEY-RISK"

ALPACA_PAPER_TRADING_URL = "https://paper-api.alpaca.markets"
ALPACA_LIVE_TRADING_URL = "https://api.alpaca.markets"
ALPACA_DATA_URL = "https://data.alpaca.markets"
ALPACA_PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
ALPACA_LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"


class ConfigError(Exception):
    """A configuration value is wrong; the message says which, why and what to do."""


class Settings(BaseSettings):
    """Effective configuration of worker, starter and tests."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", frozen=True
    )

    temporal_address: str = Field("localhost:7233", description="Temporal frontend host:port")
    temporal_namespace: str = Field("default", description="Temporal namespace")
    temporal_task_queue: str = Field("durable-trader", description="Task queue of the workers")
    temporal_tls: bool = Field(False, description="Use TLS to reach Temporal (cloud/cluster)")
    temporal_api_key: SecretStr | None = Field(None, description="Temporal Cloud API key")
    temporal_tls_cert: Path | None = Field(None, description="Client certificate (mTLS) path")
    temporal_tls_key: Path | None = Field(None, description="Client private key (mTLS) path")
    temporal_connect_timeout_s: float = Field(5.0, gt=0, description="Give up connecting after")
    temporal_ui_url: str = Field(
        "http://127.0.0.1:8233", description="Web UI base URL, for the links the CLI prints"
    )

    database_url: SecretStr | None = Field(
        None, description="PostgreSQL URL; unset -> the embedded PostgreSQL of the dev stack"
    )

    alpaca_api_key: SecretStr | None = Field(
        None, description="Alpaca key id; unset -> the local paper broker"
    )
    alpaca_secret_key: SecretStr | None = Field(None, description="Alpaca secret key")
    alpaca_paper: bool = Field(True, description="Use the Alpaca paper endpoints")
    alpaca_trading_url: str | None = Field(None, description="Override the trading REST base URL")
    alpaca_data_url: str | None = Field(None, description="Override the market-data base URL")
    alpaca_stream_url: str | None = Field(None, description="Override the trade_updates URL")

    trading_mode: Literal["paper", "live"] = Field("paper", description="paper or live")
    trading_live_confirm: str | None = Field(
        None, description=f"Must be {LIVE_CONFIRMATION} for TRADING_MODE=live"
    )

    daily_loss_limit: Decimal | None = Field(
        None, gt=0, description="Halt entries when today's loss passes this many dollars"
    )
    watchlist: str = Field(
        "AAPL,MSFT,NVDA,AMZN,GOOGL,META,SPY,QQQ",
        description="Symbols the scheduled market loop scans (comma-separated)",
    )
    max_open_positions: int = Field(
        3, ge=1, description="Entry gate: no new entry while the broker holds this many"
    )
    broker_calls_per_min: int = Field(
        190,
        ge=MAX_CALL_SLOTS,
        description="Broker calls per minute all processes on these keys share (Alpaca allows "
        "200 per key; the rest is room for calls the budget cannot count)",
    )
    broker_read_reserve: int = Field(
        40, ge=0, description="Reads stop while this many calls of the minute are left"
    )
    broker_trade_reserve: int = Field(
        10,
        ge=0,
        description="Entries and other non-protective writes stop while this many are left",
    )
    broker_cli_wait_s: float = Field(
        30.0,
        ge=0,
        description="How long a CLI command waits out a broker rate limit or a spent budget",
    )
    dev_config: Path = Field(ROOT / "temporal-dev.yaml", description="Dev stack settings file")
    state_dir: Path = Field(ROOT / ".state", description="Dev stack runtime state folder")
    log_level: str = Field("INFO", description="Python log level")
    schedule_profile: Literal["dev", "market"] | None = Field(
        None,
        description="Schedules `schedules apply` installs: market (NYSE hours) or dev "
        "(intervals); unset -> schedules.profile of DEV_CONFIG",
    )

    @field_validator("temporal_address")
    @classmethod
    def _host_port(cls, value: str) -> str:
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port such as localhost:7233, got {value!r}")
        return value

    @field_validator("database_url")
    @classmethod
    def _postgres_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        parts = urlsplit(value.get_secret_value())
        if parts.scheme not in ("postgres", "postgresql"):
            raise ValueError(
                f"expected postgresql://user:password@host:port/dbname, got scheme "
                f"{parts.scheme or '(none)'!r}"
            )
        try:
            port = parts.port
        except ValueError as exc:
            raise ValueError(f"invalid port in the URL ({exc})") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("the URL names no host (postgresql://user:password@HOST:port/db)")
        if port == 0:
            raise ValueError("port 0 is not a PostgreSQL port")
        return value

    @field_validator("alpaca_trading_url", "alpaca_data_url", "alpaca_stream_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https", "ws", "wss") or not parts.netloc:
            raise ValueError(f"expected an http(s):// or ws(s):// URL, got {value!r}")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        has_key = self.alpaca_api_key is not None
        has_secret = self.alpaca_secret_key is not None
        if has_key != has_secret:
            raise ValueError(
                "ALPACA_API_KEY and ALPACA_SECRET_KEY must be set together (or both unset "
                "to use the local paper broker)"
            )
        if self.trading_mode == "live":
            if self.trading_live_confirm != LIVE_CONFIRMATION:
                raise ValueError(
                    "TRADING_MODE=live trades real money and is refused unless "
                    f"TRADING_LIVE_CONFIRM={LIVE_CONFIRMATION} is also set"
                )
            if self.alpaca_paper:
                raise ValueError("TRADING_MODE=live needs ALPACA_PAPER=false")
            if not has_key:
                raise ValueError("TRADING_MODE=live needs ALPACA_API_KEY and ALPACA_SECRET_KEY")
        elif not self.alpaca_paper:
            raise ValueError("ALPACA_PAPER=false points at a live account; set TRADING_MODE=live")
        try:
            self.broker_budget  # noqa: B018 - validated here so a bad budget fails at start
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"BROKER_CALLS_PER_MIN / BROKER_*_RESERVE: {reasons}") from None
        return self

    @property
    def broker_budget(self) -> BudgetConfig:
        """The broker-call budget: BROKER_CALLS_PER_MIN and the read and trade reserves."""
        return BudgetConfig(
            calls_per_min=self.broker_calls_per_min,
            read_reserve=self.broker_read_reserve,
            trade_reserve=self.broker_trade_reserve,
        )

    @property
    def watchlist_symbols(self) -> list[str]:
        """WATCHLIST as upper-case symbols."""
        return [s.strip().upper() for s in self.watchlist.split(",") if s.strip()]

    @property
    def uses_paper_broker(self) -> bool:
        """True when no Alpaca keys are set, so the local paper broker stands in."""
        return self.alpaca_api_key is None

    @property
    def uses_embedded_postgres(self) -> bool:
        """True when DATABASE_URL is unset, so the dev stack's embedded PostgreSQL is used."""
        return self.database_url is None

    def masked(self) -> dict[str, str]:
        """The effective configuration as env-name -> value, secrets masked."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value: Any = getattr(self, name)
            if isinstance(value, SecretStr):
                text = _mask_url(value) if name == "database_url" else "********"
            elif value is None:
                text = "(unset)"
            else:
                text = str(value)
            shown[name.upper()] = text
        return shown


def _mask_url(value: SecretStr) -> str:
    parts = urlsplit(value.get_secret_value())
    netloc = parts.netloc
    if parts.password is not None:
        netloc = netloc.replace(f":{parts.password}@", ":********@")
    query = re.sub(r"(?i)(password=)[^&]*", r"\1********", parts.query)  # libpq-style too
    return parts._replace(netloc=netloc, query=query).geturl()


def load_settings(**overrides: Any) -> Settings:
    """Read Settings, turning validation errors into one specific ConfigError line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error["loc"]) or "settings"
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{field.upper()}: {message}" if error["loc"] else message)
        raise ConfigError("invalid configuration: " + "; ".join(problems)) from None
