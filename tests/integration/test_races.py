"""Exactly once under concurrency, over real HTTP: the app under uvicorn, requests on their own connections
released together, against the session's database (Postgres in CI: concurrent writers for real). Counted
afterwards: rows, workflows, messages — not flags.

Seen to fail with the constraints removed (docs/decisions.md, "Races"): without the partial unique indexes
on leads, 30 identical contact-only intakes stored 10 originals here (with an address, the unique property
row alone serialised them); without the unique webhook id, 30 replays stored 30 rows."""

from __future__ import annotations

import json
import time
import uuid

import pytest

from sqlalchemy import func
from sqlmodel import Session, col, select

from models.event import Event
from models.lead import Lead
from models.message import Message
from models.tenant import Role
from models.webhook import WebhookEvent
from tests.conftest import LEAD_SOURCE_TENANT, always_open, toll_free
from tests.integration.stack import released_together, uvicorn_api, wait_for
from tests.integration.test_lead_source_webhook import sign

N = 30


def _leads(engine, **where) -> list[Lead]:
    with Session(engine) as session:
        query = select(Lead)
        for key, value in where.items():
            query = query.where(getattr(Lead, key) == value)
        return list(session.exec(query).all())


async def _lead_workflows(client, lead_ids: list[str]) -> int:
    ids = " OR ".join(f'LeadId="{i}"' for i in lead_ids)
    return len([w async for w in client.list_workflows(f'WorkflowType="LeadWorkflow" AND ({ids})')])


@pytest.mark.parametrize("with_address", [False, True], ids=["contact-only", "with-property"])
async def test_identical_concurrent_intakes_store_one_original_one_workflow_one_welcome(
        settings, worker, engine, make_key, temporal_client, with_address):
    tenant = f"race{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    always_open(engine, tenant)  # the welcome goes out (the address puts the lead in Chicago's zone)
    email = f"maria.{uuid.uuid4().hex[:6]}@example.com"
    body = {"first_name": "Maria", "last_name": "Garcia", "email": email, "phone": toll_free(),
            "source": "web_form"}
    if with_address:  # the property row is unique per address too: one house, one row
        body["property_address"] = "4500 Oak Ridge Dr, Austin, TX 78731"

    with uvicorn_api(settings) as base_url:
        responses = released_together(
            base_url, [lambda c: c.post("/api/v1/leads", json=body, headers=headers) for _ in range(N)])

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] * (N - 1) + [201], codes  # one new lead, every other one a duplicate of it
    rows = _leads(engine, tenant_id=tenant)
    originals = [lead for lead in rows if lead.duplicate_of is None]
    assert len(rows) == N and len(originals) == 1
    assert {lead.duplicate_of for lead in rows if lead.duplicate_of} == {originals[0].id}
    assert len({lead.property_id for lead in rows}) == 1

    def welcomes() -> list[Message]:
        with Session(engine) as session:
            return list(session.exec(select(Message).where(Message.to_address == email,
                                                           Message.template == "welcome")).all())

    await wait_for(welcomes, timeout=60)

    def all_delivered() -> bool:  # the 29 resubmissions reached the original's workflow too
        with Session(engine) as session:
            return session.exec(select(func.count()).where(Event.tenant_id == tenant,
                                                           col(Event.delivered_at).is_(None))).one() == 0

    await wait_for(all_delivered, timeout=60)
    assert await _lead_workflows(temporal_client, [lead.id for lead in rows]) == 1
    time.sleep(1)  # anything doubled would have been sent by now
    assert len(welcomes()) == 1


async def test_the_same_signed_webhook_replayed_concurrently_stores_one_lead(settings, worker, engine, make_key,
                                                                             temporal_client):
    make_key(Role.staff, tenant=LEAD_SOURCE_TENANT)
    email = f"dana.{uuid.uuid4().hex[:6]}@example.com"
    body = json.dumps({"firstName": "Dana", "lastName": "Reed", "email": email, "mobile": "713-555-0199"}).encode()
    headers = {"Content-Type": "application/json",
               **sign("zap-secret", f"msg_{uuid.uuid4().hex}", int(time.time()), body)}
    url = f"/api/v1/webhooks/leads/zapier?tenant={LEAD_SOURCE_TENANT}"

    with uvicorn_api(settings) as base_url:
        responses = released_together(base_url, [lambda c: c.post(url, content=body, headers=headers)
                                                 for _ in range(N)])

    outcomes = sorted((r.status_code, r.json()["status"]) for r in responses)
    assert outcomes == [(201, "created")] + [(202, "duplicate")] * (N - 1), outcomes
    rows = _leads(engine, email=email)
    assert len(rows) == 1
    assert {r.json()["lead_id"] for r in responses} == {rows[0].id}  # every replay names the one lead
    with Session(engine) as session:
        assert len(session.exec(select(WebhookEvent).where(
            WebhookEvent.event_id == f"{LEAD_SOURCE_TENANT}:{headers['webhook-id']}")).all()) == 1
    await wait_for(lambda: _leads(engine, email=email)[0].score is not None, timeout=60)
    assert await _lead_workflows(temporal_client, [rows[0].id]) == 1


def test_events_of_one_subject_commit_in_the_order_of_their_seq(engine):
    """Two transactions writing events of one lead: the second waits for the first to commit, so a relay that
    reads in `seq` order never sees a later event committed before an earlier one. (Without the writers' lock
    in `emit`, the second inserted and committed at once with the higher seq, ahead of the first's commit.)"""
    import threading

    from models.event import emit
    from tests.conftest import insert_lead

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: commit order is insert order")
    tenant, lead_id = insert_lead(engine)
    first = Session(engine)
    emit(first, tenant_id=tenant, subject_type="lead", subject_id=lead_id, name="lead.note", event_id="first")
    second_done = threading.Event()

    def second() -> None:
        with Session(engine) as session:
            emit(session, tenant_id=tenant, subject_type="lead", subject_id=lead_id, name="lead.note",
                 event_id="second")
            session.commit()
        second_done.set()

    thread = threading.Thread(target=second)
    thread.start()
    try:
        assert not second_done.wait(1.0), "the second writer committed while the first was still open"
        first.commit()
        assert second_done.wait(10)
    finally:
        first.close()
        thread.join(10)
    with Session(engine) as session:
        order = session.exec(select(Event.event_id).where(Event.subject_id == lead_id).order_by(Event.seq)).all()
    assert order == ["first", "second"]
