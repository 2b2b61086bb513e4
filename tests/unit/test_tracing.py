"""Traces from settings (off / console / otlp, ConfigError), the CLI root span, broker-call
spans and the trade id a trade's activities put on them."""

from __future__ import annotations

import dataclasses
import gzip
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from temporalio.testing import ActivityEnvironment
from temporalio.worker import ActivityInboundInterceptor, ExecuteActivityInput

from broker.budget import BrokerBudget
from broker.errors import BudgetExhausted, NotFound, RateLimited
from broker.metered import MeteredGateway
from broker.rate_limits import RateLimitObserver
from cli.main import build_parser, command_name
from ops.tracing import (
    TradeSpanInterceptor,
    broker_call_span,
    command_span,
    span_processor,
    tracer_provider,
    trade_id_of,
)
from settings import ROOT, ConfigError, Settings
from trading.broker_budget import BudgetConfig
from trading.broker_models import MarketClock

NOW = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


def _settings(**fields: Any) -> Settings:
    return Settings(**fields)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    """Spans ended during the test, from the process's SDK provider (installed once)."""
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        trace.set_tracer_provider(TracerProvider())
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield exporter
    exporter.shutdown()  # a shut exporter keeps nothing more


# ---- exporter choice ------------------------------------------------------------------------


def test_off_is_the_default_and_installs_nothing() -> None:
    settings = _settings()
    assert settings.otel_exporter == "off"
    assert span_processor(settings) is None
    assert tracer_provider(settings, "durable-trader-cli") is None


def test_console_prints_each_span_with_the_service_name_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    provider = tracer_provider(_settings(otel_exporter="console"), "durable-trader-cli")
    assert provider is not None
    with provider.get_tracer("t").start_as_current_span("cli settings show"):
        pass
    captured = capsys.readouterr()
    assert '"name": "cli settings show"' in captured.err
    assert '"service.name": "durable-trader-cli"' in captured.err
    assert captured.out == ""  # stdout stays the command's (--json output is parsed)
    provider.shutdown()


def test_otlp_without_an_endpoint_is_one_line_naming_the_setting() -> None:
    with pytest.raises(ConfigError) as refused:
        span_processor(_settings(otel_exporter="otlp"))
    message = str(refused.value)
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in message and "\n" not in message


def test_a_non_http_endpoint_is_refused_without_echoing_it() -> None:
    endpoint = "grpc://user:hunter2@collector:4317"
    with pytest.raises(ConfigError) as refused:
        span_processor(_settings(otel_exporter="otlp", otel_exporter_otlp_endpoint=endpoint))
    assert "http://" in str(refused.value) and "hunter2" not in str(refused.value)


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    received: list[tuple[str, ExportTraceServiceRequest]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append((self.path, request))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_otlp_batches_spans_to_the_endpoint_with_the_service_resource() -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        settings = _settings(otel_exporter="otlp", otel_exporter_otlp_endpoint=endpoint)
        assert isinstance(span_processor(settings), BatchSpanProcessor)
        provider = tracer_provider(settings, "durable-trader-worker")
        assert provider is not None
        with provider.get_tracer("t").start_as_current_span("RunActivity:submit_order"):
            pass
        assert _Collector.received == []  # batched, not sent per span
        provider.shutdown()  # what atexit / flush_tracing do: the last batch goes out
    finally:
        server.shutdown()
    [(path, request)] = _Collector.received
    assert path == "/v1/traces"
    [resource_spans] = request.resource_spans
    resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
    assert resource["service.name"] == "durable-trader-worker"
    assert resource["deployment.environment.name"] == "paper"
    names = [s.name for scope in resource_spans.scope_spans for s in scope.spans]
    assert names == ["RunActivity:submit_order"]


# ---- the CLI's root span ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "name"),
    [
        (["trade", "open", "AAPL", "--qty", "4", "--stop", "95.00"], "trade open"),
        (["settings", "show", "--json"], "settings show"),
        (["market-loop", "run", "--watchlist", "AAPL,MSFT"], "market-loop run"),
        (["trade", "status", "aapl-0123456789"], "trade status"),
    ],
)
def test_the_command_span_is_named_by_the_command_words_only(argv: list[str], name: str) -> None:
    assert command_name(build_parser(), argv) == name


def test_a_failed_command_marks_its_span_without_the_message(
    spans: InMemorySpanExporter,
) -> None:
    with pytest.raises(ConfigError), command_span("trade open"):
        raise ConfigError("cannot connect with secret-looking-detail")
    [span] = spans.get_finished_spans()
    assert span.name == "cli trade open" and span.parent is None
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None and span.attributes["error.type"] == "ConfigError"
    assert "secret-looking-detail" not in _everything(span)


# ---- broker calls -------------------------------------------------------------------------------


class _ClockBroker:
    """Answers get_clock; a 429 when told to."""

    def __init__(self) -> None:
        self.rate_limits = RateLimitObserver()
        self.limited = False

    def get_clock(self) -> MarketClock:
        self.rate_limits.sent()
        if self.limited:
            raise RateLimited("rate limit exceeded", reset_at=datetime.now(UTC) + timedelta(1))
        return MarketClock(timestamp=NOW, is_open=True, next_open=NOW, next_close=NOW)


def _metered(broker: _ClockBroker) -> MeteredGateway:
    config = BudgetConfig(calls_per_min=50, read_reserve=0, trade_reserve=0)
    return MeteredGateway(broker, BrokerBudget(None, "0123456789abcdef", config))  # type: ignore[arg-type]


async def test_each_broker_call_is_a_client_span_named_by_its_route(
    spans: InMemorySpanExporter,
) -> None:
    broker = _ClockBroker()
    metered = _metered(broker)
    await metered.get_clock()
    broker.limited = True
    with pytest.raises(RateLimited):
        await metered.get_clock()
    ok, limited = spans.get_finished_spans()
    assert ok.name == limited.name == "GET /v2/clock"
    assert ok.kind is trace.SpanKind.CLIENT
    assert dict(ok.attributes or {}) == {
        "broker.call": "get_clock",
        "broker.route": "GET /v2/clock",
        "http.request.method": "GET",
        "url.template": "/v2/clock",
        "broker.outcome": "ok",
    }
    assert (limited.attributes or {})["broker.outcome"] == "rate_limited"
    assert limited.status.status_code is StatusCode.ERROR


@pytest.mark.parametrize(
    ("call", "name", "route"),
    [
        ("submit_order", "POST /v2/orders", "POST /v2/orders"),
        ("get_order", "GET /v2/orders/{id}", "GET /v2/orders/{id}"),
        (
            "broker_truth",  # one snapshot, three requests: the span names each route
            "GET /v2/account + /v2/positions + /v2/orders",
            ("GET /v2/account", "GET /v2/positions", "GET /v2/orders"),
        ),
    ],
)
def test_a_span_is_named_by_the_routes_the_metrics_count(
    spans: InMemorySpanExporter, call: str, name: str, route: object
) -> None:
    with broker_call_span(call):
        pass
    [span] = spans.get_finished_spans()
    assert span.name == name and (span.attributes or {})["broker.route"] == route


def test_a_404_is_an_answer_and_a_refusal_by_the_budget_is_budget(
    spans: InMemorySpanExporter,
) -> None:
    with pytest.raises(NotFound), broker_call_span("get_order"):
        raise NotFound("order not found")
    with pytest.raises(BudgetExhausted), broker_call_span("get_order"):
        raise BudgetExhausted("get_order not sent", retry_after=timedelta(seconds=3))
    found, refused = spans.get_finished_spans()
    assert (found.attributes or {})["broker.outcome"] == "ok"
    assert found.status.status_code is StatusCode.UNSET
    assert (refused.attributes or {})["broker.outcome"] == "budget"
    assert refused.status.status_code is StatusCode.ERROR


def test_the_trade_id_comes_from_a_trade_workflow_id_only() -> None:
    assert trade_id_of("trade-aapl-0123456789") == "aapl-0123456789"
    assert trade_id_of("broker-sync-1") is None
    assert trade_id_of("trade-") is None
    assert trade_id_of(None) is None


class _CallsTheClock(ActivityInboundInterceptor):
    """The activity behind the interceptor: one broker call inside its own span."""

    def __init__(self, metered: MeteredGateway) -> None:
        self._metered = metered

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        with trace.get_tracer("t").start_as_current_span("RunActivity:get_clock"):
            inner = TradeSpanInterceptor().intercept_activity(_Clock(self._metered))
            return await inner.execute_activity(input)


class _Clock(ActivityInboundInterceptor):
    def __init__(self, metered: MeteredGateway) -> None:
        self._metered = metered

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        return await self._metered.get_clock()


@pytest.mark.parametrize(("workflow_id", "trade_id"), [("trade-aapl-1", "aapl-1"), ("sync", None)])
async def test_a_trades_activity_and_its_broker_calls_carry_the_trade_id(
    spans: InMemorySpanExporter, workflow_id: str, trade_id: str | None
) -> None:
    env = ActivityEnvironment()
    env.info = dataclasses.replace(env.info, workflow_id=workflow_id)
    metered = _metered(_ClockBroker())
    outer = _CallsTheClock(metered)
    run = ExecuteActivityInput(fn=lambda: None, args=[], executor=None, headers={})
    await env.run(outer.execute_activity, run)
    broker_span, activity_span = spans.get_finished_spans()
    for span in (broker_span, activity_span):
        assert (span.attributes or {}).get("trade.id") == trade_id
    with broker_call_span("get_clock") as after:  # nothing leaks past the activity
        assert "trade.id" not in (getattr(after, "attributes", None) or {})


def _everything(span: ReadableSpan) -> str:
    parts = [span.name, span.status.description or "", str(dict(span.attributes or {}))]
    parts += [f"{e.name} {dict(e.attributes or {})}" for e in span.events]
    return " ".join(parts)


def test_configure_tracing_installs_one_provider_per_process() -> None:
    script = """
import sys
from opentelemetry import trace
from ops.tracing import configure_tracing
from settings import Settings

configure_tracing(Settings(), "off-first")
assert type(trace.get_tracer_provider()).__name__ == "ProxyTracerProvider", "off installed one"
configure_tracing(Settings(otel_exporter="console"), "durable-trader-worker")
first = trace.get_tracer_provider()
configure_tracing(Settings(otel_exporter="console"), "second-call")
assert trace.get_tracer_provider() is first
print(first.resource.attributes["service.name"])
"""
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "durable-trader-worker"
