"""/healthz and /readyz: a worker's probes on the real stack, and `status` showing the same."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import asyncpg
import pytest
import pytest_asyncio

from cli.status import gather
from clients import make_client
from ledger.broker_view import BrokerView
from ops.health import ReadinessProbes, health_server, metered_gateway, serve_health
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import ROOT, ConfigError, Settings
from tests.conftest import free_port
from tests.integration.cli_helpers import run_cli, stack_env

pytestmark = pytest.mark.integration


@pytest_asyncio.fixture
async def probes(cli_settings: Settings, pool: asyncpg.Pool) -> ReadinessProbes:
    """The probes a worker on this test's stack serves (broker answers cached 15 s)."""
    client = await make_client(cli_settings)
    return ReadinessProbes(cli_settings, client, pool, metered_gateway(cli_settings, pool))


@pytest_asyncio.fixture
async def base_url(probes: ReadinessProbes) -> AsyncIterator[str]:
    async with serve_health(f"127.0.0.1:{free_port()}", probes) as url:
        yield url


async def _get(url: str) -> tuple[int, str, dict[str, object] | None]:
    async with aiohttp.ClientSession() as session, session.get(url) as answer:
        text = await answer.text()
        is_json = answer.content_type == "application/json"
        return answer.status, text, (await answer.json() if is_json else None)


def _verdicts(body: dict[str, object] | None) -> dict[str, tuple[bool, str]]:
    assert body is not None
    checks = body["checks"]
    assert isinstance(checks, list)
    return {c["name"]: (c["ok"], c["detail"]) for c in checks}


async def _set_poll(pool: asyncpg.Pool, observed_at: datetime) -> None:
    """The poll time as BrokerSync stores it (an older poll cannot overwrite a newer one)."""
    await pool.execute("DELETE FROM broker_view_poll")
    await BrokerView(pool).store(observed_at, [])


async def test_healthz_is_up_and_readyz_names_the_stale_poll_then_turns_ready(
    base_url: str, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    await pool.execute("DELETE FROM broker_view_poll")
    status, text, _ = await _get(f"{base_url}/healthz")
    assert (status, text) == (200, "ok")

    status, _, body = await _get(f"{base_url}/readyz")
    assert status == 503
    verdicts = _verdicts(body)
    assert verdicts["truth_poll"] == (
        False,
        "no BrokerSync poll recorded yet (is BrokerSync running?)",
    )
    assert verdicts["temporal"][0] and verdicts["database"][0] and verdicts["broker"][0]

    await _set_poll(pool, datetime.now(UTC) - timedelta(minutes=10))
    status, _, body = await _get(f"{base_url}/readyz")
    assert status == 503 and body is not None and body["ready"] is False
    ok, detail = _verdicts(body)["truth_poll"]
    assert not ok and detail.startswith("stale: last BrokerSync poll 6") and "120" in detail

    await _set_poll(pool, datetime.now(UTC))
    status, _, body = await _get(f"{base_url}/readyz")
    assert status == 200 and body is not None and body["ready"] is True
    assert all(ok for ok, _ in _verdicts(body).values())


async def test_readyz_names_a_broker_that_does_not_answer(
    cli_settings: Settings, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    await _set_poll(pool, datetime.now(UTC))
    broker_admin.add_fault(method="GET", path="/v2/clock", status=503)
    client = await make_client(cli_settings)
    probes = ReadinessProbes(cli_settings, client, pool, metered_gateway(cli_settings, pool))
    async with serve_health(f"127.0.0.1:{free_port()}", probes) as url:
        status, _, body = await _get(f"{url}/readyz")
        assert status == 503
        ok, detail = _verdicts(body)["broker"]
        assert not ok and "BrokerUnavailable" in detail
        broker_admin.clear_faults()
        status, _, _ = await _get(f"{url}/readyz")
        assert status == 503  # the broker's answer is kept a while: one call per 15 s at most
    calls_before = broker_admin.requests()
    fresh = ReadinessProbes(cli_settings, client, pool, metered_gateway(cli_settings, pool))
    assert (await fresh.readiness()).ready
    for _ in range(5):
        assert (await fresh.readiness()).ready
    clock_calls = _clock_calls(broker_admin.requests()) - _clock_calls(calls_before)
    assert clock_calls == 1


def _clock_calls(requests: dict[str, object]) -> int:
    counts = requests["by_route"]
    assert isinstance(counts, dict)
    return sum(int(n) for route, n in counts.items() if "/v2/clock" in str(route))


async def test_a_busy_health_port_is_a_clear_error_and_an_empty_address_serves_nothing(
    cli_settings: Settings, probes: ReadinessProbes, pool: asyncpg.Pool
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        address = f"127.0.0.1:{taken.getsockname()[1]}"
        with pytest.raises(ConfigError, match=f"HEALTH_ADDRESS={address}: the port is already"):
            async with serve_health(address, probes):
                pass
    client = await make_client(cli_settings)
    off = cli_settings.model_copy(update={"health_address": ""})
    async with health_server(off, client, pool):
        pass  # nothing bound, nothing to fail


async def test_status_shows_the_same_readiness_verdicts(
    cli_settings: Settings, pool: asyncpg.Pool, broker_admin: AdminClient
) -> None:
    await _set_poll(pool, datetime.now(UTC) - timedelta(minutes=10))
    status = await gather(cli_settings)
    assert status.readiness is not None and not status.readiness.ready
    assert [c.name.value for c in status.readiness.failed] == ["truth_poll"]
    await _set_poll(pool, datetime.now(UTC))
    status = await gather(cli_settings)
    assert status.readiness is not None and status.readiness.ready


def _spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`python worker.py` as production runs it, its output in `log`."""
    return subprocess.Popen(
        [sys.executable, str(ROOT / "worker.py")],
        env=env,
        cwd=ROOT,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )


@pytest.mark.slow
async def test_a_worker_serves_its_probes_and_refuses_a_busy_port(
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
    pool: asyncpg.Pool,
    broker_admin: AdminClient,
    tmp_path: Path,
) -> None:
    await _set_poll(pool, datetime.now(UTC))
    port = free_port()
    env = stack_env(
        settings, paper_broker, database_url, HEALTH_ADDRESS=f"127.0.0.1:{port}", METRICS_ADDRESS=""
    )
    log = tmp_path / "worker.log"
    worker = _spawn_worker(env, log)
    try:
        deadline = time.monotonic() + 60
        while "worker running" not in log.read_text(errors="replace"):
            assert worker.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, "worker did not start"
            await asyncio.sleep(0.1)
        status, text, _ = await _get(f"http://127.0.0.1:{port}/healthz")
        assert (status, text) == (200, "ok")
        status, _, body = await _get(f"http://127.0.0.1:{port}/readyz")
        assert status == 200, body
        # A second worker on the same port stops at once, naming the setting.
        second = await asyncio.to_thread(run_cli, script="worker.py", env=env, timeout=60)
        assert second.returncode == 2
        assert f"HEALTH_ADDRESS=127.0.0.1:{port}: the port is already in use" in second.stderr
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=30)
