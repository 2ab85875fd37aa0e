"""Staff's hands on the event outbox: put parked events back in line, or discard them (kept, marked with who
did it). The relay (events/relay.py) does the delivering."""

from __future__ import annotations

from sqlmodel import Session, col, select

from models.audit import record_audit
from models.base import utcnow
from models.event import Event


def _parked(session: Session, seqs: list[int] | None, tenant_id: str | None) -> list[Event]:
    query = select(Event).where(col(Event.parked_at).is_not(None), col(Event.delivered_at).is_(None))
    if seqs is not None:
        query = query.where(col(Event.seq).in_(seqs))
    if tenant_id:
        query = query.where(Event.tenant_id == tenant_id)
    return list(session.exec(query.order_by(col(Event.seq))).all())


def redrive(session: Session, seqs: list[int] | None = None, *, tenant_id: str | None = None,
            actor: str = "staff") -> list[Event]:
    """Parked events (these, or all of the tenant's) back in line with their attempts reset."""
    rows = _parked(session, seqs, tenant_id)
    for row in rows:
        row.parked_at, row.attempts, row.next_attempt_at = None, 0, utcnow()
        session.add(row)
        record_audit(session, tenant_id=row.tenant_id, actor=actor, action="event.redrive", entity_type="event",
                     entity_id=str(row.seq), after={"name": row.name, "last_error": row.last_error})
    session.commit()
    return rows


def discard(session: Session, seqs: list[int], *, tenant_id: str | None = None, actor: str = "staff") -> list[Event]:
    """Parked events marked as dealt with, without delivering them."""
    rows = _parked(session, seqs, tenant_id)
    for row in rows:
        row.delivered_at, row.outcome = utcnow(), f"discarded by {actor}"[:200]
        session.add(row)
        record_audit(session, tenant_id=row.tenant_id, actor=actor, action="event.discard", entity_type="event",
                     entity_id=str(row.seq), after={"name": row.name, "last_error": row.last_error})
    session.commit()
    return rows
