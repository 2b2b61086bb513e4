"""Save the whole broker to a JSON file and load it back, so a restart loses nothing."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from paperbroker.book import Book
from paperbroker.broker import Broker
from paperbroker.models import BrokerSnapshot
from paperbroker.prices import PriceEngine


def take_snapshot(broker: Broker) -> BrokerSnapshot:
    """Capture the broker's state."""
    broker.sync()
    return BrokerSnapshot(
        account=broker.book.account,
        orders=list(broker.book.orders.values()),
        positions=list(broker.book.positions.values()),
        last_processed=broker.last_processed,
        seq=broker.book.seq,
        clock=broker.clock.state(),
        symbols=[path.params for path in broker.prices.paths.values()],
        segments=broker.prices.segments(),
    )


def write_snapshot(broker: Broker, path: Path) -> None:
    """Write the broker's state atomically to `path`."""
    text = take_snapshot(broker).model_dump_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".paperbroker-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_snapshot(path: Path) -> BrokerSnapshot:
    """Read a snapshot file."""
    return BrokerSnapshot.model_validate_json(path.read_text())


def restore_snapshot(broker: Broker, snapshot: BrokerSnapshot) -> None:
    """Replace the broker's state with a snapshot's (clock, prices, orders, positions, cash)."""
    broker.clock.restore(snapshot.clock)
    prices = PriceEngine(
        list(snapshot.symbols), broker.seed, snapshot.last_processed, broker.calendar
    )
    for symbol, segments in snapshot.segments.items():
        if symbol in prices.paths:
            prices.paths[symbol].restore_segments(segments)
    book = Book(account=snapshot.account)
    for order in sorted(snapshot.orders, key=lambda o: o.seq):
        book.orders[order.id] = order
        book.client_ids.setdefault(order.client_order_id, order.id)
        book.track_open(order)
    book.positions = {p.symbol: p for p in snapshot.positions}
    book.seq = snapshot.seq
    broker.reset(snapshot.account.cash, prices, book)
    broker.last_processed = snapshot.last_processed
    for symbol in prices.paths:
        if symbol not in broker.assets:
            broker.add_symbol(symbol)
    broker.pending.resume_all()
