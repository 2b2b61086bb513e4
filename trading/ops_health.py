"""Readiness: is each dependency a worker needs answering, and is BrokerSync's poll fresh?

The verdicts of a worker's /readyz (ops/health.py) and of `starter.py status`: one pure model
and the pure judgements; the probes that feed them (a Temporal RPC, `SELECT 1`, the broker's
clock, the stored poll time) are ops/health.py's.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import Field

from trading.models import Frozen


class Dependency(StrEnum):
    """What a worker depends on to do its job (the /readyz check names)."""

    TEMPORAL = "temporal"
    DATABASE = "database"
    BROKER = "broker"
    TRUTH_POLL = "truth_poll"


class DependencyVerdict(Frozen):
    """One dependency: answering (ok) or not, and why, with the probe's time when it ran."""

    name: Dependency
    ok: bool
    detail: str = ""
    latency_ms: float | None = None


class Readiness(Frozen):
    """The /readyz document: ready only when every dependency is ok."""

    ready: bool
    checked_at: datetime
    checks: list[DependencyVerdict] = Field(default_factory=list)

    @property
    def failed(self) -> list[DependencyVerdict]:
        """The dependencies that are not ok."""
        return [c for c in self.checks if not c.ok]


def readiness(checks: list[DependencyVerdict], checked_at: datetime) -> Readiness:
    """Ready iff there are checks and each is ok (the checks in Dependency order)."""
    order = list(Dependency)
    ordered = sorted(checks, key=lambda c: order.index(c.name))
    return Readiness(
        ready=bool(ordered) and all(c.ok for c in ordered), checked_at=checked_at, checks=ordered
    )


# BrokerSync polls every 5 minutes while the market is closed (BrokerSyncInput's
# closed_poll_interval): a poll that old is fresh then, not stale.
CLOSED_MARKET_POLL_S = 300.0


def truth_poll_max_age_s(max_age_s: float, market_open: bool | None) -> float:
    """TRUTH_POLL_MAX_AGE_S while the market is known open; with the closed market's 5-minute
    polls added otherwise (closed, or not known), so nights do not read as stale."""
    return max_age_s if market_open is True else max_age_s + CLOSED_MARKET_POLL_S


def truth_poll_verdict(
    observed_at: datetime | None, now: datetime, max_age_s: float
) -> DependencyVerdict:
    """BrokerSync's last successful poll is at most `max_age_s` old (TRUTH_POLL_MAX_AGE_S)."""
    if observed_at is None:
        return DependencyVerdict(
            name=Dependency.TRUTH_POLL,
            ok=False,
            detail="no BrokerSync poll recorded yet (is BrokerSync running?)",
        )
    age_s = (now - observed_at).total_seconds()
    if age_s > max_age_s:
        return DependencyVerdict(
            name=Dependency.TRUTH_POLL,
            ok=False,
            detail=f"stale: last BrokerSync poll {age_s:.0f} s ago (TRUTH_POLL_MAX_AGE_S="
            f"{max_age_s:g})",
        )
    return DependencyVerdict(
        name=Dependency.TRUTH_POLL,
        ok=True,
        detail=f"last BrokerSync poll {max(age_s, 0):.0f} s ago",
    )


def failed_probe(name: Dependency, error: BaseException | str) -> DependencyVerdict:
    """A probe that raised or timed out: not ok, with the error's type and first line."""
    if isinstance(error, str):
        return DependencyVerdict(name=name, ok=False, detail=error)
    text = (str(error).strip().splitlines() or [""])[0]
    if isinstance(error, TimeoutError):
        text = "timed out"
    detail = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return DependencyVerdict(name=name, ok=False, detail=detail[:200])


def readiness_lines(verdict: Readiness) -> list[str]:
    """The verdict as the `status` command prints it: one summary line, one per dependency."""
    head = "READY" if verdict.ready else "NOT READY (" + ", ".join(c.name for c in verdict.failed)
    lines = [f"readiness: {head}{'' if verdict.ready else ')'}"]
    for check in verdict.checks:
        lines.append(f"  {check.name.value:<11} {'ok' if check.ok else 'FAIL':<4} {check.detail}")
    return lines
