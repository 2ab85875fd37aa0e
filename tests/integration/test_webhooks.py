"""Provider webhooks: published signature vectors, forged requests, duplicates, opt-outs and replies."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
import uuid

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from sqlmodel import Session, func, select
from twilio.request_validator import RequestValidator

from api.routes.webhooks import verify_sendgrid, verify_twilio
from models.consent import is_opted_out, record_consent
from models.event import Event
from models.message import Message
from models.payloads import ConsentChange
from models.tenant import Role
from models.timeline import TimelineEntry
from models.webhook import WebhookEvent
from tests.conftest import (
    FAKE_TENANT, TWILIO_TOKEN, eventually, first_touch_run, insert_lead, set_tenant, toll_free, workflow_running,
    zone_at_local_hour,
)

PUBLIC = "https://crm.example.com"


# --- the providers' own published test vectors -------------------------------------------------------

def test_sendgrid_published_vector():
    # From sendgrid-python's test/unit/test_eventwebhook.py.
    public_key = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe62gw+2fNNRaIN"
                  "XvVpiglSI8eNEc6wEA3F+g==")
    signature = ("MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15TluLtEZtM=")
    timestamp = "1600112502"
    payload = json.dumps([{
        "email": "hello@world.com", "event": "dropped", "reason": "Bounced Address",
        "sg_event_id": "ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",
        "sg_message_id": "LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",
        "smtp-id": "<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>", "timestamp": 1600112492,
    }], sort_keys=True, separators=(",", ":")) + "\r\n"
    assert verify_sendgrid(public_key, payload.encode(), signature, timestamp)
    assert not verify_sendgrid(public_key, b"payload", signature, timestamp)
    assert not verify_sendgrid(public_key, payload.encode(), signature, "timestamp")
    assert not verify_sendgrid("not-a-key", payload.encode(), signature, timestamp)


def test_twilio_published_vector():
    # From twilio-python's tests/unit/test_request_validator.py.
    uri = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Digits": "1234", "From": "+14158675309", "To": "+18005551212",
              "Caller": "+14158675309"}
    assert verify_twilio("12345", uri, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio("12345", uri, {**params, "Digits": "9999"}, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")
    assert not verify_twilio("54321", uri, params, "RSOYDt4T1cUTdK1PDd93/VVr8B8=")


# --- helpers ---------------------------------------------------------------------------------------------

def _sendgrid_headers(private_key, payload: bytes, timestamp: str | None = None) -> dict[str, str]:
    timestamp = timestamp or str(int(time.time()))
    signature = private_key.sign(timestamp.encode() + payload, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp, "Content-Type": "application/json"}


def _twilio_post(api, path: str, form: dict[str, str], token: str = TWILIO_TOKEN):
    signature = RequestValidator(token).compute_signature(f"{PUBLIC}{path}", form)
    return api.post(path, data=form, headers={"X-Twilio-Signature": signature})


def _events(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(WebhookEvent)).one()


def _sent_message(engine, channel="email", **fields) -> Message:
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, email=f"w{uuid.uuid4().hex[:6]}@example.com",
                             phone=toll_free())
    with Session(engine, expire_on_commit=False) as session:
        lead = session.get(__import__("models.lead", fromlist=["Lead"]).Lead, lead_id)
        message = Message(tenant_id=FAKE_TENANT, lead_id=lead_id, channel=channel, status="sent", body="hi",
                          to_address=lead.email if channel == "email" else lead.phone, provider="test",
                          provider_message_id=f"SM{uuid.uuid4().hex}", idempotency_key=uuid.uuid4().hex, **fields)
        session.add(message)
        session.commit()
        return message


# --- SendGrid ------------------------------------------------------------------------------------------------

async def test_forged_sendgrid_webhook_changes_nothing(api, engine, caplog):
    payload = json.dumps([{"event": "delivered", "sg_event_id": "forged-1", "email": "a@b.c"}]).encode()
    forger = ec.generate_private_key(ec.SECP256R1())
    before = _events(engine)
    with caplog.at_level(logging.WARNING, logger="dealflow.security"):
        response = await api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                                  headers=_sendgrid_headers(forger, payload))
        missing = await api.post("/api/v1/webhooks/sendgrid/events", content=payload)
    assert response.status_code == 403 and missing.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert _events(engine) == before
    assert any("refused sendgrid webhook" in r.getMessage() and "bad signature" in r.getMessage()
               for r in caplog.records)


async def test_stale_sendgrid_timestamp_is_refused(api, engine, sendgrid_signing_key):
    payload = b'[{"event":"open","sg_event_id":"stale-1"}]'
    response = await api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                              headers=_sendgrid_headers(sendgrid_signing_key, payload, str(int(time.time()) - 3600)))
    assert response.status_code == 403 and "replay window" in response.json()["detail"]


async def test_same_sendgrid_event_fifty_times_concurrently_has_one_effect(api, engine, sendgrid_signing_key):
    message = _sent_message(engine)
    event_id = f"sg-{uuid.uuid4().hex}"
    payload = json.dumps([{"email": message.to_address, "event": "delivered", "sg_event_id": event_id,
                           "timestamp": int(time.time()), "dealflow_message_id": message.id}]).encode()
    headers = _sendgrid_headers(sendgrid_signing_key, payload)
    started = time.perf_counter()
    responses = await asyncio.gather(*(api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                                                headers=headers) for _ in range(50)))
    elapsed = time.perf_counter() - started
    assert all(r.status_code == 200 for r in responses), {r.status_code for r in responses}
    assert sum(r.json().get("applied", 0) for r in responses) == 1
    assert sum(r.json().get("duplicate", 0) for r in responses) == 49
    with Session(engine) as session:
        rows = session.exec(select(WebhookEvent).where(WebhookEvent.event_id == event_id)).all()
        stored = session.get(Message, message.id)
        timeline = session.exec(select(TimelineEntry).where(TimelineEntry.lead_id == message.lead_id)).all()
    assert len(rows) == 1 and rows[0].status == "applied"
    assert stored.status == "delivered" and len(stored.events) == 1 and stored.delivered_at is not None
    assert [t.kind for t in timeline] == ["message.delivered"]
    assert elapsed / 50 < 1.0  # acknowledged well under a second each, even 50 at once


async def test_sendgrid_progress_never_goes_backwards(api, engine, sendgrid_signing_key):
    message = _sent_message(engine)
    for kind in ("open", "delivered", "bounce"):
        payload = json.dumps([{"event": kind, "sg_event_id": uuid.uuid4().hex, "dealflow_message_id": message.id,
                               "type": "bounce", "reason": "550 no such user"}]).encode()
        response = await api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                                  headers=_sendgrid_headers(sendgrid_signing_key, payload))
        assert response.status_code == 200
        with Session(engine) as session:
            status = session.get(Message, message.id).status
        assert status == {"open": "opened", "delivered": "opened", "bounce": "bounced"}[kind]
    with Session(engine) as session:  # a hard bounce opts the address out
        assert is_opted_out(session, FAKE_TENANT, "email", message.to_address)


async def test_sendgrid_unsubscribe_stops_the_leads_cadence(api, engine, make_key, sendgrid_signing_key,
                                                             temporal_client):
    tenant = f"u{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(2))  # 02:00 there: the first touch waits
    lead = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Unsub", "email": f"unsub.{uuid.uuid4().hex[:6]}@example.com", "source": "ppc"})).json()
    await workflow_running(api, headers, lead["id"])
    first_touch = await first_touch_run(engine, temporal_client, lead["id"], step="welcome")  # waiting for 08:00
    message = Message(tenant_id=tenant, lead_id=lead["id"], channel="email", status="delivered", body="x",
                      to_address=lead["email"], provider="sendgrid", idempotency_key=uuid.uuid4().hex)
    with Session(engine) as session:
        session.add(message)
        session.commit()
        message_id = message.id
    payload = json.dumps([{"event": "unsubscribe", "sg_event_id": uuid.uuid4().hex, "email": lead["email"],
                           "dealflow_message_id": message_id}]).encode()
    response = await api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                              headers=_sendgrid_headers(sendgrid_signing_key, payload))
    assert response.status_code == 200 and response.json()["applied"] == 1
    state = await asyncio.wait_for(first_touch.result(), timeout=10)  # ends at once, not at 08:00
    assert state.status == "exited" and "lead.opted_out" in state.path[-1]["detail"]
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "email", lead["email"])
        sent = session.exec(select(Message.id).where(Message.lead_id == lead["id"])).all()
    assert sent == [message_id]  # only the message this test stored: no welcome, no text


# --- Twilio ----------------------------------------------------------------------------------------------------

async def test_forged_twilio_webhooks_are_refused(api, engine):
    before = _events(engine)
    form = {"MessageSid": "SMforged", "From": "+15125550123", "To": "+15125550100", "Body": "STOP"}
    for path in ("/api/v1/webhooks/twilio/sms", "/api/v1/webhooks/twilio/status"):
        forged = await _twilio_post(api, path, form, token="not-our-token")
        unsigned = await api.post(path, data=form)
        assert forged.status_code == 403 and unsigned.status_code == 403
    assert _events(engine) == before


async def test_twilio_status_callbacks_are_applied_once(api, engine):
    message = _sent_message(engine, channel="sms")
    form = {"MessageSid": message.provider_message_id, "MessageStatus": "delivered", "AccountSid": "AC1"}
    first = await _twilio_post(api, "/api/v1/webhooks/twilio/status", form)
    again = await _twilio_post(api, "/api/v1/webhooks/twilio/status", form)
    assert first.json() == {"status": "applied"} and again.json() == {"status": "duplicate"}
    failed = await _twilio_post(api, "/api/v1/webhooks/twilio/status",
                                {**form, "MessageStatus": "undelivered", "ErrorCode": "30003"})
    assert failed.json() == {"status": "applied"}
    with Session(engine) as session:
        stored = session.get(Message, message.id)
    assert stored.status == "undelivered" and stored.error_code == "30003"
    assert [e["event"] for e in stored.events] == ["delivered", "undelivered"]
    unknown = await _twilio_post(api, "/api/v1/webhooks/twilio/status", {**form, "MessageSid": "SMnobody"})
    assert unknown.json() == {"status": "ignored"}


async def _quiet_lead(api, engine, make_key):
    """A lead whose first touch is waiting for the send window (it is 02:00 in the tenant's zone)."""
    tenant = f"s{uuid.uuid4().hex[:6]}"
    number = toll_free()
    headers = make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(2), sms_from=number)
    phone = toll_free()
    lead = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Stop", "phone": phone, "email": f"stop.{uuid.uuid4().hex[:6]}@example.com",
        "source": "direct_mail"})).json()
    await workflow_running(api, headers, lead["id"])
    return tenant, number, lead, headers


async def test_texting_stop_opts_out_and_stops_every_cadence_at_once(api, engine, make_key, temporal_client):
    tenant, number, lead, headers = await _quiet_lead(api, engine, make_key)
    first_touch = await first_touch_run(engine, temporal_client, lead["id"], step="welcome")  # waiting for 08:00

    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"], "To": number, "Body": " Stop "}
    started = time.perf_counter()
    response = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)
    assert response.status_code == 200 and response.headers["content-type"] == "application/xml"
    assert "<Message>" not in response.text  # Twilio itself confirms the opt-out
    state = await asyncio.wait_for(first_touch.result(), timeout=10)
    assert time.perf_counter() - started < 60  # within the same minute (in practice, well under a second)
    assert state.status == "exited" and "lead.opted_out" in state.path[-1]["detail"]
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "sms", lead["phone"])
        outbound = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                      Message.direction == "outbound")).all()
        inbound = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                     Message.direction == "inbound")).all()
    assert outbound == [] and [m.body for m in inbound] == [" Stop "]
    async def recorded():  # the workflow records lead.opted_out right after it stops the cadence
        timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=headers)).json()
        return {"message.received", "lead.opted_out"} <= {e["kind"] for e in timeline}
    await eventually(recorded, timeout=10)

    duplicate = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)
    assert duplicate.status_code == 200
    with Session(engine) as session:
        assert len(session.exec(select(Message).where(Message.lead_id == lead["id"])).all()) == 1

    # START opts back in and answers; HELP answers.
    start = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", {**form, "MessageSid": "SMstart" + uuid.uuid4().hex,
                                                                     "Body": "START"})
    assert "subscribed again" in start.text
    with Session(engine) as session:
        assert not is_opted_out(session, tenant, "sms", lead["phone"])
    help_ = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", {**form, "MessageSid": "SMhelp" + uuid.uuid4().hex,
                                                                     "Body": "help"})
    assert "<Message>" in help_.text and "Reply STOP to opt out" in help_.text


async def test_an_sms_reply_pauses_the_cadence_and_is_recorded(api, engine, make_key, temporal_client):
    tenant, number, lead, headers = await _quiet_lead(api, engine, make_key)
    first_touch = await first_touch_run(engine, temporal_client, lead["id"], step="welcome")
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"], "To": number,
            "Body": "Yes, call me after 5"}
    response = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)
    assert response.status_code == 200
    state = await asyncio.wait_for(first_touch.result(), timeout=10)  # a reply ends the first touch
    assert state.status == "exited" and "lead.replied" in state.path[-1]["detail"]
    async def replies():
        timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=headers)).json()
        return [e for e in timeline if e["kind"] == "lead.replied"]
    replied = await eventually(replies, timeout=10)
    assert len(replied) == 1 and replied[0]["data"]["text"] == "Yes, call me after 5"
    with Session(engine) as session:
        assert not is_opted_out(session, tenant, "sms", lead["phone"])


def _texted(engine, tenant: str, to: str, from_number: str | None) -> None:
    """A text the tenant sent `to` from `from_number` (None: through the shared messaging service)."""
    with Session(engine) as session:
        session.add(Message(tenant_id=tenant, channel="sms", direction="outbound", to_address=to,
                            from_address=from_number, body="Still interested in selling?", provider="twilio",
                            status="delivered", idempotency_key=f"test:{uuid.uuid4().hex}"))
        session.commit()


async def test_stop_applies_to_every_tenant_that_texted_the_number_from_that_line(api, engine, make_key):
    """Twilio blocks a line for a recipient who texted STOP to it, whichever tenant sends on it next: every tenant
    that texted them from that line (or through the shared messaging service) records the opt-out."""
    phone, line, other_line = toll_free(), toll_free(), toll_free()
    owner, shared, service, elsewhere, staff_stopped = (f"o{uuid.uuid4().hex[:6]}" for _ in range(5))
    for tenant in (owner, shared, service, elsewhere, staff_stopped):
        make_key(Role.staff, tenant=tenant)
    set_tenant(engine, owner, sms_from=line)
    _texted(engine, owner, phone, line)
    _texted(engine, shared, phone, line)  # another tenant on the same line
    _texted(engine, service, phone, None)  # through the messaging service
    _texted(engine, elsewhere, phone, other_line)  # a line of its own: Twilio does not block it
    _texted(engine, staff_stopped, phone, line)
    lead = (await api.post("/api/v1/leads", headers=make_key(Role.staff, tenant=shared), json={
        "first_name": "Shared", "phone": phone, "source": "cold_call"})).json()
    with Session(engine) as session:  # opted out by staff before the text: a START must not undo that
        record_consent(session, ConsentChange(tenant_id=staff_stopped, channel="sms", address=phone,
                                              status="opted_out", source="staff", evidence={}))
        session.commit()

    stop = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", {
        "MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "To": line, "Body": "STOP"})
    assert stop.status_code == 200
    with Session(engine) as session:
        stopped = {t for t in (owner, shared, service, elsewhere, staff_stopped)
                   if is_opted_out(session, t, "sms", phone)}
        lead_events = session.exec(select(Event.name).where(Event.subject_id == lead["id"])).all()
    assert stopped == {owner, shared, service, staff_stopped}
    assert "lead.opted_out" in lead_events  # the shared tenant's lead hears it, so its cadences stop

    start = await _twilio_post(api, "/api/v1/webhooks/twilio/sms", {
        "MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "To": line, "Body": "START"})
    assert "subscribed again" in start.text
    with Session(engine) as session:
        still = {t for t in (owner, shared, service, elsewhere, staff_stopped) if is_opted_out(session, t, "sms", phone)}
    assert still == {staff_stopped}
