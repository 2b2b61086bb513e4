"""TradeUpdateStream: the account's one trade_updates websocket, read as OrderEvents.

A small client of our own rather than alpaca-py's TradingStream: its public run() owns a
private event loop (handlers would need a bridge back to the worker's loop), stop() fails
before that loop has started and is only noticed between 5 s receive timeouts, and a refused
key is logged and retried forever instead of raised. Frames are parsed with alpaca-py's public
TradeUpdate model, so the wire format stays the SDK's.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from decimal import Decimal
from types import TracebackType
from typing import Any, TypeVar

from alpaca.trading.models import TradeUpdate
from pydantic import BaseModel, ConfigDict, Field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, InvalidURI, WebSocketException

from broker.alpaca import is_option_item, to_order
from broker.endpoint import BrokerEndpoint
from broker.errors import AuthFailed, BrokerError
from trading.trade_models import OrderEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")
TRADE_UPDATES = "trade_updates"


class ReconnectBackoff(BaseModel):
    """Capped exponential backoff with jitter between connection attempts."""

    model_config = ConfigDict(frozen=True)

    first_delay_s: float = Field(default=1.0, gt=0)
    max_delay_s: float = Field(default=30.0, gt=0)
    # A connection that delivered an event or lasted this long was healthy: the next drop
    # starts again from first_delay_s instead of continuing the climb.
    stable_after_s: float = Field(default=30.0, ge=0)

    def delay(self, failures: int) -> float:
        """Seconds to wait after `failures` consecutive failures (>= 1): half fixed, half jitter."""
        ceiling = min(self.max_delay_s, self.first_delay_s * 2.0 ** min(max(failures, 1) - 1, 32))
        return ceiling / 2 + random.uniform(0, ceiling / 2)


def to_order_event(update: TradeUpdate) -> OrderEvent:
    """alpaca-py TradeUpdate -> OrderEvent."""
    return OrderEvent(
        event=str(getattr(update.event, "value", update.event)),
        order=to_order(update.order),
        timestamp=update.timestamp,
        price=_dec(update.price),
        qty=_dec(update.qty),
        position_qty=_dec(update.position_qty),
    )


class _WithoutFrameLogs(logging.LoggerAdapter[logging.Logger]):
    """websockets' logger minus DEBUG, whose frame dumps would print the authenticate message."""

    def isEnabledFor(self, level: int) -> bool:
        """DEBUG never; other levels as the wrapped logger says."""
        return level > logging.DEBUG and self.logger.isEnabledFor(level)


_WEBSOCKET_LOGGER = _WithoutFrameLogs(logging.getLogger("websockets.client"))


class _ProtocolError(Exception):
    """The server answered the handshake with something other than the documented reply."""


class _Closing(Exception):
    """close() was called while a step was in flight."""


# Failures after which another attempt may succeed; AuthFailed and a bad URL are not among them.
_RETRYABLE = (
    OSError,
    TimeoutError,
    WebSocketException,
    _ProtocolError,
    json.JSONDecodeError,
    UnicodeDecodeError,
)


class TradeUpdateStream:
    """The account's one trade_updates connection, iterated as OrderEvents until closed."""

    # Reconnects with backoff when the connection drops, raises AuthFailed (non-retryable) when
    # the broker refuses the keys, and ends iteration at once on close() or leaving `async with`.
    # Alpaca allows one stream per account, so it never holds two connections and has one
    # reader; it lives on one event loop (the worker's) and is not thread-safe.

    def __init__(
        self,
        endpoint: BrokerEndpoint,
        *,
        backoff: ReconnectBackoff | None = None,
        open_timeout_s: float = 10.0,
        reply_timeout_s: float = 10.0,
        close_timeout_s: float = 1.0,
        on_listening: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._endpoint = endpoint
        # Called (in the background) each time a connection is listening: events sent while
        # nobody listened are lost, so the owner can look at the broker's state again.
        self._on_listening = on_listening
        self._callbacks: set[asyncio.Task[None]] = set()
        self._backoff = backoff or ReconnectBackoff()
        self._open_timeout_s = open_timeout_s
        self._reply_timeout_s = reply_timeout_s
        self._close_timeout_s = close_timeout_s
        self._closing = asyncio.Event()
        self._connection: ClientConnection | None = None
        self._connected_at = 0.0
        self._events_on_connection = 0
        self._failures = 0
        self._has_listened = False
        self._reading = False
        self._reconnects = 0
        self._skipped = 0

    @property
    def reconnects(self) -> int:
        """How many times the stream was listening again after losing its connection."""
        return self._reconnects

    @property
    def skipped(self) -> int:
        """trade_updates frames that did not parse and were not yielded."""
        return self._skipped

    @property
    def listening(self) -> bool:
        """True while a connection is authorized and subscribed to trade_updates."""
        return self._connection is not None

    async def __aenter__(self) -> TradeUpdateStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def __aiter__(self) -> TradeUpdateStream:
        return self

    async def __anext__(self) -> OrderEvent:
        if self._reading:
            # A second reader would open a second connection, which the broker refuses.
            raise RuntimeError("TradeUpdateStream already has a reader")
        self._reading = True
        try:
            while not self._closing.is_set():
                try:
                    event = await self._unless_closing(self._receive())
                except _Closing:
                    break
                if event is not None:
                    return event
            await self._disconnect()
            raise StopAsyncIteration
        finally:
            self._reading = False

    async def close(self) -> None:
        """End iteration and close the connection (waits at most close_timeout_s)."""
        self._closing.set()
        for callback in self._callbacks:
            callback.cancel()
        await self._disconnect()

    async def _unless_closing(self, step: Coroutine[Any, Any, T]) -> T:
        # Races each await against close(), so a reader parked in recv(), in a connection
        # attempt or in a backoff sleep leaves at once instead of after a timeout.
        task = asyncio.ensure_future(step)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await asyncio.wait({task, closing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            closing.cancel()
            if not task.done():
                task.cancel()
        if task.done() and not task.cancelled():
            return task.result()
        await asyncio.wait({task})  # its cleanup closes a half-open connection
        if not task.cancelled():
            task.exception()  # mark as retrieved: the stream is closing anyway
        raise _Closing

    async def _receive(self) -> OrderEvent | None:
        connection = self._connection or await self._open()
        try:
            frame = await connection.recv()
        except ConnectionClosed as exc:
            await self._lost(connection, exc)
            return None
        return self._order_event(frame)

    async def _open(self) -> ClientConnection:
        while True:
            if self._failures:
                delay = self._backoff.delay(self._failures)
                logger.info("trade_updates: next connection attempt in %.1fs", delay)
                await asyncio.sleep(delay)
            try:
                connection = await self._connect_and_listen()
            except _RETRYABLE as exc:
                self._failures += 1
                logger.warning(
                    "trade_updates: connection attempt %d failed: %s",
                    self._failures,
                    _describe(exc),
                )
                continue
            if self._has_listened:
                self._reconnects += 1
            self._has_listened = True
            self._connection = connection
            self._connected_at = time.monotonic()
            self._events_on_connection = 0
            logger.info(
                "trade_updates: listening on %s (reconnects so far: %d)",
                self._endpoint.stream_url,
                self._reconnects,
            )
            self._listening_now()
            return connection

    def _listening_now(self) -> None:
        if self._on_listening is None:
            return

        async def notify(callback: Callable[[], Awaitable[None]]) -> None:
            await callback()

        task = asyncio.ensure_future(notify(self._on_listening))
        self._callbacks.add(task)
        task.add_done_callback(self._callbacks.discard)

    async def _connect_and_listen(self) -> ClientConnection:
        try:
            connection = await connect(
                self._endpoint.stream_url,
                open_timeout=self._open_timeout_s,
                close_timeout=self._close_timeout_s,
                logger=_WEBSOCKET_LOGGER,
            )
        except InvalidURI:
            raise BrokerError("trade_updates stream URL is not a websocket URL") from None
        except InvalidStatus as exc:
            status = exc.response.status_code
            if status in (401, 403):
                raise AuthFailed(
                    f"trade_updates stream refused the keys (HTTP {status})", status=status
                ) from None
            raise
        try:
            await self._handshake(connection)
        except BaseException:
            await connection.close()
            raise
        return connection

    async def _handshake(self, connection: ClientConnection) -> None:
        await connection.send(
            json.dumps(
                {
                    "action": "authenticate",
                    "data": {
                        "key_id": self._endpoint.key_id.get_secret_value(),
                        "secret_key": self._endpoint.secret_key.get_secret_value(),
                    },
                }
            )
        )
        stream, data = await self._reply(connection)
        if stream != "authorization":
            raise _ProtocolError(f"expected the authorization reply, got stream {stream!r}")
        if data.get("status") != "authorized":
            reason = self._redacted(str(data.get("message") or data.get("status")))
            raise AuthFailed(f"trade_updates stream refused the keys: {reason}", status=401)
        listen = {"action": "listen", "data": {"streams": [TRADE_UPDATES]}}
        await connection.send(json.dumps(listen))
        stream, data = await self._reply(connection)
        if stream != "listening" or TRADE_UPDATES not in (data.get("streams") or []):
            raise _ProtocolError(f"expected listening to trade_updates, got stream {stream!r}")

    async def _reply(self, connection: ClientConnection) -> tuple[str, dict[str, Any]]:
        async with asyncio.timeout(self._reply_timeout_s):
            message = json.loads(await connection.recv())
        if not isinstance(message, dict) or not isinstance(message.get("data"), dict):
            raise _ProtocolError("handshake reply is not a stream message")
        return str(message.get("stream")), message["data"]

    async def _lost(self, connection: ClientConnection, exc: ConnectionClosed) -> None:
        self._connection = None
        await connection.close()
        if self._closing.is_set():
            return  # closed by close(), not dropped
        healthy = (
            self._events_on_connection > 0
            or time.monotonic() - self._connected_at >= self._backoff.stable_after_s
        )
        self._failures = 1 if healthy else self._failures + 1
        logger.warning("trade_updates: connection dropped (%s); reconnecting", _describe(exc))

    async def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            await connection.close()

    def _order_event(self, frame: str | bytes) -> OrderEvent | None:
        # Paper sends JSON in binary frames, Alpaca in text frames; json.loads takes both.
        try:
            message = json.loads(frame)
        except ValueError:
            self._skipped += 1
            logger.error("trade_updates: skipped a frame that is not JSON")
            return None
        if not isinstance(message, dict) or message.get("stream") != TRADE_UPDATES:
            logger.debug("trade_updates: ignored a %s message", _stream_of(message))
            return None
        data = message.get("data")
        order = data.get("order") if isinstance(data, dict) else None
        if isinstance(data, dict) and isinstance(order, Mapping) and is_option_item(order):
            # Option orders (single legs and mleg parents) are OptionTradeWorkflow's: it reads
            # them itself, and the stock guard must never adopt or act on an option fill.
            logger.debug("trade_updates: left out an option order's %s", data.get("event"))
            return None
        try:
            event = to_order_event(TradeUpdate.model_validate(data))
        except ValueError as exc:
            self._skipped += 1
            order = data.get("order") if isinstance(data, dict) else None
            logger.error(
                "trade_updates: skipped an unreadable %s event for %s: %s",
                data.get("event") if isinstance(data, dict) else None,
                order.get("client_order_id") if isinstance(order, dict) else None,
                _describe(exc),
            )
            return None
        self._events_on_connection += 1
        return event

    def _redacted(self, text: str) -> str:
        for secret in (self._endpoint.key_id, self._endpoint.secret_key):
            value = secret.get_secret_value()
            if value:
                text = text.replace(value, "***")
        return text[:200]


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {str(exc)[:200]}"


def _stream_of(message: Any) -> str:
    return str(message.get("stream")) if isinstance(message, dict) else type(message).__name__


def _dec(value: float | None) -> Decimal | None:
    return None if value is None else Decimal(str(value))
