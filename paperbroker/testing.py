"""Run a paper broker in-process (own thread and event loop) for tests of any suite."""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

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
