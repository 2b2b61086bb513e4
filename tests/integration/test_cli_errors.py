"""Bad configuration: one specific line on stderr and a non-zero exit, from the real CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.cli_helpers import cli_env, run_cli

pytestmark = pytest.mark.integration


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_unreachable_temporal_address(tmp_path: Path) -> None:
    port = free_port()
    done = run_cli(
        "dev", "check", env=cli_env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", STATE_DIR=str(tmp_path))
    )
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert f"TEMPORAL_ADDRESS=127.0.0.1:{port}" in line and "connection refused" in line


def test_worker_with_unreachable_temporal_exits_non_zero(tmp_path: Path) -> None:
    port = free_port()
    done = run_cli(
        env=cli_env(TEMPORAL_ADDRESS=f"127.0.0.1:{port}", STATE_DIR=str(tmp_path)),
        script="worker.py",
    )
    assert done.returncode == 2
    assert "cannot reach Temporal" in _one_error_line(done.stderr)


def test_malformed_database_url() -> None:
    done = run_cli(
        "settings", "show", env=cli_env(DATABASE_URL="postgresql://user:pw@db.example:99999999/x")
    )
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert "DATABASE_URL" in line and "port" in line
    assert "pw@" not in line


def test_invalid_dev_config(tmp_path: Path) -> None:
    bad = tmp_path / "temporal-dev.yaml"
    bad.write_text("temporal:\n  ui_port: web\n")
    done = run_cli("dev", "up", env=cli_env(DEV_CONFIG=str(bad), STATE_DIR=str(tmp_path)))
    assert done.returncode == 2
    line = _one_error_line(done.stderr)
    assert "temporal.ui_port" in line and str(bad) in line
    assert not (tmp_path / "stack.json").exists()  # nothing was started


def test_live_mode_without_confirmation() -> None:
    done = run_cli("settings", "show", env=cli_env(TRADING_MODE="live"))
    assert done.returncode == 2
    assert "TRADING_LIVE_CONFIRM" in _one_error_line(done.stderr)


def test_settings_show_masks_secrets() -> None:
    secret = "sk-" + "q" * 24
    done = run_cli(
        "settings",
        "show",
        "--json",
        env=cli_env(ALPACA_API_KEY="PKTESTVISIBLE", ALPACA_SECRET_KEY=secret),
    )
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout and "PKTESTVISIBLE" not in done.stdout
    assert '"ALPACA_SECRET_KEY": "********"' in done.stdout
