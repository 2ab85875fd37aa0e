"""The audit log, for a tenant's admins: who changed what, newest first. An actor that is a person (`user:<id>`,
from a key that belongs to them) is shown with their email and name."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import col, select

from api.deps import Admin, SessionDep
from models.audit import AuditLog
from models.tenant import User

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditActor(BaseModel):
    id: str
    email: str
    name: str


class AuditPublic(BaseModel):
    id: int
    actor: str  # user:<id>, key:<id>, cli, system, definition:<key>, webhook:<provider>, recipient
    actor_user: AuditActor | None  # the person, when the actor is one
    action: str
    entity_type: str
    entity_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    request_id: str | None
    created_at: datetime


class AuditPage(BaseModel):
    items: list[AuditPublic]
    next_before: int | None  # pass as `before` for the next (older) page


@router.get("", response_model=AuditPage)
def list_audit(session: SessionDep, principal: Admin,
               entity_type: Annotated[str | None, Query(max_length=40)] = None,
               entity_id: Annotated[str | None, Query(max_length=200)] = None,
               actor: Annotated[str | None, Query(max_length=200, description="e.g. user:us_... or key:ak_...")] = None,
               before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
               limit: Annotated[int, Query(ge=1, le=200)] = 50) -> AuditPage:
    query = select(AuditLog).where(AuditLog.tenant_id == principal.tenant_id)
    if entity_type:
        query = query.where(AuditLog.entity_type == entity_type)
    if entity_id:
        query = query.where(AuditLog.entity_id == entity_id)
    if actor:
        query = query.where(AuditLog.actor == actor)
    if before:
        query = query.where(col(AuditLog.id) < before)
    rows = session.exec(query.order_by(col(AuditLog.id).desc()).limit(limit + 1)).all()
    items = rows[:limit]
    user_ids = {r.actor.removeprefix("user:") for r in items if r.actor.startswith("user:")}
    people = {u.id: u for u in session.exec(select(User).where(
        User.tenant_id == principal.tenant_id, col(User.id).in_(user_ids)))} if user_ids else {}

    def person(row: AuditLog) -> AuditActor | None:
        user = people.get(row.actor.removeprefix("user:")) if row.actor.startswith("user:") else None
        return AuditActor(id=user.id, email=user.email, name=user.name) if user else None

    return AuditPage(items=[AuditPublic(id=r.id, actor=r.actor, actor_user=person(r), action=r.action,
                                        entity_type=r.entity_type, entity_id=r.entity_id, before=r.before,
                                        after=r.after, request_id=r.request_id, created_at=r.created_at)
                            for r in items],
                     next_before=items[-1].id if len(rows) > limit else None)
