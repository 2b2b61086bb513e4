"""The /_sim admin API, snapshots across restarts, clock modes and the CLI."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, OrderStatus, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest

from paperbroker.admin_client import AdminClient, AdminError
from paperbroker.clock import ClockMode
from paperbroker.testing import RunningBroker, run_paper_broker, wait_until

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def test_health_needs_no_auth_but_admin_does(paper_broker: RunningBroker, sim: AdminClient) -> None:
    stranger = AdminClient(paper_broker.trading_url, "nobody", "nothing")
    assert stranger.health()
    with pytest.raises(AdminError) as error:
        stranger.state()
    assert error.value.status == 401


def test_snapshot_and_restore_keep_everything(
    trading: TradingClient, sim: AdminClient, tmp_path: Path
) -> None:
    trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=4, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    resting = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT",
            qty=1,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=100,
            client_order_id="keep-me",
        )
    )
    before = (trading.get_account().cash, trading.get_open_position("AAPL").current_price)
    path = sim.snapshot(str(tmp_path / "state.json"))
    sim.reset()
    assert trading.get_all_positions() == [] and trading.get_orders() == []
    sim.restore(path)
    assert (trading.get_account().cash, trading.get_open_position("AAPL").current_price) == before
    assert trading.get_order_by_client_id("keep-me").id == resting.id
    assert trading.get_order_by_id(resting.id).status is OrderStatus.NEW


def test_a_cancel_in_flight_survives_a_snapshot_and_restore(
    trading: TradingClient, sim: AdminClient, tmp_path: Path
) -> None:
    order = trading.submit_order(
        LimitOrderRequest(
            symbol="MSFT", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC, limit_price=100
        )
    )
    sim.configure(cancel_delay_ms=60_000)  # still pending when the snapshot is taken
    trading.cancel_order_by_id(order.id)
    path = sim.snapshot(str(tmp_path / "pending.json"))
    sim.reset()  # drops the book and restores the default delays
    assert sim.fidelity()["cancel_delay_ms"] == 50
    sim.restore(path)
    assert trading.get_order_by_id(order.id).status is OrderStatus.PENDING_CANCEL
    sim.sync()
    assert trading.get_order_by_id(order.id).status is OrderStatus.CANCELED


def test_config_rejects_bad_fidelity_values(sim: AdminClient) -> None:
    for bad in ({"cancel_delay_ms": -1}, {"leg_replace": "some"}, {"hide_held_legs": "maybe"}):
        with pytest.raises(AdminError) as error:
            sim.configure(**bad)
        assert error.value.status == 422
    sim.configure(replace_delay_ms=5, hide_held_legs="true", leg_replace="any")
    assert sim.fidelity() == {
        "cancel_delay_ms": 50,
        "replace_delay_ms": 5,
        "leg_replace": "any",
        "hide_held_legs": True,
        "skip_sibling_cancel_events": False,
    }


def test_clock_cannot_go_backwards(sim: AdminClient) -> None:
    with pytest.raises(AdminError) as error:
        sim.set_clock(datetime(2020, 1, 2, 15, 0, tzinfo=UTC))
    assert error.value.status == 422


def test_offset_clock_always_lands_in_an_open_session() -> None:
    with run_paper_broker(clock=ClockMode.OFFSET) as running:
        client = TradingClient(
            running.key_id, running.secret_key, paper=True, url_override=running.trading_url
        )
        assert client.get_clock().is_open


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_cli(port: int, state: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "paperbroker",
            "--port",
            str(port),
            "--clock",
            "manual",
            "--start",
            "2024-03-05T10:30:00-05:00",
            "--seed",
            "7",
            "--state-file",
            str(state),
            "--symbols",
            "AAPL,MSFT",
            "--partial-fills",
            "0",
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_cli_stops_on_sigterm_and_restores_its_state(tmp_path: Path) -> None:
    key_id, secret = "PK" + secrets.token_hex(8), secrets.token_hex(16)
    env = {**os.environ, "PAPERBROKER_KEY_ID": key_id, "PAPERBROKER_SECRET_KEY": secret}
    env["PYTHONPATH"] = str(ROOT)
    port, state = _free_port(), tmp_path / "broker-state.json"
    base = f"http://127.0.0.1:{port}"
    process = _start_cli(port, state, env)
    try:
        admin = AdminClient(base, key_id, secret)
        wait_until(admin.health, 30)
        client = TradingClient(key_id, secret, paper=True, url_override=base)
        order = client.submit_order(
            MarketOrderRequest(
                symbol="MSFT", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        assert [a.symbol for a in client.get_all_assets()] == ["AAPL", "MSFT"]
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
        assert process.returncode == 0, output
        assert secret not in output and state.exists()
        assert secret not in state.read_text()
        process = _start_cli(port, state, env)
        wait_until(admin.health, 30)
        assert client.get_order_by_id(order.id).status is OrderStatus.FILLED
        assert client.get_open_position("MSFT").qty == "3"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)


def test_cli_help_documents_the_options() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "paperbroker", "--help"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    for option in (
        "--clock",
        "--rate",
        "--seed",
        "--state-file",
        "--rate-limit",
        "--symbols",
        "--cancel-delay-ms",
        "--replace-delay-ms",
        "--leg-replace",
        "--hide-held-legs",
        "--skip-sibling-cancel-events",
    ):
        assert option in result.stdout
