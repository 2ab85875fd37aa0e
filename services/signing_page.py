"""What a signer does on the built-in signing page, each in one transaction: the signer's row changes and the
ProviderEvent it makes goes on the event path (subject `document`, DocumentSigningWorkflow's signal), exactly as
DocuSign's events arrive through its webhook.

- Opening the link (GET) changes nothing: a mail scanner that follows it uses nothing up.
- Accepting the ESIGN consumer disclosure (POST) records the first view (`delivered`) and the consent.
- Signing (POST, after consent, with "I agree to sign") consumes the link: `signed`, and `completed` when it was
  the last signature. Declining (POST) consumes it too: `declined`.
Every event carries the signer's IP, user agent and time zone and the time it happened.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from sqlmodel import Session, select

from core.settings import Settings
from core.signing import verify
from models.base import utcnow
from models.document import CONSENT_VERSION, OPEN, Document, DocumentSigner
from models.event import emit
from providers.documents.signature_page import png_from_data_url
from providers.esign.base import EVENT_NAME, SIGNAL, EnvelopeEvent, ProviderEvent
from providers.esign.builtin import CSRF_PURPOSE, LINK_PURPOSE, envelope_for
from core.signing import sign
from services.documents import MAX_EXPIRY, signers_of

LINK_MAX_AGE = int(MAX_EXPIRY.total_seconds()) + 86400  # the envelope's own expiry is checked as well


class LinkRefused(Exception):
    """The link cannot be used: `status` 404 (not ours), 410 (used, expired, the envelope closed), 409 (not the
    signer's turn yet, a consent missing), 422 (the form is incomplete); `message` says so to the signer."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


@dataclass(frozen=True)
class Visitor:
    ip: str | None
    user_agent: str | None
    timezone: str | None


def _signer_id(settings: Settings, token: str) -> str:
    payload = verify(settings, LINK_PURPOSE, token, LINK_MAX_AGE) if len(token) < 600 else None
    signer_id = payload.get("s") if payload else None
    if not isinstance(signer_id, str):
        raise LinkRefused(404, "This signing link is not valid. Use the link in the e-mail you received.")
    return signer_id


def csrf_token(settings: Settings, signer: DocumentSigner) -> str:
    return sign(settings, CSRF_PURPOSE, {"s": signer.id})


def open_link(session: Session, settings: Settings, token: str, *, lock: bool = False,
              used_ok: bool = False) -> tuple[Document, DocumentSigner]:
    """The document and signer of a link that can still be used (read only). LinkRefused otherwise."""
    query = select(DocumentSigner).where(DocumentSigner.id == _signer_id(settings, token))
    signer = session.exec(query.with_for_update() if lock else query).first()
    document = session.get(Document, signer.document_id) if signer else None
    if signer is None or document is None:
        raise LinkRefused(404, "This signing link is not valid. Use the link in the e-mail you received.")
    if signer.token_used_at is not None and not used_ok:
        done = "signed" if signer.status == "signed" else "declined" if signer.status == "declined" else "used"
        raise LinkRefused(410, f"You have already {done} “{document.title}”: this link was used and works no more.")
    if document.status not in OPEN or signer.status == "voided":
        raise LinkRefused(410, f"“{document.title}” is {document.status}: it can no longer be signed here.")
    if document.expires_at and document.expires_at <= utcnow():
        raise LinkRefused(410, f"This link to “{document.title}” expired on "
                               f"{document.expires_at.astimezone(UTC):%B %d, %Y %H:%M UTC}.")
    if signer.status == "pending":
        raise LinkRefused(409, "It is not your turn to sign yet: you will get an e-mail when it is.")
    return document, signer


def check_csrf(settings: Settings, signer: DocumentSigner, value: str | None) -> None:
    payload = verify(settings, CSRF_PURPOSE, value or "", LINK_MAX_AGE) if value and len(value) < 600 else None
    if not payload or payload.get("s") != signer.id:
        raise LinkRefused(403, "This form is not from your signing page (or it is stale): open the link again.")


def _event(session: Session, document: Document, signer: DocumentSigner, event: EnvelopeEvent, at: datetime,
           visitor: Visitor, detail: str | None = None) -> None:
    provider_event = ProviderEvent(event_id=f"builtin:{signer.id}:{event.value}", envelope_id=envelope_for(document.id),
                                   event=event, at=at, recipient_email=signer.email, ip=visitor.ip,
                                   user_agent=visitor.user_agent,
                                   detail=detail or (f"time zone {visitor.timezone}" if visitor.timezone else None))
    emit(session, tenant_id=document.tenant_id, subject_type="document", subject_id=document.id, name=EVENT_NAME,
         event_id=provider_event.event_id, workflow_signal=SIGNAL,
         signal_payload=provider_event.model_dump(mode="json"))


def _seen_from(signer: DocumentSigner, visitor: Visitor) -> None:
    signer.ip = (visitor.ip or "")[:64] or signer.ip
    signer.user_agent = (visitor.user_agent or "")[:500] or signer.user_agent
    signer.timezone = (visitor.timezone or "")[:64] or signer.timezone


def accept_disclosure(session: Session, settings: Settings, token: str, csrf: str | None, visitor: Visitor) -> None:
    document, signer = open_link(session, settings, token, lock=True)
    check_csrf(settings, signer, csrf)
    now = utcnow()
    if signer.viewed_at is None:
        signer.viewed_at = now
        _event(session, document, signer, EnvelopeEvent.delivered, now, visitor)
    if signer.consented_at is None:
        signer.consented_at, signer.consent_version = now, CONSENT_VERSION
        _event(session, document, signer, EnvelopeEvent.consented, now, visitor,
               detail=f"accepted the ESIGN consumer disclosure {CONSENT_VERSION}")
    if signer.status in ("sent", "delivered"):
        signer.status = "consented"
    _seen_from(signer, visitor)
    session.add(signer)
    session.commit()


def record_signature(session: Session, settings: Settings, token: str, csrf: str | None, visitor: Visitor, *,
                     agree: bool, typed: str | None, drawn: str | None) -> Document:
    document, signer = open_link(session, settings, token, lock=True)
    check_csrf(settings, signer, csrf)
    if signer.consented_at is None:
        raise LinkRefused(409, "Accept the consumer disclosure before you sign.")
    if not agree:
        raise LinkRefused(422, "Tick “I agree to sign” to sign the document.")
    typed = (typed or "").strip()[:200]
    png = png_from_data_url(drawn) if drawn else None
    if drawn and png is None:
        raise LinkRefused(422, "The drawn signature could not be read: draw it again or type your name.")
    if not typed and png is None:
        raise LinkRefused(422, "Type your name or draw your signature.")
    if len(drawn or "") > 500_000:
        raise LinkRefused(422, "The drawn signature is too large: draw it again or type your name.")
    now = utcnow()
    signer.signature_kind = "drawn" if png is not None else "typed"
    signer.signature_text, signer.signature_image = typed or signer.name, drawn if png is not None else None
    signer.status, signer.signed_at, signer.token_used_at = "signed", now, now
    _seen_from(signer, visitor)
    session.add(signer)
    _event(session, document, signer, EnvelopeEvent.signed, now, visitor,
           detail=f"{signer.signature_kind} signature, I agree to sign"
                  + (f", time zone {visitor.timezone}" if visitor.timezone else ""))
    others = [s for s in signers_of(session, document.id) if s.id != signer.id]
    if all(s.signed_at is not None for s in others):
        event = ProviderEvent(event_id=f"builtin:{document.id}:completed", envelope_id=envelope_for(document.id),
                              event=EnvelopeEvent.completed, at=now, detail="every signer signed")
        emit(session, tenant_id=document.tenant_id, subject_type="document", subject_id=document.id, name=EVENT_NAME,
             event_id=event.event_id, workflow_signal=SIGNAL, signal_payload=event.model_dump(mode="json"))
    session.commit()
    return document


def record_decline(session: Session, settings: Settings, token: str, csrf: str | None, visitor: Visitor,
                   reason: str | None) -> Document:
    document, signer = open_link(session, settings, token, lock=True)
    check_csrf(settings, signer, csrf)
    now = utcnow()
    reason = (reason or "").strip()[:500] or None
    signer.status, signer.declined_at, signer.token_used_at, signer.decline_reason = "declined", now, now, reason
    _seen_from(signer, visitor)
    session.add(signer)
    _event(session, document, signer, EnvelopeEvent.declined, now, visitor, detail=reason or "declined to sign")
    session.commit()
    return document
