"""Append-only audit log (the migration installs triggers that refuse UPDATE and DELETE)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import optional_json_field, time_field


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_entity", "tenant_id", "entity_type", "entity_id"),)
    id: int | None = Field(default=None, primary_key=True)
    tenant_id: str | None = Field(default=None, foreign_key="tenants.id", max_length=40)
    actor: str = Field(max_length=200)  # api key id, "cli", "system", "webhook:<provider>"
    action: str = Field(max_length=64)  # lead.create, lead.update, workflow.signal, ...
    entity_type: str = Field(max_length=40)
    entity_id: str | None = Field(default=None, max_length=200)
    before: dict[str, Any] | None = optional_json_field()
    after: dict[str, Any] | None = optional_json_field()
    request_id: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field()


def record_audit(session, *, tenant_id: str | None, actor: str, action: str, entity_type: str,
                 entity_id: str | None, before: dict[str, Any] | None = None,
                 after: dict[str, Any] | None = None) -> None:
    """Add an audit row to the caller's transaction (committed together with the change)."""
    from core.logging import request_id_var

    session.add(AuditLog(tenant_id=tenant_id, actor=actor, action=action, entity_type=entity_type,
                         entity_id=entity_id, before=before, after=after, request_id=request_id_var.get()))
