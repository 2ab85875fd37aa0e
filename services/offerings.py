"""Capital raises: opening an offering on a deal, the facts an allocation move is checked on, writing what
OfferingWorkflow decided, and the totals per stage. The API's offering routes and the workflow's activity call
these."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.db import is_unique_violation
from core.settings import Settings

from models.audit import record_audit
from models.base import utcnow
from models.document import OPEN, Document, DocumentSigner
from models.event import OFFERING_OPENED_EVENT, emit
from models.investor import Investor, advance
from models.offering import Allocation, Offering
from models.opportunity import Opportunity
from models.tenant import User
from models.timeline import TimelineEntry
from services.acting import Acting, Conflict, Invalid, NotFound, check_owner
from services.accreditation import commitment_problem, minimum_commitment


def offering_workflow_id(tenant_id: str, offering_id: str) -> str:
    return f"offering-{tenant_id}-{offering_id}"


def get_offering(session: Session, tenant_id: str, offering_id: str) -> Offering:
    offering = session.get(Offering, offering_id)
    if offering is None or offering.tenant_id != tenant_id:
        raise NotFound(f"offering {offering_id} not found")
    return offering


def open_offering(session: Session, caller: Acting, deal: Opportunity, *, title: str | None, target_amount: Decimal,
                  minimum_investment: Decimal, rule: str, close_date: date | None) -> Offering:
    """A draft offering on the deal and the event that starts its OfferingWorkflow, in one transaction."""
    check_owner(caller, deal.assigned_to, f"deal {deal.id}")
    if minimum_investment > target_amount:
        raise Invalid("the minimum investment is above the target raise", field="minimum_investment")
    if close_date is not None and close_date < utcnow().date():
        raise Invalid("the close date is in the past", field="close_date")
    offering = Offering(tenant_id=deal.tenant_id, opportunity_id=deal.id, title=(title or deal.title)[:200],
                        target_amount=target_amount, minimum_investment=minimum_investment, rule=rule,
                        close_date=close_date)
    offering.workflow_id = offering_workflow_id(offering.tenant_id, offering.id)
    session.add(offering)
    session.flush()
    record_audit(session, tenant_id=deal.tenant_id, actor=caller.actor, action="offering.create",
                 entity_type="offering", entity_id=offering.id,
                 after={"opportunity_id": deal.id, "target_amount": str(target_amount), "rule": rule,
                        "minimum_investment": str(minimum_investment)})
    session.add(TimelineEntry(tenant_id=deal.tenant_id, lead_id=deal.lead_id, opportunity_id=deal.id,
                              kind="offering.opened", summary=f"Capital raise of {target_amount:,.2f} ({rule})",
                              data={"offering_id": offering.id}, actor=caller.actor,
                              idempotency_key=f"{offering.id}:opened"))
    emit(session, tenant_id=deal.tenant_id, subject_type="deal", subject_id=deal.id, name=OFFERING_OPENED_EVENT,
         event_id=f"{offering.id}:opened", data={
             "offering_id": offering.id, "workflow_id": offering.workflow_id, "target_amount": str(target_amount),
             "minimum_investment": str(minimum_investment)})
    session.commit()
    return offering


def check_raise_owner(session: Session, caller: Acting, offering: Offering) -> None:
    """Staff move the raises of their own and unassigned deals; managers and admins anyone's."""
    deal = session.get(Opportunity, offering.opportunity_id)
    check_owner(caller, deal.assigned_to if deal else None, f"deal {offering.opportunity_id}")


def allocation_facts(session: Session, offering: Offering, investor_id: str, document_id: str | None) -> dict:
    """What OfferingWorkflow's validator checks: the investor may commit under the offering's rule (and from which
    amount, for a verification by the minimum-investment method); the named subscription agreement is this deal's
    and signed by every party (investor and issuer); the offering's close date (no new money after it)."""
    investor = session.get(Investor, investor_id)
    if investor is None or investor.tenant_id != offering.tenant_id:
        raise Invalid(f"investor {investor_id} not found", field="investor_id")
    signed = False
    if document_id:
        document = session.get(Document, document_id)
        signed = bool(document is not None and document.tenant_id == offering.tenant_id
                      and document.opportunity_id == offering.opportunity_id
                      and document.kind == "subscription_agreement" and document.status == "completed"
                      and investor.email is not None and session.exec(select(DocumentSigner.id).where(
                          DocumentSigner.document_id == document.id,
                          DocumentSigner.email == investor.email.lower())).first() is not None)
    return {"eligibility_problem": commitment_problem(session, investor, offering.rule), "subscription_signed": signed,
            "minimum_commitment": minimum_commitment(session, investor, offering.rule),
            "close_date": offering.close_date}


def request_subscription(session: Session, settings: Settings, caller: Acting, offering: Offering, investor_id: str,
                         *, terms: dict[str, Any], expires_in: timedelta | None = None) -> tuple[Document, bool]:
    """The subscription agreement of an investor's soft commit, sent for signature (subscriber: the investor;
    issuer: the caller, else the deal's owner), with the offering's name and the soft commit's amount; the caller
    commits. One at a time per allocation: while one is out (or signed), asking again answers it, (document,
    False). Its completion commits the soft commit (events/subscriptions.py)."""
    from services.assignment import owner_of
    from services.documents import document_id_for, request_document

    check_raise_owner(session, caller, offering)
    allocation = session.exec(select(Allocation).where(Allocation.offering_id == offering.id,
                                                       Allocation.investor_id == investor_id)
                              .with_for_update()).first()  # one request at a time per allocation
    if allocation is None or allocation.status != "soft_commit":
        raise Conflict(f"investor {investor_id} has no soft commit in {offering.title}"
                       + (f" (the allocation is {allocation.status})" if allocation else ""), field="investor_id")
    if offering.status != "active":
        raise Conflict(f"the offering is {offering.status}: subscription agreements are signed while it is active",
                       field="offering")
    earlier = session.get(Document, allocation.subscription_document_id) if allocation.subscription_document_id \
        else None
    if earlier is not None and (earlier.status in OPEN or earlier.status == "completed"):
        return earlier, False
    investor = session.get(Investor, investor_id)
    if not investor.email:
        raise Invalid(f"{investor.name} has no e-mail address to sign with", field="investor_id")
    deal = session.get(Opportunity, offering.opportunity_id)
    issuer = (session.get(User, caller.user_id) if caller.user_id else None) or owner_of(session, deal)
    if issuer is None:
        raise Invalid("a tenant-level key needs the deal to have an owner to countersign as issuer", field="issuer")
    tries = session.exec(select(func.count(Document.id)).where(Document.opportunity_id == deal.id,
                                                               Document.kind == "subscription_agreement")).one()
    document_id = document_id_for(f"subscription:{allocation.id}:{tries}")
    try:
        with session.begin_nested():  # SQLite takes no row lock: a request at the same instant inserts the same id
            document, created = request_document(
                session, settings, tenant_id=offering.tenant_id, opportunity_id=deal.id,
                template="subscription_agreement", expires_in=expires_in, actor=caller.actor, document_id=document_id,
                won_deal_ok=True,  # raising capital for a deal bought: the offering's state is the rule
                signers=[{"name": investor.name, "email": investor.email, "role": "subscriber"},
                         {"name": issuer.name or issuer.email, "email": issuer.email, "role": "issuer"}],
                # what it commits to is the allocation's, whatever else the caller's terms say
                terms={**terms, "offering_name": offering.title, "subscription_amount": allocation.amount})
    except IntegrityError as exc:
        if not is_unique_violation(exc):
            raise
        return session.get(Document, document_id), False
    allocation.subscription_document_id = document.id
    session.add(allocation)
    return document, created


def record_change(session: Session, change: Any) -> None:
    """Write what OfferingWorkflow decided (an OfferingChange): the allocations as they are now, the offering's
    status, each investor's event and timeline entry. Idempotent by the change's key."""
    offering = session.get(Offering, change.offering_id)
    now = utcnow()
    if offering.status != change.status:
        offering.status, offering.updated_at = change.status, now
        session.add(offering)
    for slot in change.slots:
        row = session.exec(select(Allocation).where(Allocation.offering_id == offering.id,
                                                    Allocation.investor_id == slot.investor_id)).first()
        if row is None:
            row = Allocation(tenant_id=offering.tenant_id, offering_id=offering.id, investor_id=slot.investor_id)
        if slot.status == "soft_commit" and (row.status != "soft_commit" or row.amount != slot.amount):
            row.subscription_document_id = None  # an agreement sent for another amount (or before a withdrawal)
        row.amount, row.status, row.sequence = slot.amount, slot.status, slot.sequence
        row.subscription_document_id = slot.subscription_document_id or row.subscription_document_id
        row.funded_amount, row.funding_method = slot.funded_amount, slot.funding_method
        row.funded_on = date.fromisoformat(slot.funded_on) if slot.funded_on else None
        row.updated_at = now
        session.add(row)
    for investor_id, name in change.events:
        key = f"{change.key}:{investor_id}:{name}"
        slot = next(s for s in change.slots if s.investor_id == investor_id)
        data = {"offering_id": offering.id, "opportunity_id": offering.opportunity_id, "amount": str(slot.amount),
                **({"funded_amount": str(slot.funded_amount)} if slot.funded_amount is not None else {})}
        if emit(session, tenant_id=offering.tenant_id, subject_type="investor", subject_id=investor_id, name=name,
                event_id=key, data=data):
            investor = session.get(Investor, investor_id)
            if advance(investor, name):
                session.add(investor)
            session.add(TimelineEntry(tenant_id=offering.tenant_id, investor_id=investor_id,
                                      opportunity_id=offering.opportunity_id, kind=name,
                                      summary=f"{name.split('.')[1].replace('_', ' ').capitalize()}: "
                                              f"{slot.amount:,.2f} in {offering.title}",
                                      data=data, actor=change.actor, idempotency_key=key))
    session.commit()


def record_commit_refused(session: Session, refused: Any) -> None:
    """A signed subscription agreement OfferingWorkflow could not commit (a CommitRefused): on the investor's
    timeline with every reason, once."""
    if session.exec(select(TimelineEntry.id).where(TimelineEntry.idempotency_key == refused.key[:300])).first():
        return
    offering = session.get(Offering, refused.offering_id)
    document = session.get(Document, refused.document_id)
    title = document.title if document else "The subscription agreement"
    session.add(TimelineEntry(
        tenant_id=offering.tenant_id, investor_id=refused.investor_id, opportunity_id=offering.opportunity_id,
        kind="investor.commit_refused", actor="system:subscription_agreement", idempotency_key=refused.key[:300],
        summary=f"{title} signed, not committed in {offering.title}: {'; '.join(refused.reasons)}"[:500],
        data={"offering_id": offering.id, "document_id": refused.document_id, "reasons": refused.reasons}))
    session.commit()


def totals(allocations: list[Allocation], target: Decimal) -> dict[str, Decimal]:
    """Per stage: soft-committed, committed (funded included: a place taken), funded (received), waitlisted,
    remaining to raise, and the equalisation (received minus committed, over the funded ones)."""
    def total(statuses, field="amount") -> Decimal:
        return sum((getattr(a, field) or Decimal(0) for a in allocations if a.status in statuses), Decimal(0))

    committed = total(("committed", "funded"))
    funded_committed = total(("funded",))
    funded = total(("funded",), "funded_amount")
    return {"soft_committed": total(("soft_commit",)), "committed": committed, "funded": funded,
            "waitlisted": total(("waitlisted",)), "remaining": max(target - committed, Decimal(0)),
            "equalisation": funded - funded_committed}


def investor_allocations(session: Session, tenant_id: str, investor_id: str,
                         ) -> list[tuple[Allocation, Offering, Opportunity]]:
    """An investor's allocations in every raise, newest first, with their offering and deal."""
    return list(session.exec(
        select(Allocation, Offering, Opportunity)
        .join(Offering, Offering.id == Allocation.offering_id)
        .join(Opportunity, Opportunity.id == Offering.opportunity_id)
        .where(Allocation.tenant_id == tenant_id, Allocation.investor_id == investor_id)
        .order_by(Allocation.created_at.desc(), Allocation.id.desc())).all())
