"""Provider webhooks: verified by signature, stored once per provider event id, answered fast.

A bad signature is refused (403; DocuSign Connect: 401) with nothing stored: a `dealflow.security` log line and the
`dealflow_webhook_events_total{outcome="refused"}` count record it (dashboard panel and alert).
"""

from __future__ import annotations

import base64
import hmac
import json
import logging
import time

from fastapi import APIRouter, Query, Request, Response
from sendgrid.helpers.eventwebhook import EventWebhook
from standardwebhooks import Webhook
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import SessionDep, SettingsDep
from api.errors import Problem
from core.metrics import WEBHOOK_EVENTS
from providers.esign.docusign_connect import MalformedMessage, parse_message, signature_headers, signature_matches
from services.delivery_events import Effects, apply_and_commit, apply_sendgrid_event, apply_twilio_status
from services.docusign_connect import receive_connect_message
from services.inbound_email import apply_inbound_email, parse_inbound
from services.inbound_sms import apply_inbound_sms, keyword
from services.reply_intent import classify_reply
from services.lead_intake import receive_source_lead

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
INBOUND_EMAIL_PATH = "/api/v1/webhooks/sendgrid/inbound"
security_log = logging.getLogger("dealflow.security")

SENDGRID_SIGNATURE = "X-Twilio-Email-Event-Webhook-Signature"
SENDGRID_TIMESTAMP = "X-Twilio-Email-Event-Webhook-Timestamp"


def verify_sendgrid(public_key: str, payload: bytes, signature: str, timestamp: str) -> bool:
    """SendGrid's ECDSA check (the SDK's EventWebhook) over timestamp + raw body."""
    try:
        webhook = EventWebhook()
        key = webhook.convert_public_key_to_ecdsa(public_key)
        return bool(webhook.verify_signature(payload.decode("utf-8"), signature, timestamp, key))
    except Exception:  # noqa: BLE001 - malformed key or signature is a failed check
        return False


def verify_twilio(auth_token: str, url: str, params: dict[str, str], signature: str) -> bool:
    return RequestValidator(auth_token).validate(url, params, signature)


def _refuse(provider: str, request: Request, reason: str, public: str | None = None) -> Problem:
    """403. The log keeps the reason; the caller is told `public` when the reason would tell it something it
    should not learn (which tenants exist, which sources they configured)."""
    client = request.client.host if request.client else "?"
    security_log.warning("refused %s webhook from %s: %s", provider, client, reason)
    WEBHOOK_EVENTS.labels(provider, "refused").inc()
    return Problem(403, f"{provider} webhook refused: {public or reason}")


def _public_url(settings, request: Request) -> str:
    """The URL the provider signed: our public base URL + the path and query it called."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.effective_public_url}{request.url.path}{query}"


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request, session: SessionDep, settings: SettingsDep):
    body = await request.body()
    signature, timestamp = request.headers.get(SENDGRID_SIGNATURE), request.headers.get(SENDGRID_TIMESTAMP)
    if not settings.sendgrid_webhook_public_key:
        raise _refuse("sendgrid", request, "no verification key configured (DEALFLOW_SENDGRID_WEBHOOK_PUBLIC_KEY)")
    if not signature or not timestamp:
        raise _refuse("sendgrid", request, "missing signature headers")
    if not verify_sendgrid(settings.sendgrid_webhook_public_key, body, signature, timestamp):
        raise _refuse("sendgrid", request, "bad signature")
    if settings.webhook_max_age_seconds and (not timestamp.isdigit() or
                                             abs(time.time() - int(timestamp)) > settings.webhook_max_age_seconds):
        raise _refuse("sendgrid", request, "timestamp outside the replay window")
    try:
        events = json.loads(body)
        if not isinstance(events, list):
            raise ValueError("expected a JSON array of events")
    except ValueError as exc:
        raise Problem(400, f"invalid SendGrid payload: {exc}") from None

    def apply(effects: Effects) -> dict[str, int]:
        counts: dict[str, int] = {}
        for event in events:
            outcome = apply_sendgrid_event(session, event, effects) if isinstance(event, dict) else "ignored"
            counts[outcome] = counts.get(outcome, 0) + 1
        return counts

    counts = await run_in_threadpool(apply_and_commit, session, apply)
    for outcome, n in counts.items():
        WEBHOOK_EVENTS.labels("sendgrid", outcome).inc(n)
    return {"received": len(events), **counts}


async def _twilio_form(request: Request, settings) -> dict[str, str]:
    form = {k: str(v) for k, v in (await request.form()).items()}
    if not settings.twilio_auth_token:
        raise _refuse("twilio", request, "no auth token configured (DEALFLOW_TWILIO_AUTH_TOKEN)")
    signature = request.headers.get("X-Twilio-Signature")
    if not signature:
        raise _refuse("twilio", request, "missing X-Twilio-Signature")
    if not verify_twilio(settings.twilio_auth_token, _public_url(settings, request), form, signature):
        raise _refuse("twilio", request, "bad signature")
    return form


@router.post("/twilio/sms")
async def twilio_inbound_sms(request: Request, session: SessionDep, settings: SettingsDep):
    form = await _twilio_form(request, settings)
    text = form.get("Body", "")
    # Classified before the transaction: an LLM's answer can take seconds, which no transaction should wait on
    intent = None if keyword(text) or not text.strip() else await run_in_threadpool(classify_reply, settings, text)
    outcome, reply = await run_in_threadpool(
        apply_and_commit, session, lambda effects: apply_inbound_sms(session, settings, form, effects, intent))
    WEBHOOK_EVENTS.labels("twilio_sms", outcome).inc()
    twiml = MessagingResponse()
    if reply and outcome != "duplicate":
        twiml.message(reply)
    return Response(str(twiml), media_type="application/xml")


@router.post("/sendgrid/inbound")
async def sendgrid_inbound_email(request: Request, session: SessionDep, settings: SettingsDep):
    """A reply to one of our emails (SendGrid Inbound Parse, default format: the parsed fields, not raw MIME).
    Authenticated by the HTTP Basic password in its destination URL (DEALFLOW_SENDGRID_INBOUND_PASSWORD);
    attachments are not kept. 200 `{status}`: reply, opt_out, unknown_sender or duplicate (a retry)."""
    if not settings.sendgrid_inbound_password:
        raise _refuse("sendgrid_inbound", request, "no password configured (DEALFLOW_SENDGRID_INBOUND_PASSWORD)")
    if not _basic_password_matches(request.headers.get("Authorization", ""), settings.sendgrid_inbound_password):
        refused = _refuse("sendgrid_inbound", request, "wrong or missing Basic credentials")
        # 401 with the challenge: a client that sends a URL's credentials only when asked is asked
        raise Problem(401, refused.detail, headers={"WWW-Authenticate": 'Basic realm="inbound email"'})
    async with request.form(max_files=1000, max_fields=1000, max_part_size=MAX_INBOUND_PART) as raw:
        form = {k: v for k, v in raw.items() if isinstance(v, str)}  # attachments (files) are not kept
    try:
        email = parse_inbound({k: v.replace("\x00", "") for k, v in form.items()})
    except ValueError as exc:
        raise Problem(422, f"not an inbound email: {exc}", errors=[{"field": "from", "message": str(exc)}]) from None
    intent = await run_in_threadpool(classify_reply, settings, email.text) if email.text else None
    outcome = await run_in_threadpool(
        apply_and_commit, session, lambda effects: apply_inbound_email(session, settings, email, effects, intent))
    WEBHOOK_EVENTS.labels("sendgrid_inbound", outcome).inc()
    return {"status": outcome}


MAX_INBOUND_PART = 10 * 1_048_576  # one text or html part of an email (attachments are files: not limited here)


def _basic_password_matches(header: str, password: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        _, _, given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        return False
    return hmac.compare_digest(given.encode(), password.encode())


@router.post("/twilio/status")
async def twilio_status(request: Request, session: SessionDep, settings: SettingsDep):
    form = await _twilio_form(request, settings)
    outcome = await run_in_threadpool(
        apply_and_commit, session, lambda effects: apply_twilio_status(session, form, effects))
    WEBHOOK_EVENTS.labels("twilio_status", outcome).inc()
    return {"status": outcome}


def verify_lead_source(secret: str, body: bytes, headers) -> str | None:
    """The Standard Webhooks scheme (standardwebhooks.com): `webhook-signature: v1,<base64 HMAC-SHA256>` over
    `{webhook-id}.{webhook-timestamp}.{body}`, refused more than 5 minutes off our clock. Returns the reason
    it is refused, or None. A `whsec_` secret is base64 (as Svix and the spec issue them); any other is used
    as its UTF-8 bytes."""
    try:
        Webhook(secret if secret.startswith("whsec_") else secret.encode()).verify(body, dict(headers),
                                                                                   json_parse=False)
    except Exception as exc:  # noqa: BLE001 - malformed headers, bad base64, non-UTF-8 body: all a failed check
        return str(exc) or type(exc).__name__
    return None


@router.post("/leads/{source}")
async def lead_source_webhook(source: str, request: Request, session: SessionDep, settings: SettingsDep,
                              tenant: str = Query(..., max_length=40)):
    """Leads from a source (Zapier, a form builder, a PPC platform), signed the Standard Webhooks way with the
    tenant's secret for that source (`webhook-id`, `webhook-timestamp`, `webhook-signature`). Stored once per
    `webhook-id`, even while the first request with that id is still in flight (the database decides).
    Unreadable leads are kept as needs_review with the reason (202)."""
    body = await request.body()
    secret = settings.lead_source_secrets.get(tenant, {}).get(source)
    # An unknown tenant or source is refused exactly like a bad signature: the answer must not tell a prober
    # which tenants exist (the log says which it was).
    unverified = "the signature could not be verified"
    if not secret:
        raise _refuse(f"lead_source:{source}", request, f"no secret configured for tenant {tenant!r}", unverified)
    refused = verify_lead_source(secret, body, request.headers)
    if refused:
        raise _refuse(f"lead_source:{source}", request, f"bad signature ({refused})", unverified)
    event_id = request.headers["webhook-id"][:300]
    outcome = await run_in_threadpool(receive_source_lead, session, tenant, source, event_id, body)
    WEBHOOK_EVENTS.labels("lead_source", outcome.status).inc()
    payload = {"status": outcome.status, "lead_id": outcome.lead_id}
    if outcome.duplicate_of:
        payload["duplicate_of"] = outcome.duplicate_of
    return Response(json.dumps(payload), status_code=outcome.http_status, media_type="application/json")


def _refuse_connect(request: Request, reason: str) -> Problem:
    """401: Connect authenticates by its HMAC signature alone, and this one did not authenticate."""
    client = request.client.host if request.client else "?"
    security_log.warning("refused docusign webhook from %s: %s", client, reason)
    WEBHOOK_EVENTS.labels("docusign", "refused").inc()
    return Problem(401, f"docusign webhook refused: {reason}",
                   headers={"WWW-Authenticate": 'HMAC-SHA256 realm="X-DocuSign-Signature-1"'})


@router.post("/docusign/connect")
async def docusign_connect(request: Request, session: SessionDep, settings: SettingsDep):
    """DocuSign Connect, JSON SIM (restv2.1), with HMAC on: `X-DocuSign-Signature-1..N` = base64(HMAC-SHA256(key,
    raw body)) for each of the account's active keys; any key of DEALFLOW_DOCUSIGN_CONNECT_HMAC_KEYS may match
    (none configured: everything is refused). Stored once per envelope + event + generatedDateTime (+ recipient)
    and put on the event path for the document's DocumentSigningWorkflow; an envelope we do not know is
    acknowledged (200, `ignored`) so DocuSign stops retrying it."""
    body = await request.body()
    keys = [key for key in settings.docusign_connect_hmac_keys if key]
    if not keys:
        raise _refuse_connect(request, "no Connect HMAC key is configured (DEALFLOW_DOCUSIGN_CONNECT_HMAC_KEYS), "
                                       "so no message can be verified")
    signatures = signature_headers(request.headers)
    if not signatures:
        raise _refuse_connect(request, "missing X-DocuSign-Signature-1 (turn HMAC on for Connect)")
    if not signature_matches(keys, body, signatures):
        raise _refuse_connect(request, "bad signature")
    try:
        payload = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Problem(400, f"invalid DocuSign Connect message: not JSON ({exc.__class__.__name__})",
                      errors=[{"field": "body", "message": "not JSON"}]) from None
    try:
        message = parse_message(payload)
    except MalformedMessage as exc:
        raise Problem(400, f"invalid DocuSign Connect message: {exc}",
                      errors=[{"field": exc.field, "message": exc.message}]) from None
    outcome = await run_in_threadpool(receive_connect_message, session, message, payload)
    WEBHOOK_EVENTS.labels("docusign", outcome).inc()
    return {"status": outcome, "event_id": message.event_id}
