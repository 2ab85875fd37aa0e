"""LeadWorkflow continues-as-new whenever Temporal suggests it — here in the middle of its cadence, while it
waits for a reply — carrying the wait, what the first touch did and the signals it had not applied yet.

A dev server of its own suggests continue-as-new after 40 history events (dynamic config), so a burst of
notes during the reply wait makes the lead continue several times. Before, the main loop spun on the
suggestion while the cadence ran (deadlock detector, a workflow task failure every few seconds)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid

from sqlmodel import Session, func, select
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core import search_attributes as sa
from core.devserver import temporal_cli
from models.message import Message
from models.payloads import LeadEvent, LeadWorkflowInput
from models.timeline import TimelineEntry
from tests.conftest import eventually, insert_lead, set_tenant, toll_free, zone_at_local_hour
from worker import build_worker
from workflows.lead import LeadWorkflow

NOTES = 60


async def test_lead_continues_as_new_during_the_cadence_and_keeps_every_signal(engine, settings):
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter, search_attributes=sa.ALL,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    queue = f"can-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"temporal_task_queue": queue})
    tenant, lead_id = insert_lead(engine, first_name="Long", phone=toll_free())  # no zone: the tenant's
    set_tenant(engine, tenant, timezone=zone_at_local_hour(12))  # inside the send window: the first touch goes out
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as executor:
            async with build_worker(env.client, engine, own, executor):
                handle = await env.client.start_workflow(
                    LeadWorkflow.run, LeadWorkflowInput(tenant_id=tenant, lead_id=lead_id, source="web_form"),
                    id=f"lead-{tenant}-{lead_id}", task_queue=queue, start_signal="submitted",
                    start_signal_args=[LeadEvent(event_id=lead_id)])
                first_run = (await handle.describe()).run_id

                async def waiting():
                    state = await handle.query(LeadWorkflow.state)
                    return state if state.step == "wait_for_reply" else None

                await eventually(waiting, timeout=60)
                for burst in range(0, NOTES, 10):  # bursts: some arrive while a run is handing over
                    await asyncio.gather(*(handle.signal(LeadWorkflow.note, LeadEvent(
                        event_id=f"note-{i}", note=f"call attempt {i}")) for i in range(burst, burst + 10)))

                def notes() -> int:
                    with Session(engine) as session:
                        return session.exec(select(func.count()).select_from(TimelineEntry).where(
                            TimelineEntry.lead_id == lead_id, TimelineEntry.kind == "lead.note")).one()

                await eventually(lambda: notes() == NOTES, timeout=60)
                state = await eventually(waiting, timeout=30)  # the newest run resumed the same wait
                runs = [w async for w in env.client.list_workflows(f'WorkflowId="{handle.id}"')]
                assert len(runs) >= 2 and (await handle.describe()).run_id != first_run, "never continued as new"
                assert state.received and state.first_touch == {"welcome": "sent", "first_touch": "sent"}
                assert state.events >= NOTES
                with Session(engine) as session:
                    sent = session.exec(select(Message.template).where(Message.lead_id == lead_id)).all()
                assert sorted(sent) == ["first_touch", "welcome"]  # once each, across every run
                assert notes() == NOTES
                await asyncio.sleep(1)
                history = await env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
                failures = [e for e in history.events if e.event_type == 8]  # WORKFLOW_TASK_FAILED: no spinning
                assert failures == []
    finally:
        await env.shutdown()
