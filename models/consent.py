"""Consent per tenant, channel and address: the one place that decides whether we may message someone."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from models.base import utcnow
from models.message import Consent
from models.payloads import ConsentChange


def is_opted_out(session: Session, tenant_id: str, channel: str, address: str) -> bool:
    row = session.exec(select(Consent).where(Consent.tenant_id == tenant_id, Consent.channel == channel,
                                             Consent.address == address)).first()
    return row is not None and row.status == "opted_out"


def record_consent(session: Session, change: ConsentChange) -> bool:
    """Upsert consent; returns True when the status changed. Caller commits."""
    query = select(Consent).where(Consent.tenant_id == change.tenant_id, Consent.channel == change.channel,
                                  Consent.address == change.address)
    row = session.exec(query).first()
    if row is None:
        row = Consent(tenant_id=change.tenant_id, channel=change.channel, address=change.address,
                      status=change.status, source=change.source, evidence=change.evidence)
        try:
            with session.begin_nested():
                session.add(row)
        except IntegrityError:  # a concurrent writer created it first
            row = session.exec(query).one()
        else:
            return True
    if row.status == change.status:
        return False
    row.status, row.source, row.evidence, row.updated_at = change.status, change.source, change.evidence, utcnow()
    session.add(row)
    return True
