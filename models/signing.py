"""The pydantic inputs and outputs of DocumentSigningWorkflow and its activities (importing no table, like
models/payloads.py; kept apart because they belong to one workflow)."""

from __future__ import annotations

from typing import Any

from pydantic import AwareDatetime, BaseModel, Field

REQUESTED_EVENT = "document.requested"  # the outbox event that has the relay start DocumentSigningWorkflow
# What the deal hears (subject_type "deal"): definitions may trigger on them, wait_for them, exit on them.
DEAL_EVENTS = {"completed": "document.completed", "declined": "document.declined", "expired": "document.expired",
               "voided": "document.voided"}


class SigningInput(BaseModel):
    tenant_id: str
    document_id: str
    opportunity_id: str | None = None
    kind: str
    title: str
    provider: str = "builtin"
    signing_order: str = "sequential"
    expires_at: AwareDatetime
    signers: list[str] = Field(default_factory=list)  # emails, in routing order (for the UI and the query)
    reminder_days: list[int] = Field(default_factory=lambda: [2, 5])


class SigningState(BaseModel):
    document_id: str
    status: str
    envelope_id: str | None
    signed: list[str]
    events: int
    reminders_sent: int


class DocumentStep(BaseModel):
    """An activity's argument about one document (and, for void/close, why)."""

    tenant_id: str
    document_id: str
    envelope_id: str | None = None
    status: str | None = None  # close: declined, voided, expired
    reason: str | None = None
    emails: list[str] = Field(default_factory=list)
    reminder: int | None = None  # send_reminders: which one (1, 2): its idempotency key


class AppliedEvent(BaseModel):
    """What applying one provider event did: `new` False when the document had it already."""

    new: bool
    document_status: str
    pending: list[str]  # the signers who have not signed yet


class SignatureRequest(BaseModel):
    """A definition's request_signature step: the document id derives from the step's idempotency key."""

    tenant_id: str
    opportunity_id: str
    template: str
    signers: list[dict[str, Any]]
    signing_order: str = "sequential"
    expires_in_seconds: int | None = None
    terms: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str
    actor: str


class EnvelopeNotice(BaseModel):
    """providers/esign/base.py's ProviderEvent as DocumentSigningWorkflow receives it (the same JSON; workflows/
    may not import providers/, so the workflow decodes the signal into this twin; a unit test keeps them equal)."""

    event_id: str
    envelope_id: str
    event: str  # sent, delivered, consented, signed, completed, declined, voided, expired
    at: AwareDatetime
    recipient_email: str | None = None
    ip: str | None = None
    user_agent: str | None = None
    detail: str | None = None
