"""Tasks for staff (call now, closing checklist items, reminders), with their API schemas.

Every task has a due time (the moment it was created when nobody said), so the lists' keyset order on
(due_at, id) is total. Snoozing is not a status of its own: a snoozed task is an open task whose
`snoozed_until` is still ahead (its due time moved there), so it is back in the open list when the snooze ends
without anything having to wake it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel
from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field, utcnow


class TaskStatus(StrEnum):
    open = "open"
    snoozed = "snoozed"  # shown, never stored: open with snoozed_until ahead
    done = "done"
    cancelled = "cancelled"


class Task(SQLModel, table=True):
    __tablename__ = "tasks"
    __table_args__ = (
        # GET /tasks (services/tasks.py): a person's list by status in due order, and everyone's (the team view)
        # by status; each page an index scan from the cursor (tests/integration/test_lead_list_plans.py).
        Index("ix_tasks_list_assignee", "tenant_id", "assignee", "status", "due_at", "id"),
        Index("ix_tasks_list_status", "tenant_id", "status", "due_at", "id"),
    )
    id: str = Field(default_factory=lambda: new_id("tk"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", index=True, max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", index=True, max_length=40)
    investor_id: str | None = Field(default=None, foreign_key="investors.id", index=True, max_length=40)
    title: str = Field(max_length=300)
    description: str | None = None
    assignee: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    status: str = Field(default="open", max_length=20)  # open, done, cancelled (snoozed: see the module)
    due_at: datetime = time_field()
    snoozed_until: datetime | None = time_field(nullable=True, default_now=False)
    idempotency_key: str | None = Field(default=None, unique=True, max_length=300)
    created_by: str | None = Field(default=None, max_length=200)  # an actor: user:<id>, key:<id>, definition:<key>
    created_at: datetime = time_field()
    updated_at: datetime | None = time_field(nullable=True, default_now=False)
    completed_at: datetime | None = time_field(nullable=True, default_now=False)
    completed_by: str | None = Field(default=None, max_length=200)

    def shown_status(self, now: datetime | None = None) -> str:
        if self.status == TaskStatus.open and self.snoozed_until is not None and self.snoozed_until > (now or utcnow()):
            return TaskStatus.snoozed.value
        return self.status


class TaskPublic(BaseModel):
    id: str
    title: str
    description: str | None
    status: str  # open, snoozed, done, cancelled
    assignee: str | None
    due_at: datetime
    snoozed_until: datetime | None
    lead_id: str | None
    opportunity_id: str | None
    investor_id: str | None
    created_by: str | None
    created_at: datetime
    completed_at: datetime | None
    completed_by: str | None

    @classmethod
    def of(cls, task: Task) -> TaskPublic:
        return cls(id=task.id, title=task.title, description=task.description, status=task.shown_status(),
                   assignee=task.assignee, due_at=task.due_at, snoozed_until=task.snoozed_until,
                   lead_id=task.lead_id, opportunity_id=task.opportunity_id, investor_id=task.investor_id,
                   created_by=task.created_by, created_at=task.created_at, completed_at=task.completed_at,
                   completed_by=task.completed_by)


class TaskPage(BaseModel):
    items: list[TaskPublic]
    next_cursor: str | None
