"""The event outbox as staff see it: what is waiting, what was parked after repeated failures and why, and
the two ways to deal with a parked event (redrive, discard)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field
from sqlmodel import col, select

from api.deps import PrincipalDep, SessionDep, require
from api.errors import Problem
from models.event import Event
from models.tenant import Role
from services.outbox import discard, redrive

router = APIRouter(prefix="/api/v1/events", tags=["events"])
Operator = Annotated[Any, require(Role.ops)]


class EventPublic(BaseModel):
    seq: int
    event_id: str
    subject_type: str
    subject_id: str
    name: str
    data: dict[str, Any]
    state: Literal["pending", "parked", "delivered"]
    attempts: int
    last_error: str | None
    outcome: str | None
    occurred_at: datetime
    delivered_at: datetime | None
    parked_at: datetime | None
    next_attempt_at: datetime
    traceparent: str | None


class EventPage(BaseModel):
    items: list[EventPublic]
    next_cursor: int | None = Field(description="pass as `before` for the next (older) page")


def _public(row: Event, principal) -> EventPublic:
    state = "delivered" if row.delivered_at else "parked" if row.parked_at else "pending"
    public = EventPublic(state=state, **row.model_dump(exclude={"tenant_id", "workflow_signal", "signal_payload",
                                                                "start"}))
    # A staff user's events carry their emails (a sign-in link): their data is theirs and the admins' to read.
    if row.subject_type == "user" and principal.role != Role.admin and row.subject_id != principal.user_id:
        public = public.model_copy(update={"data": {"hidden": "a staff member's own event"}})
    return public


@router.get("", response_model=EventPage)
def list_events(session: SessionDep, principal: PrincipalDep,
                state: Literal["pending", "parked", "delivered"] | None = None,
                subject_id: Annotated[str | None, Query(max_length=40)] = None,
                before: Annotated[int | None, Query(ge=1, le=2**62, description="seq cursor")] = None,
                limit: Annotated[int, Query(ge=1, le=200)] = 50) -> EventPage:
    """Newest first. `state=parked` is what needs a person: each row says why it failed."""
    query = select(Event).where(Event.tenant_id == principal.tenant_id)
    if state == "pending":
        query = query.where(col(Event.delivered_at).is_(None), col(Event.parked_at).is_(None))
    elif state == "parked":
        query = query.where(col(Event.delivered_at).is_(None), col(Event.parked_at).is_not(None))
    elif state == "delivered":
        query = query.where(col(Event.delivered_at).is_not(None))
    if subject_id:
        query = query.where(Event.subject_id == subject_id)
    if before:
        query = query.where(col(Event.seq) < before)
    rows = list(session.exec(query.order_by(col(Event.seq).desc()).limit(limit + 1)).all())
    more = len(rows) > limit
    rows = rows[:limit]
    return EventPage(items=[_public(r, principal) for r in rows], next_cursor=rows[-1].seq if more and rows else None)


def _one(rows: list[Event], seq: int, principal) -> EventPublic:
    if not rows:
        raise Problem(409, f"event {seq} is not parked (only parked events can be redriven or discarded)")
    return _public(rows[0], principal)


@router.post("/{seq}/redrive", response_model=EventPublic)
def redrive_event(seq: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, principal: Operator) -> EventPublic:
    """Back in line: the relay tries it again (attempts reset)."""
    return _one(redrive(session, [seq], tenant_id=principal.tenant_id, actor=principal.actor), seq, principal)


@router.post("/{seq}/discard", response_model=EventPublic)
def discard_event(seq: Annotated[int, Path(ge=1, le=2**62)], session: SessionDep, principal: Operator) -> EventPublic:
    """Dealt with by hand: never delivered, kept with who discarded it."""
    return _one(discard(session, [seq], tenant_id=principal.tenant_id, actor=principal.actor), seq, principal)
