"""The event outbox: every change workflows or definitions must hear, written in the transaction of the change.

A row is delivered to Temporal by the relay (events/relay.py) at least once, in order per subject, and is
idempotent by its `event_id` (workflows and definition runs dedupe on it). `emit` is the one way to write one.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import BigInteger, Column, Index, Integer, UniqueConstraint
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Field, Session, SQLModel, col, func, select

from models.base import json_field, optional_json_field, time_field, utcnow


class Event(SQLModel, table=True):
    __tablename__ = "events"
    __table_args__ = (
        # One effect per event id: the same provider event or request recorded twice is one row.
        UniqueConstraint("tenant_id", "subject_type", "subject_id", "name", "event_id",
                         name="uq_events_subject_event"),
        # The relay's scan: undelivered, unparked rows in commit order; per subject for its claim.
        Index("ix_events_pending", "seq", sqlite_where=Column("delivered_at").is_(None),
              postgresql_where=Column("delivered_at").is_(None)),
        Index("ix_events_subject", "subject_type", "subject_id", "seq"),
    )
    # BIGINT identity on Postgres, INTEGER PRIMARY KEY (rowid) on SQLite: the order of writing.
    seq: int | None = Field(default=None, sa_column=Column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True))
    event_id: str = Field(max_length=300)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    subject_type: str = Field(max_length=20)  # lead, deal, investor
    subject_id: str = Field(max_length=40)
    name: str = Field(max_length=64)  # lead.created, lead.status_changed, message.delivered, ...
    data: dict[str, Any] = json_field()
    # When set, the subject's own workflow hears it too: this LeadWorkflow signal with `signal_payload`
    # (a LeadEvent); `start` makes it a signal-with-start (the subject's first event starts its workflow).
    workflow_signal: str | None = Field(default=None, max_length=40)
    signal_payload: dict[str, Any] | None = optional_json_field()
    start: bool = False
    traceparent: str | None = Field(default=None, max_length=64)  # W3C trace context of the request
    occurred_at: datetime = time_field()
    delivered_at: datetime | None = time_field(nullable=True, default_now=False)
    attempts: int = 0
    next_attempt_at: datetime = time_field()
    last_error: str | None = None
    parked_at: datetime | None = time_field(nullable=True, default_now=False)
    outcome: str | None = Field(default=None, max_length=200)  # what delivery did: started, signalled, closed


STAFF_MESSAGE_EVENT = "message.requested"  # a staff send (POST /leads/{id}/messages): the relay starts its workflow
ACCREDITATION_RECORDED_EVENT = "accreditation.recorded"  # the relay starts its AccreditationWorkflow
OFFERING_OPENED_EVENT = "offering.opened"  # a capital raise on a deal: the relay starts its OfferingWorkflow
DEAL_OPENED_EVENT = "deal.opened"  # a deal opened through the API: the relay starts its DealWorkflow
DEAL_ASSIGNED_EVENT = "deal.assigned"  # a deal's owner changed: the relay signals its DealWorkflow (OWNER_SIGNAL)
OWNER_SIGNAL = "owner_changed"  # workflows/deal.py's DealWorkflow.owner_changed


def emit(session: Session, *, tenant_id: str, subject_type: str, subject_id: str, name: str, event_id: str,
         data: dict[str, Any] | None = None, workflow_signal: str | None = None,
         signal_payload: dict[str, Any] | None = None, start: bool = False, new_subject: bool = False) -> bool:
    """Add the event to the caller's transaction. False when this event id was already recorded for the
    subject (the database decides, so two concurrent writers of one event store one row). `new_subject`: the
    subject was inserted by this same transaction, so no other writer can emit for it before the commit."""
    from core.tracing import current_traceparent

    values = dict(event_id=event_id[:300], tenant_id=tenant_id, subject_type=subject_type, subject_id=subject_id,
                  name=name, data=data or {}, workflow_signal=workflow_signal, signal_payload=signal_payload,
                  start=start, traceparent=current_traceparent(), occurred_at=utcnow(), next_attempt_at=utcnow(),
                  attempts=0)
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql" and not new_subject:
        # `seq` is taken at insert, not at commit: without this, two transactions writing events of one subject
        # at once could commit in the other order and be delivered out of order. Writers of one subject wait
        # for each other here, until commit (the relay's claim is another key: delivering never blocks this).
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(
            f"emit:{subject_type}:{subject_id}", 0))))
    # Core on the session's connection (same transaction), one statement built once with the values as
    # parameters: the ORM's insert path, and building `.values(...)` each time, cost more than the insert.
    # (rowcount is -1 with RETURNING on psycopg, hence the row.)
    return session.connection().execute(_insert(dialect), values).first() is not None


_INSERTS: dict[str, Any] = {}


def _insert(dialect: str):
    statement = _INSERTS.get(dialect)
    if statement is None:
        insert = (postgresql if dialect == "postgresql" else sqlite).insert
        statement = _INSERTS[dialect] = (insert(Event.__table__).on_conflict_do_nothing()
                                         .returning(Event.__table__.c.seq))
    return statement


def start_pending(session: Session, subject_type: str, subject_id: str) -> bool:
    """True while the event that starts the subject's workflow waits for the relay (GET /leads/{id} then
    shows workflow_status PENDING)."""
    return session.exec(select(Event.seq).where(
        Event.subject_type == subject_type, Event.subject_id == subject_id, col(Event.start).is_(True),
        col(Event.delivered_at).is_(None)).limit(1)).first() is not None


def backlog(session: Session) -> tuple[int, float | None, int]:
    """(undelivered events, age in seconds of the oldest, parked events) — for /health and the metrics."""
    pending = (col(Event.delivered_at).is_(None), col(Event.parked_at).is_(None))
    count, oldest = session.exec(select(func.count(), func.min(Event.occurred_at)).where(*pending)).one()
    parked = session.exec(select(func.count()).where(col(Event.delivered_at).is_(None),
                                                      col(Event.parked_at).is_not(None))).one()
    if oldest is not None and oldest.tzinfo is None:  # SQLite's MIN() returns the stored naive value
        oldest = datetime.fromisoformat(str(oldest)).replace(tzinfo=UTC)
    return count, (utcnow() - oldest).total_seconds() if oldest else None, parked
