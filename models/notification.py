"""In-app notifications to a staff user (a task assigned to them, a definition's `notify`, a lead routed to them).

Written in the transaction of what they are about, with the event that has the relay start their email
(services/notifications.py): a notification is never a best-effort call after the fact."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel
from sqlalchemy import Index, text
from sqlmodel import Field, SQLModel

from models.base import json_field, new_id, time_field


class Notification(SQLModel, table=True):
    __tablename__ = "notifications"
    __table_args__ = (
        # GET /notifications: a user's, newest first; unread ones on an index of their own.
        Index("ix_notifications_user_created", "user_id", "created_at", "id"),
        Index("ix_notifications_user_unread", "user_id", "created_at", "id",
              sqlite_where=text("read_at IS NULL"), postgresql_where=text("read_at IS NULL")),
    )
    id: str = Field(default_factory=lambda: new_id("nt"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    user_id: str = Field(foreign_key="users.id", max_length=40)
    kind: str = Field(max_length=40)  # task.assigned, lead.assigned, definition.notify
    title: str = Field(max_length=300)
    body: str = ""
    task_id: str | None = Field(default=None, foreign_key="tasks.id", max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", max_length=40)
    investor_id: str | None = Field(default=None, foreign_key="investors.id", max_length=40)
    data: dict[str, Any] = json_field()
    email: bool = True  # an email was asked for too (the message is in GET /messages, channel email)
    # One notification per cause and person: a retried activity or a redelivered event finds it.
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)
    created_at: datetime = time_field()
    read_at: datetime | None = time_field(nullable=True, default_now=False)


class NotificationPublic(BaseModel):
    id: str
    user_id: str
    kind: str
    title: str
    body: str
    task_id: str | None
    lead_id: str | None
    opportunity_id: str | None
    investor_id: str | None
    data: dict[str, Any]
    email: bool
    created_at: datetime
    read_at: datetime | None


class NotificationPage(BaseModel):
    items: list[NotificationPublic]
    next_cursor: str | None
