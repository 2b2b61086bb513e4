"""Settings: validation errors are specific; secrets never show."""

from __future__ import annotations

import pytest

from settings import LIVE_CONFIRMATION, ConfigError, load_settings


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
