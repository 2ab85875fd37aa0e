"""Deals (opportunities): opening one from scratch or for a lead, editing its prices, the facts its pipeline's entry
rules read, the list filters, and what a stage SLA breach does. The API's deal routes and the deal activities call
these; the rules themselves are data (definitions/pipelines.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from definitions.pipelines import DEAL_FIELDS, PIPELINES, DealFacts, start_stage
from definitions.staff import MANAGERS, OWNER
from models.audit import record_audit
from models.base import new_id, utcnow
from models.document import Document
from models.event import DEAL_OPENED_EVENT, emit
from models.lead import Lead
from models.opportunity import Opportunity, StageChange
from models.timeline import TimelineEntry
from services.acting import Acting, Invalid, NotFound, check_owner
from services.assignment import assign_deal

MONEY = ("asking_price", "offer_price", "contract_price", "arv", "repair_estimate", "sale_price", "assignment_fee",
         "closing_costs", "repairs_spent")


def deal_workflow_id(tenant_id: str, opportunity_id: str) -> str:
    return f"deal-{tenant_id}-{opportunity_id}"


def deal_facts(session: Session, deal: Opportunity) -> DealFacts:
    """What the entry rules of the deal's next stage look at: which fields have a value, which documents of the
    deal are signed."""
    completed = session.exec(select(Document.kind).where(Document.opportunity_id == deal.id,
                                                         Document.status == "completed").distinct()).all()
    return DealFacts(fields_set=[f for f in DEAL_FIELDS if getattr(deal, f, None) not in (None, "")],
                     completed_documents=sorted(completed))


def get_deal(session: Session, tenant_id: str, opportunity_id: str) -> Opportunity:
    deal = session.get(Opportunity, opportunity_id)
    if deal is None or deal.tenant_id != tenant_id:
        raise NotFound(f"opportunity {opportunity_id} not found")
    return deal


def _money(changes: dict[str, Any]) -> dict[str, Decimal | None]:
    return {k: (Decimal(str(v)) if v is not None else None) for k, v in changes.items() if k in MONEY}


def open_deal(session: Session, caller: Acting, *, title: str | None, pipeline: str, lead_id: str | None = None,
              assignee: str | None = None, team: str | None = None, **money: Any) -> Opportunity:
    """A new deal in its pipeline's first stage, its stage history's first row, and the event that starts its
    DealWorkflow, in one transaction (committed here). `lead_id` links the seller's lead and its property without
    converting the lead (POST /leads/{id}/convert does that, and ends its nurture): a disposition deal for a
    property under contract links the same seller. `assignee` as in services.assignment.resolve."""
    if pipeline not in PIPELINES:
        raise Invalid(f"unknown pipeline {pipeline!r} (pipelines: {', '.join(PIPELINES)})", field="pipeline")
    lead = None
    if lead_id:
        lead = session.get(Lead, lead_id)
        if lead is None or lead.tenant_id != caller.tenant_id:
            raise Invalid(f"lead {lead_id} not found", field="lead_id")
    name = f"{lead.first_name} {lead.last_name}".strip() if lead else ""
    title = (title or "").strip() or (lead and (lead.property_address or name)) or ""
    if not title:
        raise Invalid("a deal needs a title (or a lead_id to take it from)", field="title")
    deal = Opportunity(id=new_id("op"), tenant_id=caller.tenant_id, lead_id=lead.id if lead else None,
                       property_id=lead.property_id if lead else None, title=title[:200], pipeline=pipeline,
                       stage=start_stage(pipeline), assigned_to=lead.assigned_to if lead else None, **_money(money))
    deal.workflow_id = deal_workflow_id(deal.tenant_id, deal.id)
    session.add(deal)
    session.flush()
    session.add(StageChange(id=new_id("sc"), opportunity_id=deal.id, from_stage=None, to_stage=deal.stage,
                            actor=caller.actor, reason="opened"))
    if lead is not None:
        session.add(TimelineEntry(tenant_id=deal.tenant_id, lead_id=lead.id, opportunity_id=deal.id,
                                  kind="deal.opened", summary=f"Deal opened: {deal.title} ({pipeline})",
                                  data={"opportunity_id": deal.id}, actor=caller.actor,
                                  idempotency_key=f"{deal.id}:opened"))
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="deal.create", entity_type="deal",
                 entity_id=deal.id, after={"title": deal.title, "pipeline": pipeline, "lead_id": deal.lead_id,
                                           **{k: str(v) for k, v in _money(money).items() if v is not None}})
    emit(session, tenant_id=deal.tenant_id, subject_type="deal", subject_id=deal.id, name=DEAL_OPENED_EVENT,
         event_id=f"{deal.id}:opened", data={"pipeline": pipeline, "stage": deal.stage,
                                             "workflow_id": deal.workflow_id}, new_subject=True)
    if assignee is not None:  # commits (and notifies the new owner)
        return assign_deal(session, caller, deal, assignee, team=team)
    session.commit()
    return deal


def update_deal(session: Session, caller: Acting, deal: Opportunity, changes: dict[str, Any]) -> Opportunity:
    """PATCH: the title and the prices and costs (a null clears one); audited with before and after. The stage
    moves only through DealWorkflow (POST /stage); the assignee through assign_deal (its own rules)."""
    check_owner(caller, deal.assigned_to, f"deal {deal.id}")
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    if "title" in changes:
        title = (changes["title"] or "").strip()
        if not title:
            raise Invalid("a deal's title cannot be empty", field="title")
        before["title"], after["title"] = deal.title, title
        deal.title = title
    for field, value in _money(changes).items():
        old = getattr(deal, field)
        if old != value:
            before[field], after[field] = (str(old) if old is not None else None), (str(value) if value is not None
                                                                                     else None)
            setattr(deal, field, value)
    if after:
        deal.updated_at = utcnow()
        session.add(deal)
        record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="deal.update",
                     entity_type="deal", entity_id=deal.id, before=before, after=after)
    session.commit()
    return deal


@dataclass(frozen=True)
class DealFilters:
    pipeline: str | None = None
    stage: str | None = None
    assignee: str | None = None  # a user id, or "none" for unassigned
    min_value: Decimal | None = None
    max_value: Decimal | None = None
    stale_for: timedelta | None = None  # open deals that entered their stage at least this long ago


def deal_value(model=Opportunity):
    """A deal's value for the filters: the contract price once there is one, else the offer, else the asking
    price."""
    return func.coalesce(model.contract_price, model.offer_price, model.asking_price)


def deal_list_query(tenant_id: str, filters: DealFilters, now: datetime | None = None) -> SelectOfScalar[Opportunity]:
    query = select(Opportunity).where(Opportunity.tenant_id == tenant_id)
    if filters.pipeline:
        query = query.where(Opportunity.pipeline == filters.pipeline)
    if filters.stage:
        query = query.where(Opportunity.stage == filters.stage)
    if filters.assignee == "none":
        query = query.where(col(Opportunity.assigned_to).is_(None))
    elif filters.assignee:
        query = query.where(Opportunity.assigned_to == filters.assignee)
    if filters.min_value is not None:
        query = query.where(deal_value() >= filters.min_value)
    if filters.max_value is not None:
        query = query.where(deal_value() <= filters.max_value)
    if filters.stale_for is not None:
        query = query.where(col(Opportunity.closed_at).is_(None),
                            col(Opportunity.stage_entered_at) <= (now or utcnow()) - filters.stale_for)
    return query


def sla_breached(session: Session, *, tenant_id: str, opportunity_id: str, stage: str, breach: int, expect: str,
                 overdue_since: datetime, key: str) -> str:
    """A deal overstayed its stage's SLA. The first breach: a reminder task for the deal's owner (who is notified
    of it) and a timeline entry. The second: the owner's team's managers are notified (escalation). Idempotent by
    `key`; a deal that moved on meanwhile is left alone. Returns what was done (the activity's result)."""
    from services.staff_notices import notify_people
    from services.tasks import create_task

    deal = get_deal(session, tenant_id, opportunity_id)
    if deal.stage != stage:
        return f"the deal moved on to {deal.stage}"
    late = f"{deal.title} has been in {stage.replace('_', ' ')} since {deal.stage_entered_at:%Y-%m-%d %H:%M} UTC"
    if breach == 1:
        task = create_task(session, tenant_id=tenant_id, title=f"{expect}: {deal.title}"[:300],
                           description=f"SLA: {late}; due {overdue_since:%Y-%m-%d %H:%M} UTC.", actor="system:sla",
                           opportunity_id=deal.id, due_at=utcnow(), assignee=OWNER if deal.assigned_to else None,
                           idempotency_key=f"{key}:task")
        done = f"reminder task {task.id}" + (f" for {task.assignee}" if task.assignee else " (no owner)")
    else:
        try:
            people = notify_people(session, tenant_id=tenant_id, to=MANAGERS, title=f"SLA missed twice: {deal.title}",
                                   message=f"{late}. {expect} is overdue and the owner was reminded.",
                                   key=f"{key}:escalation", opportunity_id=deal.id)
            done = "escalated to " + ", ".join(people)
        except Invalid as exc:
            done = f"not escalated: {exc}"
    if not session.exec(select(TimelineEntry.id).where(TimelineEntry.idempotency_key == f"{key}:timeline")).first():
        session.add(TimelineEntry(tenant_id=tenant_id, lead_id=deal.lead_id, opportunity_id=deal.id,
                                  kind="deal.sla_breached", summary=f"SLA missed ({breach}): {expect}",
                                  data={"stage": stage, "breach": breach, "outcome": done}, actor="system:sla",
                                  idempotency_key=f"{key}:timeline"))
        session.commit()
    return done
