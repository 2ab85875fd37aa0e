"""Accreditation: recording a verification, deciding whether an investor may commit to an offering, reminding
before a record lapses and expiring it when it does. The API, the CLI and AccreditationWorkflow's activities call
these; the windows are settings (`accreditation_valid_days`)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from models.accreditation import VERIFIED, Accreditation, AccreditationMethod, AccreditationStatus
from models.audit import record_audit
from models.base import utcnow
from models.document import Document
from models.event import ACCREDITATION_RECORDED_EVENT as RECORDED, emit
from models.investor import Investor
from models.timeline import TimelineEntry
from core.db import is_unique_violation
from core.settings import get_settings
from services.acting import Acting, Conflict, Invalid, check_owner

EXPIRING = "accreditation.expiring"  # investor definitions send the renewal request
EXPIRED = "accreditation.expired"


def accreditation_workflow_id(tenant_id: str, accreditation_id: str) -> str:
    return f"accreditation-{tenant_id}-{accreditation_id}"


def current(session: Session, investor_id: str) -> Accreditation | None:
    """The investor's record that is still valid (recording one supersedes the one before: at most one)."""
    return session.exec(select(Accreditation).where(
        Accreditation.investor_id == investor_id, Accreditation.status == AccreditationStatus.valid.value)
        .order_by(col(Accreditation.created_at).desc(), col(Accreditation.id).desc())).first()


def record(session: Session, caller: Acting, investor: Investor, *, method: AccreditationMethod,
           valid_days: dict[str, int], reminder_days: list[int], evidence: str | None = None,
           verifier: str | None = None,
           evidence_document_id: str | None = None, verified_at: datetime | None = None) -> Accreditation:
    """A new verification for the investor (it supersedes the one before), its expiry from the method's window,
    the investor's accreditation fields, timeline, audit and the event that starts its AccreditationWorkflow,
    in one transaction (committed here)."""
    check_owner(caller, investor.assigned_to, f"investor {investor.id}")
    now = utcnow()
    verified_at = verified_at or now
    if verified_at.tzinfo is None:
        raise Invalid("verified_at needs a time zone", field="verified_at")
    if verified_at > now + timedelta(minutes=5):
        raise Invalid("verified_at is in the future", field="verified_at")
    if method == AccreditationMethod.third_party_letter and not (verifier or "").strip():
        raise Invalid("a third-party letter names who wrote it (broker-dealer, RIA, attorney or CPA)",
                      field="verifier")
    if method in VERIFIED and not (evidence or evidence_document_id):
        raise Invalid(f"a {method.value.replace('_', ' ')} verification records its evidence (a note or a "
                      "document)", field="evidence")
    if evidence_document_id:
        document = session.get(Document, evidence_document_id)
        if document is None or document.tenant_id != investor.tenant_id:
            raise Invalid(f"document {evidence_document_id} not found", field="evidence_document_id")
    expires_at = verified_at + timedelta(days=valid_days[method.value])
    if expires_at <= now:
        raise Invalid(f"a {method.value.replace('_', ' ')} verification counts for {valid_days[method.value]} days: "
                      f"one made {verified_at:%Y-%m-%d} has already lapsed", field="verified_at")
    for older in session.exec(select(Accreditation).where(
            Accreditation.investor_id == investor.id, Accreditation.status == AccreditationStatus.valid.value)):
        older.status = AccreditationStatus.superseded.value
        session.add(older)
    session.flush()  # the old one superseded before the new one is valid (one valid record per investor)
    row = Accreditation(tenant_id=investor.tenant_id, investor_id=investor.id, method=method.value,
                        evidence=evidence, verifier=verifier, evidence_document_id=evidence_document_id,
                        verified_by=caller.actor, verified_at=verified_at, expires_at=expires_at)
    row.workflow_id = accreditation_workflow_id(row.tenant_id, row.id)
    session.add(row)
    investor.accredited, investor.accreditation_method = True, method.value
    investor.accreditation_verified_at, investor.accreditation_expires_at = verified_at, expires_at
    investor.updated_at = now
    session.add(investor)
    session.flush()
    session.add(TimelineEntry(
        tenant_id=investor.tenant_id, investor_id=investor.id, kind="accreditation.recorded",
        summary=f"Accredited ({method.value.replace('_', ' ')}) until {expires_at:%Y-%m-%d}",
        data={"accreditation_id": row.id, "method": method.value, "expires_at": expires_at.isoformat()},
        actor=caller.actor, idempotency_key=f"{row.id}:recorded"))
    record_audit(session, tenant_id=investor.tenant_id, actor=caller.actor, action="accreditation.record",
                 entity_type="investor", entity_id=investor.id,
                 after={"accreditation_id": row.id, "method": method.value, "verifier": verifier,
                        "evidence": evidence, "evidence_document_id": evidence_document_id,
                        "verified_at": verified_at.isoformat(), "expires_at": expires_at.isoformat()})
    emit(session, tenant_id=investor.tenant_id, subject_type="investor", subject_id=investor.id, name=RECORDED,
         event_id=f"{row.id}:recorded", data={"accreditation_id": row.id, "method": method.value,
                                              "expires_at": expires_at.isoformat(), "workflow_id": row.workflow_id,
                                              "reminder_days": list(reminder_days)})
    try:
        session.commit()
    except IntegrityError as exc:  # another verification of this investor was recorded at the same moment
        session.rollback()
        if is_unique_violation(exc):
            raise Conflict(f"another accreditation of {investor.name} was recorded just now: reload and retry",
                           field="method") from None
        raise
    session.refresh(row)
    return row


def commitment_problem(session: Session, investor: Investor, rule: str, at: datetime | None = None) -> str | None:
    """None when the investor may commit to an offering under `rule` ("506b" or "506c") at `at`; else the reason."""
    at = at or utcnow()
    row = current(session, investor.id)
    lapsed = row if row is not None and row.expires_at <= at else None
    if row is None:  # the latest record, if it ran out
        latest = session.exec(select(Accreditation).where(Accreditation.investor_id == investor.id)
                              .order_by(col(Accreditation.created_at).desc(), col(Accreditation.id).desc())).first()
        lapsed = latest if latest is not None and latest.status == AccreditationStatus.expired.value else None
    if lapsed is not None:
        return (f"{investor.name}'s accreditation ({lapsed.method.replace('_', ' ')}) expired on "
                f"{lapsed.expires_at:%Y-%m-%d}: record a new verification")
    if rule == "506c":
        if row is None:
            return f"a Rule 506(c) offering needs {investor.name}'s accreditation verified: none is on record"
        if AccreditationMethod(row.method) not in VERIFIED:
            return (f"a Rule 506(c) offering needs a verification (income, net worth, a third-party letter or the "
                    f"minimum-investment method); {investor.name} only self-certified")
        return None
    if row is None and not investor.accredited:
        return f"{investor.name} is not known to be accredited: record a self-certification at least"
    return None


ENTITIES = {"llc", "trust"}  # the others (individual, joint, IRA) invest as natural persons


def minimum_commitment(session: Session, investor: Investor, rule: str, at: datetime | None = None,
                       ) -> Decimal | None:
    """The least the investor may commit under `rule` because of how they were verified: a Rule 506(c) verification
    by the minimum-investment method holds only for a commitment of at least the settings' floor (an entity's
    or a natural person's); None when no such floor applies."""
    if rule != "506c":
        return None
    row = current(session, investor.id)
    if row is None or row.expires_at <= (at or utcnow()) or row.method != AccreditationMethod.minimum_investment:
        return None
    settings = get_settings()
    return settings.minimum_investment_entity if investor.entity_type in ENTITIES \
        else settings.minimum_investment_person


def remind(session: Session, accreditation_id: str, days_left: int) -> str:
    """Before the end: the investor's definitions hear accreditation.expiring (the shipped accreditation-renewal
    asks for new evidence) and the owner is notified. A record no longer valid is left alone."""
    from services.notifications import notify
    from services.assignment import owner_of

    row = session.get(Accreditation, accreditation_id)
    if row is None or row.status != AccreditationStatus.valid.value:
        return f"not reminded: the record is {row.status if row else 'gone'}"
    investor = session.get(Investor, row.investor_id)
    key = f"{row.id}:expiring:{days_left}"
    emit(session, tenant_id=row.tenant_id, subject_type="investor", subject_id=investor.id, name=EXPIRING,
         event_id=key, data={"accreditation_id": row.id, "method": row.method, "days_left": days_left,
                             "expires_at": row.expires_at.isoformat()})
    if not session.exec(select(TimelineEntry.id).where(TimelineEntry.idempotency_key == key)).first():
        session.add(TimelineEntry(tenant_id=row.tenant_id, investor_id=investor.id, kind=EXPIRING,
                                  summary=f"Accreditation expires in {days_left} days ({row.expires_at:%Y-%m-%d})",
                                  data={"accreditation_id": row.id, "days_left": days_left},
                                  actor="system:accreditation", idempotency_key=key))
    owner = owner_of(session, investor)
    if owner is not None:
        notify(session, owner, kind=EXPIRING, title=f"{investor.name}'s accreditation expires in {days_left} days",
               body=f"The {row.method.replace('_', ' ')} verification ends on {row.expires_at:%Y-%m-%d}.",
               key=key, investor_id=investor.id)
    session.commit()
    return f"reminded ({days_left} days left)" + (f", told {owner.email}" if owner else "")


def expire(session: Session, accreditation_id: str, at: datetime | None = None) -> str:
    """At the end of its window: the record is expired, the investor no longer accredited (unless a newer record
    stands), and accreditation.expired is on the event path. Idempotent."""
    row = session.get(Accreditation, accreditation_id)
    if row is None or row.status != AccreditationStatus.valid.value:
        return f"nothing to do: the record is {row.status if row else 'gone'}"
    now = at or utcnow()
    if row.expires_at > now + timedelta(seconds=5):
        return f"not yet: it expires at {row.expires_at.isoformat()}"
    row.status, row.expired_at = AccreditationStatus.expired.value, now
    session.add(row)
    investor = session.get(Investor, row.investor_id)
    session.flush()
    if current(session, investor.id) is None:  # a newer record stands: still accredited
        investor.accredited = False
    investor.updated_at = now
    session.add(investor)
    key = f"{row.id}:expired"
    emit(session, tenant_id=row.tenant_id, subject_type="investor", subject_id=investor.id, name=EXPIRED,
         event_id=key, data={"accreditation_id": row.id, "method": row.method,
                             "expired_at": row.expires_at.isoformat()})
    session.add(TimelineEntry(tenant_id=row.tenant_id, investor_id=investor.id, kind=EXPIRED,
                              summary=f"Accreditation ({row.method.replace('_', ' ')}) expired",
                              data={"accreditation_id": row.id}, actor="system:accreditation", idempotency_key=key))
    record_audit(session, tenant_id=row.tenant_id, actor="system:accreditation", action="accreditation.expire",
                 entity_type="investor", entity_id=investor.id, before={"accredited": True},
                 after={"accredited": False, "accreditation_id": row.id})
    session.commit()
    return "expired"
