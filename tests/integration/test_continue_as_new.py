"""LeadWorkflow continues-as-new whenever Temporal suggests it, carrying its state and the signals it had not
applied yet: once its lifecycle is over (the usual case since the first touch is a definition), and in the
middle of the old built-in cadence (a run of the old code that was waiting for a reply resumes that wait).

A dev server of its own suggests continue-as-new after 40 history events (dynamic config), so a burst of
notes makes the lead continue several times. Before, the main loop spun on the suggestion while the cadence
ran (deadlock detector, a workflow task failure every few seconds)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, func, select
from temporalio.client import WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from core import search_attributes as sa
from core.devserver import temporal_cli
from models.message import Message
from models.payloads import LeadEvent, LeadWorkflowInput
from models.timeline import TimelineEntry
from tests.conftest import DEV_SERVER_STARTUP, eventually, insert_lead, toll_free
from worker import build_worker
from workflows.lead import LeadWorkflow

NOTES = 60


async def test_lead_continues_as_new_after_its_lifecycle_and_during_the_old_cadence(engine, settings):
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter, search_attributes=sa.ALL,
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=40"])
    queue = f"can-{uuid.uuid4().hex[:6]}"
    own = settings.model_copy(update={"temporal_task_queue": queue})
    try:
        with concurrent.futures.ThreadPoolExecutor(max_workers=16) as executor:
            async with build_worker(env.client, engine, own, executor):
                # A new lead: receipt, enrichment, scoring, then it waits for signals.
                tenant, lead_id = insert_lead(engine, first_name="Long", phone=toll_free())
                handle = await env.client.start_workflow(
                    LeadWorkflow.run, LeadWorkflowInput(tenant_id=tenant, lead_id=lead_id, source="web_form"),
                    id=f"lead-{tenant}-{lead_id}", task_queue=queue, start_signal="submitted",
                    start_signal_args=[LeadEvent(event_id=lead_id)])
                state = await _burst_of_notes(env, engine, handle, lead_id, step="done")
                assert state.received and state.cadence_done and state.score is not None

                # A run of the old code that continued as new while its cadence waited for a reply: the new run
                # takes the wait over, and keeps taking it over.
                tenant, lead_id = insert_lead(engine, first_name="Older", phone=toll_free())
                deadline = datetime.now(UTC) + timedelta(days=2)
                handle = await env.client.start_workflow(
                    LeadWorkflow.run, LeadWorkflowInput(
                        tenant_id=tenant, lead_id=lead_id, source="web_form", status="contacted", received=True,
                        reply_wait_until=deadline, first_touch={"welcome": "sent", "first_touch": "sent"}, score=0.4),
                    id=f"lead-{tenant}-{lead_id}", task_queue=queue)
                state = await _burst_of_notes(env, engine, handle, lead_id, step="wait_for_reply")
                assert state.first_touch == {"welcome": "sent", "first_touch": "sent"} and state.score == 0.4
                assert state.next_action.startswith(f"wait for a reply until {deadline:%Y-%m-%d %H:%M}")
                with Session(engine) as session:  # nothing was sent again by any of the runs
                    assert session.exec(select(Message.template).where(Message.lead_id == lead_id)).all() == []
    finally:
        await env.shutdown()


async def _burst_of_notes(env, engine, handle, lead_id: str, step: str):
    first_run = (await handle.describe()).run_id

    async def at_step():  # (a run that is handing over to the next one has stopped waiting already)
        state = await handle.query(LeadWorkflow.state)
        waiting = step != "wait_for_reply" or state.next_action.startswith("wait for a reply")
        return state if state.step == step and waiting else None

    await eventually(at_step, timeout=60)
    for burst in range(0, NOTES, 10):  # bursts: some arrive while a run is handing over
        await asyncio.gather(*(handle.signal(LeadWorkflow.note, LeadEvent(
            event_id=f"note-{i}", note=f"call attempt {i}")) for i in range(burst, burst + 10)))

    def notes() -> int:
        with Session(engine) as session:
            return session.exec(select(func.count()).select_from(TimelineEntry).where(
                TimelineEntry.lead_id == lead_id, TimelineEntry.kind == "lead.note")).one()

    await eventually(lambda: notes() == NOTES, timeout=60)
    state = await eventually(at_step, timeout=30)  # the newest run is where the first one was
    # (describe, not list_workflows: visibility is eventually consistent and lagged under CI's load)
    first = await env.client.get_workflow_handle(handle.id, run_id=first_run).describe()
    assert first.status == WorkflowExecutionStatus.CONTINUED_AS_NEW, "never continued as new"
    assert (await handle.describe()).run_id != first_run
    assert state.events >= NOTES
    await asyncio.sleep(1)
    assert notes() == NOTES  # every note once, across every run
    history = await env.client.get_workflow_handle(handle.id, run_id=first_run).fetch_history()
    failures = [e for e in history.events if e.event_type == 8]  # WORKFLOW_TASK_FAILED: no spinning
    assert failures == []
    return state
