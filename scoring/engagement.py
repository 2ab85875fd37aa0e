"""Engagement counts for scoring: messages that went out, replies, and how fast the first reply came."""

from __future__ import annotations

from datetime import timedelta

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
