"""A small synchronous client for the /_sim admin API, for tests, demos and the CLI."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import requests


class AdminError(RuntimeError):
    """The admin API answered with an error."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(f"admin API error {status}: {text}")
        self.status = status
        self.text = text


class AdminClient:
    """Calls /_sim routes on a running paper broker."""

    def __init__(self, base_url: str, key_id: str, secret_key: str, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._session = requests.Session()
        self._session.headers.update({"APCA-API-KEY-ID": key_id, "APCA-API-SECRET-KEY": secret_key})
        self._timeout = timeout

    def _call(
        self, method: str, path: str, body: dict[str, Any] | None = None, **params: Any
    ) -> Any:
        response = self._session.request(
            method,
            f"{self.base_url}{path}",
            json=body,
            params=params or None,
            timeout=self._timeout,
        )
        if response.status_code >= 400:
            raise AdminError(response.status_code, response.text)
        return response.json() if response.text else None

    def health(self) -> bool:
        """Return True when the broker answers its readiness probe."""
        try:
            return bool(self._session.get(f"{self.base_url}/_sim/health", timeout=2).ok)
        except requests.RequestException:
            return False

    def state(self) -> dict[str, Any]:
        """Return clock, quotes, counts and faults."""
        result: dict[str, Any] = self._call("GET", "/_sim/state")
        return result

    def set_clock(self, when: datetime) -> datetime:
        """Jump the simulated clock forward to `when`."""
        return _time(self._call("POST", "/_sim/clock", {"set": when.isoformat()}))

    def advance(self, seconds: float) -> datetime:
        """Move the simulated clock forward."""
        return _time(self._call("POST", "/_sim/clock", {"advance": seconds}))

    def set_clock_mode(self, mode: str, rate: float | None = None) -> datetime:
        """Switch between real, offset, accelerated and manual time."""
        return _time(self._call("POST", "/_sim/clock", {"mode": mode, "rate": rate}))

    def sync(self) -> datetime:
        """Process everything due now; a barrier after asynchronous order routing."""
        return _time(self._call("POST", "/_sim/sync"))

    def set_price(
        self, symbol: str, price: float | Decimal | None = None, volatility: float | None = None
    ) -> dict[str, Any]:
        """Move a symbol's price now and/or change its volatility."""
        body: dict[str, Any] = {}
        if price is not None:
            body["price"] = str(price)
        if volatility is not None:
            body["volatility"] = volatility
        result: dict[str, Any] = self._call("POST", f"/_sim/prices/{symbol}", body)
        return result

    def set_option_iv(
        self, underlying: str, iv: float | None = None, shift: float | None = None
    ) -> float:
        """Set an underlying's base implied volatility and/or shift it; return the new base."""
        body = {"underlying": underlying, "iv": iv, "shift": shift}
        return float(self._call("POST", "/_sim/options/iv", body)["iv"])

    def set_options_level(self, level: int) -> int:
        """Set the account's options trading level (0-3, Alpaca's levels) until the next reset."""
        return int(self._call("POST", "/_sim/options/level", {"level": level})["level"])

    def add_fault(self, **rule: Any) -> str:
        """Add a fault rule (see README) and return its id."""
        return str(self._call("POST", "/_sim/faults", rule)["id"])

    def remove_fault(self, rule_id: str) -> None:
        """Remove one fault rule."""
        self._call("DELETE", f"/_sim/faults/{rule_id}")

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        self._call("DELETE", "/_sim/faults")

    def faults(self) -> list[dict[str, Any]]:
        """Return the active fault rules."""
        result: list[dict[str, Any]] = self._call("GET", "/_sim/faults")
        return result

    def _order_action(
        self, order_id: str, action: str, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """POST /_sim/orders/{id}/{action}: act on one order as the broker or its dashboard."""
        result: dict[str, Any] = self._call("POST", f"/_sim/orders/{order_id}/{action}", body)
        return result

    def cancel_order(self, order_id: str) -> dict[str, Any]:
        """Cancel an order as if from the dashboard."""
        return self._order_action(order_id, "cancel")

    def expire_order(self, order_id: str) -> dict[str, Any]:
        """Expire an order as the broker would on its own."""
        return self._order_action(order_id, "expire")

    def reject_order(self, order_id: str) -> dict[str, Any]:
        """Reject an accepted order after the fact, as the broker can."""
        return self._order_action(order_id, "reject")

    def set_order_status(self, order_id: str, status: str) -> dict[str, Any]:
        """Park an order in done_for_day, stopped, suspended, ... or resume it with "new"."""
        return self._order_action(order_id, "status", {"status": status})

    def reject_next_cancel(self, order_id: str) -> dict[str, Any]:
        """Make the order's next cancel be accepted (204), then refused (order_cancel_rejected)."""
        return self._order_action(order_id, "reject-next-cancel")

    def reject_next_replace(self, order_id: str) -> dict[str, Any]:
        """Make the order's next replace be accepted (200), then fail (order_replace_rejected)."""
        return self._order_action(order_id, "reject-next-replace")

    def fill_order(
        self,
        order_id: str,
        price: float | Decimal | None = None,
        qty: float | Decimal | None = None,
    ) -> dict[str, Any]:
        """Fill `qty` (default: the rest) of an order now, regardless of the market.

        On an option order `qty` counts units (mleg: ratio x units per leg) and `price` is the
        net per unit (default: its limit).
        """
        body = {k: str(v) for k, v in (("price", price), ("qty", qty)) if v is not None}
        return self._order_action(order_id, "fill", body)

    def open_position(
        self, symbol: str, qty: float | Decimal, price: float | Decimal | None = None
    ) -> dict[str, Any]:
        """Trade `qty` (signed) outside the system."""
        body: dict[str, Any] = {"symbol": symbol, "qty": str(qty)}
        if price is not None:
            body["price"] = str(price)
        result: dict[str, Any] = self._call("POST", "/_sim/positions", body)
        return result

    def close_position(self, symbol: str, cancel_orders: bool = False) -> dict[str, Any]:
        """Flatten a position outside the system."""
        result: dict[str, Any] = self._call(
            "DELETE", f"/_sim/positions/{symbol}", cancel_orders=str(cancel_orders).lower()
        )
        return result

    def drop_streams(self) -> int:
        """Close every trade_updates connection; return how many were closed."""
        return int(self._call("POST", "/_sim/stream/drop")["dropped"])

    def reset(self, cash: float | Decimal | None = None, clock: datetime | None = None) -> datetime:
        """Start over: fresh account and prices, no faults; optionally move the clock anywhere."""
        body: dict[str, Any] = {}
        if cash is not None:
            body["cash"] = str(cash)
        if clock is not None:
            body["clock"] = clock.isoformat()
        return _time(self._call("POST", "/_sim/reset", body))

    def snapshot(self, path: str | None = None) -> str:
        """Write the state to a file and return its path."""
        return str(self._call("POST", "/_sim/snapshot", {"path": path} if path else {})["path"])

    def restore(self, path: str | None = None) -> str:
        """Load the state from a file and return its path."""
        return str(self._call("POST", "/_sim/restore", {"path": path} if path else {})["path"])

    def configure(self, **settings: Any) -> None:
        """Change settings at run time (keys of POST /_sim/config, see README)."""
        self._call("POST", "/_sim/config", settings)

    def fidelity(self) -> dict[str, Any]:
        """The current cancel/replace delays, leg-replace rule and listing/stream switches."""
        result: dict[str, Any] = self.state()["fidelity"]
        return result

    def requests(self) -> dict[str, Any]:
        """Authenticated /v2 requests since the last reset: {"total", "by_route"}."""
        result: dict[str, Any] = self.state()["requests"]
        return result

    def reset_requests(self) -> dict[str, Any]:
        """Zero the /v2 request counter; return the counts it had."""
        result: dict[str, Any] = self._call("POST", "/_sim/requests/reset")
        return result

    def close(self) -> None:
        """Close the HTTP session."""
        self._session.close()


def _time(answer: dict[str, Any]) -> datetime:
    return datetime.fromisoformat(str(answer["now"]).replace("Z", "+00:00"))
