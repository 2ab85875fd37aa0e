"""Apply provider events to messages, consent, lead workflows and definitions — once per provider event id.

Called by the webhook routes after signature checks. Every provider event is stored in `webhook_events`
(unique per provider + event id) in the same transaction as its effects AND the outbox events that tell the
lead's workflow and the definitions (models.event), so a duplicate delivery finds the row and changes
nothing, and nothing accepted is lost when Temporal is down: the relay delivers the events later.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db import is_unique_violation
from models.base import utcnow
from models.consent import record_consent
from models.event import emit
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
class OutboxEvent:
    tenant_id: str
    subject_type: str  # lead, investor, deal
    subject_id: str
    name: str
    event_id: str
    data: dict[str, Any]
    signal: str | None = None  # the LeadWorkflow signal that carries it, if the lead's workflow must hear it
    payload: LeadEvent | None = None


@dataclass
class Effects:
    """The events the change must emit, written in its transaction by `apply_and_commit`."""

    events: list[OutboxEvent] = field(default_factory=list)

    def add(self, tenant_id: str, subject_type: str, subject_id: str, name: str, event_id: str,
            data: dict[str, Any], signal: str | None = None, payload: LeadEvent | None = None) -> None:
        self.events.append(OutboxEvent(tenant_id, subject_type, subject_id, name, event_id, data, signal, payload))


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
        effects.add(message.tenant_id, *subject, _MESSAGE_EVENTS[status], event_id,
                    {"message_id": message.id, "channel": message.channel, "template": message.template})


def opt_out(session: Session, effects: Effects, tenant_id: str, channel: str, address: str, source: str,
            event_id: str, evidence: dict[str, Any]) -> None:
    """Record the opt-out and stop every cadence of every lead (and investor) at that address."""
    record_consent(session, ConsentChange(tenant_id=tenant_id, channel=channel, address=address,
                                          status="opted_out", source=source, evidence=evidence))
    for lead in leads_at(session, tenant_id, channel, address):
        effects.add(tenant_id, "lead", lead.id, "lead.opted_out", event_id, {"channel": channel},
                    signal="opted_out", payload=LeadEvent(
                        event_id=event_id, actor=f"webhook:{source}", note=f"Opted out of {channel} ({source})",
                        data={"channel": channel, "address": address, **evidence}))
    for investor in investors_at(session, tenant_id, channel, address):
        effects.add(tenant_id, "investor", investor.id, "investor.opted_out", event_id, {"channel": channel})


def leads_at(session: Session, tenant_id: str, channel: str, address: str) -> list[Lead]:
    column = Lead.email if channel == "email" else Lead.phone
    leads = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, column == address,
                                            col(Lead.deleted_at).is_(None))).all()
    # One workflow per person: a duplicate stands for its original, whose workflow and definitions hear it.
    seen, unique = set(), []
    for lead in leads:
        canonical = session.get(Lead, lead.duplicate_of) if lead.duplicate_of else lead
        if canonical is not None and canonical.id not in seen:
            seen.add(canonical.id)
            unique.append(canonical)
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


def apply_and_commit(session: Session, apply: Callable[[Effects], T]) -> T:
    """Blocking (run it in a worker thread): apply the change, write its events, commit — one transaction."""
    effects = Effects()
    try:
        result = apply(effects)
        # Grouped by subject (stable: a subject's events keep their order): `emit` locks each subject on Postgres,
        # and two transactions taking the same subjects' locks in different orders could deadlock.
        for e in sorted(effects.events, key=lambda e: (e.subject_type, e.subject_id)):
            emit(session, tenant_id=e.tenant_id, subject_type=e.subject_type, subject_id=e.subject_id, name=e.name,
                 event_id=e.event_id, data=e.data, workflow_signal=e.signal,
                 signal_payload=e.payload.model_dump() if e.payload else None)
        session.commit()
    except BaseException:
        session.rollback()
        raise
    return result
