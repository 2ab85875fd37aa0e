"""The relay's failure paths, on a database of the test's own (no other relay touches it) and the session's dev
server (a task queue nobody polls: delivery is what is measured here, not the workflows).

- a poison event is retried with backoff, then parked with its error; what it wrote before failing is undone; it
  never holds back the later events of its subject, and staff can re-drive or discard it;
- a delivery that breaks the batch's transaction (a database error: no savepoint is taken per event) rolls the
  batch back; the batch is delivered again with a savepoint per event, so the poison event alone fails and every
  other event of the batch is delivered exactly once in the outbox.
"""

from __future__ import annotations

import asyncio
import uuid

from sqlalchemy import text
from sqlmodel import Session, select

from core.db import make_engine
from events.relay import Relay
from models.event import Event, emit
from models.lead import lead_workflow_id
from models.task import Task
from services.outbox import discard, redrive
from tests.conftest import eventually, insert_lead
from tests.integration.stack import own_database


class PoisonRelay(Relay):
    """Fails the delivery of events whose id starts with `poison`: outside the database (`poison-app`) or by
    breaking the transaction (`poison-db`, a statement that fails in Postgres or SQLite)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.attempted: list[tuple[str, bool]] = []

    def _deliver(self, session, event, published, running):
        careful = session.in_nested_transaction()
        self.attempted.append((event.event_id, careful))
        if event.event_id.startswith("poison-db"):
            session.execute(text("INSERT INTO tenants (id, name) VALUES (NULL, NULL)"))  # NOT NULL: refused
        if event.event_id.startswith("poison-app"):
            # it writes something first (as a delivery that started a run and then failed to hand over would):
            # a failed delivery must leave nothing behind, or its retry would take the write for done
            session.add(Task(tenant_id=event.tenant_id, lead_id=event.subject_id, title=f"half of {event.event_id}"))
            session.flush()
            raise ValueError("the payload makes no sense")
        return super()._deliver(session, event, published, running)


def _lead_event(session: Session, tenant: str, lead_id: str, event_id: str) -> None:
    emit(session, tenant_id=tenant, subject_type="lead", subject_id=lead_id, name="lead.note_added",
         event_id=event_id, data={"note": event_id}, workflow_signal="note", start=True,
         signal_payload={"event_id": event_id, "actor": "test", "note": event_id})


def _events(engine, tenant: str) -> dict[str, Event]:
    with Session(engine) as session:
        return {e.event_id: e for e in session.exec(select(Event).where(Event.tenant_id == tenant))}


async def _relay_running(relay: Relay):
    stop = asyncio.Event()
    return stop, asyncio.create_task(relay.run(stop))


async def test_a_poison_event_is_parked_without_holding_back_its_subject_and_can_be_redriven(
        database_url, temporal_client):
    with own_database(database_url) as url:
        engine = make_engine(url)
        tenant, lead_id = insert_lead(engine)
        with Session(engine) as session:
            _lead_event(session, tenant, lead_id, "poison-app-1")
            _lead_event(session, tenant, lead_id, "after-1")  # same subject, later: must not wait behind it
            session.commit()
        relay = PoisonRelay(engine, temporal_client, f"relay-{uuid.uuid4().hex[:6]}", poll_seconds=0.05,
                            max_attempts=2)
        stop, task = await _relay_running(relay)
        try:
            await eventually(lambda: _events(engine, tenant)["after-1"].delivered_at is not None, timeout=20)
            assert _events(engine, tenant)["poison-app-1"].parked_at is None  # still being retried meanwhile
            # attempt 1 failed; attempt 2 (after a 2 s backoff) fails too: parked, with its error
            await eventually(lambda: _events(engine, tenant)["poison-app-1"].parked_at is not None, timeout=20)
            poison = _events(engine, tenant)["poison-app-1"]
            assert poison.attempts == 2 and poison.delivered_at is None
            assert poison.last_error == "ValueError: the payload makes no sense"
            assert [a for a, _ in relay.attempted].count("after-1") == 1
            with Session(engine) as session:  # what the failed deliveries wrote before failing was undone
                assert session.exec(select(Task).where(Task.lead_id == lead_id)).all() == []

            with Session(engine) as session:  # re-driven: back in line, attempts reset, fails twice more
                assert [e.event_id for e in redrive(session, tenant_id=tenant, actor="ops")] == ["poison-app-1"]
                session.commit()
            assert _events(engine, tenant)["poison-app-1"].parked_at is None
            await eventually(lambda: _events(engine, tenant)["poison-app-1"].parked_at is not None, timeout=20)
            # each attempt: the fast pass fails and rolls back, the careful pass fails it alone (and counts it)
            assert [a for a, careful in relay.attempted if careful].count("poison-app-1") == 4

            with Session(engine) as session:  # discarded: dealt with, never delivered to a workflow
                seq = _events(engine, tenant)["poison-app-1"].seq
                assert [e.seq for e in discard(session, [seq], tenant_id=tenant, actor="ops")] == [seq]
                session.commit()
            discarded = _events(engine, tenant)["poison-app-1"]
            assert discarded.delivered_at is not None and discarded.outcome == "discarded by ops"
        finally:
            stop.set()
            await task
            engine.dispose()


async def test_a_delivery_that_breaks_the_transaction_fails_alone_and_the_batch_is_delivered_once(
        database_url, temporal_client):
    with own_database(database_url) as url:
        engine = make_engine(url)
        tenant = f"b{uuid.uuid4().hex[:6]}"
        leads = [insert_lead(engine, tenant=tenant)[1] for _ in range(6)]
        with Session(engine) as session:  # six subjects of one event each: one thread takes them as one batch
            for n, lead_id in enumerate(leads):
                _lead_event(session, tenant, lead_id, "poison-db-1" if n == 3 else f"good-{n}")
            session.commit()
        # one thread, up to 8 subjects a batch: the six are one transaction
        relay = PoisonRelay(engine, temporal_client, f"relay-{uuid.uuid4().hex[:6]}", poll_seconds=0.05,
                            concurrency=1, claim=8, max_attempts=1)
        stop, task = await _relay_running(relay)
        try:
            await eventually(lambda: _events(engine, tenant)["poison-db-1"].parked_at is not None, timeout=20)
            await eventually(lambda: all(e.delivered_at for k, e in _events(engine, tenant).items()
                                         if k.startswith("good")), timeout=20)
        finally:
            stop.set()
            await task
        events = _events(engine, tenant)
        # the fast pass reached the poison event and rolled back; the careful pass (a savepoint each) did the rest
        assert [(a, careful) for a, careful in relay.attempted][:4] == [
            ("good-0", False), ("good-1", False), ("good-2", False), ("poison-db-1", False)]
        assert [a for a, careful in relay.attempted if careful] == ["good-0", "good-1", "good-2", "poison-db-1",
                                                                   "good-4", "good-5"]
        for n in (0, 1, 2, 4, 5):  # marked once (attempts 1), with what Temporal answered
            good = events[f"good-{n}"]
            assert good.attempts == 1 and good.outcome.startswith("signal-with-start"), good
        poison = events["poison-db-1"]
        assert poison.delivered_at is None and poison.attempts == 1 and "IntegrityError" in poison.last_error
        # Temporal holds one workflow per lead. The three delivered before the rollback were signalled twice (at
        # least once: the LeadWorkflow dedupes a signal by its event id, tests/integration/test_outages.py); the
        # two after it once.
        for n, lead_id in enumerate(leads):
            if n == 3:
                continue
            history = await temporal_client.get_workflow_handle(lead_workflow_id(tenant, lead_id)).fetch_history()
            signals = [e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")]
            assert len(signals) == (2 if n < 3 else 1), (n, len(signals))
        engine.dispose()
