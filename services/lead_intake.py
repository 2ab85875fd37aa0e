"""Lead intake shared by POST /leads, lead-source webhooks and the demo seed.

One transaction stores the lead (its property, its audit row) and the event that hands it to its workflow:
`lead.created` for a new person (the relay's signal-with-start of `submitted` starts LeadWorkflow and
enrolls the lead in the definitions it triggers), `lead.submitted_again` on the ORIGINAL lead for a
duplicate. Nothing here talks to Temporal, so intake keeps working while Temporal is down.

"One original lead per person" is the database's rule, not a read before a write: partial unique indexes
on the normalised email and phone of live, non-duplicate leads refuse a second original; the transaction
then runs again, finds the original that won and stores this submission as a duplicate linked to it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import or_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import make_transient_to_detached
from sqlmodel import Session, select

from core.db import in_transaction
from core.metrics import LEADS_RECEIVED
from models.audit import record_audit
from models.base import utcnow
from models.event import emit
from models.lead import Lead, LeadCreate, LeadSource, LeadStatus, Property, lead_workflow_id
from models.payloads import LeadEvent
from models.webhook import WebhookEvent

log = logging.getLogger("dealflow.intake")


def find_original(session: Session, tenant_id: str, body: LeadCreate, address: str | None) -> str | None:
    """The id of the earliest live, non-duplicate lead of the tenant with the same email, phone, or
    name+address (the id alone, in Core: loading the whole row was a tenth of an intake's CPU, and the ORM's
    scalar result another tenth)."""
    leads = Lead.__table__.c
    matches = []
    if body.email:
        matches.append(leads.email == body.email)
    if body.phone:
        matches.append(leads.phone == body.phone)
    if address and body.last_name:
        matches.append((leads.property_address == address) & (leads.last_name == body.last_name))
    if not matches:
        return None
    query = (
        select(leads.id)
        .where(leads.tenant_id == tenant_id, leads.deleted_at.is_(None), leads.duplicate_of.is_(None))
        .where(or_(*matches))
        .order_by(leads.created_at, leads.id)
        .limit(1)
    )
    row = session.connection().execute(query).first()
    return row[0] if row else None


def _property(session: Session, tenant_id: str, body: LeadCreate) -> Property | None:
    """The property at the lead's address: stored now, or the one an earlier (or concurrent) intake stored. One
    statement when it is new — INSERT … ON CONFLICT DO NOTHING on the unique (tenant, address), which waits
    for a concurrent writer of the same address — instead of a read, a savepoint and an insert."""
    postal = body.postal_address()
    if not postal:
        return None
    address = postal.one_line
    row = Property(tenant_id=tenant_id, normalized_address=address,
                   **postal.model_dump(include={"street", "unit", "city", "state", "zip"}))
    connection = session.connection()
    table = Property.__table__
    insert = (postgresql if connection.dialect.name == "postgresql" else sqlite).insert
    values = {column.name: getattr(row, column.name) for column in table.columns}
    stored = connection.execute(insert(table).values(values).on_conflict_do_nothing(
        index_elements=["tenant_id", "normalized_address"]).returning(table.c.id)).first()
    if stored is not None:
        make_transient_to_detached(row)  # the row as inserted: the session knows it without reading it back
        session.add(row)
        return row
    return session.exec(select(Property).where(Property.tenant_id == tenant_id,
                                               Property.normalized_address == address)).one()


def store_lead(session: Session, tenant_id: str, actor: str, body: LeadCreate, *,
               channel: str = "api") -> tuple[Lead, str | None]:
    """Add the lead, its property, audit row and event to the session (the caller commits, see
    `in_transaction`). Returns (lead, the original's id or None)."""
    property_row = _property(session, tenant_id, body)
    address = property_row.normalized_address if property_row else None
    original = find_original(session, tenant_id, body, address)
    lead = Lead(
        tenant_id=tenant_id, first_name=body.first_name, last_name=body.last_name, email=body.email,
        phone=body.phone, property_id=property_row.id if property_row else None, property_address=address,
        source=body.source, notes=body.notes, tags=body.tags, custom=body.custom,
    )
    lead.workflow_id = lead_workflow_id(tenant_id, original or lead.id)
    if original:
        lead.duplicate_of = original
    session.add(lead)
    session.flush()  # the unique indexes speak here: a concurrent original makes this one a duplicate
    # What the new row holds, its empty fields left out; a large custom or notes is kept as its digest (record_audit).
    after = {k: v for k, v in lead.model_dump(mode="json", exclude={"score_explanation"}).items()
             if v not in (None, "", [], {})}
    record_audit(session, tenant_id=tenant_id, actor=actor, action="lead.create", entity_type="lead",
                 entity_id=lead.id, after=after)
    data = {"channel": channel, "lead_id": lead.id, "source": str(body.source)}
    if original is None:
        emit(session, tenant_id=tenant_id, subject_type="lead", subject_id=lead.id, name="lead.created",
             event_id=f"{lead.id}:created", data={"channel": channel}, workflow_signal="submitted",
             signal_payload=LeadEvent(event_id=lead.id, actor=actor, data=data).model_dump(), start=True,
             new_subject=True)
    else:
        note = f"Submitted again as {lead.id} via {str(body.source).replace('_', ' ')}"
        emit(session, tenant_id=tenant_id, subject_type="lead", subject_id=original,
             name="lead.submitted_again", event_id=lead.id, data=data, workflow_signal="submitted",
             signal_payload=LeadEvent(event_id=lead.id, actor=actor, note=note, data=data).model_dump(),
             start=True)
    return lead, original


def receive_lead(session: Session, tenant_id: str, actor: str, body: LeadCreate, *,
                 channel: str = "api") -> tuple[Lead, bool]:
    """Store the lead and its event in one committed transaction. Returns (lead, is_duplicate). Blocking:
    call it from a worker thread."""
    lead, original = in_transaction(session, lambda: store_lead(session, tenant_id, actor, body, channel=channel))
    LEADS_RECEIVED.labels(tenant_id, "duplicate" if original else "new").inc()
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
    record_audit(session, tenant_id=tenant_id, actor=f"webhook:{source}", action="lead.hold_for_review",
                 entity_type="lead", entity_id=lead.id, after={"source": source, "errors": errors})
    return lead


@dataclass
class SourceOutcome:
    status: str  # created, duplicate_of (same person), duplicate (same webhook id), needs_review
    lead_id: str | None
    duplicate_of: str | None
    http_status: int


def receive_source_lead(session: Session, tenant_id: str, source: str, event_id: str, body: bytes) -> SourceOutcome:
    """A verified lead-source webhook: its `webhook_events` row (unique per source + id), the lead and the
    lead's event in ONE transaction, so a replay of the id — even while the first request is in flight,
    which the unique index makes wait for it — finds the first one's outcome and stores nothing."""
    from services.delivery_events import claim_event

    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
        parse_error = None
    except ValueError as exc:  # includes UnicodeDecodeError
        payload, parse_error = {"raw_body": body.decode("utf-8", "replace")[:5000]}, str(exc)
    provider = f"lead_source:{source}"
    key = f"{tenant_id}:{event_id}"  # ids are the source's, not unique across tenants

    def work() -> SourceOutcome:
        row = claim_event(session, provider, key, "lead", payload, tenant_id)
        if row is None:
            first = session.exec(select(WebhookEvent).where(WebhookEvent.provider == provider,
                                                            WebhookEvent.event_id == key[:300],
                                                            WebhookEvent.tenant_id == tenant_id)).one()
            if first.status != "received":  # done: its lead (or its needs_review lead) stands
                lead_id = (first.error or "").partition(":")[2] or None
                return SourceOutcome("duplicate", lead_id, None, 202)
            # Claimed but never finished: on SQLite a first-write savepoint commits on its own, so a claim can
            # outlive its rolled-back lead. Finish it now rather than drop the lead.
            row = first
        errors = [{"field": "body", "message": parse_error}] if parse_error else None
        if errors is None:
            try:
                lead_body = LeadCreate.model_validate(lead_fields(source, payload))
            except ValidationError as exc:
                errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body",
                           "message": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]
        if errors:
            held = hold_for_review(session, tenant_id, source, payload, errors)
            row.status, row.error, row.processed_at = "failed", f"needs_review:{held.id}", utcnow()
            return SourceOutcome("needs_review", held.id, None, 202)
        lead, original = store_lead(session, tenant_id, f"webhook:{source}", lead_body, channel=f"webhook:{source}")
        row.status, row.error, row.processed_at = "applied", f"lead:{lead.id}", utcnow()
        session.add(row)
        if original:
            return SourceOutcome("duplicate_of", lead.id, original, 200)
        return SourceOutcome("created", lead.id, None, 201)

    outcome = in_transaction(session, work)
    if outcome.status in ("created", "duplicate_of"):
        LEADS_RECEIVED.labels(tenant_id, "duplicate" if outcome.duplicate_of else "new").inc()
    return outcome
