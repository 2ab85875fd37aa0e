"""Documents sent for e-signature: the document (content hashes, the signed copy's certificate), its signers (the
built-in page's single-use links, each signer's consent, signature and where it was given from), every provider
event the signing workflow applied, and the PDFs themselves (original, signed, certificate of completion)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Column, Index, LargeBinary, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import new_id, optional_json_field, time_field

OPEN = {"draft", "sent", "delivered"}  # the signing workflow still waits for its signers
FINAL = {"completed", "declined", "voided", "expired"}
CONSENT_VERSION = "esign-disclosure-2026-12"  # the ESIGN consumer disclosure the signing page shows


def signing_workflow_id(tenant_id: str, document_id: str) -> str:
    return f"sign-{tenant_id}-{document_id}"


class Document(SQLModel, table=True):
    __tablename__ = "documents"
    id: str = Field(default_factory=lambda: new_id("dc"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    opportunity_id: str | None = Field(default=None, foreign_key="opportunities.id", index=True, max_length=40)
    kind: str = Field(max_length=40)  # the template: purchase_agreement, assignment_of_contract, ...
    title: str = Field(max_length=300)
    provider: str = Field(default="builtin", max_length=20)
    envelope_id: str | None = Field(default=None, unique=True, max_length=200)
    # draft (rendered, the workflow not started yet), sent, delivered, completed, declined, voided, expired
    status: str = Field(default="draft", max_length=20)
    content_sha256: str | None = Field(default=None, max_length=64)
    signed_sha256: str | None = Field(default=None, max_length=64)
    storage_path: str | None = Field(default=None, max_length=500)
    certificate: dict[str, Any] | None = optional_json_field()
    created_at: datetime = time_field()
    completed_at: datetime | None = time_field(nullable=True, default_now=False)
    signing_order: str = Field(default="sequential", max_length=20)  # or parallel
    expires_at: datetime | None = time_field(nullable=True, default_now=False)
    workflow_id: str | None = Field(default=None, max_length=200)
    certificate_sha256: str | None = Field(default=None, max_length=64)
    status_reason: str | None = Field(default=None, max_length=500)  # why declined, voided or expired
    requested_by: str | None = Field(default=None, max_length=200)


class DocumentSigner(SQLModel, table=True):
    """One signer of a document. The built-in page's link is a random token stored as its SHA-256 only; it is
    single use (the signature or the decline consumes it) and expires with the envelope."""

    __tablename__ = "document_signers"
    __table_args__ = (UniqueConstraint("document_id", "email", name="uq_document_signers_document_id_email"),)
    id: str = Field(default_factory=lambda: new_id("sg"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    document_id: str = Field(foreign_key="documents.id", index=True, max_length=40)
    name: str = Field(max_length=200)
    email: str = Field(max_length=320)
    role: str = Field(max_length=40)
    routing_order: int = 1
    # pending (not invited yet), sent, delivered, consented, signed, declined, voided
    status: str = Field(default="pending", max_length=20)
    token_hash: str | None = Field(default=None, unique=True, max_length=64)
    token_used_at: datetime | None = time_field(nullable=True, default_now=False)
    sent_at: datetime | None = time_field(nullable=True, default_now=False)
    viewed_at: datetime | None = time_field(nullable=True, default_now=False)
    consented_at: datetime | None = time_field(nullable=True, default_now=False)
    consent_version: str | None = Field(default=None, max_length=40)
    signed_at: datetime | None = time_field(nullable=True, default_now=False)
    declined_at: datetime | None = time_field(nullable=True, default_now=False)
    decline_reason: str | None = Field(default=None, max_length=500)
    signature_kind: str | None = Field(default=None, max_length=10)  # typed, drawn
    signature_text: str | None = Field(default=None, max_length=200)  # the typed name
    signature_image: str | None = None  # a drawn signature: data:image/png;base64,...
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    timezone: str | None = Field(default=None, max_length=64)
    created_at: datetime = time_field()


class DocumentEvent(SQLModel, table=True):
    """A provider event (or the workflow's own: sent, reminded, expired) as applied to the document, once per
    event id: the document's audit trail and the certificate's event list."""

    __tablename__ = "document_events"
    __table_args__ = (UniqueConstraint("document_id", "event_id", name="uq_document_events_document_id_event_id"),
                      Index("ix_document_events_document", "document_id", "at"))
    id: str = Field(default_factory=lambda: new_id("de"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    document_id: str = Field(foreign_key="documents.id", max_length=40)
    event_id: str = Field(max_length=300)
    event: str = Field(max_length=20)
    at: datetime = time_field()
    recipient_email: str | None = Field(default=None, max_length=320)
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=500)
    detail: str | None = Field(default=None, max_length=500)


class DocumentFile(SQLModel, table=True):
    """The PDFs of a document, in the database so every API and worker replica reads the same bytes: the original
    rendered for signature, the signed final and the certificate of completion."""

    __tablename__ = "document_files"
    __table_args__ = (UniqueConstraint("document_id", "kind", name="uq_document_files_document_id_kind"),)
    id: str = Field(default_factory=lambda: new_id("df"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    document_id: str = Field(foreign_key="documents.id", max_length=40)
    kind: str = Field(max_length=20)  # original, signed, certificate
    sha256: str = Field(max_length=64)
    content: bytes = Field(sa_column=Column(LargeBinary(), nullable=False))
    created_at: datetime = time_field()
