"""Trade ids and deterministic client_order_ids (trade id + leg + attempt, <= 48 chars)."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum

from trading.errors import TradingInputError

MAX_CLIENT_ORDER_ID = 48
MAX_TRADE_ID = 36
MAX_ATTEMPT = 99_999
_TRADE_ID = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,35})$")
_CLIENT_ORDER_ID = re.compile(
    r"^(?P<trade>[a-z0-9][a-z0-9-]{0,35})\.(?P<leg>[a-z]{2})\.(?P<n>\d{1,5})$"
)


class Leg(StrEnum):
    """What an order is for, within its trade."""

    ENTRY = "en"
    STOP = "sl"
    TAKE_PROFIT = "tp"
    EXIT = "ex"
    RESCUE = "rs"  # a replacement protective stop placed after the original went missing


def validate_trade_id(trade_id: str) -> str:
    """Lower-case letters, digits and dashes, 1-36 characters, starting with a letter/digit."""
    if not _TRADE_ID.match(trade_id):
        raise TradingInputError(
            f"trade id {trade_id!r} must be 1-{MAX_TRADE_ID} characters of a-z, 0-9 and '-'"
        )
    return trade_id


def new_trade_id(symbol: str, at: datetime, entropy: str) -> str:
    """A readable trade id: symbol, UTC date and time, and a short random suffix."""
    cleaned = re.sub(r"[^a-z0-9]", "", symbol.lower())[:8] or "x"
    suffix = re.sub(r"[^a-z0-9]", "", entropy.lower())[:6]
    return validate_trade_id(f"{cleaned}-{at:%Y%m%d-%H%M%S}-{suffix}")


def client_order_id(trade_id: str, leg: Leg, attempt: int) -> str:
    """The same (trade, leg, attempt) always gives the same id; different ones never collide."""
    validate_trade_id(trade_id)
    if not 0 <= attempt <= MAX_ATTEMPT:
        raise TradingInputError(f"attempt must be 0..{MAX_ATTEMPT}, got {attempt}")
    value = f"{trade_id}.{leg.value}.{attempt}"
    assert len(value) <= MAX_CLIENT_ORDER_ID
    return value


def parse_client_order_id(value: str) -> tuple[str, Leg, int] | None:
    """(trade id, leg, attempt) of one of our ids; None for ids we did not make."""
    match = _CLIENT_ORDER_ID.match(value)
    if match is None:
        return None
    try:
        leg = Leg(match.group("leg"))
    except ValueError:
        return None
    return match.group("trade"), leg, int(match.group("n"))


def trade_id_of(value: str) -> str | None:
    """The trade that owns a client_order_id, if it is one of ours."""
    parsed = parse_client_order_id(value)
    return parsed[0] if parsed else None
