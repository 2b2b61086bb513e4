"""Option state across /_sim/snapshot + /_sim/restore and a --state-file restart, via alpaca-py.

The broker's manual clock starts at SESSION_START (Tuesday 2024-03-05, 10:30 New York);
the contracts expire on Friday 2024-03-08.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.option import OptionHistoricalDataClient
from alpaca.data.requests import OptionSnapshotRequest
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import (
    AssetClass,
    OrderClass,
    OrderSide,
    OrderStatus,
    QueryOrderStatus,
    TimeInForce,
)
from alpaca.trading.requests import (
    GetOrderByIdRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    OptionLegRequest,
)

from paperbroker.admin_client import AdminClient, AdminError
from paperbroker.testing import RunningBroker, wait_until
from tests.paperbroker.test_options_orders import (
    AT_THE_MONEY_CALL,
    LONG_CALL,
    LONG_PUT,
    SHORT_CALL,
    SHORT_PUT,
    iron_condor,
    positions_by_symbol,
)

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]

VERTICAL_LONG = "SPY240308C00515000"
VERTICAL_SHORT = "SPY240308C00525000"


@pytest.fixture
def options(paper_broker: RunningBroker, sim: AdminClient) -> OptionHistoricalDataClient:
    """alpaca-py OptionHistoricalDataClient pointed at the broker."""
    return OptionHistoricalDataClient(
        paper_broker.key_id, paper_broker.secret_key, url_override=paper_broker.data_url
    )


def call_vertical(limit: float) -> LimitOrderRequest:
    """Buy the 515 call, sell the 525 call, at a net debit limit."""
    legs = [
        OptionLegRequest(symbol=VERTICAL_LONG, ratio_qty=1, side=OrderSide.BUY),
        OptionLegRequest(symbol=VERTICAL_SHORT, ratio_qty=1, side=OrderSide.SELL),
    ]
    return LimitOrderRequest(
        qty=1,
        order_class=OrderClass.MLEG,
        legs=legs,
        limit_price=limit,
        time_in_force=TimeInForce.DAY,
    )


def account_view(trading: TradingClient) -> dict[str, Any]:
    """What a user reads of the account: cash, equity and every buying power."""
    account = trading.get_account()
    return {
        "cash": account.cash,
        "equity": account.equity,
        "buying_power": account.buying_power,
        "options_buying_power": account.options_buying_power,
        "long_market_value": account.long_market_value,
        "short_market_value": account.short_market_value,
    }


def broker_view(trading: TradingClient) -> dict[str, Any]:
    """Every position and every order (nested legs) as alpaca-py parses them, plus the account."""
    orders = trading.get_orders(
        GetOrdersRequest(status=QueryOrderStatus.ALL, nested=True, limit=500)
    )
    return {
        "positions": sorted(
            (p.model_dump() for p in trading.get_all_positions()), key=lambda p: p["symbol"]
        ),
        "orders": [o.model_dump() for o in orders],
        "account": account_view(trading),
    }


def spy_call_iv(options: OptionHistoricalDataClient) -> float:
    """The at-the-money call's implied volatility from the options snapshot."""
    snapshots: Any = options.get_option_snapshot(
        OptionSnapshotRequest(symbol_or_symbols=[AT_THE_MONEY_CALL])
    )
    return float(snapshots[AT_THE_MONEY_CALL].implied_volatility)


def test_option_positions_orders_and_iv_survive_snapshot_and_restore(
    trading: TradingClient,
    sim: AdminClient,
    options: OptionHistoricalDataClient,
    tmp_path: Path,
) -> None:
    condor = trading.submit_order(iron_condor(1, limit=1.00))  # marketable: fills
    call = trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    working_condor = trading.submit_order(iron_condor(1, limit=-9.50))  # a 9.50 credit: waits
    working_vertical = trading.submit_order(call_vertical(limit=0.01))  # waits for a 0.01 debit
    sim.sync()
    base_iv = spy_call_iv(options)
    sim.set_option_iv("SPY", iv=0.45)
    raised_iv = spy_call_iv(options)
    assert raised_iv > base_iv
    before = broker_view(trading)
    assert {s: q for s, q in positions_by_symbol(trading).items()} == {
        LONG_PUT: 1,
        SHORT_PUT: -1,
        SHORT_CALL: -1,
        LONG_CALL: 1,
        AT_THE_MONEY_CALL: 2,
    }

    path = sim.snapshot(str(tmp_path / "options.json"))
    sim.reset()
    assert trading.get_all_positions() == [] and trading.get_orders() == []
    assert spy_call_iv(options) == pytest.approx(base_iv)  # a reset drops the override
    sim.restore(path)

    assert broker_view(trading) == before
    assert spy_call_iv(options) == pytest.approx(raised_iv)  # a restore keeps it
    long_call = trading.get_open_position(AT_THE_MONEY_CALL)
    assert long_call.asset_class is AssetClass.US_OPTION and Decimal(long_call.qty) == 2
    paid = trading.get_order_by_id(call.id).filled_avg_price
    assert Decimal(str(long_call.avg_entry_price)) == Decimal(str(paid))
    for order_id in (condor.id, call.id):
        assert trading.get_order_by_id(order_id).status is OrderStatus.FILLED
    open_orders = trading.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert {o.id for o in open_orders} == {working_condor.id, working_vertical.id}
    parent = trading.get_order_by_id(working_condor.id, GetOrderByIdRequest(nested=True))
    assert parent.order_class is OrderClass.MLEG and parent.status is OrderStatus.NEW
    assert parent.legs is not None
    assert {leg.symbol for leg in parent.legs} == {LONG_PUT, SHORT_PUT, SHORT_CALL, LONG_CALL}
    assert all(leg.status is OrderStatus.NEW for leg in parent.legs)

    # The restored working orders still work: one cancels, the other fills when marketable.
    trading.cancel_order_by_id(working_condor.id)
    sim.sync()
    cancelled = trading.get_order_by_id(working_condor.id, GetOrderByIdRequest(nested=True))
    assert cancelled.status is OrderStatus.CANCELED
    sim.set_price("SPY", price=450, volatility=0)  # both calls worthless: the debit is 0.01
    sim.advance(60)  # option limits are checked when the clock moves
    filled = trading.get_order_by_id(working_vertical.id, GetOrderByIdRequest(nested=True))
    assert filled.status is OrderStatus.FILLED
    held = positions_by_symbol(trading)
    assert (held[VERTICAL_LONG], held[VERTICAL_SHORT]) == (1, -1)


def test_restored_buying_power_counts_the_restored_option_commitments(
    trading: TradingClient, sim: AdminClient, tmp_path: Path
) -> None:
    sim.reset(cash=3_000)
    trading.submit_order(iron_condor(1, limit=1.00))  # the condor's max loss is held back
    sim.sync()
    trading.submit_order(call_vertical(limit=0.01))  # a working debit is held back too
    sim.sync()
    before = account_view(trading)
    path = sim.snapshot(str(tmp_path / "power.json"))
    sim.reset(cash=3_000)
    sim.restore(path)
    assert account_view(trading) == before
    # The commitments still bind: three condors at a 0.50 credit need 3 x 1000 - 150, which
    # the fresh 3,000 account would have, but not one holding a condor and a working debit.
    with pytest.raises(APIError) as refused:
        trading.submit_order(iron_condor(3, limit=-0.50))
    assert "insufficient options buying power" in str(refused.value)


def test_expiry_activities_are_kept_and_an_exercised_position_stays_gone(
    trading: TradingClient, sim: AdminClient, tmp_path: Path
) -> None:
    trading.submit_order(
        MarketOrderRequest(
            symbol=AT_THE_MONEY_CALL, qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
        )
    )
    sim.sync()
    trading.exercise_options_position(AT_THE_MONEY_CALL)
    path = Path(sim.snapshot(str(tmp_path / "exercised.json")))
    saved = json.loads(path.read_text())
    assert saved["version"] == 2
    assert [a["activity_type"] for a in saved["options"]["activities"]] == ["OPEXC", "OPTRD"]
    sim.reset()
    sim.restore(str(path))
    assert positions_by_symbol(trading) == {"SPY": Decimal(100)}
    again = json.loads(Path(sim.snapshot(str(tmp_path / "again.json"))).read_text())
    assert again["options"]["activities"] == saved["options"]["activities"]


def test_a_version_1_snapshot_without_options_restores(
    trading: TradingClient, sim: AdminClient, tmp_path: Path
) -> None:
    stock = trading.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    sim.sync()
    before = broker_view(trading)
    path = Path(sim.snapshot(str(tmp_path / "current.json")))
    old = json.loads(path.read_text())
    del old["options"]
    old["version"] = 1
    old_path = tmp_path / "version-1.json"
    old_path.write_text(json.dumps(old))
    sim.reset()
    sim.restore(str(old_path))
    assert broker_view(trading) == before
    assert trading.get_order_by_id(stock.id).status is OrderStatus.FILLED


def test_a_snapshot_from_a_newer_broker_is_refused(sim: AdminClient, tmp_path: Path) -> None:
    path = Path(sim.snapshot(str(tmp_path / "current.json")))
    newer = json.loads(path.read_text())
    newer["version"] = 3
    path.write_text(json.dumps(newer))
    with pytest.raises(AdminError) as refused:
        sim.restore(str(path))
    assert refused.value.status == 422
    assert "version 3" in str(refused.value)


def test_cli_restart_keeps_option_positions_and_iv(tmp_path: Path) -> None:
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
                symbol=AT_THE_MONEY_CALL, qty=2, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        admin.sync()
        admin.set_option_iv("SPY", iv=0.5)
        options = OptionHistoricalDataClient(key_id, secret, url_override=base)
        raised = spy_call_iv(options)
        before = broker_view(client)
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=30)[0].decode()
        assert process.returncode == 0, output
        process = _start_cli(port, state, env)
        wait_until(admin.health, 30)
        assert broker_view(client) == before
        assert client.get_order_by_id(order.id).status is OrderStatus.FILLED
        assert Decimal(client.get_open_position(AT_THE_MONEY_CALL).qty) == 2
        assert spy_call_iv(options) == pytest.approx(raised)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=30)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start_cli(port: int, state: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    """`python -m paperbroker` on SPY with a state file, manual clock at the session start."""
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
            "SPY",
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
