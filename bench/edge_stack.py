"""What the edge benchmark adds to bench/stack.py: the worker as its own process, a watch on
the paper broker from inside its process, resource sampling and history accounting.

- `WorkerProcess` runs `python worker.py` the way `dev up` does (settings from the
  environment, pointed at the benchmark's dev server, database and paper broker), so its CPU
  and memory are its own and it can be killed with SIGKILL.
- `BrokerWatch` sees the in-process paper broker's trade updates as they happen (a listener on
  its book, called in the broker's thread) and acts on orders on the broker's own event loop.
  Nothing it does is a /v2 request, so the broker's request counter and rate limit see only
  the system (and the baseline). Outside cancels go through `Broker.cancel`, the path
  `DELETE /v2/orders/{id}` and the dashboard cancel (`/_sim/orders/{id}/cancel`) take.
- `ResourceSampler` samples CPU time and memory of groups of processes (worker, Temporal dev
  server, every PostgreSQL process) every few seconds.
- `history_costs` reads a workflow's history over a window and counts its events and its
  Temporal Cloud billable actions as docs.temporal.io/cloud/actions lists them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import psutil
from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowHandle

from bench.stack import ROOT
from paperbroker.book import TradeUpdate
from paperbroker.models import OrderType, Side
from paperbroker.testing import RunningBroker
from settings import Settings

T = TypeVar("T")
STOP_TYPES = frozenset({OrderType.STOP, OrderType.STOP_LIMIT, OrderType.TRAILING_STOP})
# Events after which a stop order works at the broker (a submit routes to `new` at once).
WORKING_EVENTS = frozenset({"new", "pending_new"})
WORKER_READY_LINE = "worker running"
LOG_TIME = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) ")


# --- the worker as its own process ----------------------------------------------------------


def write_paper_credentials(state_dir: Path, broker: RunningBroker) -> None:
    """The paper broker's credentials where the worker's settings look for them (mode 0600)."""
    path = state_dir / "paperbroker" / "credentials.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"key_id": broker.key_id, "secret_key": broker.secret_key}, handle)


def _clean_environment() -> dict[str, str]:
    """This process's environment without any variable the worker's Settings would read."""
    names = {name.upper() for name in Settings.model_fields}
    return {k: v for k, v in os.environ.items() if k.upper() not in names}


@dataclass
class WorkerProcess:
    """`python worker.py` against the benchmark's stack; one process at a time."""

    temporal_address: str
    task_queue: str
    database_url: str
    broker: RunningBroker
    state_dir: Path
    calls_per_min: int | None = None  # None: the production default (BROKER_CALLS_PER_MIN)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0  # time.time() of the last spawn
    log_path: Path | None = None
    spawns: int = 0

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self) -> float:
        """Spawn a worker; returns the wall-clock time of the spawn."""
        write_paper_credentials(self.state_dir, self.broker)
        env = _clean_environment()
        env.update(
            {
                "DT_NO_BOOTSTRAP": "1",
                "PYTHONUNBUFFERED": "1",
                "TEMPORAL_ADDRESS": self.temporal_address,
                "TEMPORAL_NAMESPACE": "default",
                "TEMPORAL_TASK_QUEUE": self.task_queue,
                "DATABASE_URL": self.database_url,
                "ALPACA_TRADING_URL": self.broker.trading_url,
                "STATE_DIR": str(self.state_dir),
                "LOG_LEVEL": "INFO",
            }
        )
        if self.calls_per_min is not None:
            env["BROKER_CALLS_PER_MIN"] = str(self.calls_per_min)
        self.spawns += 1
        self.log_path = self.state_dir / f"worker-{self.spawns}.log"
        log = self.log_path.open("wb")
        self.started_at = time.time()
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "worker.py")],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=self.state_dir,  # no .env of the checkout applies
            env=env,
        )
        log.close()
        return self.started_at

    async def wait_ready(self, within_s: float = 90.0) -> float:
        """Wait for the worker's "worker running" line; returns the time it logged it."""
        assert self.process is not None and self.log_path is not None
        deadline = time.monotonic() + within_s
        while True:
            for line in self.log_path.read_text(errors="replace").splitlines():
                if WORKER_READY_LINE in line:
                    return _log_time(line) or time.time()
            if self.process.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2000:]
                raise SystemExit(
                    f"worker exited during start (code {self.process.returncode}):\n{tail}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"worker not ready after {within_s:.0f} s; see {self.log_path}")
            await asyncio.sleep(0.02)

    def kill(self) -> float:
        """SIGKILL the worker; returns the wall-clock time of the kill."""
        assert self.process is not None
        at = time.time()
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        return at

    def stop(self, grace_s: float = 20.0) -> None:
        """SIGTERM (graceful drain), SIGKILL after the grace time."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def logged_at(self, needle: str) -> float | None:
        """When the current log first wrote a line containing `needle` (its own timestamp)."""
        lines = self.log_lines(needle)
        return _log_time(lines[0]) if lines else None

    def log_lines(self, needle: str) -> list[str]:
        """Lines of the current log that contain `needle`."""
        if self.log_path is None or not self.log_path.exists():
            return []
        return [
            line
            for line in self.log_path.read_text(errors="replace").splitlines()
            if needle in line
        ]


def _log_time(line: str) -> float | None:
    match = LOG_TIME.match(line)
    if match is None:
        return None
    return datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()


# --- watching the paper broker from inside its process --------------------------------------


@dataclass(frozen=True)
class StopSeen:
    """A sell stop order's trade update as the broker emitted it."""

    mono: float  # time.monotonic() in this process
    wall: float  # time.time()
    event: str
    symbol: str
    order_id: str


class BrokerWatch:
    """Trade updates of sell stops, stream listeners and 429s, seen from the broker's thread."""

    def __init__(self, broker: RunningBroker) -> None:
        self._server = broker.server
        ticker = broker.server._ticker  # the broker's event loop runs this task
        assert ticker is not None, "the paper broker is not running"
        self._loop = ticker.get_loop()
        self.stops: list[StopSeen] = []
        self.fills: list[StopSeen] = []  # fills of any order (adoption), same shape
        self.rate_limited = 0
        self._server.broker.listeners.append(self._on_update)
        limiter = self._server.limiter
        hit = limiter.hit

        def counting_hit(key: str) -> tuple[bool, dict[str, str]]:
            allowed, headers = hit(key)
            if not allowed:
                self.rate_limited += 1
            return allowed, headers

        limiter.hit = counting_hit  # type: ignore[method-assign]

    def _on_update(self, update: TradeUpdate) -> None:
        order = self._server.broker.book.orders.get(update.order_id)
        if order is None:
            return
        seen = StopSeen(time.monotonic(), time.time(), update.event, order.symbol, str(order.id))
        if update.event in ("fill", "partial_fill"):
            self.fills.append(seen)
        if order.side is Side.SELL and order.type in STOP_TYPES:
            self.stops.append(seen)

    async def on_broker(self, action: Callable[[], T]) -> T:
        """Run `action` in the broker's thread (its state is not thread-safe) and return."""
        done: Future[T] = Future()

        def run() -> None:
            try:
                done.set_result(action())
            except BaseException as exc:  # handed back to the caller
                done.set_exception(exc)

        self._loop.call_soon_threadsafe(run)
        return await asyncio.wrap_future(done)

    async def active_stops(self) -> dict[str, list[str]]:
        """Working sell stops by symbol (ids), read from the broker's book."""

        def read() -> dict[str, list[str]]:
            broker = self._server.broker
            broker.sync()
            found: dict[str, list[str]] = {}
            for order in broker.book.open_orders():
                if (
                    order.side is Side.SELL
                    and order.type in STOP_TYPES
                    and _working(order.status.value)
                ):
                    found.setdefault(order.symbol, []).append(str(order.id))
            return found

        return await self.on_broker(read)

    async def cancel(self, order_ids: Iterable[str], *, aged: bool = False) -> tuple[float, float]:
        """Cancel orders from outside, all in one step of the broker's loop.

        `aged`: the way the broker itself cancels an aged GTC order at 16:15 New York
        (out of the market at once, then canceled). Returns (monotonic, wall) just before.
        """
        ids = list(order_ids)

        def cancel_all() -> None:
            broker = self._server.broker
            now = broker.sync()
            for order_id in ids:
                if aged:
                    broker.pending.request_cancel(broker.order(order_id), now, by_broker=True)
                else:
                    broker.cancel(order_id)

        mono, wall = time.monotonic(), time.time()
        await self.on_broker(cancel_all)
        return mono, wall

    def listening(self) -> int:
        """trade_updates connections that listen right now."""
        return sum(1 for c in list(self._server.hub.connections) if c.listening)

    def first_working_stop(
        self, symbol: str, after_mono: float, not_ids: set[str] | None = None
    ) -> StopSeen | None:
        """The first sell stop on `symbol` that started working after `after_mono`."""
        for seen in list(self.stops):
            if (
                seen.symbol == symbol
                and seen.mono >= after_mono
                and seen.event in WORKING_EVENTS
                and (not not_ids or seen.order_id not in not_ids)
            ):
                return seen
        return None

    async def wait_working_stops(
        self,
        symbols: Iterable[str],
        after_mono: float,
        within_s: float,
        not_ids: set[str] | None = None,
    ) -> dict[str, StopSeen | None]:
        """For each symbol the first new working stop after `after_mono`, waiting up to
        `within_s` from now (None: none by then)."""
        wanted = set(symbols)
        found: dict[str, StopSeen | None] = dict.fromkeys(wanted)
        deadline = time.monotonic() + within_s
        while True:
            for symbol in wanted:
                if found[symbol] is None:
                    found[symbol] = self.first_working_stop(symbol, after_mono, not_ids)
            if all(v is not None for v in found.values()) or time.monotonic() > deadline:
                return found
            await asyncio.sleep(0.01)


def _working(status: str) -> bool:
    return status in {
        "new",
        "accepted",
        "pending_new",
        "held",
        "partially_filled",
        "pending_replace",
        "accepted_for_bidding",
    }


# --- CPU and memory of groups of processes --------------------------------------------------


def temporal_pids() -> list[int]:
    """The Temporal dev server(s) this process started."""
    me = psutil.Process()
    found = []
    for child in me.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if "temporal" in child.name().lower():
                found.append(child.pid)
    return found


def tree_pids(root: int | None) -> list[int]:
    """`root` and all its descendants (e.g. the postmaster and every PostgreSQL backend)."""
    if root is None:
        return []
    try:
        process = psutil.Process(root)
        return [root, *(c.pid for c in process.children(recursive=True))]
    except psutil.Error:
        return []


@dataclass
class _Seen:
    base_own: float  # the process's own CPU time at its first sample (0 if born in the window)
    base_kids: float  # CPU time of its reaped children then
    own: float
    kids: float
    parent: int
    sampled_last: bool = True  # present in the latest sample


@dataclass
class GroupUsage:
    """One group's CPU and memory over a window."""

    cpu_s: float = 0.0
    rss_samples: list[int] = field(default_factory=list)
    pss_samples: list[int] = field(default_factory=list)
    processes: int = 0


class ResourceSampler:
    """Samples CPU time (user + system) and RSS/PSS of process groups every `every_s`.

    CPU inside the window: each process's own time since its first sample (all of it when it
    was born inside the window), plus the time of children it reaped (PostgreSQL's
    postmaster reaps backends and autovacuum workers), minus what a reaped child had already
    been counted for: so a short-lived process is counted once, whole.
    """

    def __init__(self, groups: dict[str, Callable[[], list[int]]], every_s: float = 2.0) -> None:
        self._groups = groups
        self._every = every_s
        self._seen: dict[str, dict[int, _Seen]] = {name: {} for name in groups}
        self._memory: dict[str, list[tuple[int, int]]] = {name: [] for name in groups}
        self._task: asyncio.Task[None] | None = None
        self.started = 0.0
        self.stopped = 0.0

    def _sample(self, first: bool) -> None:
        for name, pids in self._groups.items():
            rss = pss = 0
            for known in self._seen[name].values():
                known.sampled_last = False
            for pid in pids():
                try:
                    process = psutil.Process(pid)
                    with process.oneshot():
                        times = process.cpu_times()
                        parent = process.ppid()
                        own = times.user + times.system
                        kids = times.children_user + times.children_system
                        try:
                            full = process.memory_full_info()
                            rss += full.rss
                            pss += getattr(full, "pss", full.rss)
                        except psutil.AccessDenied:
                            memory = process.memory_info()
                            rss += memory.rss
                            pss += memory.rss
                except psutil.Error:
                    continue
                seen = self._seen[name].get(pid)
                if seen is None:
                    base_own, base_kids = (own, kids) if first else (0.0, 0.0)
                    self._seen[name][pid] = _Seen(base_own, base_kids, own, kids, parent)
                else:
                    seen.own, seen.kids, seen.sampled_last = own, kids, True
            self._memory[name].append((rss, pss))

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self._every)
            await asyncio.to_thread(self._sample, False)

    async def start(self) -> None:
        """Take the first sample and keep sampling."""
        await asyncio.to_thread(self._sample, True)
        self.started = time.monotonic()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, GroupUsage]:
        """Take the last sample; each group's usage over the window."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await asyncio.to_thread(self._sample, False)
        self.stopped = time.monotonic()
        usage: dict[str, GroupUsage] = {}
        for name in self._groups:
            seen = list(self._seen[name].values())
            cpu = sum(s.own - s.base_own + s.kids - s.base_kids for s in seen)
            # A child that ended and was reaped by a parent in the group is in the parent's kids.
            cpu -= sum(s.own for s in seen if not s.sampled_last and s.parent in self._seen[name])
            usage[name] = GroupUsage(
                cpu_s=max(0.0, cpu),
                rss_samples=[rss for rss, _ in self._memory[name]],
                pss_samples=[pss for _, pss in self._memory[name]],
                processes=len(seen),
            )
        return usage


# --- history events and billable actions ------------------------------------------------------

LOCAL_ACTIVITY_MARKER = "core_local_activity"
CHANGE_VERSION_ATTRIBUTE = "TemporalChangeVersion"


@dataclass
class HistoryCosts:
    """Events and billable actions of workflow histories inside a window."""

    events: int = 0
    actions: int = 0
    by_event: Counter[str] = field(default_factory=Counter)
    by_action: Counter[str] = field(default_factory=Counter)
    timers_fired: int = 0

    def add(self, other: HistoryCosts) -> None:
        """Sum another history's costs into this one."""
        self.events += other.events
        self.actions += other.actions
        self.by_event.update(other.by_event)
        self.by_action.update(other.by_action)
        self.timers_fired += other.timers_fired


def _event_name(event_type: Any) -> str:
    return str(EventType.Name(event_type)).removeprefix("EVENT_TYPE_")


async def history_costs(
    handle: WorkflowHandle[Any, Any], since: datetime, until: datetime
) -> HistoryCosts:
    """Events in [since, until) of the workflow's latest run, and the actions they bill.

    Actions as Temporal Cloud documents them (docs.temporal.io/cloud/actions): workflow
    started (also continue-as-new), timer started, search-attribute upsert (one per command;
    TemporalChangeVersion alone is exempt), signal (received from a client, or sent from this
    workflow), update accepted, activity started or retried (each attempt), local activities
    (all markers of one workflow task count once), child workflow (two). Queries and activity
    heartbeats are billed but not in history; they are accounted for outside.
    """
    costs = HistoryCosts()
    started_activities: set[int] = set()
    scheduled: dict[int, bool] = {}
    local_tasks: set[int] = set()
    last_task_completed = 0
    async for event in handle.fetch_history_events():
        when = event.event_time.ToDatetime().replace(tzinfo=UTC)
        kind = event.event_type
        if kind == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            last_task_completed = event.event_id
        if kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            started_activities.add(event.activity_task_started_event_attributes.scheduled_event_id)
        if not since <= when < until:
            continue
        costs.events += 1
        costs.by_event[_event_name(kind)] += 1
        action: tuple[str, int] | None = None
        if kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
            action = ("workflow started", 1)
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            action = ("timer started", 1)
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            costs.timers_fired += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            fields = event.upsert_workflow_search_attributes_event_attributes.search_attributes
            if set(fields.indexed_fields) - {CHANGE_VERSION_ATTRIBUTE}:
                action = ("search attributes upserted", 1)
        elif kind in (
            EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED,
            EventType.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED,
        ):
            action = ("signal", 1)
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            action = ("update", 1)
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            scheduled[event.event_id] = True
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED:
            attempts = max(1, event.activity_task_started_event_attributes.attempt)
            scheduled.pop(event.activity_task_started_event_attributes.scheduled_event_id, None)
            action = ("activity started or retried", attempts)
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes.marker_name
            if marker == LOCAL_ACTIVITY_MARKER and last_task_completed not in local_tasks:
                local_tasks.add(last_task_completed)
                action = ("local activities (per workflow task)", 1)
        elif kind == EventType.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
            action = ("child workflow", 2)
        if action is not None:
            costs.actions += action[1]
            costs.by_action[action[0]] += action[1]
    # Scheduled in the window, not started yet: it will be (one action).
    pending = [s for s in scheduled if s not in started_activities]
    if pending:
        costs.actions += len(pending)
        costs.by_action["activity started or retried"] += len(pending)
    return costs


async def histories_costs(
    client: Client, workflow_ids: list[str], since: datetime, until: datetime, concurrency: int = 8
) -> HistoryCosts:
    """history_costs summed over many workflows."""
    gate = asyncio.Semaphore(concurrency)
    total = HistoryCosts()

    async def one(workflow_id: str) -> None:
        async with gate:
            costs = await history_costs(client.get_workflow_handle(workflow_id), since, until)
        total.add(costs)

    await asyncio.gather(*(one(w) for w in workflow_ids))
    return total
