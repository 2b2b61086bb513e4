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


class NoTerminal(Exception):
    """Nobody can answer a prompt: stdin is not a terminal, or it ended (EOF)."""


def ask(prompt: str) -> str:
    """One line typed at the terminal; NoTerminal when there is no terminal to ask."""
    if sys.stdin is None or not sys.stdin.isatty():
        raise NoTerminal
    try:
        return input(prompt)
    except EOFError:
        raise NoTerminal from None


def confirm(action: str, question: str, word: str) -> str | None:
    """Ask the operator to type `word` before `action`; None if they did, else why not (a line).

    Every destructive command asks through here, so each refuses the same way: without a
    terminal it never waits for input and points at --yes; a wrong answer changes nothing.
    """
    try:
        answer = ask(f"{question} Type '{word}' to confirm: ")
    except NoTerminal:
        return (
            f"refusing to {action} without confirmation: no terminal to ask; pass --yes to confirm"
        )
    if answer.strip() != word:
        return f"{action} not confirmed; nothing changed"
    return None
