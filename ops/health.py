"""A worker's /healthz (the process is up) and /readyz (its dependencies answer).

/healthz answers 200 "ok" while the process runs (a liveness probe: restart on failure).
/readyz answers 200 when Temporal, PostgreSQL and the broker answer and BrokerSync's last
poll is fresh, else 503; both with the JSON verdicts of trading/ops_health.py. `starter.py
status` shows the same verdicts through `ReadinessProbes`.

The broker probe asks for the clock through the metered gateway, so it is paid for from the
account's broker-call budget; its answer is kept BROKER_PROBE_CACHE_S, so probes every few
seconds cost at most one call in that time per worker.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import asyncpg
from aiohttp import web
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from broker.alpaca import AlpacaGateway
from broker.budget import BrokerBudget
from broker.endpoint import broker_endpoint
from broker.errors import BudgetExhausted, RateLimited
from broker.metered import MeteredGateway
from ledger.prelive import last_truth_poll_at
from settings import ConfigError, Settings
from trading.ops_health import (
    Dependency,
    DependencyVerdict,
    Readiness,
    failed_probe,
    readiness,
    truth_poll_max_age_s,
    truth_poll_verdict,
)

logger = logging.getLogger(__name__)
PROBE_TIMEOUT_S = 3.0  # each dependency answers within this or counts as down
BROKER_PROBE_CACHE_S = 15.0  # at most one broker call per worker in this time


def split_address(address: str, setting: str) -> tuple[str, int]:
    """host:port of an address setting, or ConfigError naming the setting."""
    host, sep, port = address.strip().rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{setting}={address!r}: expected host:port such as 127.0.0.1:9465")
    return host.strip("[]"), int(port)


class ReadinessProbes:
    """The dependency probes of /readyz and `status`, each bounded by PROBE_TIMEOUT_S."""

    def __init__(
        self,
        settings: Settings,
        client: Client | None,
        pool: asyncpg.Pool | None,
        broker: MeteredGateway | None,
        *,
        broker_cache_s: float = BROKER_PROBE_CACHE_S,
    ) -> None:
        self._settings = settings
        self._client = client
        self._pool = pool
        self._broker = broker
        self._broker_cache_s = broker_cache_s
        self._broker_seen: tuple[float, DependencyVerdict] | None = None
        self._broker_lock = asyncio.Lock()
        self._market_open: bool | None = None  # from the last clock answer

    async def temporal(self) -> DependencyVerdict:
        """The namespace can be described (one cheap frontend RPC)."""
        if self._client is None:
            return failed_probe(Dependency.TEMPORAL, "no Temporal client (could not connect)")
        client = self._client
        namespace = self._settings.temporal_namespace

        async def describe() -> str:
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=namespace),
                timeout=timedelta(seconds=PROBE_TIMEOUT_S),
            )
            return f"namespace {namespace} at {self._settings.temporal_address}"

        return await _timed(Dependency.TEMPORAL, describe)

    async def database(self) -> DependencyVerdict:
        """SELECT 1 on the ledger's pool."""
        if self._pool is None:
            return failed_probe(Dependency.DATABASE, "no ledger pool (could not connect)")
        pool = self._pool

        async def select_one() -> str:
            await pool.fetchval("SELECT 1")
            return "SELECT 1 answered"

        return await _timed(Dependency.DATABASE, select_one)

    async def broker(self) -> DependencyVerdict:
        """The broker's clock, through the metered gateway; answers reused for a while."""
        if self._broker is None:
            return failed_probe(Dependency.BROKER, "no broker gateway")
        async with self._broker_lock:
            now = time.monotonic()
            if self._broker_seen is not None and now - self._broker_seen[0] < self._broker_cache_s:
                return self._broker_seen[1]
            verdict = await self._ask_broker(self._broker)
            self._broker_seen = (time.monotonic(), verdict)
            return verdict

    async def _ask_broker(self, broker: MeteredGateway) -> DependencyVerdict:
        async def clock() -> str:
            try:
                answer = await broker.get_clock()
            except BudgetExhausted as exc:  # the budget keeps reads back: not the broker's fault
                return f"not asked: broker-call budget held back reads ({exc.message})"
            except RateLimited:  # the broker answered, only with 429
                return "answering (rate limited: 429)"
            self._market_open = answer.is_open
            return f"clock answered, market {'open' if answer.is_open else 'closed'}"

        return await _timed(Dependency.BROKER, clock)

    async def truth_poll(self) -> DependencyVerdict:
        """BrokerSync's last successful poll is at most TRUTH_POLL_MAX_AGE_S old."""
        if self._pool is None:
            return failed_probe(Dependency.TRUTH_POLL, "no ledger pool to read the poll time")
        try:
            observed = await asyncio.wait_for(last_truth_poll_at(self._pool), PROBE_TIMEOUT_S)
        except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
            return failed_probe(Dependency.TRUTH_POLL, exc)
        max_age_s = truth_poll_max_age_s(self._settings.truth_poll_max_age_s, self._market_open)
        return truth_poll_verdict(observed, datetime.now(UTC), max_age_s)

    async def readiness(self, broker: DependencyVerdict | None = None) -> Readiness:
        """Every verdict, probed side by side (`broker` given: that verdict instead of a call)."""
        probes = [self.temporal(), self.database(), self.truth_poll()]
        verdicts = list(await asyncio.gather(*probes))
        verdicts.append(broker if broker is not None else await self.broker())
        return readiness(verdicts, datetime.now(UTC))


async def _timed(name: Dependency, probe: Callable[[], Awaitable[str]]) -> DependencyVerdict:
    started = time.monotonic()
    try:
        detail = await asyncio.wait_for(probe(), PROBE_TIMEOUT_S)
    except Exception as exc:  # any failure of a probe is that dependency's "not ready"
        return failed_probe(name, exc)
    latency = round((time.monotonic() - started) * 1000, 1)
    return DependencyVerdict(name=name, ok=True, detail=detail, latency_ms=latency)


def metered_gateway(settings: Settings, pool: asyncpg.Pool) -> MeteredGateway:
    """The broker as the worker's activities see it: paid for from the shared budget."""
    endpoint = broker_endpoint(settings)
    return MeteredGateway(
        AlpacaGateway(endpoint), BrokerBudget.for_endpoint(pool, endpoint, settings.broker_budget)
    )


def health_app(probes: ReadinessProbes) -> web.Application:
    """The aiohttp application: GET /healthz and GET /readyz."""

    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def readyz(request: web.Request) -> web.Response:
        verdict = await probes.readiness()
        if not verdict.ready:
            failed = ", ".join(f"{c.name.value}: {c.detail}" for c in verdict.failed)
            logger.warning("not ready: %s", failed)
        return web.json_response(
            verdict.model_dump(mode="json"), status=200 if verdict.ready else 503
        )

    app = web.Application()
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


@asynccontextmanager
async def serve_health(
    address: str, probes: ReadinessProbes, setting: str = "HEALTH_ADDRESS"
) -> AsyncIterator[str]:
    """Serve the probes on host:port; yields the base URL. A busy port is a ConfigError."""
    host, port = split_address(address, setting)
    runner = web.AppRunner(health_app(probes), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:
            busy = exc.errno == errno.EADDRINUSE
            reason = "the port is already in use" if busy else (exc.strerror or str(exc))
            raise ConfigError(
                f"cannot serve /healthz and /readyz on {setting}={address}: {reason}; set "
                f"{setting} to a free host:port (empty: no health endpoint)"
            ) from None
        logger.info("health endpoints on http://%s:%d (/healthz, /readyz)", host, port)
        yield f"http://{host}:{port}"
    finally:
        await runner.cleanup()


@asynccontextmanager
async def health_server(
    settings: Settings, client: Client, pool: asyncpg.Pool
) -> AsyncIterator[None]:
    """Serve /healthz and /readyz on HEALTH_ADDRESS while the worker runs (empty: none)."""
    if not settings.health_address.strip():
        yield
        return
    probes = ReadinessProbes(settings, client, pool, metered_gateway(settings, pool))
    async with serve_health(settings.health_address, probes):
        yield


def replica_health_address(base: str, index: int) -> str:
    """The health address of replica `index` (0-based) of several on one host: HEALTH_ADDRESS's
    port plus the index (empty stays empty: no endpoint)."""
    if not base.strip():
        return ""
    host, port = split_address(base, "HEALTH_ADDRESS")
    if not 0 < port + index < 65536:
        raise ConfigError(f"HEALTH_ADDRESS={base} + replica {index} is past port 65535")
    return f"{host}:{port + index}"
