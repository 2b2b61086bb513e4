"""The one place SDK failures become broker errors: every Alpaca error body maps to a type."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest
import requests
from alpaca.common.exceptions import APIError

from broker import errors
from broker.alpaca import map_error


def _api_error(
    status: int, body: dict[str, object] | str, headers: dict[str, str] | None = None
) -> APIError:
    response = requests.Response()
    response.status_code = status
    response.headers.update(headers or {})
    text = body if isinstance(body, str) else json.dumps(body)
    return APIError(text, requests.HTTPError(response=response))  # type: ignore[no-untyped-call]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            403,
            {"code": 40310000, "message": "insufficient buying power"},
            errors.InsufficientBuyingPower,
        ),
        (
            403,
            {"code": 40310000, "message": "potential wash trade detected. use complex orders"},
            errors.WashTrade,
        ),
        (
            422,
            {"code": 42210000, "message": "potential wash trade detected. use complex orders"},
            errors.WashTrade,
        ),
        (
            422,
            {"code": 40010001, "message": "client_order_id must be unique"},
            errors.DuplicateClientOrderId,
        ),
        (404, {"code": 40410000, "message": "order not found"}, errors.NotFound),
        (404, {"code": 40410000, "message": "position does not exist"}, errors.NotFound),
        (
            422,
            {
                "code": 42210000,
                "message": "invalid stop_price 99.123. sub-penny increment "
                "does not fulfill minimum pricing criteria",
            },
            errors.InvalidPrice,
        ),
        (400, {"code": 40010000, "message": "request body format is invalid"}, errors.InvalidOrder),
        (
            422,
            {"code": 42210000, "message": "bracket orders must be entry orders"},
            errors.InvalidOrder,
        ),
        (401, {"message": "unauthorized"}, errors.AuthFailed),
        (403, {"message": "unauthorized"}, errors.AuthFailed),
        (500, {"message": "internal server error"}, errors.BrokerUnavailable),
        (502, "<html>bad gateway</html>", errors.BrokerUnavailable),
        (504, "<html>gateway timeout</html>", errors.BrokerUnavailable),
    ],
)
def test_alpaca_answers_map_to_stable_types(
    status: int, body: dict[str, object] | str, expected: type[errors.BrokerError]
) -> None:
    mapped = map_error(_api_error(status, body))
    assert type(mapped) is expected
    if isinstance(body, dict):
        assert str(body["message"]) in mapped.message  # Alpaca's own words are kept
    assert mapped.retryable == (expected is errors.BrokerUnavailable)


def test_insufficient_qty_keeps_the_share_numbers() -> None:
    mapped = map_error(
        _api_error(
            403,
            {
                "code": 40310000,
                "available": "0",
                "existing_qty": "10",
                "held_for_orders": "10",
                "message": "insufficient qty available for order (requested: 10, available: 0)",
                "symbol": "AAPL",
            },
        )
    )
    assert isinstance(mapped, errors.InsufficientQty)
    assert (mapped.available, mapped.held_for_orders) == (Decimal(0), Decimal(10))


def test_rate_limit_reads_the_reset_header() -> None:
    mapped = map_error(
        _api_error(429, {"message": "rate limit exceeded"}, {"X-RateLimit-Reset": "1900000000"})
    )
    assert isinstance(mapped, errors.RateLimited) and mapped.retryable
    assert mapped.reset_at == datetime.fromtimestamp(1900000000, UTC)


def test_transport_failures_are_unavailable_not_absent() -> None:
    assert isinstance(map_error(requests.ConnectTimeout()), errors.BrokerUnavailable)
    assert isinstance(map_error(requests.ReadTimeout()), errors.BrokerUnavailable)
    assert isinstance(map_error(requests.ConnectionError()), errors.BrokerUnavailable)


def test_non_retryable_types_come_from_the_classes() -> None:
    names = set(errors.NON_RETRYABLE_TYPES)
    assert {"InsufficientQty", "WashTrade", "InvalidPrice", "AuthFailed", "NotFound"} <= names
    assert "BrokerUnavailable" not in names and "RateLimited" not in names


def test_a_404_that_is_not_alpacas_answer_is_unknown_not_absent() -> None:
    mapped = map_error(_api_error(404, "<html><body>404 page not found</body></html>"))
    assert isinstance(mapped, errors.BrokerUnavailable) and mapped.retryable
