"""Describe, query and signal any workflow of the caller's tenant (checked by the TenantId attribute)."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowExecutionDescription, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep, PrincipalDep, SessionDep, Staff, audit
from api.errors import Problem
from services.enrollments import remove_from_run
from api.security import Principal
from core import search_attributes as sa
from core.temporal import temporal_unreachable
from models.input import Input
from models.event import emit
from models.lead import Lead
from models.payloads import LeadEvent
from core.db import in_transaction
from workflows.lead import LEAD_SIGNALS

router = APIRouter(prefix="/api/v1/workflows", tags=["workflows"])

# Signals the API accepts per workflow type; anything else is a 422 naming the allowed ones.
PUBLIC_SIGNALS: dict[str, dict[str, Any]] = {"LeadWorkflow": {"signals": LEAD_SIGNALS, "payload": LeadEvent}}
QUERYABLE = {"LeadWorkflow", "DealWorkflow", "DefinitionWorkflow"}  # workflow types with a `state` query


class WorkflowPublic(BaseModel):
    workflow_id: str
    run_id: str | None
    workflow_type: str
    status: str | None
    task_queue: str
    start_time: datetime | None
    close_time: datetime | None
    history_length: int
    search_attributes: dict[str, Any]
    state: dict[str, Any] | None = Field(default=None, description="result of the workflow's `state` query")
    signals: list[str]


class SignalBody(Input):
    event_id: str | None = Field(default=None, max_length=200,
                                 description="makes re-sending harmless; defaults to the Idempotency-Key header")
    data: dict[str, Any] = Field(default_factory=dict)
    note: str | None = Field(default=None, max_length=2000)


class SignalAccepted(BaseModel):
    workflow_id: str
    signal: str
    event_id: str


async def _describe_own(client, principal: Principal, workflow_id: str) -> WorkflowExecutionDescription:
    try:
        description = await client.get_workflow_handle(workflow_id).describe()
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(404, f"workflow {workflow_id} not found") from None
        raise Problem(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "5"}) from exc
    if description.typed_search_attributes.get(sa.TENANT_ID) != principal.tenant_id:
        # Indistinguishable from a missing workflow: no probing other tenants' ids.
        raise Problem(404, f"workflow {workflow_id} not found")
    return description


@router.get("/{workflow_id}", response_model=WorkflowPublic)
async def describe_workflow(workflow_id: str, client: ClientDep, principal: PrincipalDep) -> WorkflowPublic:
    description = await _describe_own(client, principal, workflow_id)
    state = None
    if description.workflow_type in QUERYABLE:
        try:
            result = await client.get_workflow_handle(workflow_id).query("state")
            state = result if isinstance(result, dict) else getattr(result, "model_dump", lambda: result)()
        except Exception:  # noqa: BLE001 - e.g. no worker polling: describe is still useful
            state = None
    return WorkflowPublic(
        workflow_id=description.id,
        run_id=description.run_id,
        workflow_type=description.workflow_type,
        status=description.status.name if description.status else None,
        task_queue=description.task_queue,
        start_time=description.start_time,
        close_time=description.close_time,
        history_length=description.history_length,
        search_attributes={p.key.name: p.value for p in description.typed_search_attributes},
        state=state,
        signals=sorted(PUBLIC_SIGNALS.get(description.workflow_type, {}).get("signals", {})),
    )


@router.post("/{workflow_id}/signals/{name}", status_code=202, response_model=SignalAccepted)
async def signal_workflow(
    workflow_id: str, name: str, body: SignalBody, client: ClientDep, session: SessionDep, principal: Staff,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> SignalAccepted:
    """A lead event for the lead's workflow (reply, note, opt-out, close), stored with its outbox event and
    delivered by the relay — in order after the lead's own start, and while Temporal is down too. The same
    `event_id` (or Idempotency-Key) twice is one event."""
    lead = await run_in_threadpool(_lead_of, session, principal, workflow_id)
    if name not in LEAD_SIGNALS:
        raise Problem(422, f"LeadWorkflow has no signal '{name}'; allowed: {', '.join(sorted(LEAD_SIGNALS))}",
                      errors=[{"field": "name", "message": f"unknown signal '{name}'"}])
    try:  # a closed workflow would never hear it: say so now when Temporal can tell (not needed to accept)
        description = await client.get_workflow_handle(workflow_id).describe(rpc_timeout=timedelta(seconds=2))
        if description.status != WorkflowExecutionStatus.RUNNING:
            raise Problem(409, f"workflow {workflow_id} is {description.status.name.lower()}, not running")
    except RPCError:
        pass  # not started yet (the relay starts it first) or Temporal unreachable: accepted all the same
    except RuntimeError as exc:
        if not temporal_unreachable(exc):  # a client that could not connect at all; anything else is a bug
            raise
    event_id = body.event_id or idempotency_key or uuid.uuid4().hex
    event = LeadEvent(event_id=event_id, data=body.data, note=body.note, actor=principal.actor)

    def record() -> None:
        recorded = emit(session, tenant_id=lead.tenant_id, subject_type="lead", subject_id=lead.id,
                        name=LEAD_SIGNALS[name], event_id=event_id, data=body.data, workflow_signal=name,
                        signal_payload=event.model_dump())
        if recorded:
            audit(session, principal, "workflow.signal", "workflow", workflow_id,
                  after={"signal": name, "event_id": event_id, "data": body.data, "note": body.note})

    await run_in_threadpool(in_transaction, session, record)
    return SignalAccepted(workflow_id=workflow_id, signal=name, event_id=event_id)


class RemoveBody(Input):
    reason: str | None = Field(default=None, max_length=300)


class Removed(BaseModel):
    workflow_id: str
    removed: bool = Field(description="false: it had been removed already (nothing new recorded)")


@router.post("/{workflow_id}/remove", status_code=202, response_model=Removed)
def remove_from_definition(workflow_id: str, body: RemoveBody, session: SessionDep, principal: Staff) -> Removed:
    """Take the subject out of this running definition run (a cadence): recorded on its timeline and audited, and
    delivered to the run by the worker, which ends it ("removed by ..."). 409 once the run has ended."""
    return Removed(workflow_id=workflow_id, removed=remove_from_run(session, principal, workflow_id, body.reason))


def _lead_of(session, principal: Principal, workflow_id: str) -> Lead:
    """The original lead whose workflow this is (another tenant's is reported as missing)."""
    lead = session.exec(select(Lead).where(Lead.tenant_id == principal.tenant_id, Lead.workflow_id == workflow_id,
                                           col(Lead.duplicate_of).is_(None))).first()
    if lead is None:
        raise Problem(404, f"workflow {workflow_id} not found (only lead workflows take signals here)")
    return lead
