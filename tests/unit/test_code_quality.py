"""ruff and mypy (strict on trading/ and workflows/) stay clean; configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys

import pytest

from settings import ROOT

PACKAGES = [
    "activities",
    "broker",
    "cli",
    "devstack",
    "ledger",
    "ops",
    "paperbroker",
    "trading",
    "workflows",
    "bench",
    "settings.py",
    "clients.py",
    "worker.py",
    "starter.py",
]


def _existing() -> list[str]:
    return [name for name in PACKAGES if (ROOT / name).exists()]


@pytest.mark.slow
def test_ruff_is_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_mypy_is_clean() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mypy", *_existing()], cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stdout + done.stderr
