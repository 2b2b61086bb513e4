"""CLI: `python -m paperbroker --port 8765 --clock offset --seed 7 --state-file state.json`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path

from paperbroker.assets import DEFAULT_UNIVERSE
from paperbroker.clock import ClockMode
from paperbroker.config import BrokerConfig, credentials_from_env
from paperbroker.fidelity import LegReplace
from paperbroker.server import PaperBrokerServer


def _enum_option(
    parser: argparse.ArgumentParser, flag: str, default: StrEnum, help_text: str
) -> None:
    """An option whose values are the members of `default`'s enum."""
    parser.add_argument(
        flag, choices=[m.value for m in type(default)], default=default.value, help=help_text
    )


def build_parser() -> argparse.ArgumentParser:
    """Return the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="python -m paperbroker",
        description=(
            "Local Alpaca-compatible paper broker (trading REST under /v2, market data under "
            "/v2/stocks, trade_updates websocket at /stream, admin API under /_sim). "
            "Accepted credentials come from PAPERBROKER_KEY_ID and PAPERBROKER_SECRET_KEY."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument("--port", type=int, default=8765, help="port to bind (0 = any free port)")
    _enum_option(
        parser,
        "--clock",
        ClockMode.REAL,
        "real: wall time; offset: wall time shifted into the most recent session when the "
        "market is closed; accelerated: --rate x wall speed; manual: only /_sim/clock moves it",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="speed of the accelerated clock")
    parser.add_argument("--start", help="ISO start time for manual/accelerated clocks")
    parser.add_argument("--seed", type=int, default=7, help="seed of price paths and fills")
    parser.add_argument("--state-file", type=Path, help="snapshot restored at start, saved at stop")
    parser.add_argument(
        "--rate-limit", type=int, default=200, help="requests/min per key (0 = off)"
    )
    parser.add_argument(
        "--symbols", default=",".join(DEFAULT_UNIVERSE), help="comma-separated symbols to price"
    )
    parser.add_argument("--cash", default="100000", help="starting cash")
    parser.add_argument("--volatility", type=float, default=0.3, help="annualised volatility")
    parser.add_argument("--drift", type=float, default=0.0, help="annualised drift")
    parser.add_argument("--spread-bps", type=float, default=2.0, help="quoted spread in bps")
    parser.add_argument(
        "--partial-fills", type=float, default=0.1, help="probability that a fill is partial"
    )
    parser.add_argument("--fill-delay-ms", type=int, default=0, help="routing delay of new orders")
    parser.add_argument(
        "--cancel-delay-ms",
        type=int,
        default=50,
        help="how long a cancelled order stays pending_cancel (a fill meanwhile wins)",
    )
    parser.add_argument(
        "--replace-delay-ms",
        type=int,
        default=50,
        help="how long a replaced order stays pending_replace before replaced/rejected",
    )
    _enum_option(
        parser,
        "--leg-replace",
        LegReplace.PRICES,
        "prices: a bracket/OCO leg's replace may change only limit/stop price and OTO "
        "orders cannot be replaced (Alpaca's docs); any: replace them like simple orders",
    )
    parser.add_argument(
        "--hide-held-legs",
        action="store_true",
        help="leave held legs out of GET /v2/orders?status=open, as field reports describe",
    )
    parser.add_argument(
        "--skip-sibling-cancel-events",
        action="store_true",
        help="do not stream `canceled` for group members cancelled by another member's end",
    )
    parser.add_argument(
        "--replay-csv", type=Path, help="bars CSV (symbol,timestamp,o,h,l,c,volume)"
    )
    parser.add_argument(
        "--options-level",
        type=int,
        choices=range(4),
        default=3,
        help="the account's options trading level (0 disabled .. 3 spreads; Alpaca's levels)",
    )
    parser.add_argument("--log-level", default="INFO", help="logging level")
    return parser


def config_from_args(args: argparse.Namespace) -> BrokerConfig:
    """Turn parsed arguments (plus env credentials) into a BrokerConfig."""
    key_id, secret_key = credentials_from_env()
    return BrokerConfig(
        key_id=key_id,
        secret_key=secret_key,
        host=args.host,
        port=args.port,
        clock=ClockMode(args.clock),
        rate=args.rate,
        start=datetime.fromisoformat(args.start) if args.start else None,
        seed=args.seed,
        state_file=args.state_file,
        rate_limit=args.rate_limit,
        symbols=tuple(s.strip().upper() for s in args.symbols.split(",") if s.strip()),
        cash=Decimal(args.cash),
        volatility=args.volatility,
        drift=args.drift,
        spread_bps=args.spread_bps,
        partial_fill_probability=args.partial_fills,
        fill_delay_ms=args.fill_delay_ms,
        cancel_delay_ms=args.cancel_delay_ms,
        replace_delay_ms=args.replace_delay_ms,
        leg_replace=LegReplace(args.leg_replace),
        hide_held_legs=args.hide_held_legs,
        skip_sibling_cancel_events=args.skip_sibling_cancel_events,
        replay_csv=args.replay_csv,
        options_level=args.options_level,
    )


async def serve(config: BrokerConfig) -> None:
    """Run until SIGTERM or SIGINT, then stop cleanly (saving state if configured)."""
    server = PaperBrokerServer(config)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await server.start()
    print(f"paper broker ready on http://{config.host}:{server.port} (clock {config.clock.value})")
    await stop.wait()
    await server.stop()
    print("paper broker stopped")


def main() -> None:
    """Entry point."""
    args = build_parser().parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    asyncio.run(serve(config_from_args(args)))


if __name__ == "__main__":
    main()
