"""`starter.py backtest` end to end: tests/data/backtest_orb.csv replayed through an in-process
paper broker, read through alpaca-py, with a known answer.

The CSV (minute bars 09:30-10:14 New York on 2024-03-05 and 2024-03-06, i.e. 14:30-15:14 UTC)
is built so each bar closes at the next bar's open and its high/low are the larger/smaller of
the two: the paper broker's replay serves exactly such bars, so the CSV is what the strategy
sees. ORB defaults: a 15-minute range (09:30-09:44), a breakout is a close above the range
high on volume above the day's average, stop = range low, target = entry + 2R. Risk: 0.5 % of
equity per trade, at most 5 % of equity per symbol. Slippage 10 bps on entries, stops and the
end-of-data close; none on the take-profit (a limit).

AAA, 2024-03-05: range 20.00-20.50; the 09:46 bar closes 20.60 on 3,000 shares (average 1,000)
-> signal at 09:47, entry 20.60, stop 20.00, target 20.60 + 2 * 0.60 = 21.80.
  Size: 500 / 0.60 = 833, cut by the allocation cap to floor(5,000 / 20.60) = 242.
  Fill: 09:47 open 20.60 * 1.001 = 20.6206. The 09:51 bar (21.70 -> 21.90) reaches the target:
  exit 21.80. P&L (21.80 - 20.6206) * 242 = 285.4148; R = 285.4148 / (0.6206 * 242) = 1.9004.
BBB, 2024-03-05: range 49.50-50.00; the 09:49 bar closes 50.20 on 2,000 -> signal at 09:50,
  entry 50.20, stop 49.50, target 51.60. Equity then: 100,000 + AAA at the 09:49 close
  (21.50 - 20.6206) * 242 = 100,212.8148; cap 5,010.64 / 50.20 -> 99 shares (the risk budget
  would allow 715). Fill 50.20 * 1.001 = 50.2502. The 09:52 bar (49.70 -> 49.40) goes through
  the stop: 49.50 * 0.999 = 49.4505. P&L (49.4505 - 50.2502) * 99 = -79.1703;
  R = -79.1703 / (0.7502 * 99) = -1.0660.
CCC, 2024-03-05: never closes above its 30.30 range high. 2024-03-06: range 30.00-30.30, the
  09:45 bar closes 30.50 on 2,000 -> signal at 09:46, entry 30.50, stop 30.00, target 31.50.
  Equity 100,206.2445 (day one's two trades): cap 5,010.31 / 30.50 -> 164 shares. Fill
  30.50 * 1.001 = 30.5305; it never reaches 31.50 nor 30.00, so the last bar's close 30.80
  closes it: 30.80 * 0.999 = 30.7692. P&L (30.7692 - 30.5305) * 164 = 39.1468; R 0.4500.
Total P&L 285.4148 - 79.1703 + 39.1468 = 245.3913; 2 wins of 3.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from settings import ROOT
from tests.integration.cli_helpers import cli_env, run_cli

pytestmark = pytest.mark.integration

CSV = ROOT / "tests" / "data" / "backtest_orb.csv"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
# The settings the known answer depends on, pinned against a developer's .env.
PINNED = {
    "RISK_PER_TRADE_PCT": "0.005",
    "MAX_ALLOCATION_PCT": "0.05",
    "MAX_HEAT_PCT": "0.06",
    "DAILY_LOSS_LIMIT_PCT": "0.03",
    "MAX_CONSECUTIVE_LOSSES": "3",
    "MAX_DRAWDOWN_PCT": "0.10",
    "ORB_RANGE_MINUTES": "15",
    "ORB_CUTOFF": "11:30",
    "ORB_VOLUME_FACTOR": "1",
    "ORB_STOP_MODE": "range_low",
    "ORB_TARGET_R": "2",
}


def _env(state: Path) -> dict[str, str]:
    return cli_env(STATE_DIR=str(state), **PINNED)


def _one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


def test_the_orb_csv_gives_the_known_trades(tmp_path: Path) -> None:
    out = tmp_path / "run"
    done = run_cli(
        "backtest",
        *("--strategy", "orb", "--symbols", "AAA,BBB,CCC"),
        *("--from", "2024-03-05", "--to", "2024-03-06"),
        *("--csv", str(CSV), "--slippage-bps", "10", "--json", "--out", str(out)),
        env=_env(tmp_path / "state"),
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --json: no progress lines
    payload = json.loads(done.stdout)
    result = payload["result"]
    trades = [
        (
            t["symbol"],
            t["entry_time"],
            Decimal(t["entry_price"]),
            Decimal(t["qty"]),
            Decimal(t["stop"]),
            Decimal(t["target"]),
            t["exit_time"],
            Decimal(t["exit_price"]),
            t["exit_reason"],
            Decimal(t["pnl"]),
            Decimal(t["r_multiple"]),
        )
        for t in result["trades"]
    ]
    assert trades == [
        (
            "AAA",
            "2024-03-05T14:47:00Z",
            Decimal("20.6206"),
            Decimal(242),
            Decimal(20),
            Decimal("21.8"),
            "2024-03-05T14:51:00Z",
            Decimal("21.8"),
            "target",
            Decimal("285.4148"),
            Decimal("1.9004"),
        ),
        (
            "BBB",
            "2024-03-05T14:50:00Z",
            Decimal("50.2502"),
            Decimal(99),
            Decimal("49.5"),
            Decimal("51.6"),
            "2024-03-05T14:52:00Z",
            Decimal("49.4505"),
            "stop",
            Decimal("-79.1703"),
            Decimal("-1.066"),
        ),
        (
            "CCC",
            "2024-03-06T14:46:00Z",
            Decimal("30.5305"),
            Decimal(164),
            Decimal(30),
            Decimal("31.5"),
            "2024-03-06T15:14:00Z",
            Decimal("30.7692"),
            "end_of_data",
            Decimal("39.1468"),
            Decimal("0.45"),
        ),
    ]
    summary = result["summary"]
    assert Decimal(summary["total_pnl"]) == Decimal("245.39")
    assert Decimal(summary["end_equity"]) == Decimal("100245.39")
    assert (summary["trades"], summary["wins"], summary["losses"]) == (3, 2, 1)
    assert Decimal(summary["win_rate"]) == Decimal("0.6667")
    assert result["bars_walked"] == 270
    assert payload["files"]["equity_png"] == str(out / "equity.png")
    assert (out / "equity.png").read_bytes().startswith(PNG_MAGIC)
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "end_of_data" in report


def test_the_table_and_progress_without_json(tmp_path: Path) -> None:
    done = run_cli(
        "backtest",
        *("--strategy", "orb", "--symbols", "AAA,BBB,CCC"),
        *("--from", "2024-03-05", "--to", "2024-03-06", "--csv", str(CSV)),
        env=_env(tmp_path / "state"),
    )
    assert done.returncode == 0, done.stderr
    assert "AAA 1Min: 90 bars" in done.stderr
    assert "2024-03-05 09:51" in done.stdout and "target" in done.stdout
    default_dir = tmp_path / "state" / "backtests" / "orb_2024-03-05_2024-03-06_backtest_orb"
    assert (default_dir / "equity.png").read_bytes().startswith(PNG_MAGIC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--strategy", "nope"), "no strategy named 'nope'"),
        (("--from", "2024-03-07"), "--from 2024-03-07 is after --to 2024-03-06"),
        (("--to", "2024-13-01"), "--to '2024-13-01' is not a date"),
        (("--symbols", " , "), "--symbols names no symbol"),
        (("--csv", "/nonexistent/bars.csv"), "--csv /nonexistent/bars.csv: no such file"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, args: tuple[str, str], message: str
) -> None:
    defaults = {
        "--strategy": "orb",
        "--symbols": "AAA",
        "--from": "2024-03-05",
        "--to": "2024-03-06",
    }
    defaults[args[0]] = args[1]
    argv = [part for pair in defaults.items() for part in pair]
    if args[0] == "--csv":
        argv += list(args)
    done = run_cli("backtest", *argv, env=_env(tmp_path / "state"))
    assert done.returncode == 2
    assert message in _one_error_line(done.stderr)
