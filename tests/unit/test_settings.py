"""Settings: validation errors are specific; secrets never show."""

from __future__ import annotations

import json
from datetime import time
from decimal import Decimal

import pytest

from cli.main import main
from settings import LIVE_CONFIRMATION, ConfigError, load_settings
from trading.risk import RiskLimits
from trading.strategies import StrategyConfigs


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    for name in (
        "DATABASE_URL",
        "ALPACA_API_KEY",
        "ALPACA_SECRET_KEY",
        "TRADING_MODE",
        "ALPACA_PAPER",
        "TEMPORAL_ADDRESS",
        "TRADING_LIVE_CONFIRM",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(str(tmp_path))  # no developer .env leaks in


def test_defaults_use_the_embedded_pieces() -> None:
    settings = load_settings()
    assert settings.uses_embedded_postgres
    assert settings.uses_paper_broker
    assert settings.trading_mode == "paper"
    assert settings.temporal_address == "localhost:7233"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mysql://u:p@h/db", "got scheme 'mysql'"),
        ("not a url", "got scheme '(none)'"),
        ("postgresql://u:p@host:notaport/db", "invalid port"),
        ("postgresql:///db", "names no host"),
    ],
)
def test_malformed_database_url_names_the_problem(
    monkeypatch: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: DATABASE_URL: ")
    assert expected in message
    assert "\n" not in message


def test_database_url_password_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "mysql://user:hunter2-secret@host/db")
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert "hunter2-secret" not in str(caught.value)


def test_live_mode_is_refused_without_confirmation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRADING_MODE", "live")
    with pytest.raises(ConfigError, match="TRADING_LIVE_CONFIRM"):
        load_settings()


def test_live_mode_with_confirmation_still_needs_live_keys(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("TRADING_MODE", "live")
    monkeypatch.setenv("TRADING_LIVE_CONFIRM", LIVE_CONFIRMATION)
    monkeypatch.setenv("ALPACA_PAPER", "false")
    with pytest.raises(ConfigError, match="needs ALPACA_API_KEY"):
        load_settings()
    monkeypatch.setenv("ALPACA_API_KEY", "AK" + "x" * 10)
    monkeypatch.setenv("ALPACA_SECRET_KEY", "s" * 20)
    assert load_settings().trading_mode == "live"


def test_half_a_key_pair_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ALPACA_API_KEY", "only-the-id")
    with pytest.raises(ConfigError, match="must be set together"):
        load_settings()


def test_bad_temporal_address(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEMPORAL_ADDRESS", "localhost")
    with pytest.raises(ConfigError, match="TEMPORAL_ADDRESS: expected host:port"):
        load_settings()


def test_masked_view_hides_every_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    key, secret, password = "AKVISIBLE123", "secret-should-not-show", "pw-should-not-show"
    monkeypatch.setenv("ALPACA_API_KEY", key)
    monkeypatch.setenv("ALPACA_SECRET_KEY", secret)
    monkeypatch.setenv("DATABASE_URL", f"postgresql://trader:{password}@db.example:5432/ledger")
    monkeypatch.setenv("TEMPORAL_API_KEY", "temporal-key-should-not-show")
    shown = load_settings().masked()
    text = repr(shown)
    for hidden in (key, secret, password, "temporal-key-should-not-show"):
        assert hidden not in text
    assert shown["DATABASE_URL"] == "postgresql://trader:********@db.example:5432/ledger"
    assert shown["ALPACA_SECRET_KEY"] == "********"


def test_a_password_in_the_query_is_masked_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/ledger?user=t&password=qs-secret")
    shown = load_settings().masked()["DATABASE_URL"]
    assert "qs-secret" not in shown and "password=********" in shown


# --- strategies and risk (issue 12) ------------------------------------------------------------

TRADING_BRAIN = (
    "STRATEGIES",
    "ORB_CUTOFF",
    "ORB_RANGE_MINUTES",
    "PULLBACK_TIMEFRAME",
    "MOMENTUM_LOOKBACK",
    "RISK_PER_TRADE_PCT",
    "RISK_PER_TRADE_USD",
    "MAX_HEAT_PCT",
    "MAX_ALLOCATION_PCT",
    "MAX_ORDER_QTY",
    "DAILY_LOSS_LIMIT",
    "DAILY_LOSS_LIMIT_PCT",
    "ADDONS_ENABLED",
    "ADDON_MIN_CONFIDENCE",
)


@pytest.fixture
def _no_brain_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in TRADING_BRAIN:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.usefixtures("_no_brain_env")
def test_the_defaults_build_the_risk_limits_and_strategy_configs() -> None:
    settings = load_settings()
    assert settings.strategy_names == ["orb", "trend_pullback", "momentum"]
    assert settings.risk_limits == RiskLimits()
    assert settings.strategy_configs == StrategyConfigs()


@pytest.mark.usefixtures("_no_brain_env")
def test_the_new_settings_reach_the_risk_limits_and_strategy_configs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("STRATEGIES", " ORB , momentum ")
    monkeypatch.setenv("ORB_CUTOFF", "9:50")
    monkeypatch.setenv("PULLBACK_TIMEFRAME", "5Min")
    monkeypatch.setenv("MOMENTUM_LOOKBACK", "20")
    monkeypatch.setenv("RISK_PER_TRADE_USD", "250")
    monkeypatch.setenv("MAX_HEAT_PCT", "0.04")
    monkeypatch.setenv("DAILY_LOSS_LIMIT", "1000")
    monkeypatch.setenv("ADDONS_ENABLED", "true")
    monkeypatch.setenv("ADDON_MIN_CONFIDENCE", "4")
    settings = load_settings()
    assert settings.strategy_names == ["orb", "momentum"]
    configs = settings.strategy_configs
    assert configs.orb.cutoff == time(9, 50)
    assert configs.trend_pullback.timeframe == "5Min" and configs.momentum.lookback == 20
    limits = settings.risk_limits
    assert limits.risk_per_trade_usd == Decimal(250) and limits.max_heat_pct == Decimal("0.04")
    assert limits.daily_loss_limit_usd == Decimal(1000)
    assert limits.addons_enabled and limits.addon_min_confidence == 4


@pytest.mark.usefixtures("_no_brain_env")
@pytest.mark.parametrize(
    ("name", "value", "named"),
    [
        ("STRATEGIES", "foo", "STRATEGIES"),
        ("STRATEGIES", " , ", "STRATEGIES"),
        ("ORB_CUTOFF", "25:00", "ORB_CUTOFF"),
        ("ORB_CUTOFF", "noon", "ORB_CUTOFF"),
        ("ORB_CUTOFF", "09:40", "ORB_*"),  # inside the 15-minute opening range
        ("MAX_HEAT_PCT", "0.001", "MAX_HEAT_PCT"),
        ("MAX_ORDER_QTY", "1.5", "MAX_ORDER_QTY"),
        ("PULLBACK_TIMEFRAME", "7Parsec", "PULLBACK_TIMEFRAME"),
        ("PULLBACK_SHORT_MA", "60", "PULLBACK_*"),
        ("ADDON_MIN_CONFIDENCE", "6", "ADDON_MIN_CONFIDENCE"),
    ],
)
def test_a_bad_trading_setting_is_one_line_naming_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, named: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    message = str(caught.value)
    assert message.startswith("invalid configuration: ")
    assert named in message and "\n" not in message
    # the user sets environment names, not the risk engine's or the strategies' field names
    assert "max_heat_pct" not in message and "trend_pullback." not in message


@pytest.mark.usefixtures("_no_brain_env")
def test_settings_show_lists_the_new_settings(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("MAX_HEAT_PCT", "0.05")
    assert main(["settings", "show", "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    for name in TRADING_BRAIN:
        assert name in shown, name
    assert shown["STRATEGIES"] == "orb,trend_pullback,momentum"
    assert shown["MAX_HEAT_PCT"] == "0.05" and shown["RISK_PER_TRADE_USD"] == "(unset)"


@pytest.mark.usefixtures("_no_brain_env")
def test_settings_show_exits_2_with_one_line_on_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("ORB_CUTOFF", "25:00")
    assert main(["settings", "show", "--json"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("error: invalid configuration: ")
    assert "ORB_CUTOFF" in captured.err and captured.err.count("\n") == 1
