"""temporal-dev.yaml: the dev stack's settings, validated with clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from settings import ConfigError

SEARCH_ATTRIBUTE_TYPES = ("Keyword", "Text", "Int", "Double", "Bool", "Datetime", "KeywordList")


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class TemporalDevConfig(_Section):
    """The Temporal dev server the stack starts."""

    ip: str = "127.0.0.1"
    port: int = Field(7233, gt=0, lt=65536)
    ui_port: int = Field(8233, gt=0, lt=65536)
    namespace: str = Field("default", min_length=1)
    db_filename: Path = Path(".state/temporal/history.sqlite")
    log_level: Literal["debug", "info", "warn", "error"] = "warn"
    search_attributes: dict[str, str] = Field(default_factory=dict)
    dynamic_config: dict[str, bool | int | float | str] = Field(default_factory=dict)

    @field_validator("search_attributes")
    @classmethod
    def _known_types(cls, value: dict[str, str]) -> dict[str, str]:
        for name, kind in value.items():
            if kind not in SEARCH_ATTRIBUTE_TYPES:
                raise ValueError(
                    f"search attribute {name} has type {kind!r}; use one of "
                    + ", ".join(SEARCH_ATTRIBUTE_TYPES)
                )
            if not name.isidentifier():
                raise ValueError(f"search attribute name {name!r} must be an identifier")
        return value


class PostgresDevConfig(_Section):
    """The embedded PostgreSQL (used when DATABASE_URL is unset)."""

    port: int = Field(54329, gt=0, lt=65536)
    database: str = Field("durable_trader", pattern=r"^[a-z_][a-z0-9_]*$")
    data_dir: Path = Path(".state/postgres")


class PaperBrokerDevConfig(_Section):
    """The local Alpaca-compatible paper broker (used when Alpaca keys are unset)."""

    port: int = Field(8765, gt=0, lt=65536)
    clock: Literal["real", "offset", "manual"] = "offset"
    seed: int = 7


class WorkerDevConfig(_Section):
    """Workers the stack runs."""

    replicas: int = Field(1, ge=1, le=16)


class SchedulesDevConfig(_Section):
    """Which schedule profile `schedules apply` installs."""

    profile: Literal["dev", "market"] = "dev"


class DevConfig(_Section):
    """The whole temporal-dev.yaml."""

    temporal: TemporalDevConfig = TemporalDevConfig()
    postgres: PostgresDevConfig = PostgresDevConfig()
    paperbroker: PaperBrokerDevConfig = PaperBrokerDevConfig()
    worker: WorkerDevConfig = WorkerDevConfig()
    schedules: SchedulesDevConfig = SchedulesDevConfig()
    base_dir: Path = Path(".")

    def resolve(self, path: Path) -> Path:
        """A path from the file, made absolute against the file's folder."""
        return path if path.is_absolute() else (self.base_dir / path).resolve()


def load_dev_config(path: Path) -> DevConfig:
    """Read and validate temporal-dev.yaml; any problem becomes one ConfigError line."""
    if not path.exists():
        raise ConfigError(f"{path}: file not found (set DEV_CONFIG to the dev stack's YAML file)")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    try:
        return DevConfig.model_validate({**raw, "base_dir": path.resolve().parent})
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            where = ".".join(str(part) for part in error["loc"])
            message = str(error["msg"]).removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "unknown key (check the spelling)"
            value = error.get("input")
            shown = f" (got {value!r})" if isinstance(value, str | int | float) else ""
            problems.append(f"{where}: {message}{shown}")
        raise ConfigError(f"{path}: " + "; ".join(problems)) from None
