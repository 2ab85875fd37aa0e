"""Webhook events as received, stored once per provider event id."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import json_field, new_id, time_field


class WebhookEvent(SQLModel, table=True):
    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("provider", "event_id"),)
    id: str = Field(default_factory=lambda: new_id("wh"), primary_key=True, max_length=40)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", index=True, max_length=40)
    provider: str = Field(max_length=32)  # sendgrid, twilio, docusign, lead_source:<name>
    event_id: str = Field(max_length=300)
    event_type: str = Field(default="", max_length=64)
    payload: dict[str, Any] = json_field()
    status: str = Field(default="received", max_length=20)  # received, applied, failed, ignored
    error: str | None = None
    received_at: datetime = time_field()
    processed_at: datetime | None = time_field(nullable=True, default_now=False)
