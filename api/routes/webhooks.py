"""Provider webhooks: verified by signature, stored once per provider event id, answered fast.

A bad signature is refused (403) with nothing recorded but a security log line.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time

from fastapi import APIRouter, Query, Request, Response
from pydantic import ValidationError
from sqlmodel import select
from sendgrid.helpers.eventwebhook import EventWebhook
from starlette.concurrency import run_in_threadpool
from twilio.request_validator import RequestValidator
from twilio.twiml.messaging_response import MessagingResponse

from api.deps import SessionDep, SettingsDep, ClientDep
from api.delivery_events import Effects, apply_and_commit, apply_sendgrid_event, apply_twilio_status, claim_event
from api.errors import Problem
from api.inbound_sms import apply_inbound_sms
from api.lead_intake import hold_for_review, lead_fields, receive_lead
from api.security import Principal
from core.metrics import WEBHOOK_EVENTS
from models.lead import LeadCreate
from models.tenant import Role
from models.webhook import WebhookEvent

router = APIRouter(prefix="/api/v1/webhooks", tags=["webhooks"])
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


def _refuse(provider: str, request: Request, reason: str) -> Problem:
    client = request.client.host if request.client else "?"
    security_log.warning("refused %s webhook from %s: %s", provider, client, reason)
    WEBHOOK_EVENTS.labels(provider, "refused").inc()
    return Problem(403, f"{provider} webhook refused: {reason}")


def _public_url(settings, request: Request) -> str:
    """The URL the provider signed: our public base URL + the path and query it called."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{settings.effective_public_url}{request.url.path}{query}"


@router.post("/sendgrid/events")
async def sendgrid_events(request: Request, session: SessionDep, client: ClientDep, settings: SettingsDep):
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

    counts = await run_in_threadpool(apply_and_commit, session, client, apply, settings.temporal_task_queue)
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
async def twilio_inbound_sms(request: Request, session: SessionDep, client: ClientDep, settings: SettingsDep):
    form = await _twilio_form(request, settings)
    outcome, reply = await run_in_threadpool(
        apply_and_commit, session, client, lambda effects: apply_inbound_sms(session, settings, form, effects),
        settings.temporal_task_queue)
    WEBHOOK_EVENTS.labels("twilio_sms", outcome).inc()
    twiml = MessagingResponse()
    if reply and outcome != "duplicate":
        twiml.message(reply)
    return Response(str(twiml), media_type="application/xml")


@router.post("/twilio/status")
async def twilio_status(request: Request, session: SessionDep, client: ClientDep, settings: SettingsDep):
    form = await _twilio_form(request, settings)
    outcome = await run_in_threadpool(
        apply_and_commit, session, client, lambda effects: apply_twilio_status(session, form, effects),
        settings.temporal_task_queue)
    WEBHOOK_EVENTS.labels("twilio_status", outcome).inc()
    return {"status": outcome}


@router.post("/leads/{source}")
async def lead_source_webhook(source: str, request: Request, session: SessionDep, client: ClientDep,
                              settings: SettingsDep, tenant: str = Query(..., max_length=40)):
    """Leads from a source (Zapier, a form builder, a PPC platform), signed with HMAC-SHA256 of the body:
    `X-Dealflow-Signature: sha256=<hex>` with the tenant's secret for that source. Stored once per
    `X-Event-Id` (or body hash). Unreadable leads are kept as needs_review with the reason (202)."""
    body = await request.body()
    secret = settings.lead_source_secrets.get(tenant, {}).get(source)
    if not secret:
        raise _refuse(f"lead_source:{source}", request, f"no secret configured for tenant {tenant!r}")
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, request.headers.get("X-Dealflow-Signature", "")):
        raise _refuse(f"lead_source:{source}", request, "bad signature")
    try:
        payload = json.loads(body)
        if not isinstance(payload, dict):
            raise ValueError("expected a JSON object")
    except ValueError as exc:
        payload, parse_error = {"raw_body": body.decode("utf-8", "replace")[:5000]}, str(exc)
    else:
        parse_error = None
    event_id = request.headers.get("X-Event-Id") or str(payload.get("id") or "") or hashlib.sha256(body).hexdigest()
    principal = Principal(tenant_id=tenant, role=Role.staff, key_id=f"webhook-{source}")

    def claim():
        row = claim_event(session, f"lead_source:{source}", event_id, "lead", payload, tenant)
        if row is None:
            row = session.exec(select(WebhookEvent).where(WebhookEvent.provider == f"lead_source:{source}",
                                                          WebhookEvent.event_id == event_id)).one()
            if row.status != "received":  # done before; "received" means Temporal failed last time: go on
                return None, row.error
        errors = [{"field": "body", "message": parse_error}] if parse_error else None
        if errors is None:
            try:
                return LeadCreate.model_validate(lead_fields(source, payload)), None
            except ValidationError as exc:
                errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body",
                           "message": e["msg"].removeprefix("Value error, ")} for e in exc.errors()]
        lead = hold_for_review(session, tenant, source, payload, errors)
        row.status, row.error = "failed", f"needs_review:{lead.id}"
        session.commit()
        return None, row.error

    lead_body, held = await run_in_threadpool(claim)
    if lead_body is None:
        WEBHOOK_EVENTS.labels("lead_source", "held" if held else "duplicate").inc()
        lead_id = held.split(":", 1)[1] if held and held.startswith("needs_review:") else None
        return Response(json.dumps({"status": "needs_review" if lead_id else "duplicate", "lead_id": lead_id}),
                        status_code=202, media_type="application/json")
    await run_in_threadpool(session.commit)
    lead, duplicate = await receive_lead(session, client, settings, principal, lead_body, channel=f"webhook:{source}")

    def applied() -> None:
        row = session.exec(select(WebhookEvent).where(WebhookEvent.provider == f"lead_source:{source}",
                                                      WebhookEvent.event_id == event_id)).one()
        row.status, row.error = "applied", f"lead:{lead.id}"
        session.add(row)
        session.commit()

    await run_in_threadpool(applied)
    WEBHOOK_EVENTS.labels("lead_source", "duplicate_lead" if duplicate else "lead").inc()
    return Response(json.dumps({"status": "duplicate_of" if duplicate else "created", "lead_id": lead.id,
                                "duplicate_of": lead.duplicate_of}), status_code=200 if duplicate else 201,
                    media_type="application/json")
