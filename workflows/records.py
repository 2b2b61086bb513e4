"""The one way a workflow writes an audit row or a risk event, under one key format.

Keys are `<workflow id>:<action or kind>:<key>`: unique per workflow run's meaning (a trade's
id, a control change's id, a market-loop run's signal key), so a retried write is a no-op.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from trading.ledger_records import RiskEventCreate, RiskSeverity
    from trading.models import AuditEntry, JsonScalar
    from workflows.calls import ledger


def event_key(kind: str, key: str) -> str:
    """`<workflow id>:<kind>:<key>`: the idempotency key of an audit row or risk event."""
    return f"{workflow.info().workflow_id}:{kind}:{key}"


async def audit(
    action: str,
    reason: str,
    detail: dict[str, JsonScalar],
    *,
    key: str,
    trade_id: str | None = None,
    actor: str | None = None,
) -> None:
    """Append an audit row by this workflow (or `actor`, who asked for it)."""
    await ledger(
        LedgerActivities.append_audit,
        AuditEntry(
            actor=actor or workflow.info().workflow_id,
            action=action,
            reason=reason,
            trade_id=trade_id,
            detail=detail,
            event_key=event_key(action, key),
        ),
        f"audit {action}" + (f" for trade {trade_id}" if trade_id else ""),
    )


async def risk_event(
    kind: str,
    severity: RiskSeverity,
    detail: dict[str, JsonScalar],
    *,
    key: str,
    trade_id: str | None = None,
    symbol: str | None = None,
) -> None:
    """Record a risk event (what `status` and the alerts count)."""
    await ledger(
        LedgerActivities.record_risk_event,
        RiskEventCreate(
            event_key=event_key(kind, key),
            kind=kind,
            severity=severity,
            trade_id=trade_id,
            symbol=symbol,
            detail=detail,
            at=workflow.now(),
        ),
        f"risk event {kind} ({severity.value})" + (f" for trade {trade_id}" if trade_id else ""),
    )
