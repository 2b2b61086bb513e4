"""Sending a notice to people once: the ledger claim, the webhook POST, the mark.

One path for every sender: the worker's `NotifyActivities.notify` (retried by Temporal) and
`notify_now` for the CLI (`prelive`, `report day --notify`) both call `send_notice`.

Once per event key: the notice's ledger row is held (SELECT ... FOR UPDATE) from the claim
until `sent_at` is committed right after the receiver's 2xx, so a retry, a replayed workflow
or a second worker finds `sent_at` and sends nothing. The one window left is a process that
dies after the receiver accepted the POST and before that commit: the next attempt posts
again. Every POST carries the event key (`Idempotency-Key` header, and the message's last
line) so a receiver that cares can drop that rare second copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import asyncpg
from pydantic import SecretStr

from ledger.notifications import Notifications
from settings import Settings
from trading.notify import UNCOVERED_ALERT_AFTER, Notice, NoticeOutcome, NoticeReceipt, redact
from trading.notify import slack_body as build_body

logger = logging.getLogger(__name__)

WEBHOOK_TIMEOUT_S = 10.0
IDEMPOTENCY_HEADER = "Idempotency-Key"
NO_WEBHOOK = "no webhook configured (ALERT_WEBHOOK_URL unset)"


class WebhookFailed(Exception):
    """The webhook did not accept a notice; `retryable` tells whether trying again may help.

    The message never holds the webhook URL (it is a secret): status code or error type only.
    """

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable

    @property
    def kind(self) -> str:
        """The stable error type name an activity failure carries."""
        return "WebhookUnavailable" if self.retryable else "WebhookRejected"


@dataclass(frozen=True)
class AlertTarget:
    """Where notices go and what must never appear in them.

    `secrets`: every secret value of the settings (and the parts of secret URLs that are
    secret on their own: a webhook's path, a database password), masked in every message.
    """

    webhook_url: SecretStr | None
    secrets: tuple[str, ...] = field(default=(), repr=False)
    timeout_s: float = WEBHOOK_TIMEOUT_S
    # BrokerSync's uncovered-position alert fires after a position is this long without a stop.
    uncovered_after: timedelta = UNCOVERED_ALERT_AFTER

    @classmethod
    def from_settings(cls, settings: Settings) -> AlertTarget:
        """ALERT_WEBHOOK_URL, with every secret of the settings to mask."""
        return cls(
            webhook_url=settings.alert_webhook_url,
            secrets=secret_values(settings),
            uncovered_after=timedelta(seconds=settings.uncovered_alert_after_s),
        )


def secret_values(settings: Settings) -> tuple[str, ...]:
    """The settings' secret values, and the secret parts of secret URLs."""
    values: list[str] = []
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr) and value.get_secret_value():
            values.extend(_secret_parts(value.get_secret_value()))
    return tuple(values)


def _secret_parts(value: str) -> list[str]:
    """A secret and the pieces of it that are secret alone: a URL's password, path, last path
    segment (a webhook token) and query; each key of a `id:key,id:key` list."""
    parts = [value]
    split = urlsplit(value)
    if split.scheme and split.netloc:
        path = split.path.strip("/")
        parts += [p for p in (split.password, path, path.rsplit("/", 1)[-1], split.query) if p]
    else:
        parts += [piece.rpartition(":")[2] for piece in value.split(",")]
    return parts


async def post_notice(
    webhook_url: str, notice: Notice, secrets: tuple[str, ...], timeout_s: float
) -> None:
    """POST the notice's Slack-compatible JSON; raise WebhookFailed unless it is accepted."""
    body = json.dumps(build_body(notice, secrets))
    headers = {
        "Content-Type": "application/json",
        IDEMPOTENCY_HEADER: notice.event_key,
        "User-Agent": "durable-trader-notifier",
    }
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.post(webhook_url, data=body, headers=headers) as response,
        ):
            status = response.status
            await response.read()
    except TimeoutError:
        raise WebhookFailed(
            f"webhook did not answer within {timeout_s:g} s", retryable=True
        ) from None
    except aiohttp.ClientError as exc:
        # aiohttp's messages may quote the URL: keep the type, mask the rest.
        why = redact(str(exc), (webhook_url, *secrets))
        raise WebhookFailed(
            f"webhook unreachable: {type(exc).__name__}: {why}", retryable=True
        ) from None
    if 200 <= status < 300:
        return
    # 408 and 429 pass with time, as do 5xx; any other 4xx is the URL or the body: no retry helps.
    retryable = status >= 500 or status in (408, 429)
    raise WebhookFailed(f"webhook answered HTTP {status}", retryable=retryable)


async def send_notice(
    pool: asyncpg.Pool, target: AlertTarget | None, notice: Notice
) -> NoticeReceipt:
    """Send `notice` unless its key went out before; record the try either way.

    Returns SENT, DUPLICATE (sent earlier: nothing posted) or NO_WEBHOOK (none configured:
    recorded, never a failure). Raises WebhookFailed when the webhook refuses or is down.
    """
    webhook = target.webhook_url if target is not None else None
    secrets = target.secrets if target is not None else ()
    failed: WebhookFailed | None = None
    async with Notifications(pool).claim(notice) as claim:
        if claim.already_sent:
            logger.info("notice %s was sent before: not sent again", notice.event_key)
            return NoticeReceipt(
                event_key=notice.event_key, outcome=NoticeOutcome.DUPLICATE, attempts=claim.attempts
            )
        if webhook is None or not webhook.get_secret_value():
            await claim.tried(NO_WEBHOOK)
            logger.warning(
                "notice %s (%s) recorded, not sent: %s", notice.event_key, notice.title, NO_WEBHOOK
            )
            return NoticeReceipt(
                event_key=notice.event_key,
                outcome=NoticeOutcome.NO_WEBHOOK,
                attempts=claim.attempts,
            )
        assert target is not None
        try:
            await post_notice(webhook.get_secret_value(), notice, secrets, target.timeout_s)
        except WebhookFailed as exc:
            failed = exc
            await claim.tried(str(exc))
        else:
            await claim.sent(datetime.now(UTC))
            logger.info("notice %s sent (%s)", notice.event_key, notice.kind.value)
            return NoticeReceipt(
                event_key=notice.event_key, outcome=NoticeOutcome.SENT, attempts=claim.attempts
            )
    # The failed try is committed (attempts, last_error) before the caller hears of it.
    logger.warning("notice %s not sent: %s", notice.event_key, failed)
    raise failed


async def notify_now(
    settings: Settings,
    pool: asyncpg.Pool,
    notice: Notice,
    *,
    attempts: int = 3,
    backoff_s: float = 1.0,
) -> NoticeReceipt:
    """Send a notice from a command (no workflow): a few tries, then WebhookFailed.

    Same record as the worker's sends, so a notice under a key the worker (or an earlier run
    of the command) already sent is not sent again.
    """
    target = AlertTarget.from_settings(settings)
    attempt = 1
    while True:
        try:
            return await send_notice(pool, target, notice)
        except WebhookFailed as exc:
            if not exc.retryable or attempt >= attempts:
                raise
        await asyncio.sleep(backoff_s * 2 ** (attempt - 1))
        attempt += 1
