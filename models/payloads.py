"""Inputs and outputs of workflows and activities (pydantic; no DB imports, sandbox-safe)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class LeadWorkflowInput(BaseModel):
    tenant_id: str
    lead_id: str
    source: str
    status: str = "new"
    # Carried over continue-as-new so a long-lived lead keeps its place.
    received: bool = False
    seen_event_ids: list[str] = Field(default_factory=list)


class LeadEvent(BaseModel):
    """The payload of every LeadWorkflow signal. `event_id` makes re-delivery harmless."""

    event_id: str
    data: dict[str, Any] = Field(default_factory=dict)
    actor: str = "system"
    note: str | None = None


class LeadState(BaseModel):
    lead_id: str
    status: str
    received: bool
    events: int
    closed: bool
    next_action: str


class LeadWorkflowResult(BaseModel):
    lead_id: str
    status: str
    events: int


class TimelineEntryInput(BaseModel):
    tenant_id: str
    lead_id: str | None = None
    opportunity_id: str | None = None
    kind: str
    summary: str = ""
    data: dict[str, Any] = Field(default_factory=dict)
    actor: str = "system"
    workflow_id: str | None = None
    idempotency_key: str
    occurred_at: datetime


class TimelineEntryResult(BaseModel):
    entry_id: str
    created: bool  # False when a retry found the earlier write


class LeadStatusInput(BaseModel):
    tenant_id: str
    lead_id: str
    status: str
    reason: str | None = None
    actor: str = "workflow"
