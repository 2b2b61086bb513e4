"""temporal-dev.yaml loader: the shipped file is valid; mistakes get one specific line."""

from __future__ import annotations

from pathlib import Path

import pytest

from devstack.config import load_dev_config
from devstack.temporal import dev_server_args
from settings import ROOT, ConfigError


def test_the_shipped_file_is_valid() -> None:
    config = load_dev_config(ROOT / "temporal-dev.yaml")
    assert config.temporal.search_attributes["TradeSymbol"] == "Keyword"
    assert config.resolve(config.temporal.db_filename).is_absolute()
    args = dev_server_args(config.temporal, Path("/tmp/h.sqlite"))
    assert "--search-attribute" in args and "TradeStatus=Keyword" in args
    assert args[args.index("--db-filename") + 1] == "/tmp/h.sqlite"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("temporal: [unclosed", "not valid YAML at line 1"),
        ("temporal:\n  port: seventy\n", "temporal.port: Input should be a valid integer"),
        ("temporal:\n  port: 70000\n", "temporal.port: Input should be less than 65536"),
        ("temporal:\n  prot: 7233\n", "temporal.prot: unknown key"),
        ("temporal:\n  search_attributes:\n    TradeSymbol: Strng\n", "has type 'Strng'"),
        ("postgres:\n  database: Bad-Name\n", "postgres.database"),
        ("- just\n- a list\n", "expected a mapping"),
    ],
)
def test_mistakes_are_reported_specifically(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "temporal-dev.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_dev_config(path)
    message = str(caught.value)
    assert expected in message
    assert str(path) in message
    assert "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_dev_config(tmp_path / "absent.yaml")
