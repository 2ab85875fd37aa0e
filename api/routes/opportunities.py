"""Opportunities (deals): read, move stages through DealWorkflow's validated update, match investors."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep, Staff, audit
from api.errors import Problem
from api.paging import page
from models.input import Input
from models.investor import Investor
from models.matching import match_investors
from models.opportunity import Opportunity, OpportunityMatch, StageChange
from models.payloads import StageMove
from scoring.deal_analysis import Analysis, analyse_deal
from workflows.deal import DealState, DealWorkflow

router = APIRouter(prefix="/api/v1/opportunities", tags=["opportunities"])


class StageChangePublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    from_stage: str | None
    to_stage: str
    actor: str
    reason: str | None
    changed_at: datetime


class OpportunityPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    lead_id: str | None
    property_id: str | None
    title: str
    pipeline: str
    stage: str
    asking_price: Decimal | None
    offer_price: Decimal | None
    contract_price: Decimal | None
    arv: Decimal | None
    repair_estimate: Decimal | None
    sale_price: Decimal | None
    assignment_fee: Decimal | None
    closing_costs: Decimal | None
    repairs_spent: Decimal | None
    workflow_id: str | None
    created_at: datetime
    closed_at: datetime | None
    history: list[StageChangePublic] = Field(default_factory=list)
    analysis: Analysis | None = Field(default=None, description="the deal math of its saved prices and costs "
                                      "(GET /opportunities/{id} only; POST /analysis for unsaved numbers)")


class OpportunityPage(BaseModel):
    items: list[OpportunityPublic]
    next_cursor: str | None


class StageBody(Input):
    model_config = ConfigDict(extra="forbid")
    stage: str = Field(min_length=1, max_length=40)
    reason: str | None = Field(default=None, max_length=500)


def _own(session, principal, opportunity_id: str) -> Opportunity:
    deal = session.get(Opportunity, opportunity_id)
    if deal is None or deal.tenant_id != principal.tenant_id:
        raise Problem(404, f"opportunity {opportunity_id} not found")
    return deal


def _public(session, deal: Opportunity) -> OpportunityPublic:
    return _publics(session, [deal])[0]


def _publics(session, deals: list[Opportunity]) -> list[OpportunityPublic]:
    """The deals with their stage histories, read in one query for the lot (a page of 50 made 50 before)."""
    history: dict[str, list[StageChangePublic]] = {deal.id: [] for deal in deals}
    if deals:
        for change in session.exec(select(StageChange).where(col(StageChange.opportunity_id).in_(list(history)))
                                   .order_by(col(StageChange.changed_at), col(StageChange.id))):
            history[change.opportunity_id].append(StageChangePublic.model_validate(change))
    return [OpportunityPublic.model_validate(deal).model_copy(update={"history": history[deal.id]}) for deal in deals]


@router.get("", response_model=OpportunityPage)
def list_opportunities(session: SessionDep, principal: PrincipalDep, stage: str | None = None,
                       pipeline: str | None = None, limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       cursor: str | None = None) -> OpportunityPage:
    query = select(Opportunity).where(Opportunity.tenant_id == principal.tenant_id)
    if stage:
        query = query.where(Opportunity.stage == stage)
    if pipeline:
        query = query.where(Opportunity.pipeline == pipeline)
    items, next_cursor = page(session, query, Opportunity, limit, cursor)
    return OpportunityPage(items=_publics(session, items), next_cursor=next_cursor)


@router.get("/{opportunity_id}", response_model=OpportunityPublic)
def get_opportunity(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> OpportunityPublic:
    deal = _own(session, principal, opportunity_id)
    return _public(session, deal).model_copy(update={"analysis": analyse_deal(deal)})


@router.post("/{opportunity_id}/stage", response_model=DealState)
async def move_stage(opportunity_id: str, body: StageBody, session: SessionDep, client: ClientDep,
                     settings: SettingsDep, principal: Staff) -> DealState:
    """A Temporal update: an illegal move is a 409 with the reason (e.g. the allowed next stages)."""
    deal = await run_in_threadpool(_own, session, principal, opportunity_id)
    if not deal.workflow_id:
        raise Problem(409, f"opportunity {opportunity_id} has no workflow")
    try:
        state = await client.get_workflow_handle(deal.workflow_id).execute_update(
            DealWorkflow.advance_stage, StageMove(stage=body.stage, reason=body.reason, actor=principal.actor))
    except WorkflowUpdateFailedError as exc:
        raise Problem(409, getattr(exc.cause, "message", None) or str(exc.cause)) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"opportunity {opportunity_id}'s workflow is not running") from None
        raise Problem(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "5"}) from exc

    previous = deal.stage

    def record() -> None:
        audit(session, principal, "opportunity.stage", "opportunity", opportunity_id,
              before={"stage": previous}, after={"stage": body.stage, "reason": body.reason})
        session.commit()  # the workflow's activity wrote the stage and its deal.stage_changed event

    await run_in_threadpool(record)
    return state


class MatchPublic(BaseModel):
    investor_id: str
    name: str
    score: float
    reasons: list[str]
    status: str


class MatchBody(Input):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=10, ge=1, le=100)
    accredited_only: bool = False


def _matches(session, deal: Opportunity) -> list[MatchPublic]:
    rows = session.exec(select(OpportunityMatch, Investor).join(Investor)
                        .where(OpportunityMatch.opportunity_id == deal.id)).all()
    matches = [MatchPublic(investor_id=i.id, name=i.name, score=m.score, reasons=[r["text"] for r in m.reasons],
                           status=m.status) for m, i in rows]
    return sorted(matches, key=lambda m: (-m.score, m.name))


@router.get("/{opportunity_id}/matches", response_model=list[MatchPublic])
def list_matches(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> list[MatchPublic]:
    """The investors matched to this deal so far, best first (POST finds them; so does a definition's
    match_investors step)."""
    return _matches(session, _own(session, principal, opportunity_id))


@router.post("/{opportunity_id}/matches", response_model=list[MatchPublic])
def find_matches(opportunity_id: str, body: MatchBody, session: SessionDep, principal: Staff) -> list[MatchPublic]:
    """Match the deal against every investor's buy box now (markets, price range, property types, capital,
    accreditation); stored, so repeating it refreshes scores and keeps each match's status."""
    deal = _own(session, principal, opportunity_id)
    matched = [f.investor.id for f in match_investors(session, deal, body.limit, body.accredited_only)]
    audit(session, principal, "opportunity.match", "opportunity", opportunity_id, after={"investor_ids": matched})
    session.commit()
    wanted = set(matched)
    return [m for m in _matches(session, deal) if m.investor_id in wanted]
