"""Lead-source webhooks: signed the Standard Webhooks way (id + timestamp + body), refused outside the
tolerance window, stored once per id, and poison input kept as a visible needs_review lead."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid

from sqlmodel import Session, select

from models.lead import Lead
from models.tenant import Role
from models.webhook import WebhookEvent
from tests.conftest import LEAD_SOURCE_TENANT, eventually


def sign(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers, computed here from the spec (not with the library the server uses)."""
    key = base64.b64decode(secret.removeprefix("whsec_")) if secret.startswith("whsec_") else secret.encode()
    mac = hmac.new(key, f"{event_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {"webhook-id": event_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": "v1," + base64.b64encode(mac).decode()}


def _post(api, source: str, payload, secret: str = "zap-secret", event_id: str | None = None, raw: bytes | None = None,
          timestamp: int | None = None):
    body = raw if raw is not None else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json",
               **sign(secret, event_id or uuid.uuid4().hex, timestamp or int(time.time()), body)}
    return api.post(f"/api/v1/webhooks/leads/{source}?tenant={LEAD_SOURCE_TENANT}", content=body, headers=headers)


def test_signing_matches_the_published_standard_webhooks_vector():
    """The example from the Standard Webhooks specification (spec/standard-webhooks.md)."""
    from api.routes.webhooks import verify_lead_source

    secret, msg_id, ts = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330
    body = b'{"test": 2432232314}'
    assert sign(secret, msg_id, ts, body)["webhook-signature"] == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    now = sign(secret, msg_id, int(time.time()), body)
    assert verify_lead_source(secret, body, now) is None
    assert verify_lead_source(secret, body + b" ", now)  # the body is signed
    assert verify_lead_source(secret, body, {**now, "webhook-id": "msg_other"})  # so is the id
    assert "too old" in verify_lead_source(secret, body, sign(secret, msg_id, ts, body)).lower()  # 2021: a replay
    assert verify_lead_source(secret, b"\xff\xfe", {**now, "webhook-signature": "garbage"})  # never raises


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


async def test_lead_source_signatures_are_checked(api, engine, caplog):
    with Session(engine) as session:
        before = len(session.exec(select(WebhookEvent)).all())
    forged = await _post(api, "zapier", {"email": "x@example.com"}, secret="guess")
    unknown_source = await _post(api, "craigslist", {"email": "x@example.com"})
    stale = await _post(api, "zapier", {"email": "x@example.com"}, timestamp=int(time.time()) - 3600)
    future = await _post(api, "zapier", {"email": "x@example.com"}, timestamp=int(time.time()) + 3600)
    unsigned = await api.post(f"/api/v1/webhooks/leads/zapier?tenant={LEAD_SOURCE_TENANT}", content=b"{}")
    unknown_tenant = await api.post("/api/v1/webhooks/leads/zapier?tenant=nobody", content=b"{}")
    refusals = (forged, unknown_source, stale, future, unsigned, unknown_tenant)
    assert {r.status_code for r in refusals} == {403}
    # One answer for all: a prober cannot tell a tenant or source that exists from one that does not
    assert {r.json()["detail"].rpartition(": ")[2] for r in refusals} == {"the signature could not be verified"}
    logged = [r.getMessage() for r in caplog.records if "refused lead_source" in r.getMessage()]
    assert any("too old" in m.lower() for m in logged) and any("'nobody'" in m for m in logged), logged
    with Session(engine) as session:
        assert len(session.exec(select(WebhookEvent)).all()) == before
