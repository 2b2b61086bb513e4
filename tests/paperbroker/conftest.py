"""Fixtures: a manual-clock paper broker per module, reset per test, and alpaca-py clients."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient
from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker, run_paper_broker

# Tuesday 5 March 2024, 10:30 New York: a regular session with plenty of day left.
SESSION_START = datetime(2024, 3, 5, 15, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def paper_broker() -> Iterator[RunningBroker]:
    """A broker for the whole module (manual clock)."""
    with run_paper_broker(start=SESSION_START, rate_limit=0) as running:
        yield running


@pytest.fixture
def sim(paper_broker: RunningBroker) -> AdminClient:
    """The admin client, after resetting the broker to a fresh account at SESSION_START."""
    paper_broker.admin.reset(clock=SESSION_START)
    paper_broker.admin.configure(rate_limit=0, partial_fill_probability=0.0, fill_delay_ms=0)
    return paper_broker.admin


def fast_retries(client: Any) -> Any:
    """Make alpaca-py retry 429/504 without its 3 s pause (0.44 has no setting for it)."""
    client._retry_wait = 0
    return client


@pytest.fixture
def trading(paper_broker: RunningBroker, sim: AdminClient) -> TradingClient:
    """alpaca-py TradingClient pointed at the broker (fast retries)."""
    client = TradingClient(
        paper_broker.key_id,
        paper_broker.secret_key,
        paper=True,
        url_override=paper_broker.trading_url,
    )
    return fast_retries(client)


@pytest.fixture
def data(paper_broker: RunningBroker, sim: AdminClient) -> StockHistoricalDataClient:
    """alpaca-py StockHistoricalDataClient pointed at the broker."""
    return StockHistoricalDataClient(
        paper_broker.key_id, paper_broker.secret_key, url_override=paper_broker.data_url
    )


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


@pytest.fixture
def stream(paper_broker: RunningBroker, sim: AdminClient) -> Iterator[StreamRecorder]:
    """A started TradingStream recorder."""
    recorder = StreamRecorder(paper_broker).start()
    try:
        yield recorder
    finally:
        recorder.stop()
        wait_until(lambda: paper_broker.admin.state()["stream_connections"] == 0, 10)


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Poll `condition` until it holds (used only for asynchronous broker effects)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.02)
    raise AssertionError("condition not met in time")
