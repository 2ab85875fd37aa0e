"""Outbound/inbound messages (email, SMS) and per-address consent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.base import json_field, new_id, time_field


class Message(SQLModel, table=True):
    __tablename__ = "messages"
    # GET /messages, newest first: the tenant's, a lead's, an investor's (each page an index scan).
    __table_args__ = (Index("ix_messages_tenant_created", "tenant_id", "created_at", "id"),
                      Index("ix_messages_lead_created", "lead_id", "created_at", "id"),
                      Index("ix_messages_investor_created", "investor_id", "created_at", "id"),
                      # the inbox: the tenant's replies (inbound), newest first
                      Index("ix_messages_tenant_direction_created", "tenant_id", "direction", "created_at", "id"),
                      # who texted this number (a STOP opts it out for each of them: services/inbound_sms.py)
                      Index("ix_messages_to_address", "to_address", "channel", "direction"),
                      # staff corrections of reply intents: the next intent model's extra training rows
                      Index("ix_messages_intent_corrected", "intent_source",
                            sqlite_where=text("intent_source = 'staff'"),
                            postgresql_where=text("intent_source = 'staff'")))
    id: str = Field(default_factory=lambda: new_id("ms"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    lead_id: str | None = Field(default=None, foreign_key="leads.id", max_length=40)
    investor_id: str | None = Field(default=None, foreign_key="investors.id", max_length=40)
    user_id: str | None = Field(default=None, foreign_key="users.id", max_length=40)  # a staff notification's
    channel: str = Field(max_length=10)  # email, sms
    direction: str = Field(default="outbound", max_length=10)
    to_address: str = Field(max_length=320)
    from_address: str | None = Field(default=None, max_length=320)
    subject: str | None = Field(default=None, max_length=500)
    body: str = ""
    html: str | None = None
    template: str | None = Field(default=None, max_length=100)
    template_version: int | None = None
    provider: str = Field(default="outbox", max_length=20)
    provider_message_id: str | None = Field(default=None, index=True, max_length=200)
    status: str = Field(default="pending", max_length=20)  # pending, sent, delivered, failed, suppressed, ...
    error_code: str | None = Field(default=None, max_length=40)
    error_message: str | None = None
    events: list[dict[str, Any]] = json_field(default_factory=list)
    idempotency_key: str = Field(unique=True, max_length=300)
    created_at: datetime = time_field()
    sent_at: datetime | None = time_field(nullable=True, default_now=False)
    delivered_at: datetime | None = time_field(nullable=True, default_now=False)
    # An inbound reply's meaning (scoring/intent.py): the label, how sure, who said so (model, llm, staff) and
    # which model or person; a staff correction keeps what the model had said in `events`.
    intent: str | None = Field(default=None, max_length=20)
    intent_confidence: float | None = None
    intent_source: str | None = Field(default=None, max_length=10)
    intent_version: str | None = Field(default=None, max_length=100)


class Consent(SQLModel, table=True):
    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("tenant_id", "channel", "address"),)
    id: str = Field(default_factory=lambda: new_id("cn"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    channel: str = Field(max_length=10)  # email, sms
    address: str = Field(max_length=320)  # lower-cased email or E.164 phone
    status: str = Field(max_length=20)  # opted_in, opted_out
    source: str = Field(max_length=64)  # web_form, inbound_sms, unsubscribe_link, sendgrid_event, staff
    evidence: dict[str, Any] = json_field()
    updated_at: datetime = time_field()


class MessageTemplate(SQLModel, table=True):
    """A tenant's version of a message template. Versions are immutable; the newest one is used."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("tenant_id", "key", "version"),)
    id: str = Field(default_factory=lambda: new_id("mt"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    key: str = Field(max_length=100)
    version: int
    channel: str = Field(max_length=10)
    subject: str | None = Field(default=None, max_length=500)
    text: str
    html: str | None = None
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
