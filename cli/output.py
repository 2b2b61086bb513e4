"""Printing helpers for the CLI: human tables and --json."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from pydantic import BaseModel


def emit_json(payload: Any) -> None:
    """Print payload as indented JSON on stdout."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def emit_model(result: BaseModel, code: int = 0) -> int:
    """Print a result model as JSON (--json) and return the exit code."""
    emit_json(result.model_dump(mode="json"))
    return code


def say(message: str = "") -> None:
    """A line for the human on stdout."""
    sys.stdout.write(message + "\n")
    sys.stdout.flush()


def fail(message: str, code: int = 1) -> int:
    """Print a one-line error on stderr and return the exit code."""
    sys.stderr.write(f"error: {message}\n")
    return code


def market_state(is_open: bool | None) -> str:
    """`market open` or `market closed` (not known reads as closed)."""
    return "market open" if is_open else "market closed"


def table(rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None) -> str:
    """Left-aligned columns."""
    all_rows = ([header] if header else []) + list(rows)
    if not all_rows:
        return ""
    widths = [max(len(row[i]) for row in all_rows) for i in range(len(all_rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in all_rows
    ]
    return "\n".join(lines)


def say_table(
    rows: Sequence[tuple[str, ...]], header: tuple[str, ...] | None = None, empty: str | None = None
) -> None:
    """Print the rows as a table; with no rows, print `empty` (or nothing at all)."""
    if rows:
        say(table(rows, header))
    elif empty is not None:
        say(empty)
