"""Running starter.py / worker.py as a user would, in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from settings import ROOT

SECRET_ENV = ("DATABASE_URL", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "TEMPORAL_API_KEY")


def cli_env(**overrides: str) -> dict[str, str]:
    """The current environment without any real credentials, plus overrides."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["DT_NO_BOOTSTRAP"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env.update(overrides)
    return env


def run_cli(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 120,
    script: str = "starter.py",
) -> subprocess.CompletedProcess[str]:
    """Run `python starter.py ARGS` and capture its output."""
    return subprocess.run(
        [sys.executable, str(ROOT / script), *args],
        capture_output=True,
        text=True,
        env=env or cli_env(),
        cwd=cwd or ROOT,
        timeout=timeout,
    )
