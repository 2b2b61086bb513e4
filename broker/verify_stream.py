"""The stream check of `broker verify`: our TradeUpdateStream against the account's stream.

It authorizes and listens exactly as broker-sync does, places one far buy limit, cancels it and
expects the `new` (while the market is open) and `canceled` events for it, read through
alpaca-py's TradeUpdate model. Alpaca allows one connection per account: when broker-sync
already holds it, the check is skipped with that reason instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from broker.errors import AuthFailed
from broker.stream import ReconnectBackoff, TradeUpdateStream
from broker.verify_session import (
    NEVER_FILLS_BUY,
    Check,
    Observed,
    Skip,
    VerifySession,
    verdict_of,
)
from trading.broker_models import OrderSide, OrderStatus, OrderType
from trading.trade_models import OrderEvent

LISTEN_TIMEOUT_S = 10.0
EVENT_TIMEOUT_S = 10.0
STREAM_LOGGER = "broker.stream"


class _Captured(logging.Handler):
    """Keeps the stream client's warnings (connection failures) to explain a failure."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        """Remember the formatted message."""
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_stream_log() -> Iterator[_Captured]:
    """The stream client's log goes to the check's observation, not to the terminal."""
    stream_logger = logging.getLogger(STREAM_LOGGER)
    handler = _Captured()
    level, propagate = stream_logger.level, stream_logger.propagate
    stream_logger.addHandler(handler)
    stream_logger.setLevel(logging.INFO)
    stream_logger.propagate = False
    try:
        yield handler
    finally:
        stream_logger.removeHandler(handler)
        stream_logger.setLevel(level)
        stream_logger.propagate = propagate


async def _until(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def stream_events(session: VerifySession) -> Observed:
    """Handshake, then the `new` and `canceled` events of a test order."""
    return asyncio.run(_stream_events(session))


async def _stream_events(session: VerifySession) -> Observed:
    events: list[OrderEvent] = []
    with _captured_stream_log() as log:
        stream = TradeUpdateStream(
            session.endpoint,
            backoff=ReconnectBackoff(first_delay_s=0.5, max_delay_s=2.0),
            open_timeout_s=5.0,
            reply_timeout_s=5.0,
        )

        async def read() -> None:
            async for event in stream:
                events.append(event)

        reader = asyncio.create_task(read())
        try:
            await _until(lambda: stream.listening or reader.done(), LISTEN_TIMEOUT_S)
            if reader.done():
                error = reader.exception()
                if isinstance(error, AuthFailed):
                    return verdict_of(False, f"refused: {error.message}")
                return verdict_of(False, f"the stream ended: {error!r}")
            if not stream.listening:
                if any("429" in message for message in log.messages):
                    raise Skip(
                        "another connection holds the account's one trade_updates stream "
                        "(is broker-sync running?); stop it to check the stream"
                    )
                last = log.messages[-1] if log.messages else "no answer"
                return verdict_of(False, f"not listening after {LISTEN_TIMEOUT_S:.0f} s: {last}")
            return await _order_events(session, stream, events)
        finally:
            await stream.close()
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader


async def _order_events(
    session: VerifySession, stream: TradeUpdateStream, events: list[OrderEvent]
) -> Observed:
    intent = session.intent(OrderSide.BUY, OrderType.LIMIT, limit=session.price(NEVER_FILLS_BUY))
    order = await asyncio.to_thread(session.place, intent)

    def named(event_name: str) -> list[OrderEvent]:
        return [e for e in events if e.order.id == order.id and e.event == event_name]

    if session.market_open:
        await _until(lambda: bool(named("new")), EVENT_TIMEOUT_S)
    await asyncio.to_thread(session.gateway.cancel_order, order.id)
    await _until(lambda: bool(named("canceled")), EVENT_TIMEOUT_S)
    problems = []
    if session.market_open and not named("new"):
        problems.append("no 'new' event")
    if not named("canceled"):
        problems.append("no 'canceled' event")
    elif any(e.order.status is not OrderStatus.CANCELED for e in named("canceled")):
        problems.append("the 'canceled' event's order is not canceled")
    if stream.skipped:
        problems.append(f"{stream.skipped} trade_updates frames alpaca-py could not read")
    seen = [e.event for e in events if e.order.id == order.id]
    observed = f"authorized and listening; test order events: {', '.join(seen) or 'none'}"
    return verdict_of(not problems, "; ".join([observed, *problems]))


STREAM_CHECK = Check(
    "stream_handshake_and_events",
    "trade_updates authorizes, listens and streams order events alpaca-py can read",
    "authorized + listening within 10 s; 'new' and 'canceled' for a test order",
    "broker-sync's one listener: trades hear of fills and cancels within seconds",
    stream_events,
)
