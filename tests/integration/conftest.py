"""Integration fixtures shared across areas: settings for in-process CLI handlers."""

from __future__ import annotations

import pytest

from paperbroker.testing import RunningBroker
from settings import Settings
from tests.integration.cli_helpers import stack_settings


@pytest.fixture
def cli_settings(settings: Settings, database_url: str, paper_broker: RunningBroker) -> Settings:
    """Settings for this test's Temporal queue, ledger and paper broker."""
    return stack_settings(settings, paper_broker, database_url)
