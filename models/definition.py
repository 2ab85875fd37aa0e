"""Ops-authored workflow definitions (versioned, immutable once published) and their executions."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class WorkflowDefinition(SQLModel, table=True):
    __tablename__ = "workflow_definitions"
    __table_args__ = (UniqueConstraint("tenant_id", "key", "version"),)
    id: str = Field(default_factory=lambda: new_id("wd"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    key: str = Field(max_length=100)
    version: int
    source: str  # the YAML exactly as written
    content_hash: str = Field(max_length=64)
    status: str = Field(default="draft", max_length=20)  # draft, published, retired
    created_by: str | None = Field(default=None, max_length=200)
    created_at: datetime = time_field()
    published_at: datetime | None = time_field(nullable=True, default_now=False)


class WorkflowExecution(SQLModel, table=True):
    __tablename__ = "workflow_executions"
    __table_args__ = (UniqueConstraint("workflow_id", "run_id"),)
    id: str = Field(default_factory=lambda: new_id("we"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    workflow_id: str = Field(max_length=200)
    run_id: str | None = Field(default=None, max_length=64)
    workflow_type: str = Field(max_length=100)
    definition_key: str | None = Field(default=None, max_length=100)
    definition_version: int | None = None
    subject_type: str | None = Field(default=None, max_length=20)  # lead, opportunity, investor
    subject_id: str | None = Field(default=None, index=True, max_length=40)
    status: str = Field(default="running", max_length=20)
    started_at: datetime = time_field()
    closed_at: datetime | None = time_field(nullable=True, default_now=False)
