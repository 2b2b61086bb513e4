"""Benchmark the paper broker through alpaca-py: order submit and GET /v2/positions.

Starts `python -m paperbroker` as a subprocess (manual clock inside a session, no rate limit),
drives it with concurrent TradingClients, and prints requests/s with p50/p99 latency as a
table and as JSON. Usage: python bench/paperbroker_bench.py [--clients 16] [--seconds 10]
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from paperbroker.admin_client import AdminClient  # noqa: E402

SYMBOLS = ["AAPL", "MSFT", "KO", "F", "JPM", "AMD", "SPY", "QQQ"]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_phase(
    name: str,
    clients: list[TradingClient],
    seconds: float,
    call: Callable[[TradingClient, int], None],
) -> dict[str, float | int | str]:
    """Run `call` from every client for `seconds`; return throughput and latency figures."""
    latencies: list[list[float]] = [[] for _ in clients]
    errors = [0] * len(clients)
    stop = threading.Event()

    def loop(index: int) -> None:
        client, mine, n = clients[index], latencies[index], 0
        while not stop.is_set():
            started = time.perf_counter()
            try:
                call(client, index * 1_000_000 + n)
            except Exception:
                errors[index] += 1
            mine.append(time.perf_counter() - started)
            n += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(len(clients))]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - began
    samples = [s for per_client in latencies for s in per_client]
    return {
        "operation": name,
        "requests": len(samples),
        "errors": sum(errors),
        "requests_per_s": round(len(samples) / elapsed, 1),
        "p50_ms": round(_percentile(samples, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(samples, 0.99) * 1000, 2),
        "mean_ms": round(statistics.fmean(samples) * 1000, 2),
    }


def main() -> None:
    """Start the broker, run both phases, print the table and the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16, help="concurrent alpaca-py clients")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each phase")
    args = parser.parse_args()
    key_id, secret = "PK" + secrets.token_hex(8), secrets.token_hex(16)
    env = {**os.environ, "PAPERBROKER_KEY_ID": key_id, "PAPERBROKER_SECRET_KEY": secret}
    env["PYTHONPATH"] = str(ROOT)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    command = [
        sys.executable,
        "-m",
        "paperbroker",
        "--port",
        str(port),
        "--clock",
        "manual",
        "--start",
        "2024-03-05T10:30:00-05:00",
        "--rate-limit",
        "0",
        "--partial-fills",
        "0",
        "--cash",
        "1000000000",
        "--log-level",
        "WARNING",
    ]
    broker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
    try:
        admin = AdminClient(base, key_id, secret)
        deadline = time.monotonic() + 30
        while not admin.health():
            if time.monotonic() > deadline:
                raise SystemExit("paper broker did not start")
            time.sleep(0.1)
        clients = [
            TradingClient(key_id, secret, paper=True, url_override=base)
            for _ in range(args.clients)
        ]

        def submit(client: TradingClient, n: int) -> None:
            client.submit_order(
                MarketOrderRequest(
                    symbol=SYMBOLS[n % len(SYMBOLS)],
                    qty=1,
                    side=OrderSide.BUY,
                    time_in_force=TimeInForce.DAY,
                )
            )

        def positions(client: TradingClient, _n: int) -> None:
            client.get_all_positions()

        results = [
            run_phase("POST /v2/orders (market)", clients, args.seconds, submit),
            run_phase("GET /v2/positions", clients, args.seconds, positions),
        ]
    finally:
        broker.send_signal(signal.SIGTERM)
        broker.wait(timeout=30)
    header = (
        f"{'operation':<28}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}"
    )
    print(f"paper broker benchmark: {args.clients} clients, {args.seconds:g} s per operation")
    print(header)
    print("-" * len(header))
    for row in results:
        print(
            f"{row['operation']:<28}{row['requests']:>10}{row['errors']:>8}"
            f"{row['requests_per_s']:>10}{row['p50_ms']:>10}{row['p99_ms']:>10}"
        )
    print(
        json.dumps({"clients": args.clients, "seconds": args.seconds, "results": results}, indent=2)
    )


if __name__ == "__main__":
    main()
