"""Signal scoring: the Scorer protocol, the momentum/volume and setup scorers, the default that
picks one by the signal's strategy, a registry by name, and the values the score drain passes
around. Pure: no I/O, safe to import into workflows.

A scorer turns one signal (symbol, strategy, side, features) into a ScoreResult or raises
ScoringError with a reason; the drain records the first as SCORED and the second as ERROR.
Any other exception is treated as transient: the signal stays PENDING under its lease and a
later drain retries it, until the attempts cap ends it in ERROR.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Protocol, runtime_checkable

from pydantic import Field, model_validator

from trading.broker_models import OrderSide
from trading.ledger_records import (
    DEFAULT_SIGNAL_LEASE_SECONDS,
    DEFAULT_SIGNAL_MAX_AGE_SECONDS,
    DEFAULT_SIGNAL_MAX_ATTEMPTS,
    SignalFunnel,
)
from trading.models import Frozen, JsonScalar
from trading.registry import Named, NamedRegistry

# --- scoring --------------------------------------------------------------------------------

SCORE_QUANTUM = Decimal("0.0001")


class ScoringError(Exception):
    """A signal that cannot be scored: `code` is stable, `detail` says what was wrong."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail

    @property
    def reason(self) -> str:
        """The text recorded as the signal's last_error."""
        return f"{self.code}: {self.detail}"


class UnknownScorer(LookupError):
    """The drain named a scorer no registry holds."""


class SignalToScore(Frozen):
    """What a scorer sees of a signal."""

    signal_key: str
    symbol: str
    strategy: str
    side: OrderSide = OrderSide.BUY
    features: dict[str, JsonScalar] = Field(default_factory=dict)


class ScoreResult(Frozen):
    """A scorer's verdict: score in [-1, 1] (positive favours the signal's side), confidence."""

    score: Decimal = Field(ge=-1, le=1)
    confidence: Decimal = Field(ge=0, le=1)


@runtime_checkable
class Scorer(Named, Protocol):
    """Scores one signal deterministically, or raises ScoringError; a drain picks it by name."""

    def score(self, signal: SignalToScore) -> ScoreResult:
        """The score of `signal`; raise ScoringError when it cannot be scored."""
        ...


def _clamp(value: Decimal, low: Decimal, high: Decimal) -> Decimal:
    return max(low, min(high, value))


def feature_number(
    features: Mapping[str, JsonScalar],
    name: str,
    *,
    default: Decimal | None = None,
    low: Decimal | None = None,
    high: Decimal | None = None,
) -> Decimal:
    """A numeric feature as Decimal; missing (no default), non-numeric or out of range raise."""
    raw = features.get(name)
    if raw is None:
        if default is None:
            raise ScoringError("missing_feature", f"feature {name!r} is required")
        return default
    # bool is an int subclass; a flag is never a number here.
    if isinstance(raw, bool) or not isinstance(raw, int | float):
        raise ScoringError(
            "invalid_feature", f"feature {name!r} must be a number, got {type(raw).__name__}"
        )
    if isinstance(raw, float) and not math.isfinite(raw):
        raise ScoringError("invalid_feature", f"feature {name!r} must be finite, got {raw}")
    value = Decimal(str(raw))
    if (low is not None and value < low) or (high is not None and value > high):
        raise ScoringError(
            "invalid_feature", f"feature {name!r}={value} is outside [{low}, {high}]"
        )
    return value


class MomentumVolumeScorer:
    """Momentum signals' scorer: momentum in the signal's direction, weighted by relative volume.

    Features: `momentum` (required; fractional return over the strategy's lookback,
    0.02 = +2 %), `volume_ratio` (volume / average volume, default 1) and `rsi` (optional,
    0-100; an overextended RSI in the signal's direction halves the score at the extreme).
    """

    # A 5 % move in the signal's direction is full momentum; twice average volume is full
    # participation. Beyond either the score stops growing.
    FULL_MOMENTUM = Decimal("0.05")
    FULL_VOLUME = Decimal(2)
    MAX_ABS_MOMENTUM = Decimal(10)
    MAX_VOLUME_RATIO = Decimal(1000)

    name = "momentum_volume"

    def score(self, signal: SignalToScore) -> ScoreResult:
        """Score in [-1, 1] and confidence in [0, 1], rounded to 4 places."""
        features = signal.features
        momentum = feature_number(
            features, "momentum", low=-self.MAX_ABS_MOMENTUM, high=self.MAX_ABS_MOMENTUM
        )
        volume_ratio = feature_number(
            features, "volume_ratio", default=Decimal(1), low=Decimal(0), high=self.MAX_VOLUME_RATIO
        )
        rsi = (
            feature_number(features, "rsi", low=Decimal(0), high=Decimal(100))
            if features.get("rsi") is not None
            else None
        )
        one = Decimal(1)
        half = Decimal("0.5")
        direction = one if signal.side is OrderSide.BUY else -one
        drive = _clamp(direction * momentum / self.FULL_MOMENTUM, -one, one)
        participation = _clamp(volume_ratio / self.FULL_VOLUME, Decimal(0), one)
        score = drive * (half + half * participation)
        if rsi is not None:
            # Overbought for a buy (over 70), oversold for a sell (under 30).
            stretch = (rsi - 70) / 30 if direction > 0 else (30 - rsi) / 30
            score *= one - half * _clamp(stretch, Decimal(0), one)
        confidence = Decimal("0.2") + Decimal("0.4") * participation + Decimal("0.4") * abs(drive)
        return ScoreResult(
            score=_clamp(score, -one, one).quantize(SCORE_QUANTUM, ROUND_HALF_EVEN),
            confidence=_clamp(confidence, Decimal(0), one).quantize(SCORE_QUANTUM, ROUND_HALF_EVEN),
        )


class SetupScorer:
    """Scores a setup (an entry with a stop and a target) by its grade, reward and volume.

    Features: `confidence` (required, the strategy's grade 1-5), `reward_risk` (required,
    reward over risk to the stop, 3 or more is full) and `volume_ratio` (default 1, twice the
    average is full). score = 0.4 x (confidence - 1) / 4 + 0.4 x min(reward_risk / 3, 1)
    + 0.2 x min(volume_ratio / 2, 1), in [0, 1] whatever the side (a setup is already in its
    side's direction); the result's confidence is the grade over 5.
    """

    FULL_REWARD_RISK = Decimal(3)
    FULL_VOLUME = Decimal(2)
    MAX_REWARD_RISK = Decimal(1000)
    MAX_VOLUME_RATIO = Decimal(1000)
    GRADE_WEIGHT = Decimal("0.4")
    REWARD_WEIGHT = Decimal("0.4")
    VOLUME_WEIGHT = Decimal("0.2")

    name = "setup"

    def score(self, signal: SignalToScore) -> ScoreResult:
        """Score and confidence in [0, 1], rounded to 4 places."""
        features = signal.features
        grade = feature_number(features, "confidence", low=Decimal(1), high=Decimal(5))
        reward_risk = feature_number(
            features, "reward_risk", low=Decimal(0), high=self.MAX_REWARD_RISK
        )
        volume_ratio = feature_number(
            features, "volume_ratio", default=Decimal(1), low=Decimal(0), high=self.MAX_VOLUME_RATIO
        )
        one = Decimal(1)
        score = (
            self.GRADE_WEIGHT * (grade - 1) / 4
            + self.REWARD_WEIGHT * min(reward_risk / self.FULL_REWARD_RISK, one)
            + self.VOLUME_WEIGHT * min(volume_ratio / self.FULL_VOLUME, one)
        )
        return ScoreResult(
            score=_clamp(score, Decimal(0), one).quantize(SCORE_QUANTUM, ROUND_HALF_EVEN),
            confidence=(grade / 5).quantize(SCORE_QUANTUM, ROUND_HALF_EVEN),
        )


# Which scorer reads which strategy's signals (the names of trading/strategies).
STRATEGY_SCORERS: Mapping[str, str] = {
    "momentum": MomentumVolumeScorer.name,
    "orb": SetupScorer.name,
    "trend_pullback": SetupScorer.name,
}


class StrategyScorer:
    """The default: each signal scored by the scorer of the strategy that proposed it.

    `momentum` signals go to MomentumVolumeScorer, `orb` and `trend_pullback` to SetupScorer.
    A strategy not in STRATEGY_SCORERS is scored as a setup when its signal carries one
    (`reward_risk` among its features) and by MomentumVolumeScorer otherwise, as every signal
    was before setups existed.
    """

    name = "by_strategy"

    def __init__(self, routes: Mapping[str, str] = STRATEGY_SCORERS) -> None:
        self._routes = dict(routes)
        self._scorers: dict[str, Scorer] = {
            MomentumVolumeScorer.name: MomentumVolumeScorer(),
            SetupScorer.name: SetupScorer(),
        }
        unknown = sorted(set(self._routes.values()) - set(self._scorers))
        if unknown:
            raise UnknownScorer(f"no scorer named {', '.join(map(repr, unknown))} to route to")

    def scorer_for(self, signal: SignalToScore) -> Scorer:
        """The scorer that reads this signal's strategy."""
        routed = self._routes.get(signal.strategy)
        if routed is None:
            routed = (
                SetupScorer.name if "reward_risk" in signal.features else MomentumVolumeScorer.name
            )
        return self._scorers[routed]

    def score(self, signal: SignalToScore) -> ScoreResult:
        """The score its strategy's scorer gives."""
        return self.scorer_for(signal).score(signal)


DEFAULT_SCORER = StrategyScorer.name


class ScorerRegistry(NamedRegistry[Scorer]):
    """Scorers by name; a drain names the one it wants."""

    kind = "scorer"
    unknown = UnknownScorer


def builtin_scorers() -> ScorerRegistry:
    """A registry holding the scorers that ship with the system (add new ones here)."""
    return ScorerRegistry([MomentumVolumeScorer(), SetupScorer(), StrategyScorer()])


# --- the drain's values ---------------------------------------------------------------------

# Drains run ceil(limit / batch) batch activities; this keeps the history well below its cap.
MAX_DRAIN_BATCHES = 2000


class ScoreBatch(Frozen):
    """One batch: claim up to `limit` PENDING signals, score them with `scorer`, record each."""

    limit: int = Field(ge=1, le=1000)
    scorer: str = Field(default=DEFAULT_SCORER, min_length=1)
    max_attempts: int = Field(default=DEFAULT_SIGNAL_MAX_ATTEMPTS, ge=1)
    lease_seconds: int = Field(default=DEFAULT_SIGNAL_LEASE_SECONDS, ge=1)
    max_age_seconds: int = Field(default=DEFAULT_SIGNAL_MAX_AGE_SECONDS, ge=1)


class ScoreCounts(Frozen):
    """Signals claimed, SCORED, ERROR (by code) and left PENDING for a retry."""

    claimed: int = 0
    scored: int = 0
    error: int = 0
    # Claimed but already final (another writer got there first): nothing recorded.
    already_final: int = 0
    # The scorer failed in a way that may pass (not a ScoringError): still PENDING, leased.
    retry_later: int = 0
    error_codes: dict[str, int] = Field(default_factory=dict)


class ScoreBatchResult(ScoreCounts):
    """What one batch did."""


class DrainInput(Frozen):
    """Score up to `limit` PENDING signals, `batch` per activity, with the named scorer."""

    limit: int = Field(default=10_000, ge=1)
    batch: int = Field(default=100, ge=1, le=1000)
    scorer: str = Field(default=DEFAULT_SCORER, min_length=1)
    max_attempts: int = Field(default=DEFAULT_SIGNAL_MAX_ATTEMPTS, ge=1)
    max_age_seconds: int = Field(default=DEFAULT_SIGNAL_MAX_AGE_SECONDS, ge=1)
    lease_seconds: int = Field(default=DEFAULT_SIGNAL_LEASE_SECONDS, ge=1)

    @model_validator(mode="after")
    def _bounded_batches(self) -> DrainInput:
        if -(-self.limit // self.batch) > MAX_DRAIN_BATCHES:
            raise ValueError(
                f"limit {self.limit} / batch {self.batch} needs more than "
                f"{MAX_DRAIN_BATCHES} batches; raise batch or lower limit"
            )
        return self


class DrainProgress(ScoreCounts):
    """Where a drain is (the `progress` query): its phase and the counts of its batches so far."""

    phase: str = "starting"
    batches: int = 0
    expired: int = 0

    def plus(self, batch: ScoreBatchResult) -> DrainProgress:
        """This progress with one more batch counted."""
        codes = dict(self.error_codes)
        for code, count in batch.error_codes.items():
            codes[code] = codes.get(code, 0) + count
        return self.model_copy(
            update={
                "batches": self.batches + 1,
                "claimed": self.claimed + batch.claimed,
                "scored": self.scored + batch.scored,
                "error": self.error + batch.error,
                "already_final": self.already_final + batch.already_final,
                "retry_later": self.retry_later + batch.retry_later,
                "error_codes": codes,
            }
        )


class DrainResult(Frozen):
    """A finished drain: its counts, what is still PENDING, and the ledger's signal funnel."""

    claimed: int
    scored: int
    error: int
    expired: int
    remaining_pending: int
    batches: int
    already_final: int
    retry_later: int
    error_codes: dict[str, int]
    funnel: SignalFunnel


def next_batch_size(request: DrainInput, claimed_so_far: int) -> int:
    """How many to claim next: `batch`, less near `limit`; 0 when the limit is reached."""
    return max(0, min(request.batch, request.limit - claimed_so_far))
