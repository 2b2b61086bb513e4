"""OpenTelemetry traces from settings: off (default), console (dev) or OTLP.

One trace runs from a CLI command (`command_span`) through Temporal's TracingInterceptor
(StartWorkflow -> RunWorkflow -> StartActivity -> RunActivity, on the client in clients.py and
inherited by every worker built on that client) to each broker call (`broker_call_span`, in
broker/metered.py). `TradeSpanInterceptor` (worker.py) puts the trade id on the spans of a
trade's activities and of the broker calls they make.

What a span may carry: names, route templates, outcomes, workflow/activity ids and trade ids.
Never headers, keys, URLs, payloads or exception messages of our own making; the exporter's
endpoint is configuration and never goes into a span either.
"""

from __future__ import annotations

import atexit
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import SpanKind, Status, StatusCode
from temporalio import activity
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

from broker.errors import BudgetExhausted, NotFound, RateLimited
from contracts.trade import ID_PREFIX as TRADE_WORKFLOW_PREFIX
from ops.metrics import BROKER_ROUTES, CallOutcome
from settings import ConfigError, Settings

SERVICE_NAMESPACE = "durable-trader"
TRADE_ID = "trade.id"
FLUSH_TIMEOUT_MS = 5_000
_tracer = trace.get_tracer("durable_trader")
_trade_id: ContextVar[str | None] = ContextVar("durable_trader_trade_id", default=None)
_lock = threading.Lock()
_installed: TracerProvider | None = None


def span_processor(settings: Settings) -> SpanProcessor | None:
    """The processor and exporter OTEL_EXPORTER asks for; None when traces are off."""
    if settings.otel_exporter == "off":
        return None
    if settings.otel_exporter == "console":
        # Synchronous: a dev sees each span as it ends, and nothing waits in a buffer when
        # the CLI leaves through os._exit.
        return SimpleSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
    endpoint = (settings.otel_exporter_otlp_endpoint or "").strip()
    if not endpoint:
        raise ConfigError(
            "OTEL_EXPORTER=otlp needs OTEL_EXPORTER_OTLP_ENDPOINT "
            "(e.g. http://localhost:4318/v1/traces)"
        )
    if not endpoint.startswith(("http://", "https://")):
        # Not echoed: an endpoint may carry credentials.
        raise ConfigError(
            "OTEL_EXPORTER_OTLP_ENDPOINT must be an http:// or https:// URL "
            "(OTLP/HTTP, e.g. http://localhost:4318/v1/traces)"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint))


def tracer_provider(settings: Settings, service_name: str) -> TracerProvider | None:
    """A tracer provider for this service exporting as settings say; None when traces are off."""
    processor = span_processor(settings)
    if processor is None:
        return None
    resource = Resource.create(
        {
            "service.name": service_name,
            "service.namespace": SERVICE_NAMESPACE,
            "deployment.environment.name": settings.trading_mode,
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(processor)
    return provider


def configure_tracing(settings: Settings, service_name: str) -> None:
    """Install the tracer provider OTEL_EXPORTER asks for (once per process).

    Off installs nothing: the interceptor's and our spans stay OpenTelemetry's no-op ones.
    The provider is shut down (its last spans flushed) at interpreter exit; entry points that
    leave through os._exit call `flush_tracing` first.
    """
    global _installed
    with _lock:
        if _installed is not None or isinstance(trace.get_tracer_provider(), TracerProvider):
            return  # ours, or the embedding program's (a test's): one provider per process
        provider = tracer_provider(settings, service_name)
        if provider is None:
            return
        trace.set_tracer_provider(provider)
        _installed = provider
    atexit.register(provider.shutdown)


def flush_tracing(timeout_ms: int = FLUSH_TIMEOUT_MS) -> None:
    """Export the spans still buffered (before a hard exit); no-op when nothing is installed."""
    provider = _installed
    if provider is not None:
        provider.force_flush(timeout_ms)


@contextmanager
def command_span(command: str) -> Iterator[trace.Span]:
    """The root span of one CLI command (`cli trade open`), flushed when it ends."""
    try:
        with _tracer.start_as_current_span(
            f"cli {command}",
            kind=SpanKind.INTERNAL,
            attributes={"cli.command": command},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                yield span
            except BaseException as exc:
                _failed(span, exc)
                raise
    finally:
        flush_tracing()


@contextmanager
def broker_call_span(call: str) -> Iterator[trace.Span]:
    """A client span for one broker call, named by its route; outcome ok/error/rate_limited/
    budget, with the trade id when a trade's activity makes the call."""
    # The routes are the metrics' (dt_broker_calls_total): one template per request the call
    # sends; a snapshot (broker_truth) sends three and its span names them all.
    routes = BROKER_ROUTES.get(call, (call,))
    method = routes[0].partition(" ")[0]
    templates = [route.partition(" ")[2] for route in routes]
    name = routes[0] if len(routes) == 1 else f"{method} {' + '.join(templates)}"
    attributes: dict[str, Any] = {
        "broker.call": call,
        "broker.route": routes[0] if len(routes) == 1 else list(routes),
        "http.request.method": method,
    }
    if len(routes) == 1:
        attributes["url.template"] = templates[0]
    trade_id = _trade_id.get()
    if trade_id is not None:
        attributes[TRADE_ID] = trade_id
    with _tracer.start_as_current_span(
        name,
        kind=SpanKind.CLIENT,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            outcome = broker_outcome(exc)
            span.set_attribute("broker.outcome", outcome)
            if outcome is CallOutcome.OK:  # a 404 is the broker's answer, not a failure
                span.set_attribute("broker.answer", type(exc).__name__)
            else:
                _failed(span, exc)
            raise
        span.set_attribute("broker.outcome", CallOutcome.OK.value)


def broker_outcome(exc: BaseException) -> CallOutcome:
    """The outcome of a broker call that raised, as dt_broker_calls_total labels it."""
    if isinstance(exc, RateLimited):
        return CallOutcome.RATE_LIMITED
    if isinstance(exc, BudgetExhausted):
        return CallOutcome.BUDGET
    if isinstance(exc, NotFound):
        return CallOutcome.OK
    return CallOutcome.ERROR


def trade_id_of(workflow_id: str | None) -> str | None:
    """The trade id of a trade workflow's id (`trade-<id>`), None for any other workflow."""
    if workflow_id is None or not workflow_id.startswith(TRADE_WORKFLOW_PREFIX):
        return None
    return workflow_id.removeprefix(TRADE_WORKFLOW_PREFIX) or None


class TradeSpanInterceptor(Interceptor):
    """Worker interceptor: a trade's activities (and the broker calls they make) carry
    `trade.id` on their spans; registered after TracingInterceptor so its span is current."""

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        """Wrap activity execution."""
        return _TradeSpanActivityInbound(next)


class _TradeSpanActivityInbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        trade_id = trade_id_of(activity.info().workflow_id)
        if trade_id is None:
            return await super().execute_activity(input)
        trace.get_current_span().set_attribute(TRADE_ID, trade_id)
        # A sync activity runs in a copy of this context, and its broker calls reach the
        # gateway's loop through run_coroutine_threadsafe, which copies it again.
        token = _trade_id.set(trade_id)
        try:
            return await super().execute_activity(input)
        finally:
            _trade_id.reset(token)


def _failed(span: trace.Span, exc: BaseException) -> None:
    # The type only: a message may quote a request, and nothing of a request goes in a span.
    span.set_attribute("error.type", type(exc).__name__)
    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
