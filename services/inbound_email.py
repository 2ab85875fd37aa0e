"""Inbound email: a reply to one of our emails, as SendGrid's Inbound Parse posts it (issue 13).

The new text of the reply (the quoted thread cut off by email-reply-parser) is classified like an SMS reply; a
revocation in plain words ("please take me off your list") or an "unsubscribe" subject opts the address out of
email, exactly as the unsubscribe link does, and stops the sender's cadences; anything else is a reply that leads'
workflows and definitions hear (`lead.replied`, `investor.replied`) and that the inbox shows with its intent.
Each email is applied once, by its Message-ID (a provider retry or a replay changes nothing).
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from email.utils import getaddresses, parseaddr

from email_reply_parser import EmailReplyParser
from sqlalchemy import or_
from sqlmodel import Session, col, func, select

from core.db import like_pattern
from core.settings import Settings
from definitions.vocabulary import ReplyIntent
from models.base import utcnow
from models.message import Message
from models.tenant import Tenant
from scoring.intent import Intent
from services.delivery_events import Effects, claim_event, investors_at, leads_at, opt_out
from services.inbound_sms import record_received, tell_replied
from services.reply_intent import classify_reply, record_intent

# The whole subject (after any "Re:"): "Unsubscribe", "Remove me", "STOP!" — not "Stop by Friday?"
UNSUBSCRIBE_SUBJECT = re.compile(r"^\s*(re:\s*)*(unsubscribe|remove me|stop)\s*[.!]*\s*$", re.IGNORECASE)
MAX_TEXT = 20_000
MAX_RECIPIENTS = 20
MAX_ADDRESS = 254  # RFC 5321's longest path


@dataclass(frozen=True)
class InboundEmail:
    message_id: str
    sender: str  # the address, lower case
    to: list[str]
    subject: str
    text: str  # the new text only (no quoted thread)
    authenticated: bool = True  # SendGrid saw SPF or DKIM pass for the sender's domain


    @property
    def asks_to_unsubscribe(self) -> bool:
        return bool(UNSUBSCRIBE_SUBJECT.match(self.subject))


def parse_inbound(form: dict[str, str]) -> InboundEmail:
    """Inbound Parse's fields (`from`, `to`, `subject`, `text`, `html`, `headers`, `envelope`) as one email.
    Raises ValueError naming the field when there is no sender."""
    try:
        envelope = json.loads((form.get("envelope") or "{}")[:10_000])
    except (ValueError, RecursionError):
        envelope = {}
    envelope = envelope if isinstance(envelope, dict) else {}
    sender = parseaddr(form.get("from", ""))[1] or str(envelope.get("from") or "")
    if "@" not in sender:
        raise ValueError("from: no sender address")
    if len(sender) > MAX_ADDRESS:
        raise ValueError(f"from: an address longer than {MAX_ADDRESS} characters")
    listed = envelope.get("to") if isinstance(envelope.get("to"), list) else []
    recipients = [address.lower() for _, address in getaddresses([form.get("to", "")[:10_000]]) if "@" in address]
    recipients += [str(a).lower() for a in listed if "@" in str(a)]
    recipients = [a for a in recipients if len(a) <= MAX_ADDRESS][:MAX_RECIPIENTS]
    headers = form.get("headers", "")
    found = re.search(r"^Message-ID:\s*(<[^>\r\n]+>)", headers, re.IGNORECASE | re.MULTILINE)
    text = form.get("text") or re.sub(r"<[^>]+>", " ", form.get("html", ""))
    reply = EmailReplyParser.parse_reply(text[:MAX_TEXT]).strip() if text.strip() else ""
    # Without a Message-ID the email's own content is its identity (a retry posts the same fields).
    message_id = found.group(1) if found else "sha256:" + hashlib.sha256(
        "\n".join((sender, form.get("subject", ""), text)).encode()).hexdigest()
    authenticated = (form.get("SPF") or "").strip().lower() == "pass" or "pass" in (form.get("dkim") or "").lower()
    return InboundEmail(message_id=message_id[:200], sender=sender.lower(), to=list(dict.fromkeys(recipients)),
                        subject=(form.get("subject") or "")[:300], text=reply[:MAX_TEXT],
                        authenticated=authenticated)


def tenant_for(session: Session, settings: Settings, email: InboundEmail) -> str | None:
    """The tenant whose sending address the email was written to; else the one that last emailed the sender (a
    reply to a tenant sending from the shared address); else the default tenant, when it exists."""
    for address in email.to:
        owner = session.exec(select(Tenant.id).where(or_(
            func.lower(Tenant.email_from).like(f"%<{like_pattern(address)[1:-1]}>", escape="\\"),
            func.lower(Tenant.email_from) == address))).first()
        if owner:
            return owner
    wrote = session.exec(select(Message.tenant_id).where(
        Message.channel == "email", Message.direction == "outbound", Message.to_address == email.sender)
        .order_by(col(Message.created_at).desc())).first()
    if wrote:
        return wrote
    return settings.default_tenant if session.get(Tenant, settings.default_tenant) is not None else None


def apply_inbound_email(session: Session, settings: Settings, email: InboundEmail, effects: Effects,
                        intent: Intent | None = None) -> str:
    """`duplicate`, `opt_out`, `reply` or `unknown_sender`. `intent`, when the caller classified the text already
    (outside the transaction: an LLM may take seconds)."""
    tenant_id = tenant_for(session, settings, email)
    row = claim_event(session, "sendgrid", f"{email.message_id}:inbound", "inbound",
                      {"from": email.sender, "to": email.to, "subject": email.subject, "text": email.text[:2000]},
                      tenant_id)
    if row is None:
        return "duplicate"
    if tenant_id is None:  # kept as the webhook event (GET nothing yet: the log names it), for no tenant of ours
        row.status, row.processed_at = "unknown_recipient", utcnow()
        return "unknown_recipient"
    leads = leads_at(session, tenant_id, "email", email.sender)
    investors = investors_at(session, tenant_id, "email", email.sender)
    message = Message(tenant_id=tenant_id, lead_id=leads[0].id if leads else None,
                      investor_id=investors[0].id if investors else None, channel="email", direction="inbound",
                      to_address=(email.to[0] if email.to else "")[:320], from_address=email.sender[:320],
                      subject=email.subject or None, body=email.text, provider="sendgrid",
                      provider_message_id=email.message_id, status="received",
                      idempotency_key=f"sendgrid:inbound:{email.message_id}"[:300])
    session.add(message)
    if email.text:
        intent = intent or classify_reply(settings, email.text)
        record_intent(message, intent)
    revoked = email.asks_to_unsubscribe or (intent is not None and intent.label == ReplyIntent.opt_out)
    if revoked:  # honoured even unauthenticated: a forged opt-out costs a send, an ignored one a violation
        opt_out(session, effects, tenant_id, "email", email.sender, "inbound_email", email.message_id,
                {"provider": "sendgrid", "message_id": email.message_id, "subject": email.subject[:160],
                 "text": email.text[:160], "intent": message.intent, "authenticated": email.authenticated})
    elif email.authenticated:
        tell_replied(session, effects, message, leads, investors, email.message_id, "sendgrid")
    else:  # neither SPF nor DKIM passed: anyone may have written it; kept for staff, no workflow acts on it
        message.status = "unverified"
    record_received(session, message, leads, investors, email.message_id,
                    f"Email from {email.sender}: {email.subject[:80]} — {email.text[:160]}".strip(" —"),
                    {"message_id_header": email.message_id, "opted_out": revoked})
    row.status, row.processed_at = "applied", utcnow()
    if not revoked and not email.authenticated:
        return "unverified"
    return "opt_out" if revoked else ("reply" if leads or investors else "unknown_sender")
