"""Staff take a subject out of a definition run ("remove from this cadence"): the removal, its timeline entry and
audit row and the event the relay delivers to the run (which ends, "removed by <who>") in one transaction — while
Temporal is down too, the run hears it when it is back. Removing twice is one removal."""

from __future__ import annotations

from sqlmodel import Session, col, select

from definitions.language import ENROLL_REQUESTED, REMOVED
from services.definition_store import active
from models.audit import record_audit
from models.definition import WorkflowExecution
from models.event import Event, emit
from models.timeline import TimelineEntry
from services.acting import Acting, Conflict, NotFound

_SUBJECT_FIELD = {"lead": "lead_id", "deal": "opportunity_id", "investor": "investor_id"}


def remove_from_run(session: Session, caller: Acting, workflow_id: str, reason: str | None = None) -> bool:
    """End the caller's tenant's running definition run `workflow_id` for its subject; commits. False when it was
    removed already (nothing new recorded). NotFound for another tenant's or an unknown run, Conflict for one that
    ended."""
    execution = session.exec(select(WorkflowExecution).where(
        WorkflowExecution.workflow_id == workflow_id, WorkflowExecution.workflow_type == "DefinitionWorkflow")
        .order_by(col(WorkflowExecution.started_at).desc())).first()
    if execution is None or execution.tenant_id != caller.tenant_id or execution.subject_type not in _SUBJECT_FIELD:
        raise NotFound(f"definition run {workflow_id} not found")
    if execution.status != "running":
        raise Conflict(f"definition run {workflow_id} has ended ({execution.status})")
    event_id = f"{REMOVED}:{workflow_id}"
    data = {"workflow_id": workflow_id, "by": caller.actor, "reason": reason, "key": execution.definition_key}
    if not emit(session, tenant_id=caller.tenant_id, subject_type=execution.subject_type,
                subject_id=execution.subject_id, name=REMOVED, event_id=event_id, data=data):
        session.rollback()
        return False
    session.add(TimelineEntry(
        tenant_id=caller.tenant_id, kind="definition.removed", actor=caller.actor, workflow_id=workflow_id,
        summary=(f"Removed from {execution.definition_key} v{execution.definition_version}"
                 + (f": {reason}" if reason else ""))[:500],
        data=data, idempotency_key=event_id[:300], **{_SUBJECT_FIELD[execution.subject_type]: execution.subject_id}))
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="definition.remove",
                 entity_type="workflow", entity_id=workflow_id, after=data)
    session.commit()
    return True


def request_enrollment(session: Session, caller: Acting, kind: str, subject_id: str, key: str,
                       request_key: str) -> str | None:
    """Enroll the subject in the published definition `key` by hand, whatever its trigger says: the request, its
    timeline entry and audit row and the event the relay turns into the run, in the caller's transaction (the caller
    commits). Returns the run's workflow id, or None when a run of `key` is going for the subject already (nothing
    recorded). NotFound when `key` is not published, Conflict when it is about another kind of subject.
    `request_key` makes a retried request one enrollment."""
    definition = next((d for d in active(session, caller.tenant_id) if d.key == key), None)
    if definition is None:
        raise NotFound(f"no published definition '{key}' (is it published, or retired?)", field="definition")
    if definition.subject != kind:
        raise Conflict(f"definition '{key}' is about a {definition.subject}, not a {kind}", field="definition")
    running = session.exec(select(WorkflowExecution.id).where(
        WorkflowExecution.tenant_id == caller.tenant_id, WorkflowExecution.subject_id == subject_id,
        WorkflowExecution.definition_key == key, WorkflowExecution.status == "running")).first()
    if running is not None:
        return None
    pending = session.exec(select(Event.event_id).where(
        Event.tenant_id == caller.tenant_id, Event.subject_type == kind, Event.subject_id == subject_id,
        Event.name == ENROLL_REQUESTED, col(Event.delivered_at).is_(None), col(Event.parked_at).is_(None))).all()
    if any(event_id.startswith(f"{ENROLL_REQUESTED}:def-{caller.tenant_id}-{key}-") for event_id in pending):
        return None  # asked for already, not started yet (the relay checks again when it starts one)
    workflow_id = f"def-{caller.tenant_id}-{key}-{subject_id}-by-{request_key}"[:200]
    data = {"key": key, "workflow_id": workflow_id, "by": caller.actor, "kind": kind}
    if not emit(session, tenant_id=caller.tenant_id, subject_type=kind, subject_id=subject_id, name=ENROLL_REQUESTED,
                event_id=f"{ENROLL_REQUESTED}:{workflow_id}", data=data):
        return workflow_id  # the same request again
    session.add(TimelineEntry(
        tenant_id=caller.tenant_id, kind="definition.enrolled", actor=caller.actor, workflow_id=workflow_id,
        summary=f"Enrolled in {key} by hand"[:500], data=data,
        idempotency_key=f"{ENROLL_REQUESTED}:{workflow_id}"[:300],
        **{_SUBJECT_FIELD[kind]: subject_id}))
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="definition.enroll",
                 entity_type=kind, entity_id=subject_id, after=data)
    return workflow_id
