"""Alerts to people: a webhook receiver in the test gets exactly one message per alerting event
(halt, rescue alert, flatten, an uncovered position), also when the worker dies while a send
is being retried, and no message, ledger row or history holds a secret."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import pytest_asyncio
from aiohttp import web
from pydantic import SecretStr
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.notify import NotifyActivities
from broker.endpoint import BrokerEndpoint
from contracts import control
from ledger.notifications import Notifications
from ops.notifier import IDEMPOTENCY_HEADER, NO_WEBHOOK, AlertTarget
from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker
from settings import Settings
from tests.conftest import free_port
from tests.integration.cli_helpers import stack_env, stack_settings
from tests.integration.helpers import terminate_control, terminate_running
from tests.integration.trade.test_worker_crash import WorkerProcess
from trading.broker_sync_models import BrokerSyncInput, BrokerSyncRun
from trading.control import (
    ControlInput,
    ControlRequest,
    FlattenReport,
    FlattenRequest,
    RescueAlert,
)
from trading.notify import Notice, NoticeKind, NoticeOutcome, NoticeSeverity
from worker import create_worker
from workflows.broker_sync import BrokerSyncWorkflow
from workflows.control import TradingControlWorkflow

pytestmark = pytest.mark.integration


@dataclass
class Post:
    """One POST the receiver got: its event key, body and the status it answered."""

    path: str
    key: str
    body: dict[str, Any]
    status: int
    raw: str


@dataclass
class Receiver:
    """A Slack-compatible webhook: records every POST; can answer 500 or hold the answer."""

    base: str
    token: str
    posts: list[Post] = field(default_factory=list)
    fail_next: int = 0
    status_for_all: int | None = None
    hold_s: float = 0.0

    @property
    def url(self) -> str:
        return f"{self.base}/services/T0NOTIFY/B0NOTIFY/{self.token}"

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.text()
        status = self.status_for_all or 200
        if self.fail_next > 0:
            self.fail_next -= 1
            status = 500
        key = request.headers.get(IDEMPOTENCY_HEADER, "")
        self.posts.append(
            Post(request.path, key, json.loads(raw), status, raw + str(request.headers))
        )
        if self.hold_s:
            await asyncio.sleep(self.hold_s)
        return web.Response(status=status, text="ok" if status == 200 else "no")

    def accepted(self, prefix: str = "") -> list[Post]:
        """The messages the receiver took (2xx), whose event key starts with `prefix`."""
        return [p for p in self.posts if p.status == 200 and p.key.startswith(prefix)]

    async def wait(self, check: Callable[[], bool], within: float = 30.0) -> None:
        deadline = time.monotonic() + within
        while not check():
            assert time.monotonic() < deadline, f"receiver: condition not met; posts {self.posts}"
            await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def receiver() -> AsyncIterator[Receiver]:
    port = free_port()
    hook = Receiver(base=f"http://127.0.0.1:{port}", token=secrets.token_hex(16))
    app = web.Application()
    app.router.add_post("/{tail:.*}", hook.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield hook
    finally:
        await runner.cleanup()


@pytest.fixture
def alert_settings(
    settings: Settings, paper_broker: RunningBroker, database_url: str, receiver: Receiver
) -> Settings:
    """The stack's settings with real-looking secrets: broker keys and the webhook URL."""
    stack = stack_settings(settings, paper_broker, database_url)
    return stack.model_copy(update={"alert_webhook_url": SecretStr(receiver.url)})


def _secret_values(settings: Settings, receiver: Receiver) -> list[str]:
    assert settings.alpaca_api_key and settings.alpaca_secret_key
    return [
        settings.alpaca_api_key.get_secret_value(),
        settings.alpaca_secret_key.get_secret_value(),
        receiver.token,
    ]


@pytest_asyncio.fixture
async def control_client(client: Client) -> AsyncIterator[Client]:
    """The client, with the session-wide trading-control singleton terminated around the test."""
    await terminate_control(client, "notify test starts")
    yield client
    await terminate_control(client, "notify test finished")


async def _start_control(client: Client, task_queue: str) -> WorkflowHandle[Any, Any]:
    return await client.start_workflow(
        TradingControlWorkflow.run,
        ControlInput(),
        id=control.WORKFLOW_ID,
        task_queue=task_queue,
        id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
    )


async def _halt(handle: WorkflowHandle[Any, Any], reason: str) -> None:
    await handle.signal(control.HALT.name, ControlRequest(reason=reason, actor="tester"))


async def _eventually(check: Callable[[], Awaitable[bool]], within: float = 30.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _one_each(posts: list[Post]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for post in posts:
        counts[post.key] = counts.get(post.key, 0) + 1
    return counts


async def test_halt_rescue_alert_and_flatten_each_reach_people_once(
    control_client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
    broker_admin: AdminClient,
    alert_settings: Settings,
    receiver: Receiver,
) -> None:
    client = control_client
    target = AlertTarget.from_settings(alert_settings)
    worker = create_worker(
        client, pool, task_queue, activity_executor, broker_endpoint, alerts=target
    )
    async with worker:
        handle = await _start_control(client, task_queue)
        await _halt(handle, "operator halt for the notify test")
        await receiver.wait(lambda: len(receiver.accepted("halt:")) == 1)
        await _halt(handle, "halt again: already HALTED, nothing changes")
        alert = RescueAlert(trade_id="msft-notify01", symbol="MSFT", detail="stop rejected 3x")
        await handle.signal(control.REPORT_RESCUE_ALERT.name, alert)
        await receiver.wait(lambda: len(receiver.accepted("rescue_alert:")) == 1)
        report = await handle.execute_update(
            control.FLATTEN.name,
            FlattenRequest(reason="notify test flatten", actor="tester"),
            result_type=FlattenReport,
        )
        assert report.done
        await receiver.wait(lambda: len(receiver.accepted("flatten_finished:")) == 1)
        await asyncio.sleep(2.0)  # room for any second message to arrive
        history = (await handle.fetch_history()).to_json()

    posts = receiver.accepted()
    counts = _one_each(posts)
    assert sorted(counts.values()) == [1, 1, 1, 1], counts
    kinds = sorted(p.key.split(":")[0] for p in posts)
    assert kinds == ["flatten_finished", "flatten_started", "halt", "rescue_alert"]
    assert receiver.posts == posts  # nothing failed, nothing was retried
    halt = next(p for p in posts if p.key.startswith("halt:"))
    assert set(halt.body) == {"text", "blocks"}
    assert halt.body["text"].startswith("[CRITICAL] Trading HALTED (by tester)")
    assert "operator halt for the notify test" in json.dumps(halt.body)
    assert all(block["type"] == "section" for p in posts for block in p.body["blocks"])
    rescue = next(p for p in posts if p.key.startswith("rescue_alert:msft-notify01:"))
    assert "stop rejected 3x" in json.dumps(rescue.body)
    for post in posts:
        row = await Notifications(pool).get(post.key)
        assert row is not None and row.sent_at is not None and row.attempts == 1
    for secret in _secret_values(alert_settings, receiver):
        assert all(secret not in p.raw for p in posts)
        assert secret not in history
    assert {p.path for p in posts} == {f"/services/T0NOTIFY/B0NOTIFY/{receiver.token}"}


async def _in_retry_backoff(handle: WorkflowHandle[Any, Any]) -> bool:
    """The notify activity's first attempt failed and the server holds its retry."""
    pending = (await handle.describe()).raw_description.pending_activities
    return any(
        p.activity_type.name == "notify" and p.attempt >= 2 and p.HasField("last_failure")
        for p in pending
    )


@pytest.fixture
def worker_process(
    alert_settings: Settings, paper_broker: RunningBroker, database_url: str, tmp_path: Path
) -> Iterator[WorkerProcess]:
    """`python worker.py` with ALERT_WEBHOOK_URL set, started by the test."""
    assert alert_settings.alert_webhook_url is not None
    env = stack_env(
        alert_settings,
        paper_broker,
        database_url,
        ALERT_WEBHOOK_URL=alert_settings.alert_webhook_url.get_secret_value(),
        METRICS_ADDRESS="",
        HEALTH_ADDRESS="",
        LOG_LEVEL="INFO",
    )
    process = WorkerProcess(env, tmp_path)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.slow
async def test_a_notice_retried_across_a_killed_worker_reaches_people_once(
    control_client: Client,
    pool: asyncpg.Pool,
    alert_settings: Settings,
    receiver: Receiver,
    worker_process: WorkerProcess,
    tmp_path: Path,
) -> None:
    client = control_client
    receiver.fail_next = 1  # the first POST is answered 500: the activity retries
    worker_process.start()
    handle = await _start_control(client, alert_settings.temporal_task_queue)
    await _halt(handle, "halt across a worker crash")
    await receiver.wait(lambda: len(receiver.posts) == 1)
    await _eventually(lambda: _in_retry_backoff(handle))
    worker_process.kill()  # SIGKILL while Temporal waits out the retry's backoff

    key = receiver.posts[0].key
    row = await Notifications(pool).get(key)
    assert row is not None and row.sent_at is None and row.attempts == 1
    assert row.last_error == "webhook answered HTTP 500"
    await asyncio.sleep(3.0)  # the retry falls due with no worker to run it
    assert [p.status for p in receiver.posts] == [500]

    worker_process.start()
    await receiver.wait(lambda: len(receiver.accepted(key)) == 1, within=60)
    row = await Notifications(pool).get(key)
    assert row is not None and row.sent_at is not None and row.attempts == 2

    # Another crash and start: the new worker replays the control's history (with the sent
    # notice in it) and sends nothing again; a new halt is a new event, sent once.
    worker_process.kill()
    worker_process.start()
    await handle.signal(control.RESUME.name, ControlRequest(reason="resume", actor="tester"))
    await _halt(handle, "second halt after the restarts")
    await receiver.wait(lambda: len(receiver.accepted("halt:")) == 2, within=60)
    await asyncio.sleep(2.0)
    counts = _one_each(receiver.accepted())
    assert list(counts.values()) == [1, 1] and key in counts, counts
    assert [p.status for p in receiver.posts] == [500, 200, 200]
    logs = await asyncio.to_thread(_worker_logs, tmp_path)
    history = (await handle.fetch_history()).to_json()
    for secret in _secret_values(alert_settings, receiver):
        assert all(secret not in p.raw for p in receiver.posts)
        assert secret not in history and secret not in logs


def _worker_logs(folder: Path) -> str:
    return "".join(p.read_text(errors="replace") for p in folder.glob("worker-*.log"))


def _notice(severity: NoticeSeverity = NoticeSeverity.CRITICAL, title: str = "test") -> Notice:
    return Notice(
        event_key=f"halt:test-{uuid.uuid4()}",
        kind=NoticeKind.HALT,
        severity=severity,
        title=title,
        lines=["a line"],
    )


async def test_a_retry_after_the_send_was_recorded_sends_nothing(
    pool: asyncpg.Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    notify = NotifyActivities(pool, AlertTarget.from_settings(alert_settings))
    notice = _notice()
    first = await ActivityEnvironment().run(notify.notify, notice)
    # The worker died after marking it sent but before Temporal heard: the retry runs again.
    again = await ActivityEnvironment().run(notify.notify, notice)
    assert (first.outcome, again.outcome) == (NoticeOutcome.SENT, NoticeOutcome.DUPLICATE)
    assert [p.key for p in receiver.posts] == [notice.event_key]


async def test_concurrent_senders_of_one_event_post_once(
    pool: asyncpg.Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    receiver.hold_s = 0.5  # the first sender still holds the row when the others arrive
    notify = NotifyActivities(pool, AlertTarget.from_settings(alert_settings))
    notice = _notice()
    receipts = await asyncio.gather(
        *(ActivityEnvironment().run(notify.notify, notice) for _ in range(4))
    )
    assert sorted(r.outcome.value for r in receipts) == ["duplicate"] * 3 + ["sent"]
    assert len(receiver.posts) == 1


async def test_a_send_cut_off_mid_post_goes_again_under_the_same_key(
    pool: asyncpg.Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    """The one window: the receiver took the POST, the worker died before recording it. The
    second copy carries the same Idempotency-Key, so a receiver can drop it."""
    receiver.hold_s = 5.0
    notify = NotifyActivities(pool, AlertTarget.from_settings(alert_settings))
    notice = _notice()
    sending = asyncio.create_task(ActivityEnvironment().run(notify.notify, notice))
    await receiver.wait(lambda: len(receiver.posts) == 1)
    sending.cancel()  # the worker stops mid-POST
    with contextlib.suppress(asyncio.CancelledError):
        await sending
    row = await Notifications(pool).get(notice.event_key)
    assert row is None or row.sent_at is None  # nothing recorded as sent
    receiver.hold_s = 0.0
    receipt = await ActivityEnvironment().run(notify.notify, notice)
    assert receipt.outcome is NoticeOutcome.SENT
    assert [p.key for p in receiver.posts] == [notice.event_key] * 2


async def test_without_a_webhook_a_notice_is_recorded_and_nothing_fails(
    pool: asyncpg.Pool,
) -> None:
    notice = _notice()
    receipt = await ActivityEnvironment().run(NotifyActivities(pool, None).notify, notice)
    assert receipt.outcome is NoticeOutcome.NO_WEBHOOK
    row = await Notifications(pool).get(notice.event_key)
    assert row is not None and row.sent_at is None and row.last_error == NO_WEBHOOK


async def test_a_refused_notice_fails_for_good_and_errors_name_no_secret(
    pool: asyncpg.Pool, alert_settings: Settings, receiver: Receiver
) -> None:
    receiver.status_for_all = 404  # a revoked webhook: no retry can help
    notify = NotifyActivities(pool, AlertTarget.from_settings(alert_settings))
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(notify.notify, _notice())
    assert refused.value.non_retryable and refused.value.type == "WebhookRejected"

    closed = f"http://127.0.0.1:{free_port()}/services/T0/B0/{receiver.token}"
    down = AlertTarget(webhook_url=SecretStr(closed), secrets=(closed,), timeout_s=2.0)
    notice = _notice(title=f"a title quoting {closed}")
    with pytest.raises(ApplicationError) as unreachable:
        await ActivityEnvironment().run(NotifyActivities(pool, down).notify, notice)
    assert not unreachable.value.non_retryable
    assert unreachable.value.type == "WebhookUnavailable"
    row = await Notifications(pool).get(notice.event_key)
    assert row is not None and row.last_error is not None
    assert receiver.token not in unreachable.value.message + row.last_error


@pytest.mark.slow
async def test_an_uncovered_position_alerts_once_per_episode(
    client: Client,
    pool: asyncpg.Pool,
    task_queue: str,
    activity_executor: ThreadPoolExecutor,
    broker_endpoint: BrokerEndpoint,
    broker_admin: AdminClient,
    alert_settings: Settings,
    receiver: Receiver,
) -> None:
    broker_admin.open_position("NVDA", 3)  # outside the system, no stop
    target = AlertTarget.from_settings(alert_settings)
    target = AlertTarget(target.webhook_url, target.secrets, uncovered_after=timedelta(seconds=2))
    worker = create_worker(
        client, pool, task_queue, activity_executor, broker_endpoint, alerts=target
    )
    sync_settings = BrokerSyncInput(
        listen=False,
        poll_interval=timedelta(milliseconds=300),
        clock_check_interval=timedelta(hours=1),
    )
    async with worker:
        handle = await client.start_workflow(
            BrokerSyncWorkflow.run,
            BrokerSyncRun(settings=sync_settings),
            id=f"broker-sync-{uuid.uuid4().hex[:6]}",
            task_queue=task_queue,
        )
        try:
            await receiver.wait(lambda: len(receiver.accepted("uncovered_position:NVDA:")) == 1)
            polls_at_alert = (await handle.query(BrokerSyncWorkflow.status)).polls
            await _eventually(
                lambda: _polls_past(handle, polls_at_alert + 10)
            )  # the episode goes on
            assert len(receiver.posts) == 1
            episodes = await Notifications(pool).episodes()
            assert list(episodes) == ["NVDA"]
            broker_admin.close_position("NVDA")
            await _eventually(lambda: _no_episodes(pool))
        finally:
            await handle.signal(BrokerSyncWorkflow.stop)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(handle.result(), 20)
            await terminate_running([handle], "test finished")
    post = receiver.posts[0]
    assert post.status == 200
    assert post.body["text"].startswith("[CRITICAL] NVDA: position without an active stop")


async def _polls_past(handle: WorkflowHandle[Any, Any], polls: int) -> bool:
    return bool((await handle.query(BrokerSyncWorkflow.status)).polls >= polls)


async def _no_episodes(pool: asyncpg.Pool) -> bool:
    return not await Notifications(pool).episodes()
