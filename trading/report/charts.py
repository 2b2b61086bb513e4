"""The day report's pictures as PNG bytes (matplotlib, Agg: no display needed).

Each chart is drawn from the report's own figures, so the pictures and the JSON never disagree;
an empty series still gives a picture that says it is empty.
"""

from __future__ import annotations

import io
from datetime import datetime

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MultipleLocator

from trading.report.models import DayReport
from trading.strategies.sessions import NEW_YORK

SIZE = (8.0, 3.6)
DPI = 100
MARGIN = 0.25  # hours either side of a lone point
TICK_STEPS = (1 / 60, 5 / 60, 10 / 60, 0.25, 0.5, 1.0, 2.0, 4.0)  # hours between time ticks
CHART_TITLES = {
    "pnl": "Realized P&L through the day",
    "rescue_latency": "Stop-rescue latency",
    "gaps": "Unprotected gaps",
    "broker_calls": "Broker calls per minute",
}


def _figure() -> tuple[Figure, Axes]:
    figure = Figure(figsize=SIZE, dpi=DPI, layout="tight")
    return figure, figure.add_subplot()


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def _empty(axes: Axes, text: str) -> None:
    axes.text(0.5, 0.5, text, ha="center", va="center", transform=axes.transAxes, color="gray")
    axes.set_xticks([])
    axes.set_yticks([])


def _local(moment: datetime) -> float:
    """Hours since New York midnight: the time axis (New York wall time)."""
    local = moment.astimezone(NEW_YORK)
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    return (local - midnight).total_seconds() / 3600


def _clock(hours: float, _position: float) -> str:
    minutes = round(hours * 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _time_axis(axes: Axes) -> None:
    low, high = axes.get_xlim()
    step = next((s for s in TICK_STEPS if (high - low) / s <= 10), TICK_STEPS[-1])
    axes.xaxis.set_major_locator(MultipleLocator(step))
    axes.xaxis.set_major_formatter(FuncFormatter(_clock))
    axes.set_xlabel("New York time")
    axes.grid(alpha=0.3)


def pnl_chart(report: DayReport) -> bytes:
    """Cumulative realized P&L by minute, a step from 0 at the first close."""
    figure, axes = _figure()
    points = report.pnl.points
    axes.set_title(CHART_TITLES["pnl"] + ("" if report.pnl.equity_available else " (no equity)"))
    if not points:
        _empty(axes, "no trade closed on this day")
        return _png(figure)
    times = [_local(p.minute) for p in points]
    values = [float(p.cumulative_realized) for p in points]
    times = [times[0] - MARGIN, *times, times[-1] + MARGIN]
    values = [0.0, *values, values[-1]]
    axes.step(times, values, where="post", color="tab:blue", label="cumulative realized P&L")
    axes.axhline(0, color="black", linewidth=0.8)
    axes.set_ylabel("$")
    axes.legend(loc="best", fontsize="small")
    _time_axis(axes)
    return _png(figure)


def _histogram(values: list[int], title: str, empty: str, limit_ms: int | None) -> bytes:
    figure, axes = _figure()
    axes.set_title(title)
    if not values:
        _empty(axes, empty)
        return _png(figure)
    axes.hist(values, bins=min(30, max(5, len(values))), color="tab:orange", edgecolor="white")
    if limit_ms is not None:
        axes.axvline(limit_ms, color="tab:red", linestyle="--", label=f"limit {limit_ms} ms")
        axes.legend(loc="best", fontsize="small")
    axes.set_xlabel("ms")
    axes.set_ylabel("count")
    axes.grid(alpha=0.3)
    return _png(figure)


def rescue_latency_chart(report: DayReport) -> bytes:
    """Histogram of the rescues' latencies (missing stop seen -> rescue accepted)."""
    return _histogram(
        report.rescues.latencies_ms,
        f"{CHART_TITLES['rescue_latency']} ({report.rescues.rescued} rescued)",
        "no stop rescue on this day",
        None,
    )


def gap_chart(report: DayReport) -> bytes:
    """Histogram of every unprotected gap, with the verdict's limit."""
    gaps = report.gaps
    return _histogram(
        [g.gap_ms for g in gaps.gaps],
        f"{CHART_TITLES['gaps']} ({gaps.stats.count}; rescues, exits, flattens)",
        "no unprotected gap measured on this day",
        gaps.limit_ms,
    )


def broker_calls_chart(report: DayReport) -> bytes:
    """Calls per clock minute as bars, against the broker's limit (and the shared budget)."""
    calls = report.broker_calls
    figure, axes = _figure()
    axes.set_title(CHART_TITLES["broker_calls"])
    if not calls.per_minute:
        _empty(axes, "no broker calls recorded for this day")
        return _png(figure)
    times = [_local(m.minute) for m in calls.per_minute]
    counts = [m.calls for m in calls.per_minute]
    limit = calls.limit_per_min
    busy = report.thresholds.busy_fraction * limit
    colours = ["tab:red" if c > limit else "tab:orange" if c > busy else "tab:blue" for c in counts]
    axes.bar(times, counts, width=0.9 / 60, align="edge", color=colours)
    axes.axhline(limit, color="tab:red", linestyle="-", label=f"broker limit {limit}/min")
    if calls.budget_per_min is not None and calls.budget_per_min != limit:
        axes.axhline(
            calls.budget_per_min, color="tab:purple", linestyle="--", label="shared budget"
        )
    axes.axhline(busy, color="gray", linestyle=":", label=f"{busy:.0f} ({busy / limit:.0%})")
    axes.set_ylim(0, limit * 1.1 if max(counts) <= limit else max(counts) * 1.1)
    axes.set_ylabel("calls / minute")
    axes.legend(loc="upper right", fontsize="small")
    if len(times) == 1:
        axes.set_xlim(times[0] - MARGIN, times[0] + MARGIN)
    _time_axis(axes)
    return _png(figure)


def render_charts(report: DayReport) -> dict[str, bytes]:
    """Every chart of the report, by name (the names of CHART_TITLES), as PNG bytes."""
    return {
        "pnl": pnl_chart(report),
        "rescue_latency": rescue_latency_chart(report),
        "gaps": gap_chart(report),
        "broker_calls": broker_calls_chart(report),
    }
