"""`flatten` without --yes: no terminal, EOF or a wrong answer refuses in one line, exit 2.

The CLI runs as a user would run it (a subprocess): with stdin empty, with stdin closed, and
at a real terminal (a pty) that answers EOF (Ctrl-D) or a wrong word. Each time the position,
its stop and trading control are left exactly as they were.
"""

from __future__ import annotations

import asyncio
import os
import pty
import subprocess
import sys

import pytest

from paperbroker.testing import RunningBroker
from settings import ROOT, Settings
from tests.integration.cli_helpers import stack_env
from tests.integration.control.conftest import ControlHarness
from trading.control import ControlMode

pytestmark = pytest.mark.integration

NO_TERMINAL = (
    "error: refusing to flatten without confirmation: no terminal to ask; pass --yes to confirm\n"
)
DECLINED = "error: flatten not confirmed; nothing changed\n"
STARTER = str(ROOT / "starter.py")


def _flatten(env: dict[str, str], stdin: str) -> subprocess.CompletedProcess[str]:
    """`starter.py flatten` with stdin empty, closed, or a terminal that types `stdin`."""
    if stdin == "empty":
        command, stdin_fd = [sys.executable, STARTER, "flatten"], subprocess.DEVNULL
        return subprocess.run(
            command, stdin=stdin_fd, capture_output=True, text=True, env=env, timeout=60
        )
    if stdin == "closed":
        command = ["sh", "-c", 'exec "$0" "$@" <&-', sys.executable, STARTER, "flatten"]
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True, env=env, timeout=60
        )
    controller, terminal = pty.openpty()
    try:
        os.write(controller, stdin.encode())  # the terminal holds the keys until they are read
        return subprocess.run(
            [sys.executable, STARTER, "flatten"],
            stdin=terminal,
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )
    finally:
        os.close(terminal)
        os.close(controller)


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ("empty", NO_TERMINAL),
        ("closed", NO_TERMINAL),
        ("\x04", NO_TERMINAL),  # Ctrl-D at the prompt: EOF
        ("no\n", DECLINED),
    ],
    ids=["stdin-empty", "stdin-closed", "eof-at-the-prompt", "declined"],
)
async def test_flatten_refuses_without_confirmation_and_changes_nothing(
    control: ControlHarness,
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
    stdin: str,
    expected: str,
) -> None:
    view = await control.open_trade("AAPL")
    await control.start_control()
    positions = control.trades.gateway.get_positions()
    orders = sorted(control.every_open_order())
    env = stack_env(settings, paper_broker, database_url)

    done = await asyncio.to_thread(_flatten, env, stdin)

    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr == expected
    assert "Traceback" not in done.stdout + done.stderr
    if stdin == "no\n":  # a terminal was there: the question was asked
        assert "Flatten will exit 1 positions (AAPL)" in done.stdout
    assert control.trades.gateway.get_positions() == positions != []
    assert sorted(control.every_open_order()) == orders != []
    state = await control.control_state()
    assert state.mode is ControlMode.ACTIVE and state.flatten is None
    assert (await control.trades.trade_row(view.trade_id)).status == "OPEN"
