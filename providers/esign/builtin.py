"""The built-in e-signature provider: the API's own signing page (api/routes/signing.py) behind a link e-mailed to
each signer.

Links are itsdangerous tokens signed with `secret_key` (core/signing.py, purpose `esign-link`) naming the signer:
unforgeable, and re-sendable (a reminder carries a valid link without the database holding any secret). They are
single use — the signature or the decline consumes them (`token_used_at`) — and expire with the envelope (the
document's `expires_at`, or as soon as it is completed, declined, voided or expired). The e-mails go through the
tenant's email provider (the outbox by default) and are stored as messages (GET /api/v1/messages), once per
signer and purpose (invitation, reminder n): a retried activity finds the message instead of sending twice.

What signers do on the page reaches DocumentSigningWorkflow as ProviderEvents on the event path, exactly like
DocuSign's (services/signing_page.py); this class only does what the workflow asks of any provider: send, remind,
void, and hand over the completed PDF with its audit trail.
"""

from __future__ import annotations

from datetime import UTC

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.settings import Settings
from core.signing import sign
from models.base import utcnow
from models.document import FINAL, Document, DocumentEvent, DocumentFile, DocumentSigner
from models.lead import Lead
from models.message import Message
from models.opportunity import Opportunity
from models.tenant import Tenant
from providers.base import OutgoingEmail, ProviderError
from providers.documents.signature_page import PlacedSignature, png_from_data_url, signature_page, with_signature_page
from providers.esign.base import CompletedEnvelope, EnvelopeEvent, EnvelopeRequest, ProviderEvent
from providers.registry import Providers

LINK_PURPOSE = "esign-link"
CSRF_PURPOSE = "esign-csrf"
PREFIX = "builtin-"


def envelope_for(document_id: str) -> str:
    return f"{PREFIX}{document_id}"


def document_of(envelope_id: str) -> str:
    return envelope_id.removeprefix(PREFIX)


def signing_link(settings: Settings, signer_id: str) -> str:
    return f"{settings.effective_public_url}/sign/{sign(settings, LINK_PURPOSE, {'s': signer_id})}"


class BuiltinProvider:
    name = "builtin"

    def __init__(self, settings: Settings, engine: Engine | None = None) -> None:
        self._settings, self._engine = settings, engine
        self._providers = Providers(settings)

    def _session(self) -> Session:
        if self._engine is None:
            raise RuntimeError("the builtin e-signature provider needs the database (esign_for(..., engine=...))")
        return Session(self._engine, expire_on_commit=False)

    # -- the contract ---------------------------------------------------------------------------------------

    def create_envelope(self, request: EnvelopeRequest) -> str:
        """The envelope is the document itself; the first signers (all of them in parallel order) get their link."""
        envelope_id = envelope_for(request.document_id)
        self.invite_next(envelope_id)
        return envelope_id

    def invite_next(self, envelope_id: str) -> list[str]:
        """Send the link to the signers whose turn it is and who have not had it: in sequential order the lowest
        routing order not signed yet, so the next one hears only once the previous one signed. Returns them."""
        with self._session() as session:
            document, signers = self._envelope(session, envelope_id)
            if document.status in FINAL:
                return []
            unsigned = [s for s in signers if s.status not in ("signed", "voided")]
            if not unsigned:
                return []
            turn = min(s.routing_order for s in unsigned)
            due = [s for s in unsigned if s.routing_order == turn and s.status in ("pending", "sent")]
            for signer in due:  # the link works from the moment it may be in a mailbox
                if signer.status == "pending":
                    signer.status, signer.sent_at = "sent", utcnow()
                    session.add(signer)
            session.commit()
        for signer in due:  # (a retry sends again only what the provider did not take: _email is once per purpose)
            self._email(document, signer, "invitation", f"Please sign: {document.title}",
                        "{tenant} sent you “{title}” to sign electronically.\n\nOpen it here (the link is yours "
                        "alone and works until {expires}; opening it signs nothing):\n{link}\n\nYou can read the "
                        "consumer disclosure on that page before you decide, ask for a paper copy, or decline.\n")
        return [s.email for s in due]

    def remind(self, envelope_id: str, emails: list[str]) -> None:
        with self._session() as session:
            document, signers = self._envelope(session, envelope_id)
            reminders = session.exec(select(DocumentEvent.id).where(
                DocumentEvent.document_id == document.id, DocumentEvent.event == "reminded")).all()
        number = len(reminders) + 1
        for signer in signers:
            if signer.email in emails and signer.status in ("sent", "delivered", "consented"):
                self._email(document, signer, f"reminder-{number}", f"Reminder: please sign {document.title}",
                            "A reminder: {tenant} is waiting for your signature on “{title}”.\n\nOpen it here "
                            "(until {expires}):\n{link}\n")

    def void(self, envelope_id: str, reason: str) -> None:
        """Every link of the envelope stops working; what was signed stays recorded."""
        with self._session() as session:
            _, signers = self._envelope(session, envelope_id)
            for signer in signers:
                if signer.status not in ("signed", "declined", "voided"):
                    signer.status = "voided"
                    session.add(signer)
            session.commit()

    def completed(self, envelope_id: str) -> CompletedEnvelope:
        """The original with its signature page (not sealed yet: the completion activity seals it) and the
        envelope's events as the page recorded them."""
        with self._session() as session:
            document, signers = self._envelope(session, envelope_id)
            original = session.exec(select(DocumentFile).where(DocumentFile.document_id == document.id,
                                                               DocumentFile.kind == "original")).one()
            events = session.exec(select(DocumentEvent).where(DocumentEvent.document_id == document.id)
                                  .order_by(col(DocumentEvent.at))).all()
        unsigned = [s.email for s in signers if s.signed_at is None]
        if unsigned:
            raise ProviderError(f"envelope {envelope_id} is not completed: {', '.join(unsigned)} did not sign",
                                retryable=False, code="not_completed")
        placed = [PlacedSignature(name=s.name, email=s.email, role=s.role, signed_at=s.signed_at,
                                  typed=s.signature_text, drawn_png=png_from_data_url(s.signature_image), ip=s.ip,
                                  timezone=s.timezone)
                  for s in sorted(signers, key=lambda s: (s.routing_order, s.signed_at))]
        last = max(s.signed_at for s in signers)
        page = signature_page(document.title, document.id, original.sha256, placed, created_at=last)
        return CompletedEnvelope(
            signed_pdf=with_signature_page(original.content, page),
            events=[ProviderEvent(event_id=e.event_id, envelope_id=envelope_id, event=EnvelopeEvent(e.event), at=e.at,
                                  recipient_email=e.recipient_email, ip=e.ip, user_agent=e.user_agent, detail=e.detail)
                    for e in events if e.event in EnvelopeEvent.__members__])

    # -- helpers --------------------------------------------------------------------------------------------

    def _envelope(self, session: Session, envelope_id: str) -> tuple[Document, list[DocumentSigner]]:
        document = session.get(Document, document_of(envelope_id))
        if document is None:
            raise ProviderError(f"no envelope {envelope_id}", retryable=False, code="not_found")
        signers = session.exec(select(DocumentSigner).where(DocumentSigner.document_id == document.id)
                               .order_by(col(DocumentSigner.routing_order), col(DocumentSigner.created_at))).all()
        return document, list(signers)

    def _email(self, document: Document, signer: DocumentSigner, purpose: str, subject: str, text: str) -> Message:
        """One message per signer and purpose, sent once (a retry finds it sent)."""
        key = f"esign:{signer.id}:{purpose}"
        with self._session() as session:
            message = session.exec(select(Message).where(Message.idempotency_key == key)).first()
            if message is None:
                tenant = session.get(Tenant, document.tenant_id)
                deal = session.get(Opportunity, document.opportunity_id) if document.opportunity_id else None
                lead = session.get(Lead, deal.lead_id) if deal and deal.lead_id else None
                expires = document.expires_at.astimezone(UTC).strftime("%B %d, %Y %H:%M UTC") \
                    if document.expires_at else "the envelope is closed"
                body = text.format(tenant=tenant.name if tenant else document.tenant_id, title=document.title,
                                   expires=expires, link=signing_link(self._settings, signer.id))
                message = Message(tenant_id=document.tenant_id, channel="email", to_address=signer.email,
                                  lead_id=lead.id if lead is not None and lead.email == signer.email else None,
                                  from_address=(tenant.email_from if tenant else None) or self._settings.email_from,
                                  subject=subject, body=body, template=f"esign_{purpose.split('-')[0]}",
                                  provider=self._settings.provider_for(document.tenant_id, "email"),
                                  idempotency_key=key, status="sending")
                session.add(message)
                session.commit()
            if message.status == "sent":
                return message
        provider = self._providers.email(document.tenant_id)
        receipt = provider.send(OutgoingEmail(message_id=message.id, to=message.to_address,
                                              sender=message.from_address or "", subject=message.subject or "",
                                              text=message.body))
        with self._session() as session:
            row = session.get(Message, message.id)
            row.status, row.provider_message_id, row.sent_at = "sent", receipt.provider_message_id, utcnow()
            session.add(row)
            session.commit()
            return row
