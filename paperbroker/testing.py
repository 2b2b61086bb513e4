"""Run a paper broker in-process (own thread and event loop) for tests of any suite."""

from __future__ import annotations

import asyncio
import queue
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from pydantic import SecretStr

from paperbroker.admin_client import AdminClient
from paperbroker.clock import ClockMode
from paperbroker.config import BrokerConfig
from paperbroker.server import PaperBrokerServer

START_TIMEOUT = 30.0


@dataclass
class RunningBroker:
    """Where a running test broker listens, the credentials it accepts and its admin client."""

    trading_url: str
    data_url: str
    stream_url: str
    key_id: str
    secret_key: str
    admin: AdminClient
    server: PaperBrokerServer


@contextmanager
def run_paper_broker(**overrides: Any) -> Iterator[RunningBroker]:
    """Start a broker on 127.0.0.1 with an ephemeral port and fresh random credentials.

    Defaults to the manual clock at a recent regular session; any BrokerConfig field may be
    overridden (e.g. clock=ClockMode.REAL, start=datetime(...), rate_limit=0, seed=3).
    """
    key_id = "PK" + secrets.token_hex(9).upper()
    secret_key = secrets.token_hex(20)
    settings: dict[str, Any] = {"host": "127.0.0.1", "port": 0, "clock": ClockMode.MANUAL}
    settings.update(overrides)
    config = BrokerConfig(key_id=SecretStr(key_id), secret_key=SecretStr(secret_key), **settings)
    server = PaperBrokerServer(config)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    failure: list[BaseException] = []

    def serve() -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(server.start())
        except BaseException as exc:
            failure.append(exc)
            started.set()
            return
        started.set()
        loop.run_forever()
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()

    thread = threading.Thread(target=serve, name="paperbroker", daemon=True)
    thread.start()
    if not started.wait(START_TIMEOUT) or failure:
        raise RuntimeError("paper broker did not start") from (failure[0] if failure else None)
    base = f"http://127.0.0.1:{server.port}"
    admin = AdminClient(base, key_id, secret_key)
    try:
        yield RunningBroker(
            trading_url=base,
            data_url=base,
            stream_url=f"ws://127.0.0.1:{server.port}/stream",
            key_id=key_id,
            secret_key=secret_key,
            admin=admin,
            server=server,
        )
    finally:
        admin.close()
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)


class StreamRecorder:
    """Runs alpaca-py's TradingStream in a thread and records every TradeUpdate."""

    def __init__(self, broker: RunningBroker) -> None:
        self._broker = broker
        self.stream = TradingStream(
            broker.key_id, broker.secret_key, paper=True, url_override=broker.stream_url
        )
        self.updates: queue.Queue[TradeUpdate] = queue.Queue()
        self.seen: list[TradeUpdate] = []
        self.stream.subscribe_trade_updates(self._on_update)
        self._thread = threading.Thread(target=self.stream.run, daemon=True)

    async def _on_update(self, update: TradeUpdate) -> None:
        self.updates.put(update)

    def start(self, timeout: float = 10.0) -> StreamRecorder:
        """Start the stream and wait until the broker sees it listening."""
        self._thread.start()
        wait_until(lambda: self._broker.admin.state()["stream_listening"] >= 1, timeout)
        return self

    def wait_for(
        self, predicate: Callable[[TradeUpdate], bool], timeout: float = 5.0
    ) -> TradeUpdate:
        """Return the first recorded (or next) update matching `predicate`."""
        for update in self.seen:
            if predicate(update):
                return update
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                update = self.updates.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                break
            self.seen.append(update)
            if predicate(update):
                return update
        raise AssertionError(
            f"no matching trade update; saw {[self.describe(u) for u in self.seen]}"
        )

    def drain(self, settle: float = 0.3) -> list[TradeUpdate]:
        """Collect everything that arrives within `settle` seconds."""
        deadline = time.monotonic() + settle
        while time.monotonic() < deadline:
            try:
                self.seen.append(self.updates.get(timeout=0.05))
            except queue.Empty:
                continue
        return self.seen

    @staticmethod
    def describe(update: TradeUpdate) -> str:
        """Short text for assertion messages."""
        return f"{update.event}:{update.order.symbol}:{update.order.side}:{update.order.status}"

    def stop(self) -> None:
        """Stop the stream thread (dropping the socket so it notices at once)."""
        if self._thread.is_alive():
            self.stream.stop()
            self._broker.admin.drop_streams()
            self._thread.join(timeout=10)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds (used only for asynchronous broker effects)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
