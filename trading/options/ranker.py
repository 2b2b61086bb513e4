"""The options ranker: short credit spreads of one underlying, best first, every score explained.

A candidate is a vertical credit spread: a short contract and the long contract `width`
further from the money, same expiry and right (an iron condor is one put and one call
candidate). `vertical_candidates` builds them from a chain; `rank_candidates` orders them.

Each candidate gets five parts, each normalised onto [0, 1] on its own (never against the
other candidates, so a part means the same in every run):

- `spread`: liquidity of the quote, 1 - worst leg's (ask - bid) / mid divided by FULL_SPREAD
  (0.25) and clamped: a zero spread is 1, a quarter of the mid or wider (or no mid) is 0.
- `open_interest`: the smaller leg's open interest on a log scale, (log10(oi) - 1) / 3
  clamped: 10 contracts or fewer is 0, 10,000 or more is 1.
- `delta`: 1 - | |short delta| - target_delta | / delta_band, clamped: the target is 1, a
  band's distance or more is 0, no delta is 0 (the band is what the strategy sells).
- `dte`: 1 - |dte - middle of [dte_min, dte_max]| / (dte_max - dte_min), clamped: the middle
  is 1, the window's edges 0.5, half a window beyond them 0; expired (dte <= 0) is 0.
- `premium_risk`: credit / max risk (width - credit, per share, at the mids), capped at
  FULL_PREMIUM_RISK (0.5, a credit of a third of the width) and divided by it; 0 when the
  credit is not positive.

rank_score = 0.25 * spread + 0.15 * open_interest + 0.20 * delta + 0.15 * dte
+ 0.25 * premium_risk, in [0, 1]. Parts are kept to 4 decimals. Ties on rank_score go to the
higher part in that order, then the smaller key, so the order never depends on the input's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from decimal import Decimal
from typing import Self

from pydantic import Field, model_validator

from trading.models import Frozen
from trading.options.chain import OptionChain, OptionContractQuote, OptionRight
from trading.ranking import best_first, clamp01, log_scale, quantize_part, weighted_score

WEIGHTS: dict[str, Decimal] = {
    "spread": Decimal("0.25"),
    "open_interest": Decimal("0.15"),
    "delta": Decimal("0.20"),
    "dte": Decimal("0.15"),
    "premium_risk": Decimal("0.25"),
}
FULL_SPREAD = Decimal("0.25")
OPEN_INTEREST_FLOOR_LOG10 = Decimal(1)  # 10 contracts
OPEN_INTEREST_SPAN_LOG10 = Decimal(3)  # up to 10,000
FULL_PREMIUM_RISK = Decimal("0.5")

_ZERO = Decimal(0)
_ONE = Decimal(1)
_TWO = Decimal(2)


class OptionRankConfig(Frozen):
    """What the strategy wants: the short's |delta| band and the days-to-expiry window."""

    target_delta: Decimal = Field(default=Decimal("0.16"), gt=0, lt=1)
    delta_band: Decimal = Field(default=Decimal("0.10"), gt=0)
    dte_min: int = Field(default=30, ge=1)
    dte_max: int = Field(default=45, ge=1)

    @model_validator(mode="after")
    def _window(self) -> Self:
        """The DTE window is not empty."""
        if self.dte_min > self.dte_max:
            raise ValueError(f"dte_min {self.dte_min} is above dte_max {self.dte_max}")
        return self


class SpreadCandidate(Frozen):
    """A vertical credit spread to rank, summarised: key, expiry, short delta, quote, credit."""

    key: str  # e.g. the short and long OCC symbols
    underlying: str
    right: OptionRight
    expiry: date
    short_strike: Decimal
    long_strike: Decimal
    short_delta: Decimal | None
    credit: Decimal  # per share, at the mids
    width: Decimal = Field(gt=0)
    worst_relative_spread: Decimal | None  # None when a leg has no mid
    min_open_interest: int = Field(ge=0)


class RankedCandidate(Frozen):
    """A candidate's place (1 = best), its rank score and the normalised parts behind it."""

    candidate: SpreadCandidate
    rank: int
    rank_score: Decimal
    parts: dict[str, Decimal]


def spread_candidate(
    short: OptionContractQuote, long: OptionContractQuote
) -> SpreadCandidate | None:
    """The credit spread of selling `short` and buying `long` (None if not a credit vertical)."""
    further = (
        long.strike < short.strike if short.right is OptionRight.PUT else short.strike < long.strike
    )
    if short.expiry != long.expiry or short.right is not long.right or not further:
        return None
    spreads = [short.relative_spread, long.relative_spread]
    worst = None if None in spreads else max(s for s in spreads if s is not None)
    return SpreadCandidate(
        key=f"{short.symbol}/{long.symbol}",
        underlying=short.underlying,
        right=short.right,
        expiry=short.expiry,
        short_strike=short.strike,
        long_strike=long.strike,
        short_delta=short.delta,
        credit=short.mid - long.mid,
        width=abs(short.strike - long.strike),
        worst_relative_spread=worst,
        min_open_interest=min(short.open_interest, long.open_interest),
    )


def vertical_candidates(chain: OptionChain, width: Decimal) -> list[SpreadCandidate]:
    """Every credit vertical of the chain whose long is exactly `width` further out."""
    candidates: list[SpreadCandidate] = []
    for expiry in chain.expiries():
        for right in (OptionRight.PUT, OptionRight.CALL):
            for short in chain.at(expiry, right):
                wing = short.strike - width if right is OptionRight.PUT else short.strike + width
                long = chain.find(expiry, right, wing)
                built = None if long is None else spread_candidate(short, long)
                if built is not None:
                    candidates.append(built)
    return candidates


def rank_parts(
    candidate: SpreadCandidate, today: date, config: OptionRankConfig
) -> dict[str, Decimal]:
    """The five normalised parts of one candidate, each in [0, 1]."""
    relative = candidate.worst_relative_spread
    spread = _ZERO if relative is None else clamp01(_ONE - relative / FULL_SPREAD)
    open_interest = log_scale(
        Decimal(candidate.min_open_interest), OPEN_INTEREST_FLOOR_LOG10, OPEN_INTEREST_SPAN_LOG10
    )
    if candidate.short_delta is None:
        delta = _ZERO
    else:
        distance = abs(abs(candidate.short_delta) - config.target_delta)
        delta = clamp01(_ONE - distance / config.delta_band)
    dte = (candidate.expiry - today).days
    middle = Decimal(config.dte_min + config.dte_max) / _TWO
    window = Decimal(max(config.dte_max - config.dte_min, 1))
    dte_part = _ZERO if dte <= 0 else clamp01(_ONE - abs(dte - middle) / window)
    risk = candidate.width - candidate.credit
    if candidate.credit <= 0:
        premium = _ZERO
    elif risk <= 0:
        premium = _ONE  # a credit of the whole width cannot lose
    else:
        premium = clamp01(candidate.credit / risk / FULL_PREMIUM_RISK)
    return {
        "spread": quantize_part(spread),
        "open_interest": quantize_part(open_interest),
        "delta": quantize_part(delta),
        "dte": quantize_part(dte_part),
        "premium_risk": quantize_part(premium),
    }


def rank_score(parts: dict[str, Decimal]) -> Decimal:
    """The weighted sum of the parts (exact: parts have 4 decimals, weights 2)."""
    return weighted_score(WEIGHTS, parts)


def rank_candidates(
    candidates: Sequence[SpreadCandidate], today: date, config: OptionRankConfig | None = None
) -> list[RankedCandidate]:
    """The candidates best first, numbered from 1, each with its rank score and parts."""
    chosen = config or OptionRankConfig()
    placed = best_first(
        candidates,
        lambda candidate: rank_parts(candidate, today, chosen),
        WEIGHTS,
        lambda candidate: (candidate.key, candidate.model_dump_json()),
    )
    return [
        RankedCandidate(candidate=p.item, rank=p.rank, rank_score=p.rank_score, parts=p.parts)
        for p in placed
    ]
