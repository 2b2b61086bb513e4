"""Runtime configuration: one pydantic-settings model read from the environment and .env."""

from __future__ import annotations

import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from trading.broker_budget import MAX_CALL_SLOTS, BudgetConfig
from trading.risk import RiskLimits
from trading.strategies import StrategyConfigs

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

    # hide_input_in_errors: a ValidationError raised outside load_settings must not print
    # the input, which holds every secret.
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        hide_input_in_errors=True,
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
    option_marks_max_age_s: float = Field(
        10.0,
        gt=0,
        description="Option marks: an expiry's chain quotes are read again after this many "
        "seconds (one read serves every open option trade of that expiry)",
    )
    # --- strategies (trading/strategies/) -----------------------------------------------
    strategies: str = Field(
        "orb,trend_pullback,momentum",
        description="Strategies the market loop scans, comma-separated (orb, trend_pullback, "
        "momentum)",
    )
    orb_range_minutes: int = Field(15, ge=1, le=120, description="ORB: opening range minutes")
    orb_cutoff: str = Field("11:30", description="ORB: no signal after this New York time")
    orb_volume_factor: Decimal = Field(
        Decimal(1), ge=0, description="ORB: breakout volume over its recent average, at least"
    )
    orb_stop_mode: Literal["range_low", "fraction"] = Field(
        "range_low", description="ORB: stop at the range low, or a fraction of the range"
    )
    orb_stop_fraction: Decimal = Field(
        Decimal("0.5"), gt=0, le=1, description="ORB: stop this fraction of the range below high"
    )
    orb_target_r: Decimal = Field(Decimal(2), gt=0, description="ORB: target at this R multiple")
    pullback_timeframe: str = Field("15Min", description="Trend pullback: bar timeframe")
    pullback_long_ma: int = Field(50, ge=2, description="Trend pullback: trend moving average")
    pullback_short_ma: int = Field(10, ge=1, description="Trend pullback: pullback average")
    pullback_rsi_oversold: Decimal = Field(
        Decimal(20), ge=0, le=100, description="Trend pullback: RSI(3) at or under is oversold"
    )
    pullback_target_r: Decimal = Field(
        Decimal(2), gt=0, description="Trend pullback: target R multiple without a swing high"
    )
    momentum_lookback: int = Field(10, ge=1, description="Momentum: daily bars of the return")
    # --- risk engine (trading/risk.py) -------------------------------------------------
    risk_per_trade_pct: Decimal = Field(
        Decimal("0.005"), gt=0, lt=1, description="Equity fraction lost at the stop, per trade"
    )
    risk_per_trade_usd: Decimal | None = Field(
        None, gt=0, description="Dollars lost at the stop per trade (wins over the pct)"
    )
    default_stop_distance: Decimal = Field(
        Decimal("0.05"), gt=0, lt=1, description="Stop below entry for a signal without one"
    )
    max_heat_pct: Decimal = Field(
        Decimal("0.06"), gt=0, lt=1, description="Open risk to all stops, at most this x equity"
    )
    daily_loss_limit_pct: Decimal | None = Field(
        Decimal("0.03"),
        gt=0,
        lt=1,
        description="Halt entries when today's loss reaches this fraction of last equity",
    )
    max_order_qty: Decimal | None = Field(None, ge=1, description="Freeze quantity per order")
    max_order_notional: Decimal | None = Field(
        None, gt=0, description="Largest order value in dollars"
    )
    split_oversized_orders: bool = Field(
        False, description="Slice an order over the freeze limits instead of refusing it"
    )
    max_allocation_pct: Decimal = Field(
        Decimal("0.05"), gt=0, lt=1, description="Position value per symbol, at most x equity"
    )
    max_consecutive_losses: int = Field(
        3, ge=1, description="System guard: pause entries after this many losses in a row"
    )
    max_drawdown_pct: Decimal = Field(
        Decimal("0.10"), gt=0, lt=1, description="System guard: pause at this drawdown"
    )
    addons_enabled: bool = Field(False, description="Add-on buys into our own open trades")
    addon_min_confidence: int = Field(
        5, ge=1, le=5, description="Add-ons need a strategy confidence of at least this (1-5)"
    )
    # --- operations (ops/) ---------------------------------------------------------------
    metrics_address: str = Field(
        "127.0.0.1:9464",
        description="Worker's Prometheus endpoint host:port (empty: no endpoint)",
    )
    health_address: str = Field(
        "127.0.0.1:9465",
        description="Worker's /healthz and /readyz host:port (empty: no endpoint)",
    )
    truth_poll_max_age_s: float = Field(
        120.0, gt=0, description="/readyz and prelive: BrokerSync's last poll is stale after this"
    )
    otel_exporter: Literal["off", "console", "otlp"] = Field(
        "off", description="OpenTelemetry traces: off, console (dev) or otlp"
    )
    otel_exporter_otlp_endpoint: str | None = Field(
        None, description="OTLP/HTTP traces endpoint, e.g. http://localhost:4318/v1/traces"
    )
    uncovered_alert_after_s: float = Field(
        30.0,
        gt=0,
        description="A position without an active stop this long is told to people "
        "(the webhook) - the DtPositionUncovered alert rule uses the same 30 s",
    )
    alert_webhook_url: SecretStr | None = Field(
        None, description="Slack-compatible webhook that alerts go to (a secret; unset: none)"
    )
    payload_encryption_key: SecretStr | None = Field(
        None,
        description="Encrypt every Temporal payload: key-id:base64-32-byte-key[,older ...] "
        "(the first encrypts; all decrypt)",
    )
    codec_server_address: str = Field(
        "127.0.0.1:8889", description="`codec-server`: host:port the Web UI's remote codec uses"
    )
    live_skip_prelive: str | None = Field(
        None,
        description="TRADING_MODE=live starts workers only after a passing prelive; set to "
        "I-ACCEPT-NO-PRELIVE to override",
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
        self._check_trading_brain()
        self._check_payload_key()
        try:
            self.broker_budget  # noqa: B018 - validated here so a bad budget fails at start
        except ValidationError as exc:
            reasons = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
            raise ValueError(f"BROKER_CALLS_PER_MIN / BROKER_*_RESERVE: {reasons}") from None
        return self

    def _check_payload_key(self) -> None:
        """PAYLOAD_ENCRYPTION_KEY parses as a key list (its errors name a key id, never a key)."""
        if self.payload_encryption_key is None:
            return
        text = self.payload_encryption_key.get_secret_value()
        if text.strip():
            from ops.codec import parse_key_ring  # only when set: keeps cryptography out of startup

            parse_key_ring(text)

    def _check_trading_brain(self) -> None:
        """Strategies, their parameters and the risk limits, each bad value named."""
        known = {"orb", "trend_pullback", "momentum"}
        unknown = [name for name in self.strategy_names if name not in known]
        if unknown or not self.strategy_names:
            raise ValueError(
                f"STRATEGIES: unknown {', '.join(unknown) or '(none given)'}; choose from "
                f"{', '.join(sorted(known))}"
            )
        for what, build, setting in (
            ("risk", lambda: self.risk_limits, _risk_setting),
            ("strategy", self._configs, _strategy_setting),
        ):
            try:
                build()
            except ValidationError as exc:
                reasons = "; ".join(_brain_reason(e, setting) for e in exc.errors())
                raise ValueError(f"{what} settings: {reasons}") from None

    def _configs(self) -> StrategyConfigs:
        return self.strategy_configs

    @property
    def strategy_names(self) -> list[str]:
        """STRATEGIES as names."""
        return [s.strip().lower() for s in self.strategies.split(",") if s.strip()]

    @property
    def strategy_configs(self) -> StrategyConfigs:
        """The strategies' parameters from ORB_*, PULLBACK_* and MOMENTUM_*."""
        hour, _, minute = self.orb_cutoff.partition(":")
        if not (hour.isdigit() and minute.isdigit()) or not (
            0 <= int(hour) < 24 and 0 <= int(minute) < 60
        ):
            raise ValueError(f"ORB_CUTOFF: expected HH:MM (New York time), got {self.orb_cutoff!r}")
        return StrategyConfigs.model_validate(
            {
                "orb": {
                    "range_minutes": self.orb_range_minutes,
                    "cutoff": f"{int(hour):02d}:{int(minute):02d}",
                    "volume_factor": self.orb_volume_factor,
                    "stop_mode": self.orb_stop_mode,
                    "stop_fraction": self.orb_stop_fraction,
                    "target_r": self.orb_target_r,
                },
                "trend_pullback": {
                    "timeframe": self.pullback_timeframe,
                    "long_ma": self.pullback_long_ma,
                    "short_ma": self.pullback_short_ma,
                    "rsi_oversold": self.pullback_rsi_oversold,
                    "target_r": self.pullback_target_r,
                },
                "momentum": {"lookback": self.momentum_lookback},
            }
        )

    @property
    def risk_limits(self) -> RiskLimits:
        """The risk engine's limits from RISK_*, MAX_*, DAILY_LOSS_LIMIT* and ADDON* settings."""
        return RiskLimits(
            risk_per_trade_pct=self.risk_per_trade_pct,
            risk_per_trade_usd=self.risk_per_trade_usd,
            default_stop_distance=self.default_stop_distance,
            max_heat_pct=self.max_heat_pct,
            daily_loss_limit_pct=self.daily_loss_limit_pct,
            daily_loss_limit_usd=self.daily_loss_limit,
            max_order_qty=self.max_order_qty,
            max_order_notional=self.max_order_notional,
            split_oversized=self.split_oversized_orders,
            max_allocation_pct=self.max_allocation_pct,
            max_consecutive_losses=self.max_consecutive_losses,
            max_drawdown_pct=self.max_drawdown_pct,
            addons_enabled=self.addons_enabled,
            addon_min_confidence=self.addon_min_confidence,
        )

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


# The settings behind RiskLimits fields named differently, and each strategy's setting prefix.
_RISK_SETTINGS = {
    "daily_loss_limit_usd": "DAILY_LOSS_LIMIT",
    "split_oversized": "SPLIT_OVERSIZED_ORDERS",
}
_STRATEGY_PREFIXES = {"orb": "ORB", "trend_pullback": "PULLBACK", "momentum": "MOMENTUM"}


def _risk_setting(loc: list[str]) -> str:
    """The setting of a RiskLimits field (`max_heat_pct` -> MAX_HEAT_PCT)."""
    return _RISK_SETTINGS.get(loc[0], loc[0].upper())


def _strategy_setting(loc: list[str]) -> str:
    """The setting of a StrategyConfigs field (`trend_pullback.timeframe` -> PULLBACK_TIMEFRAME);
    a rule over the whole config names its settings as `ORB_*`."""
    prefix = _STRATEGY_PREFIXES.get(loc[0], loc[0].upper())
    return f"{prefix}_{'_'.join(loc[1:]).upper() or '*'}"


def _brain_reason(error: Any, setting: Callable[[list[str]], str]) -> str:
    """One validation error of the risk limits or strategy configs, naming the setting to fix
    (the user sets MAX_HEAT_PCT, not RiskLimits.max_heat_pct)."""
    message = str(error["msg"]).removeprefix("Value error, ")
    loc = [str(part) for part in error["loc"]]
    if loc:
        return f"{setting(loc)}: {message}"
    # A rule across risk fields names them in its message: name their settings instead.
    return re.sub(
        r"\b[a-z_]+\b",
        lambda m: _risk_setting([m[0]]) if m[0] in RiskLimits.model_fields else m[0],
        message,
    )


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
