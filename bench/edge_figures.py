"""Figures of the edge benchmark: a value that may be a lower bound, goals, PASS/MISS, tables."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Value:
    """A measured figure; `at_least` when observation ended before the event (censored)."""

    number: float | None
    at_least: bool = False
    text: str | None = None  # replaces the number: "never", "not measured", ...

    def show(self) -> str:
        """The value as the table prints it."""
        if self.text is not None:
            return self.text
        if self.number is None:
            return "-"
        shown = f"{self.number:.3g}" if abs(self.number) < 100 else f"{self.number:.0f}"
        return f">= {shown}" if self.at_least else shown

    def as_json(self) -> dict[str, Any]:
        """{"value", "at_least", "text"}."""
        number = None if self.number is None else round(self.number, 3)
        return {"value": number, "at_least": self.at_least, "text": self.text}


NOT_MEASURED = Value(None, text="-")


def at_most(value: Value, limit: float) -> bool | None:
    """PASS when the value is known and <= limit; MISS when it is (at least) above."""
    if value.number is None:
        return None if value.text is None else False
    if value.at_least:
        return False if value.number > limit else None
    return value.number <= limit


@dataclass(frozen=True)
class Sample:
    """One latency (or duration); `censored`: still not seen after `value`."""

    value: float
    censored: bool = False


def quantile(samples: list[Sample], q: float) -> Value:
    """The q-quantile (nearest rank); a lower bound when a censored sample ranks at or below it."""
    if not samples:
        return Value(None, text="no samples")
    ordered = sorted(samples, key=lambda s: s.value)
    rank = min(len(ordered) - 1, int(q * len(ordered)))
    chosen = ordered[rank]
    censored_below = any(s.censored for s in ordered[: rank + 1])
    return Value(chosen.value, at_least=censored_below)


def largest(samples: list[Sample]) -> Value:
    """The largest sample (a lower bound when any sample is censored)."""
    if not samples:
        return Value(None, text="no samples")
    top = max(samples, key=lambda s: s.value)
    return Value(top.value, at_least=any(s.censored for s in samples))


def mean(samples: list[Sample]) -> Value:
    """The mean (a lower bound when any sample is censored)."""
    if not samples:
        return Value(None, text="no samples")
    return Value(
        sum(s.value for s in samples) / len(samples), at_least=any(s.censored for s in samples)
    )


@dataclass
class Figure:
    """One figure: the system's value beside the baseline's, the goal and whether it is met."""

    name: str
    unit: str
    system: Value
    baseline: Value
    goal: str
    met: bool | None
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "figure": self.name,
            "unit": self.unit,
            "system": self.system.as_json(),
            "baseline": self.baseline.as_json(),
            "goal": self.goal,
            "result": verdict(self.met),
            "note": self.note,
        }


def verdict(met: bool | None) -> str:
    """PASS, MISS, or "-" for a figure without a goal or without a value to judge."""
    return {True: "PASS", False: "MISS", None: "-"}[met]


@dataclass
class Section:
    """One scenario: its figures and the details behind them."""

    name: str
    title: str
    figures: list[Figure] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.name,
            "title": self.title,
            "figures": [f.as_json() for f in self.figures],
            "notes": self.notes,
            "details": self.details,
        }


def table(figures: list[Figure], title: str) -> str:
    """The figures as a fixed-width table."""
    header = f"{'figure':<52}{'unit':>6}{'system':>12}{'baseline':>14}  {'goal':<16}result"
    lines = [title, header, "-" * (len(header) + 2)]
    for f in figures:
        lines.append(
            f"{f.name:<52}{f.unit:>6}{f.system.show():>12}{f.baseline.show():>14}  "
            f"{f.goal:<16}{verdict(f.met)}"
        )
    return "\n".join(lines)


def print_section(section: Section) -> None:
    """A scenario's table, notes and JSON."""
    print()
    print(table(section.figures, f"== {section.name}: {section.title}"))
    for note in section.notes:
        print(f"  note: {note}")
    print(json.dumps(section.as_json(), indent=2, default=str))
