"""A signed subscription agreement commits its soft commit (issue 12).

When a deal hears `document.completed` for a `subscription_agreement`, the relay asks the deal's active
offering's OfferingWorkflow to commit each subscriber who signed it and holds a soft commit there: the same
validated update (and the same facts: eligible under the rule now, from the floor of their verification, the
close date, the agreement signed and countersigned) as staff's `POST .../commit`, so a commitment is decided in
one place, in commitment order, and may still be waitlisted. A refusal is not retried: it is written on the
investor's timeline with every reason, where investor relations see it and commit by hand once it is settled.
Delivered twice (a relay retry), the second update finds the commitment made and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError, RPCStatusCode

from models.document import Document, DocumentSigner
from models.event import Event
from models.investor import Investor
from models.offering import Allocation, Offering
from models.timeline import TimelineEntry

ACTOR = "system:subscription_agreement"


async def _commit(client: Client, workflow_id: str, move) -> Any:
    from workflows.offering import OfferingWorkflow

    return await client.get_workflow_handle(workflow_id).execute_update(OfferingWorkflow.allocate, move)


def commit_signed(session: Session, client: Client, event: Event, call: Callable[..., Any]) -> str:
    from services.offerings import allocation_facts
    from workflows.offering import AllocationFacts, AllocationMove

    document = session.get(Document, event.data.get("document_id"))
    if document is None or document.kind != "subscription_agreement" or document.opportunity_id is None:
        return "no subscription agreement"
    emails = list(session.exec(select(DocumentSigner.email).where(DocumentSigner.document_id == document.id)))
    pending = session.exec(
        select(Allocation, Offering, Investor)
        .join(Offering, Offering.id == Allocation.offering_id)
        .join(Investor, Investor.id == Allocation.investor_id)
        .where(Offering.opportunity_id == document.opportunity_id, Offering.status == "active",
               Allocation.status == "soft_commit", func.lower(Investor.email).in_([e.lower() for e in emails]))
        .order_by(col(Allocation.created_at))).all()
    if not pending:
        return "signed: no soft commit of a signer in an active raise"
    outcome = []
    for _allocation, offering, investor in pending:
        move = AllocationMove(investor_id=investor.id, action="commit", subscription_document_id=document.id,
                              actor=ACTOR, facts=AllocationFacts(**allocation_facts(session, offering, investor.id,
                                                                                    document.id)))
        try:
            call(_commit, client, offering.workflow_id, move)
            outcome.append(f"{investor.id} committed in {offering.id}")
        except WorkflowUpdateFailedError as exc:
            cause = exc.cause
            reasons = [d for d in (getattr(cause, "details", None) or ()) if isinstance(d, str)] or [str(cause)]
            _refused(session, offering, investor, document, reasons, event.event_id)
            outcome.append(f"{investor.id} not committed: {'; '.join(reasons)}")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal unreachable: the relay tries again
            outcome.append(f"{offering.id}'s workflow has ended")
    return "; ".join(outcome)


def _refused(session: Session, offering: Offering, investor: Investor, document: Document, reasons: list[str],
             event_id: str) -> None:
    key = f"{event_id}:{investor.id}:commit-refused"[:300]
    if session.exec(select(TimelineEntry.id).where(TimelineEntry.idempotency_key == key)).first() is None:
        session.add(TimelineEntry(
            tenant_id=offering.tenant_id, investor_id=investor.id, opportunity_id=offering.opportunity_id,
            kind="investor.commit_refused", actor=ACTOR, idempotency_key=key,
            summary=f"{document.title} signed, not committed in {offering.title}: {'; '.join(reasons)}"[:500],
            data={"offering_id": offering.id, "document_id": document.id, "reasons": reasons}))
