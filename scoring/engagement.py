"""Engagement counts for scoring: messages that went out, replies, and how fast the first reply came."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlmodel import Session, col, func, select

from models.lead import Lead
from models.message import Message
from models.timeline import TimelineEntry


def engagement(session: Session, lead: Lead) -> dict:
    sent = session.exec(select(func.count()).select_from(Message).where(
        Message.lead_id == lead.id, Message.direction == "outbound",
        col(Message.status).in_(["sent", "delivered", "opened", "clicked"]))).one()
    replies = session.exec(select(TimelineEntry.occurred_at).where(
        TimelineEntry.lead_id == lead.id, TimelineEntry.kind == "lead.replied")).all()
    fast = any(at - lead.created_at <= timedelta(days=1) for at in replies)
    return {"messages_sent": sent, "replies": len(replies), "replied_within_1d": fast}


def engagement_of(session: Session, leads: list[dict]) -> dict[str, dict]:
    """The same for a batch of leads (dicts with id and created_at), in two queries (re-scoring a book reads its
    leads a page at a time)."""
    ids = [lead["id"] for lead in leads]
    sent = dict(session.exec(select(Message.lead_id, func.count()).where(
        col(Message.lead_id).in_(ids), Message.direction == "outbound",
        col(Message.status).in_(["sent", "delivered", "opened", "clicked"])).group_by(Message.lead_id)).all())
    replies: dict[str, list] = {}
    for lead_id, at in session.exec(select(TimelineEntry.lead_id, TimelineEntry.occurred_at).where(
            col(TimelineEntry.lead_id).in_(ids), TimelineEntry.kind == "lead.replied")):
        replies.setdefault(lead_id, []).append(at)
    out = {}
    for lead in leads:
        times = replies.get(lead["id"], [])
        out[lead["id"]] = {"messages_sent": sent.get(lead["id"], 0), "replies": len(times),
                           "replied_within_1d": any(at - lead["created_at"] <= timedelta(days=1) for at in times)}
    return out


def engagement_as_of(session: Session, leads: list[dict], *page: Any) -> dict[str, dict]:
    """engagement_of as each lead stood when it was scored (dicts with id, created_at and scored_at): the messages
    created and the replies received by then (a drift report's current sample reads what score_lead read). The
    messages are counted by the database (a lead has many), the replies read (few). `page`: conditions on Lead that
    select exactly these leads (a key range), cheaper for the database than a list of thousands of ids."""
    which = page or (col(Lead.id).in_([lead["id"] for lead in leads]),)
    sent = dict(session.exec(select(Message.lead_id, func.count()).join(Lead, Lead.id == Message.lead_id).where(
        *which, Message.direction == "outbound", col(Message.status).in_(["sent", "delivered", "opened", "clicked"]),
        Message.created_at <= Lead.scored_at).group_by(Message.lead_id)).all())
    replies: dict[str, list] = {}
    for lead_id, at in session.exec(select(TimelineEntry.lead_id, TimelineEntry.occurred_at)
                                    .join(Lead, Lead.id == TimelineEntry.lead_id).where(
            *which, TimelineEntry.kind == "lead.replied", TimelineEntry.occurred_at <= Lead.scored_at)):
        replies.setdefault(lead_id, []).append(at)
    out = {}
    for lead in leads:
        times, created = replies.get(lead["id"], []), lead["created_at"]
        out[lead["id"]] = {"messages_sent": sent.get(lead["id"], 0), "replies": len(times),
                           "replied_within_1d": any(at - created <= timedelta(days=1) for at in times)}
    return out
