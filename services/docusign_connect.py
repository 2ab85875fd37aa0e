"""A verified DocuSign Connect message onto the event path: one `document.provider_event` for the document whose
envelope it is about, once per Connect event however often DocuSign sends it.

One transaction: the `webhook_events` row (unique per provider + event id: a retry or a concurrent duplicate finds
it and changes nothing) and the outbox event DocumentSigningWorkflow hears (signal `provider_event`, the
ProviderEvent as its payload). Nothing here talks to Temporal: the relay delivers the event.
"""

from __future__ import annotations

import logging
from typing import Any

from sqlmodel import Session, select

from models.base import utcnow
from models.document import Document
from models.event import emit
from providers.esign.base import EVENT_NAME, SIGNAL
from providers.esign.docusign_connect import DOCUMENT_FIELD, TENANT_FIELD, ConnectMessage
from services.delivery_events import claim_event

log = logging.getLogger("dealflow.webhooks")
PROVIDER = "docusign"
_BULKY = {"PDFBytes", "documentBase64", "certificateOfCompletion"}  # never kept in webhook_events


def document_for(session: Session, message: ConnectMessage) -> Document | None:
    """The document the envelope is for: by its envelope id, or — when Connect's first message (envelope-sent)
    beats the workflow's write of the envelope id — by the document and tenant ids the envelope carries as custom
    fields (the message is HMAC-verified: those are the values we set), if that document has no other envelope."""
    document = session.exec(select(Document).where(Document.envelope_id == message.envelope_id)).first()
    if document is not None:
        return document
    document_id, tenant_id = message.custom_field(DOCUMENT_FIELD), message.custom_field(TENANT_FIELD)
    if not document_id or not tenant_id:
        return None
    document = session.get(Document, document_id)
    if document is None or document.tenant_id != tenant_id or document.envelope_id not in (None, message.envelope_id):
        return None
    return document


def receive_connect_message(session: Session, message: ConnectMessage, payload: dict[str, Any]) -> str:
    """Blocking (run it in a worker thread). 'applied' (the event is on the event path), 'duplicate' (this
    Connect event was received before) or 'ignored' (an envelope we do not know, or an event documents do not
    follow: recorded with the reason, and acknowledged so DocuSign stops retrying)."""
    try:
        document = document_for(session, message)
        row = claim_event(session, PROVIDER, message.event_id, message.event, _without_documents(payload),
                          document.tenant_id if document else None)
        if row is None:
            session.rollback()
            return "duplicate"
        event = message.provider_event()
        if document is None or event is None:
            row.status, row.processed_at = "ignored", utcnow()
            row.error = (f"no document with envelope {message.envelope_id}" if document is None else
                         f"{message.event} is not an envelope event documents follow")
            session.add(row)
            session.commit()
            return "ignored"
        emit(session, tenant_id=document.tenant_id, subject_type="document", subject_id=document.id,
             name=EVENT_NAME, event_id=message.event_id,
             data={"provider": PROVIDER, "event": event.event.value, "envelope_id": message.envelope_id,
                   "recipient_email": event.recipient_email},
             workflow_signal=SIGNAL, signal_payload=event.model_dump(mode="json"))
        row.status, row.processed_at = "applied", utcnow()
        session.add(row)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    log.info("DocuSign %s for document %s (envelope %s)", message.event, document.id, message.envelope_id)
    return "applied"


def _without_documents(value: Any) -> Any:
    """The message as received, less any document bytes an account-level Connect configuration may include."""
    if isinstance(value, dict):
        return {k: _without_documents(v) for k, v in value.items() if k not in _BULKY}
    if isinstance(value, list):
        return [_without_documents(v) for v in value]
    return value
