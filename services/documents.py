"""Documents for e-signature: requesting one (render over the deal, store the PDF and its SHA-256, its signers and
the event that has the relay start DocumentSigningWorkflow — one transaction), voiding one, and what the signing
workflow's activities write (applied provider events, the completion with its signed PDF and certificate, the close
and the event that tells the deal).

Nothing here talks to Temporal or to a provider: the request commits and answers, the relay starts the workflow.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlalchemy import func
from sqlmodel import Session, col, select

from core.db import is_unique_violation
from core.settings import Settings
from definitions.pipelines import is_closed
from models.base import utcnow
from models.document import FINAL, OPEN, Document, DocumentEvent, DocumentFile, DocumentSigner, signing_workflow_id
from models.event import emit
from models.investor import Investor
from models.lead import Lead
from models.opportunity import Opportunity
from models.signing import DEAL_EVENTS, REQUESTED_EVENT, AppliedEvent, SigningInput
from models.tenant import User
from models.timeline import TimelineEntry
from providers.documents.certificate import (
    AuditEvent, CompletionRecord, SignerRecord, signed_completion_certificate,
)
from providers.documents.context import ContextNotFound, document_context
from providers.documents.pades import sign_pdf
from providers.documents.pdf import render_document, sha256
from providers.documents.templates import KINDS, UnknownTemplate, kind
from providers.esign.base import EVENT_NAME, SIGNAL, CompletedEnvelope, ProviderEvent, Signer
from services.acting import Conflict, Invalid, NotFound

DEFAULT_EXPIRY = timedelta(days=14)
MAX_EXPIRY = timedelta(days=120)
REMINDER_DAYS = (2, 5)


def document_id_for(key: str) -> str:
    """A deterministic document id for a business key (a definition step's idempotency key)."""
    return f"dc_{hashlib.sha256(key.encode()).hexdigest()[:20]}"


def _signers(template: str, signers: list[Mapping[str, Any]], order: str) -> list[Signer]:
    roles = [r.role for r in kind(template).signers]
    if not signers:
        raise Invalid("at least one signer is needed", field="signers")
    parsed: list[Signer] = []
    for index, raw in enumerate(signers):
        try:
            signer = Signer.model_validate({**raw, "email": str(raw.get("email", "")).strip().lower(),
                                            "routing_order": index + 1 if order == "sequential" else 1})
        except ValidationError as exc:
            error = exc.errors()[0]
            field = ".".join(str(p) for p in error.get("loc", ()))
            raise Invalid(f"signers[{index}].{field}: {error['msg']}", field=f"signers.{index}.{field}") from None
        if "@" not in signer.email:
            raise Invalid(f"signers[{index}].email: {signer.email!r} is not an e-mail address",
                          field=f"signers.{index}.email")
        if signer.role not in roles:
            raise Invalid(f"signers[{index}].role: {template} is signed as {', '.join(roles)}, not {signer.role!r}",
                          field=f"signers.{index}.role")
        parsed.append(signer)
    for what in ("role", "email"):
        values = [getattr(s, what) for s in parsed]
        twice = next((v for v in values if values.count(v) > 1), None)
        if twice:
            raise Invalid(f"signers: {twice} appears twice (one signer per {what})", field="signers")
    missing = [r for r in roles if r not in {s.role for s in parsed}]
    if missing:
        raise Invalid(f"signers: {template} needs a signer for each role ({', '.join(roles)}); missing "
                      f"{', '.join(missing)}", field="signers")
    return parsed


def request_document(session: Session, settings: Settings, *, tenant_id: str, opportunity_id: str, template: str,
                     signers: list[Mapping[str, Any]], signing_order: str = "sequential",
                     expires_in: timedelta | None = None, terms: Mapping[str, Any] | None = None,
                     tenant_profile: Mapping[str, Any] | None = None, actor: str = "system",
                     document_id: str | None = None, won_deal_ok: bool = False) -> tuple[Document, bool]:
    """Render `template` over the deal and add the document, its original PDF, its signers and the event that
    starts its DocumentSigningWorkflow to the caller's transaction (the caller commits). (document, created):
    with `document_id` given and already there, that document and False. Raises Invalid (a bad template, signer
    or expiry), NotFound (the deal), Conflict (the deal is closed: won or lost, it takes no new document — except,
    with `won_deal_ok`, a won one: a capital raise's subscription agreements), MissingValues (a value the template
    needs, named; nothing is stored)."""
    if document_id:
        existing = session.get(Document, document_id)
        if existing is not None and existing.tenant_id == tenant_id:
            return existing, False
    if template not in KINDS:
        raise Invalid(str(UnknownTemplate(template)), field="template")
    if signing_order not in ("sequential", "parallel"):
        raise Invalid("signing_order is sequential or parallel", field="signing_order")
    expires_in = expires_in if expires_in is not None else DEFAULT_EXPIRY
    if not timedelta(seconds=1) <= expires_in <= MAX_EXPIRY:
        raise Invalid(f"expires_in must be between 1 second and {MAX_EXPIRY.days} days", field="expires_in")
    parsed = _signers(template, list(signers), signing_order)
    # Locked: a loss being recorded (which voids the deal's open documents) either sees this one or is seen.
    deal = session.get(Opportunity, opportunity_id, with_for_update=True)
    if deal is None or deal.tenant_id != tenant_id:
        raise NotFound(f"opportunity {opportunity_id} not found")
    if is_closed(deal.pipeline, deal.stage) and not (won_deal_ok and deal.stage == "closed_won"):
        raise Conflict(f"deal {deal.id} is {deal.stage}: a closed deal takes no new documents"
                       + (" (revive it first)" if deal.stage == "closed_lost" else ""), field="opportunity_id")
    document = Document(tenant_id=tenant_id, opportunity_id=deal.id, kind=template, title=kind(template).title,
                        provider=settings.provider_for(tenant_id, "esign"), signing_order=signing_order,
                        expires_at=utcnow() + expires_in, requested_by=actor, status="draft")
    if document_id:
        document.id = document_id
    # Who signs for the tenant is the signer in the tenant's role, unless the request names its signatory.
    own = next((s for s in parsed for r in kind(template).signers if r.role == s.role and r.party == "tenant"), None)
    profile = {"signatory_name": own.name if own else None, "signatory_title": "Authorized signatory",
               **{k: v for k, v in (tenant_profile or {}).items() if v is not None}}
    investor_id = _investor_signing(session, tenant_id, template, parsed)
    try:
        context = document_context(session, tenant_id=tenant_id, document_id=document.id, opportunity_id=deal.id,
                                   investor_id=investor_id, terms=terms, tenant_profile=profile)
    except ContextNotFound as exc:
        raise NotFound(str(exc)) from None
    rendered = render_document(template, context)  # MissingValues: nothing is stored
    document.content_sha256 = rendered.sha256
    document.workflow_id = signing_workflow_id(tenant_id, document.id)
    session.add(document)
    session.flush()
    session.add(DocumentFile(tenant_id=tenant_id, document_id=document.id, kind="original", sha256=rendered.sha256,
                             content=rendered.pdf))
    for signer in parsed:
        session.add(DocumentSigner(tenant_id=tenant_id, document_id=document.id, name=signer.name,
                                   email=signer.email, role=signer.role, routing_order=signer.routing_order))
    start = SigningInput(tenant_id=tenant_id, document_id=document.id, opportunity_id=deal.id, kind=template,
                         title=document.title, provider=document.provider, signing_order=signing_order,
                         expires_at=document.expires_at, signers=[s.email for s in parsed],
                         reminder_days=[d for d in REMINDER_DAYS if timedelta(days=d) < expires_in])
    emit(session, tenant_id=tenant_id, subject_type="document", subject_id=document.id, name=REQUESTED_EVENT,
         event_id=f"{document.id}:requested", data=start.model_dump(mode="json"), new_subject=True)
    timeline(session, document, "document.requested", f"{document.title} requested for signature by "
             f"{', '.join(s.name for s in parsed)}", {"signers": [s.email for s in parsed]}, actor=actor)
    return document, True


def _investor_signing(session: Session, tenant_id: str, template: str, signers: list[Signer]) -> str | None:
    """The investor a template about an investor is signed by (a subscription agreement's subscriber, an NDA's
    recipient): the tenant's investor with that signer's e-mail, whose name and accreditation it prints."""
    role = next((r.role for r in kind(template).signers if r.party == "investor"), None)
    if role is None or "investor" not in kind(template).parties:
        return None
    signer = next((s for s in signers if s.role == role), None)
    found = session.exec(select(Investor.id).where(Investor.tenant_id == tenant_id, func.lower(Investor.email)
                                                   == signer.email.lower())).first() if signer else None
    if found is None:
        raise Invalid(f"the {role} of a {template} is one of your investors: no investor has the e-mail "
                      f"{signer.email if signer else '(none given)'}", field="signers")
    return found


def signers_for_deal(session: Session, tenant_id: str, opportunity_id: str, template: str,
                     wanted: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """A definition's signers, completed from the deal: `{role: seller}` is the deal's lead; `email: owner` is the
    deal's owner (its assignee, else its lead's). Explicit names and e-mails are kept as given."""
    from services.assignment import owner_of

    deal = session.get(Opportunity, opportunity_id)
    if deal is None or deal.tenant_id != tenant_id:
        raise NotFound(f"opportunity {opportunity_id} not found")
    parties = {r.role: r.party for r in kind(template).signers}
    out = []
    for index, raw in enumerate(wanted):
        signer = dict(raw)
        role = str(signer.get("role", ""))
        if signer.get("email") == "owner":
            owner: User | None = owner_of(session, deal)
            if owner is None:
                raise Invalid(f"signers[{index}]: the deal has no owner to sign as {role}", field="signers")
            signer["email"] = owner.email
            signer.setdefault("name", owner.name or owner.email)
        elif not signer.get("email") and parties.get(role) == "seller":
            lead = session.get(Lead, deal.lead_id) if deal.lead_id else None
            if lead is None or not lead.email:
                raise Invalid(f"signers[{index}]: the deal's seller has no e-mail address", field="signers")
            signer["email"] = lead.email
            signer.setdefault("name", " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email)
        out.append(signer)
    return out


def void_document(session: Session, document: Document, *, reason: str, actor: str) -> bool:
    """Staff void: a `voided` provider event on the event path (the workflow voids the envelope and closes the
    document). False when the document is already final."""
    if document.status in FINAL:
        return False
    event = ProviderEvent(event_id=f"staff:{document.id}:voided", envelope_id=document.envelope_id or "",
                          event="voided", at=utcnow(), detail=f"voided by {actor}: {reason}"[:500])
    emit(session, tenant_id=document.tenant_id, subject_type="document", subject_id=document.id, name=EVENT_NAME,
         event_id=event.event_id, workflow_signal=SIGNAL, signal_payload=event.model_dump(mode="json"))
    return True


LOST_REASON = "deal closed lost"


def void_lost_deal_documents(session: Session, deal: Opportunity, *, reason: str | None, actor: str) -> list[str]:
    """A deal lost: each of its open documents voided as staff would void it (void_document), "deal closed lost"
    and the loss's reason in the event, in the caller's transaction (the one that records the move), so its signing
    workflow voids the envelope and stops its reminders. The ids voided."""
    why = f"{LOST_REASON}: {reason}" if reason else LOST_REASON
    voided = []
    for document in session.exec(select(Document).where(Document.tenant_id == deal.tenant_id,
                                                        Document.opportunity_id == deal.id,
                                                        col(Document.status).in_(OPEN))
                                 .order_by(col(Document.created_at))).all():
        if void_document(session, document, reason=why, actor=actor):
            voided.append(document.id)
    return voided


# -- what the signing workflow's activities write ------------------------------------------------------------

def timeline(session: Session, document: Document, kind_: str, summary: str, data: dict[str, Any] | None = None,
             *, key: str | None = None, actor: str = "system") -> None:
    """An entry on the deal's timeline (and its lead's), once per key."""
    if not document.opportunity_id:
        return
    key = (key or f"{document.id}:{kind_}")[:300]
    if session.exec(select(TimelineEntry.id).where(TimelineEntry.idempotency_key == key)).first():
        return
    deal = session.get(Opportunity, document.opportunity_id)
    session.add(TimelineEntry(tenant_id=document.tenant_id, opportunity_id=document.opportunity_id,
                              lead_id=deal.lead_id if deal else None, kind=kind_, summary=summary[:500],
                              data={"document_id": document.id, "kind": document.kind, **(data or {})},
                              actor=actor, workflow_id=document.workflow_id, idempotency_key=key))


def signers_of(session: Session, document_id: str) -> list[DocumentSigner]:
    return list(session.exec(select(DocumentSigner).where(DocumentSigner.document_id == document_id)
                             .order_by(col(DocumentSigner.routing_order), col(DocumentSigner.created_at))).all())


def events_of(session: Session, document_id: str) -> list[DocumentEvent]:
    return list(session.exec(select(DocumentEvent).where(DocumentEvent.document_id == document_id)
                             .order_by(col(DocumentEvent.at), col(DocumentEvent.id))).all())


def file_of(session: Session, document_id: str, which: str) -> DocumentFile | None:
    return session.exec(select(DocumentFile).where(DocumentFile.document_id == document_id,
                                                   DocumentFile.kind == which)).first()


def record_event(session: Session, document: Document, event_id: str, event: str, at: datetime, *,
                 email: str | None = None, ip: str | None = None, user_agent: str | None = None,
                 detail: str | None = None) -> bool:
    """The event in the document's trail, once per event id (False when it was there). Commits."""
    if session.exec(select(DocumentEvent.id).where(DocumentEvent.document_id == document.id,
                                                   DocumentEvent.event_id == event_id[:300])).first():
        return False
    session.add(DocumentEvent(tenant_id=document.tenant_id, document_id=document.id, event_id=event_id[:300],
                              event=event, at=at, recipient_email=email, ip=(ip or None) and ip[:64],
                              user_agent=(user_agent or None) and user_agent[:500],
                              detail=(detail or None) and detail[:500]))
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent attempt recorded it first
        session.rollback()
        if not is_unique_violation(exc):
            raise
        return False
    return True


_SIGNER_STATUS = {"delivered": "delivered", "consented": "consented", "signed": "signed", "declined": "declined"}
_RANK = ["pending", "sent", "delivered", "consented", "signed"]


_STAMPS = {"delivered": "viewed_at", "consented": "consented_at", "signed": "signed_at", "declined": "declined_at"}


def _fill_signer(signer, event: ProviderEvent) -> None:
    """What the event says about its signer, where the row does not know it yet: the time of the step, the IP and
    the user agent (DocuSign's come from its audit trail), a decline's reason."""
    stamp = _STAMPS.get(event.event.value)
    if stamp is None:  # "sent" and the like are the sender's doing: its IP is not the signer's
        return
    if getattr(signer, stamp) is None:
        setattr(signer, stamp, event.at)
    if event.event.value == "declined" and not signer.decline_reason:
        signer.decline_reason = event.detail
    for name, value in (("ip", event.ip), ("user_agent", event.user_agent)):
        if value and not getattr(signer, name):
            setattr(signer, name, value[:64] if name == "ip" else value[:500])


def apply_provider_event(session: Session, document: Document, event: ProviderEvent) -> AppliedEvent:
    """A provider event applied to the document and its signer (the built-in page already wrote its own signer's
    row; DocuSign's events are applied here), recorded once per event id, with a timeline entry."""
    new = record_event(session, document, event.event_id, event.event.value, event.at, email=event.recipient_email,
                       ip=event.ip, user_agent=event.user_agent, detail=event.detail)
    document = session.get(Document, document.id)
    signer = next((s for s in signers_of(session, document.id) if event.recipient_email
                   and s.email == event.recipient_email.lower()), None)
    if new and signer is not None and event.event.value in _SIGNER_STATUS:
        target = _SIGNER_STATUS[event.event.value]
        if target == "declined" or (signer.status in _RANK and _RANK.index(target) > _RANK.index(signer.status)):
            signer.status = target
        _fill_signer(signer, event)
        session.add(signer)
    if new and event.event.value == "delivered" and document.status == "sent":
        document.status = "delivered"
        session.add(document)
    if new:
        who = signer.name if signer else (event.recipient_email or "the provider")
        timeline(session, document, f"document.{event.event.value}",
                 f"{document.title}: {event.event.value} by {who}" + (f" ({event.detail})" if event.detail else ""),
                 {"event_id": event.event_id, "email": event.recipient_email}, key=f"{document.id}:{event.event_id}")
    session.commit()
    pending = [s.email for s in signers_of(session, document.id) if s.signed_at is None]
    return AppliedEvent(new=new, document_status=document.status, pending=pending)


def close_document(session: Session, document: Document, status: str, reason: str | None,
                   data: dict[str, Any] | None = None) -> None:
    """The document final (completed, declined, voided, expired) and the deal told (document.<status> on the
    event path: definitions hear it), once. The caller has written what completion stores."""
    document = session.get(Document, document.id)
    if document.status not in OPEN and document.status != status:
        return
    if document.status != status:
        document.status, document.status_reason = status, (reason or None) and reason[:500]
        session.add(document)
    if document.opportunity_id:
        emit(session, tenant_id=document.tenant_id, subject_type="deal", subject_id=document.opportunity_id,
             name=DEAL_EVENTS[status], event_id=f"{document.id}:{status}",
             data={"document_id": document.id, "kind": document.kind, "template": document.kind,
                   "status": status, "reason": reason, **(data or {})})
    timeline(session, document, f"document.{status}", f"{document.title} {status}"
             + (f": {reason}" if reason else ""), {"reason": reason, **(data or {})})
    session.commit()


def store_file(session: Session, document: Document, which: str, content: bytes) -> str:
    """The PDF stored once per kind (a retried completion finds it); its SHA-256."""
    existing = file_of(session, document.id, which)
    if existing is not None:
        return existing.sha256
    digest = sha256(content)
    session.add(DocumentFile(tenant_id=document.tenant_id, document_id=document.id, kind=which, sha256=digest,
                             content=content))
    session.flush()
    return digest


AUTHENTICATION = {"builtin": "e-mail link (signed, single use, expiring with the envelope)",
                  "docusign": "DocuSign e-mail link"}


def complete_document(session: Session, settings: Settings, document: Document, completed: CompletedEnvelope) -> None:
    """Seal the provider's final PDF with the tenant's certificate (PAdES), make the certificate of completion
    (itself PAdES-signed), store both, mark the document completed and tell the deal — once (a retry finds the
    files it stored). Synchronous: pyHanko runs its own event loop."""
    from providers.documents.signing_keys import signing_identity

    document = session.get(Document, document.id)
    if document.status == "completed":
        return
    identity = signing_identity(settings, document.tenant_id)
    stored = file_of(session, document.id, "signed")
    if stored is None:
        sealed = sign_pdf(completed.signed_pdf, identity, timestamp_url=settings.signing_timestamp_url,
                          reason=f"{document.title} ({document.id}) signed by every party")
        final_sha = store_file(session, document, "signed", sealed)
    else:
        final_sha = stored.sha256
    signers = {s.email: s for s in signers_of(session, document.id)}
    for event in completed.events:  # DocuSign's audit trail: what the envelope saw that we were not told
        signer = signers.get((event.recipient_email or "").lower())
        if signer is not None:  # where each signer viewed and signed from, and when
            _fill_signer(signer, event)
            session.add(signer)
        if not session.exec(select(DocumentEvent.id).where(DocumentEvent.document_id == document.id,
                                                           DocumentEvent.event_id == event.event_id[:300])).first():
            session.add(DocumentEvent(tenant_id=document.tenant_id, document_id=document.id,
                                      event_id=event.event_id[:300], event=event.event.value, at=event.at,
                                      recipient_email=event.recipient_email, ip=event.ip, user_agent=event.user_agent,
                                      detail=event.detail))
    session.flush()
    record = completion_record(session, document, final_sha)
    if file_of(session, document.id, "certificate") is None:
        certificate = signed_completion_certificate(record, identity, timestamp_url=settings.signing_timestamp_url)
        document.certificate_sha256 = store_file(session, document, "certificate", certificate)
    document.signed_sha256, document.completed_at = final_sha, record.completed_at
    document.certificate = record.model_dump(mode="json")
    session.add(document)
    session.commit()
    close_document(session, document, "completed", None,
                   {"signed_sha256": final_sha, "content_sha256": document.content_sha256})


def completion_record(session: Session, document: Document, final_sha256: str | None) -> CompletionRecord:
    from models.tenant import Tenant

    tenant = session.get(Tenant, document.tenant_id)
    events = events_of(session, document.id)
    signers = signers_of(session, document.id)
    sent = next((e.at for e in events if e.event == "sent"), None)
    done = max((s.signed_at for s in signers if s.signed_at), default=None)
    return CompletionRecord(
        envelope_id=document.envelope_id or document.id, document_id=document.id, document_title=document.title,
        tenant_id=document.tenant_id, tenant_name=tenant.name if tenant else None, provider=document.provider,
        status="completed", original_sha256=document.content_sha256, final_sha256=final_sha256,
        signing_order=document.signing_order, sent_at=sent, completed_at=done or utcnow(),
        signers=[SignerRecord(name=s.name, email=s.email, role=s.role, routing_order=s.routing_order,
                              authentication=AUTHENTICATION.get(document.provider, document.provider), ip=s.ip,
                              user_agent=s.user_agent, timezone=s.timezone, consent_version=s.consent_version,
                              consented_at=s.consented_at, viewed_at=s.viewed_at, signed_at=s.signed_at,
                              signature=(f"typed: {s.signature_text}" if s.signature_kind == "typed" else
                                         "drawn" if s.signature_kind == "drawn" else None),
                              declined_at=s.declined_at, decline_reason=s.decline_reason) for s in signers],
        events=[AuditEvent(at=e.at, event=e.event, actor=e.recipient_email, ip=e.ip, detail=e.detail)
                for e in events])
