"""Encrypted payloads end to end: a trade run by a worker with PAYLOAD_ENCRYPTION_KEY leaves a
history whose payloads say nothing about the symbol, prices or quantity to a reader without the
key; the codec server opens them; saved (unencrypted) histories still replay with the codec."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import aiohttp
import asyncpg
import pytest
import pytest_asyncio
from google.protobuf.json_format import MessageToDict, ParseDict
from google.protobuf.message import Message
from pydantic import SecretStr
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.api.failure.v1 import Failure
from temporalio.client import Client, WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from cli.codec_server import serve_codec, ui_origins
from clients import make_client
from ops.codec import ENCRYPTED_ENCODING, codec_for, data_converter, new_key_line
from paperbroker.admin_client import AdminClient
from settings import Settings
from tests.conftest import free_port
from tests.integration.trade.conftest import HISTORIES, SYMBOL, TradeHarness, finish
from trading.ledger_records import CloseReason, ExitUrgency
from trading.trade_models import ForceExit, TightenStop, TradeResult
from worker import create_worker
from workflows.registry import ALL_WORKFLOWS
from workflows.trade import TradeWorkflow

pytestmark = pytest.mark.integration

QTY = Decimal(37)
# Rotation in the test too: the first key seals, the second is an older one kept for reading.
KEYS = f"{new_key_line('current')},{new_key_line('previous')}"
# Payloads the SDK core writes itself, never through a codec: a patch marker's id, a local
# activity marker's seq/type/times (its result is sealed) and the trace-context header.
SDK_BOOKKEEPING = re.compile(r"details\[(patch-data|data)\]|\.header\.")
MARKET_LOOP_CHILD_ID = re.compile(r'"workflowId": *"([^"]+)-drain"')
SAVED = {path.stem: path.read_text() for path in sorted(HISTORIES.glob("*.json"))}


@dataclass(frozen=True)
class FoundPayload:
    """A payload somewhere in a history, with the proto path that led to it."""

    path: str
    payload: Payload


def payloads_in(message: Message, path: str = "") -> Iterator[FoundPayload]:
    """Every Payload message inside `message` (nested messages, repeated fields and maps)."""
    if isinstance(message, Payload):
        yield FoundPayload(path, message)
        return
    for field, value in message.ListFields():
        where = f"{path}.{field.name}"
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            items = value.items()
            for key, item in items:
                if isinstance(item, Message):
                    yield from payloads_in(item, f"{where}[{key}]")
        elif field.is_repeated:
            for index, item in enumerate(value):
                yield from payloads_in(item, f"{where}[{index}]")
        else:
            yield from payloads_in(value, where)


def failures_in(message: Message) -> Iterator[Failure]:
    """Every Failure message inside `message` (its message text is not a payload)."""
    if isinstance(message, Failure):
        yield message
    for field, value in message.ListFields():
        if field.message_type is None or field.message_type.GetOptions().map_entry:
            continue
        items = value if field.is_repeated else [value]
        for item in items:
            yield from failures_in(item)


def is_search_attribute(found: FoundPayload) -> bool:
    """Search attributes are indexed by the server, so they stay readable by design."""
    return ".search_attributes." in found.path


@pytest.fixture
def encrypted_settings(settings: Settings) -> Settings:
    """This test's settings with PAYLOAD_ENCRYPTION_KEY set."""
    return Settings(
        **settings.model_dump(exclude={"payload_encryption_key"}),
        payload_encryption_key=SecretStr(KEYS),
    )


@pytest_asyncio.fixture
async def encrypted_trades(
    encrypted_settings: Settings,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_admin: AdminClient,
    gateway: Any,
    request: pytest.FixtureRequest,
) -> AsyncIterator[TradeHarness]:
    """The production worker and a client, both with the codec on."""
    client = await make_client(encrypted_settings)
    broker_admin.set_price(SYMBOL, volatility=0)
    harness = TradeHarness(client, task_queue, broker_admin, gateway, pool)
    async with create_worker(client, pool, task_queue, activity_executor, gateway.endpoint):
        try:
            yield harness
        finally:
            await finish(harness, request)


async def decode_through_codec_server(
    settings: Settings, sealed: list[Payload]
) -> tuple[list[Payload], dict[str, str]]:
    """POST the payloads to a running `codec-server` /decode as the Web UI does."""
    codec = codec_for(settings)
    assert codec is not None
    port = free_port()
    origins = ui_origins(settings.temporal_ui_url)
    runner = await serve_codec(codec, settings.temporal_namespace, origins, "127.0.0.1", port)
    try:
        body = MessageToDict(Payloads(payloads=sealed))
        headers = {"X-Namespace": settings.temporal_namespace, "Origin": origins[0]}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"http://127.0.0.1:{port}/decode", json=body, headers=headers) as answer,
        ):
            assert answer.status == 200, await answer.text()
            decoded = ParseDict(await answer.json(), Payloads())
            return list(decoded.payloads), dict(answer.headers)
    finally:
        await runner.cleanup()


async def test_a_trade_history_read_without_the_key_shows_no_symbol_price_or_quantity(
    encrypted_trades: TradeHarness,
    encrypted_settings: Settings,
    temporal_env: WorkflowEnvironment,
) -> None:
    trades = encrypted_trades
    market = trades.market()
    handle, view = await trades.open_trade(qty=QTY)
    first_stop = view.state.stop_price
    # By name: mypy reads the typed form of an async update as returning a coroutine.
    await handle.execute_update("tighten_stop", TightenStop(price=first_stop + Decimal("1.00")))
    tightened = (await handle.query(TradeWorkflow.status)).state
    await handle.signal(
        TradeWorkflow.force_exit, ForceExit(urgency=ExitUrgency.IMMEDIATE, reason="codec test")
    )
    result = await handle.result()
    assert isinstance(result, TradeResult) and result.close_reason is CloseReason.FORCE_EXIT
    row = await trades.trade_row(view.trade_id)
    assert row.entry_price is not None and row.exit_price is not None

    # What someone with access to Temporal's database (or its API) but not the key sees.
    keyless: Client = temporal_env.client
    history = await keyless.get_workflow_handle(handle.id).fetch_history()
    found = [f for event in history.events for f in payloads_in(event)]
    sealed = [f for f in found if not is_search_attribute(f)]
    assert len(sealed) > 20, "expected the inputs, results, signal and update of a whole trade"

    secrets_of_the_trade = {
        "symbol": SYMBOL.encode(),
        "symbol (lower case, inside the trade id)": SYMBOL.lower().encode(),
        "quantity": f'"{QTY}"'.encode(),
        "first stop": str(first_stop).encode(),
        "tightened stop": str(tightened.stop_price).encode(),
        "market price": str(market).encode(),
    }
    for found_payload in sealed:
        raw = found_payload.payload.SerializeToString()
        for what, token in secrets_of_the_trade.items():
            assert token not in raw, f"{what} readable in {found_payload.path}"
    for failure in (f for event in history.events for f in failures_in(event)):
        for what, token in secrets_of_the_trade.items():
            assert token.decode() not in failure.message + failure.stack_trace, what
    encrypted = [f.payload for f in sealed if f.payload.metadata["encoding"] == ENCRYPTED_ENCODING]
    # Workflow, activity, signal, update, memo, summary and failure payloads are all sealed;
    # what the SDK writes for itself (patch ids, local-activity bookkeeping, the tracing
    # header's trace context) is not passed to codecs, and the scan above found nothing in it.
    unsealed = [f.path for f in sealed if f.payload.metadata["encoding"] != ENCRYPTED_ENCODING]
    assert all(SDK_BOOKKEEPING.search(path) for path in unsealed), unsealed

    # The documented exposure: TradeSymbol (and TradeId) stay readable as search attributes.
    attributes = [f for f in found if is_search_attribute(f)]
    assert any(SYMBOL.encode() in f.payload.data for f in attributes)

    # The codec server opens them again, and then the secrets are there (the scan is honest).
    decoded, headers = await decode_through_codec_server(encrypted_settings, encrypted)
    assert len(decoded) == len(encrypted)
    assert (
        headers["Access-Control-Allow-Origin"] == ui_origins(encrypted_settings.temporal_ui_url)[0]
    )
    assert not any(p.metadata.get("encoding") == ENCRYPTED_ENCODING for p in decoded)
    opened = b"".join(p.data for p in decoded)
    for what, token in secrets_of_the_trade.items():
        assert token in opened, f"{what} not found after decoding: the scan above proves nothing"

    # The encrypted history replays with the key (and the worker reads it back the same way).
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(encrypted_settings))
    replayed = await replayer.replay_workflow(history)
    assert replayed.replay_failure is None


@pytest.mark.parametrize("name", sorted(SAVED))
async def test_saved_unencrypted_histories_replay_with_the_codec_on(name: str) -> None:
    settings = Settings(payload_encryption_key=SecretStr(KEYS))
    replayer = Replayer(workflows=ALL_WORKFLOWS, data_converter=data_converter(settings))
    # The market loop names its children after its own id: read it back (its replay test does).
    market_loop = MARKET_LOOP_CHILD_ID.search(SAVED[name])
    workflow_id = market_loop.group(1) if market_loop else name
    history = WorkflowHistory.from_json(workflow_id, SAVED[name])
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{name}: {result.replay_failure!r}"
