"""`starter.py dev up`: the embedded stack starts, reports itself, and stops without leftovers.

Ctrl-C on a foreground `dev up` stops everything - worker, paper broker, Temporal, PostgreSQL -
within 10 s (the measured time is printed), leaving no process, record, pid file or port.
"""

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
import psutil
import pytest

from devstack.config import load_dev_config
from devstack.processes import pid_alive, port_open
from settings import ROOT
from tests.conftest import free_port
from tests.integration.cli_helpers import cli_env, run_cli

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DEV_CONFIG = load_dev_config(ROOT / "temporal-dev.yaml")
STOP_WITHIN_S = 10.0


def _stack_env(tmp_path: Path) -> tuple[dict[str, str], dict[str, int]]:
    ports = {name: free_port() for name in ("temporal", "ui", "postgres", "broker")}
    (tmp_path / "temporal-dev.yaml").write_text(
        "temporal:\n"
        f"  port: {ports['temporal']}\n  ui_port: {ports['ui']}\n"
        "  db_filename: state/history.sqlite\n"
        # the repository's attributes and dynamic config, so demo trades really run
        f"  search_attributes: {json.dumps(DEV_CONFIG.temporal.search_attributes)}\n"
        f"  dynamic_config: {json.dumps(DEV_CONFIG.temporal.dynamic_config)}\n"
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


def _process_tree(pids: list[int]) -> set[int]:
    """These processes and every descendant (PostgreSQL's backends, the dev server's children)."""
    tree: set[int] = set()
    for pid in pids:
        try:
            process = psutil.Process(pid)
            tree |= {pid, *(child.pid for child in process.children(recursive=True))}
        except psutil.NoSuchProcess:
            continue
    return tree


def _wait_for_log(path: Path, marker: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and marker in path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise AssertionError(f"{marker!r} not in {path} within {timeout:.0f} s")


def _assert_nothing_left(tmp_path: Path, ports: dict[str, int], processes: set[int]) -> None:
    assert [pid for pid in processes if pid_alive(pid)] == []
    assert [name for name, port in ports.items() if port_open("127.0.0.1", port)] == []
    state = tmp_path / "state"
    stale = [state / "stack.json", state / "stack.tmp", state / "pg" / "postmaster.pid"]
    assert [str(path) for path in stale if path.exists()] == []


def test_dev_up_runs_the_stack_and_ctrl_c_stops_it_within_10_s_leaving_nothing(
    tmp_path: Path,
) -> None:
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
        assert "demo trade" in output  # without --no-demo, the demo opens trades
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

        # the 30-minute trade_updates listener is in flight: the worker must not wait it out
        _wait_for_log(tmp_path / "state" / "logs" / "worker-1.log", "trade_updates: listening", 30)
        processes = _process_tree([process.pid, *pids])
        began = time.monotonic()
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=90)
        stopped_in = time.monotonic() - began
        print(f"dev up stopped {stopped_in:.1f} s after SIGINT")
        assert process.stdout is not None
        shutdown = process.stdout.read()
        assert code == 0, shutdown
    finally:
        if process.poll() is None:
            process.kill()
            run_cli("dev", "down", env=env)
    assert stopped_in < STOP_WITHIN_S, shutdown
    assert "dev stack stopped in" in shutdown
    _assert_nothing_left(tmp_path, ports, processes)
    assert run_cli("dev", "status", env=env).returncode == 1


def test_detached_dev_up_keeps_its_flags_no_demo_opens_no_trade(tmp_path: Path) -> None:
    env, ports = _stack_env(tmp_path)
    started = run_cli("dev", "up", "--detach", "--no-demo", env=env, timeout=240)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        log = (tmp_path / "state" / "stack.log").read_text()
        assert "Press Ctrl-C" in log  # detached returns once the services have started
        assert "services:" in log and "demo trade" not in log
        listed = run_cli("trade", "list", "--json", env=env)
        assert listed.returncode == 0, listed.stderr
        assert json.loads(listed.stdout) == []
        assert asyncio.run(_count_trades(ports["postgres"])) == 0
        supervisor = json.loads(run_cli("dev", "status", "--json", env=env).stdout)
        processes = _process_tree([supervisor["supervisor_pid"], *_recorded_pids(env)])
    finally:
        down = run_cli("dev", "down", env=env)
    assert down.returncode == 0, down.stdout + down.stderr
    _assert_nothing_left(tmp_path, ports, processes)


async def _count_trades(port: int) -> int:
    conn = await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{port}/durable_trader")
    try:
        return int(await conn.fetchval("SELECT count(*) FROM trades"))
    finally:
        await conn.close()


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
