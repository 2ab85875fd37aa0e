"""Leads: intake (dedupe + workflow start), list with filters and cursor paging, detail, timeline."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from pydantic import ConfigDict, Field
from sqlalchemy import inspect
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep, PrincipalDep, SessionDep, Staff, audit
from api.errors import Problem, as_problem
from api.paging import page
from core.db import committed, in_transaction
from definitions.language import RECORDED_EVENTS
from definitions.staff import Team
from models.input import Input
from models.base import utcnow
from models.event import emit, start_pending
from models.definition import WorkflowExecution
from models.lead import (
    DefinitionRunRef, Lead, LeadCreate, LeadPage, LeadPublic, LeadSource, LeadStatus, LeadUpdate, Property,
)
from models.payloads import ConvertInput, ConvertResult, LeadState, StatusChange
from models.timeline import TimelineEntry, TimelineEntryPublic
from services.acting import ServiceError
from services.assignment import assign_lead, check_lead_assignee, hand_lead
from services.enrollments import request_enrollment
from services.lead_intake import receive_lead
from services.lead_lists import LeadFilters, lead_list_query
from workflows.definition import DefinitionWorkflow
from workflows.lead import LeadWorkflow

QUERY_TIMEOUT = timedelta(seconds=3)  # a paused Temporal must not hold a lead's page
UPDATE_TIMEOUT = timedelta(seconds=20)

router = APIRouter(prefix="/api/v1/leads", tags=["leads"])


def _public(session, lead: Lead, properties: dict[str, Property] | None = None, **extra) -> LeadPublic:
    # A loaded row validates from its attribute dict: a tenth of the cost of from_attributes (a list page of 50
    # spent 1.8 ms here); an expired or deferred one goes through the attributes, which load it.
    loaded = not inspect(lead).unloaded
    public = LeadPublic.model_validate(lead.__dict__ if loaded else lead, from_attributes=not loaded)
    if lead.property_id:
        found = properties.get(lead.property_id) if properties is not None else None
        public.property = found or session.get(Property, lead.property_id)
    return public.model_copy(update=extra) if extra else public


def _get_lead(session, principal, lead_id: str) -> Lead:
    lead = session.get(Lead, lead_id)
    # Another tenant's lead is reported exactly like a missing one.
    if lead is None or lead.tenant_id != principal.tenant_id or lead.deleted_at is not None:
        raise Problem(404, f"lead {lead_id} not found")
    return lead


@router.post("", status_code=201, response_model=LeadPublic,
             responses={200: {"model": LeadPublic, "description": "duplicate of an existing lead"}})
def create_lead(body: LeadCreate, response: Response, session: SessionDep, principal: Staff) -> LeadPublic:
    """Stored with its `lead.created` event in one transaction and answered from the database alone: the
    worker's relay starts the workflow (`workflow_status` is PENDING until it has, e.g. while Temporal is
    down). A second submission of the same person is stored as a duplicate linked to the first (200)."""
    lead, duplicate = receive_lead(session, principal.tenant_id, principal.actor, body)
    if duplicate:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/leads/{lead.id}"
    return _public(session, lead)


@router.get("", response_model=LeadPage)
def list_leads(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[list[LeadStatus] | None, Query()] = None,
    source: Annotated[list[LeadSource] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200, description="name, email, phone or address contains")] = None,
    assigned: Annotated[str | None, Query(description="user id, or 'none' for unassigned")] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    include_duplicates: bool = False,
    sort: Annotated[str, Query(pattern="^-?(created_at|score)$",
                               description="-created_at (default), created_at, -score (call next), score")
                    ] = "-created_at",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
    tag: Annotated[str | None, Query(max_length=64, description="has this tag")] = None,
    created_from: Annotated[datetime | None, Query(description="received at or after (with its time zone)")] = None,
    created_to: Annotated[datetime | None, Query(description="received before (with its time zone)")] = None,
) -> LeadPage:
    filters = _filters(status, source, q, assigned, min_score, max_score, include_duplicates, sort, tag,
                       created_from, created_to)
    items, next_cursor = page(session, lead_list_query(principal.tenant_id, filters), Lead, limit, cursor,
                              by=filters.sort_key, descending=filters.descending)
    property_ids = [lead.property_id for lead in items if lead.property_id]  # one query for the page's
    properties = {row.id: row for row in session.exec(select(Property).where(col(Property.id).in_(property_ids)))
                  } if property_ids else {}
    return LeadPage(items=[_public(session, lead, properties) for lead in items], next_cursor=next_cursor)


def _filters(status, source, q, assigned, min_score, max_score, include_duplicates, sort, tag, created_from,
             created_to) -> LeadFilters:
    for name, value in (("created_from", created_from), ("created_to", created_to)):
        if value is not None and value.tzinfo is None:
            raise Problem(422, f"give {name} with its time zone", errors=[{"field": name, "message": "no time zone"}])
        try:
            value is not None and value.astimezone(UTC)
        except OverflowError:
            raise Problem(422, f"{name} is out of range", errors=[{"field": name, "message": "out of range"}]
                          ) from None
    return LeadFilters(status=[s.value for s in status or ()], source=[s.value for s in source or ()], q=q,
                       assigned=assigned, min_score=min_score, max_score=max_score,
                       include_duplicates=include_duplicates, sort=sort, tag=tag, created_from=created_from,
                       created_to=created_to)


EXPORT_COLUMNS = ("id", "first_name", "last_name", "email", "phone", "property_address", "source", "status",
                  "score", "assigned_to", "tags", "created_at")
EXPORT_MAX_ROWS = 100_000


@router.get("/export.csv", response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}, "description": "the filtered leads as CSV"}})
def export_leads(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[list[LeadStatus] | None, Query()] = None,
    source: Annotated[list[LeadSource] | None, Query()] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    assigned: Annotated[str | None, Query(max_length=40)] = None,
    min_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    max_score: Annotated[float | None, Query(ge=0, le=1)] = None,
    sort: Annotated[str, Query(pattern="^-?(created_at|score)$")] = "-created_at",
    tag: Annotated[str | None, Query(max_length=64)] = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
) -> StreamingResponse:
    """The leads the same filters list, as CSV (UTF-8, a header row; up to 100,000 rows, in the list's order),
    streamed in pages of the list's own keyset query. Cells a spreadsheet would run as a formula are quoted
    with a leading apostrophe (OWASP's CSV injection advice). Audited `lead.export`."""
    filters = _filters(status, source, q, assigned, min_score, max_score, False, sort, tag, created_from,
                       created_to)
    audit(session, principal, "lead.export", "lead", None, after={"filters": {
        k: v for k, v in {"status": filters.status, "source": filters.source, "q": q, "assigned": assigned,
                          "min_score": min_score, "max_score": max_score, "tag": tag, "sort": sort}.items() if v}})
    session.commit()
    engine = session.get_bind()

    def rows():
        out = io.StringIO()
        writer = csv.writer(out)
        writer.writerow(EXPORT_COLUMNS)
        cursor, sent = None, 0
        with Session(engine) as reader:
            while sent < EXPORT_MAX_ROWS:
                items, cursor = page(reader, lead_list_query(principal.tenant_id, filters), Lead, 500, cursor,
                                     by=filters.sort_key, descending=filters.descending)
                for lead in items:
                    writer.writerow([_cell(getattr(lead, name)) for name in EXPORT_COLUMNS])
                sent += len(items)
                yield out.getvalue()
                out.seek(0)
                out.truncate()
                if cursor is None:
                    break

    return StreamingResponse(rows(), media_type="text/csv; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="leads-{principal.tenant_id}.csv"'})


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):
        value = ";".join(str(v) for v in value)
    elif isinstance(value, datetime):
        value = value.isoformat()
    text = str(value)
    if PHONE.match(text):  # an E.164 number starts with + and is no formula: kept as it is, for re-imports
        return text
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


PHONE = re.compile(r"^\+\d{7,15}$")


class BulkBody(Input):
    model_config = ConfigDict(extra="forbid")
    lead_ids: list[Annotated[str, Field(max_length=40)]] = Field(min_length=1, max_length=200)
    action: Literal["assign", "status", "enroll"]
    assignee: str | None = Field(default=None, max_length=320, description="assign: a user's id or email, `me`, "
                                 "`round_robin`, or null for nobody")
    team: Team | None = None
    status: LeadStatus | None = Field(default=None, description="status: the new status")
    reason: str | None = Field(default=None, max_length=500)
    definition: str | None = Field(default=None, max_length=100, description="enroll: a published definition's key")


class BulkOutcome(BaseModel):
    lead_id: str
    ok: bool
    detail: str


class BulkResult(BaseModel):
    done: int
    failed: int
    results: list[BulkOutcome]


@router.post("/bulk", response_model=BulkResult)
async def bulk(body: BulkBody, session: SessionDep, client: ClientDep, principal: Staff,
               idempotency_key: Annotated[str | None, Header(max_length=40)] = None) -> BulkResult:
    """One action for many leads, each through the same path as its single-lead endpoint (assign: the same
    ownership rules and notifications; status: each lead's workflow update; enroll: the event the relay turns into
    a run of the published definition). Every lead gets its own outcome: one refusal does not undo the others; once
    Temporal does not answer, the leads after are not attempted (said so). The same Idempotency-Key enrolls once."""
    if body.action == "status" and body.status is None:
        raise Problem(422, "give the new status", errors=[{"field": "status", "message": "required for status"}])
    if body.action == "enroll" and not body.definition:
        raise Problem(422, "give the definition to enroll in",
                      errors=[{"field": "definition", "message": "required for enroll"}])
    if body.action == "assign" and "assignee" not in body.model_fields_set:
        raise Problem(422, "give the assignee (null for nobody)",
                      errors=[{"field": "assignee", "message": "required for assign"}])
    request_key = (idempotency_key or uuid.uuid4().hex)[:40]
    results: list[BulkOutcome] = []
    unavailable: str | None = None
    for lead_id in dict.fromkeys(body.lead_ids):  # (each lead once, in the order given)
        if unavailable:  # Temporal did not answer: the rest are not tried (each would wait as long)
            results.append(BulkOutcome(lead_id=lead_id, ok=False, detail=f"not attempted: {unavailable}"))
            continue
        try:
            if body.action == "status":
                state = await change_status(lead_id, StatusBody(status=body.status, reason=body.reason), session,
                                            client, principal)
                detail = f"status {state.status}"
            elif body.action == "assign":
                lead = await run_in_threadpool(assign, lead_id, AssignBody(assignee=body.assignee, team=body.team),
                                               session, principal)
                detail = f"assigned to {lead.assigned_to or 'nobody'}"
            else:
                detail = await run_in_threadpool(_enroll, session, principal, lead_id, body.definition, request_key)
            results.append(BulkOutcome(lead_id=lead_id, ok=True, detail=detail))
        except (Problem, ServiceError) as exc:
            await run_in_threadpool(session.rollback)
            problem = as_problem(exc)
            results.append(BulkOutcome(lead_id=lead_id, ok=False, detail=problem.detail))
            if problem.status == 503:
                unavailable = problem.detail
    done = sum(r.ok for r in results)
    return BulkResult(done=done, failed=len(results) - done, results=results)


def _enroll(session, principal, lead_id: str, key: str, request_key: str) -> str:
    lead = _get_lead(session, principal, lead_id)
    workflow_id = request_enrollment(session, principal, "lead", lead.duplicate_of or lead.id, key, request_key)
    session.commit()
    return f"enrolled in {key}" if workflow_id else f"already in a running {key}"


@router.get("/{lead_id}", response_model=LeadPublic)
async def get_lead(lead_id: str, session: SessionDep, principal: PrincipalDep, client: ClientDep) -> LeadPublic:
    """The lead with its enrichment, score and reasons, and its workflow's cadence step and next action."""
    def load() -> tuple[Lead, bool, list[DefinitionRunRef]]:
        lead = _get_lead(session, principal, lead_id)
        runs = session.exec(select(WorkflowExecution).where(
            WorkflowExecution.tenant_id == lead.tenant_id, WorkflowExecution.subject_id == lead.id,
            WorkflowExecution.workflow_type == "DefinitionWorkflow")
            .order_by(col(WorkflowExecution.started_at).desc()).limit(50)).all()
        refs = [DefinitionRunRef(key=r.definition_key or "", version=r.definition_version, workflow_id=r.workflow_id,
                                 status=r.status, started_at=r.started_at) for r in runs]
        return lead, start_pending(session, "lead", lead.duplicate_of or lead.id), refs

    lead, pending, runs = await run_in_threadpool(load)
    extra: dict = {"workflow_status": None, "definitions": runs}
    if pending:
        extra["workflow_status"] = "PENDING"  # accepted; the relay has not started its workflow yet
    elif lead.workflow_id:
        handle = client.get_workflow_handle(lead.workflow_id)
        try:
            description = await handle.describe(rpc_timeout=QUERY_TIMEOUT)
            extra["workflow_status"] = description.status.name if description.status else None
            state = await handle.query(LeadWorkflow.state, rpc_timeout=QUERY_TIMEOUT)
            extra.update(cadence_step=state.step, next_action=state.next_action, cadence_stopped=state.cadence_stopped)
        except Exception:  # noqa: BLE001 - the CRM row is still worth returning
            extra["workflow_status"] = extra["workflow_status"] or "UNKNOWN"
    extra["definitions"] = await _with_temporal_status(client, runs)
    return await run_in_threadpool(lambda: _public(session, lead, **extra))


async def _with_temporal_status(client, runs: list[DefinitionRunRef], limit: int = 5) -> list[DefinitionRunRef]:
    """The database knows a run ended only once an event for it found it closed: ask Temporal about the few runs
    recorded as running (a run that cannot be described keeps the recorded status)."""
    async def status(ref: DefinitionRunRef) -> DefinitionRunRef:
        try:
            description = await client.get_workflow_handle(ref.workflow_id).describe(rpc_timeout=QUERY_TIMEOUT)
        except Exception:  # noqa: BLE001 - Temporal down or the run unknown: say what the database says
            return ref
        name = description.status.name.lower() if description.status else ref.status
        step = None
        if name == "running":
            try:
                step = (await client.get_workflow_handle(ref.workflow_id).query(
                    DefinitionWorkflow.state, rpc_timeout=QUERY_TIMEOUT)).current_step
            except Exception:  # noqa: BLE001 - a run that cannot answer yet still has its status
                step = None
        return ref.model_copy(update={"status": name, "current_step": step})

    checked = await asyncio.gather(*(status(r) for r in runs[:limit] if r.status == "running"))
    by_id = {r.workflow_id: r for r in checked}
    return [by_id.get(r.workflow_id, r) for r in runs]


async def _update(client, lead: Lead, update, argument):
    """Run a LeadWorkflow update; a validator's refusal is a 409 with its reason."""
    if not lead.workflow_id:
        raise Problem(409, f"lead {lead.id} has no workflow")
    try:
        return await client.get_workflow_handle(lead.workflow_id).execute_update(update, argument,
                                                                                rpc_timeout=UPDATE_TIMEOUT)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        raise Problem(409, getattr(cause, "message", None) or str(cause)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"lead {lead.id}'s workflow is not running (it starts moments after intake; "
                               "GET the lead: workflow_status PENDING means not yet)", headers={"Retry-After": "1"}
                          ) from None
        raise Problem(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "5"}) from exc


class StatusBody(Input):
    model_config = ConfigDict(extra="forbid")
    status: LeadStatus
    reason: str | None = Field(default=None, max_length=500)


class ConvertBody(Input):
    model_config = ConfigDict(extra="forbid")
    title: str | None = Field(default=None, max_length=200)
    asking_price: Decimal | None = Field(default=None, ge=0, max_digits=14, decimal_places=2)


@router.post("/{lead_id}/status", response_model=LeadState)
async def change_status(lead_id: str, body: StatusBody, session: SessionDep, client: ClientDep,
                        principal: Staff) -> LeadState:
    """Staff status change through the lead's workflow (update with a validator: 409 with the reason). The
    workflow's write of the status also writes `lead.status_changed`, which definitions hear."""
    lead = await run_in_threadpool(_get_lead, session, principal, lead_id)
    before = {"status": lead.status}
    state = await _update(client, lead, LeadWorkflow.set_status,
                          StatusChange(status=body.status.value, reason=body.reason, actor=principal.actor))

    def record() -> None:
        audit(session, principal, "lead.status", "lead", lead_id, before=before,
              after={"status": body.status.value, "reason": body.reason})
        session.commit()

    await run_in_threadpool(record)
    return state


class EventBody(Input):
    model_config = ConfigDict(extra="forbid")
    event_id: str | None = Field(default=None, max_length=200)
    data: dict = Field(default_factory=dict)


@router.post("/{lead_id}/events/{name}", status_code=202)
def record_event(lead_id: str, name: str, body: EventBody, session: SessionDep, principal: Staff) -> dict:
    """Something happened to the lead (appointment.booked, offer.sent, ...): stored with its event; the relay
    passes it to the running definitions and starts the published ones it triggers. The same `event_id`
    twice is one event (`recorded: false` the second time)."""
    known = RECORDED_EVENTS["lead"]
    if name not in known:
        raise Problem(422, f"unknown lead event '{name}'", errors=[{"field": "name", "message": "known events: "
                                                                    + ", ".join(sorted(known))}])
    lead = _get_lead(session, principal, lead_id)
    event_id = body.event_id or uuid.uuid4().hex
    subject = lead.duplicate_of or lead.id

    def apply() -> bool:
        recorded = emit(session, tenant_id=lead.tenant_id, subject_type="lead", subject_id=subject, name=name,
                        event_id=event_id, data=body.data)
        if recorded:
            audit(session, principal, "lead.event", "lead", lead_id, after={"event": name, "data": body.data})
        return recorded

    recorded = in_transaction(session, apply)
    return {"event": name, "event_id": event_id, "recorded": recorded}


@router.post("/{lead_id}/convert", response_model=ConvertResult)
async def convert_lead(lead_id: str, body: ConvertBody, session: SessionDep, client: ClientDep,
                       principal: Staff) -> ConvertResult:
    """Turn the lead into an opportunity and start its DealWorkflow."""
    lead = await run_in_threadpool(_get_lead, session, principal, lead_id)
    result = await _update(client, lead, LeadWorkflow.convert, ConvertInput(
        title=body.title, asking_price=str(body.asking_price) if body.asking_price is not None else None,
        actor=principal.actor))

    def record() -> None:
        audit(session, principal, "lead.convert", "lead", lead_id, after=result.model_dump())
        session.commit()

    await run_in_threadpool(record)
    return result


@router.patch("/{lead_id}", response_model=LeadPublic)
def update_lead(lead_id: str, body: LeadUpdate, session: SessionDep, principal: Staff) -> LeadPublic:
    lead = _get_lead(session, principal, lead_id)
    changes = body.model_dump(exclude_unset=True)
    if not changes:
        raise Problem(422, "nothing to change", errors=[{"field": "body", "message": "no fields given"}])
    if not ((changes["email"] if "email" in changes else lead.email)
            or (changes["phone"] if "phone" in changes else lead.phone)):
        raise Problem(422, "a lead needs an email or a phone", errors=[
            {"field": k, "message": "a lead needs an email or a phone"} for k in ("email", "phone") if k in changes])
    if "assigned_to" in changes:  # an active user of the tenant; a staff member's own or an unassigned lead only
        owner = check_lead_assignee(session, principal, lead, changes["assigned_to"])
    before = {k: getattr(lead, k) for k in changes}
    for key, value in changes.items():
        if key != "assigned_to":
            setattr(lead, key, value)
    if "assigned_to" in changes:
        hand_lead(session, principal, lead, owner)  # the new owner's notification commits with the change
    lead.updated_at = utcnow()
    session.add(lead)
    audit(session, principal, "lead.update", "lead", lead.id,
          before=json.loads(json.dumps(before, default=str)), after=json.loads(json.dumps(changes, default=str)))
    if not committed(session):
        # One original per person: the database refuses a second live lead with this email or phone.
        raise Problem(409, "another lead of this tenant already has this email or phone; "
                           "post it as a new submission to link them", errors=[
                               {"field": k, "message": "already used by another lead"}
                               for k in ("email", "phone") if k in changes])
    return _public(session, lead)


class AssignBody(Input):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=320, description="a user's id or email, `round_robin` (the next "
                                                              "member of `team` in turn), or null for nobody")
    team: Team | None = Field(default=None, description="round_robin's team (default: acquisitions)")


@router.post("/{lead_id}/assign", response_model=LeadPublic)
def assign(lead_id: str, body: AssignBody, session: SessionDep, principal: Staff) -> LeadPublic:
    """Give the lead to someone — by name or in turn within a team (fair under concurrency: the database hands out
    the turns) — who is notified in-app and by email. Audited `lead.assign`. Staff assign their own or
    unassigned leads; managers and admins anyone's."""
    lead = _get_lead(session, principal, lead_id)
    assignee = principal.user_id if body.assignee == "me" else body.assignee
    if body.assignee == "me" and assignee is None:
        raise Problem(422, "`me` needs a key that belongs to a user", errors=[
            {"field": "assignee", "message": "the key belongs to no user"}])
    assign_lead(session, principal, lead, assignee, team=body.team.value if body.team else None)
    return _public(session, lead)


@router.get("/{lead_id}/timeline", response_model=list[TimelineEntryPublic])
def lead_timeline(lead_id: str, session: SessionDep, principal: PrincipalDep) -> list[TimelineEntry]:
    """The lead's timeline merged with those of the leads linked to it as duplicates (nothing is dropped)."""
    lead = _get_lead(session, principal, lead_id)
    linked = session.exec(select(Lead.id).where(Lead.tenant_id == principal.tenant_id,
                                                Lead.duplicate_of == lead.id)).all()
    return list(session.exec(
        select(TimelineEntry)
        .where(TimelineEntry.tenant_id == principal.tenant_id, col(TimelineEntry.lead_id).in_([lead.id, *linked]))
        .order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))
    ).all())
