"""The backtest's report: the equity chart as PNG bytes and a self-contained HTML page.

Pure: both are built in memory from a BacktestResult (the caller writes them). The chart uses
matplotlib's Agg backend (no display): equity on top, drawdown from the running peak below.
"""

from __future__ import annotations

import base64
import html
import io
from decimal import Decimal

from trading.backtest.models import BacktestResult

CHART_SIZE = (10.0, 6.0)
CHART_DPI = 100


def equity_png(result: BacktestResult, title: str) -> bytes:
    """The equity curve and its drawdown as a PNG image."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    times = [p.at for p in result.equity_curve]
    equity = [float(p.equity) for p in result.equity_curve]
    drawdown: list[float] = []
    peak = float("-inf")
    for value in equity:
        peak = max(peak, value)
        drawdown.append(value - peak)
    figure = Figure(figsize=CHART_SIZE, dpi=CHART_DPI)
    top, bottom = figure.subplots(2, 1, sharex=True, height_ratios=(3, 1))
    top.step(times, equity, where="post", color="tab:blue", linewidth=1)
    top.set_title(title)
    top.set_ylabel("equity ($)")
    top.grid(True, alpha=0.3)
    bottom.fill_between(times, drawdown, 0, step="post", color="tab:red", alpha=0.4)
    bottom.set_ylabel("drawdown ($)")
    bottom.grid(True, alpha=0.3)
    figure.autofmt_xdate()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _cell(value: object) -> str:
    return f"<td>{html.escape('-' if value is None else str(value))}</td>"


def report_html(result: BacktestResult, title: str, png: bytes) -> str:
    """One HTML page: the summary, the chart (embedded) and every trade."""
    summary = result.summary.model_dump(mode="json")
    summary_rows = "".join(
        f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>" for k, v in summary.items()
    )
    skipped = "".join(
        f"<tr><th>{html.escape(k)}</th>{_cell(v)}</tr>" for k, v in result.skipped.items()
    )
    columns = (
        "symbol",
        "strategy",
        "entry_time",
        "entry_price",
        "qty",
        "stop",
        "target",
        "exit_time",
        "exit_price",
        "exit_reason",
        "pnl",
        "r_multiple",
    )
    head = "".join(f"<th>{c}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(_cell(_show(getattr(t, c))) for c in columns) + "</tr>"
        for t in result.trades
    )
    image = base64.b64encode(png).decode("ascii")
    config = result.config
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:2px 8px;text-align:right}}th{{background:#f4f4f4}}</style>
</head><body>
<h1>{html.escape(title)}</h1>
<p>strategies {html.escape(", ".join(result.strategies))}; symbols
{html.escape(", ".join(result.symbols))}; window {config.start} to {config.end};
slippage {config.slippage_bps} bps; {result.bars_walked} bars walked,
{result.signals} signals.</p>
<h2>Summary</h2><table>{summary_rows}</table>
<h2>Equity</h2><img alt="equity curve and drawdown" src="data:image/png;base64,{image}">
<h2>Trades ({len(result.trades)})</h2><table><tr>{head}</tr>{body}</table>
<h2>Signals not entered</h2><table>{skipped}</table>
</body></html>
"""


def _show(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value.normalize(), "f") if value == value.to_integral() else value
    return value
