"""E-signature end to end over HTTP, on Postgres and the real dev server: a document requested over a deal, the
built-in signing page's links in the outbox, disclosure, consent, signatures in sequential order, completion with a
PAdES-sealed PDF and certificate that verify against the tenant's pinned root, decline, expiry, voiding, refused
links and the same provider event delivered twice."""

from __future__ import annotations

import asyncio
import io
import re
import struct
import uuid
import zlib
from decimal import Decimal

import pytest
from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
from pyhanko.pdf_utils.generic import TextStringObject
from sqlmodel import Session, select

from models.document import Document, DocumentEvent
from models.event import Event
from models.opportunity import Opportunity
from models.signing import SigningState
from models.tenant import Role
from providers.documents.pades import verify_pdf
from providers.documents.pdf import sha256
from providers.documents.signing_keys import pinned_roots
from providers.esign.base import ProviderEvent
from tests.conftest import eventually, insert_lead

TERMS = {"closing_date": "2027-01-15", "earnest_money": "2500", "title_company": "Lone Star Title",
         "inspection_days": 10}


def make_deal(engine, *, contract_price: str | None = "185000", email: str | None = None) -> tuple[str, str, str]:
    """(tenant, opportunity id, seller email): a lead with a property and a deal over it."""
    email = email or f"maria.{uuid.uuid4().hex[:6]}@example.com"
    tenant, lead_id = insert_lead(engine, first_name="Maria", last_name="Garcia", email=email, property={
        "street": "4500 Oak Ridge Dr", "city": "Austin", "state": "TX", "zip": "78745"})
    with Session(engine) as session:
        from models.lead import Lead

        lead = session.get(Lead, lead_id)
        deal = Opportunity(tenant_id=tenant, lead_id=lead_id, property_id=lead.property_id, title="4500 Oak Ridge",
                           stage="offer_made", contract_price=Decimal(contract_price) if contract_price else None)
        session.add(deal)
        session.commit()
        return tenant, deal.id, email


def body(seller: str, buyer: str = "sam@lonestar.example", order: str = "sequential", expires_in: str = "1d",
         **extra) -> dict:
    return {"template": "purchase_agreement", "signing_order": order, "expires_in": expires_in, "terms": TERMS,
            "signers": [{"name": "Maria Garcia", "email": seller, "role": "seller"},
                        {"name": "Sam Buyer", "email": buyer, "role": "buyer"}], **extra}


async def link_for(api, headers, email: str, purpose: str = "invitation", timeout: float = 30.0) -> str:
    """The signing link (path) in the outbox message to `email`."""
    async def find():
        page = (await api.get("/api/v1/messages", headers=headers, params={"limit": 200})).json()
        for message in page["items"]:
            if message["to_address"] == email and message["template"] == f"esign_{purpose}":
                found = re.search(r"https://crm\.example\.com(/sign/\S+)", message["body"])
                return found.group(1) if found else None
        return None

    return await eventually(find, timeout=timeout)


def csrf(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


def png() -> str:
    """A small valid PNG as a canvas would send it (data URL)."""
    import base64

    width, height = 40, 10
    raw = b"".join(b"\x00" + bytes([0, 0, 0, 255] * width) for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return "data:image/png;base64," + base64.b64encode(data).decode()


async def consent_and_sign(api, link: str, *, typed: str | None = None, drawn: str | None = None,
                           timezone: str = "America/Chicago", agent: str = "Mozilla/5.0 (test)") -> None:
    page = await api.get(link, headers={"User-Agent": agent})
    assert page.status_code == 200 and "Consumer disclosure" in page.text
    answer = await api.post(f"{link}/consent", data={"csrf": csrf(page.text), "accept": "yes", "timezone": timezone},
                            headers={"User-Agent": agent})
    assert answer.status_code == 303, answer.text
    page = await api.get(link, headers={"User-Agent": agent})
    assert page.status_code == 200 and "I agree to sign" in page.text
    pdf = await api.get(f"{link}/document.pdf")
    assert pdf.status_code == 200 and pdf.content.startswith(b"%PDF")
    signed = await api.post(link, data={"csrf": csrf(page.text), "agree": "yes", "typed": typed or "",
                                        "drawn": drawn or "", "timezone": timezone}, headers={"User-Agent": agent})
    assert signed.status_code == 200 and "Signed" in signed.text, signed.text


async def document_is(api, headers, document_id: str, status: str, timeout: float = 40.0) -> dict:
    async def check():
        doc = (await api.get(f"/api/v1/documents/{document_id}", headers=headers)).json()
        return doc if doc["status"] == status else None

    return await eventually(check, timeout=timeout)


def deal_events(engine, opportunity_id: str, name: str) -> list[Event]:
    with Session(engine) as session:
        return list(session.exec(select(Event).where(Event.subject_type == "deal", Event.subject_id == opportunity_id,
                                                     Event.name == name)).all())


async def test_built_in_signing_end_to_end(api, make_key, engine, settings, worker):
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    buyer = f"sam.{uuid.uuid4().hex[:6]}@lonestar.example"
    answer = await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller, buyer), headers=headers)
    assert answer.status_code == 201, answer.text
    document = answer.json()
    assert document["status"] == "draft" and len(document["content_sha256"]) == 64
    assert document["workflow_id"] == f"sign-{tenant}-{document['id']}"

    first = await link_for(api, headers, seller)
    # Opening the link (as a mail scanner would) shows the disclosure and uses nothing up.
    for _ in range(2):
        page = await api.get(first)
        assert page.status_code == 200
        for words in ("paper copy", "withdraw", "Scope", "Hardware and software", "I have read the disclosure"):
            assert words in page.text, words
    with Session(engine) as session:
        assert session.exec(select(DocumentEvent).where(DocumentEvent.document_id == document["id"],
                                                        DocumentEvent.event == "delivered")).first() is None
    # Sequential: the buyer's link goes out only once the seller signed.
    page = (await api.get("/api/v1/messages", headers=headers, params={"limit": 200})).json()
    assert not [m for m in page["items"] if m["to_address"] == buyer]
    await consent_and_sign(api, first, typed="Maria Garcia")
    # Single use: while the envelope is still open, the seller's link works no more.
    used = await api.get(first)
    assert used.status_code == 410 and "already signed" in used.text
    assert (await api.post(first, data={"csrf": "x", "agree": "yes", "typed": "Maria"})).status_code == 410

    second = await link_for(api, headers, buyer)
    await consent_and_sign(api, second, drawn=png(), timezone="America/New_York", agent="Safari (test)")

    done = await document_is(api, headers, document["id"], "completed")
    assert done["signed_sha256"] and done["certificate_sha256"] and done["certificate_url"]
    assert [s["status"] for s in done["signers"]] == ["signed", "signed"]
    assert done["signers"][0]["timezone"] == "America/Chicago" and done["signers"][0]["user_agent"] == "Mozilla/5.0 (test)"
    assert done["signers"][1]["signature_kind"] == "drawn" and done["signers"][0]["ip"]
    kinds = [e["event"] for e in done["events"]]
    for kind in ("sent", "delivered", "consented", "signed", "completed"):
        assert kind in kinds, kinds
    certificate = done["certificate"]
    assert certificate["original_sha256"] == done["content_sha256"]
    assert certificate["final_sha256"] == done["signed_sha256"]
    assert [s["consent_version"] for s in certificate["signers"]] == ["esign-disclosure-2026-12"] * 2

    roots = pinned_roots(settings, tenant)
    signed = (await api.get(f"/api/v1/documents/{document['id']}/pdf", headers=headers)).content
    assert sha256(signed) == done["signed_sha256"]
    original_length = len((await original_pdf(engine, document["id"])))
    assert sha256(signed[:original_length]) == done["content_sha256"]  # the original is the first revision
    def verify(data: bytes):  # pyHanko runs its own event loop: not on this one
        return asyncio.to_thread(verify_pdf, data, roots)

    check = await verify(signed)
    assert check.ok, check.problem
    cert_pdf = (await api.get(f"/api/v1/documents/{document['id']}/certificate", headers=headers)).content
    assert sha256(cert_pdf) == done["certificate_sha256"] and (await verify(cert_pdf)).ok

    # Tampered: a changed byte, or an appended incremental update, fails verification.
    index = signed.index(b"Purchase") if b"Purchase" in signed else len(signed) // 3
    changed = signed[:index] + bytes([signed[index] ^ 0x01]) + signed[index + 1:]
    assert not (await verify(changed)).ok
    writer = IncrementalPdfFileWriter(io.BytesIO(signed), strict=False)
    writer.root["/Lang"] = TextStringObject("fr")
    writer.update_root()
    out = io.BytesIO()
    writer.write(out)
    assert not (await verify(out.getvalue())).ok

    # The deal heard document.completed (delivered on the event path, where definitions hear it).
    events = await eventually(lambda: [e for e in deal_events(engine, deal_id, "document.completed") if e.delivered_at])
    assert events[0].data["document_id"] == document["id"] and events[0].data["kind"] == "purchase_agreement"
    with Session(engine) as session:
        row = session.get(Document, document["id"])
        assert row.status == "completed" and row.signed_sha256 == done["signed_sha256"]

    # A used link is refused with a page saying so, for GET and POST alike; a forged one too.
    again = await api.get(first)
    assert again.status_code == 410 and "already signed" in again.text
    assert (await api.post(first, data={"csrf": "x", "agree": "yes", "typed": "Maria"})).status_code == 410
    assert (await api.get("/sign/not-a-token")).status_code == 404
    token = first.removeprefix("/sign/")
    forged = token[:-3] + ("AAA" if token[-3:] != "AAA" else "BBB")
    assert (await api.get(f"/sign/{forged}")).status_code == 404
    timeline = await api.get(f"/api/v1/leads/{await lead_of(engine, deal_id)}/timeline", headers=headers)
    assert timeline.status_code == 200
    items = timeline.json()
    items = items["items"] if isinstance(items, dict) else items
    assert {"document.requested", "document.sent", "document.signed", "document.completed"} <= {e["kind"] for e in
                                                                                               items}


async def original_pdf(engine, document_id: str) -> bytes:
    from services.documents import file_of

    with Session(engine) as session:
        return file_of(session, document_id, "original").content


async def lead_of(engine, deal_id: str) -> str:
    with Session(engine) as session:
        return session.get(Opportunity, deal_id).lead_id


async def test_a_missing_value_is_a_422_naming_it_before_anything_is_sent(api, make_key, engine, worker):
    tenant, deal_id, seller = make_deal(engine, contract_price=None)
    headers = make_key(Role.staff, tenant)
    terms = dict(TERMS)
    del terms["closing_date"]
    answer = await api.post(f"/api/v1/opportunities/{deal_id}/documents", json={**body(seller), "terms": terms},
                            headers=headers)
    assert answer.status_code == 422 and answer.headers["content-type"].startswith("application/problem+json")
    fields = {e["field"] for e in answer.json()["errors"]}
    assert {"deal.contract_price", "terms.closing_date"} <= fields, answer.json()
    with Session(engine) as session:
        assert not session.exec(select(Document).where(Document.opportunity_id == deal_id)).all()
    bad = [({**body(seller), "template": "lease"}, "template"), ({**body(seller), "expires_in": "soon"}, "expires_in"),
           ({**body(seller), "signing_order": "random"}, "signing_order"),
           ({**body(seller), "signers": [{"name": "A", "email": seller, "role": "tenant"}]}, "signers")]
    for request, field in bad:
        answer = await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=request, headers=headers)
        assert answer.status_code == 422, answer.text
        assert field in answer.text
    other = make_key(Role.staff)
    assert (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller),
                           headers=other)).status_code == 404
    readonly = make_key(Role.readonly, tenant)
    assert (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller),
                           headers=readonly)).status_code == 403


async def test_decline_voids_the_envelope_and_tells_the_deal(api, make_key, engine, worker):
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    buyer = f"sam.{uuid.uuid4().hex[:6]}@lonestar.example"
    document = (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller, buyer, "parallel"),
                               headers=headers)).json()
    seller_link, buyer_link = await link_for(api, headers, seller), await link_for(api, headers, buyer)
    page = await api.get(seller_link)
    declined = await api.post(f"{seller_link}/decline", data={"csrf": csrf(page.text), "reason": "price too low",
                                                              "timezone": "America/Chicago"})
    assert declined.status_code == 200 and "declined" in declined.text
    done = await document_is(api, headers, document["id"], "declined")
    assert "price too low" in done["status_reason"]
    assert [s["status"] for s in done["signers"]] == ["declined", "voided"]
    events = await eventually(lambda: [e for e in deal_events(engine, deal_id, "document.declined") if e.delivered_at])
    assert events[0].data["document_id"] == document["id"]
    refused = await api.get(buyer_link)
    assert refused.status_code == 410 and "declined" in refused.text
    # A stale or foreign form is refused too.
    assert (await api.post(f"{buyer_link}/decline", data={"csrf": "forged"})).status_code in (403, 410)
    assert (await api.get(f"/api/v1/documents/{document['id']}/certificate", headers=headers)).status_code == 404
    assert (await api.post(f"/api/v1/documents/{document['id']}/void", headers=headers)).status_code == 409


async def test_an_unsigned_envelope_expires_and_the_deal_hears_it(api, make_key, engine, worker):
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    document = (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller, expires_in="4s"),
                               headers=headers)).json()
    link = await link_for(api, headers, seller)
    done = await document_is(api, headers, document["id"], "expired", timeout=60)
    assert "expired" in (done["status_reason"] or "")
    events = await eventually(lambda: [e for e in deal_events(engine, deal_id, "document.expired") if e.delivered_at])
    assert events[0].data["document_id"] == document["id"]
    refused = await api.get(link)
    assert refused.status_code == 410


async def test_a_closed_deal_takes_no_new_documents(api, make_key, engine):
    """Won or lost, a deal is over: a new envelope is a 409 naming the stage, and nothing is stored."""
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    for stage in ("closed_won", "closed_lost"):
        with Session(engine) as session:
            deal = session.get(Opportunity, deal_id)
            deal.stage = stage
            session.add(deal)
            session.commit()
        answer = await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller), headers=headers)
        assert answer.status_code == 409, answer.text
        assert answer.headers["content-type"].startswith("application/problem+json")
        assert f"is {stage}: a closed deal takes no new documents" in answer.json()["detail"]
    with Session(engine) as session:
        assert not session.exec(select(Document).where(Document.opportunity_id == deal_id)).all()


async def test_staff_void_and_a_csrf_less_post(api, make_key, engine, worker):
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    document = (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller), headers=headers)).json()
    link = await link_for(api, headers, seller)
    assert (await api.post(f"{link}/consent", data={"accept": "yes"})).status_code == 403  # no CSRF token
    assert (await api.post(link, data={"agree": "yes", "typed": "x"})).status_code in (403, 409)
    voided = await api.post(f"/api/v1/documents/{document['id']}/void", json={"reason": "wrong price"},
                            headers=headers)
    assert voided.status_code == 202
    done = await document_is(api, headers, document["id"], "voided")
    assert "wrong price" in done["status_reason"]
    assert (await api.get(link)).status_code == 410
    assert (await api.get(f"/api/v1/documents/{document['id']}", headers=make_key(Role.staff))).status_code == 404


async def test_the_same_provider_event_delivered_twice_has_one_effect(api, make_key, engine, worker, temporal_client):
    tenant, deal_id, seller = make_deal(engine)
    headers = make_key(Role.staff, tenant)
    document = (await api.post(f"/api/v1/opportunities/{deal_id}/documents", json=body(seller), headers=headers)).json()
    await link_for(api, headers, seller)
    handle = temporal_client.get_workflow_handle(document["workflow_id"])

    async def state() -> SigningState:
        return await handle.query("state", result_type=SigningState)

    before = (await state()).events
    event = ProviderEvent(event_id="docusign:test:delivered:1", envelope_id=f"builtin-{document['id']}",
                          event="delivered", at="2026-12-02T10:00:00Z", recipient_email=seller, ip="203.0.113.9")
    for _ in range(3):  # the relay delivers at least once: a redelivery is the same signal again
        await handle.signal("provider_event", event)
    await eventually(lambda: _applied(engine, document["id"], event.event_id))
    await eventually(lambda: state_has(state, lambda s: s.events == before + 1))
    assert (await state()).events == before + 1
    with Session(engine) as session:
        rows = session.exec(select(DocumentEvent).where(DocumentEvent.event_id == event.event_id)).all()
        assert len(rows) == 1
    signer = (await api.get(f"/api/v1/documents/{document['id']}", headers=headers)).json()["signers"][0]
    assert signer["status"] == "delivered" and signer["ip"] == "203.0.113.9"


def _applied(engine, document_id: str, event_id: str) -> bool:
    with Session(engine) as session:
        return session.exec(select(DocumentEvent).where(DocumentEvent.document_id == document_id,
                                                        DocumentEvent.event_id == event_id)).first() is not None


async def state_has(state, predicate) -> bool:
    return predicate(await state())


@pytest.fixture(autouse=True)
def _no_stray_sleep():
    yield


async def test_the_purchase_agreement_playbook_puts_the_deal_under_contract(api, make_key, engine, worker):
    """The shipped playbook: offer_made sends the purchase agreement (seller, then the deal's owner); both sign;
    the definition hears document.completed and moves the deal to under_contract."""
    from pathlib import Path

    from models.tenant import User
    from tests.conftest import workflow_running

    tenant = f"t{uuid.uuid4().hex[:8]}"
    ops, staff = make_key(Role.ops, tenant), make_key(Role.staff, tenant)
    source = (Path(__file__).resolve().parents[2] / "definitions" / "library" / "purchase-agreement.yaml").read_text()
    saved = await api.post("/api/v1/definitions", content=source.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post("/api/v1/definitions/purchase-agreement/versions/1/publish", headers=ops)).status_code == 200
    seller = f"maria.{uuid.uuid4().hex[:6]}@example.com"
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Maria", "last_name": "Garcia", "email": seller, "source": "referral",
        "property_address": "4500 Oak Ridge Dr, Austin, TX 78745"})).json()
    await workflow_running(api, staff, lead["id"])
    deal_id = (await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=staff, json={})).json()["opportunity_id"]
    owner_email = f"sam.{uuid.uuid4().hex[:6]}@lonestar.example"
    with Session(engine) as session:  # the prices the lead's entry rules (and the agreement) need, and an owner
        owner = User(tenant_id=tenant, email=owner_email, name="Sam Buyer", role="staff")
        session.add(owner)
        session.flush()
        deal = session.get(Opportunity, deal_id)
        deal.offer_price, deal.contract_price, deal.assigned_to = Decimal("180000"), Decimal("185000"), owner.id
        session.add(deal)
        session.commit()
    for stage in ("contacted", "offer_made"):
        moved = await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=staff, json={"stage": stage})
        assert moved.status_code == 200, moved.text

    await consent_and_sign(api, await link_for(api, staff, seller), typed="Maria Garcia")
    await consent_and_sign(api, await link_for(api, staff, owner_email), typed="Sam Buyer")

    async def under_contract():
        return (await api.get(f"/api/v1/opportunities/{deal_id}", headers=staff)).json()["stage"] == "under_contract"

    await eventually(under_contract, timeout=60)
    with Session(engine) as session:
        document = session.exec(select(Document).where(Document.opportunity_id == deal_id)).one()
        assert document.kind == "purchase_agreement" and document.status == "completed" and document.signed_sha256
