"""Workflows orchestrate and stay readable: short functions, no local policies, one call path.

Decisions live in trading/ as pure functions; a workflow function that grows past ~60 lines
is usually a decision (or a second step) that wants its own name.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from settings import ROOT

MAX_FUNCTION_LINES = 60
WORKFLOW_FILES = sorted((ROOT / "workflows").glob("*.py"))


def _functions(path: Path) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    tree = ast.parse(path.read_text())
    return [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_functions_are_at_most_sixty_lines(path: Path) -> None:
    long = [
        f"{fn.name}: {(fn.end_lineno or fn.lineno) - fn.lineno + 1} lines"
        for fn in _functions(path)
        if (fn.end_lineno or fn.lineno) - fn.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


@pytest.mark.parametrize(
    "path", [p for p in WORKFLOW_FILES if p.name != "calls.py"], ids=lambda p: p.name
)
def test_activities_are_called_only_through_workflows_calls(path: Path) -> None:
    source = path.read_text()
    assert "execute_activity" not in source
    assert "start_activity" not in source


@pytest.mark.parametrize(
    "path", [p for p in WORKFLOW_FILES if p.name != "policies.py"], ids=lambda p: p.name
)
def test_retry_policies_are_named_in_policies_py(path: Path) -> None:
    source = path.read_text()
    assert "RetryPolicy(" not in source and "ActivityPolicy(" not in source


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_progress_and_state_updates_are_validated(path: Path) -> None:
    assert "model_copy(update" not in path.read_text()


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_details_and_records_go_through_one_helper(path: Path) -> None:
    source = path.read_text()
    if path.name not in ("details.py",):
        assert "set_current_details" not in source
    if path.name != "records.py":
        assert "AuditEntry(" not in source and "RiskEventCreate(" not in source
