"""Append-only audit log (the migration installs triggers that refuse UPDATE and DELETE).

An audit row says who changed what, not a second copy of the data: a value larger than VALUE_MAX_BYTES (a lead's
`custom`, long notes, a template's html, an event's data) is stored as its sha256 and size, which still proves
what the row held at the time (hash the row's value the same way) without storing it twice."""

from __future__ import annotations

import hashlib
import json
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


VALUE_MAX_BYTES = 1024


def digest_of(value: Any) -> dict[str, Any]:
    """What stands for a large value: the sha256 of its canonical JSON (sorted keys, no spaces) and its size."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()
    return {"sha256": hashlib.sha256(text).hexdigest(), "bytes": len(text)}


def compact(values: dict[str, Any] | None) -> dict[str, Any] | None:
    """`values` with each field over VALUE_MAX_BYTES replaced by its digest."""
    if values is None:
        return None
    out = {}
    for key, value in values.items():
        size = len(json.dumps(value, ensure_ascii=False, default=str).encode())
        out[key] = digest_of(value) if size > VALUE_MAX_BYTES else value
    return out


def record_audit(session, *, tenant_id: str | None, actor: str, action: str, entity_type: str,
                 entity_id: str | None, before: dict[str, Any] | None = None,
                 after: dict[str, Any] | None = None) -> None:
    """Add an audit row to the caller's transaction (committed together with the change)."""
    from core.logging import request_id_var

    session.add(AuditLog(tenant_id=tenant_id, actor=actor, action=action, entity_type=entity_type,
                         entity_id=entity_id, before=compact(before), after=compact(after),
                         request_id=request_id_var.get()))
