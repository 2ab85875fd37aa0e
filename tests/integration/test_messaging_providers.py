"""send_message with the real SendGrid and Twilio SDKs against in-repo HTTP fakes: request shape, exactly
once per idempotency key, retryable 5xx, final 4xx recorded on the message, consent, strict templates."""

from __future__ import annotations

import uuid

import pytest
from sqlmodel import Session, select
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.messaging import MessagingActivities
from models.consent import is_opted_out, record_consent
from models.message import Message, MessageTemplate
from models.payloads import ConsentChange, MessageRequest
from providers.registry import Providers
from tests.conftest import FAKE_TENANT, TWILIO_FROM, insert_lead
from tests.fakes.server import Reply


@pytest.fixture
def send(engine, settings):
    activities = MessagingActivities(engine, settings, Providers(settings))
    env = ActivityEnvironment()
    return lambda request: env.run(activities.send_message, request)


def _phone() -> str:
    return f"+1512555{uuid.uuid4().int % 10000:04d}"


def _request(lead_id: str, channel: str, template: str, key: str | None = None, **extra) -> MessageRequest:
    return MessageRequest(tenant_id=FAKE_TENANT, lead_id=lead_id, channel=channel, template=template,
                          idempotency_key=key or f"{lead_id}:test:{uuid.uuid4().hex[:6]}", **extra)


def _message(engine, key: str) -> Message:
    with Session(engine) as session:
        return session.exec(select(Message).where(Message.idempotency_key == key)).one()


def test_sendgrid_request_shape_and_exactly_once(send, engine, sendgrid_fake):
    email = f"maria.{uuid.uuid4().hex[:6]}@example.com"
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, first_name="Maria", email=email,
                             property={"street": "4500 Oak Ridge Dr", "city": "Austin", "state": "TX", "zip": "78731"})
    request = _request(lead_id, "email", "welcome")
    first, again = send(request), send(request)  # a retry or a duplicate workflow start

    sent = [r for r in sendgrid_fake.calls("POST", "/v3/mail/send")
            if r.json()["personalizations"][0]["to"][0]["email"] == email]
    assert len(sent) == 1
    body = sent[0].json()
    assert body["from"] == {"email": "no-reply@dealflow.local", "name": "Dealflow"}
    assert body["subject"] == "Lone Star Home Buyers: thanks for reaching out, Maria"
    assert [c["type"] for c in body["content"]] == ["text/plain", "text/html"]
    assert "4500 Oak Ridge Dr, Austin" in body["content"][0]["value"]
    assert body["custom_args"] == {"dealflow_message_id": first.message_id}
    assert body["headers"]["List-Unsubscribe"].startswith("<https://crm.example.com/api/v1/unsubscribe/")
    assert first.status == again.status == "sent" and first.message_id == again.message_id
    assert first.provider_message_id in sendgrid_fake.accepted
    row = _message(engine, request.idempotency_key)
    assert row.provider == "sendgrid" and row.template_version == 1 and row.sent_at is not None


def test_twilio_request_shape(send, engine, twilio_fake):
    phone = _phone()
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, first_name="Ann", phone=phone)
    result = send(_request(lead_id, "sms", "first_touch"))
    created = [r.form() for r in twilio_fake.calls("POST", "/Messages.json") if r.form().get("To") == phone]
    assert len(created) == 1
    assert created[0]["From"] == TWILIO_FROM
    assert created[0]["StatusCallback"] == "https://crm.example.com/api/v1/webhooks/twilio/status"
    assert created[0]["Body"] == ("Hi Ann, Lone Star Home Buyers here. Thanks for reaching out. "
                                  "When can we talk about an offer? Reply STOP to opt out.")
    assert result.status == "sent" and result.provider_message_id.startswith("SM")


def test_sendgrid_5xx_is_retried_and_the_retry_sends_once(send, engine, sendgrid_fake):
    email = f"retry.{uuid.uuid4().hex[:6]}@example.com"
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, email=email)
    request = _request(lead_id, "email", "welcome")
    sendgrid_fake.failures.append(Reply(503, {"errors": [{"message": "Service Unavailable"}]}))
    with pytest.raises(ApplicationError) as failure:
        send(request)
    assert failure.value.type == "ProviderUnavailable" and not failure.value.non_retryable
    pending = _message(engine, request.idempotency_key)
    assert pending.status == "sending" and pending.error_code == "503"

    result = send(request)  # Temporal's retry: looks the message up first, then sends
    assert result.status == "sent"
    mine = [r for r in sendgrid_fake.requests if email.encode() in r.body or pending.id in str(r.query)]
    assert [(r.method, r.path) for r in mine] == [("POST", "/v3/mail/send"), ("GET", "/v3/messages"),
                                                  ("POST", "/v3/mail/send")]
    assert sum(1 for b in sendgrid_fake.accepted.values()
               if b["custom_args"]["dealflow_message_id"] == pending.id) == 1


def test_twilio_unsubscribed_recipient_fails_for_good_and_opts_out(send, engine, twilio_fake):
    phone = _phone()
    twilio_fake.unsubscribed.add(phone)
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, phone=phone)
    request = _request(lead_id, "sms", "first_touch")
    with pytest.raises(ApplicationError) as failure:
        send(request)
    assert failure.value.non_retryable and failure.value.type == "ProviderRejected"
    row = _message(engine, request.idempotency_key)
    assert (row.status, row.error_code) == ("failed", "21610")
    assert "unsubscribed recipient" in row.error_message
    with Session(engine) as session:
        assert is_opted_out(session, FAKE_TENANT, "sms", phone)


def test_sendgrid_4xx_is_final_with_the_providers_reason(send, engine):
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, email=f"x{uuid.uuid4().hex[:6]}@invalid.example")
    request = _request(lead_id, "email", "welcome")
    with pytest.raises(ApplicationError) as failure:
        send(request)
    assert failure.value.non_retryable
    row = _message(engine, request.idempotency_key)
    assert (row.status, row.error_code) == ("failed", "400")
    assert row.error_message == "SendGrid: Does not contain a valid address."


def test_opted_out_recipient_is_suppressed_not_sent(send, engine, twilio_fake):
    phone = _phone()
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, phone=phone)
    with Session(engine) as session:
        record_consent(session, ConsentChange(tenant_id=FAKE_TENANT, channel="sms", address=phone,
                                              status="opted_out", source="test"))
        session.commit()
    result = send(_request(lead_id, "sms", "first_touch"))
    assert result.status == "suppressed" and "opted out" in result.error
    assert not [r for r in twilio_fake.calls("POST", "/Messages.json") if r.form().get("To") == phone]


def test_a_missing_template_variable_never_sends_an_empty_string(send, engine, twilio_fake):
    phone = _phone()
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, phone=phone)
    with Session(engine) as session:  # a template that bypassed validation (written straight to the DB)
        session.add(MessageTemplate(tenant_id=FAKE_TENANT, key=f"broken{uuid.uuid4().hex[:4]}", version=1,
                                    channel="sms", text="Hi {{ lead.nickname }}!"))
        session.commit()
        key = session.exec(select(MessageTemplate.key).where(MessageTemplate.text == "Hi {{ lead.nickname }}!")
                           .order_by(MessageTemplate.created_at.desc())).first()
    request = _request(lead_id, "sms", key)
    result = send(request)
    assert result.status == "failed" and "nickname" in result.error
    assert not [r for r in twilio_fake.calls("POST", "/Messages.json") if r.form().get("To") == phone]
    assert _message(engine, request.idempotency_key).error_code == "template"


def test_lead_without_a_phone_gets_a_recorded_failure(send, engine):
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, phone=None)
    result = send(_request(lead_id, "sms", "first_touch"))
    assert result.status == "failed" and result.error == "lead has no phone"
