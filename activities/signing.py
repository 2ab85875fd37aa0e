"""DocumentSigningWorkflow's activities: thin over the tenant's e-signature provider (providers/esign) and
services/documents.py. Synchronous on purpose: pyHanko (the seal, the certificate) runs its own event loop."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rows import owned
from core.settings import Settings
from models.document import Document
from models.signing import AppliedEvent, DocumentStep, EnvelopeNotice, SignatureRequest
from providers.base import ProviderError
from providers.documents.templates import MissingValues
from providers.esign.base import EnvelopeRequest, ESignProvider, ProviderEvent, Signer
from providers.esign.registry import esign_for
from services import documents
from services.acting import ServiceError


def _provider_failed(exc: ProviderError) -> ApplicationError:
    if exc.retryable:
        return ApplicationError(exc.message, type="ProviderUnavailable")
    return ApplicationError(exc.message, type="ProviderRejected", non_retryable=True)


class SigningActivities:
    def __init__(self, engine: Engine, settings: Settings) -> None:
        self._engine, self._settings = engine, settings

    def _provider(self, tenant_id: str) -> ESignProvider:
        return esign_for(self._settings, tenant_id, engine=self._engine)

    def _session(self) -> Session:
        return Session(self._engine, expire_on_commit=False)

    @activity.defn
    def create_envelope(self, step: DocumentStep) -> str:
        """The envelope for the document (the provider's create is idempotent per document id); the document
        `sent` with its envelope id and a `sent` event in its trail."""
        with self._session() as session:
            document = owned(session, Document, step.document_id, step.tenant_id, "document")
            if document.envelope_id:
                return document.envelope_id
            original = documents.file_of(session, document.id, "original")
            signers = documents.signers_of(session, document.id)
            request = EnvelopeRequest(
                tenant_id=document.tenant_id, document_id=document.id, title=document.title,
                pdf=original.content if original else b"", signing_order=document.signing_order,
                expires_at=document.expires_at,
                signers=[Signer(name=s.name, email=s.email, role=s.role, routing_order=s.routing_order)
                         for s in signers],
                callback_url=f"{self._settings.effective_public_url}/api/v1/webhooks/docusign/connect")
        try:
            envelope_id = self._provider(step.tenant_id).create_envelope(request)
        except ProviderError as exc:
            raise _provider_failed(exc) from None
        with self._session() as session:
            document = session.get(Document, step.document_id)
            document.envelope_id = envelope_id
            if document.status == "draft":
                document.status = "sent"
            session.add(document)
            session.commit()
            documents.record_event(session, document, f"{document.id}:sent", "sent", activity_now(),
                                   detail=f"sent through {document.provider} to "
                                          f"{', '.join(s.email for s in signers if s.status != 'pending')}")
            documents.timeline(session, document, "document.sent", f"{document.title} sent for signature "
                               f"({document.provider}, {document.signing_order})")
            session.commit()
        return envelope_id

    @activity.defn
    def apply_provider_event(self, step: DocumentStep, notice: EnvelopeNotice) -> AppliedEvent:
        with self._session() as session:
            document = owned(session, Document, step.document_id, step.tenant_id, "document")
            return documents.apply_provider_event(session, document, ProviderEvent.model_validate(
                notice.model_dump()))

    @activity.defn
    def invite_next_signers(self, step: DocumentStep) -> list[str]:
        """Sequential order on the built-in page: the next signer's link goes out (DocuSign routes by itself)."""
        invite = getattr(self._provider(step.tenant_id), "invite_next", None)
        if invite is None or not step.envelope_id:
            return []
        try:
            return invite(step.envelope_id)
        except ProviderError as exc:
            raise _provider_failed(exc) from None

    @activity.defn
    def send_reminders(self, step: DocumentStep) -> int:
        if not step.envelope_id or not step.emails:
            return 0
        try:
            self._provider(step.tenant_id).remind(step.envelope_id, step.emails)
        except ProviderError as exc:
            raise _provider_failed(exc) from None
        with self._session() as session:
            document = owned(session, Document, step.document_id, step.tenant_id, "document")
            documents.record_event(session, document, f"{document.id}:reminded:{step.reminder}", "reminded",
                                   activity_now(), detail=f"reminder {step.reminder} to {', '.join(step.emails)}")
            documents.timeline(session, document, "document.reminded", f"{document.title}: reminder "
                               f"{step.reminder} to {', '.join(step.emails)}", key=f"{document.id}:reminded:"
                               f"{step.reminder}")
            session.commit()
        return len(step.emails)

    @activity.defn
    def complete_document(self, step: DocumentStep) -> None:
        try:
            completed = self._provider(step.tenant_id).completed(step.envelope_id or "")
        except ProviderError as exc:
            raise _provider_failed(exc) from None
        with self._session() as session:
            document = owned(session, Document, step.document_id, step.tenant_id, "document")
            documents.complete_document(session, self._settings, document, completed)

    @activity.defn
    def void_envelope(self, step: DocumentStep) -> None:
        if step.envelope_id:
            try:
                self._provider(step.tenant_id).void(step.envelope_id, step.reason or "voided")
            except ProviderError as exc:
                raise _provider_failed(exc) from None

    @activity.defn
    def close_document(self, step: DocumentStep) -> None:
        with self._session() as session:
            document = owned(session, Document, step.document_id, step.tenant_id, "document")
            if step.status == "expired":
                documents.record_event(session, document, f"{document.id}:expired", "expired", activity_now(),
                                       detail=step.reason)
            documents.close_document(session, document, step.status or "voided", step.reason)

    @activity.defn
    def request_signature(self, request: SignatureRequest) -> dict:
        """A definition's request_signature: the document (its id from the step's idempotency key, so a retry
        finds it) and the event that starts its signing workflow, committed together."""
        from datetime import timedelta

        with self._session() as session:
            try:
                signers = documents.signers_for_deal(session, request.tenant_id, request.opportunity_id,
                                                     request.template, request.signers)
                document, _ = documents.request_document(
                    session, self._settings, tenant_id=request.tenant_id, opportunity_id=request.opportunity_id,
                    template=request.template, signers=signers, signing_order=request.signing_order,
                    expires_in=timedelta(seconds=request.expires_in_seconds) if request.expires_in_seconds else None,
                    terms=request.terms, actor=request.actor, document_id=documents.document_id_for(
                        request.idempotency_key))
            except (ServiceError, MissingValues, LookupError) as exc:
                raise ApplicationError(str(exc), type="NotFound" if isinstance(exc, LookupError) else "Invalid",
                                       non_retryable=True) from None
            session.commit()
            return {"document_id": document.id, "status": document.status, "kind": document.kind,
                    "expires_at": document.expires_at.isoformat() if document.expires_at else None}


def activity_now():
    from models.base import utcnow

    return utcnow()
