"""Quiet hours on the time-skipping server with the real activities and database: a lead that arrives at
night gets its first touch (the shipped speed-to-lead definition, started as the relay starts it) when the
window opens in ITS zone, once; an opt-out while waiting cancels it."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest_asyncio
from sqlmodel import Session, select
from temporalio.api.enums.v1 import EventType
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from core import search_attributes as sa
from core.devserver import time_skipping_environment
from definitions.loader import load
from definitions.model import DefinitionEvent, DefinitionRun
from definitions.send_window import SendWindow
from models.message import Message
from tests.conftest import insert_lead, set_tenant, toll_free, zone_at_local_hour
from worker import build_worker
from workflows.definition import DefinitionWorkflow

SPEED_TO_LEAD = Path(__file__).resolve().parents[2] / "definitions" / "library" / "speed-to-lead.yaml"


@pytest_asyncio.fixture(scope="module")
async def skipping(engine, settings):
    env = await time_skipping_environment()
    queue = f"quiet-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
        async with build_worker(env.client, engine, settings.model_copy(update={"temporal_task_queue": queue}),
                                executor):
            yield env, queue
    await env.shutdown()


async def _start_night_lead(env, queue, engine):
    zone = zone_at_local_hour(23, await env.get_current_time())  # about 23:00 where this lead lives
    tenant, lead_id = insert_lead(engine, first_name="Night", phone=toll_free(),
                                  email=f"night.{uuid.uuid4().hex[:6]}@example.com")
    set_tenant(engine, tenant, timezone=zone)
    definition = load(SPEED_TO_LEAD.read_text(), SPEED_TO_LEAD.name)
    handle = await env.client.start_workflow(
        DefinitionWorkflow.run, DefinitionRun(tenant_id=tenant, subject_id=lead_id, definition=definition),
        id=f"def-{tenant}-speed-to-lead-{lead_id}", task_queue=queue,
        search_attributes=TypedSearchAttributes([SearchAttributePair(sa.TENANT_ID, tenant)]))
    return handle, tenant, lead_id, zone


def _messages(engine, lead_id):
    with Session(engine) as session:
        return session.exec(select(Message).where(Message.lead_id == lead_id)).all()


async def test_lead_at_night_gets_its_first_sms_when_the_window_opens_once(skipping, engine):
    env, queue = skipping
    handle, tenant, lead_id, zone = await _start_night_lead(env, queue, engine)
    started = (await handle.describe()).start_time
    opens = SendWindow.parse("mon-sat", "08:00", "20:00").next_opening(started, [zone])
    assert opens - started > timedelta(hours=7)  # tonight -> tomorrow 08:00 (or Monday)

    await env.sleep(timedelta(hours=1))
    assert _messages(engine, lead_id) == []  # nothing at night
    state = await handle.query(DefinitionWorkflow.state)
    assert state.current_step == "welcome"

    await env.sleep(opens - started + timedelta(minutes=5))
    messages = _messages(engine, lead_id)
    assert sorted((m.channel, m.template, m.status) for m in messages) == [
        ("email", "welcome", "sent"), ("sms", "first_touch", "sent")]

    history = await handle.fetch_history()
    timers = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
              and "send window" in e.user_metadata.summary.data.decode()]
    sends = [e for e in history.events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
             and e.activity_task_scheduled_event_attributes.activity_type.name == "send_message"]
    # one durable timer (the email's; the text follows with the window open) and one send per channel
    assert len(timers) == 1 and len(sends) == 2
    for send in sends:
        sent_at = send.event_time.ToDatetime().replace(tzinfo=ZoneInfo("UTC"))
        assert opens <= sent_at < opens + timedelta(minutes=1), (sent_at, opens)
        local = sent_at.astimezone(ZoneInfo(zone))
        assert (local.hour, local.minute) == (8, 0)
    assert "send window opens" in timers[0].user_metadata.summary.data.decode()
    await handle.terminate("test done")


async def test_opt_out_while_waiting_cancels_the_first_touch(skipping, engine):
    env, queue = skipping
    handle, tenant, lead_id, zone = await _start_night_lead(env, queue, engine)
    await env.sleep(timedelta(minutes=30))
    await handle.signal(DefinitionWorkflow.event, DefinitionEvent(name="lead.opted_out", event_id="SMstop",
                                                                  data={"note": "texted STOP"}))
    state = await handle.result()  # at once, not when the window opens
    assert state.status == "exited" and "lead.opted_out" in state.path[-1]["detail"]
    assert [(p["step"], p["kind"]) for p in state.path] == [("welcome", "end")]  # the welcome never went out
    await env.sleep(timedelta(days=2))
    assert _messages(engine, lead_id) == []
