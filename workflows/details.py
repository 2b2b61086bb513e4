"""The one way a workflow tells the Web UI what it is doing: markdown current details."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from temporalio import workflow


class Details:
    """A markdown page: a title, then lines, bullets and tables; `publish` shows it."""

    def __init__(self, title: str) -> None:
        self._lines = [f"## {title}"]

    def line(self, text: str) -> Details:
        """A plain line."""
        self._lines.append(text)
        return self

    def bullets(self, items: Iterable[str]) -> Details:
        """One bullet per item."""
        self._lines += [f"- {item}" for item in items]
        return self

    def table(self, header: Sequence[str], rows: Iterable[Sequence[object]]) -> Details:
        """A table after a blank line (nothing when there are no rows)."""
        body = [f"| {' | '.join(str(cell) for cell in row)} |" for row in rows]
        if body:
            self._lines += [
                "",
                f"| {' | '.join(header)} |",
                f"|{'---|' * len(header)}",
                *body,
            ]
        return self

    def text(self) -> str:
        """The page as markdown."""
        return "\n".join(self._lines)

    def publish(self) -> None:
        """Show the page as this workflow's current details in the Web UI."""
        workflow.set_current_details(self.text())
