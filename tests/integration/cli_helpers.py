"""Running starter.py / worker.py as a user would, in a subprocess."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from pydantic import SecretStr

from paperbroker.testing import RunningBroker
from settings import ROOT, Settings
from tests.conftest import free_port

SECRET_ENV = ("DATABASE_URL", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "TEMPORAL_API_KEY")


def cli_env(**overrides: str) -> dict[str, str]:
    """The current environment without any real credentials, plus overrides.

    A worker started from it serves metrics and health on ports of its own (not 9464/9465,
    which another process on the machine may hold); each base has free ports above it for
    a dev stack's replicas.
    """
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env["DT_NO_BOOTSTRAP"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    env["METRICS_ADDRESS"] = f"127.0.0.1:{free_port_block()}"
    env["HEALTH_ADDRESS"] = f"127.0.0.1:{free_port_block()}"
    env.update(overrides)
    return env


def free_port_block(size: int = 8) -> int:
    """A port whose next `size` ports were free a moment ago (replicas count up from it)."""
    for _ in range(50):
        base = free_port()
        if base + size < 65535 and all(_free(base + n) for n in range(1, size)):
            return base
    raise RuntimeError(f"no block of {size} free ports found")


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


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


def stack_env(
    settings: Settings, paper_broker: RunningBroker, database_url: str, **overrides: str
) -> dict[str, str]:
    """The CLI environment pointed at the test's Temporal, task queue, database and broker."""
    return cli_env(
        TEMPORAL_ADDRESS=settings.temporal_address,
        TEMPORAL_NAMESPACE=settings.temporal_namespace,
        TEMPORAL_TASK_QUEUE=settings.temporal_task_queue,
        DATABASE_URL=database_url,
        ALPACA_API_KEY=paper_broker.key_id,
        ALPACA_SECRET_KEY=paper_broker.secret_key,
        ALPACA_TRADING_URL=paper_broker.trading_url,
        ALPACA_DATA_URL=paper_broker.data_url,
        ALPACA_STREAM_URL=paper_broker.stream_url,
        **overrides,
    )


def stack_settings(settings: Settings, paper_broker: RunningBroker, database_url: str) -> Settings:
    """Settings for in-process CLI handlers on the test's Temporal queue, ledger and broker."""
    return Settings(
        temporal_address=settings.temporal_address,
        temporal_namespace=settings.temporal_namespace,
        temporal_task_queue=settings.temporal_task_queue,
        database_url=SecretStr(database_url),
        alpaca_api_key=SecretStr(paper_broker.key_id),
        alpaca_secret_key=SecretStr(paper_broker.secret_key),
        alpaca_trading_url=paper_broker.trading_url,
        alpaca_data_url=paper_broker.data_url,
        alpaca_stream_url=paper_broker.stream_url,
        state_dir=Path("/nonexistent-state-dir"),
    )
