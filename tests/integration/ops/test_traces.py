"""One trace from `trade open` through TradeWorkflow to the broker calls, with no secret in it;
the real CLI process exporting to the console and to an OTLP/HTTP collector before it exits."""

from __future__ import annotations

import asyncio
import gzip
import json
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from temporalio.client import Client, WorkflowExecutionStatus

from broker.alpaca import AlpacaGateway
from cli.main import main as cli_main
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import cli_env, run_cli
from trading.ticks import protective_stop_price
from worker import create_worker

pytestmark = pytest.mark.integration

SYMBOL = "AAPL"
DATABASE_PASSWORD = "pg-Fake-Passw0rd-7d1c"
WEBHOOK_URL = "https://hooks.example.invalid/services/T0FAKE/B0FAKE/wh-Fake-Token-93ab"


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
    exporter.shutdown()


def _with_password(database_url: str) -> str:
    """The module's database URL with a password (the embedded server trusts; it is ignored)."""
    parts = urlsplit(database_url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user}:{DATABASE_PASSWORD}@{host}"))


@pytest.fixture
def cli_environment(
    monkeypatch: pytest.MonkeyPatch,
    settings: Settings,
    paper_broker: RunningBroker,
    database_url: str,
) -> dict[str, str]:
    """This process's environment as the in-process CLI reads it, secrets included."""
    env = {
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "TEMPORAL_TASK_QUEUE": settings.temporal_task_queue,
        "DATABASE_URL": _with_password(database_url),
        "ALPACA_API_KEY": paper_broker.key_id,
        "ALPACA_SECRET_KEY": paper_broker.secret_key,
        "ALPACA_TRADING_URL": paper_broker.trading_url,
        "ALPACA_DATA_URL": paper_broker.data_url,
        "ALPACA_STREAM_URL": paper_broker.stream_url,
        "ALERT_WEBHOOK_URL": WEBHOOK_URL,
        "STATE_DIR": "/nonexistent-state-dir",
    }
    for name in ("OTEL_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "PAYLOAD_ENCRYPTION_KEY"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


async def test_one_trace_joins_the_cli_the_trade_workflow_and_its_broker_calls(
    spans: InMemorySpanExporter,
    cli_environment: dict[str, str],
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: AlpacaGateway,
    paper_broker: RunningBroker,
    capsys: pytest.CaptureFixture[str],
) -> None:
    broker_admin.set_price(SYMBOL, volatility=0)
    stop = protective_stop_price(gateway.latest_quotes([SYMBOL])[0].bid * Decimal("0.95"))
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        code = await asyncio.to_thread(
            cli_main, ["trade", "open", SYMBOL, "--qty", "4", "--stop", str(stop)]
        )
        out = capsys.readouterr().out
        assert code == 0, out
        match = re.search(r"workflow: (trade-(\S+))", out)
        assert match
        workflow_id, trade_id = match.group(1), match.group(2)
        handle = client.get_workflow_handle(workflow_id)
        try:
            # The entry order (an OTO carrying its stop) is POSTed from the trade's activity.
            posted = await _eventually(
                spans,
                lambda done: [
                    s
                    for s in done
                    if s.name == "POST /v2/orders" and _attr(s, "trade.id") == trade_id
                ],
                count=1,
            )
        finally:
            if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
                await handle.terminate("test finished")

    finished = list(spans.get_finished_spans())
    [root] = [s for s in finished if s.name == "cli trade open"]
    assert root.parent is None and _attr(root, "cli.exit_code") == 0
    trace_id = _context(root).trace_id
    in_trace = [s for s in finished if _context(s).trace_id == trace_id]
    names = {s.name for s in in_trace}
    assert {"StartWorkflow:TradeWorkflow", "RunWorkflow:TradeWorkflow"} <= names
    assert any(n.startswith("StartActivity:") for n in names), names
    assert any(n.startswith("RunActivity:") for n in names), names
    # The CLI's own broker calls (the asset and quote checks) hang off the root directly.
    assert {"GET /v2/assets/{symbol}", "GET /v2/stocks/quotes/latest"} <= names

    by_id = {_context(s).span_id: s for s in in_trace}
    for broker_span in posted:
        assert _context(broker_span).trace_id == trace_id
        assert broker_span.kind is SpanKind.CLIENT
        assert _attr(broker_span, "broker.outcome") == "ok"
        chain = _ancestors(broker_span, by_id)
        assert chain[0].name == "RunActivity:submit_order" and _attr(chain[0], "trade.id")
        assert chain[1].name == "StartActivity:submit_order"
        assert chain[-1] is root
        assert "StartWorkflow:TradeWorkflow" in [s.name for s in chain]
    activity_spans = [s for s in in_trace if s.name.startswith("RunActivity:")]
    assert all(_attr(s, "trade.id") == trade_id for s in activity_spans)

    secrets = {
        "Alpaca key id": paper_broker.key_id,
        "Alpaca secret": paper_broker.secret_key,
        "database password": DATABASE_PASSWORD,
        "webhook URL": WEBHOOK_URL,
        "webhook token": WEBHOOK_URL.rsplit("/", 1)[1],
    }
    for span in finished:
        exported = span.to_json()
        for what, value in secrets.items():
            assert value not in exported, f"{what} in span {span.name}"


def test_the_cli_process_prints_its_spans_to_stderr_in_console_mode() -> None:
    done = run_cli("settings", "show", "--json", env=cli_env(OTEL_EXPORTER="console"))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["OTEL_EXPORTER"] == "console"  # stdout stays parseable
    assert '"name": "cli settings show"' in done.stderr
    assert '"service.name": "durable-trader-cli"' in done.stderr


def test_otlp_without_an_endpoint_stops_the_cli_with_one_line() -> None:
    done = run_cli("settings", "show", env=cli_env(OTEL_EXPORTER="otlp"))
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and len(lines) == 1, done.stderr
    assert "OTEL_EXPORTER_OTLP_ENDPOINT" in lines[0]


class _Collector(BaseHTTPRequestHandler):
    """An OTLP/HTTP traces endpoint that keeps what it is sent."""

    received: list[ExportTraceServiceRequest] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        self.received.append(request)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return None


def test_the_cli_process_sends_its_batch_to_the_collector_before_it_exits() -> None:
    _Collector.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/traces"
        env = cli_env(OTEL_EXPORTER="otlp", OTEL_EXPORTER_OTLP_ENDPOINT=endpoint)
        done = run_cli("settings", "show", env=env)
    finally:
        server.shutdown()
    assert done.returncode == 0, done.stderr
    # The CLI leaves through os._exit: only the flush at the command's end sends the batch.
    exported = [
        (resource_spans.resource, span)
        for request in _Collector.received
        for resource_spans in request.resource_spans
        for scope in resource_spans.scope_spans
        for span in scope.spans
    ]
    assert [span.name for _, span in exported] == ["cli settings show"]
    resource = {a.key: a.value.string_value for a in exported[0][0].attributes}
    assert resource["service.name"] == "durable-trader-cli"


async def _eventually(
    spans: InMemorySpanExporter,
    pick: Any,
    count: int,
    within_s: float = 30,
) -> list[ReadableSpan]:
    deadline = time.monotonic() + within_s
    while True:
        found: list[ReadableSpan] = pick(list(spans.get_finished_spans()))
        if len(found) >= count:
            return found
        assert time.monotonic() < deadline, f"{len(found)} of {count} spans in {within_s}s"
        await asyncio.sleep(0.2)


def _context(span: ReadableSpan) -> trace.SpanContext:
    context = span.get_span_context()
    assert context is not None
    return context


def _attr(span: ReadableSpan, name: str) -> Any:
    return (span.attributes or {}).get(name)


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[ReadableSpan]:
    """The span's parents, nearest first, up to the trace's root."""
    chain: list[ReadableSpan] = []
    parent = span.parent
    while parent is not None:
        above = by_id[parent.span_id]
        chain.append(above)
        parent = above.parent
    return chain
