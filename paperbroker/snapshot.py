"""Save the whole broker to a JSON file and load it back, so a restart loses nothing.

File versions (the `version` field; a reader takes every version up to its own):

* 1 - stocks: account, orders (option orders and mleg legs included, as order records),
  stock positions, seq, clock, price paths.
* 2 - adds `options`: option positions, the exercise / assignment / expiry activities and
  the `/_sim/options/iv` overrides. A version-1 file restores with none of them.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path

from pydantic import BaseModel, Field

from paperbroker.book import Book
from paperbroker.broker import Broker
from paperbroker.errors import unprocessable
from paperbroker.models import BrokerSnapshot, OptionPositionRecord
from paperbroker.options_margin import OptionsActivity
from paperbroker.options_pricing import IvOverrides, adopt_iv_overrides, iv_overrides
from paperbroker.prices import PriceEngine

log = logging.getLogger(__name__)

SNAPSHOT_VERSION = 2


class OptionsState(BaseModel):
    """The options desk's state outside the book: positions, activities, IV overrides."""

    positions: list[OptionPositionRecord] = Field(default_factory=list)
    activities: list[OptionsActivity] = Field(default_factory=list)
    iv_base: dict[str, float] = Field(default_factory=dict)
    iv_shift: dict[str, float] = Field(default_factory=dict)


class SnapshotFile(BrokerSnapshot):
    """A snapshot as written today (version 2): the stock state plus the options state."""

    version: int = SNAPSHOT_VERSION
    options: OptionsState = Field(default_factory=OptionsState)


def take_snapshot(broker: Broker) -> SnapshotFile:
    """Capture the broker's state."""
    broker.sync()
    overrides = iv_overrides(broker.prices)
    return SnapshotFile(
        account=broker.book.account,
        orders=list(broker.book.orders.values()),
        positions=list(broker.book.positions.values()),
        last_processed=broker.last_processed,
        seq=broker.book.seq,
        clock=broker.clock.state(),
        symbols=[path.params for path in broker.prices.paths.values()],
        segments=broker.prices.segments(),
        options=OptionsState(
            positions=list(broker.options.positions.values()),
            activities=list(broker.options.activities),
            iv_base=overrides.base,
            iv_shift=overrides.shift,
        ),
    )


def write_snapshot(broker: Broker, path: Path) -> None:
    """Write the broker's state atomically to `path`."""
    text = take_snapshot(broker).model_dump_json()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".paperbroker-", suffix=".json")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def read_snapshot(path: Path) -> SnapshotFile:
    """Read a snapshot file of any version up to SNAPSHOT_VERSION (422 for a newer one)."""
    snapshot = SnapshotFile.model_validate_json(path.read_text())
    if snapshot.version > SNAPSHOT_VERSION:
        # A newer broker's file may hold state this one would silently drop.
        raise unprocessable(
            f"snapshot version {snapshot.version} is newer than this broker reads "
            f"({SNAPSHOT_VERSION})"
        )
    return snapshot


def restore_snapshot(broker: Broker, snapshot: SnapshotFile) -> None:
    """Replace the broker's state with a snapshot's (stocks, cash, clock, prices, options)."""
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
    options = snapshot.options
    adopt_iv_overrides(prices, IvOverrides(base=options.iv_base, shift=options.iv_shift))
    broker.reset(snapshot.account.cash, prices, book)
    broker.options.restore(options.positions, options.activities)
    broker.last_processed = snapshot.last_processed
    for symbol in prices.paths:
        if symbol not in broker.assets:
            broker.add_symbol(symbol)
    broker.pending.resume_all()
    if snapshot.version < 2 and any(o.asset_class == "us_option" for o in snapshot.orders):
        log.warning(
            "snapshot version %d holds option orders but no option positions: "
            "positions they opened are not restored",
            snapshot.version,
        )
