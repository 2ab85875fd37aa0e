"""A lead's status change, wherever it comes from (staff through LeadWorkflow's update, the workflow itself —
first touch, close, conversion, needs_review —, a definition's set_status): the new status, its audit row and
the `lead.status_changed` event and its timeline entry in one transaction, so `exit_when: lead.status in [...]`
and status triggers hear every change."""

from __future__ import annotations

from sqlmodel import Session

from models.audit import record_audit
from models.base import utcnow
from models.event import emit
from models.lead import Lead
from models.timeline import TimelineEntry


def apply_status(session: Session, lead: Lead, status: str, reason: str | None, actor: str, *, event_id: str,
                 request_id: str | None = None) -> bool:
    """Add the change to the session (the caller commits). False when the lead already has that status."""
    if lead.status == status:
        return False
    previous = {"status": str(lead.status), "status_reason": lead.status_reason}
    lead.status, lead.status_reason, lead.updated_at = status, reason, utcnow()
    session.add(lead)
    record_audit(session, tenant_id=lead.tenant_id, actor=actor, action="lead.status", entity_type="lead",
                 entity_id=lead.id, before=previous, after={"status": status, "status_reason": reason})
    session.add(TimelineEntry(  # the lead's story shows it too (the console's timeline)
        tenant_id=lead.tenant_id, lead_id=lead.id, kind="lead.status_changed", actor=actor,
        summary=f"Status {previous['status']} → {status}" + (f": {reason}" if reason else "")[:400],
        data={"status": status, "previous": previous["status"], "reason": reason},
        idempotency_key=f"{lead.id}:status:{event_id}"[:300]))
    emit(session, tenant_id=lead.tenant_id, subject_type="lead", subject_id=lead.id, name="lead.status_changed",
         event_id=event_id, data={"status": status, "previous": previous["status"], "reason": reason,
                                  "actor": actor})
    return True
