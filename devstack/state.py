"""The running dev stack's record (.state/stack.json) and the paper broker's local credentials."""

from __future__ import annotations

import json
import os
import secrets
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel, ConfigDict, SecretStr

from devstack.processes import pid_alive, port_open


class Component(BaseModel):
    """One process the stack runs (or an external service it uses)."""

    model_config = ConfigDict(frozen=True)

    name: str
    pid: int | None = None
    address: str = ""
    url: str = ""
    log: str = ""
    managed: bool = True
    host: str = "127.0.0.1"
    port: int | None = None

    def alive(self) -> bool:
        """Process exists (managed) and its port answers (when it has one)."""
        if self.managed and self.pid is not None and not pid_alive(self.pid):
            return False
        return self.port is None or port_open(self.host, self.port)


class StackState(BaseModel):
    """What `dev up` started, so `dev status` / `dev down` / a second `dev up` can find it."""

    supervisor_pid: int
    started_at: datetime
    ready: bool = False
    components: list[Component] = []

    def component(self, name: str) -> Component | None:
        """The component called name, if the stack runs one."""
        return next((c for c in self.components if c.name == name), None)


def state_file(state_dir: Path) -> Path:
    """Where the stack record lives."""
    return state_dir / "stack.json"


def read_state(state_dir: Path) -> StackState | None:
    """The recorded stack, or None when there is none (or it is unreadable)."""
    path = state_file(state_dir)
    try:
        return StackState.model_validate_json(path.read_text())
    except (OSError, ValueError):
        return None


def write_state(state_dir: Path, state: StackState) -> None:
    """Atomically replace the stack record."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_file(state_dir)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(state.model_dump_json(indent=2))
    tmp.replace(path)


def clear_state(state_dir: Path) -> None:
    """Forget the stack record (and a half-written one an interrupted write left)."""
    path = state_file(state_dir)
    path.unlink(missing_ok=True)
    path.with_suffix(".tmp").unlink(missing_ok=True)


class PaperBrokerCredentials(BaseModel):
    """Random per-machine credentials of the local paper broker (never committed or logged)."""

    key_id: SecretStr
    secret_key: SecretStr


def paper_broker_credentials(state_dir: Path) -> PaperBrokerCredentials:
    """Load the local paper broker's credentials, creating them (mode 0600) on first use."""
    path = state_dir / "paperbroker" / "credentials.json"
    if path.exists():
        raw = json.loads(path.read_text())
        return PaperBrokerCredentials(key_id=raw["key_id"], secret_key=raw["secret_key"])
    path.parent.mkdir(parents=True, exist_ok=True)
    key_id, secret_key = "PK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"key_id": key_id, "secret_key": secret_key}, handle)
    return PaperBrokerCredentials(key_id=SecretStr(key_id), secret_key=SecretStr(secret_key))
