"""`starter.py dev up`: the embedded stack starts, reports itself, and stops without leftovers."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import asyncpg
import pytest

from devstack.processes import pid_alive, port_open
from settings import ROOT
from tests.conftest import free_port
from tests.integration.cli_helpers import cli_env, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _stack_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in ("temporal", "ui", "postgres", "broker")}
    (tmp_path / "temporal-dev.yaml").write_text(
        "temporal:\n"
        f"  port: {ports['temporal']}\n  ui_port: {ports['ui']}\n"
        "  db_filename: state/history.sqlite\n"
        "  search_attributes: {TradeSymbol: Keyword, TradeStatus: Keyword}\n"
        f"postgres:\n  port: {ports['postgres']}\n  data_dir: state/pg\n"
        f"paperbroker:\n  port: {ports['broker']}\n  clock: manual\n"
    )
    env = cli_env(
        DEV_CONFIG=str(tmp_path / "temporal-dev.yaml"),
        STATE_DIR=str(tmp_path / "state"),
        TEMPORAL_ADDRESS=f"127.0.0.1:{ports['temporal']}",
        TEMPORAL_TASK_QUEUE=f"tq-devstack-{os.getpid()}",
    )
    return env, ports


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float) -> str:
    assert process.stdout is not None
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not seen; output so far:\n{''.join(seen)}")


async def _ledger_facts(port: int) -> tuple[list[str], int]:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/durable_trader")
    try:
        rows = await conn.fetch("SELECT name FROM schema_migrations ORDER BY version")
        return [r["name"] for r in rows], int(await conn.fetchval("SELECT count(*) FROM audit_log"))
    finally:
        await conn.close()


def _recorded_pids(env: dict[str, str]) -> list[int]:
    status = json.loads(run_cli("dev", "status", "--json", env=env).stdout)
    return [c["pid"] for c in status["components"] if c["pid"]]


def test_dev_up_runs_the_stack_and_ctrl_c_leaves_nothing(tmp_path: Path) -> None:
    env, ports = _stack_env(tmp_path)
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "starter.py"), "dev", "up"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until(process, "Press Ctrl-C", timeout=180)
        assert "Web UI" in output and f"http://127.0.0.1:{ports['ui']}" in output
        assert output.index("Web UI") < output.index("postgres")  # Web UI URL first
        assert "stack check ok" in output and "broker clock" in output
        with urllib.request.urlopen(f"http://127.0.0.1:{ports['ui']}", timeout=5) as response:
            assert response.status == 200

        migrations, audit_rows = asyncio.run(_ledger_facts(ports["postgres"]))
        assert migrations[0] == "0001_core.sql"
        assert audit_rows >= 1  # the stack check wrote through the worker

        status = json.loads(run_cli("dev", "status", "--json", env=env).stdout)
        assert status["running"] and all(c["alive"] for c in status["components"])
        names = {c["name"] for c in status["components"]}
        assert {"temporal", "postgres", "paperbroker", "worker-1"} <= names
        pids = _recorded_pids(env)

        again = run_cli("dev", "up", env=env)
        assert again.returncode == 0
        assert "already running" in again.stdout

        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=90) == 0
    finally:
        if process.poll() is None:
            process.kill()
            run_cli("dev", "down", env=env)
    assert not any(pid_alive(pid) for pid in pids)
    for port in ports.values():
        assert not port_open("127.0.0.1", port)
    assert run_cli("dev", "status", env=env).returncode == 1


def test_crashed_stack_gets_a_clear_message_and_dev_down_cleans_up(tmp_path: Path) -> None:
    env, ports = _stack_env(tmp_path)
    started = run_cli("dev", "up", "--detach", env=env, timeout=240)
    assert started.returncode == 0, started.stdout + started.stderr
    status = json.loads(run_cli("dev", "status", "--json", env=env).stdout)
    supervisor = status["supervisor_pid"]
    pids = _recorded_pids(env)
    try:
        os.kill(supervisor, signal.SIGKILL)  # a crash: children are left behind
        assert _wait(lambda: not pid_alive(supervisor))

        stale = run_cli("dev", "status", env=env)
        assert stale.returncode == 1 and "stale" in stale.stdout

        blocked = run_cli("dev", "up", env=env)
        assert blocked.returncode == 1
        assert "crashed and left" in blocked.stderr and "dev down" in blocked.stderr
    finally:
        down = run_cli("dev", "down", env=env)
    assert down.returncode == 0, down.stderr
    assert [pid for pid in pids if pid_alive(pid)] == [], down.stdout
    for port in (ports["temporal"], ports["ui"], ports["postgres"]):
        assert not port_open("127.0.0.1", port)


def test_port_in_use_is_reported(tmp_path: Path) -> None:
    env, ports = _stack_env(tmp_path)
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", ports["temporal"]))
        blocker.listen()
        done = run_cli("dev", "up", env=env)
    assert done.returncode == 1
    assert f"port {ports['temporal']} (Temporal gRPC) is already in use" in done.stderr
    assert "temporal.port" in done.stderr


def _wait(check: object, timeout: float = 10) -> bool:
    assert callable(check)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return False
