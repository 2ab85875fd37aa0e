"""Capital raises: an offering on a deal, its status, and each investor's allocation (soft commit, commit, fund,
withdraw) — every move through OfferingWorkflow's validated updates, answered 409 with every reason a rule gives."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool
from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from api.deps import ClientDep, PrincipalDep, SessionDep, SettingsDep, Staff, audit
from api.errors import Problem
from api.routes.documents import DocumentPublic, Expiring, document_public, missing_values
from models.input import Input, OneLine
from models.investor import Investor
from models.offering import Allocation, Offering
from services.deals import get_deal
from services.offerings import (
    allocation_facts, check_raise_owner, get_offering, investor_allocations, open_offering, request_subscription,
    totals,
)
from workflows.offering import AllocationFacts, AllocationMove, OfferingMove, OfferingState, OfferingWorkflow

router = APIRouter(prefix="/api/v1", tags=["offerings"])

Money = Annotated[Decimal, Field(gt=0, le=Decimal("999999999999.99"), max_digits=14, decimal_places=2)]


class OfferingCreate(Input):
    model_config = ConfigDict(extra="forbid")
    title: OneLine | None = Field(default=None, min_length=1, max_length=200, description="default: the deal's")
    target_amount: Money
    minimum_investment: Money
    rule: Literal["506b", "506c"] = Field(default="506c", description="Rule 506(b) (self-certified investors, "
                                          "no general solicitation) or 506(c) (verified accreditation)")
    close_date: date | None = None


class AllocationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    investor_id: str
    amount: Decimal
    status: str
    sequence: int | None
    subscription_document_id: str | None
    funded_amount: Decimal | None
    funded_on: date | None
    funding_method: str | None
    updated_at: datetime


class OfferingPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    opportunity_id: str
    title: str
    target_amount: Decimal
    minimum_investment: Decimal
    rule: str
    close_date: date | None
    status: str
    workflow_id: str | None
    created_at: datetime
    totals: dict[str, Decimal] = Field(default_factory=dict, description="soft_committed, committed (funded "
                                       "included), funded, waitlisted, remaining, equalisation (received − committed)")
    allocations: list[AllocationPublic] = Field(default_factory=list)


def _public(session, offering: Offering) -> OfferingPublic:
    rows = list(session.exec(select(Allocation).where(Allocation.offering_id == offering.id)
                             .order_by(col(Allocation.created_at), col(Allocation.id))))
    return OfferingPublic.model_validate(offering).model_copy(update={
        "totals": totals(rows, offering.target_amount),
        "allocations": [AllocationPublic.model_validate(a) for a in rows]})


@router.post("/opportunities/{opportunity_id}/offerings", response_model=OfferingPublic, status_code=201,
             tags=["opportunities"])
def create_offering(opportunity_id: str, body: OfferingCreate, session: SessionDep,
                    principal: Staff) -> OfferingPublic:
    """A draft capital raise on the deal; its OfferingWorkflow is started by the worker from the event committed
    with it."""
    offering = open_offering(session, principal, get_deal(session, principal.tenant_id, opportunity_id),
                             title=body.title, target_amount=body.target_amount,
                             minimum_investment=body.minimum_investment, rule=body.rule, close_date=body.close_date)
    return _public(session, offering)


@router.get("/opportunities/{opportunity_id}/offerings", response_model=list[OfferingPublic], tags=["opportunities"])
def list_offerings(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> list[OfferingPublic]:
    deal = get_deal(session, principal.tenant_id, opportunity_id)
    return [_public(session, o) for o in session.exec(
        select(Offering).where(Offering.opportunity_id == deal.id).order_by(col(Offering.created_at)))]


class InvestorAllocation(AllocationPublic):
    offering_id: str
    offering_title: str
    offering_status: str
    rule: str
    close_date: date | None
    opportunity_id: str
    deal_title: str


@router.get("/investors/{investor_id}/allocations", response_model=list[InvestorAllocation], tags=["investors"])
def list_investor_allocations(investor_id: str, session: SessionDep,
                              principal: PrincipalDep) -> list[InvestorAllocation]:
    """What the investor put into each raise (soft commit, committed, funded, waitlisted, withdrawn), newest
    first."""
    investor = session.get(Investor, investor_id)
    if investor is None or investor.tenant_id != principal.tenant_id:
        raise Problem(404, f"investor {investor_id} not found")
    return [InvestorAllocation(**AllocationPublic.model_validate(allocation).model_dump(), offering_id=offering.id,
                               offering_title=offering.title, offering_status=offering.status, rule=offering.rule,
                               close_date=offering.close_date, opportunity_id=deal.id, deal_title=deal.title)
            for allocation, offering, deal in investor_allocations(session, principal.tenant_id, investor_id)]


@router.get("/offerings/{offering_id}", response_model=OfferingPublic)
def get_offering_route(offering_id: str, session: SessionDep, principal: PrincipalDep) -> OfferingPublic:
    return _public(session, get_offering(session, principal.tenant_id, offering_id))


async def _update(client, offering: Offering, update, argument) -> OfferingState:
    try:
        return await client.get_workflow_handle(offering.workflow_id).execute_update(update, argument)
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        details = [d for d in (getattr(cause, "details", None) or ()) if isinstance(d, str)]
        raise Problem(409, getattr(cause, "message", None) or str(cause),
                      errors=[{"field": "allocation", "message": d} for d in details] or None) from None
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise Problem(409, f"offering {offering.id}'s workflow is not running (yet)") from None
        raise Problem(503, f"Temporal is unavailable: {exc.message}", headers={"Retry-After": "5"}) from exc


class StatusBody(Input):
    model_config = ConfigDict(extra="forbid")
    status: Literal["open", "active", "closed"]


@router.post("/offerings/{offering_id}/status", response_model=OfferingState)
async def move_offering(offering_id: str, body: StatusBody, session: SessionDep, client: ClientDep,
                        principal: Staff) -> OfferingState:
    """draft → open (soft commits) → active (commitments, documents, funding) → closed."""
    def read() -> Offering:
        offering = get_offering(session, principal.tenant_id, offering_id)
        check_raise_owner(session, principal, offering)
        return offering

    offering = await run_in_threadpool(read)
    return await _update(client, offering, OfferingWorkflow.set_status,
                         OfferingMove(status=body.status, actor=principal.actor))


class SoftCommitBody(Input):
    model_config = ConfigDict(extra="forbid")
    investor_id: str = Field(min_length=1, max_length=40)
    amount: Money


class CommitBody(Input):
    model_config = ConfigDict(extra="forbid")
    subscription_document_id: str = Field(min_length=1, max_length=40, description="the investor's subscription "
                                          "agreement, signed and countersigned (a completed document of this deal)")


class SubscriptionTerms(Input):
    """What the agreement prints besides the offering's name and the soft commit's amount (those are the raise's)."""

    model_config = ConfigDict(extra="forbid")
    memorandum_date: date | None = Field(default=None, description="the private placement memorandum's date")
    governing_state: OneLine | None = Field(default=None, min_length=2, max_length=40)
    funding_days: int | None = Field(default=None, ge=1, le=90, description="business days to wire (default 5)")
    issuer_name: OneLine | None = Field(default=None, min_length=1, max_length=200)


class SubscriptionBody(Expiring):
    model_config = ConfigDict(extra="forbid")
    terms: SubscriptionTerms = Field(default_factory=SubscriptionTerms)


class FundBody(Input):
    model_config = ConfigDict(extra="forbid")
    amount: Money = Field(description="what was received (an amount other than the commitment is recorded as "
                          "equalisation)")
    received_on: date
    method: Literal["wire", "ach", "check"]


async def _allocate(session, client, principal, offering_id: str, investor_id: str, action: str,
                    document_id: str | None = None, **fields) -> OfferingState:
    def read() -> tuple[Offering, dict]:
        offering = get_offering(session, principal.tenant_id, offering_id)
        check_raise_owner(session, principal, offering)
        return offering, allocation_facts(session, offering, investor_id, document_id)

    offering, facts = await run_in_threadpool(read)
    return await _update(client, offering, OfferingWorkflow.allocate, AllocationMove(
        investor_id=investor_id, action=action, subscription_document_id=document_id, actor=principal.actor,
        facts=AllocationFacts(**facts), **fields))


@router.post("/offerings/{offering_id}/allocations", response_model=OfferingState)
async def soft_commit(offering_id: str, body: SoftCommitBody, session: SessionDep, client: ClientDep,
                      principal: Staff) -> OfferingState:
    """An investor's soft commit (the offering open or active; at least the minimum; eligible under its rule)."""
    return await _allocate(session, client, principal, offering_id, body.investor_id, "soft_commit",
                           amount=body.amount)


@router.post("/offerings/{offering_id}/allocations/{investor_id}/commit", response_model=OfferingState)
async def commit(offering_id: str, investor_id: str, body: CommitBody, session: SessionDep, client: ClientDep,
                 principal: Staff) -> OfferingState:
    """Soft commit → committed, with the signed subscription agreement; waitlisted (in commitment order) when the
    raise is full."""
    return await _allocate(session, client, principal, offering_id, investor_id, "commit",
                           document_id=body.subscription_document_id)


@router.post("/offerings/{offering_id}/allocations/{investor_id}/subscription", status_code=201,
             response_model=DocumentPublic, responses={200: {"model": DocumentPublic,
                                                             "description": "the agreement already out or signed"}})
def request_subscription_agreement(offering_id: str, investor_id: str, body: SubscriptionBody, response: Response,
                                   session: SessionDep, settings: SettingsDep, principal: Staff) -> DocumentPublic:
    """The investor's subscription agreement for their soft commit, sent for signature (subscriber: the investor;
    issuer: you, else the deal's owner), printing the offering's name and the soft commit's amount. Once every
    party signed, the worker commits the soft commit through the offering's workflow (its rules apply: a refusal
    is on the investor's timeline). 409 without a soft commit or while the offering is not active."""
    offering = get_offering(session, principal.tenant_id, offering_id)
    with missing_values(session, "subscription_agreement"):
        document, created = request_subscription(session, settings, principal, offering, investor_id,
                                                 terms=body.terms.model_dump(mode="json", exclude_none=True),
                                                 expires_in=body.expiry())
    if created:
        audit(session, principal, "document.request", "document", document.id,
              after={"offering_id": offering.id, "investor_id": investor_id, "template": "subscription_agreement"})
    else:
        response.status_code = 200
    session.commit()
    return document_public(session, document)


@router.post("/offerings/{offering_id}/allocations/{investor_id}/fund", response_model=OfferingState)
async def fund(offering_id: str, investor_id: str, body: FundBody, session: SessionDep, client: ClientDep,
               principal: Staff) -> OfferingState:
    return await _allocate(session, client, principal, offering_id, investor_id, "fund", funded_amount=body.amount,
                           funded_on=body.received_on.isoformat(), funding_method=body.method)


@router.post("/offerings/{offering_id}/allocations/{investor_id}/withdraw", response_model=OfferingState)
async def withdraw(offering_id: str, investor_id: str, session: SessionDep, client: ClientDep,
                   principal: Staff) -> OfferingState:
    """The investor is out; the first waitlisted commitments that fit take the place, in order."""
    return await _allocate(session, client, principal, offering_id, investor_id, "withdraw")
