"""Timeline entries: what happened to a lead, deal or investor, one row per event, written once."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, Session, SQLModel, select

from models.base import json_field, new_id, time_field


class TimelineEntry(SQLModel, table=True):
    """The CRM's activity timeline (`lead.received`, `message.sent`, `stage.changed`, ...).

    `idempotency_key` comes from business keys, so a retried activity finds its earlier write.
    """

    __tablename__ = "timeline_entries"
    __table_args__ = (
        Index("ix_timeline_lead", "lead_id", "occurred_at"),
        Index("ix_timeline_opportunity", "opportunity_id", "occurred_at"),
        Index("ix_timeline_investor", "investor_id", "occurred_at"),
    )
    id: str = Field(default_factory=lambda: new_id("tl"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", max_length=40)
    investor_id: str | None = Field(default=None, foreign_key="investors.id", max_length=40)
    kind: str = Field(max_length=64)
    summary: str = Field(default="", max_length=500)
    data: dict[str, Any] = json_field()
    actor: str = Field(default="system", max_length=200)
    workflow_id: str | None = Field(default=None, max_length=200)
    idempotency_key: str = Field(unique=True, max_length=300)
    occurred_at: datetime = time_field()


class TimelineEntryPublic(SQLModel):
    id: str
    lead_id: str | None  # a duplicate's entries show in the original's timeline, with their own lead id
    kind: str
    summary: str
    data: dict[str, Any]
    actor: str
    workflow_id: str | None
    occurred_at: datetime


def add_message_entry(session: Session, message, kind: str, summary: str, data: dict[str, Any],
                      workflow_id: str | None = None) -> None:
    """A message's event on its lead's (or investor's) timeline, once per message and kind (the caller commits)."""
    if not message.lead_id and not message.investor_id:
        return
    key = f"{message.id}:{kind}"
    if session.exec(select(TimelineEntry).where(TimelineEntry.idempotency_key == key)).first():
        return
    session.add(TimelineEntry(tenant_id=message.tenant_id, lead_id=message.lead_id,
                              investor_id=message.investor_id, kind=kind, summary=summary,
                              data={"message_id": message.id, "channel": message.channel, **data},
                              idempotency_key=key, workflow_id=workflow_id))
