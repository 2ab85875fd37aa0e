"""Deal blasts: the deal's summary to its top N eligible investor matches, through the same exactly-once messaging
as every other send (consent, quiet hours, unsubscribe; the relay starts each MessageWorkflow from the event
committed here). A blast stops when the raise is fully committed; it never sends one investor the same deal twice
(the message's business key is the deal, the template and the investor), and a retried blast (same key) sends to
the same people, not the next ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from sqlmodel import Session, col, func, select

from models.audit import record_audit
from models.consent import is_opted_out
from models.event import STAFF_MESSAGE_EVENT, Event, emit
from models.investor import Investor
from models.lead import Property
from models.message import Message
from models.offering import Allocation, Offering
from models.opportunity import Opportunity, OpportunityMatch
from models.payloads import MessageRequest
from models.timeline import TimelineEntry
from services.acting import Acting, Conflict, check_owner
from services.matching import match_investors
from services.offerings import totals


@dataclass
class BlastResult:
    key: str
    sent: list[str] = field(default_factory=list)  # investor ids messaged by this blast
    skipped: list[dict[str, str]] = field(default_factory=list)  # {investor_id, reason}
    repeated: bool = False  # the same blast key again: nothing new was sent


def deal_context(session: Session, deal: Opportunity, offering: Offering | None) -> dict:
    prop = session.get(Property, deal.property_id) if deal.property_id else None
    price = deal.contract_price or deal.offer_price or deal.asking_price
    return {"id": deal.id, "title": deal.title, "city": prop.city if prop else None,
            "state": prop.state if prop else None, "price": f"{price:,.0f}" if price is not None else None,
            "minimum_investment": f"{offering.minimum_investment:,.0f}" if offering else None,
            "target_raise": f"{offering.target_amount:,.0f}" if offering else None}


def blast(session: Session, caller: Acting, deal: Opportunity, *, top: int, channel: str, template: str,
          key: str) -> BlastResult:
    check_owner(caller, deal.assigned_to, f"deal {deal.id}")
    prefix = f"blast:{deal.id}:{key}:"
    # One blast of a deal at a time (two at once would pick the same people): the deal's row is the lock.
    session.exec(select(Opportunity.id).where(Opportunity.id == deal.id).with_for_update())
    earlier = list(session.exec(select(Event.subject_id).where(
        Event.tenant_id == deal.tenant_id, col(Event.event_id).startswith(prefix, autoescape=True))
        .order_by(col(Event.seq))))
    if earlier:  # this blast was sent already: the same people (in the order it chose them), nothing more
        return BlastResult(key=key, sent=earlier, repeated=True)
    offering = session.exec(select(Offering).where(Offering.opportunity_id == deal.id,
                                                   col(Offering.status).in_(["draft", "open", "active"]))
                            .order_by(col(Offering.created_at).desc())).first()
    if offering is not None and offering.rule == "506b":
        raise Conflict(f"the raise for {deal.title} is a Rule 506(b) offering: no general solicitation, so no blast "
                       "(write to the investors you already know one by one)", field="top")
    if offering is not None:
        rows = list(session.exec(select(Allocation).where(Allocation.offering_id == offering.id)))
        if totals(rows, offering.target_amount)["remaining"] <= Decimal(0):
            raise Conflict(f"the raise for {deal.title} is fully committed: no blast", field="top")
    already = set(session.exec(select(OpportunityMatch.investor_id).where(
        OpportunityMatch.opportunity_id == deal.id, OpportunityMatch.status == "sent")))
    result = BlastResult(key=key)
    context = deal_context(session, deal, offering)
    for fit in match_investors(session, deal, limit=200):
        if len(result.sent) >= top:
            break
        investor: Investor = fit.investor
        address = investor.email if channel == "email" else investor.phone
        reason = ("sent this deal before" if investor.id in already
                  else f"no {'email' if channel == 'email' else 'phone'}" if not address
                  else "opted out" if is_opted_out(session, deal.tenant_id, channel, address) else None)
        if reason:
            result.skipped.append({"investor_id": investor.id, "reason": reason})
            continue
        business_key = f"{deal.id}:blast:{template}:{investor.id}"
        request = MessageRequest(tenant_id=deal.tenant_id, investor_id=investor.id, channel=channel,
                                 template=template, idempotency_key=business_key, actor=caller.actor,
                                 context={"deal": context})
        if not emit(session, tenant_id=deal.tenant_id, subject_type="investor", subject_id=investor.id,
                    name=STAFF_MESSAGE_EVENT, event_id=f"{prefix}{investor.id}"[:300],
                    data={"workflow_id": f"msg-{deal.tenant_id}-{business_key}"[:250],
                          "request": request.model_dump(mode="json")}):
            continue  # recorded already (this blast, from another attempt)
        match = session.exec(select(OpportunityMatch).where(OpportunityMatch.opportunity_id == deal.id,
                                                            OpportunityMatch.investor_id == investor.id)).one()
        match.status = "sent"
        session.add(match)
        session.add(TimelineEntry(tenant_id=deal.tenant_id, investor_id=investor.id, opportunity_id=deal.id,
                                  kind="deal.blasted", summary=f"Sent {deal.title} ({channel})",
                                  data={"blast": key, "score": fit.score, "reasons": fit.reasons},
                                  actor=caller.actor, idempotency_key=f"{prefix}{investor.id}:timeline"))
        result.sent.append(investor.id)
    record_audit(session, tenant_id=deal.tenant_id, actor=caller.actor, action="deal.blast", entity_type="deal",
                 entity_id=deal.id, after={"key": key, "top": top, "channel": channel, "template": template,
                                           "sent": result.sent, "skipped": result.skipped})
    session.commit()
    return result


@dataclass
class BlastReply:
    investor_id: str
    investor_name: str
    blasted_at: datetime
    message: Message


def blast_replies(session: Session, deal: Opportunity, limit: int = 200) -> list[BlastReply]:
    """What the investors a deal was blasted to wrote back since (their inbound messages after the deal reached
    them), newest first: where investor relations take soft commits from."""
    blasted = (select(TimelineEntry.investor_id, func.min(TimelineEntry.occurred_at).label("at"))
               .where(TimelineEntry.tenant_id == deal.tenant_id, TimelineEntry.opportunity_id == deal.id,
                      TimelineEntry.kind == "deal.blasted")
               .group_by(TimelineEntry.investor_id).subquery())
    rows = session.exec(
        select(Message, Investor.name, blasted.c.at)
        .join(blasted, blasted.c.investor_id == Message.investor_id)
        .join(Investor, Investor.id == Message.investor_id)
        .where(Message.tenant_id == deal.tenant_id, Message.direction == "inbound", Message.created_at >= blasted.c.at)
        .order_by(col(Message.created_at).desc(), col(Message.id).desc()).limit(limit)).all()
    return [BlastReply(investor_id=message.investor_id, investor_name=name, blasted_at=at, message=message)
            for message, name, at in rows]
