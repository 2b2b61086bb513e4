"""`dev up` / `dev down`: start the embedded stack in order, supervise it, stop it cleanly."""

from __future__ import annotations

import asyncio
import importlib.util
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import IO

import asyncpg

from devstack.config import DevConfig
from devstack.postgres import EmbeddedPostgres
from devstack.processes import http_ok, pid_alive, port_open, stop_process, wait_until
from devstack.state import (
    Component,
    StackState,
    clear_state,
    paper_broker_credentials,
    read_state,
    write_state,
)
from devstack.temporal import dev_server_args, temporal_binary
from ledger.migrate import apply_migrations
from ops.health import replica_health_address
from ops.telemetry import metrics_url, replica_address
from settings import ROOT, ConfigError, Settings

WORKER_RESTART_LIMIT = 5
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# Ctrl-C stops the whole stack within 10 s. A worker gets its graceful shutdown (worker.py,
# 3 s) plus time to hand back cancelled activities and close its pool before SIGKILL; the
# paper broker, Temporal and PostgreSQL then stop side by side.
WORKER_STOP_S = 5.0
SERVICE_STOP_S = 3.0
POSTGRES_STOP_S = 3  # fast shutdown, then immediate


class StackError(Exception):
    """The stack cannot start; the message says why and what to do."""


class DevStack:
    """Starts Temporal, PostgreSQL, migrations, the paper broker and workers; stops them."""

    def __init__(self, settings: Settings, config: DevConfig, out: Callable[[str], None]) -> None:
        self.settings = settings
        self.config = config
        self.say = out
        self.state_dir = settings.state_dir
        self.log_dir = self.state_dir / "logs"
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.components: list[Component] = []
        self.postgres: EmbeddedPostgres | None = None
        self._stopping = False
        self._ready = False
        self._logs: list[IO[bytes]] = []

    # ----------------------------------------------------------------- preflight
    def preflight(self) -> StackState | None:
        """Return the running stack if there is one; clean stale records; check ports."""
        existing = read_state(self.state_dir)
        if existing is not None:
            if pid_alive(existing.supervisor_pid):
                return existing
            leftovers = [c for c in existing.components if c.managed and pid_alive(c.pid)]
            if leftovers:
                names = ", ".join(f"{c.name} (pid {c.pid})" for c in leftovers)
                raise StackError(
                    f"a previous dev stack (pid {existing.supervisor_pid}) crashed and left "
                    f"{names} running; stop them with `python starter.py dev down`"
                )
            self.say(f"note: removed the record of a crashed stack (pid {existing.supervisor_pid})")
            clear_state(self.state_dir)
        temporal = self.config.temporal
        wanted = [
            ("Temporal gRPC", temporal.port, "temporal.port"),
            ("Temporal Web UI", temporal.ui_port, "temporal.ui_port"),
        ]
        codec_address = self._codec_address()
        if codec_address is not None:
            wanted.append(("codec server", codec_address[1], "CODEC_SERVER_ADDRESS"))
        if self.settings.uses_embedded_postgres:
            wanted.append(("PostgreSQL", self.config.postgres.port, "postgres.port"))
        if self.settings.uses_paper_broker and self._paper_broker_available():
            wanted.append(("paper broker", self.config.paperbroker.port, "paperbroker.port"))
        for index in range(self.config.worker.replicas):
            address = self._metrics_address(index)
            if address and port_open("127.0.0.1", int(address.rpartition(":")[2])):
                self.say(
                    f"note: {address} (worker-{index + 1} metrics) is in use by another "
                    "process; that worker runs without metrics (set METRICS_ADDRESS to a free "
                    "base port: replicas take it, +1, +2, ..., past the health ports)"
                )
        for index in range(self.config.worker.replicas):
            health = replica_health_address(self.settings.health_address, index)
            if health and port_open("127.0.0.1", int(health.rpartition(":")[2])):
                raise StackError(
                    f"{health} (worker-{index + 1} /healthz and /readyz) is already in use by "
                    "another process; stop that process or set HEALTH_ADDRESS to a free base "
                    "port (replicas take it, +1, +2, ...; empty: no health endpoint)"
                )
        for label, port, key in wanted:
            if port_open("127.0.0.1", port):
                raise StackError(
                    f"port {port} ({label}) is already in use by another process; stop that "
                    f"process or change {key} in {self.settings.dev_config.name}"
                )
        return None

    # ----------------------------------------------------------------------- run
    def run(self, services: Callable[[], None]) -> int:
        """Start everything, run `services`, supervise until SIGINT/SIGTERM; always stop it all.

        From the first process on, SIGINT and SIGTERM mean "stop": during the start (and
        `services`) they raise KeyboardInterrupt, which reaches the caller once the stack is
        stopped; while supervising they end it (exit 0). A signal during the stop is ignored,
        so the stop always finishes and leaves no process, record or port behind.
        """
        previous = {sig: signal.signal(sig, self._on_stop_signal) for sig in STOP_SIGNALS}
        try:
            self.start()
            services()
            self._ready = True
            self._record()
            return self._supervise()
        finally:
            self.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_stop_signal(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            raise KeyboardInterrupt

    # --------------------------------------------------------------------- start
    def start(self) -> None:
        """Start every component in order and record the stack (ready once services run)."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self._record()
        self._start_codec_server()
        self._start_temporal()
        self._start_postgres()
        self._start_paper_broker()
        self._start_workers()

    def _spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> int:
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("ab")
        self._logs.append(log)
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        self.processes[name] = process
        return process.pid

    def _wait(self, name: str, check: Callable[[], bool], timeout: float) -> None:
        process = self.processes.get(name)

        def ready_or_dead() -> bool:
            return check() or (process is not None and process.poll() is not None)

        wait_until(ready_or_dead, timeout)
        if process is not None and process.poll() is not None:
            raise StackError(
                f"{name} exited during start (code {process.returncode}); see "
                f"{self.log_dir / (name + '.log')}"
            )
        if not check():
            raise StackError(f"{name} did not become ready in {timeout:.0f}s; see its log")

    def _start_server(
        self,
        name: str,
        command: list[str],
        *,
        host: str,
        port: int,
        url: str,
        ready: Callable[[], bool],
        timeout: float,
        env: dict[str, str] | None = None,
    ) -> None:
        """Spawn a network service, wait until it answers, and record it as a component."""
        pid = self._spawn(name, command, env)
        self._wait(name, ready, timeout)
        self.components.append(
            Component(
                name=name,
                pid=pid,
                address=f"{host}:{port}",
                url=url,
                log=str(self.log_dir / f"{name}.log"),
                host=host,
                port=port,
            )
        )
        self._record()

    def _start_temporal(self) -> None:
        cfg = self.config.temporal
        db_file = self.config.resolve(cfg.db_filename)
        db_file.parent.mkdir(parents=True, exist_ok=True)
        self.say(f"starting Temporal dev server on {cfg.ip}:{cfg.port} ...")
        ui = f"http://{cfg.ip}:{cfg.ui_port}"
        self._start_server(
            "temporal",
            [str(temporal_binary()), *dev_server_args(cfg, db_file, self._codec_endpoint())],
            host=cfg.ip,
            port=cfg.port,
            url=ui,
            ready=lambda: port_open(cfg.ip, cfg.port) and http_ok(ui),
            timeout=60,
        )

    def _codec_address(self) -> tuple[str, int] | None:
        """The codec server's host and port when PAYLOAD_ENCRYPTION_KEY is set, else None."""
        key = self.settings.payload_encryption_key
        if key is None or not key.get_secret_value().strip():
            return None
        from cli.codec_server import split_address

        return split_address(self.settings.codec_server_address)

    def _codec_endpoint(self) -> str | None:
        address = self._codec_address()
        return None if address is None else f"http://{address[0]}:{address[1]}"

    def _start_codec_server(self) -> None:
        """With encrypted payloads, the Web UI reads them through `starter.py codec-server`."""
        address, endpoint = self._codec_address(), self._codec_endpoint()
        if address is None or endpoint is None:
            return
        host, port = address
        self.say(f"starting codec server on {endpoint} (Web UI remote codec) ...")
        self._start_server(
            "codec-server",
            [sys.executable, str(ROOT / "starter.py"), "codec-server"],
            host=host,
            port=port,
            url=endpoint,
            ready=lambda: port_open(host, port),
            timeout=30,
        )

    def _start_postgres(self) -> None:
        if not self.settings.uses_embedded_postgres:
            self.say("PostgreSQL: using DATABASE_URL (embedded server not started)")
            assert self.settings.database_url is not None
            url = self.settings.database_url.get_secret_value()
        else:
            cfg = self.config.postgres
            self.say(f"starting embedded PostgreSQL on 127.0.0.1:{cfg.port} ...")
            self.postgres = EmbeddedPostgres(self.config.resolve(cfg.data_dir), cfg.port)
            self.postgres.start()
            asyncio.run(self.postgres.wait_ready())
            url = asyncio.run(self.postgres.create_database(cfg.database))
            self.components.append(
                Component(
                    name="postgres",
                    pid=self.postgres.pid(),
                    address=f"127.0.0.1:{cfg.port}",
                    url=url,
                    log=str(self.postgres.log_file),
                    port=cfg.port,
                )
            )
        applied = asyncio.run(_migrate(url))
        self.say(f"ledger migrations: {', '.join(applied) if applied else 'up to date'}")
        self._record()

    @staticmethod
    def _paper_broker_available() -> bool:
        try:
            return importlib.util.find_spec("paperbroker.__main__") is not None
        except ModuleNotFoundError:
            return False

    def _start_paper_broker(self) -> None:
        if not self.settings.uses_paper_broker:
            self.say("broker: Alpaca (keys set; paper broker not started)")
            return
        if not self._paper_broker_available():
            self.say("broker: paper broker not available in this checkout (skipped)")
            return
        cfg = self.config.paperbroker
        credentials = paper_broker_credentials(self.state_dir)
        self.say(f"starting paper broker on 127.0.0.1:{cfg.port} ...")
        url = f"http://127.0.0.1:{cfg.port}"
        self._start_server(
            "paperbroker",
            [
                sys.executable,
                "-m",
                "paperbroker",
                "--host",
                "127.0.0.1",
                "--port",
                str(cfg.port),
                "--clock",
                cfg.clock,
                "--seed",
                str(cfg.seed),
                "--state-file",
                str(self.state_dir / "paperbroker" / "state.json"),
            ],
            host="127.0.0.1",
            port=cfg.port,
            url=url,
            ready=lambda: http_ok(f"{url}/_sim/health"),
            timeout=30,
            env={
                "PAPERBROKER_KEY_ID": credentials.key_id.get_secret_value(),
                "PAPERBROKER_SECRET_KEY": credentials.secret_key.get_secret_value(),
            },
        )

    def _start_workers(self) -> None:
        for index in range(self.config.worker.replicas):
            self._start_worker(f"worker-{index + 1}")

    def _metrics_address(self, index: int) -> str:
        """Replica `index`'s metrics host:port: METRICS_ADDRESS's port plus the index (each
        worker on this machine serves its own), stepping over the replicas' health ports
        (the defaults 9464 and 9465 sit side by side); empty when METRICS_ADDRESS is empty."""
        base = self.settings.metrics_address.strip()
        if not base:
            return ""
        replicas = range(self.config.worker.replicas)
        health = {replica_health_address(self.settings.health_address, i) for i in replicas}
        health_ports = {address.rpartition(":")[2] for address in health if address}
        addresses = (replica_address(base, step) for step in itertools.count())
        free = (a for a in addresses if a.rpartition(":")[2] not in health_ports)
        return next(itertools.islice(free, index, None))

    def _start_worker(self, name: str) -> None:
        self.say(f"starting {name} (task queue {self.settings.temporal_task_queue}) ...")
        metrics = self._metrics_address(int(name.rpartition("-")[2]) - 1)
        env = {"METRICS_ADDRESS": metrics}
        health = replica_health_address(
            self.settings.health_address, int(name.rpartition("-")[2]) - 1
        )
        env["HEALTH_ADDRESS"] = health  # /healthz, /readyz: HEALTH_ADDRESS's port + replica index
        pid = self._spawn(name, [sys.executable, str(ROOT / "worker.py")], env)
        log = self.log_dir / f"{name}.log"
        self._wait(name, lambda: _log_says(log, pid, "worker running"), 60)
        url = metrics_url(metrics) if metrics else ""
        if url:
            self.say(f"  {name} metrics: {url}")
        if health:
            self.say(f"  {name} health: http://{health}/healthz and /readyz")
        self.components = [c for c in self.components if c.name != name]
        self.components.append(
            Component(name=name, pid=pid, log=str(log), address=metrics, url=url)
        )
        self._record()

    def _record(self) -> None:
        write_state(
            self.state_dir,
            StackState(
                supervisor_pid=os.getpid(),
                started_at=datetime.now(UTC),
                ready=self._ready,
                components=self.components,
            ),
        )

    # ----------------------------------------------------------------- supervise
    def _supervise(self) -> int:
        """Restart crashed workers until a stop signal (0) or a component dies for good (1)."""
        restarts = 0
        try:
            while True:
                time.sleep(0.5)
                for name, process in list(self.processes.items()):
                    if process.poll() is None:
                        continue
                    if name.startswith("worker") and restarts < WORKER_RESTART_LIMIT:
                        restarts += 1
                        self.say(f"{name} exited (code {process.returncode}); restarting")
                        self._start_worker(name)
                    else:
                        self.say(f"{name} exited (code {process.returncode}); stopping the stack")
                        return 1
        except KeyboardInterrupt:
            self.say("stopping the dev stack ...")
            return 0

    def stop(self) -> None:
        """Stop the workers, then the paper broker, Temporal and PostgreSQL side by side.

        Workers go first: during their short graceful shutdown, in-flight activities can still
        reach Temporal, the broker and the ledger. Safe to call more than once.
        """
        self._stopping = True
        began = time.monotonic()
        workers = [name for name in self.processes if name.startswith("worker")]
        services = [name for name in self.processes if name not in workers]
        self._stop_together({name: self._stopper(name, WORKER_STOP_S) for name in workers})
        last = {name: self._stopper(name, SERVICE_STOP_S) for name in services}
        if self.postgres is not None:
            last["postgres"] = partial(self.postgres.stop, POSTGRES_STOP_S)
        self._stop_together(last)
        self.processes, self.postgres = {}, None
        for log in self._logs:
            log.close()
        self._logs = []
        clear_state(self.state_dir)
        if workers or last:
            self.say(f"dev stack stopped in {time.monotonic() - began:.1f} s")

    def _stopper(self, name: str, grace: float) -> Callable[[], None]:
        process = self.processes[name]

        def stop() -> None:
            stop_process(process.pid, grace=grace)
            process.wait(timeout=5)  # reap it: no zombie stays behind

        return stop

    def _stop_together(self, stops: dict[str, Callable[[], None]]) -> None:
        if not stops:
            return
        with ThreadPoolExecutor(max_workers=len(stops), thread_name_prefix="stop") as pool:
            pending = {pool.submit(stop): name for name, stop in stops.items()}
            for done in as_completed(pending):
                error = done.exception()
                if error is None:
                    self.say(f"  stopped {pending[done]}")
                else:  # the others still stop; `dev down` can finish this one
                    self.say(f"  could not stop {pending[done]}: {error}")


async def _migrate(url: str) -> list[str]:
    try:
        conn = await asyncpg.connect(url, timeout=10)
    except (OSError, asyncpg.PostgresError, ValueError) as exc:
        reason = (
            "the URL cannot be parsed (percent-encode special characters)"
            if isinstance(exc, ValueError)  # the parser quotes pieces of the URL: never echo
            else str(exc).splitlines()[0]
        )
        raise ConfigError(f"cannot connect to PostgreSQL for migrations: {reason}") from None
    try:
        return await apply_migrations(conn)
    finally:
        await conn.close()


def _log_says(log: Path, pid: int, marker: str) -> bool:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return False
    return f"{marker} pid={pid}" in text
