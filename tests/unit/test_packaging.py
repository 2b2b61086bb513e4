"""The project installs as a package with a `durable-trader` command, at the locked versions."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from typing import Any

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from settings import ROOT

LOCK = ROOT / "constraints.txt"
NOT_SHIPPED = {"tests", "bench", "docs", "build", "dist"}
REFRESH = (
    "update the lock: .venv/bin/python -m pip freeze --all --exclude pip "
    "--exclude durable-trader > constraints.txt"
)


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def requirements_of(pyproject: dict[str, Any]) -> list[Requirement]:
    """What the bootstrap installs: the dependencies and the dev extra."""
    project = pyproject["project"]
    texts = [*project["dependencies"], *project["optional-dependencies"]["dev"]]
    return [Requirement(text) for text in texts]


def parse_lock(lock_text: str) -> tuple[dict[str, str], list[str]]:
    """The lock's exact pins by normalised name, and its lines that are not exact pins."""
    pins: dict[str, str] = {}
    problems: list[str] = []
    for raw in lock_text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            pin = Requirement(line)
        except InvalidRequirement:
            problems.append(f"lock line {raw!r} is not a requirement")
            continue
        specs = list(pin.specifier)
        if len(specs) != 1 or specs[0].operator != "==" or "*" in specs[0].version:
            problems.append(f"lock line {raw!r} is not an exact == pin")
            continue
        pins[canonicalize_name(pin.name)] = specs[0].version
    return pins, problems


def lock_problems(pyproject: dict[str, Any], lock_text: str) -> list[str]:
    """Where pyproject.toml and the lock disagree: a requirement unpinned or pinned outside it."""
    pins, problems = parse_lock(lock_text)
    for requirement in requirements_of(pyproject):
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue  # not installed on this platform, so nothing to pin here
        name = canonicalize_name(requirement.name)
        if name not in pins:
            problems.append(f"{requirement} has no == pin in the lock")
        elif not requirement.specifier.contains(pins[name], prereleases=True):
            problems.append(f"{requirement} is not satisfied by the lock's {name}=={pins[name]}")
    return problems


def installed_closure(requirements: list[Requirement]) -> dict[str, str]:
    """Every distribution the requirements pull in here, by normalised name, with its version."""
    found: dict[str, str] = {}
    visited: set[tuple[str, frozenset[str]]] = set()
    pending = list(requirements)
    while pending:
        requirement = pending.pop()
        key = (canonicalize_name(requirement.name), frozenset(requirement.extras))
        if key in visited:
            continue
        visited.add(key)
        try:
            dist = distribution(requirement.name)
        except PackageNotFoundError:
            found[key[0]] = "(not installed)"
            continue
        found[key[0]] = dist.version
        for text in dist.requires or []:
            needed = Requirement(text)
            extras = requirement.extras or {""}
            if needed.marker is None or any(needed.marker.evaluate({"extra": e}) for e in extras):
                pending.append(needed)
    return found


def test_pyproject_and_the_lock_agree() -> None:
    assert lock_problems(_pyproject(), LOCK.read_text()) == [], REFRESH


def test_a_disagreeing_lock_is_reported() -> None:
    pyproject = {
        "project": {
            "dependencies": ["pydantic>=2.10,<3", "pyyaml>=6,<7", "numpy>=2,<3"],
            "optional-dependencies": {"dev": ["pytest>=8,<10", "ruff"]},
        }
    }
    lock = "pydantic==1.10.13\nPyYAML==6.0.2\nnumpy>=2\npytest==8.3.0\n"

    problems = lock_problems(pyproject, lock)

    assert len(problems) == 4, problems
    assert any("pydantic" in p and "not satisfied" in p for p in problems)
    assert any("numpy>=2" in p and "not an exact" in p for p in problems)
    assert any(p.startswith("ruff has no == pin") for p in problems)
    # PyYAML pins pyyaml (PEP 503 names) and pytest 8.3.0 is inside >=8,<10
    assert not any("pyyaml" in p.lower() or "pytest" in p for p in problems)
    agreeing = "pydantic==2.10.0\npyyaml==6.0.2\nnumpy==2.1.0\npytest==8.3.0\nruff==0.8.0\n"
    assert lock_problems(pyproject, agreeing) == []


def test_the_lock_pins_everything_installed_here_at_the_installed_version() -> None:
    pins, problems = parse_lock(LOCK.read_text())
    assert problems == []
    for name, version in installed_closure(requirements_of(_pyproject())).items():
        assert pins.get(name) == version, (
            f"{name} is installed at {version} but locked at {pins.get(name, '(nothing)')}; "
            f"re-run `python3 starter.py --help` to install the lock, or {REFRESH}"
        )


def _source_packages() -> set[str]:
    """Every folder of the checkout holding Python modules, as a dotted package name."""
    found: set[str] = set()
    for top in ROOT.iterdir():
        if not top.is_dir() or top.name in NOT_SHIPPED or top.name.startswith("."):
            continue
        for path in top.rglob("*.py"):
            parts = path.relative_to(ROOT).parent.parts
            if not any(part == "__pycache__" or part.endswith(".egg-info") for part in parts):
                found.add(".".join(parts))
    return found


def test_every_package_and_module_of_the_checkout_is_listed() -> None:
    listed = _pyproject()["tool"]["setuptools"]
    assert set(listed["packages"]) == _source_packages()
    top_modules = {path.stem for path in ROOT.glob("*.py")}
    assert set(listed["py-modules"]) == top_modules


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A wheel built offline from a copy of the checkout (the build leaves no files behind)."""
    work = tmp_path_factory.mktemp("wheel")
    source = work / "source"
    source.mkdir()
    listed = _pyproject()["tool"]["setuptools"]
    for name in ("pyproject.toml", "README.md", *(f"{m}.py" for m in listed["py-modules"])):
        shutil.copy2(ROOT / name, source / name)
    for top in {package.split(".")[0] for package in listed["packages"]}:
        shutil.copytree(
            ROOT / top, source / top, ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
        )
    pip_wheel = ["pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index"]
    done = subprocess.run(
        [sys.executable, "-m", *pip_wheel, "-w", str(work / "dist"), str(source)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (wheel,) = (work / "dist").glob("durable_trader-*.whl")
    yield wheel


@pytest.mark.slow
def test_the_wheel_ships_the_packages_migrations_and_the_command(built_wheel: Path) -> None:
    listed = _pyproject()["tool"]["setuptools"]
    names = set(zipfile.ZipFile(built_wheel).namelist())
    for package in listed["packages"]:
        folder = ROOT / package.replace(".", "/")
        for module in folder.glob("*.py"):
            assert module.relative_to(ROOT).as_posix() in names
    for module in listed["py-modules"]:
        assert f"{module}.py" in names
    migrations = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("ledger/migrations/*"))
    assert migrations and set(migrations) <= names
    assert not any(name.split("/")[0] in NOT_SHIPPED for name in names)
    (entry_points,) = (name for name in names if name.endswith(".dist-info/entry_points.txt"))
    scripts = zipfile.ZipFile(built_wheel).read(entry_points).decode()
    assert "durable-trader = starter:installed_main" in scripts


def _run(command: list[str], cwd: Path, site: Path) -> subprocess.CompletedProcess[str]:
    # nothing of the checkout on the path or in the environment: only the installed copy
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(site), "HOME": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.slow
def test_the_installed_command_runs_from_a_checkout_like_starter(
    built_wheel: Path, tmp_path: Path
) -> None:
    site = tmp_path / "site"
    pip_install = ["pip", "install", "--no-deps", "--no-index", "--target", str(site)]
    done = subprocess.run(
        [sys.executable, "-m", *pip_install, str(built_wheel)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    command = site / "bin" / "durable-trader"
    checkout = (tmp_path / "checkout").resolve()
    checkout.mkdir()
    (checkout / ".env").write_text("WATCHLIST=XYZ\nLOG_LEVEL=DEBUG\n")

    helped = _run([str(command), "--help"], checkout, site)
    assert helped.returncode == 0, helped.stderr
    assert "durable-trader: automated US-equities trading" in helped.stdout

    located = _run([sys.executable, "-c", "import settings; print(settings.ROOT)"], checkout, site)
    assert Path(located.stdout.strip()) == site.resolve()

    shown = _run([str(command), "settings", "show", "--json"], checkout, site)
    assert shown.returncode == 0, shown.stderr
    effective = json.loads(shown.stdout)
    assert effective["DEV_CONFIG"] == str(checkout / "temporal-dev.yaml")
    assert effective["STATE_DIR"] == str(checkout / ".state")
    assert effective["WATCHLIST"] == "XYZ"

    (checkout / ".env").write_text("TEMPORAL_ADDRESS=no-port\n")
    refused = _run([str(command), "settings", "show"], checkout, site)
    assert refused.returncode == 2  # starter.py's exit code for a configuration error
    assert "TEMPORAL_ADDRESS" in refused.stderr + refused.stdout
