"""Investors (capital partners and buyers): create (deduplicated), list, detail, timeline, recorded events.

Creating an investor and recording an event on one (investor.committed, meeting.booked, ...) start the
published definitions with `subject: investor` that the event triggers, and tell the running ones."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select
from starlette.concurrency import run_in_threadpool

from api.deps import PrincipalDep, SessionDep, SettingsDep, Staff, audit, me
from api.errors import Problem
from api.paging import page
from api.routes.leads import EventBody
from core.db import is_unique_violation
from models.base import utcnow
from models.event import emit
from definitions.language import RECORDED_EVENTS
from models.accreditation import Accreditation, AccreditationMethod
from models.input import Input, OneLine
from models.investor import (
    Investor, InvestorCreate, InvestorPage, InvestorPublic, InvestorStatus, InvestorUpdate, advance,
)
from services.accreditation import commitment_problem, minimum_commitment
from services.accreditation import record as record_accreditation
from services.investors import InvestorFilters, investor_list_query, reopen_investor, update_investor
from models.timeline import TimelineEntry, TimelineEntryPublic

router = APIRouter(prefix="/api/v1/investors", tags=["investors"])
log = logging.getLogger("dealflow.api")


def _public(investor: Investor, **extra) -> InvestorPublic:
    return InvestorPublic.model_validate(investor, from_attributes=True).model_copy(update=extra)


def _get(session, principal, investor_id: str) -> Investor:
    investor = session.get(Investor, investor_id)
    if investor is None or investor.tenant_id != principal.tenant_id:  # another tenant's reads as missing
        raise Problem(404, f"investor {investor_id} not found")
    return investor


@router.post("", status_code=201, response_model=InvestorPublic,
             responses={200: {"model": InvestorPublic, "description": "an investor with that email or phone "
                                                                      "already exists (duplicate: true)"}})
async def create_investor(body: InvestorCreate, response: Response, session: SessionDep,
                          principal: Staff) -> InvestorPublic:
    def existing() -> Investor | None:
        for column, value in ((Investor.email, body.email), (Investor.phone, body.phone)):
            if value:
                found = session.exec(select(Investor).where(Investor.tenant_id == principal.tenant_id,
                                                            column == value)).first()
                if found:
                    return found
        return None

    def create() -> tuple[Investor, bool]:
        found = existing()
        if found:
            return found, True
        investor = Investor(tenant_id=principal.tenant_id, **body.model_dump(exclude={"preferences"}),
                            preferences=body.preferences.model_dump(mode="json", exclude_none=True))
        session.add(investor)
        session.add(TimelineEntry(tenant_id=principal.tenant_id, investor_id=investor.id, kind="investor.created",
                                  summary=f"Investor {investor.name} added", actor=principal.actor,
                                  idempotency_key=f"{investor.id}:created"))
        audit(session, principal, "investor.create", "investor", investor.id,
              after=body.model_dump(mode="json", exclude_none=True))
        try:
            session.flush()  # the unique (tenant, email/phone) indexes speak here
            emit(session, tenant_id=principal.tenant_id, subject_type="investor", subject_id=investor.id,
                 name="investor.created", event_id=f"{investor.id}:created")
            session.commit()
        except IntegrityError as exc:  # the same address posted concurrently: the other request created it
            session.rollback()
            if not is_unique_violation(exc) or (found := existing()) is None:
                raise
            return found, True
        session.refresh(investor)
        return investor, False

    investor, duplicate = await run_in_threadpool(create)
    if duplicate:
        response.status_code = 200
    response.headers["Location"] = f"/api/v1/investors/{investor.id}"
    return _public(investor, duplicate=duplicate)


@router.get("", response_model=InvestorPage)
def list_investors(
    session: SessionDep,
    principal: PrincipalDep,
    status: Annotated[list[InvestorStatus] | None, Query()] = None,
    accredited: bool | None = None,
    market: Annotated[str | None, Query(pattern=r"^([A-Za-z]{2}|\d{5})$", description="a state (TX) or ZIP in "
                                        "the buy box")] = None,
    check: Annotated[Decimal | None, Query(ge=0, le=Decimal("1e12"), description="a check of this size fits "
                                           "the investor's min/max")] = None,
    contacted_before: datetime | None = None,
    contacted_after: datetime | None = None,
    owner: Annotated[str | None, Query(max_length=40, description="`me`, a user id, or `none`")] = None,
    q: Annotated[str | None, Query(max_length=200, description="name, company, email or phone contains")] = None,
    accreditation_ends_within: Annotated[int | None, Query(ge=1, le=366, description="days: investors whose "
                                                           "unexpired accreditation ends within them")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> InvestorPage:
    for name, moment in (("contacted_before", contacted_before), ("contacted_after", contacted_after)):
        if moment is not None and moment.tzinfo is None:
            raise Problem(422, f"{name} needs a time zone", errors=[{"field": name, "message": "naive time"}])
    filters = InvestorFilters(status=tuple(s.value for s in status or ()), accredited=accredited,
                              market=market.upper() if market else None, check=check,
                              contacted_before=contacted_before, contacted_after=contacted_after,
                              owner=me(principal, owner, "owner"), q=q,
                              accreditation_ends_by=utcnow() + timedelta(days=accreditation_ends_within)
                              if accreditation_ends_within else None)
    query = investor_list_query(principal.tenant_id, filters, session.get_bind().dialect.name)
    items, next_cursor = page(session, query, Investor, limit, cursor)
    return InvestorPage(items=[_public(i) for i in items], next_cursor=next_cursor)


@router.patch("/{investor_id}", response_model=InvestorPublic)
def patch_investor(investor_id: str, body: InvestorUpdate, session: SessionDep, principal: Staff) -> InvestorPublic:
    """The buy box, entity type, check sizes, notes, tags, contact details and owner; audited, on the timeline."""
    changes = body.model_dump(exclude_unset=True)
    if "preferences" in changes and body.preferences is not None:
        changes["preferences"] = body.preferences.model_dump(mode="json", exclude_none=True)
    if "assignee" in changes:
        changes["assignee"] = me(principal, changes["assignee"])
    return _public(update_investor(session, principal, _get(session, principal, investor_id), changes))


class ReopenBody(Input):
    model_config = ConfigDict(extra="forbid")
    reason: str | None = Field(default=None, max_length=500)


@router.post("/{investor_id}/reopen", response_model=InvestorPublic)
def reopen(investor_id: str, body: ReopenBody, session: SessionDep, principal: Staff) -> InvestorPublic:
    """A passed investor back to engaged (409 for any other status); investor.reopened on the event path."""
    return _public(reopen_investor(session, principal, _get(session, principal, investor_id), body.reason))


class AccreditationBody(Input):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    method: AccreditationMethod = Field(description="self_certification (Rule 506(b)); income, net_worth, "
                                        "third_party_letter or minimum_investment (verifications for 506(c))")
    evidence: str | None = Field(default=None, max_length=2000, description="what was seen (required for a "
                                 "506(c) verification unless a document is named)")
    evidence_document_id: str | None = Field(default=None, max_length=40)
    verifier: OneLine | None = Field(default=None, max_length=200, description="who wrote a third-party letter")
    verified_at: datetime | None = Field(default=None, description="default: now; the window counts from it")


class AccreditationPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    method: str
    status: str
    evidence: str | None
    evidence_document_id: str | None
    verifier: str | None
    verified_by: str
    verified_at: datetime
    expires_at: datetime
    expired_at: datetime | None
    workflow_id: str | None


@router.get("/{investor_id}/accreditations", response_model=list[AccreditationPublic])
def list_accreditations(investor_id: str, session: SessionDep, principal: PrincipalDep) -> list[Accreditation]:
    """The latest recorded first; the `valid` one (at most one) is the investor's current accreditation."""
    investor = _get(session, principal, investor_id)
    return list(session.exec(select(Accreditation).where(Accreditation.investor_id == investor.id)
                             .order_by(col(Accreditation.created_at).desc(), col(Accreditation.id).desc())))


@router.post("/{investor_id}/accreditations", response_model=AccreditationPublic, status_code=201)
def add_accreditation(investor_id: str, body: AccreditationBody, session: SessionDep, principal: Staff,
                      settings: SettingsDep) -> Accreditation:
    """A verification: it supersedes the investor's previous one and counts for its method's window
    (`accreditation_valid_days`: a third-party letter 90 days). Its AccreditationWorkflow reminds before the end
    (investor definitions hear accreditation.expiring; the owner is notified) and expires it."""
    return record_accreditation(
        session, principal, _get(session, principal, investor_id), method=body.method,
        valid_days=settings.accreditation_valid_days, reminder_days=settings.accreditation_reminder_days,
        evidence=body.evidence, verifier=body.verifier, evidence_document_id=body.evidence_document_id,
        verified_at=body.verified_at)


class Eligibility(BaseModel):
    rule: str
    eligible: bool
    reason: str | None
    minimum_commitment: Decimal | None = Field(default=None, description="the least a commitment may be, when the "
                                               "verification is by the minimum-investment method")


@router.get("/{investor_id}/eligibility", response_model=Eligibility)
def eligibility(investor_id: str, session: SessionDep, principal: PrincipalDep,
                rule: Literal["506b", "506c"] = "506c") -> Eligibility:
    """Whether the investor may commit to an offering under Rule 506(b) or 506(c) now, and why not."""
    investor = _get(session, principal, investor_id)
    problem = commitment_problem(session, investor, rule)
    return Eligibility(rule=rule, eligible=problem is None, reason=problem,
                       minimum_commitment=minimum_commitment(session, investor, rule))


@router.get("/{investor_id}", response_model=InvestorPublic)
def get_investor(investor_id: str, session: SessionDep, principal: PrincipalDep) -> InvestorPublic:
    return _public(_get(session, principal, investor_id))


@router.get("/{investor_id}/timeline", response_model=list[TimelineEntryPublic])
def investor_timeline(investor_id: str, session: SessionDep, principal: PrincipalDep) -> list[TimelineEntry]:
    investor = _get(session, principal, investor_id)
    return list(session.exec(
        select(TimelineEntry).where(TimelineEntry.tenant_id == principal.tenant_id,
                                    TimelineEntry.investor_id == investor.id)
        .order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))).all())


@router.post("/{investor_id}/events/{name}", status_code=202)
async def record_investor_event(investor_id: str, name: str, body: EventBody, session: SessionDep,
                                principal: Staff) -> dict:
    """Something happened with the investor (meeting.booked, investor.committed, investor.passed, a reply by
    phone or email as investor.replied): its status moves forward, running definitions hear it and
    published definitions it triggers start. The same event_id twice changes nothing."""
    known = RECORDED_EVENTS["investor"]
    if name not in known:
        raise Problem(422, f"unknown investor event '{name}'",
                      errors=[{"field": "name", "message": "known events: " + ", ".join(sorted(known))}])
    event_id = body.event_id or uuid.uuid4().hex

    def apply() -> dict:
        investor = _get(session, principal, investor_id)
        key = f"{investor.id}:{name}:{event_id}"
        duplicate = {"event": name, "event_id": event_id, "status": investor.status, "duplicate": True}
        if session.exec(select(TimelineEntry).where(TimelineEntry.idempotency_key == key)).first():
            return duplicate
        before = investor.status
        advance(investor, name)
        session.add(investor)
        session.add(TimelineEntry(tenant_id=investor.tenant_id, investor_id=investor.id, kind=name,
                                  summary=name.replace(".", " ").replace("_", " "), data=body.data,
                                  actor=principal.actor, idempotency_key=key))
        audit(session, principal, "investor.event", "investor", investor.id, before={"status": before},
              after={"event": name, "status": investor.status, "data": body.data})
        try:
            emit(session, tenant_id=investor.tenant_id, subject_type="investor", subject_id=investor.id, name=name,
                 event_id=event_id, data=body.data)
            session.commit()
        except IntegrityError as exc:  # the same event recorded concurrently: the other request applied it
            session.rollback()
            if not is_unique_violation(exc):
                raise
            return duplicate
        return {"event": name, "event_id": event_id, "status": investor.status, "duplicate": False}

    return await run_in_threadpool(apply)
