"""Documents for e-signature: request one over a deal (rendered, stored with its SHA-256, its signing workflow
started by the relay), read it (status, signers, events, certificate), download the PDF and the certificate of
completion, void it. Tenant-scoped like every route; staff request and void, any role reads."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from api.deps import PrincipalDep, SessionDep, SettingsDep, Staff, audit
from api.errors import Problem
from definitions.language import parse_duration
from models.document import Document
from models.input import Input, OneLine
from providers.documents.templates import MissingValues
from services import documents

router = APIRouter(prefix="/api/v1", tags=["documents"])


class SignerBody(Input):
    model_config = ConfigDict(extra="forbid")
    name: OneLine = Field(min_length=1, max_length=200)
    email: OneLine = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    role: str = Field(min_length=1, max_length=40, description="the template's role (seller, buyer, ...)")


class Expiring(Input):
    expires_in: Annotated[str, Field(max_length=10)] | None = Field(
        default=None, description="how long the signers have: 30s, 15m, 2h, 3d, 1w (default 14d, at most 120d)")

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)  # ValueError: a 422 naming expires_in
        return value

    def expiry(self) -> timedelta | None:
        return parse_duration(self.expires_in) if self.expires_in else None


class DocumentRequest(Expiring):
    model_config = ConfigDict(extra="forbid")
    template: str = Field(min_length=1, max_length=40, description="purchase_agreement, letter_of_intent, "
                          "assignment_of_contract, nda, subscription_agreement (the investor who signs an nda or "
                          "a subscription agreement is the investor with that signer's e-mail)")
    signers: list[SignerBody] = Field(min_length=1, max_length=10)
    signing_order: Literal["sequential", "parallel"] = "sequential"
    terms: dict[str, Any] = Field(default_factory=dict, description="the deal's terms the template prints "
                                  "(closing_date, earnest_money, title_company, inspection_days, ...)")
    tenant_profile: dict[str, OneLine] = Field(default_factory=dict, description="legal_name, signatory_name, "
                                               "signatory_title, address: the tenant as the document names it")


@contextmanager
def missing_values(session, template: str) -> Iterator[None]:
    """A value the template needs and the deal lacks: 422 naming each, nothing stored."""
    try:
        yield
    except MissingValues as exc:
        session.rollback()
        raise Problem(422, str(exc), title="Missing document values",
                      errors=[{"field": name, "message": f"{template} needs {name}"} for name in exc.missing]
                      ) from None


class VoidBody(Input):
    model_config = ConfigDict(extra="forbid")
    reason: OneLine = Field(default="voided by staff", min_length=1, max_length=300)


class SignerPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    name: str
    email: str
    role: str
    routing_order: int
    status: str
    sent_at: datetime | None
    viewed_at: datetime | None
    consented_at: datetime | None
    consent_version: str | None
    signed_at: datetime | None
    declined_at: datetime | None
    decline_reason: str | None
    signature_kind: str | None
    ip: str | None
    user_agent: str | None
    timezone: str | None


class DocumentEventPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    event_id: str
    event: str
    at: datetime
    recipient_email: str | None
    ip: str | None
    user_agent: str | None
    detail: str | None


class DocumentPublic(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    opportunity_id: str | None
    kind: str
    title: str
    provider: str
    status: str
    status_reason: str | None
    envelope_id: str | None
    signing_order: str
    content_sha256: str | None = Field(description="SHA-256 of the original PDF sent for signature")
    signed_sha256: str | None = Field(description="SHA-256 of the signed, sealed PDF (once completed)")
    certificate_sha256: str | None
    expires_at: datetime | None
    workflow_id: str | None
    requested_by: str | None
    created_at: datetime
    completed_at: datetime | None
    signers: list[SignerPublic] = Field(default_factory=list)
    events: list[DocumentEventPublic] = Field(default_factory=list)
    certificate: dict[str, Any] | None = Field(default=None, description="the certificate of completion's record")
    pdf_url: str = ""
    certificate_url: str | None = None


def _own(session, principal, document_id: str) -> Document:
    document = session.get(Document, document_id)
    if document is None or document.tenant_id != principal.tenant_id:
        raise Problem(404, f"document {document_id} not found")
    return document


def document_public(session, document: Document) -> DocumentPublic:
    base = f"/api/v1/documents/{document.id}"
    return DocumentPublic.model_validate(document).model_copy(update={
        "signers": [SignerPublic.model_validate(s) for s in documents.signers_of(session, document.id)],
        "events": [DocumentEventPublic.model_validate(e) for e in documents.events_of(session, document.id)],
        "pdf_url": f"{base}/pdf", "certificate_url": f"{base}/certificate" if document.certificate_sha256 else None})


@router.post("/opportunities/{opportunity_id}/documents", status_code=201, response_model=DocumentPublic)
def request_document(opportunity_id: str, body: DocumentRequest, session: SessionDep, settings: SettingsDep,
                     principal: Staff) -> DocumentPublic:
    """Render the template over the deal (a value it needs and the deal lacks is a 422 naming it, before anything
    is sent), store the PDF and its SHA-256, and have the relay start its DocumentSigningWorkflow."""
    with missing_values(session, body.template):
        document, _ = documents.request_document(
            session, settings, tenant_id=principal.tenant_id, opportunity_id=opportunity_id, template=body.template,
            signers=[s.model_dump() for s in body.signers], signing_order=body.signing_order,
            expires_in=body.expiry(), terms=body.terms, tenant_profile=body.tenant_profile, actor=principal.actor)
    audit(session, principal, "document.request", "document", document.id,
          after={"opportunity_id": opportunity_id, "template": body.template, "signers": [s.email for s in
                                                                                            body.signers]})
    session.commit()
    return document_public(session, document)


@router.get("/documents/{document_id}", response_model=DocumentPublic)
def get_document(document_id: str, session: SessionDep, principal: PrincipalDep) -> DocumentPublic:
    return document_public(session, _own(session, principal, document_id))


@router.get("/opportunities/{opportunity_id}/documents", response_model=list[DocumentPublic])
def list_documents(opportunity_id: str, session: SessionDep, principal: PrincipalDep) -> list[DocumentPublic]:
    from sqlmodel import col, select

    rows = session.exec(select(Document).where(Document.tenant_id == principal.tenant_id,
                                               Document.opportunity_id == opportunity_id)
                        .order_by(col(Document.created_at).desc()).limit(200)).all()
    return [document_public(session, d) for d in rows]


def _pdf(content: bytes, name: str) -> Response:
    return Response(content, media_type="application/pdf",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})


@router.get("/documents/{document_id}/pdf", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the PDF"}})
def download_pdf(document_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    """The signed, sealed PDF once completed; the original before."""
    document = _own(session, principal, document_id)
    stored = documents.file_of(session, document.id, "signed") or documents.file_of(session, document.id, "original")
    if stored is None:
        raise Problem(404, f"document {document_id} has no PDF")
    return _pdf(stored.content, f"{document.id}{'-signed' if stored.kind == 'signed' else ''}.pdf")


@router.get("/documents/{document_id}/certificate", response_class=Response,
            responses={200: {"content": {"application/pdf": {}}, "description": "the certificate of completion"}})
def download_certificate(document_id: str, session: SessionDep, principal: PrincipalDep) -> Response:
    document = _own(session, principal, document_id)
    stored = documents.file_of(session, document.id, "certificate")
    if stored is None:
        raise Problem(404, f"document {document_id} has no certificate of completion yet (status {document.status})")
    return _pdf(stored.content, f"{document.id}-certificate.pdf")


@router.post("/documents/{document_id}/void", status_code=202, response_model=DocumentPublic)
def void_document(document_id: str, session: SessionDep, principal: Staff,
                  body: VoidBody | None = None) -> DocumentPublic:
    """Void the envelope: the signing workflow voids it at the provider, closes the document and tells the deal
    (document.voided). A document already completed, declined, voided or expired is a 409."""
    document = _own(session, principal, document_id)
    reason = body.reason if body else "voided by staff"
    if not documents.void_document(session, document, reason=reason, actor=principal.actor):
        raise Problem(409, f"document {document_id} is {document.status}: it cannot be voided")
    audit(session, principal, "document.void", "document", document.id, before={"status": document.status},
          after={"reason": reason})
    session.commit()
    return document_public(session, document)

