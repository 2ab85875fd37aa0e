"""A signed subscription agreement commits the soft commit it was sent for (issue 12).

When a deal hears `document.completed` for a `subscription_agreement`, the relay tells the OfferingWorkflow of
each allocation that agreement was sent for (`POST /offerings/{id}/allocations/{investor}/subscription` links
them) with the facts read now: eligible under the rule, from the floor of their verification, the close date, the
agreement signed and countersigned. The workflow decides as it decides staff's `POST .../commit` (the same rules,
in the one place that orders commitments, so it may waitlist), and writes a refusal on the investor's timeline
with every reason, where investor relations settle it. A signal, not an update: the relay waits for no activity
(on SQLite its own write lock would hold the workflow's write back), and a redelivered event finds the
allocation committed and changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlmodel import Session, select
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from models.document import Document
from models.event import Event
from models.offering import Allocation, Offering

ACTOR = "system:subscription_agreement"


async def _signal(client: Client, workflow_id: str, move) -> None:
    from workflows.offering import OfferingWorkflow

    await client.get_workflow_handle(workflow_id).signal(OfferingWorkflow.subscription_signed, move)


def commit_signed(session: Session, client: Client, event: Event, call: Callable[..., Any]) -> str:
    from services.offerings import allocation_facts
    from workflows.offering import AllocationFacts, AllocationMove

    document = session.get(Document, event.data.get("document_id"))
    if document is None or document.kind != "subscription_agreement":
        return "no subscription agreement"
    sent_for = session.exec(select(Allocation, Offering).join(Offering, Offering.id == Allocation.offering_id)
                            .where(Allocation.subscription_document_id == document.id,
                                   Allocation.tenant_id == document.tenant_id)).all()
    if not sent_for:
        return "signed: sent for no allocation (commit by hand: POST .../commit)"
    outcome = []
    for allocation, offering in sent_for:
        move = AllocationMove(investor_id=allocation.investor_id, action="commit", actor=ACTOR,
                              subscription_document_id=document.id, facts=AllocationFacts(
                                  **allocation_facts(session, offering, allocation.investor_id, document.id)))
        try:
            call(_signal, client, offering.workflow_id, move)
            outcome.append(f"{offering.workflow_id} told {allocation.investor_id} signed")
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise  # Temporal unreachable: the relay tries again
            outcome.append(f"{offering.workflow_id} has ended")
    return "; ".join(outcome)
