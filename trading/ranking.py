"""What both rankers share (trading/ranker.py for signals, trading/options/ranker.py for credit
spreads), pure: parts normalised onto [0, 1] and kept to 4 decimals, a weighted sum of them,
and the order best first with each item's score and the parts that explain it.

Ties on the score go to the higher part in the weights' order, then to the ranker's tie-break
(its key, then the raw fields), so the order never depends on the order of the input.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Generic, TypeVar

PART_QUANTUM = Decimal("0.0001")

_ZERO = Decimal(0)
_ONE = Decimal(1)

Item = TypeVar("Item")


def clamp01(value: Decimal) -> Decimal:
    """`value` clamped onto [0, 1]."""
    return max(_ZERO, min(_ONE, value))


def quantize_part(value: Decimal) -> Decimal:
    """A part kept to 4 decimals (half to even)."""
    return value.quantize(PART_QUANTUM, rounding=ROUND_HALF_EVEN)


def log_scale(value: Decimal, floor_log10: Decimal, span_log10: Decimal) -> Decimal:
    """(log10(value) - floor_log10) / span_log10 clamped onto [0, 1]; 0 when not positive."""
    if value <= 0:
        return _ZERO
    return clamp01((value.log10() - floor_log10) / span_log10)


def weighted_score(weights: Mapping[str, Decimal], parts: Mapping[str, Decimal]) -> Decimal:
    """The weighted sum of the parts (exact: parts have 4 decimals, weights 2)."""
    return sum((weights[name] * parts[name] for name in weights), _ZERO)


@dataclass(frozen=True)
class Placed(Generic[Item]):
    """An item's place (1 = best), its score and the normalised parts behind it."""

    item: Item
    rank: int
    rank_score: Decimal
    parts: dict[str, Decimal]


def best_first(
    items: Iterable[Item],
    parts_of: Callable[[Item], dict[str, Decimal]],
    weights: Mapping[str, Decimal],
    tie_break: Callable[[Item], tuple[str, ...]],
) -> list[Placed[Item]]:
    """The items best first, numbered from 1: by weighted score, then each part in the
    weights' order (higher first), then `tie_break` (smaller first)."""
    scored = []
    for item in items:
        parts = parts_of(item)
        total = weighted_score(weights, parts)
        key = (-total, tuple(-parts[name] for name in weights), tie_break(item))
        scored.append((key, item, total, parts))
    scored.sort(key=lambda entry: entry[0])
    return [
        Placed(item=item, rank=n, rank_score=total, parts=parts)
        for n, (_, item, total, parts) in enumerate(scored, start=1)
    ]
