"""Fixtures: alpaca-py clients on the root conftest's paper broker (per module, reset per test)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from alpaca.data.historical.stock import StockHistoricalDataClient
from alpaca.trading.client import TradingClient

from paperbroker.admin_client import AdminClient
from paperbroker.testing import RunningBroker, StreamRecorder, wait_until


@pytest.fixture
def sim(broker_admin: AdminClient) -> AdminClient:
    """The admin client, after resetting the broker to a fresh account at SESSION_START."""
    return broker_admin


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


@pytest.fixture
def stream(paper_broker: RunningBroker, sim: AdminClient) -> Iterator[StreamRecorder]:
    """A started TradingStream recorder."""
    recorder = StreamRecorder(paper_broker).start()
    try:
        yield recorder
    finally:
        recorder.stop()
        wait_until(lambda: paper_broker.admin.state()["stream_connections"] == 0, 10)
