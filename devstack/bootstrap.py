"""Create or reuse the project's virtual environment and re-run the command inside it.

Only the standard library may be used here: this runs before anything is installed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".venv"
STAMP = VENV / ".durable-trader-deps"
LOCK = ROOT / "constraints.txt"
MIN_PYTHON = (3, 11)


def _venv_python() -> Path:
    return VENV / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _requirements() -> list[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return [*project["dependencies"], *project["optional-dependencies"]["dev"]]


def _fingerprint(requirements: list[str], lock: str) -> str:
    # the lock is part of it, so a changed pin reinstalls like a changed requirement
    return hashlib.sha256("\n".join([*requirements, lock]).encode()).hexdigest()


def _say(message: str) -> None:
    sys.stderr.write(f"[bootstrap] {message}\n")
    sys.stderr.flush()


def ensure_environment() -> None:
    """Make sure .venv holds the declared dependencies at the locked versions, then re-exec."""
    if sys.version_info < MIN_PYTHON:
        sys.exit(
            f"error: durable-trader needs Python {MIN_PYTHON[0]}.{MIN_PYTHON[1]}+, "
            f"this is {sys.version.split()[0]}; run it with a newer python3"
        )
    if os.environ.get("DT_NO_BOOTSTRAP") == "1":
        return
    if not (ROOT / "pyproject.toml").exists():
        return  # an installed copy (pip install .) already runs in its environment
    if not LOCK.exists():
        sys.exit(
            f"error: {LOCK} is missing; it pins the versions the bootstrap installs "
            f"(restore it with `git checkout {LOCK.name}`)"
        )
    requirements = _requirements()
    fingerprint = _fingerprint(requirements, LOCK.read_text())
    python = _venv_python()
    if not python.exists():
        _say(f"creating virtual environment in {VENV}")
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    if not STAMP.exists() or STAMP.read_text().strip() != fingerprint:
        _say("installing dependencies (first run only; about a minute)")
        pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check"]
        done = subprocess.run(
            [*pip, "--constraint", str(LOCK), *requirements], capture_output=True, text=True
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout[-4000:] + done.stderr[-4000:])
            sys.exit(f"error: installing dependencies into {VENV} failed (pip output above)")
        STAMP.write_text(fingerprint)
    if Path(sys.prefix).resolve() != VENV.resolve():
        os.execv(str(python), [str(python), *sys.argv])
