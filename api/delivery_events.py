"""Apply provider events to messages, consent, lead workflows and definitions — once per provider event id.

Called by the webhook routes after signature checks. Every event is stored in `webhook_events`
(unique per provider + event id) in the same transaction as its effects, so a duplicate delivery finds
the row and changes nothing; workflow signals carry the event id, so a retried delivery after a failed
commit is ignored by the workflow too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import anyio

from sqlalchemy.exc import IntegrityError
from temporalio.service import RPCError, RPCStatusCode
from sqlmodel import Session, col, select

from api.errors import Problem
from core.db import is_unique_violation
from models.base import utcnow
from models.consent import record_consent
from models.investor import Investor
from models.lead import Lead
from models.message import Message
from models.payloads import ConsentChange, LeadEvent
from models.timeline import add_message_entry
from models.webhook import WebhookEvent

log = logging.getLogger("dealflow.webhooks")
T = TypeVar("T")

# Delivery progress only moves forward; a failure is final.
PROGRESS = {"pending": 0, "sending": 1, "queued": 2, "sent": 3, "delivered": 4, "opened": 5, "clicked": 6}
FAILURES = {"bounced", "failed", "undelivered", "suppressed"}
SENDGRID_STATUS = {"delivered": "delivered", "open": "opened", "click": "clicked", "bounce": "bounced",
                   "dropped": "failed"}
SENDGRID_OPT_OUT = {"unsubscribe", "group_unsubscribe", "spamreport"}
TWILIO_STATUS = {"queued": "queued", "sending": "sending", "sent": "sent", "delivered": "delivered",
                 "undelivered": "undelivered", "failed": "failed", "read": "opened"}


@dataclass
class Effects:
    """What the caller must still do outside the DB transaction: signal lead workflows, tell definitions."""

    signals: list[tuple[str, str, LeadEvent]] = field(default_factory=list)  # (workflow_id, signal, event)
    # (subject kind "lead" or "investor", its id, event name, event id, data)
    subject_events: list[tuple[str, str, str, str, dict]] = field(default_factory=list)


def claim_event(session: Session, provider: str, event_id: str, event_type: str, payload: dict[str, Any],
                tenant_id: str | None) -> WebhookEvent | None:
    """Insert the event row; None when this provider event was already received."""
    row = WebhookEvent(provider=provider, event_id=event_id[:300], event_type=event_type[:64], payload=payload,
                       tenant_id=tenant_id)
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        return None
    return row


def advance_status(message: Message, status: str, at: datetime) -> bool:
    current = message.status
    if status in FAILURES:
        if current in FAILURES:
            return False
    elif current in FAILURES or PROGRESS.get(status, -1) <= PROGRESS.get(current, -1):
        return False
    message.status = status
    if status == "delivered" and message.delivered_at is None:
        message.delivered_at = at
    return True


# Delivery outcomes definitions can wait for or be triggered by (definitions.language.EVENTS).
_MESSAGE_EVENTS = {"delivered": "message.delivered", "opened": "message.opened", "clicked": "message.clicked",
                   "bounced": "message.bounced"}


def _tell_definitions(effects: Effects, message: Message, status: str, event_id: str) -> None:
    subject = ("lead", message.lead_id) if message.lead_id else ("investor", message.investor_id)
    if subject[1] and status in _MESSAGE_EVENTS:
        effects.subject_events.append((*subject, _MESSAGE_EVENTS[status], event_id,
                                       {"message_id": message.id, "channel": message.channel,
                                        "template": message.template}))


def opt_out(session: Session, effects: Effects, tenant_id: str, channel: str, address: str, source: str,
            event_id: str, evidence: dict[str, Any]) -> None:
    """Record the opt-out and stop every cadence of every lead (and investor) at that address."""
    record_consent(session, ConsentChange(tenant_id=tenant_id, channel=channel, address=address,
                                          status="opted_out", source=source, evidence=evidence))
    for lead in leads_at(session, tenant_id, channel, address):
        if lead.workflow_id:
            effects.signals.append((lead.workflow_id, "opted_out", LeadEvent(
                event_id=event_id, actor=f"webhook:{source}", note=f"Opted out of {channel} ({source})",
                data={"channel": channel, "address": address, **evidence})))
        effects.subject_events.append(("lead", lead.id, "lead.opted_out", event_id, {"channel": channel}))
    for investor in investors_at(session, tenant_id, channel, address):
        effects.subject_events.append(("investor", investor.id, "investor.opted_out", event_id, {"channel": channel}))


def leads_at(session: Session, tenant_id: str, channel: str, address: str) -> list[Lead]:
    column = Lead.email if channel == "email" else Lead.phone
    leads = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, column == address,
                                            col(Lead.deleted_at).is_(None))).all()
    # One workflow per person: duplicates share the original's workflow id.
    seen, unique = set(), []
    for lead in leads:
        if lead.workflow_id not in seen:
            seen.add(lead.workflow_id)
            unique.append(lead)
    return unique


def investors_at(session: Session, tenant_id: str, channel: str, address: str) -> list[Investor]:
    column = Investor.email if channel == "email" else Investor.phone
    return list(session.exec(select(Investor).where(Investor.tenant_id == tenant_id, column == address)).all())


def apply_sendgrid_event(session: Session, event: dict[str, Any], effects: Effects) -> str:
    """One SendGrid event. Returns the stored status: applied, duplicate or ignored."""
    event_id = str(event.get("sg_event_id") or "")
    kind = str(event.get("event") or "")
    if not event_id:
        return "ignored"
    message = None
    if event.get("dealflow_message_id"):
        message = session.get(Message, str(event["dealflow_message_id"]))
    row = claim_event(session, "sendgrid", event_id, kind, event, message.tenant_id if message else None)
    if row is None:
        return "duplicate"
    if message is None:
        row.status, row.error = "ignored", "no dealflow_message_id custom arg matching a message"
        return "ignored"
    at = datetime.fromtimestamp(int(event.get("timestamp") or 0), UTC) if event.get("timestamp") else utcnow()
    message.events = [*message.events, {"provider": "sendgrid", "event": kind, "at": at.isoformat(),
                                        "event_id": event_id, "reason": event.get("reason")}]
    status = SENDGRID_STATUS.get(kind)
    if status == "bounced" and event.get("type") == "blocked":
        status = None  # a block is temporary (reputation), not a bad address
    if status and advance_status(message, status, at):
        if status in FAILURES:
            message.error_code, message.error_message = kind, str(event.get("reason") or kind)[:500]
        add_message_entry(session, message, f"message.{status}", f"Email {status}",
                          {"reason": event.get("reason")})
        _tell_definitions(effects, message, status, event_id)
    if kind in SENDGRID_OPT_OUT or (kind == "bounce" and event.get("type") != "blocked"):
        opt_out(session, effects, message.tenant_id, "email", message.to_address, f"sendgrid_{kind}", event_id,
                {"provider": "sendgrid", "event": kind, "sg_event_id": event_id})
        add_message_entry(session, message, f"message.{kind}", f"Email {kind}: opted out", {})
    session.add(message)
    row.status, row.processed_at = "applied", utcnow()
    return "applied"


def apply_twilio_status(session: Session, form: dict[str, str], effects: Effects) -> str:
    sid, status_name = form.get("MessageSid", ""), form.get("MessageStatus", "")
    if not sid or not status_name:
        return "ignored"
    message = session.exec(select(Message).where(Message.provider_message_id == sid)).first()
    row = claim_event(session, "twilio", f"{sid}:{status_name}", f"status.{status_name}", form,
                      message.tenant_id if message else None)
    if row is None:
        return "duplicate"
    if message is None:
        row.status, row.error = "ignored", f"no message with provider id {sid}"
        return "ignored"
    now = utcnow()
    message.events = [*message.events, {"provider": "twilio", "event": status_name, "at": now.isoformat(),
                                        "error_code": form.get("ErrorCode")}]
    status = TWILIO_STATUS.get(status_name)
    if status and advance_status(message, status, now):
        if status in FAILURES:
            message.error_code = form.get("ErrorCode") or status
            message.error_message = f"Twilio reported {status_name}" + (
                f" (error {form['ErrorCode']})" if form.get("ErrorCode") else "")
        if status in ("delivered", "undelivered", "failed"):
            add_message_entry(session, message, f"message.{status}", f"SMS {status}",
                              {"error_code": form.get("ErrorCode")})
            _tell_definitions(effects, message, status, f"{sid}:{status_name}")
    if form.get("ErrorCode") == "21610":
        opt_out(session, effects, message.tenant_id, "sms", message.to_address, "twilio_21610", sid,
                {"provider": "twilio", "error_code": "21610"})
    session.add(message)
    row.status, row.processed_at = "applied", utcnow()
    return "applied"


def apply_and_commit(session: Session, client, apply: Callable[[Effects], T], task_queue: str | None = None) -> T:
    """Run in a worker thread: apply the effects, signal the workflows (on the event loop), then commit.

    The transaction stays open until the signals went out, so a failed signal rolls everything back and
    the provider's retry re-applies it (each signal carries the event id: a repeat is harmless). Nothing
    here waits for a free thread while holding the database lock.
    """
    effects = Effects()
    try:
        result = apply(effects)
        session.flush()
        for workflow_id, signal, event in effects.signals:
            try:
                anyio.from_thread.run(_signal, client, workflow_id, signal, event)
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:  # a closed workflow has nothing left to stop
                    raise Problem(503, f"could not reach workflow {workflow_id}; retry") from exc
        session.commit()
    except BaseException:
        session.rollback()
        raise
    if task_queue:  # definitions react to the same events (their own transaction, after ours)
        from definitions.enrollment import SUBJECT_MODELS, on_subject_event

        for kind, subject_id, name, event_id, data in effects.subject_events:
            subject = session.get(SUBJECT_MODELS[kind], subject_id)
            if subject is not None:
                on_subject_event(session, client, task_queue, kind, subject, name, event_id, data)
    return result


async def _signal(client, workflow_id: str, signal: str, event: LeadEvent) -> None:
    await client.get_workflow_handle(workflow_id).signal(signal, event)
