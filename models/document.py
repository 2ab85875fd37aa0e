"""Documents sent for e-signature, with content hashes and the signed copy's certificate."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from models.base import new_id, optional_json_field, time_field


class Document(SQLModel, table=True):
    __tablename__ = "documents"
    id: str = Field(default_factory=lambda: new_id("dc"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", index=True, max_length=40)
    kind: str = Field(max_length=40)  # purchase_agreement, assignment, ...
    title: str = Field(max_length=300)
    provider: str = Field(default="builtin", max_length=20)
    envelope_id: str | None = Field(default=None, unique=True, max_length=200)
    status: str = Field(default="draft", max_length=20)  # draft, sent, delivered, completed, declined, voided
    content_sha256: str | None = Field(default=None, max_length=64)
    signed_sha256: str | None = Field(default=None, max_length=64)
    storage_path: str | None = Field(default=None, max_length=500)
    certificate: dict[str, Any] | None = optional_json_field()
    created_at: datetime = time_field()
    completed_at: datetime | None = time_field(nullable=True, default_now=False)
