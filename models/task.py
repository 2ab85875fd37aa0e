"""Tasks for staff (call now, closing checklist items, reminders)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    id: str = Field(default_factory=lambda: new_id("tk"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", index=True, max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", index=True, max_length=40)
    investor_id: str | None = Field(default=None, foreign_key="investors.id", index=True, max_length=40)
    title: str = Field(max_length=300)
    description: str | None = None
    assignee: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    status: str = Field(default="open", max_length=20)  # open, done, cancelled
    due_at: datetime | None = time_field(nullable=True, default_now=False)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)
    created_at: datetime = time_field()
    completed_at: datetime | None = time_field(nullable=True, default_now=False)
