"""The ranker: one order for the scored signals of every strategy, best first.

Pure and deterministic. Each signal gets four parts, each normalised onto [0, 1] on its own
(never against the other signals, so a part means the same in every run):

- `score`: the scorer's score in [-1, 1], mapped as (score + 1) / 2 (clamped).
- `confidence`: the strategy's confidence 1..5, mapped as (confidence - 1) / 4.
- `reward_risk`: (target - entry) / (entry - stop), capped at 3 and divided by 3 (a 3R trade
  or better gets full marks); 0 when the target is not above the entry.
- `liquidity`: dollar volume of the recent bars on a log scale, (log10(dollars) - 5) / 4
  clamped: $100k or less is 0, $1B or more is 1.

A part that cannot be computed (confidence None; entry, stop or target missing or the stop not
below the entry; liquidity None) is NEUTRAL = 0.5, the middle of its scale: it neither helps
nor hurts.

rank_score = 0.50 * score + 0.20 * confidence + 0.20 * reward_risk + 0.10 * liquidity, in
[0, 1]. Parts are kept to 4 decimals and every `Ranked` carries them, so anyone can see why a
signal ranked where it did. Ties on rank_score go to the higher score part, then confidence,
reward/risk and liquidity, then the smaller signal_key (then the raw fields), so the order never
depends on the order of the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal

from pydantic import Field

from trading.models import Frozen
from trading.ranking import best_first, clamp01, log_scale, quantize_part, weighted_score

NEUTRAL = Decimal("0.5")
WEIGHTS: dict[str, Decimal] = {
    "score": Decimal("0.50"),
    "confidence": Decimal("0.20"),
    "reward_risk": Decimal("0.20"),
    "liquidity": Decimal("0.10"),
}
FULL_REWARD_RISK = Decimal(3)
LIQUIDITY_FLOOR_LOG10 = Decimal(5)  # $100k
LIQUIDITY_SPAN_LOG10 = Decimal(4)  # up to $1B

_ONE = Decimal(1)
_TWO = Decimal(2)
_FOUR = Decimal(4)


class RankInput(Frozen):
    """One scored signal to rank, with what its strategy and the market said about it."""

    signal_key: str
    symbol: str
    strategy: str
    score: Decimal
    confidence: int | None = Field(default=None, ge=1, le=5)
    entry: Decimal | None = None
    stop: Decimal | None = None
    target: Decimal | None = None
    liquidity: Decimal | None = None  # dollar volume of the recent bars


class Ranked(Frozen):
    """A signal's place (1 = best), its rank score and the normalised parts behind it."""

    item: RankInput
    rank: int
    rank_score: Decimal
    parts: dict[str, Decimal]


def reward_risk(item: RankInput) -> Decimal | None:
    """(target - entry) / (entry - stop), or None when it cannot be computed."""
    entry, stop, target = item.entry, item.stop, item.target
    if entry is None or stop is None or target is None or stop >= entry:
        return None
    return (target - entry) / (entry - stop)


def rank_parts(item: RankInput) -> dict[str, Decimal]:
    """The four normalised parts of one signal, each in [0, 1] (NEUTRAL when unknown)."""
    score = clamp01((item.score + _ONE) / _TWO)
    confidence = NEUTRAL if item.confidence is None else (Decimal(item.confidence) - _ONE) / _FOUR
    ratio = reward_risk(item)
    rr = NEUTRAL if ratio is None else clamp01(ratio / FULL_REWARD_RISK)
    liquidity = (
        NEUTRAL
        if item.liquidity is None
        else log_scale(item.liquidity, LIQUIDITY_FLOOR_LOG10, LIQUIDITY_SPAN_LOG10)
    )
    return {
        "score": quantize_part(score),
        "confidence": quantize_part(confidence),
        "reward_risk": quantize_part(rr),
        "liquidity": quantize_part(liquidity),
    }


def rank_score(parts: dict[str, Decimal]) -> Decimal:
    """The weighted sum of the parts (exact: parts have 4 decimals, weights 2)."""
    return weighted_score(WEIGHTS, parts)


def _tie_break(item: RankInput) -> tuple[str, ...]:
    """The signal_key, then the raw fields."""
    return tuple(
        str(value)
        for value in (
            item.signal_key,
            item.symbol,
            item.strategy,
            item.score,
            item.confidence,
            item.entry,
            item.stop,
            item.target,
            item.liquidity,
        )
    )


def rank(items: Sequence[RankInput]) -> list[Ranked]:
    """The signals best first, numbered from 1, each with its rank score and parts."""
    return [
        Ranked(item=placed.item, rank=placed.rank, rank_score=placed.rank_score, parts=placed.parts)
        for placed in best_first(items, rank_parts, WEIGHTS, _tie_break)
    ]
