"""The default scorer, the scorer registry and the drain's batch arithmetic (pure, no I/O)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from trading.broker_models import OrderSide
from trading.models import JsonScalar
from trading.scoring import (
    DEFAULT_SCORER,
    SCORE_QUANTUM,
    DrainInput,
    DrainProgress,
    MomentumVolumeScorer,
    ScoreBatchResult,
    Scorer,
    ScoreResult,
    ScorerRegistry,
    ScoringError,
    SetupScorer,
    SignalToScore,
    StrategyScorer,
    UnknownScorer,
    builtin_scorers,
    next_batch_size,
)

SCORER = MomentumVolumeScorer()


def _signal(
    side: OrderSide = OrderSide.BUY, strategy: str = "breakout", **features: JsonScalar
) -> SignalToScore:
    return SignalToScore(
        signal_key="s-1", symbol="AAPL", strategy=strategy, side=side, features=features
    )


def _error(signal: SignalToScore) -> ScoringError:
    with pytest.raises(ScoringError) as raised:
        SCORER.score(signal)
    return raised.value


momenta = st.floats(min_value=-10, max_value=10, allow_nan=False)
volumes = st.floats(min_value=0, max_value=1000, allow_nan=False)
rsis = st.one_of(st.none(), st.floats(min_value=0, max_value=100, allow_nan=False))
sides = st.sampled_from([OrderSide.BUY, OrderSide.SELL])


def test_a_strong_move_on_heavy_volume_scores_high_with_high_confidence() -> None:
    result = SCORER.score(_signal(momentum=0.06, volume_ratio=2.5))
    assert result == ScoreResult(score=Decimal(1), confidence=Decimal(1))


def test_defaults_apply_to_optional_features() -> None:
    # momentum 2.5 % is half of full drive; volume_ratio defaults to 1 (half participation).
    result = SCORER.score(_signal(momentum=0.025))
    assert result.score == Decimal("0.3750")
    assert result.confidence == Decimal("0.6000")


def test_an_overbought_rsi_halves_a_buy_at_the_extreme() -> None:
    plain = SCORER.score(_signal(momentum=0.05, volume_ratio=2))
    extreme = SCORER.score(_signal(momentum=0.05, volume_ratio=2, rsi=100))
    assert extreme.score == plain.score / 2
    assert SCORER.score(_signal(momentum=0.05, volume_ratio=2, rsi=70)).score == plain.score


def test_a_sell_signal_scores_falling_momentum_positive() -> None:
    assert SCORER.score(_signal(OrderSide.SELL, momentum=-0.05)).score > 0
    assert SCORER.score(_signal(OrderSide.BUY, momentum=-0.05)).score < 0


def test_a_missing_momentum_is_a_specific_scoring_error() -> None:
    error = _error(_signal(volume_ratio=1.5))
    assert error.code == "missing_feature"
    assert error.reason == "missing_feature: feature 'momentum' is required"


@pytest.mark.parametrize(
    ("features", "fragment"),
    [
        ({"momentum": "0.02"}, "'momentum' must be a number, got str"),
        ({"momentum": True}, "'momentum' must be a number, got bool"),
        ({"momentum": math.nan}, "'momentum' must be finite"),
        ({"momentum": math.inf}, "'momentum' must be finite"),
        ({"momentum": 11}, "'momentum'=11 is outside [-10, 10]"),
        ({"momentum": 0.01, "volume_ratio": -1}, "'volume_ratio'=-1 is outside"),
        ({"momentum": 0.01, "rsi": 101}, "'rsi'=101 is outside [0, 100]"),
    ],
)
def test_unusable_features_are_invalid_feature_errors(
    features: dict[str, JsonScalar], fragment: str
) -> None:
    error = _error(_signal(**features))
    assert error.code == "invalid_feature"
    assert fragment in error.reason


@given(momentum=momenta, volume_ratio=volumes, rsi=rsis, side=sides)
def test_scores_and_confidences_stay_in_range_and_on_the_quantum(
    momentum: float, volume_ratio: float, rsi: float | None, side: OrderSide
) -> None:
    result = SCORER.score(_signal(side, momentum=momentum, volume_ratio=volume_ratio, rsi=rsi))
    assert -1 <= result.score <= 1
    assert 0 <= result.confidence <= 1
    assert result.score == result.score.quantize(SCORE_QUANTUM)
    assert result.confidence == result.confidence.quantize(SCORE_QUANTUM)
    # Deterministic: the same signal scores the same.
    assert SCORER.score(_signal(side, momentum=momentum, volume_ratio=volume_ratio, rsi=rsi)) == (
        result
    )


@given(a=momenta, b=momenta, volume_ratio=volumes)
def test_more_momentum_never_scores_a_buy_lower(a: float, b: float, volume_ratio: float) -> None:
    low, high = sorted([a, b])
    assert (
        SCORER.score(_signal(momentum=low, volume_ratio=volume_ratio)).score
        <= SCORER.score(_signal(momentum=high, volume_ratio=volume_ratio)).score
    )


@given(momentum=momenta, volume_ratio=volumes)
def test_a_sell_mirrors_a_buy(momentum: float, volume_ratio: float) -> None:
    buy = SCORER.score(_signal(OrderSide.BUY, momentum=momentum, volume_ratio=volume_ratio))
    sell = SCORER.score(_signal(OrderSide.SELL, momentum=-momentum, volume_ratio=volume_ratio))
    assert buy == sell


@given(
    features=st.dictionaries(
        st.sampled_from(["momentum", "volume_ratio", "rsi", "gap", "note"]),
        st.one_of(
            st.none(),
            st.booleans(),
            st.integers(min_value=-(10**6), max_value=10**6),
            st.floats(allow_nan=True, allow_infinity=True),
            st.text(max_size=5),
        ),
    ),
    side=sides,
)
def test_any_features_give_a_score_in_range_or_a_scoring_error(
    features: dict[str, JsonScalar], side: OrderSide
) -> None:
    try:
        result = SCORER.score(_signal(side, **features))
    except ScoringError as exc:
        assert exc.code in {"missing_feature", "invalid_feature"}
        assert exc.reason
    else:
        assert -1 <= result.score <= 1 and 0 <= result.confidence <= 1


class _FixedScorer:
    name = "fixed"

    def score(self, signal: SignalToScore) -> ScoreResult:
        return ScoreResult(score=Decimal("0.5"), confidence=Decimal("0.5"))


def test_the_registry_finds_scorers_by_name_and_names_the_known_ones() -> None:
    registry = builtin_scorers()
    assert DEFAULT_SCORER == "by_strategy"
    assert registry.get(DEFAULT_SCORER).name == DEFAULT_SCORER
    registry.register(_FixedScorer())
    assert registry.names() == ["by_strategy", "fixed", "momentum_volume", "setup"]
    assert all(isinstance(registry.get(name), Scorer) for name in registry.names())
    with pytest.raises(
        UnknownScorer,
        match="no scorer named 'nope'; registered: by_strategy, fixed, momentum_volume, setup",
    ):
        registry.get("nope")
    with pytest.raises(ValueError, match="already registered"):
        registry.register(_FixedScorer())
    with pytest.raises(UnknownScorer, match="registered: none"):
        ScorerRegistry().get(DEFAULT_SCORER)


@given(
    limit=st.integers(min_value=1, max_value=2000),
    batch=st.integers(min_value=1, max_value=1000),
    claimed=st.integers(min_value=0, max_value=6000),
)
def test_batches_never_claim_past_the_limit(limit: int, batch: int, claimed: int) -> None:
    request = DrainInput(limit=limit, batch=batch)
    size = next_batch_size(request, claimed)
    assert 0 <= size <= batch
    assert claimed + size <= max(limit, claimed)
    assert (size == 0) == (claimed >= limit)


def test_a_drain_that_needs_too_many_batches_is_refused() -> None:
    with pytest.raises(ValidationError, match="more than 2000 batches"):
        DrainInput(limit=1_000_000, batch=10)


def test_progress_adds_batches_and_error_codes() -> None:
    progress = (
        DrainProgress()
        .plus(ScoreBatchResult(claimed=3, scored=2, error=1, error_codes={"missing_feature": 1}))
        .plus(
            ScoreBatchResult(claimed=2, error=1, retry_later=1, error_codes={"missing_feature": 1})
        )
    )
    assert (progress.batches, progress.claimed, progress.scored, progress.error) == (2, 5, 2, 2)
    assert progress.retry_later == 1
    assert progress.error_codes == {"missing_feature": 2}


# --- the setup scorer and the default that routes by strategy --------------------------------

SETUP = SetupScorer()
BY_STRATEGY = StrategyScorer()


def test_a_setup_scores_its_grade_reward_and_volume() -> None:
    # 0.4 x (4 - 1) / 4 + 0.4 x 2 / 3 + 0.2 x 1.5 / 2 = 0.3 + 0.26667 + 0.15
    result = SETUP.score(_signal(confidence=4, reward_risk=2, volume_ratio=1.5))
    assert result == ScoreResult(score=Decimal("0.7167"), confidence=Decimal("0.8000"))
    best = SETUP.score(_signal(confidence=5, reward_risk=3, volume_ratio=2))
    assert best == ScoreResult(score=Decimal(1), confidence=Decimal(1))
    worst = SETUP.score(_signal(confidence=1, reward_risk=0, volume_ratio=0))
    assert worst == ScoreResult(score=Decimal(0), confidence=Decimal("0.2"))
    # volume_ratio defaults to 1 (half of full); a sell setup scores like a buy.
    plain = SETUP.score(_signal(confidence=3, reward_risk=3))
    assert plain.score == Decimal("0.7000")
    assert SETUP.score(_signal(OrderSide.SELL, confidence=3, reward_risk=3)) == plain


@pytest.mark.parametrize(
    ("features", "code", "fragment"),
    [
        ({"reward_risk": 2}, "missing_feature", "'confidence' is required"),
        ({"confidence": 3}, "missing_feature", "'reward_risk' is required"),
        ({"confidence": 6, "reward_risk": 2}, "invalid_feature", "'confidence'=6 is outside"),
        ({"confidence": 3, "reward_risk": -1}, "invalid_feature", "'reward_risk'=-1 is outside"),
    ],
)
def test_an_incomplete_setup_is_a_scoring_error(
    features: dict[str, JsonScalar], code: str, fragment: str
) -> None:
    with pytest.raises(ScoringError) as raised:
        SETUP.score(_signal(**features))
    assert raised.value.code == code and fragment in raised.value.reason


@given(
    grade=st.integers(min_value=1, max_value=5),
    reward_risk=st.floats(min_value=0, max_value=1000, allow_nan=False),
    volume_ratio=st.floats(min_value=0, max_value=1000, allow_nan=False),
    side=sides,
)
def test_setup_scores_stay_in_range_and_grow_with_the_grade(
    grade: int, reward_risk: float, volume_ratio: float, side: OrderSide
) -> None:
    result = SETUP.score(
        _signal(side, confidence=grade, reward_risk=reward_risk, volume_ratio=volume_ratio)
    )
    assert 0 <= result.score <= 1 and result.confidence == Decimal(grade) / 5
    if grade < 5:
        better = SETUP.score(
            _signal(side, confidence=grade + 1, reward_risk=reward_risk, volume_ratio=volume_ratio)
        )
        assert better.score > result.score


def test_the_default_scores_each_signal_with_its_strategys_scorer() -> None:
    momentum = _signal(strategy="momentum", momentum=0.025)
    assert BY_STRATEGY.score(momentum) == SCORER.score(momentum)
    for strategy in ("orb", "trend_pullback"):
        setup = _signal(strategy=strategy, confidence=4, reward_risk=2, volume_ratio=1.5)
        assert BY_STRATEGY.score(setup) == SETUP.score(setup)
    # An orb signal without its setup is an error, not a momentum score.
    with pytest.raises(ScoringError, match="'confidence' is required"):
        BY_STRATEGY.score(_signal(strategy="orb", momentum=0.05))


def test_other_strategies_are_setups_when_they_carry_one_and_momentum_otherwise() -> None:
    setup = _signal(strategy="breakout", confidence=2, reward_risk=1)
    assert BY_STRATEGY.score(setup) == SETUP.score(setup)
    legacy = _signal(strategy="breakout", momentum=0.06, volume_ratio=2.5)
    assert BY_STRATEGY.score(legacy) == SCORER.score(legacy)
    with pytest.raises(UnknownScorer, match="no scorer named 'nope' to route to"):
        StrategyScorer({"orb": "nope"})
