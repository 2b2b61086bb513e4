"""Alpaca-shaped API errors raised by the broker core and rendered by the HTTP layer."""

from __future__ import annotations

from typing import Any

CODE_BAD_REQUEST = 40010000
CODE_INVALID = 40010001
CODE_FORBIDDEN = 40310000
CODE_NOT_FOUND = 40410000
CODE_UNPROCESSABLE = 42210000


class ApiError(Exception):
    """An error answer: HTTP status plus the JSON body Alpaca would send."""

    def __init__(self, status: int, message: str, code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.extra = extra

    def body(self) -> dict[str, Any]:
        """Return the JSON body for this error."""
        body: dict[str, Any] = {}
        if self.code is not None:
            body["code"] = self.code
        body["message"] = self.message
        body.update(self.extra)
        return body


def bad_body() -> ApiError:
    """Return the error for an unparseable request body."""
    return ApiError(400, "request body format is invalid", CODE_BAD_REQUEST)


def unprocessable(message: str, code: int = CODE_UNPROCESSABLE) -> ApiError:
    """Return a 422 error with the given message."""
    return ApiError(422, message, code)


def order_not_found() -> ApiError:
    """Return the 404 for an unknown order."""
    return ApiError(404, "order not found", CODE_NOT_FOUND)


def position_not_found() -> ApiError:
    """Return the 404 for a symbol without a position."""
    return ApiError(404, "position does not exist", CODE_NOT_FOUND)


def duplicate_client_order_id() -> ApiError:
    """Return the 422 Alpaca sends for a reused client_order_id."""
    return ApiError(422, "client_order_id must be unique", CODE_INVALID)


def wash_trade() -> ApiError:
    """Return the 403 for an order that could trade against the account's own order."""
    return ApiError(403, "potential wash trade detected. use complex orders", CODE_FORBIDDEN)
