"""durable-trader command line: dev stack, settings, trades, schedules, status and control.

Run `python starter.py --help`. The first run creates .venv and installs dependencies.
`pip install .` installs the same command as `durable-trader` (see `installed_main`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NoReturn

from devstack.bootstrap import ensure_environment


def run() -> NoReturn:
    """Parse, dispatch and exit with the command's code, in the current environment."""
    from cli.main import main
    from devstack.exit import hard_exit

    hard_exit(main())


def installed_main() -> NoReturn:
    """The `durable-trader` console script: starter.py without the venv bootstrap."""
    _adopt_working_directory()
    run()


def _adopt_working_directory() -> None:
    """Read .env, temporal-dev.yaml and .state from the working directory of an installed copy.

    In a checkout (or an editable install) settings.ROOT is the checkout and nothing changes.
    Installed, ROOT is site-packages, which holds none of these; the command is run from a
    checkout, so its working directory takes ROOT's place. The values go into the environment
    because the dev stack starts its workers (and a detached `dev up`) with cwd=ROOT and this
    environment, and they must see the same configuration as this process.
    """
    # imported here: starter.py itself is imported before the bootstrap installs these
    from dotenv import dotenv_values

    from settings import ROOT

    if (ROOT / "pyproject.toml").exists():
        return
    here = Path.cwd()
    named = {key.upper() for key in os.environ}  # settings names are case-insensitive
    # the environment outranks .env, as it does in pydantic-settings
    for name, value in dotenv_values(here / ".env").items():
        if value is not None and name.upper() not in named:
            os.environ[name] = value
            named.add(name.upper())
    defaults = {"DEV_CONFIG": here / "temporal-dev.yaml", "STATE_DIR": here / ".state"}
    for name, path in defaults.items():
        if name not in named:
            os.environ[name] = str(path)


if __name__ == "__main__":
    ensure_environment()
    run()
