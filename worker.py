"""durable-trader worker: Settings -> clients -> Worker(all workflows and activities).

Run `python worker.py`; start as many replicas as you like against one task queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from devstack.bootstrap import ensure_environment
from devstack.exit import hard_exit

if __name__ == "__main__":
    ensure_environment()

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities import ActivityDeps, build_activities, sync_at_start
from broker.alpaca import AlpacaGateway
from broker.endpoint import BrokerEndpoint, broker_endpoint
from broker.option_marks import MARKS_MAX_AGE
from clients import make_client, make_pool
from ledger.migrate import apply_migrations
from ops.health import health_server
from ops.live_gate import require_prelive
from ops.notifier import AlertTarget
from ops.tracing import TradeSpanInterceptor, configure_tracing, flush_tracing
from settings import ConfigError, Settings, load_settings
from trading.broker_budget import BudgetConfig
from workflows.registry import ALL_WORKFLOWS

logger = logging.getLogger("durable_trader.worker")
STICKY_TIMEOUT = timedelta(seconds=1)
MAX_CACHED_WORKFLOWS = 2_500
GRACEFUL_SHUTDOWN = timedelta(seconds=3)


def create_worker(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    executor: ThreadPoolExecutor,
    endpoint: BrokerEndpoint,
    *,
    budget: BudgetConfig | None = None,
    alerts: AlertTarget | None = None,
    marks_max_age: timedelta = MARKS_MAX_AGE,
) -> Worker:
    """A Worker with every workflow and activity registered (shared with the tests)."""
    deps = ActivityDeps(
        pool, AlpacaGateway(endpoint), client, endpoint, task_queue, budget, alerts, marks_max_age
    )
    activities = build_activities(deps)
    return Worker(
        client,
        task_queue=task_queue,
        workflows=ALL_WORKFLOWS,
        activities=activities,
        activity_executor=executor,
        # After the client's TracingInterceptor (inherited): a trade's activity spans and
        # their broker calls' spans get trade.id.
        interceptors=[TradeSpanInterceptor()],
        # On SIGTERM/SIGINT in-flight activities get this long to finish; the rest (the
        # 30-minute trade_updates listener) are cancelled and retried by Temporal. Short, so
        # Ctrl-C on `dev up` stops the whole stack within 10 s (devstack/stack.py).
        graceful_shutdown_timeout=GRACEFUL_SHUTDOWN,
        # A worker that dies holds its cached workflows' next tasks on its sticky queue until
        # this passes; the default (10 s) left positions unguarded that long after a crash.
        sticky_queue_schedule_to_start_timeout=STICKY_TIMEOUT,
        # Every open trade stays cached (a cache miss replays its whole history).
        max_cached_workflows=MAX_CACHED_WORKFLOWS,
    )


async def guard_at_start(settings: Settings, client: Client, pool: asyncpg.Pool) -> None:
    """Look at the broker once, as soon as the worker polls: a start may follow a crash.

    Positions whose stop died while no worker ran are signalled (their trades rescue them)
    within a second of this worker being up; failing here only delays that to BrokerSync's
    next poll, so a failure is logged, never fatal.
    """
    endpoint = broker_endpoint(settings)
    try:
        gateway = AlpacaGateway(endpoint)
        queue, budget = settings.temporal_task_queue, settings.broker_budget
        summary = await sync_at_start(ActivityDeps(pool, gateway, client, endpoint, queue, budget))
    except Exception as exc:  # the broker or Temporal may be down at start: BrokerSync retries
        logger.warning("start-up broker check failed (BrokerSync's polls go on): %s", exc)
        return
    logger.info(
        "start-up broker check: %d positions, %d trades woken, %d unchanged",
        summary.positions,
        summary.signalled,
        summary.unchanged,
    )


async def run_worker(settings: Settings) -> None:
    """Connect, migrate, run until SIGTERM/SIGINT, then drain in-flight activities."""
    configure_tracing(settings, "durable-trader-worker")
    client = await make_client(settings, serve_metrics=True)
    pool = await make_pool(settings)
    try:
        async with pool.acquire() as conn:
            applied = await apply_migrations(conn)
        if applied:
            logger.info("applied ledger migrations: %s", ", ".join(applied))
        await require_prelive(settings, pool)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        with ThreadPoolExecutor(max_workers=32, thread_name_prefix="activity") as executor:
            worker = create_worker(
                client,
                pool,
                settings.temporal_task_queue,
                executor,
                broker_endpoint(settings),
                budget=settings.broker_budget,
                alerts=AlertTarget.from_settings(settings),
                marks_max_age=timedelta(seconds=settings.option_marks_max_age_s),
            )
            async with worker, health_server(settings, client, pool):
                # In the background: a slow broker at start must not hold up a SIGTERM.
                start_check = asyncio.create_task(guard_at_start(settings, client, pool))
                logger.info(
                    "worker running pid=%s task_queue=%s namespace=%s",
                    os.getpid(),
                    settings.temporal_task_queue,
                    settings.temporal_namespace,
                )
                await stop.wait()
                start_check.cancel()
                logger.info("worker stopping pid=%s (draining in-flight work)", os.getpid())
        logger.info("worker stopped pid=%s", os.getpid())
    finally:
        await pool.close()
        flush_tracing()  # main() leaves through os._exit: atexit would never run


def main() -> int:
    """Entry point; configuration problems print one line and exit 2."""
    try:
        settings = load_settings()
        logging.basicConfig(
            level=settings.log_level.upper(),
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        asyncio.run(run_worker(settings))
    except ConfigError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return 2
    return 0


if __name__ == "__main__":
    hard_exit(main())
