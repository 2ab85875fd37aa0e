"""DocuSign Connect messages (JSON SIM, `eventData.version` restv2.1): their HMAC signatures and what they say.

Pure: no SDK, no database, no HTTP, so the API can read Connect without loading the docusign-esign SDK.

Connect signs the raw body with every active HMAC key of the account: `X-DocuSign-Signature-1`, `-2`, ... each
`base64(HMAC-SHA256(key, body))`, the key used as its text (DocuSign's own example: `str.encode(secret)`, not
base64-decoded). One configured key matching one header is enough (a key rotation has two active at once).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from providers.esign.base import EnvelopeEvent, ProviderEvent, parse_time

SIGNATURE_PREFIX = "x-docusign-signature-"
# Envelope custom fields our envelopes carry (providers/esign/docusign.py): which document and tenant they are for.
DOCUMENT_FIELD = "dealflow_document_id"
TENANT_FIELD = "dealflow_tenant_id"

# The Connect events an envelope of ours subscribes to, and what each means for DocumentSigningWorkflow.
# ("envelope-delivered": every recipient has opened it; "recipient-delivered": one has.)
CONNECT_EVENTS: dict[str, EnvelopeEvent] = {
    "envelope-sent": EnvelopeEvent.sent,
    "envelope-delivered": EnvelopeEvent.delivered,
    "recipient-delivered": EnvelopeEvent.delivered,
    "recipient-completed": EnvelopeEvent.signed,
    "envelope-completed": EnvelopeEvent.completed,
    "envelope-declined": EnvelopeEvent.declined,
    "recipient-declined": EnvelopeEvent.declined,
    "envelope-voided": EnvelopeEvent.voided,
}


def signature_headers(headers: Mapping[str, str]) -> list[str]:
    """Every X-DocuSign-Signature-N value, whatever N (one per active key)."""
    return [value for name, value in headers.items() if name.lower().startswith(SIGNATURE_PREFIX)]


def connect_signature(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def signature_matches(keys: Iterable[str], body: bytes, signatures: Iterable[str]) -> bool:
    """True when any configured key's HMAC of the raw body equals any signature header. Every pair is compared
    in constant time, and all of them are compared (no early exit telling which key or header matched)."""
    expected = [connect_signature(key, body).encode() for key in keys if key]
    matched = False
    for signature in signatures:
        given = signature.strip().encode()
        for candidate in expected:
            matched |= hmac.compare_digest(given, candidate)
    return matched


class MalformedMessage(ValueError):
    """A signed body that is not a Connect JSON SIM message; `field` names what is missing or wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


@dataclass(frozen=True)
class ConnectMessage:
    event: str  # envelope-sent, recipient-completed, ...
    envelope_id: str
    generated_at: datetime
    generated_text: str  # as DocuSign wrote it: part of the dedupe key
    recipient_id: str | None
    summary: dict[str, Any]  # data.envelopeSummary (present when the configuration includes it)

    @property
    def event_id(self) -> str:
        """The dedupe key: a Connect retry of one message repeats it; two different events never share it."""
        key = f"docusign:{self.envelope_id}:{self.event}:{self.generated_text}"
        return f"{key}:{self.recipient_id}" if self.recipient_id else key

    def custom_field(self, name: str) -> str | None:
        fields = (self.summary.get("customFields") or {}).get("textCustomFields") or []
        for field in fields if isinstance(fields, list) else []:
            if isinstance(field, dict) and field.get("name") == name and isinstance(field.get("value"), str):
                return field["value"]
        return None

    def _signer(self) -> dict[str, Any]:
        signers = (self.summary.get("recipients") or {}).get("signers") or []
        for signer in signers if isinstance(signers, list) else []:
            if isinstance(signer, dict) and str(signer.get("recipientId")) == self.recipient_id:
                return signer
        return {}

    def provider_event(self) -> ProviderEvent | None:
        """What the message means for the envelope's workflow; None for an event it does not follow."""
        kind = CONNECT_EVENTS.get(self.event)
        if kind is None:
            return None
        signer = self._signer() if self.recipient_id else {}
        detail = None
        if kind == EnvelopeEvent.declined:
            detail = signer.get("declinedReason") or self.summary.get("declinedReason")
        elif kind == EnvelopeEvent.voided:
            detail = self.summary.get("voidedReason")
        return ProviderEvent(event_id=self.event_id, envelope_id=self.envelope_id, event=kind, at=self.generated_at,
                             recipient_email=_text(signer.get("email")), detail=_text(detail))


def parse_message(payload: Any) -> ConnectMessage:
    """The parts of a Connect message that matter here, or MalformedMessage naming the field."""
    if not isinstance(payload, dict):
        raise MalformedMessage("body", "expected a JSON object (Connect's JSON SIM format)")
    event = payload.get("event")
    if not isinstance(event, str) or not event.strip() or len(event) > 64:
        raise MalformedMessage("event", "required: the Connect event, e.g. envelope-sent")
    generated = payload.get("generatedDateTime")
    if not isinstance(generated, str) or len(generated) > 40:
        raise MalformedMessage("generatedDateTime", "required: when DocuSign generated the message (ISO 8601)")
    try:
        generated_at = parse_time(generated)
    except ValueError:
        raise MalformedMessage("generatedDateTime", f"not an ISO 8601 time: {generated[:40]!r}") from None
    if generated_at.tzinfo is None:
        raise MalformedMessage("generatedDateTime", "must carry a time zone (DocuSign sends UTC with a Z)")
    data = payload.get("data")
    if not isinstance(data, dict):
        raise MalformedMessage("data", "required: an object with the envelopeId")
    envelope_id = data.get("envelopeId")
    if not isinstance(envelope_id, str) or not envelope_id.strip() or len(envelope_id) > 100:
        raise MalformedMessage("data.envelopeId", "required: the envelope's id")
    recipient_id = data.get("recipientId")
    if recipient_id is not None and not isinstance(recipient_id, (str, int)):
        raise MalformedMessage("data.recipientId", "must be a string")
    recipient_text = str(recipient_id)[:40] if recipient_id not in (None, "") else None
    summary = data.get("envelopeSummary")
    if summary is not None and not isinstance(summary, dict):
        raise MalformedMessage("data.envelopeSummary", "must be an object")
    return ConnectMessage(event=event.strip(), envelope_id=envelope_id.strip(), generated_at=generated_at,
                          generated_text=generated, recipient_id=recipient_text, summary=summary or {})


def _text(value: Any) -> str | None:
    return str(value)[:500] if value not in (None, "") else None
