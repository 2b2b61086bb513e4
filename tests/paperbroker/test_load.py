"""50 concurrent alpaca-py clients place, replace and cancel orders; the books must stay exact."""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import LimitOrderRequest, MarketOrderRequest, ReplaceOrderRequest

from paperbroker.assets import DEFAULT_UNIVERSE
from paperbroker.clock import ClockMode
from paperbroker.testing import RunningBroker, StreamRecorder, run_paper_broker, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CLIENTS = 50
# 30 s in the suite; PAPERBROKER_LOAD_SECONDS=600 (say) makes it a soak.
LOAD_SECONDS = float(os.environ.get("PAPERBROKER_LOAD_SECONDS", "30"))
SYMBOLS = ["AAPL", "MSFT", "KO", "F", "JPM", "AMD", "SPY", "QQQ"]


class Tally:
    """Thread-safe outcome counts and problems seen by the workers."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.problems: list[str] = []

    def count(self, outcome: str) -> None:
        """Count one outcome."""
        with self.lock:
            self.outcomes[outcome] += 1

    def problem(self, text: str) -> None:
        """Record something that must not happen."""
        with self.lock:
            self.problems.append(text)


def _one_round(client: TradingClient, rng: random.Random, tally: Tally) -> None:
    symbol = rng.choice(SYMBOLS)
    base = Decimal(DEFAULT_UNIVERSE[symbol][2])
    roll = rng.random()
    if roll < 0.35:
        client.submit_order(
            MarketOrderRequest(
                symbol=symbol,
                qty=rng.randint(1, 3),
                side=OrderSide.BUY,
                time_in_force=TimeInForce.DAY,
            )
        )
        tally.count("market_buy")
    elif roll < 0.5:
        client.submit_order(
            MarketOrderRequest(
                symbol=symbol, qty=1, side=OrderSide.SELL, time_in_force=TimeInForce.DAY
            )
        )
        tally.count("market_sell")
    else:
        side = OrderSide.BUY if roll < 0.8 else OrderSide.SELL
        factor = Decimal("0.7") if side is OrderSide.BUY else Decimal("1.4")
        price = float((base * factor).quantize(Decimal("0.01")))
        order = client.submit_order(
            LimitOrderRequest(
                symbol=symbol, qty=1, side=side, time_in_force=TimeInForce.GTC, limit_price=price
            )
        )
        replaced = client.replace_order_by_id(
            order.id, ReplaceOrderRequest(limit_price=round(price * 0.99, 2))
        )
        client.cancel_order_by_id(replaced.id)
        tally.count("place_replace_cancel")


def _worker(broker: RunningBroker, seed: int, stop: threading.Event, tally: Tally) -> None:
    client = TradingClient(
        broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
    )
    rng = random.Random(seed)
    while not stop.is_set():
        try:
            _one_round(client, rng, tally)
        except APIError as error:
            status = error.status_code or 0
            tally.count(f"http_{status}")
            if status >= 500:
                tally.problem(f"{status}: {error}")
        except Exception as error:
            tally.problem(repr(error))


def _monitor(client: TradingClient, stop: threading.Event, tally: Tally) -> None:
    while not stop.is_set():
        try:
            for position in client.get_all_positions():
                qty, available = Decimal(position.qty), Decimal(position.qty_available or "0")
                held = abs(qty) - abs(available)
                if held > abs(qty) or held < 0:
                    tally.problem(f"{position.symbol}: held {held} exceeds position {qty}")
        except APIError as error:
            tally.problem(f"monitor: {error}")
        time.sleep(0.25)


def test_fifty_clients_keep_positions_equal_to_fills() -> None:
    with run_paper_broker(
        clock=ClockMode.OFFSET, rate_limit=0, cash=Decimal(50_000_000), partial_fill_probability=0.1
    ) as broker:
        recorder = StreamRecorder(broker).start()
        client = TradingClient(
            broker.key_id, broker.secret_key, paper=True, url_override=broker.trading_url
        )
        stop, tally = threading.Event(), Tally()
        threads = [
            threading.Thread(target=_worker, args=(broker, i, stop, tally)) for i in range(CLIENTS)
        ]
        threads.append(threading.Thread(target=_monitor, args=(client, stop, tally)))
        for thread in threads:
            thread.start()
        time.sleep(LOAD_SECONDS)
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
        client.cancel_orders()
        wait_until(lambda: client.get_orders() == [], 10)
        expected = {p.symbol: Decimal(p.qty) for p in client.get_all_positions()}
        filled: dict[str, Decimal] = defaultdict(Decimal)

        def fills_match() -> bool:
            filled.clear()
            for update in recorder.drain(0.3):
                if update.event in ("fill", "partial_fill"):
                    sign = 1 if update.order.side is OrderSide.BUY else -1
                    filled[update.order.symbol] += sign * Decimal(str(update.qty))
            return {s: q for s, q in filled.items() if q} == expected

        try:
            wait_until(fills_match, 20)
        finally:
            recorder.stop()
        assert tally.problems == []
        assert tally.outcomes["market_buy"] > CLIENTS
        assert tally.outcomes["place_replace_cancel"] > CLIENTS
