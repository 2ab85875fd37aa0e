"""Kill the worker process mid-activity, start a new one: the workflow finishes its step exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType, PendingActivityState
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from core import search_attributes as sa
from models.lead import Lead
from models.payloads import LeadWorkflowInput
from models.timeline import TimelineEntry
from tests.conftest import eventually, insert_lead
from workflows.lead import LeadWorkflow

ROOT = Path(__file__).resolve().parents[2]


def _start_worker(settings, task_queue: str, extra: dict[str, str] | None = None) -> subprocess.Popen:
    env = {**os.environ, "DEALFLOW_DATABASE_URL": settings.database_url,
           "DEALFLOW_TEMPORAL_ADDRESS": settings.temporal_address, "DEALFLOW_TEMPORAL_TASK_QUEUE": task_queue,
           "DEALFLOW_LOG_LEVEL": "WARNING", "DEALFLOW_SECRET_KEY": settings.secret_key,
           # the session's relay delivers this database's events; a second one would send them to this queue
           "DEALFLOW_RELAY_ENABLED": "false", **(extra or {})}
    return subprocess.Popen([sys.executable, "worker.py"], cwd=ROOT, env=env)


def _hold_timeline_write_lock(engine):
    """Open a transaction that blocks writes to timeline_entries until it is rolled back."""
    conn = engine.connect()
    if engine.dialect.name == "postgresql":
        conn.execute(text("BEGIN"))
        conn.execute(text("LOCK TABLE timeline_entries IN ACCESS EXCLUSIVE MODE"))
    else:
        conn.exec_driver_sql("BEGIN EXCLUSIVE")
    return conn


async def _start_lead_workflow(client, tenant: str, lead_id: str, task_queue: str):
    return await client.start_workflow(
        LeadWorkflow.run, LeadWorkflowInput(tenant_id=tenant, lead_id=lead_id, source="web_form"),
        id=f"lead-{tenant}-{lead_id}", task_queue=task_queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, tenant),
                                                 SearchAttributePair(sa.LEAD_ID, lead_id)]))


async def _activity_history(handle, name: str) -> tuple[list[int], list, list]:
    """One activity's scheduled event ids, started-event attributes (each with its final attempt) and
    completed events in the workflow's history."""
    history = await handle.fetch_history()
    scheduled = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
                 and e.activity_task_scheduled_event_attributes.activity_type.name == name]
    started = [e.activity_task_started_event_attributes for e in history.events
               if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
               and e.activity_task_started_event_attributes.scheduled_event_id in scheduled]
    completed = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                 and e.activity_task_completed_event_attributes.scheduled_event_id in scheduled]
    return scheduled, started, completed


def _release(lock, *processes) -> None:
    """End a test's table lock (if still held) and SIGTERM the workers still running."""
    if lock is not None:
        lock.rollback()
        lock.close()
    for process in processes:
        if process and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(20)


async def test_worker_killed_mid_activity_then_restarted_completes_the_step_once(engine, settings,
                                                                                 temporal_client):
    task_queue = f"restart-{uuid.uuid4().hex[:8]}"
    tenant, lead_id = insert_lead(engine, first_name="Crash")

    lock = _hold_timeline_write_lock(engine)
    first = _start_worker(settings, task_queue)
    second = None
    try:
        handle = await _start_lead_workflow(temporal_client, tenant, lead_id, task_queue)

        async def activity_started():
            pending = (await handle.describe()).raw_description.pending_activities
            return pending and pending[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED
        await eventually(activity_started, timeout=30)

        first.send_signal(signal.SIGKILL)  # no graceful shutdown: the process just dies mid-write
        first.wait(10)
        lock.rollback()
        lock.close()
        lock = None
        second = _start_worker(settings, task_queue)

        def recorded():
            with Session(engine) as session:
                return [e.kind for e in session.exec(select(TimelineEntry).where(TimelineEntry.lead_id == lead_id))
                        if e.kind == "lead.received"]
        assert await eventually(recorded, timeout=60, interval=0.5) == ["lead.received"]

        scheduled, started, completed = await _activity_history(handle, "record_timeline_entry")
        assert len(scheduled) == 1 and len(completed) == 1 and started[0].attempt == 2
        state = await handle.query(LeadWorkflow.state)
        assert state.received and not state.closed
        await handle.terminate("test done")
    finally:
        _release(lock, first, second)
    assert second.returncode == 0  # SIGTERM is a clean shutdown


async def test_worker_killed_between_provider_call_and_completion_sends_once(engine, settings, temporal_client,
                                                                             twilio_fake):
    """The worker dies after Twilio accepted the SMS but before the activity completed: the retry on a new
    worker finds the accepted message instead of sending it again."""
    import json

    from models.message import Message
    from models.payloads import MessageRequest
    from tests.conftest import FAKE_TENANT, toll_free
    from workflows.messaging import MessageWorkflow

    task_queue = f"restart-msg-{uuid.uuid4().hex[:8]}"
    phone = toll_free()
    _, lead_id = insert_lead(engine, tenant=FAKE_TENANT, first_name="Once", phone=phone)
    # this test's tenant's SMS through the Twilio fake (the session's DocuSign tenant needs keys this worker lacks)
    env = {"DEALFLOW_TENANT_PROVIDERS": json.dumps({FAKE_TENANT: settings.tenant_providers[FAKE_TENANT]}),
           "DEALFLOW_SENDGRID_API_KEY": settings.sendgrid_api_key, "DEALFLOW_SENDGRID_HOST": settings.sendgrid_host,
           "DEALFLOW_TWILIO_ACCOUNT_SID": settings.twilio_account_sid,
           "DEALFLOW_TWILIO_AUTH_TOKEN": settings.twilio_auth_token,
           "DEALFLOW_TWILIO_FROM_NUMBER": settings.twilio_from_number,
           "DEALFLOW_TWILIO_BASE_URL": settings.twilio_base_url, "DEALFLOW_PUBLIC_URL": settings.public_url}
    twilio_fake.hold.clear()  # Twilio will accept the message, then not answer until we say so
    twilio_fake.held.clear()
    first = _start_worker(settings, task_queue, env)
    second = None
    try:
        handle = await temporal_client.start_workflow(
            MessageWorkflow.run,
            MessageRequest(tenant_id=FAKE_TENANT, lead_id=lead_id, channel="sms", template="first_touch",
                           idempotency_key=f"{lead_id}:kill-test", respect_send_window=False),
            id=f"msg-{FAKE_TENANT}-{lead_id}", task_queue=task_queue,
            search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, FAKE_TENANT)]))
        await eventually(lambda: twilio_fake.held.is_set(), timeout=30)
        first.send_signal(signal.SIGKILL)  # Twilio has the message; the activity never completes
        first.wait(10)
        twilio_fake.hold.set()
        second = _start_worker(settings, task_queue, env)
        result = await handle.result()  # the retry runs after the 30 s start-to-close timeout
    finally:
        twilio_fake.hold.set()
        _release(None, first, second)
    creates = [r for r in twilio_fake.calls("POST", "/Messages.json") if r.form().get("To") == phone]
    lookups = [r for r in twilio_fake.calls("GET", "/Messages.json") if r.query.get("To") == [phone]]
    assert len(creates) == 1 and len(lookups) == 1
    accepted = [m for m in twilio_fake.messages if m["to"] == phone]
    assert result.status == "sent" and result.provider_message_id == accepted[0]["sid"]
    with Session(engine) as session:
        rows = session.exec(select(Message).where(Message.lead_id == lead_id)).all()
    assert len(rows) == 1 and rows[0].status == "sent"


async def test_worker_killed_mid_score_is_retried_in_seconds_not_at_the_timeout(engine, settings, temporal_client):
    """score_lead heartbeats: when its worker dies, Temporal gives the attempt to the next worker once the 10 s
    heartbeat timeout passes, not after the 2-minute start-to-close timeout (the first touch waits on it)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("holds a lock on one table while others are written: needs Postgres")
    task_queue = f"restart-score-{uuid.uuid4().hex[:8]}"
    tenant, lead_id = insert_lead(engine, first_name="Slow")
    lock = engine.connect()
    lock.execute(text("BEGIN"))
    lock.execute(text("LOCK TABLE scoring_models IN ACCESS EXCLUSIVE MODE"))  # score_lead blocks on its model
    first, second = _start_worker(settings, task_queue), None
    try:
        handle = await _start_lead_workflow(temporal_client, tenant, lead_id, task_queue)

        async def scoring_started():
            pending = (await handle.describe()).raw_description.pending_activities
            return any(p.activity_type.name == "score_lead"
                       and p.state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED for p in pending)
        await eventually(scoring_started, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed = time.monotonic()
        lock.rollback()
        lock.close()
        lock = None
        second = _start_worker(settings, task_queue)

        def scored():
            with Session(engine) as session:
                return session.get(Lead, lead_id).scored_at is not None
        await eventually(scored, timeout=60, interval=0.5)
        elapsed = time.monotonic() - killed
        assert elapsed < 45, f"scored {elapsed:.0f} s after the kill"  # the heartbeat timeout, not 2 minutes
        scheduled, started, _ = await _activity_history(handle, "score_lead")
        attempts = [attributes.attempt for attributes in started]
        assert len(scheduled) == 1 and attempts == [2]  # the lost attempt timed out; the second one scored
        await handle.terminate("test done")
    finally:
        _release(lock, first, second)
