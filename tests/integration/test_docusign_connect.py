"""POST /api/v1/webhooks/docusign/connect: Connect's HMAC (any configured key, any X-DocuSign-Signature-N), forged,
missing and altered signatures, fail-closed without keys, unknown envelopes and malformed bodies, and the same
message sent 20 times at once over real HTTP (one event row).

Signatures are computed here with hmac + base64 over the raw bytes, and checked against a fixed vector whose
expected value was computed outside Python (`openssl dgst -sha256 -hmac KEY -binary | base64`)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import uuid

import httpx
import pytest
import pytest_asyncio
from prometheus_client import REGISTRY
from sqlmodel import Session, func, select

from api.app import create_app
from core.settings import Settings
from models.document import Document
from models.event import Event
from models.webhook import WebhookEvent
from providers.esign.base import EVENT_NAME, SIGNAL, EnvelopeEvent, ProviderEvent
from providers.esign.docusign_connect import connect_signature, signature_matches
from services.tenants import create_tenant
from tests.conftest import TEST_SECRET_KEY
from tests.fakes.docusign import connect_message
from tests.integration.stack import released_together, uvicorn_api

PATH = "/api/v1/webhooks/docusign/connect"
OLD_KEY, KEY = "old-connect-key-rotated-out", "dsq-connect-key-2026"

# The fixed vector: key, body, and base64(HMAC-SHA256(key, body)) as openssl computes it.
VECTOR_KEY = "dsq-connect-key-2026"
VECTOR_BODY = (b'{"event":"envelope-sent","generatedDateTime":"2026-12-02T18:05:32.1234567Z",'
               b'"data":{"envelopeId":"93be49ab-0000-4d5e-9a1b-f752070d71ec"}}')
VECTOR_SIGNATURE = "+xdlT7S/c4H59h94LsTciKznyuFFgT1WtSJJALoaEHM="


def sign(key: str, body: bytes) -> str:
    return base64.b64encode(hmac.new(key.encode(), body, hashlib.sha256).digest()).decode()


def test_the_fixed_vector():
    assert sign(VECTOR_KEY, VECTOR_BODY) == VECTOR_SIGNATURE
    assert connect_signature(VECTOR_KEY, VECTOR_BODY) == VECTOR_SIGNATURE
    assert signature_matches([VECTOR_KEY], VECTOR_BODY, [VECTOR_SIGNATURE])
    assert signature_matches(["other", VECTOR_KEY], VECTOR_BODY, ["junk", VECTOR_SIGNATURE])
    assert not signature_matches([VECTOR_KEY], VECTOR_BODY + b" ", [VECTOR_SIGNATURE])
    # the key is its text, not base64 to decode first
    assert not signature_matches([base64.b64encode(VECTOR_KEY.encode()).decode()], VECTOR_BODY, [VECTOR_SIGNATURE])


def connect_settings(database_url: str, tmp_path, keys: list[str]) -> Settings:
    return Settings(database_url=database_url, secret_key=TEST_SECRET_KEY, home=tmp_path,
                    models_dir=tmp_path / "models", temporal_address="127.0.0.1:1",  # never reached: lazy client
                    docusign_connect_hmac_keys=keys)


@pytest.fixture(scope="module")
def module_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("connect")


@pytest_asyncio.fixture(scope="module")
async def connect_app(database_url, engine, module_dir):
    app = create_app(connect_settings(database_url, module_dir, [OLD_KEY, KEY]), engine=engine)
    async with app.router.lifespan_context(app):
        yield app


@pytest_asyncio.fixture
async def client(connect_app):
    transport = httpx.ASGITransport(app=connect_app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def a_document(engine, envelope_id: str | None = None) -> Document:
    tenant = f"ds{uuid.uuid4().hex[:6]}"
    with Session(engine) as session:
        create_tenant(session, tenant)
        document = Document(tenant_id=tenant, kind="purchase_agreement", title="Purchase and Sale Agreement",
                            provider="docusign", envelope_id=envelope_id, status="sent")
        session.add(document)
        session.commit()
        session.refresh(document)
        return document


def events_for(engine, document_id: str) -> list[Event]:
    with Session(engine) as session:
        return list(session.exec(select(Event).where(Event.subject_type == "document",
                                                     Event.subject_id == document_id)).all())


def receipts(engine, envelope_id: str) -> list[WebhookEvent]:
    with Session(engine) as session:
        return list(session.exec(select(WebhookEvent).where(WebhookEvent.provider == "docusign",
                                                            WebhookEvent.event_id.contains(envelope_id))).all())


SIGNERS = [{"recipientId": "1", "name": "Maria Garcia", "email": "maria@example.com", "status": "completed"},
           {"recipientId": "2", "name": "Sam Ortiz", "email": "sam@lonestar.example", "status": "sent"}]


def signed(message: dict, key: str = KEY, header: str = "X-DocuSign-Signature-1") -> tuple[bytes, dict[str, str]]:
    body = json.dumps(message).encode()
    return body, {header: sign(key, body), "Content-Type": "application/json"}


def refused_count() -> float:
    return REGISTRY.get_sample_value("dealflow_webhook_events_total",
                                     {"provider": "docusign", "outcome": "refused"}) or 0.0


async def test_a_signed_message_becomes_one_provider_event_for_the_document(client, engine):
    envelope_id = str(uuid.uuid4())
    document = a_document(engine, envelope_id)
    message = connect_message("recipient-completed", envelope_id, recipient_id="1", signers=SIGNERS,
                              generated="2026-12-02T18:05:32.1234567Z")
    body, headers = signed(message)

    response = await client.post(PATH, content=body, headers=headers)

    assert response.status_code == 200, response.text
    event_id = f"docusign:{envelope_id}:recipient-completed:2026-12-02T18:05:32.1234567Z:1"
    assert response.json() == {"status": "applied", "event_id": event_id}
    [event] = events_for(engine, document.id)
    assert (event.tenant_id, event.name, event.event_id, event.workflow_signal) == (
        document.tenant_id, EVENT_NAME, event_id, SIGNAL)
    provider_event = ProviderEvent.model_validate(event.signal_payload)
    assert provider_event.event == EnvelopeEvent.signed and provider_event.recipient_email == "maria@example.com"
    assert provider_event.envelope_id == envelope_id and provider_event.event_id == event_id
    assert provider_event.at.isoformat() == "2026-12-02T18:05:32.123456+00:00"
    [receipt] = receipts(engine, envelope_id)
    assert (receipt.status, receipt.tenant_id, receipt.event_type) == ("applied", document.tenant_id,
                                                                       "recipient-completed")

    again = await client.post(PATH, content=body, headers=headers)  # Connect's retry of the same message
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    assert len(events_for(engine, document.id)) == 1 and len(receipts(engine, envelope_id)) == 1


async def test_any_configured_key_may_match_any_signature_header(client, engine):
    envelope_id = str(uuid.uuid4())
    document = a_document(engine, envelope_id)
    body = json.dumps(connect_message("envelope-voided", envelope_id, status="voided",
                                      voidedReason="Seller withdrew")).encode()
    headers = {"X-DocuSign-Signature-1": sign("a-key-we-do-not-have", body),  # DocuSign signs with each key
               "X-DocuSign-Signature-2": sign(KEY, body), "Content-Type": "application/json"}

    response = await client.post(PATH, content=body, headers=headers)

    assert response.status_code == 200 and response.json()["status"] == "applied"
    [event] = events_for(engine, document.id)
    assert event.signal_payload["event"] == "voided" and event.signal_payload["detail"] == "Seller withdrew"
    # the first configured key alone still verifies (a rotation has both active)
    body2, headers2 = signed(connect_message("envelope-completed", envelope_id, status="completed"), key=OLD_KEY)
    assert (await client.post(PATH, content=body2, headers=headers2)).json()["status"] == "applied"


@pytest.mark.parametrize("case", ["forged", "missing", "altered", "empty"])
async def test_an_unverified_message_is_a_401_problem_and_changes_nothing(client, engine, caplog, case):
    envelope_id = str(uuid.uuid4())
    document = a_document(engine, envelope_id)
    body, headers = signed(connect_message("envelope-completed", envelope_id, status="completed"))
    if case == "forged":
        headers["X-DocuSign-Signature-1"] = sign("guessed-key", body)
    elif case == "missing":
        del headers["X-DocuSign-Signature-1"]
    elif case == "altered":  # signed, then changed on the way
        body = body.replace(b'"completed"', b'"voided"')
    else:
        headers["X-DocuSign-Signature-1"] = ""
    before = refused_count()

    with caplog.at_level(logging.WARNING, logger="dealflow.security"):
        response = await client.post(PATH, content=body, headers=headers)

    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["status"] == 401 and "refused" in response.json()["detail"]
    assert ("missing X-DocuSign-Signature-1" if case == "missing" else "bad signature") in response.json()["detail"]
    assert any("refused docusign webhook" in r.getMessage() for r in caplog.records)
    assert refused_count() == before + 1  # the dashboard's and the alert's count
    assert events_for(engine, document.id) == [] and receipts(engine, envelope_id) == []


async def test_without_any_key_configured_everything_is_refused(database_url, engine, tmp_path):
    app = create_app(connect_settings(database_url, tmp_path, []), engine=engine)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            body, headers = signed(connect_message("envelope-sent", str(uuid.uuid4())))
            response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 401
    assert "DEALFLOW_DOCUSIGN_CONNECT_HMAC_KEYS" in response.json()["detail"]


async def test_an_unknown_envelope_is_acknowledged_and_recorded_as_ignored(client, engine):
    envelope_id = str(uuid.uuid4())
    body, headers = signed(connect_message("envelope-sent", envelope_id))
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    [receipt] = receipts(engine, envelope_id)
    assert receipt.status == "ignored" and envelope_id in receipt.error
    with Session(engine) as session:
        assert session.exec(select(func.count()).select_from(Event).where(
            Event.event_id.contains(envelope_id))).one() == 0


async def test_an_event_documents_do_not_follow_is_acknowledged_as_ignored(client, engine):
    envelope_id = str(uuid.uuid4())
    document = a_document(engine, envelope_id)
    body, headers = signed(connect_message("recipient-resent", envelope_id, recipient_id="2"))
    response = await client.post(PATH, content=body, headers=headers)
    assert response.status_code == 200 and response.json()["status"] == "ignored"
    assert events_for(engine, document.id) == []


async def test_the_first_message_may_beat_the_envelope_id_and_is_matched_by_its_custom_fields(client, engine):
    """envelope-sent can arrive before the workflow stored the envelope id: the envelope's custom fields (ours,
    under DocuSign's HMAC) name the document; another tenant's or another envelope's document is not matched."""
    document = a_document(engine, envelope_id=None)
    envelope_id = str(uuid.uuid4())
    fields = {"dealflow_document_id": document.id, "dealflow_tenant_id": document.tenant_id}
    body, headers = signed(connect_message("envelope-sent", envelope_id, custom_fields=fields))
    assert (await client.post(PATH, content=body, headers=headers)).json()["status"] == "applied"
    [event] = events_for(engine, document.id)
    assert event.signal_payload["event"] == "sent"

    wrong_tenant = {**fields, "dealflow_tenant_id": "someone-else"}
    body, headers = signed(connect_message("envelope-sent", str(uuid.uuid4()), custom_fields=wrong_tenant))
    assert (await client.post(PATH, content=body, headers=headers)).json()["status"] == "ignored"
    other = a_document(engine, envelope_id=str(uuid.uuid4()))  # it has an envelope: not this one
    body, headers = signed(connect_message("envelope-sent", str(uuid.uuid4()), custom_fields={
        "dealflow_document_id": other.id, "dealflow_tenant_id": other.tenant_id}))
    assert (await client.post(PATH, content=body, headers=headers)).json()["status"] == "ignored"
    assert events_for(engine, other.id) == []


@pytest.mark.parametrize("body, field", [
    (b"not json", "body"),
    (b"[1, 2]", "body"),
    (b'{"event": "envelope-sent", "generatedDateTime": "2026-12-02T18:05:32Z"}', "data"),
    (b'{"event": "envelope-sent", "generatedDateTime": "2026-12-02T18:05:32Z", "data": {}}', "data.envelopeId"),
    (b'{"event": "envelope-sent", "generatedDateTime": "yesterday", "data": {"envelopeId": "e"}}',
     "generatedDateTime"),
    (b'{"event": "envelope-sent", "generatedDateTime": "2026-12-02T18:05:32", "data": {"envelopeId": "e"}}',
     "generatedDateTime"),
    (b'{"generatedDateTime": "2026-12-02T18:05:32Z", "data": {"envelopeId": "e"}}', "event"),
    (b'{"event": "envelope-sent", "generatedDateTime": "2026-12-02T18:05:32Z", "data": {"envelopeId": "e", '
     b'"envelopeSummary": []}}', "data.envelopeSummary"),
    (b"[" * 100_000 + b"]" * 100_000, "body"),
])
async def test_a_signed_but_malformed_body_is_a_400_naming_the_field(client, body, field):
    response = await client.post(PATH, content=body, headers={"X-DocuSign-Signature-1": sign(KEY, body),
                                                              "Content-Type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["errors"][0]["field"] == field


def test_the_same_message_20_times_at_once_is_one_event(database_url, engine, module_dir):
    """Real HTTP (uvicorn, 20 connections released together) on the session's database: Postgres when
    DEALFLOW_TEST_DATABASE_URL is set, where the writers really are concurrent."""
    envelope_id = str(uuid.uuid4())
    document = a_document(engine, envelope_id)
    body, headers = signed(connect_message("recipient-completed", envelope_id, recipient_id="2", signers=SIGNERS))

    with uvicorn_api(connect_settings(database_url, module_dir, [KEY])) as base_url:
        responses = released_together(base_url, [lambda c: c.post(PATH, content=body, headers=headers)
                                                 for _ in range(20)])

    assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200]
    assert sorted(r.json()["status"] for r in responses) == ["applied"] + ["duplicate"] * 19
    with Session(engine) as session:
        rows = session.exec(select(func.count()).select_from(Event).where(
            Event.subject_type == "document", Event.subject_id == document.id)).one()
    assert rows == 1
    assert len(receipts(engine, envelope_id)) == 1
