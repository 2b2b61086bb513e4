"""The one way a workflow writes an audit row or a risk event, under one key format.

Keys are `<workflow id>/<first run id>:<action or kind>:<key>`. The first run id is the same
across continue-as-new (whose counters the keys may use) and new for a fresh start under the
same workflow id (a restarted guard, a restarted trading-control), so a retried write is a
no-op and a later run never collides with an earlier one.
"""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.ledger import LedgerActivities
    from trading.ledger_records import RiskEventCreate, RiskSeverity
    from trading.models import AuditEntry, JsonScalar
    from workflows.calls import ledger


def event_key(kind: str, key: str) -> str:
    """The idempotency key of an audit row or risk event of this workflow chain."""
    info = workflow.info()
    return f"{info.workflow_id}/{info.first_execution_run_id}:{kind}:{key}"


def audit_entry(
    action: str,
    reason: str,
    detail: dict[str, JsonScalar],
    *,
    key: str,
    trade_id: str | None = None,
    actor: str | None = None,
) -> AuditEntry:
    """An audit row by this workflow (or `actor`), for a write that carries it along."""
    return AuditEntry(
        actor=actor or workflow.info().workflow_id,
        action=action,
        reason=reason,
        trade_id=trade_id,
        detail=detail,
        event_key=event_key(action, key),
    )


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
        audit_entry(action, reason, detail, key=key, trade_id=trade_id, actor=actor),
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
