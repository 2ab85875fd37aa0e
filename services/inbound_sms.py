"""Inbound SMS: opt-out/opt-in/help keywords (Twilio's list) and replies that pause a lead's cadence (or tell
an investor's definitions that the investor replied)."""

from __future__ import annotations

from sqlalchemy import and_, or_
from sqlmodel import Session, col, select

from services.delivery_events import Effects, claim_event, investors_at, leads_at, opt_out
from services.reply_intent import classify_reply, record_intent
from core.settings import Settings
from definitions.vocabulary import ReplyIntent
from models.base import utcnow
from models.consent import record_consent
from models.investor import advance
from models.lead import Lead
from models.message import Consent, Message
from models.payloads import ConsentChange, LeadEvent
from models.tenant import Tenant
from models.timeline import TimelineEntry
from providers.templates import builtin_templates, render
from scoring.intent import Intent

OPT_OUT = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
OPT_IN = {"START", "UNSTOP"}
HELP = {"HELP", "INFO"}


def keyword(body: str) -> str | None:
    word = body.strip().strip(".!").upper()
    if word in OPT_OUT:
        return "stop"
    if word in OPT_IN:
        return "start"
    if word in HELP:
        return "help"
    return None


def tenant_for(session: Session, settings: Settings, to_number: str) -> str:
    """The tenant that owns the number texted; the default tenant when no tenant claims it."""
    owner = session.exec(select(Tenant).where(Tenant.sms_from == to_number)).first()
    return owner.id if owner else settings.default_tenant


def _opted_out_by_keyword(session: Session, tenant_id: str, address: str) -> bool:
    row = session.exec(select(Consent).where(Consent.tenant_id == tenant_id, Consent.channel == "sms",
                                             Consent.address == address)).first()
    return row is not None and row.status == "opted_out" and row.source == "inbound_sms"


def tenants_that_texted(session: Session, owner: str, sender: str, to_number: str) -> list[str]:
    """The tenant owning the number and every other tenant that texted `sender` from it (or through the shared
    messaging service, which sends from a pool and stores no number): a carrier's STOP blocks the number for all
    of them, so each must record the opt-out and stop its cadences."""
    others = session.exec(texted_by_query(owner, sender, to_number)).all()
    return [owner, *sorted(others)]


def texted_by_query(owner: str, sender: str, to_number: str):
    """The other tenants' ids that texted `sender` from `to_number` (ix_messages_to_address serves it)."""
    through_number = or_(Message.from_address == to_number,
                         and_(col(Message.from_address).is_(None), Message.provider == "twilio"))
    return select(Message.tenant_id).where(
        Message.channel == "sms", Message.direction == "outbound", Message.to_address == sender, through_number,
        Message.tenant_id != owner).distinct()


def apply_inbound_sms(session: Session, settings: Settings, form: dict[str, str],
                      effects: Effects, intent: Intent | None = None) -> tuple[str, str | None]:
    """Returns (outcome, reply text or None). A text that is no keyword is classified (`intent`, when the caller
    classified it already, outside the transaction: services.reply_intent.classify_reply); one that revokes
    consent in plain words ("please stop texting me") opts the number out exactly as STOP does."""
    sid, sender, body = form.get("MessageSid", ""), form.get("From", ""), form.get("Body", "")
    tenant_id = tenant_for(session, settings, form.get("To", ""))
    row = claim_event(session, "twilio", f"{sid}:inbound", "inbound", form, tenant_id)
    if row is None:
        return "duplicate", None
    leads = leads_at(session, tenant_id, "sms", sender)
    investors = investors_at(session, tenant_id, "sms", sender)
    message = Message(tenant_id=tenant_id, lead_id=leads[0].id if leads else None,
                      investor_id=investors[0].id if investors else None, channel="sms",
                      direction="inbound", to_address=form.get("To", ""), from_address=sender, body=body,
                      provider="twilio", provider_message_id=sid, status="received",
                      idempotency_key=f"twilio:inbound:{sid}")
    session.add(message)
    action = keyword(body)
    reply = None
    evidence = {"provider": "twilio", "message_sid": sid, "body": body[:160], "to": form.get("To", "")}
    if action is None and body.strip():
        intent = intent or classify_reply(settings, body)
    if action is None and intent is not None:
        record_intent(message, intent)
        evidence.update(intent=intent.label.value, intent_confidence=intent.confidence)
        if intent.label == ReplyIntent.opt_out:  # the FCC: a revocation in any reasonable words counts
            action = "opt_out_words"
            tenant = session.get(Tenant, tenant_id)
            reply = (f"{tenant.name if tenant else 'We'}: you will get no more texts from us. "
                     "Reply START to subscribe again.")
    if action in ("stop", "opt_out_words"):
        for texted_by in tenants_that_texted(session, tenant_id, sender, form.get("To", "")):
            opt_out(session, effects, texted_by, "sms", sender, "inbound_sms", sid, evidence)
    elif action == "start":
        # The owner always; the other tenants only where a keyword had opted them out (a staff or provider
        # opt-out is not undone by a text to a number another tenant owns).
        for texted_by in tenants_that_texted(session, tenant_id, sender, form.get("To", "")):
            if texted_by != tenant_id and not _opted_out_by_keyword(session, texted_by, sender):
                continue
            record_consent(session, ConsentChange(tenant_id=texted_by, channel="sms", address=sender,
                                                  status="opted_in", source="inbound_sms",
                                                  evidence={"message_sid": sid, "body": body[:160],
                                                            "to": form.get("To", "")}))
        tenant = session.get(Tenant, tenant_id)
        reply = f"{tenant.name if tenant else 'We'}: you are subscribed again. Reply STOP to opt out."
    elif action == "help":
        tenant = session.get(Tenant, tenant_id)
        reply = (tenant.sms_help_text if tenant and tenant.sms_help_text else
                 render(builtin_templates()["help_reply"], {"tenant": {"name": tenant.name if tenant else ""}}).text)
    elif action is None:
        tell_replied(session, effects, message, leads, investors, sid, "twilio")
    record_received(session, message, leads, investors, sid, f"SMS from {sender}: {body[:200]}",
                    {"message_sid": sid, "keyword": action})
    row.status, row.processed_at = "applied", utcnow()
    return action or ("reply" if leads or investors else "unknown_sender"), reply


def tell_replied(session: Session, effects: Effects, message: Message, leads: list, investors: list, event_id: str,
                 provider: str) -> None:
    """A reply (no keyword, no revocation): the leads' workflows and definitions hear `lead.replied` (their
    cadences pause), the investors' `investor.replied`, each with what was said and its intent."""
    said = {"channel": message.channel, "text": message.body, "intent": message.intent,
            "intent_confidence": message.intent_confidence}
    meaning = f" ({message.intent.replace('_', ' ')})" if message.intent else ""
    how = "SMS" if message.channel == "sms" else "email"
    for lead in leads:
        effects.add(message.tenant_id, "lead", lead.id, "lead.replied", event_id, said, signal="replied",
                    payload=LeadEvent(event_id=event_id, actor=f"webhook:{provider}",
                                      note=f"Replied by {how}{meaning}: {(message.body or '')[:200]}",
                                      data={**said, "message_sid" if provider == "twilio" else "message_id":
                                            event_id}))
    for investor in investors:
        if advance(investor, "investor.replied"):
            session.add(investor)
        effects.add(message.tenant_id, "investor", investor.id, "investor.replied", event_id, said)


def record_received(session: Session, message: Message, leads: list, investors: list, event_id: str, summary: str,
                    data: dict) -> None:
    """The message on each sender's timeline, once per provider message and person."""
    for person in [*leads, *investors]:
        is_lead = isinstance(person, Lead)
        session.add(TimelineEntry(tenant_id=message.tenant_id, lead_id=person.id if is_lead else None,
                                  investor_id=None if is_lead else person.id, kind="message.received",
                                  summary=summary, idempotency_key=f"{event_id}:{person.id}"[:300],
                                  data={**data, "message_id": message.id, "intent": message.intent,
                                        "intent_confidence": message.intent_confidence}))
