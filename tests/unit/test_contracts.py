"""Each workflow's interface is written once: in its contract, and nowhere else.

Every workflow type, signal / query / update name, fixed workflow id or id prefix and the
schedule id prefix appear as a string literal exactly once in production code (f-string pieces
included); schedule ids are composed from that prefix and contracts/schedules.py's operation
names, never written whole; each registered workflow class answers to exactly the names its
contract declares.
"""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

import pytest
from temporalio import workflow

import contracts
from contracts import schedules
from contracts.base import RUN_PROGRESS
from settings import ROOT
from trading.ledger_records import OrderRole
from workflows.registry import ALL_WORKFLOWS

PRODUCTION = [
    "activities",
    "broker",
    "cli",
    "contracts",
    "devstack",
    "ledger",
    "paperbroker",
    "trading",
    "workflows",
    "settings.py",
    "clients.py",
    "worker.py",
    "starter.py",
]


def _production_files() -> list[Path]:
    files: list[Path] = []
    for name in PRODUCTION:
        path = ROOT / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path]
    return files


def _literals(source: str) -> list[str]:
    """Every string constant in a module, f-string pieces included; docstrings left out."""
    tree = ast.parse(source)
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def _interface_names() -> set[str]:
    names: set[str] = {schedules.SCHEDULE_PREFIX}
    for contract in contracts.ALL:
        names |= {contract.name, *contract.message_names(), *contract.fixed_ids}
    return names


def count_literals(files: list[Path], names: set[str]) -> Counter[str]:
    """How often each name stands as a string literal in `files`."""
    counts: Counter[str] = Counter()
    for path in files:
        for literal in _literals(path.read_text()):
            if literal in names:
                counts[literal] += 1
    return counts


# A ledger order role may share its word with the message that places such an order (the
# `add_on` update places `add_on` orders): that word is written once more, as the role.
SHARED_WITH_ORDER_ROLES = frozenset(role.value for role in OrderRole)


def test_every_interface_name_is_written_exactly_once() -> None:
    names = _interface_names()
    counts = count_literals(_production_files(), names)
    expected = {name: 1 + (name in SHARED_WITH_ORDER_ROLES) for name in names}
    wrong = {name: counts[name] for name in sorted(names) if counts[name] != expected[name]}
    assert not wrong, f"written other than once in production code: {wrong}"


def test_no_schedule_id_is_written_whole() -> None:
    ids = {schedules.schedule_id_for(op) for op in schedules.OPERATION_NAMES}
    assert count_literals(_production_files(), ids) == Counter()


def test_a_workflow_type_is_not_hidden_inside_a_longer_string() -> None:
    types = {contract.name for contract in contracts.ALL}
    hidden = [
        (path.name, literal)
        for path in _production_files()
        for literal in _literals(path.read_text())
        if literal not in types and any(name in literal for name in types)
    ]
    assert hidden == []


def test_a_second_copy_of_a_name_is_found(tmp_path: Path) -> None:
    copy = tmp_path / "copy.py"
    copy.write_text('HANDLE = "force_exit"\nprefix = f"trade-{1}"\n')
    counts = count_literals([*_production_files(), copy], _interface_names())
    assert counts["force_exit"] == 2
    assert counts["trade-"] == 2


def test_no_two_contracts_share_a_name_but_the_run_progress_query() -> None:
    seen: Counter[str] = Counter()
    for contract in contracts.ALL:
        seen.update({contract.name, *contract.message_names(), *contract.fixed_ids})
    assert [name for name, n in seen.items() if n > 1] == [RUN_PROGRESS]


@pytest.mark.parametrize("cls", ALL_WORKFLOWS, ids=lambda cls: cls.__name__)
def test_each_workflow_answers_to_its_contract(cls: type) -> None:
    definition = workflow._Definition.must_from_class(cls)
    contract = next(c for c in contracts.ALL if c.name == definition.name)
    # None: a dynamic handler (trading control's first-wave message names), not an interface
    assert set(definition.signals) - {None} == {s.name for s in contract.signals}
    assert set(definition.queries) - {None} == {q.name for q in contract.queries}
    assert set(definition.updates) - {None} == {u.name for u in contract.updates}


def test_every_contract_has_a_registered_workflow() -> None:
    registered = {workflow._Definition.must_from_class(cls).name for cls in ALL_WORKFLOWS}
    assert registered == {c.name for c in contracts.ALL}
