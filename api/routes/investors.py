"""Investors (capital partners and buyers): create (deduplicated), list, detail, timeline, recorded events.

Creating an investor and recording an event on one (investor.committed, meeting.booked, ...) start the
published definitions with `subject: investor` that the event triggers, and tell the running ones."""

from __future__ import annotations

import logging
import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response
from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, func, select
from starlette.concurrency import run_in_threadpool

from api.deps import PrincipalDep, SessionDep, Staff, audit
from api.errors import Problem
from api.paging import page
from api.routes.leads import EventBody
from core.db import is_unique_violation, like_pattern
from models.event import emit
from definitions.language import RECORDED_EVENTS
from models.investor import Investor, InvestorCreate, InvestorPage, InvestorPublic, InvestorStatus, advance
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
    q: Annotated[str | None, Query(max_length=200, description="name, company, email or phone contains")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> InvestorPage:
    query = select(Investor).where(Investor.tenant_id == principal.tenant_id)
    if status:
        query = query.where(col(Investor.status).in_([s.value for s in status]))
    if accredited is not None:
        query = query.where(Investor.accredited == accredited)
    if q:
        needle = like_pattern(q.lower())  # a % or _ in the text is itself
        conditions = [func.lower(col(Investor.name)).like(needle, escape="\\"),
                      func.lower(col(Investor.company)).like(needle, escape="\\"),
                      col(Investor.email).like(needle, escape="\\")]
        digits = "".join(ch for ch in q if ch.isdigit())
        if len(digits) >= 3:
            conditions.append(col(Investor.phone).like(f"%{digits}%"))
        query = query.where(or_(*conditions))
    items, next_cursor = page(session, query, Investor, limit, cursor)
    return InvestorPage(items=[_public(i) for i in items], next_cursor=next_cursor)


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
