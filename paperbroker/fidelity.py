"""How the broker reproduces Alpaca's less convenient behaviours, switchable at run time.

Defaults are the faithful (stricter) reading of the sources in paperbroker/README.md:
cancels and replaces take a short while, replacing a bracket/OCO leg may change only its
prices, held legs are listed, and every group member's cancel is streamed.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import StrEnum
from typing import Any

from paperbroker.errors import unprocessable


class LegReplace(StrEnum):
    """What a replace (PATCH) may change on an order that belongs to a complex order."""

    PRICES = "prices"  # bracket/OCO legs: limit_price/stop_price only; OTO orders: refused
    ANY = "any"  # complex-order members are replaced like simple orders


@dataclass
class Fidelity:
    """Run-time switches (set from BrokerConfig, changed through POST /_sim/config)."""

    cancel_delay_ms: int = 50
    replace_delay_ms: int = 50
    leg_replace: LegReplace = LegReplace.PRICES
    hide_held_legs: bool = False
    skip_sibling_cancel_events: bool = False

    @property
    def cancel_delay(self) -> float:
        """Seconds an order stays pending_cancel."""
        return self.cancel_delay_ms / 1000

    @property
    def replace_delay(self) -> float:
        """Seconds an order stays pending_replace."""
        return self.replace_delay_ms / 1000

    def adopt(self, other: Fidelity) -> None:
        """Take every setting from `other` (the object is shared, so update it in place)."""
        for field in fields(self):
            setattr(self, field.name, getattr(other, field.name))

    def configure(self, settings: dict[str, Any]) -> None:
        """Apply the keys of a /_sim/config body that name a setting here; 422 on bad values."""
        try:
            for key in ("cancel_delay_ms", "replace_delay_ms"):
                if key in settings:
                    value = int(settings[key])
                    if value < 0:
                        raise ValueError(f"{key} must be >= 0")
                    setattr(self, key, value)
            if "leg_replace" in settings:
                self.leg_replace = LegReplace(str(settings["leg_replace"]))
            for key in ("hide_held_legs", "skip_sibling_cancel_events"):
                if key in settings:
                    setattr(self, key, _flag(settings[key]))
        except ValueError as exc:
            raise unprocessable(str(exc)) from exc

    def as_json(self) -> dict[str, Any]:
        """The settings as /_sim/state reports them."""
        return {field.name: _plain(getattr(self, field.name)) for field in fields(self)}


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "1", "yes", "on"):
        return True
    if text in ("false", "0", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value}")


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value
