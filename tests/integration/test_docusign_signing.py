"""A purchase agreement signed through DocuSign, end to end on the real worker: the API asks for it, the relay
starts DocumentSigningWorkflow, which creates the envelope with the real docusign-esign SDK against the in-repo
fake; the signers sign at "DocuSign" (the fake) and DocuSign Connect tells us over HTTP, signed with HMAC; the
workflow fetches the signed PDF and the audit trail, seals them, and the deal hears document.completed. The PDF
and the certificate verify against the tenant's pinned root, and the certificate carries DocuSign's per-signer IPs
and times."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import uuid
from decimal import Decimal

from sqlmodel import Session, select

from models.document import Document
from models.event import Event
from models.opportunity import Opportunity
from models.tenant import Role
from providers.documents.pades import verify_pdf
from providers.documents.signing_keys import pinned_roots
from tests.conftest import DOCUSIGN_HMAC, DOCUSIGN_TENANT, eventually, insert_lead
from tests.fakes.docusign import connect_message
from tests.integration.test_signing import TERMS

CONNECT = "/api/v1/webhooks/docusign/connect"


def _deal(engine) -> tuple[str, str]:
    email = f"maria.{uuid.uuid4().hex[:6]}@example.com"
    _, lead_id = insert_lead(engine, tenant=DOCUSIGN_TENANT, first_name="Maria", last_name="Garcia", email=email,
                             property={"street": "4500 Oak Ridge Dr", "city": "Austin", "state": "TX", "zip": "78745"})
    with Session(engine) as session:
        from models.lead import Lead

        lead = session.get(Lead, lead_id)
        deal = Opportunity(tenant_id=DOCUSIGN_TENANT, lead_id=lead_id, property_id=lead.property_id,
                           title="4500 Oak Ridge", stage="offer_made", contract_price=Decimal("185000"))
        session.add(deal)
        session.commit()
        return deal.id, email


async def _connect(api, message: dict) -> None:
    body = json.dumps(message).encode()
    signature = base64.b64encode(hmac.new(DOCUSIGN_HMAC.encode(), body, hashlib.sha256).digest()).decode()
    answer = await api.post(CONNECT, content=body, headers={"Content-Type": "application/json",
                                                            "X-DocuSign-Signature-1": signature})
    assert answer.status_code == 200, answer.text


async def test_a_purchase_agreement_signed_through_docusign(api, make_key, engine, settings, docusign_fake, worker):
    deal_id, seller = _deal(engine)
    headers = make_key(Role.staff, DOCUSIGN_TENANT)
    buyer = f"sam.{uuid.uuid4().hex[:6]}@lonestar.example"
    answer = await api.post(f"/api/v1/opportunities/{deal_id}/documents", headers=headers, json={
        "template": "purchase_agreement", "signing_order": "sequential", "expires_in": "3d", "terms": TERMS,
        "signers": [{"name": "Maria Garcia", "email": seller, "role": "seller"},
                    {"name": "Sam Ortiz", "email": buyer, "role": "buyer"}]})
    assert answer.status_code == 201, answer.text
    document_id = answer.json()["id"]

    def envelope_id() -> str | None:
        with Session(engine) as session:
            return session.get(Document, document_id).envelope_id
    envelope = await eventually(envelope_id, timeout=40)
    sent = docusign_fake.envelopes[envelope]
    assert sent.custom_fields()["dealflow_document_id"] == document_id
    assert [(s["email"], s["routingOrder"]) for s in sent.definition["recipients"]["signers"]] == [
        (seller, "1"), (buyer, "2")]
    assert sent.definition["eventNotification"]["url"].endswith(CONNECT)

    signers = [{"recipientId": str(i), "name": n, "email": e, "status": "completed"}
               for i, (n, e) in enumerate((("Maria Garcia", seller), ("Sam Ortiz", buyer)), 1)]
    docusign_fake.sign(envelope, seller, "198.51.100.7", "2026-12-02T18:00:01.1000000Z", "2026-12-02T18:03:00.0Z")
    await _connect(api, connect_message("recipient-completed", envelope, recipient_id="1", signers=signers[:1],
                                        generated="2026-12-02T18:03:01.0000000Z", status="sent"))
    docusign_fake.sign(envelope, buyer, "203.0.113.9", "2026-12-02T19:00:00.0Z", "2026-12-02T19:05:00.0Z")
    completed = connect_message("envelope-completed", envelope, signers=signers,
                                generated="2026-12-02T19:05:02.0000000Z", status="completed")
    await asyncio.gather(*(_connect(api, completed) for _ in range(5)))  # Connect retries: one effect

    async def done():
        body = (await api.get(f"/api/v1/documents/{document_id}", headers=headers)).json()
        return body if body["status"] == "completed" else None
    body = await eventually(done, timeout=60)
    certificate = body["certificate"]
    assert certificate["provider"] == "docusign" and certificate["envelope_id"] == envelope
    assert {s["email"]: s["ip"] for s in certificate["signers"]} == {seller: "198.51.100.7", buyer: "203.0.113.9"}
    assert certificate["original_sha256"] == body["content_sha256"]

    roots = pinned_roots(settings, DOCUSIGN_TENANT)
    signed = (await api.get(f"/api/v1/documents/{document_id}/pdf", headers=headers)).content
    assert hashlib.sha256(signed).hexdigest() == body["signed_sha256"] == certificate["final_sha256"]
    check = await asyncio.to_thread(verify_pdf, signed, roots)
    assert check.ok, check.problem
    cert_pdf = (await api.get(f"/api/v1/documents/{document_id}/certificate", headers=headers)).content
    assert (await asyncio.to_thread(verify_pdf, cert_pdf, roots)).ok

    def heard():
        with Session(engine) as session:
            return session.exec(select(Event).where(Event.subject_id == deal_id,
                                                    Event.name == "document.completed")).all()
    events = await eventually(heard, timeout=20)
    assert len(events) == 1 and events[0].data["kind"] == "purchase_agreement"
    with Session(engine) as session:
        completions = session.exec(select(Event).where(Event.subject_id == document_id,
                                                       Event.name == "document.provider_event")).all()
    assert len({e.event_id for e in completions}) == len(completions)  # the five deliveries were one event
