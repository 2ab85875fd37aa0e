"""Notifications to staff: the in-app row and its email, written in the caller's transaction.

The email rides the event outbox like a staff message: a `message.requested` event about the user (subject
`user:<id>`) carrying the MessageRequest and the workflow id, committed with the notification and with whatever
caused it (the task assigned, the lead routed); the relay starts the MessageWorkflow, which sends it through the
tenant's email provider (the outbox by default: GET /api/v1/messages shows it). Nothing here talks to a provider or
to Temporal, so an assignment made while either is down still reaches its person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from models.base import utcnow
from models.event import STAFF_MESSAGE_EVENT, emit
from models.notification import Notification
from models.payloads import MessageRequest
from models.tenant import User

EMAIL_TEMPLATE = "staff_notification"  # providers/message_templates.yaml


def notify(session: Session, user: User, *, kind: str, title: str, body: str = "", key: str,
           email: bool = True, task_id: str | None = None, lead_id: str | None = None,
           opportunity_id: str | None = None, investor_id: str | None = None,
           data: dict[str, Any] | None = None) -> Notification:
    """Add the notification (and its email's event) to the caller's transaction; the caller commits. `key` names
    the cause: the same key for the same user is one notification (a retried activity, a redelivered event)."""
    key = f"{key}:{user.id}"[:300]
    existing = session.exec(select(Notification).where(Notification.idempotency_key == key)).first()
    if existing is not None:
        return existing
    row = Notification(tenant_id=user.tenant_id, user_id=user.id, kind=kind, title=title[:300], body=body,
                       task_id=task_id, lead_id=lead_id, opportunity_id=opportunity_id, investor_id=investor_id,
                       data=data or {}, email=email and user.active, idempotency_key=key)
    session.add(row)
    if row.email:
        message_key = f"notify:{row.id}"
        request = MessageRequest(
            tenant_id=user.tenant_id, user_id=user.id, channel="email", template=EMAIL_TEMPLATE,
            idempotency_key=message_key, actor="system", respect_send_window=False,
            context={"notification": {"id": row.id, "kind": kind, "title": row.title, "body": body}})
        emit(session, tenant_id=user.tenant_id, subject_type="user", subject_id=user.id, name=STAFF_MESSAGE_EVENT,
             event_id=message_key, data={"workflow_id": f"notify-{user.tenant_id}-{row.id}",
                                          "request": request.model_dump(mode="json")})
    return row


@dataclass(frozen=True)
class NotificationFilters:
    unread: bool = False


def notification_query(user_id: str, filters: NotificationFilters):
    """A user's notifications (newest first once api.paging orders them); unread ones by their own index."""
    query = select(Notification).where(Notification.user_id == user_id)
    if filters.unread:
        query = query.where(col(Notification.read_at).is_(None))
    return query


def mark_read(session: Session, user_id: str, notification_ids: list[str] | None = None,
              at: datetime | None = None) -> int:
    """Mark the user's notifications read (these, or all of them) and commit; returns how many changed. Reading
    one twice changes nothing."""
    table = Notification.__table__
    statement = update(table).where(table.c.user_id == user_id, table.c.read_at.is_(None))
    if notification_ids is not None:
        statement = statement.where(table.c.id.in_(notification_ids))
    changed = session.connection().execute(statement.values(read_at=at or utcnow())).rowcount
    session.commit()
    return changed
