"""Lead-source webhooks: HMAC-signed, stored once, and poison input kept as a visible needs_review lead."""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid

from sqlmodel import Session, select

from models.lead import Lead
from models.tenant import Role
from models.webhook import WebhookEvent
from tests.conftest import LEAD_SOURCE_TENANT, eventually


def _post(api, source: str, payload, secret: str = "zap-secret", event_id: str | None = None, raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    signature = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    headers = {"X-Dealflow-Signature": signature, "Content-Type": "application/json"}
    if event_id:
        headers["X-Event-Id"] = event_id
    return api.post(f"/api/v1/webhooks/leads/{source}?tenant={LEAD_SOURCE_TENANT}", content=body, headers=headers)


async def test_a_signed_lead_from_a_source_starts_its_workflow(api, make_key, engine):
    headers = make_key(Role.staff, tenant=LEAD_SOURCE_TENANT)
    payload = {"firstName": "Dana", "lastName": "Reed", "email": f"dana.{uuid.uuid4().hex[:6]}@example.com",
               "mobile": "713-555-0142", "address": "88 Bayou Ln, Houston, TX 77002", "campaign": "fb-probate-q4"}
    event_id = uuid.uuid4().hex
    first = await _post(api, "zapier", payload, event_id=event_id)
    assert first.status_code == 201, first.text
    lead_id = first.json()["lead_id"]
    again = await _post(api, "zapier", payload, event_id=event_id)  # the source retried
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    lead = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
    assert lead["phone"] == "+17135550142" and lead["source"] == "other"
    assert lead["custom"] == {"lead_source": "zapier", "campaign": "fb-probate-q4"}
    await eventually(lambda: _status(api, headers, lead_id, "RUNNING"))
    with Session(engine) as session:
        assert len(session.exec(select(Lead).where(Lead.email == payload["email"])).all()) == 1


async def _status(api, headers, lead_id, status):
    return (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()["workflow_status"] == status


async def test_poison_lead_is_kept_for_review_with_the_reason(api, make_key, engine):
    headers = make_key(Role.staff, tenant=LEAD_SOURCE_TENANT)
    garbage = {"name": "Unknown Caller", "phone": "call me maybe", "email": "not-an-email"}
    response = await _post(api, "ppc", garbage, secret="ppc-secret", event_id=uuid.uuid4().hex)
    assert response.status_code == 202 and response.json()["status"] == "needs_review"
    lead_id = response.json()["lead_id"]
    review = (await api.get("/api/v1/leads?status=needs_review", headers=headers)).json()["items"]
    held = next(x for x in review if x["id"] == lead_id)
    assert held["status_reason"].startswith("could not be read from ppc: email:")
    assert "phone:" in held["status_reason"] and held["custom"]["raw"] == garbage
    assert held["workflow_id"] is None  # nothing retries in a loop
    unreadable = await _post(api, "ppc", None, secret="ppc-secret", raw=b"{not json", event_id=uuid.uuid4().hex)
    assert unreadable.status_code == 202 and unreadable.json()["status"] == "needs_review"
    with Session(engine) as session:
        events = session.exec(select(WebhookEvent).where(WebhookEvent.provider == "lead_source:ppc")).all()
    assert {e.status for e in events} == {"failed"}


async def test_lead_source_signatures_are_checked(api, engine):
    with Session(engine) as session:
        before = len(session.exec(select(WebhookEvent)).all())
    forged = await _post(api, "zapier", {"email": "x@example.com"}, secret="guess")
    unknown_source = await _post(api, "craigslist", {"email": "x@example.com"})
    assert forged.status_code == 403 and unknown_source.status_code == 403
    with Session(engine) as session:
        assert len(session.exec(select(WebhookEvent)).all()) == before
