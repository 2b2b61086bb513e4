"""The Temporal runtime a process uses: where its metrics go (Prometheus, from settings).

A worker's client serves Prometheus on METRICS_ADDRESS: the SDK's own metrics (temporal_*,
durations in milliseconds) and the system's (dt_*, ops/metrics.py) recorded through the same
runtime's meters. A CLI client gets None (the SDK's default runtime, no endpoint). One runtime
per bind address per process: a second worker client in the same process shares it (binding the
port twice would fail, and every runtime starts its own thread pool). A port another process
holds is logged as an error and the worker runs on without an endpoint: guarding positions
matters more than its metrics, and prelive checks the endpoint answers.
"""

from __future__ import annotations

import logging
import threading

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from ops import metrics
from settings import ConfigError, Settings

logger = logging.getLogger(__name__)
_runtimes: dict[str, Runtime] = {}
_lock = threading.Lock()


def runtime_for(settings: Settings, *, serve_metrics: bool) -> Runtime | None:
    """The runtime for a client (None: the SDK's default). Workers serve metrics."""
    address = settings.metrics_address.strip()
    if not serve_metrics or not address:
        return None
    with _lock:
        runtime = _runtimes.get(address) or _prometheus_runtime(address)
        if runtime is not None:
            _runtimes[address] = runtime
            metrics.use_process_meter(runtime.metric_meter)
        return runtime


def metrics_url(address: str) -> str:
    """The scrape URL of a metrics bind address (0.0.0.0 is scraped on loopback here)."""
    host, _, port = address.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0") else host
    return f"http://{host}:{port}/metrics"


def replica_address(base: str, index: int) -> str:
    """The metrics address of replica `index` (0-based) when several share one host: the
    base port plus the index, so replicas never fight over one port."""
    host, sep, port = base.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"METRICS_ADDRESS must be host:port, got {base!r}")
    number = int(port) + index
    if not 0 < number < 65536:
        raise ConfigError(f"METRICS_ADDRESS {base} + replica {index} is past port 65535")
    return f"{host}:{number}"


def _prometheus_runtime(address: str) -> Runtime | None:
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit():
        raise ConfigError(
            f"METRICS_ADDRESS must be host:port such as 127.0.0.1:9464, got {address!r}"
        )
    try:
        return Runtime(
            telemetry=TelemetryConfig(
                metrics=PrometheusConfig(
                    bind_address=address,
                    histogram_bucket_overrides=metrics.HISTOGRAM_BUCKETS,
                ),
            )
        )
    except Exception as exc:  # the core reports a taken port as a plain exception
        # A worker guards positions with or without its metrics: it runs on, loudly (prelive
        # and the scrape's `up` show the missing endpoint).
        logger.error(
            "cannot serve metrics on METRICS_ADDRESS=%s (%s); this worker runs without a "
            "metrics endpoint - set METRICS_ADDRESS to a free host:port",
            address,
            exc,
        )
        return None
