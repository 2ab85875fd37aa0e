"""Deal activities: conversion and stage history. Ids derive from business keys, so a retry re-finds its row."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal, InvalidOperation

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rows import owned
from pydantic import BaseModel

from definitions.pipelines import is_closed, sla_for
from models.base import utcnow
from models.lead import Lead
from models.event import emit
from services.lead_status import apply_status
from models.opportunity import Opportunity, StageChange
from services.matching import match_investors as find_matches
from models.payloads import ConvertInput, MatchInput
from models.timeline import TimelineEntry
from services.assignment import owner_label, owner_of
from services.deals import deal_workflow_id, sla_breached
from services.documents import void_lost_deal_documents
from workflows.deal import SlaBreach, StageSla


def key_id(prefix: str, key: str) -> str:
    return f"{prefix}_{hashlib.sha256(key.encode()).hexdigest()[:20]}"


class OpenOpportunity(BaseModel):
    tenant_id: str
    lead_id: str
    convert: ConvertInput


class OpportunityOpened(BaseModel):
    opportunity_id: str
    pipeline: str
    stage: str


class StageRecord(BaseModel):
    tenant_id: str
    opportunity_id: str
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str | None = None
    key: str  # business key of this move (workflow id + update id)


class DealActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def open_opportunity(self, request: OpenOpportunity) -> OpportunityOpened:
        opportunity_id = key_id("op", f"{request.lead_id}:convert")
        with Session(self._engine) as session:
            existing = session.get(Opportunity, opportunity_id)
            if existing:
                return OpportunityOpened(opportunity_id=existing.id, pipeline=existing.pipeline, stage=existing.stage)
            lead = owned(session, Lead, request.lead_id, request.tenant_id, "lead")
            try:
                asking = Decimal(request.convert.asking_price) if request.convert.asking_price else None
            except InvalidOperation:
                raise ApplicationError("asking_price is not a number", type="BadInput", non_retryable=True) from None
            name = f"{lead.first_name} {lead.last_name}".strip()
            deal = Opportunity(id=opportunity_id, tenant_id=lead.tenant_id, lead_id=lead.id,
                               property_id=lead.property_id, title=request.convert.title or lead.property_address
                               or name or lead.id, asking_price=asking, assigned_to=lead.assigned_to,
                               workflow_id=deal_workflow_id(lead.tenant_id, opportunity_id))
            session.add(deal)
            session.flush()
            session.add(StageChange(id=key_id("sc", f"{opportunity_id}:open"), opportunity_id=deal.id,
                                    from_stage=None, to_stage=deal.stage, actor=request.convert.actor))
            apply_status(session, lead, "converted", f"converted to {deal.id}", request.convert.actor,
                         event_id=f"{lead.id}:converted")
            session.add(TimelineEntry(tenant_id=lead.tenant_id, lead_id=lead.id, opportunity_id=deal.id,
                                      kind="lead.converted", summary=f"Converted to deal {deal.title}",
                                      data={"opportunity_id": deal.id}, actor=request.convert.actor,
                                      idempotency_key=f"{lead.id}:converted"))
            session.commit()
            return OpportunityOpened(opportunity_id=deal.id, pipeline=deal.pipeline, stage=deal.stage)

    @activity.defn
    def record_stage_change(self, change: StageRecord) -> None:
        with Session(self._engine) as session:
            change_id = key_id("sc", change.key)
            if session.get(StageChange, change_id):
                return
            deal = session.get(Opportunity, change.opportunity_id)
            deal.stage, deal.updated_at = change.to_stage, utcnow()
            deal.stage_entered_at = deal.updated_at  # stale-for's clock (the SLA's is DealWorkflow's timer)
            deal.closed_at = utcnow() if is_closed(deal.pipeline, change.to_stage) else None  # a revived deal reopens
            session.add(deal)
            session.add(StageChange(id=change_id, opportunity_id=deal.id, from_stage=change.from_stage,
                                    to_stage=change.to_stage, actor=change.actor, reason=change.reason))
            session.add(TimelineEntry(tenant_id=deal.tenant_id, lead_id=deal.lead_id, opportunity_id=deal.id,
                                      kind="deal.stage_changed", summary=f"{change.from_stage} → {change.to_stage}",
                                      data={"reason": change.reason}, actor=change.actor,
                                      idempotency_key=f"{change_id}:timeline"))
            # Definitions hear the move, whoever made it (staff through the update, a definition's set_stage).
            emit(session, tenant_id=deal.tenant_id, subject_type="deal", subject_id=deal.id,
                 name="deal.stage_changed", event_id=change_id,
                 data={"stage": change.to_stage, "previous": change.from_stage, "reason": change.reason})
            if change.to_stage == "closed_lost":  # a lost deal's envelopes stop (and send no more reminders)
                void_lost_deal_documents(session, deal, reason=change.reason, actor=change.actor)
            session.commit()

    @activity.defn
    def deal_stage_sla(self, pipeline: str, stage: str) -> StageSla:
        """DealWorkflow's local activity: the stage's SLA in pipelines.yaml now (`within` None: none, or closed)."""
        sla = sla_for(pipeline, stage)
        return StageSla(within=sla.within, expect=sla.expect) if sla else StageSla()

    @activity.defn
    def deal_stage_facts(self, tenant_id: str, opportunity_id: str, pipeline: str, stage: str) -> StageSla:
        """DealWorkflow's local activity since "deal-current-details": the stage's SLA, and the deal's owner for
        the Temporal UI's current details."""
        found = self.deal_stage_sla(pipeline, stage)
        with Session(self._engine) as session:
            deal = owned(session, Opportunity, opportunity_id, tenant_id, "deal")
            found.owner = owner_label(owner_of(session, deal))
        return found

    @activity.defn
    def deal_sla_breached(self, breach: SlaBreach) -> str:
        """The deal overstayed its stage: a reminder task and notice to its owner, or (second breach) its
        managers. Idempotent by the breach's key."""
        with Session(self._engine) as session:
            return sla_breached(session, tenant_id=breach.tenant_id, opportunity_id=breach.opportunity_id,
                                stage=breach.stage, breach=breach.breach, expect=breach.expect,
                                overdue_since=datetime.fromisoformat(breach.overdue_since), key=breach.key)

    @activity.defn
    def match_investors(self, request: MatchInput) -> list[dict]:
        """The deal's investor matches (stored), best first: [{investor_id, name, score, reasons}]."""
        with Session(self._engine) as session:
            deal = owned(session, Opportunity, request.opportunity_id, request.tenant_id, "deal")
            fits = find_matches(session, deal, request.limit, request.accredited_only)
            key = f"{request.idempotency_key or activity.info().activity_id}:matches"
            if not session.exec(select(TimelineEntry).where(TimelineEntry.idempotency_key == key)).first():
                session.add(TimelineEntry(
                    tenant_id=deal.tenant_id, lead_id=deal.lead_id, opportunity_id=deal.id,
                    kind="deal.investors_matched", summary=f"{len(fits)} investor(s) match this deal",
                    data={"investor_ids": [f.investor.id for f in fits]}, idempotency_key=key,
                    workflow_id=activity.info().workflow_id))
            session.commit()
            return [{"investor_id": f.investor.id, "name": f.investor.name, "score": f.score, "reasons": f.reasons}
                    for f in fits]
