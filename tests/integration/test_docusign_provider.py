"""DocuSignProvider: the real docusign-esign SDK against the in-repo fake (tests/fakes/docusign.py) over HTTPS.

What DocuSign receives is checked as DocuSign would (base64 PDF, signers with routing orders and anchor tabs,
eventNotification with HMAC and the events, expirations), the JWT assertion is verified with the public half of
the key the provider signs with, and the token is reused until it nears its end."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta

import pytest

from core.settings import Settings
from providers.base import ProviderError
from providers.documents.pdf import render_document
from providers.esign.base import EnvelopeEvent, EnvelopeRequest, Signer
from providers.esign.docusign import DocuSignProvider, expiry_days, routing_orders
from tests.fakes.docusign import DocuSignFake, rsa_key_pem
from tests.fakes.server import Reply
from tests.unit.test_document_templates import CONTEXT, WHEN

INTEGRATION_KEY, USER_ID, ACCOUNT_ID = "ik-7f3c", "user-2b9e", "acct-55aa"


@pytest.fixture(scope="module")
def signing_key():
    return rsa_key_pem()


@pytest.fixture
def fake(signing_key, tmp_path):
    key, _ = signing_key
    fake = DocuSignFake(integration_key=INTEGRATION_KEY, user_id=USER_ID, account_id=ACCOUNT_ID,
                        public_key=key.public_key(), tls_dir=tmp_path).start()
    yield fake
    fake.stop()


def provider_for(fake: DocuSignFake, pem: str, **overrides) -> DocuSignProvider:
    settings = Settings(esign_provider="docusign", docusign_integration_key=INTEGRATION_KEY,
                        docusign_user_id=USER_ID, docusign_account_id=ACCOUNT_ID, docusign_private_key=pem,
                        docusign_oauth_host=fake.host, docusign_base_url=fake.url,
                        **{"public_url": "https://crm.example.com", "provider_timeout_seconds": 5, **overrides})
    return DocuSignProvider(settings, ca_certs=str(fake.cert_path))


@pytest.fixture
def provider(fake, signing_key) -> DocuSignProvider:
    return provider_for(fake, signing_key[1])


@pytest.fixture(scope="module")
def pdf() -> bytes:
    return render_document("purchase_agreement", CONTEXT, created_at=WHEN).pdf


def request_for(pdf: bytes, document_id: str = "dc_pa1", signing_order: str = "sequential",
                days: float = 10, callback: str | None = None) -> EnvelopeRequest:
    return EnvelopeRequest(
        tenant_id="demo", document_id=document_id, title="Purchase and Sale Agreement", pdf=pdf,
        signers=[Signer(name="Maria Garcia", email="maria@example.com", role="seller", routing_order=1),
                 Signer(name="Sam Ortiz", email="sam@lonestar.example", role="buyer", routing_order=2)],
        signing_order=signing_order, expires_at=datetime.now(UTC) + timedelta(days=days), callback_url=callback)


def test_create_sends_the_envelope_docusign_expects(fake, provider, pdf):
    envelope_id = provider.create_envelope(request_for(pdf, days=9.5))

    [create] = fake.calls("POST", f"/accounts/{ACCOUNT_ID}/envelopes")
    body = create.json()
    assert fake.shape_problem(body) is None
    assert create.headers["authorization"].startswith("Bearer fake-")
    assert fake.envelopes[envelope_id].definition == body
    [document] = body["documents"]
    assert base64.b64decode(document["documentBase64"]) == pdf and document["fileExtension"] == "pdf"
    signers = body["recipients"]["signers"]
    assert [(s["email"], s["routingOrder"], s["roleName"]) for s in signers] == [
        ("maria@example.com", "1", "seller"), ("sam@lonestar.example", "2", "buyer")]
    assert signers[0]["tabs"]["signHereTabs"][0]["anchorString"] == "/sig_seller/"
    assert signers[0]["tabs"]["dateSignedTabs"][0]["anchorString"] == "/date_seller/"
    assert signers[1]["tabs"]["signHereTabs"][0]["anchorString"] == "/sig_buyer/"
    assert signers[0]["tabs"]["signHereTabs"][0]["anchorIgnoreIfNotPresent"] == "false"
    notice = body["eventNotification"]
    assert notice["url"] == "https://crm.example.com/api/v1/webhooks/docusign/connect"
    assert notice["includeHMAC"] == "true" and notice["deliveryMode"] == "SIM"
    assert notice["eventData"] == {"version": "restv2.1", "format": "json",
                                   "includeData": ["recipients", "custom_fields"]}
    assert {"envelope-sent", "recipient-completed", "envelope-completed", "envelope-declined",
            "envelope-voided"} <= set(notice["events"])
    assert body["notification"]["useAccountDefaults"] == "false"
    assert body["notification"]["expirations"] == {"expireEnabled": "true", "expireAfter": "10", "expireWarn": "2"}
    assert body["notification"]["reminders"]["reminderEnabled"] == "false"
    fields = {f["name"]: f["value"] for f in body["customFields"]["textCustomFields"]}
    assert fields == {"dealflow_document_id": "dc_pa1", "dealflow_tenant_id": "demo"}


def test_parallel_signing_puts_every_signer_first_and_the_callback_url_wins(fake, provider, pdf):
    provider.create_envelope(request_for(pdf, signing_order="parallel", callback="https://hooks.example/dc"))
    body = fake.calls("POST", "/envelopes")[-1].json()
    assert [s["routingOrder"] for s in body["recipients"]["signers"]] == ["1", "1"]
    assert body["eventNotification"]["url"] == "https://hooks.example/dc"


def test_the_jwt_grant_is_verified_and_its_token_reused(fake, provider, pdf):
    provider.create_envelope(request_for(pdf, document_id="dc_a"))
    provider.create_envelope(request_for(pdf, document_id="dc_b"))
    provider.remind(next(iter(fake.envelopes)), ["maria@example.com"])

    assert len(fake.calls("POST", "/oauth/token")) == 1  # one grant for five calls
    [claims] = fake.assertions  # verified by the fake with the public half of our key
    assert claims["iss"] == INTEGRATION_KEY and claims["sub"] == USER_ID and claims["aud"] == fake.host
    assert set(claims["scope"].split()) == {"signature", "impersonation"}
    tokens = {r.headers["authorization"] for r in fake.requests if r.path.startswith("/restapi")}
    assert len(tokens) == 1


def test_a_token_near_its_end_is_renewed_and_a_revoked_one_replaced_once(fake, provider, pdf):
    fake.token_lifetime = 2  # renewed at 90% of a short life
    provider.find_envelope("dc_x")
    time.sleep(2.1)
    seen = len(fake.requests)
    provider.find_envelope("dc_x")
    # renewed before the call (not after DocuSign refused the old token)
    assert [(r.method, r.path.rsplit("/", 1)[-1]) for r in fake.requests[seen:]] == [("POST", "token"),
                                                                                    ("GET", "envelopes")]
    fake.token_lifetime = 3600
    fake.revoke_tokens()  # the second token, still in its life for us, is revoked behind our back
    assert provider.find_envelope("dc_x") is None  # a 401, a new token, the same call again
    assert len(fake.calls("POST", "/oauth/token")) == 3
    assert [r.method for r in fake.requests[-3:]] == ["GET", "POST", "GET"]


def test_a_retried_create_returns_the_first_envelope_instead_of_sending_another(fake, provider, pdf):
    request = request_for(pdf, document_id="dc_retry")
    first = provider.create_envelope(request)
    again = provider.create_envelope(request)  # e.g. the first answer was lost and the activity retried

    assert again == first
    assert len(fake.calls("POST", f"/accounts/{ACCOUNT_ID}/envelopes")) == 1
    lookups = fake.calls("GET", f"/accounts/{ACCOUNT_ID}/envelopes")
    assert lookups[-1].query["custom_field"] == ["dealflow_document_id=dc_retry"]
    assert provider.create_envelope(request_for(pdf, document_id="dc_other")) != first
    # a document whose id is part of another's is not mistaken for it (DocuSign's search matches partially)
    longer = provider.create_envelope(request_for(pdf, document_id="dc_p12"))
    shorter = provider.create_envelope(request_for(pdf, document_id="dc_p1"))
    assert shorter != longer and provider.find_envelope("dc_p12") == longer


def test_void_sets_voided_with_the_reason_and_a_second_void_is_quiet(fake, provider, pdf):
    envelope_id = provider.create_envelope(request_for(pdf))
    provider.void(envelope_id, "Seller withdrew")
    [put] = fake.calls("PUT", f"/envelopes/{envelope_id}")
    assert put.json() == {"status": "voided", "voidedReason": "Seller withdrew"}
    assert fake.envelopes[envelope_id].status == "voided"
    provider.void(envelope_id, "Seller withdrew")  # DocuSign refuses a second void: it stays voided, no error


def test_a_completed_envelope_cannot_be_voided_and_says_so(fake, provider, pdf):
    envelope_id = provider.create_envelope(request_for(pdf))
    for email in ("maria@example.com", "sam@lonestar.example"):
        fake.sign(envelope_id, email, "198.51.100.7", "2026-12-02T18:00:00.0000000Z", "2026-12-02T18:01:00.0000000Z")
    with pytest.raises(ProviderError) as refused:
        provider.void(envelope_id, "too late")
    assert not refused.value.retryable and refused.value.code == "cannot_void" and "completed" in str(refused.value)


def test_remind_resends_the_envelope(fake, provider, pdf):
    envelope_id = provider.create_envelope(request_for(pdf))
    provider.remind(envelope_id, ["sam@lonestar.example"])
    [put] = fake.calls("PUT", f"/envelopes/{envelope_id}")
    assert put.query["resend_envelope"] == ["true"] and fake.envelopes[envelope_id].resends == 1


def test_completed_returns_the_signed_pdf_and_each_signers_audit_events(fake, provider, pdf):
    envelope_id = provider.create_envelope(request_for(pdf))
    with pytest.raises(ProviderError) as early:
        provider.completed(envelope_id)
    assert early.value.code == "not_completed" and early.value.retryable
    fake.sign(envelope_id, "maria@example.com", "198.51.100.7", "2026-12-02T18:00:01.1234567Z",
              "2026-12-02T18:02:03.7654321Z")
    fake.sign(envelope_id, "sam@lonestar.example", "192.0.2.44", "2026-12-03T09:15:00.0000000Z",
              "2026-12-03T09:16:30.5000000Z")

    done = provider.completed(envelope_id)

    assert done.signed_pdf == pdf + fake.signed_pdf_suffix
    [download] = fake.calls("GET", f"/envelopes/{envelope_id}/documents/combined")
    assert download.query["certificate"] == ["false"]
    trail = [(e.event, e.recipient_email, e.ip, e.at) for e in done.events]
    assert trail == [
        (EnvelopeEvent.sent, "maria@example.com", "203.0.113.1", trail[0][3]),
        (EnvelopeEvent.delivered, "maria@example.com", "198.51.100.7",
         datetime(2026, 12, 2, 18, 0, 1, 123456, tzinfo=UTC)),
        (EnvelopeEvent.signed, "maria@example.com", "198.51.100.7",
         datetime(2026, 12, 2, 18, 2, 3, 765432, tzinfo=UTC)),
        (EnvelopeEvent.delivered, "sam@lonestar.example", "192.0.2.44", datetime(2026, 12, 3, 9, 15, tzinfo=UTC)),
        (EnvelopeEvent.signed, "sam@lonestar.example", "192.0.2.44",
         datetime(2026, 12, 3, 9, 16, 30, 500000, tzinfo=UTC)),
        (EnvelopeEvent.completed, None, None, datetime(2026, 12, 3, 9, 16, 30, 500000, tzinfo=UTC)),
    ]
    assert len({e.event_id for e in done.events}) == len(done.events)
    assert all(e.envelope_id == envelope_id for e in done.events)


def test_failures_are_clear_and_sorted_into_retryable_or_not(fake, provider, pdf):
    fake.failures.append(Reply(503, {"errorCode": "SERVICE_UNAVAILABLE", "message": "try later"}))
    with pytest.raises(ProviderError) as outage:  # the token grant itself answered 503
        provider.find_envelope("dc_1")
    assert outage.value.retryable
    provider.find_envelope("dc_1")  # a token now
    bad = request_for(pdf, document_id="dc_bad")
    bad.signers[0].email = "maria-at-example"
    with pytest.raises(ProviderError) as refused:  # not worth retrying: the same request is refused again
        provider.create_envelope(bad)
    assert not refused.value.retryable and refused.value.code == "INVALID_EMAIL_ADDRESS_FOR_RECIPIENT"
    assert refused.value.status == 400 and "email address for the recipient is invalid" in str(refused.value)
    fake.failures.append(Reply(500, {"errorCode": "UNSPECIFIED_ERROR", "message": "oops"}))
    with pytest.raises(ProviderError) as failed:
        provider.find_envelope("dc_1")
    assert failed.value.retryable and failed.value.status == 500


def test_a_timeout_is_retryable(fake, signing_key, pdf):
    provider = provider_for(fake, signing_key[1], provider_timeout_seconds=0.5)
    provider.find_envelope("dc_1")
    fake.hold.clear()  # the next answer waits past the timeout
    try:
        with pytest.raises(ProviderError) as slow:
            provider.find_envelope("dc_1")
    finally:
        fake.hold.set()
    assert slow.value.retryable and slow.value.code == "unreachable"


def test_consent_and_key_problems_are_final_and_say_what_to_do(fake, signing_key, pdf):
    fake.consent_given = False
    with pytest.raises(ProviderError) as consent:
        provider_for(fake, signing_key[1]).find_envelope("dc_1")
    assert not consent.value.retryable and consent.value.code == "consent_required"
    assert f"https://{fake.host}/oauth/auth?response_type=code&scope=signature+impersonation" in str(consent.value)
    fake.consent_given = True

    _, other_pem = rsa_key_pem()  # a key pair DocuSign does not know
    with pytest.raises(ProviderError) as unknown_key:
        provider_for(fake, other_pem).find_envelope("dc_1")
    assert not unknown_key.value.retryable and unknown_key.value.status == 400

    with pytest.raises(ProviderError) as not_a_key:
        provider_for(fake, "-----BEGIN RSA PRIVATE KEY-----\nnope\n-----END RSA PRIVATE KEY-----")
    assert "DEALFLOW_DOCUSIGN_PRIVATE_KEY" in str(not_a_key.value)


def test_the_private_key_may_be_a_path_or_escaped_pem(fake, signing_key, tmp_path):
    path = tmp_path / "docusign.pem"
    path.write_text(signing_key[1])
    provider_for(fake, str(path)).find_envelope("dc_1")
    provider_for(fake, signing_key[1].replace("\n", "\\n")).find_envelope("dc_1")
    assert len(fake.assertions) == 2


def test_routing_and_expiry_rules():
    now = datetime(2027, 1, 1, tzinfo=UTC)
    assert expiry_days(now + timedelta(hours=1), now) == 1
    assert expiry_days(now + timedelta(days=7), now) == 7
    assert expiry_days(now + timedelta(days=7, seconds=1), now) == 8
    assert expiry_days(now + timedelta(days=5000), now) == 999
    same = EnvelopeRequest(tenant_id="t", document_id="d", title="x", pdf=b"%PDF", expires_at=now,
                           signers=[Signer(name="a", email="a@x.io", role="a"), Signer(name="b", email="b@x.io",
                                                                                      role="b")])
    assert routing_orders(same) == [1, 2]  # sequential with the defaults left: in list order
    assert routing_orders(same.model_copy(update={"signing_order": "parallel"})) == [1, 1]
