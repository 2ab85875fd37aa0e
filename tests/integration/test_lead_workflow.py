"""LeadWorkflow on the real time-skipping test server, with activities mocked by same-named
@activity.defn functions (the samples-python style), plus replay of recorded histories."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.lead import LeadActivities
from core import search_attributes as sa
from core.devserver import time_skipping_server_binary
from models.payloads import LeadEvent, LeadStatusInput, LeadWorkflowInput, TimelineEntryInput, TimelineEntryResult
from models.timeline import TimelineEntry
from tests.conftest import insert_lead
from workflows.lead import LeadWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"


@pytest_asyncio.fixture(scope="module")
async def skipping_env():
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=time_skipping_server_binary(), data_converter=pydantic_data_converter)
    # The time-skipping server knows no custom search attributes until they are registered.
    await env.client.operator_service.add_search_attributes(AddSearchAttributesRequest(
        namespace=env.client.namespace,
        search_attributes={key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in sa.ALL},
    ))
    yield env
    await env.shutdown()


class Recorded:
    def __init__(self) -> None:
        self.timeline: list[TimelineEntryInput] = []
        self.statuses: list[LeadStatusInput] = []

    def activities(self):
        @activity.defn(name="record_timeline_entry")
        async def record_timeline_entry(entry: TimelineEntryInput) -> TimelineEntryResult:
            self.timeline.append(entry)
            return TimelineEntryResult(entry_id=f"tl_{len(self.timeline)}", created=True)

        @activity.defn(name="set_lead_status")
        async def set_lead_status(change: LeadStatusInput) -> None:
            self.statuses.append(change)

        return [record_timeline_entry, set_lead_status]


def _start_args(lead_id: str, queue: str):
    return dict(id=f"lead-acme-{lead_id}", task_queue=queue, search_attributes=TypedSearchAttributes([
        SearchAttributePair(sa.TENANT_ID, "acme"), SearchAttributePair(sa.LEAD_ID, lead_id)]))


async def test_receipt_signals_dedupe_and_close(skipping_env):
    client: Client = skipping_env.client
    recorded, queue, lead_id = Recorded(), f"tq-{uuid.uuid4().hex[:6]}", f"ld_{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[LeadWorkflow], activities=recorded.activities()):
        handle = await client.start_workflow(
            LeadWorkflow.run, LeadWorkflowInput(tenant_id="acme", lead_id=lead_id, source="ppc"),
            start_signal="submitted",
            start_signal_args=[LeadEvent(event_id=lead_id, actor="key:k1", data={"channel": "api"})],
            **_start_args(lead_id, queue))
        for event_id in ("r1", "r1", "r2"):  # r1 delivered twice
            await handle.signal(LeadWorkflow.replied, LeadEvent(event_id=event_id, data={"text": "yes"}))
        await handle.signal(LeadWorkflow.submitted, LeadEvent(event_id="ld_dup", note="again"))
        await handle.signal(LeadWorkflow.close, LeadEvent(event_id="c1", note="no longer selling", actor="key:k2"))
        result = await handle.result()

    assert result.status == "dead" and result.events == 4
    kinds = [(e.kind, e.idempotency_key) for e in recorded.timeline]
    assert kinds == [
        ("lead.received", f"{lead_id}:lead.received"),
        ("lead.replied", f"{lead_id}:replied:r1"),
        ("lead.replied", f"{lead_id}:replied:r2"),
        ("lead.duplicate_received", f"{lead_id}:submitted:ld_dup"),
        ("lead.closed", f"{lead_id}:close:c1"),
    ]
    assert recorded.timeline[0].data == {"source": "ppc", "channel": "api"}
    assert recorded.timeline[0].actor == "key:k1"
    assert all(e.occurred_at.tzinfo is not None for e in recorded.timeline)
    assert [(s.status, s.reason, s.actor) for s in recorded.statuses] == [("dead", "no longer selling", "key:k2")]
    description = await handle.describe()
    assert description.typed_search_attributes.get(sa.LEAD_STATUS) == "dead"


async def test_poison_input_fails_the_workflow_not_the_task(skipping_env):
    client: Client = skipping_env.client
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=[LeadWorkflow], activities=recorded.activities()):
        handle = await client.start_workflow(
            LeadWorkflow.run, LeadWorkflowInput(tenant_id="acme", lead_id="", source="ppc"),
            **_start_args("poison", queue))
        with pytest.raises(Exception) as failure:
            await handle.result()
    assert "needs tenant_id and lead_id" in str(failure.value.cause)
    assert recorded.timeline == []


def test_record_timeline_entry_is_idempotent(engine):
    tenant, lead_id = insert_lead(engine, first_name="Once")
    entry = TimelineEntryInput(tenant_id=tenant, lead_id=lead_id, kind="lead.received",
                               idempotency_key=f"{lead_id}:lead.received", occurred_at=datetime.now(UTC))
    activities = LeadActivities(engine)
    env = ActivityEnvironment()
    first = env.run(activities.record_timeline_entry, entry)
    second = env.run(activities.record_timeline_entry, entry)  # a retry after a crash past the commit
    assert first.created and not second.created and first.entry_id == second.entry_id
    with Session(engine) as session:
        rows = session.exec(select(TimelineEntry).where(TimelineEntry.lead_id == lead_id)).all()
    assert len(rows) == 1


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("lead_workflow_*.json")), ids=lambda p: p.name)
async def test_recorded_histories_replay(path):
    """A change that makes LeadWorkflow non-deterministic for running leads fails here."""
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    await Replayer(workflows=[LeadWorkflow], data_converter=pydantic_data_converter).replay_workflow(history)


def test_histories_exist():
    assert list(HISTORIES.glob("lead_workflow_*.json")), "record with: python -m tests.histories.record"
