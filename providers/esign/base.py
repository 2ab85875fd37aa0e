"""The contract every e-signature provider keeps. Pure of the API, the database and Temporal: activities call it.

An envelope is one document sent to its signers. The provider reports what happens to it as `ProviderEvent`s;
they travel on the event path as events of subject type `document` (subject id = our document id) named
`document.provider_event`, with `workflow_signal="provider_event"` and the event's JSON as `signal_payload`,
so DocumentSigningWorkflow (`sign-{tenant}-{document_id}`) hears each one once (event ids dedupe replays).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from pydantic import AwareDatetime, BaseModel, Field

SIGNAL = "provider_event"  # DocumentSigningWorkflow's signal for a ProviderEvent
EVENT_NAME = "document.provider_event"  # the event path's name for one


class EnvelopeEvent(StrEnum):
    sent = "sent"
    delivered = "delivered"  # the signer opened it (DocuSign "delivered"; the built-in page's first view)
    consented = "consented"  # the signer accepted the ESIGN consumer disclosure
    signed = "signed"  # one signer signed (recipient-completed)
    completed = "completed"  # every signer signed: the envelope is done
    declined = "declined"
    voided = "voided"
    expired = "expired"


class Signer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    email: str = Field(min_length=3, max_length=320)
    role: str = Field(min_length=1, max_length=40)  # the template's role (seller, buyer, ...): its anchors
    routing_order: int = Field(default=1, ge=1, le=99)  # sequential: 1, 2, ...; parallel: all 1


class EnvelopeRequest(BaseModel):
    tenant_id: str
    document_id: str
    title: str
    pdf: bytes  # the original rendered PDF; its SHA-256 is on the document row
    signers: list[Signer]
    signing_order: str = "sequential"  # or parallel
    expires_at: AwareDatetime
    callback_url: str | None = None  # where the provider reports events (DocuSign Connect)


class ProviderEvent(BaseModel):
    """One thing that happened to an envelope, as the provider reported it."""

    event_id: str  # unique per event: the dedupe key on the event path (e.g. docusign:{envelope}:{event}:{time})
    envelope_id: str
    event: EnvelopeEvent
    at: AwareDatetime
    recipient_email: str | None = None  # the signer it concerns (signed, declined, delivered, consented)
    ip: str | None = None
    user_agent: str | None = None
    detail: str | None = None  # a decline or void reason, a provider status text


class CompletedEnvelope(BaseModel):
    signed_pdf: bytes  # the provider's final PDF (ours gets our PAdES seal on top)
    events: list[ProviderEvent]  # the full audit trail (DocuSign: the envelope's audit events)


class ESignProvider(Protocol):
    name: str

    def create_envelope(self, request: EnvelopeRequest) -> str:
        """Send the document for signature; the provider's envelope id. Idempotent per document id: a retry
        returns the envelope the first call created."""

    def remind(self, envelope_id: str, emails: list[str]) -> None:
        """Nudge the signers who have not signed yet."""

    def void(self, envelope_id: str, reason: str) -> None:
        """Cancel the envelope (declined, expired, or staff voided it); a voided one stays voided."""

    def completed(self, envelope_id: str) -> CompletedEnvelope:
        """The signed PDF and the audit trail of a completed envelope."""


def parse_time(value: str | datetime) -> datetime:
    """A provider's timestamp as an aware datetime (DocuSign sends ISO 8601 with a Z and 7 decimals)."""
    if isinstance(value, datetime):
        return value
    text = value.strip().replace("Z", "+00:00")
    head, dot, tail = text.partition(".")
    if dot:  # Python parses at most 6 fractional digits
        digits = tail[:len(tail) - len(tail.lstrip("0123456789"))]
        zone = tail[len(digits):]
        text = f"{head}.{digits[:6]}{zone}"
    return datetime.fromisoformat(text)
