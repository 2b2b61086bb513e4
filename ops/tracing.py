"""OpenTelemetry traces from settings: off (default), console (dev) or OTLP."""

from __future__ import annotations

from settings import Settings


def configure_tracing(settings: Settings, service_name: str) -> None:
    """Install the tracer provider OTEL_EXPORTER asks for (once per process)."""
    return None
