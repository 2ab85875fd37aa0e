"""Lead intake shared by POST /leads, lead-source webhooks and the demo seed.

Store first, then hand the lead to its workflow by signal-with-start of `submitted`. A duplicate is
kept as its own row (nothing is dropped) with `duplicate_of` set, and its submission is signalled to
the ORIGINAL lead's workflow, which also (re)starts that workflow if it never started.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import or_
from starlette.concurrency import run_in_threadpool
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy

from api.deps import audit
from api.errors import Problem
from api.security import Principal
from core import search_attributes as sa
from core.metrics import LEADS_RECEIVED
from definitions.enrollment import on_event
from core.settings import Settings
from models.lead import Lead, LeadCreate, LeadSource, LeadStatus, Property, lead_workflow_id
from models.payloads import LeadEvent, LeadWorkflowInput
from workflows.lead import LeadWorkflow

log = logging.getLogger("dealflow.intake")

def find_original(session: Session, tenant_id: str, body: LeadCreate, address: str | None) -> Lead | None:
    """The earliest live, non-duplicate lead of the tenant with the same email, phone, or name+address."""
    matches = []
    if body.email:
        matches.append(Lead.email == body.email)
    if body.phone:
        matches.append(Lead.phone == body.phone)
    if address and body.last_name:
        matches.append((Lead.property_address == address) & (Lead.last_name == body.last_name))
    if not matches:
        return None
    query = (
        select(Lead)
        .where(Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None), col(Lead.duplicate_of).is_(None))
        .where(or_(*matches))
        .order_by(col(Lead.created_at), col(Lead.id))
    )
    return session.exec(query).first()

def _store_lead(session: Session, principal: Principal, body: LeadCreate) -> tuple[Lead, Lead | None]:
    """Dedupe, then store the lead, its property and the audit row in one transaction."""
    tenant_id = principal.tenant_id
    postal = body.postal_address()
    address = postal.one_line if postal else None
    original = find_original(session, tenant_id, body, address)

    property_row = None
    if postal:
        property_row = session.exec(
            select(Property).where(Property.tenant_id == tenant_id, Property.normalized_address == address)
        ).first()
        if property_row is None:
            property_row = Property(tenant_id=tenant_id, normalized_address=address,
                                    **postal.model_dump(include={"street", "unit", "city", "state", "zip"}))
            session.add(property_row)
            session.flush()

    lead = Lead(
        tenant_id=tenant_id, first_name=body.first_name, last_name=body.last_name, email=body.email,
        phone=body.phone, property_id=property_row.id if property_row else None, property_address=address,
        source=body.source, notes=body.notes, tags=body.tags, custom=body.custom,
    )
    lead.workflow_id = lead_workflow_id(tenant_id, (original or lead).id)
    if original:
        lead.duplicate_of = original.id
    session.add(lead)
    audit(session, principal, "lead.create", "lead", lead.id,
          after=lead.model_dump(mode="json", exclude={"score_explanation"}))
    session.commit()
    return lead, original

async def receive_lead(session: Session, client: Client, settings: Settings, principal: Principal,
                       body: LeadCreate, *, channel: str = "api") -> tuple[Lead, bool]:
    """Store the lead and signal its workflow. Returns (lead, is_duplicate)."""
    # Blocking DB work runs on the thread pool, never on the event loop (which the worker may share).
    lead, original = await run_in_threadpool(_store_lead, session, principal, body)
    tenant_id = principal.tenant_id
    canonical = original or lead
    LEADS_RECEIVED.labels(tenant_id, "duplicate" if original else "new").inc()

    event = LeadEvent(event_id=lead.id, actor=principal.actor, note=(
        f"Submitted again as {lead.id} via {body.source.replace('_', ' ')}" if original else None),
        data={"channel": channel, "lead_id": lead.id, "source": body.source})
    try:
        await client.start_workflow(
            LeadWorkflow.run,
            LeadWorkflowInput(tenant_id=tenant_id, lead_id=canonical.id, source=canonical.source,
                              status=canonical.status),
            id=lead.workflow_id,
            task_queue=settings.temporal_task_queue,
            start_signal="submitted",
            start_signal_args=[event],
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            search_attributes=TypedSearchAttributes([
                SearchAttributePair(sa.TENANT_ID, tenant_id),
                SearchAttributePair(sa.LEAD_ID, canonical.id),
                SearchAttributePair(sa.LEAD_STATUS, str(canonical.status or LeadStatus.new)),
            ]),
        )
    except Exception as exc:  # noqa: BLE001 - any Temporal failure is answered the same way
        log.error("lead %s stored but workflow %s could not start: %s", lead.id, lead.workflow_id, exc)
        raise Problem(503, f"lead stored as {lead.id} but its workflow could not be started ({exc}); "
                           "repeat the request: it will be deduplicated and the workflow resumed",
                      lead_id=lead.id) from exc
    if original is None:
        try:  # published definitions triggered by lead.created
            await run_in_threadpool(on_event, session, client, settings.temporal_task_queue, lead, "lead.created",
                                    f"{lead.id}:created", {"channel": channel})
        except Exception as exc:  # noqa: BLE001 - the lead and its own workflow stand; say what was missed
            log.error("lead %s: definitions triggered by lead.created could not start: %s", lead.id, exc)
    return lead, original is not None


# Field names lead sources commonly use (Zapier, form builders, PPC platforms) -> ours.
FIELD_ALIASES = {
    "first_name": ("first_name", "firstname", "firstName", "first", "fname"),
    "last_name": ("last_name", "lastname", "lastName", "last", "lname"),
    "email": ("email", "email_address", "emailAddress", "e-mail"),
    "phone": ("phone", "phone_number", "phoneNumber", "mobile", "cell", "tel"),
    "property_address": ("property_address", "address", "propertyAddress", "street_address", "full_address"),
    "notes": ("notes", "message", "comments", "comment"),
}


def lead_fields(source: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Map a lead source's JSON onto LeadCreate's fields (validation happens after)."""
    fields: dict[str, Any] = {}
    for ours, names in FIELD_ALIASES.items():
        for name in names:
            if payload.get(name) not in (None, ""):
                fields[ours] = payload[name]
                break
    if "first_name" not in fields and isinstance(payload.get("name"), str):
        first, _, last = payload["name"].strip().partition(" ")
        fields["first_name"], fields["last_name"] = first, last
    known = {n for names in FIELD_ALIASES.values() for n in names} | {"name", "id", "tags", "source"}
    fields["source"] = source if source in LeadSource.__members__ else "other"
    fields["tags"] = payload.get("tags") if isinstance(payload.get("tags"), list) else []
    fields["custom"] = {"lead_source": source, **{k: v for k, v in payload.items() if k not in known}}
    return fields


def hold_for_review(session: Session, tenant_id: str, source: str, payload: dict[str, Any],
                    errors: list[dict[str, str]]) -> Lead:
    """Poison input from a lead source: kept as a needs_review lead with the reasons, never dropped and
    never retried (no workflow runs until staff fix it)."""
    reason = "; ".join(f"{e['field']}: {e['message']}" for e in errors)[:500]
    lead = Lead(tenant_id=tenant_id, source=LeadSource.other if source not in LeadSource.__members__ else source,
                status=LeadStatus.needs_review, status_reason=f"could not be read from {source}: {reason}",
                first_name=str(payload.get("first_name") or payload.get("name") or "")[:100],
                custom={"lead_source": source, "raw": payload, "errors": errors})
    session.add(lead)
    audit(session, None, "lead.hold_for_review", "lead", lead.id, after={"source": source, "errors": errors},
          actor=f"webhook:{source}", tenant_id=tenant_id)
    return lead
