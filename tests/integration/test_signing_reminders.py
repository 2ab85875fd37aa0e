"""The built-in provider's reminders for real: DocumentSigningWorkflow on the time-skipping server with its real
activities (SigningActivities over the CRM database, the builtin e-signature provider, the outbox email provider),
over a document requested through services/documents.py. Day 2 and day 5 each e-mail the signer whose turn it is a
reminder with their signing link, once, and leave a `reminded` event in the document's trail; then it expires."""

from __future__ import annotations

import concurrent.futures
import re
import uuid
from datetime import timedelta

import pytest_asyncio
from sqlalchemy import delete
from sqlmodel import Session, col, select
from temporalio.worker import Worker

from activities.signing import SigningActivities
from core.devserver import time_skipping_environment
from models.document import Document
from models.event import Event
from models.message import Message
from models.signing import SigningInput, SigningState
from services.documents import events_of, request_document
from tests.integration.test_signing import TERMS, make_deal
from workflows.signing import DocumentSigningWorkflow


@pytest_asyncio.fixture(scope="module")
async def skipping_env():
    env = await time_skipping_environment()
    yield env
    await env.shutdown()


def _request(engine, settings) -> tuple[str, str, SigningInput]:
    """A purchase agreement over a new deal, sequential (the seller signs first), its workflow's input; the relay
    is not to start it on the dev server (its `document.requested` event is dropped): this test runs it."""
    tenant, deal_id, seller = make_deal(engine)
    with Session(engine) as session:
        document, _ = request_document(
            session, settings, tenant_id=tenant, opportunity_id=deal_id, template="purchase_agreement",
            signers=[{"name": "Maria Garcia", "email": seller, "role": "seller"},
                     {"name": "Sam Buyer", "email": f"sam.{uuid.uuid4().hex[:6]}@example.com", "role": "buyer"}],
            expires_in=timedelta(days=7), terms=TERMS)
        session.flush()
        requested = session.exec(select(Event).where(Event.subject_type == "document",
                                                     Event.subject_id == document.id)).one()
        start = SigningInput.model_validate(requested.data)
        session.execute(delete(Event).where(col(Event.seq) == requested.seq))
        session.commit()
        return document.id, seller, start


def _mail(engine, document_id: str) -> list[Message]:
    with Session(engine) as session:
        document = session.get(Document, document_id)
        return list(session.exec(select(Message).where(Message.tenant_id == document.tenant_id,
                                                       col(Message.template).like("esign_%"))
                                 .order_by(col(Message.created_at))).all())


async def test_the_builtin_provider_reminds_on_day_two_and_five(skipping_env, engine, settings):
    document_id, seller, start = _request(engine, settings)
    assert start.reminder_days == [2, 5]
    queue = f"tq-{uuid.uuid4().hex[:6]}"
    activities = SigningActivities(engine, settings)
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as executor:
        async with Worker(skipping_env.client, task_queue=queue, workflows=[DocumentSigningWorkflow],
                          activities=[activities.create_envelope, activities.apply_provider_event,
                                      activities.invite_next_signers, activities.send_reminders,
                                      activities.complete_document, activities.void_envelope,
                                      activities.close_document],
                          activity_executor=executor):
            now = await skipping_env.get_current_time()
            start = start.model_copy(update={"expires_at": now + timedelta(days=7)})
            state: SigningState = await skipping_env.client.execute_workflow(
                DocumentSigningWorkflow.run, start, id=f"sign-{start.tenant_id}-{document_id}", task_queue=queue,
                result_type=SigningState)
    assert state.status == "expired" and state.reminders_sent == 2, state

    mail = _mail(engine, document_id)
    # sequential: the buyer's turn never came, so every message (the invitation, two reminders) is the seller's
    assert [(m.template, m.to_address, m.status) for m in mail] == [
        ("esign_invitation", seller, "sent"), ("esign_reminder", seller, "sent"), ("esign_reminder", seller, "sent")]
    invitation, first, second = mail
    assert first.subject == "Reminder: please sign Purchase and Sale Agreement" and first.provider == "outbox"
    def signer_in(body: str) -> str:  # the link names the signer (a timestamped token: its payload part)
        return re.search(r"https://crm\.example\.com/sign/([^.\s]+)\.", body).group(1)

    assert signer_in(first.body) == signer_in(invitation.body) == signer_in(second.body)  # their own link again
    assert "waiting for your signature" in first.body and first.id != second.id

    with Session(engine) as session:
        trail = [(e.event, e.detail) for e in events_of(session, document_id)]
    reminded = [detail for event, detail in trail if event == "reminded"]
    assert len(reminded) == 2 and reminded[0].startswith("reminder 1 to ") and reminded[1].startswith("reminder 2 ")
    assert seller in reminded[0] and trail[-1][0] == "expired", trail
