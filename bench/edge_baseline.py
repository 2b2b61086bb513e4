"""The design this system replaces: every trade checked by a cron through its own broker calls.

Every `--period` seconds (aligned to the wall clock as cron runs a job, or from the start) one
pass goes over the book's trades one after another: GET the trade's position, GET its stop
order by id, and when the position is there but the stop no longer works, POST a new GTC sell
stop for the position's size and write its id back to the book (the old design's database).
A pass that runs past the next tick makes the job skip that tick. alpaca-py's TradingClient
as it comes (it retries a 429 three times, 3 s apart). Unknown answers change nothing.

Runs as its own process so its CPU and memory are its own:
    BASELINE_TRADING_URL=... BASELINE_KEY_ID=... BASELINE_SECRET_KEY=... \
    python -m bench.edge_baseline --book book.json --period 300 [--align wall|now]
and reports each pass and each re-submitted stop as one JSON line on stdout.
`BaselineCron` starts, kills and restarts it from the benchmark.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from alpaca.common.exceptions import APIError  # noqa: E402
from alpaca.trading.client import TradingClient  # noqa: E402
from alpaca.trading.enums import OrderSide, TimeInForce  # noqa: E402
from alpaca.trading.requests import StopOrderRequest  # noqa: E402

from broker.alpaca import to_order  # noqa: E402

URL_ENV, KEY_ENV, SECRET_ENV = "BASELINE_TRADING_URL", "BASELINE_KEY_ID", "BASELINE_SECRET_KEY"


@dataclass
class BookTrade:
    """One trade as the old design's database kept it."""

    symbol: str
    qty: str
    stop_price: str
    stop_order_id: str


def read_book(path: Path) -> list[BookTrade]:
    """The trades of a book file."""
    return [BookTrade(**t) for t in json.loads(path.read_text())["trades"]]


def write_book(path: Path, trades: list[BookTrade]) -> None:
    """Replace the book file in one step (a killed job leaves the old or the new one)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"trades": [asdict(t) for t in trades]}))
    os.replace(tmp, path)


def _say(kind: str, **fields: Any) -> None:
    sys.stdout.write(json.dumps({"at": time.time(), "kind": kind, **fields}) + "\n")
    sys.stdout.flush()


class CronGuard:
    """One pass per tick over the book, through alpaca-py, one call after another."""

    def __init__(self, client: TradingClient, book_path: Path) -> None:
        self._client = client
        self._book_path = book_path

    async def check(self, trade: BookTrade) -> str:
        """Check one trade; returns what happened (flat, ok, rescued, unknown, failed)."""
        try:
            await asyncio.to_thread(self._client.get_open_position, trade.symbol)
        except APIError as exc:
            if exc.status_code == 404:
                return "flat"
            _say("error", symbol=trade.symbol, call="position", status=exc.status_code)
            return "unknown"
        try:
            raw: Any = await asyncio.to_thread(self._client.get_order_by_id, trade.stop_order_id)
            working = to_order(raw).is_active
        except APIError as exc:
            if exc.status_code != 404:
                _say("error", symbol=trade.symbol, call="stop", status=exc.status_code)
                return "unknown"
            working = False
        if working:
            return "ok"
        request = StopOrderRequest(
            symbol=trade.symbol,
            qty=float(Decimal(trade.qty)),
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=float(Decimal(trade.stop_price)),
        )
        try:
            order: Any = await asyncio.to_thread(self._client.submit_order, request)
        except APIError as exc:
            _say("error", symbol=trade.symbol, call="submit", status=exc.status_code)
            return "failed"
        trade.stop_order_id = str(order.id)
        _say("rescued", symbol=trade.symbol, order_id=trade.stop_order_id)
        return "rescued"

    async def one_pass(self) -> None:
        """Every trade of the book, in order."""
        trades = read_book(self._book_path)
        started = time.time()
        _say("pass_start", trades=len(trades))
        outcomes: dict[str, int] = {}
        for trade in trades:
            outcome = await self.check(trade)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
            if outcome == "rescued":
                write_book(self._book_path, trades)
        _say("pass_end", seconds=round(time.time() - started, 3), outcomes=outcomes)


async def run(book_path: Path, period_s: float, align: str) -> None:
    """Tick every `period_s` (wall-clock aligned, or from now) until killed."""
    client = TradingClient(
        os.environ[KEY_ENV], os.environ[SECRET_ENV], paper=True, url_override=os.environ[URL_ENV]
    )
    guard = CronGuard(client, book_path)
    origin = time.time()
    _say("started", period_s=period_s, align=align)
    index = 0  # align "now": pass k is due at origin + k * period (the first one at once)
    while True:
        now = time.time()
        if align == "wall":
            tick = math.ceil(now / period_s) * period_s
        else:
            tick = origin + index * period_s
        await asyncio.sleep(max(0.0, tick - now))
        await guard.one_pass()
        # A pass that overran skips the ticks it ran through.
        index = max(index + 1, math.ceil((time.time() - origin) / period_s))


def main() -> None:
    """Run the cron job (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--book", type=Path, required=True, help="the trades (JSON)")
    parser.add_argument("--period", type=float, default=300.0, help="seconds between passes")
    parser.add_argument("--align", choices=("wall", "now"), default="wall")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    asyncio.run(run(args.book, args.period, args.align))


# --- controlling it from the benchmark ------------------------------------------------------


class BaselineCron:
    """The cron job as a child process: start, kill, restart; its JSON lines as they come."""

    def __init__(
        self, trading_url: str, key_id: str, secret_key: str, book_path: Path, period_s: float
    ) -> None:
        self._env = {
            **os.environ,
            URL_ENV: trading_url,
            KEY_ENV: key_id,
            SECRET_ENV: secret_key,
            "PYTHONUNBUFFERED": "1",
        }
        self.book_path = book_path
        self.period_s = period_s
        self.process: subprocess.Popen[str] | None = None
        self.events: list[dict[str, Any]] = []
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def start(self, align: str = "wall") -> float:
        """Start the job; returns the wall-clock time of the spawn."""
        at = time.time()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.edge_baseline",
                "--book",
                str(self.book_path),
                "--period",
                str(self.period_s),
                "--align",
                align,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            env=self._env,
            text=True,
        )
        process = self.process

        def read() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                try:
                    self.events.append(json.loads(line))
                except ValueError:
                    continue

        self._reader = threading.Thread(target=read, daemon=True)
        self._reader.start()
        return at

    def kill(self) -> float:
        """SIGKILL the job; returns the wall-clock time of the kill."""
        assert self.process is not None
        at = time.time()
        self.process.kill()
        self.process.wait(timeout=10)
        return at

    def stop(self) -> None:
        """Stop the job (SIGTERM, then SIGKILL)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self._reader is not None:
            self._reader.join(timeout=5)

    def of_kind(self, kind: str) -> list[dict[str, Any]]:
        """Reported lines of one kind."""
        return [e for e in list(self.events) if e.get("kind") == kind]


if __name__ == "__main__":
    main()
