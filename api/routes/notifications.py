"""The caller's in-app notifications (a task assigned to them, a lead routed to them, a definition's `notify`):
list them, newest first, and mark them read. Each one was also emailed (GET /api/v1/messages, channel email)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from api.deps import PrincipalDep, SessionDep
from api.errors import Problem
from api.paging import page
from models.input import Input
from models.notification import Notification, NotificationPage, NotificationPublic
from services.notifications import NotificationFilters, mark_read, notification_query

router = APIRouter(prefix="/api/v1/notifications", tags=["notifications"])


class ReadBody(Input):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(max_length=40)]] | None = Field(
        default=None, max_length=200, description="these notifications; null or absent: all of the caller's")


class ReadResult(BaseModel):
    marked: int


def _user(principal) -> str:
    if principal.user_id is None:
        raise Problem(422, "notifications belong to users: this API key belongs to none (a tenant-level key)",
                      errors=[{"field": "authorization", "message": "the key belongs to no user"}])
    return principal.user_id


def _public(row: Notification) -> NotificationPublic:
    return NotificationPublic.model_validate(row, from_attributes=True)


@router.get("", response_model=NotificationPage)
def list_notifications(session: SessionDep, principal: PrincipalDep, unread: bool = False,
                       limit: Annotated[int, Query(ge=1, le=200)] = 50,
                       cursor: str | None = None) -> NotificationPage:
    query = notification_query(_user(principal), NotificationFilters(unread=unread))
    items, next_cursor = page(session, query, Notification, limit, cursor)
    return NotificationPage(items=[_public(n) for n in items], next_cursor=next_cursor)


@router.post("/{notification_id}/read", response_model=NotificationPublic)
def read_one(notification_id: str, session: SessionDep, principal: PrincipalDep) -> NotificationPublic:
    """Mark it read (reading it again changes nothing)."""
    row = session.get(Notification, notification_id)
    if row is None or row.user_id != _user(principal) or row.tenant_id != principal.tenant_id:
        raise Problem(404, f"notification {notification_id} not found")
    mark_read(session, row.user_id, [row.id])
    session.refresh(row)
    return _public(row)


@router.post("/read", response_model=ReadResult)
def read_many(body: ReadBody, session: SessionDep, principal: PrincipalDep) -> ReadResult:
    """Mark several (or all) of the caller's notifications read."""
    return ReadResult(marked=mark_read(session, _user(principal), body.ids))
