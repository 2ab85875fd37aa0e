"""LeadWorkflow's whole life on the real time-skipping test server, with activities mocked by same-named
@activity.defn functions (the samples-python style): days of cadence in seconds. Plus replay of recorded
histories (a change that breaks determinism for running leads fails here)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client, WorkflowHistory
from temporalio.common import SearchAttributePair, TypedSearchAttributes
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from activities.lead import LeadActivities
from core import search_attributes as sa
from core.devserver import time_skipping_environment
from definitions.loader import load
from models.payloads import (
    EnrichmentInput, EnrichmentResult, LeadEvent, LeadStatusInput, LeadWorkflowInput, MessageRequest, MessageResult,
    PropertyLookup, ScoreInput, ScoreResult, SendPlan, SendPlanInput, SourceOutcome, TaskInput, TimelineEntryInput,
    TimelineEntryResult,
)
from models.timeline import TimelineEntry
from tests.conftest import DEV_SERVER_STARTUP, eventually, insert_lead
from workflows.accreditation import AccreditationWorkflow
from workflows.deal import DealWorkflow
from workflows.definition import DefinitionEvent, DefinitionWorkflow
from workflows.enrichment import EnrichmentWorkflow
from workflows.lead import LeadWorkflow
from workflows.offering import OfferingWorkflow
from workflows.retrain import ScoringDriftWorkflow, ScoringRetrainWorkflow

HISTORIES = Path(__file__).resolve().parents[1] / "histories"
WORKFLOWS = [LeadWorkflow, EnrichmentWorkflow, DealWorkflow, DefinitionWorkflow, AccreditationWorkflow,
             OfferingWorkflow]


@pytest_asyncio.fixture(scope="module")
async def skipping_env():
    env = await time_skipping_environment()  # registers the search attributes it would not know
    yield env
    await env.shutdown()


class Recorded:
    """Same-named activities that record what the workflow asked for."""

    def __init__(self, score: float = 0.82, duplicates: dict[str, str] | None = None, score_error: str | None = None):
        self.timeline: list[TimelineEntryInput] = []
        self.statuses: list[LeadStatusInput] = []
        self.sends: list[MessageRequest] = []
        self.tasks: list[TaskInput] = []
        self.scores: list[ScoreInput] = []
        self.score, self.duplicates, self.score_error = score, duplicates or {}, score_error
        self.lead_status = "new"

    def activities(self):
        @activity.defn(name="record_timeline_entry")
        async def record_timeline_entry(entry: TimelineEntryInput) -> TimelineEntryResult:
            self.timeline.append(entry)
            return TimelineEntryResult(entry_id=f"tl_{len(self.timeline)}", created=True)

        @activity.defn(name="set_lead_status")
        async def set_lead_status(change: LeadStatusInput) -> None:
            self.statuses.append(change)
            self.lead_status = change.status

        @activity.defn(name="change_lead_status")  # a definition's set_status (through the lead's workflow)
        async def change_lead_status(change: LeadStatusInput) -> str:
            await set_lead_status(change)
            return change.status

        @activity.defn(name="load_lead")
        async def load_lead(ref: dict) -> dict:
            return {"id": ref["lead_id"], "status": self.lead_status, "source": "web_form", "first_name": "Maria",
                    "score": self.score, "tags": ["probate", "vacant"]}

        @activity.defn(name="validate_contact")
        async def validate_contact(request: EnrichmentInput) -> dict:
            return {"phone": {"valid": True, "type": "mobile"}, "email": {"valid": True, "disposable": False}}

        @activity.defn(name="standardize_address")
        async def standardize_address(request: EnrichmentInput) -> dict | None:
            return {"line1": "4500 OAK RIDGE DR", "line2": None, "city": "AUSTIN", "state": "TX", "zip": "78731",
                    "key": "4500 OAK RIDGE DR, AUSTIN, TX 78731"}

        @activity.defn(name="lookup_county_records")
        async def lookup_county_records(request: PropertyLookup) -> SourceOutcome:
            return SourceOutcome(status="ok", facts={"owner_name": "GARCIA MARIA", "absentee_owner": True})

        @activity.defn(name="lookup_property_api")
        async def lookup_property_api(request: PropertyLookup) -> SourceOutcome:
            raise ApplicationError("property API refused: 401", type="SourceRefused", non_retryable=True)

        @activity.defn(name="save_enrichment")
        async def save_enrichment(result: EnrichmentResult) -> None:
            self.enrichment = result

        @activity.defn(name="link_duplicates")
        async def link_duplicates(request: EnrichmentInput) -> str | None:
            return self.duplicates.get(request.lead_id)

        @activity.defn(name="score_lead")
        async def score_lead(request: ScoreInput) -> ScoreResult:
            self.scores.append(request)
            if self.score_error:
                raise ApplicationError(self.score_error, type="BadFeatures", non_retryable=True)
            return ScoreResult(probability=self.score, model_version="acme-v1-cold_start",
                               reasons=[{"text": "absentee owner +0.35"}])

        @activity.defn(name="create_task")
        async def create_task(request: TaskInput) -> str:
            self.tasks.append(request)
            return "tk_1"

        @activity.defn(name="plan_send")
        async def plan_send(plan: SendPlanInput) -> SendPlan:
            return SendPlan(zones=["America/Chicago"], zone_source="phone", opens_at=plan.now, summary="open")

        @activity.defn(name="send_message")
        async def send_message(request: MessageRequest) -> MessageResult:
            self.sends.append(request)
            return MessageResult(message_id=f"ms_{len(self.sends)}", status="sent")

        return [record_timeline_entry, set_lead_status, change_lead_status, load_lead, validate_contact, standardize_address, lookup_county_records,
                lookup_property_api, save_enrichment, link_duplicates, score_lead, create_task, plan_send,
                send_message]


def _start_args(lead_id: str, queue: str):
    return dict(id=f"lead-acme-{lead_id}", task_queue=queue, search_attributes=TypedSearchAttributes([
        SearchAttributePair(sa.TENANT_ID, "acme"), SearchAttributePair(sa.LEAD_ID, lead_id)]))


async def _start(client: Client, queue: str, lead_id: str | None = None):
    lead_id = lead_id or f"ld_{uuid.uuid4().hex[:8]}"
    handle = await client.start_workflow(
        LeadWorkflow.run, LeadWorkflowInput(tenant_id="acme", lead_id=lead_id, source="direct_mail"),
        start_signal="submitted", start_signal_args=[LeadEvent(event_id=lead_id, actor="key:k1",
                                                               data={"channel": "api"})],
        **_start_args(lead_id, queue))
    return handle, lead_id


async def test_full_lead_life_in_seconds(skipping_env):
    """Receipt, enrichment, scoring (written with the lead.scored event the first-touch definition starts from),
    the hot-lead task; the workflow sends nothing itself."""
    client: Client = skipping_env.client
    recorded, queue = Recorded(score=0.82), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, lead_id = await _start(client, queue)
        await skipping_env.sleep(timedelta(hours=1))
        state = await handle.query(LeadWorkflow.state)
        assert state.step == "done" and state.cadence_done and state.score == 0.82
        assert state.next_action == "waiting for replies, notes or staff actions"
        assert [(s.reason, s.event_id) for s in recorded.scores] == [("intake", "intake")]
        assert [t.title for t in recorded.tasks] == ["Call now: hot lead (82%)"]
        assert recorded.tasks[0].idempotency_key == f"{lead_id}:builtin-cadence:1:call_task"
        assert recorded.sends == [] and recorded.statuses == [] and state.first_touch == {}
        enrichment = recorded.enrichment  # county records answered; the property API refused: partial
        assert enrichment.sources["county_records"].status == "ok"
        assert enrichment.sources["property_api"].status == "failed" and enrichment.partial
        assert enrichment.facts["owner_name"] == "GARCIA MARIA"

        await skipping_env.sleep(timedelta(days=3))
        assert recorded.sends == []  # no built-in nudge either
        await handle.signal(LeadWorkflow.replied, LeadEvent(event_id="SM1", data={"text": "call me"}))
        await skipping_env.sleep(timedelta(minutes=1))
        # a reply re-scores, and that score is an event too
        assert [(s.reason, s.event_id) for s in recorded.scores][-1] == ("engagement", "engagement:SM1")
        await handle.signal(LeadWorkflow.close, LeadEvent(event_id="c1", note="sold"))
        result = await handle.result()
    assert result.status == "dead"
    description = await handle.describe()
    assert description.typed_search_attributes.get(sa.LEAD_SCORE) == 0.82


SPEED_TO_LEAD = (Path(__file__).resolve().parents[2] / "definitions" / "library" / "speed-to-lead.yaml").read_text()


async def test_speed_to_lead_first_touch_then_nudge_and_a_reply_stops_it(skipping_env):
    """The shipped first touch: welcome and text at once, contacted, the nudge after two quiet days; a reply
    before the nudge ends the run (no nudge)."""
    from tests.integration.test_definitions import _start as start_definition

    client: Client = skipping_env.client
    recorded, queue = Recorded(score=0.2), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        quiet, quiet_id = await start_definition(client, queue, SPEED_TO_LEAD)
        assert (await quiet.result()).status == "completed"
        sends = [(r.template, r.idempotency_key) for r in recorded.sends]
        assert sends == [("welcome", f"{quiet_id}:speed-to-lead:1:welcome"),
                         ("first_touch", f"{quiet_id}:speed-to-lead:1:first_touch"),
                         ("nudge_1", f"{quiet_id}:speed-to-lead:1:nudge")]
        assert [(s.status, s.actor) for s in recorded.statuses] == [("contacted", "definition:speed-to-lead")]

        recorded.sends.clear()
        recorded.lead_status = "new"
        answering, _ = await start_definition(client, queue, SPEED_TO_LEAD)
        await skipping_env.sleep(timedelta(hours=3))
        await answering.signal(DefinitionWorkflow.event, DefinitionEvent(name="lead.replied", event_id="r1",
                                                                         data={"text": "maybe"}))
        state = await answering.result()
    assert state.status == "exited" and "lead.replied" in state.path[-1]["detail"]
    assert [r.template for r in recorded.sends] == ["welcome", "first_touch"]


async def test_a_lead_that_answered_before_it_was_scored_is_scored_as_stopped(skipping_env):
    """The reply arrives with the start (before enrichment and scoring): the intake score's event says
    `stopped`, and the shipped first touch does not start for it."""
    from events.enrollment import matches

    client: Client = skipping_env.client
    recorded, queue = Recorded(score=0.3), f"tq-{uuid.uuid4().hex[:6]}"
    lead_id = f"ld_{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle = await client.start_workflow(
            LeadWorkflow.run, LeadWorkflowInput(tenant_id="acme", lead_id=lead_id, source="ppc"),
            start_signal="replied", start_signal_args=[LeadEvent(event_id="early", data={"text": "call me"})],
            **_start_args(lead_id, queue))
        await eventually(lambda: _state_is(handle, lambda s: s.step == "done"))
        await handle.terminate("test done")
    intake = next(s for s in recorded.scores if s.reason == "intake")  # (the reply re-scored first)
    assert (intake.reason, intake.event_id, intake.stopped) == ("intake", "intake", True)
    trigger = load(SPEED_TO_LEAD, "speed-to-lead.yaml").trigger_when
    lead = {"lead": {"id": lead_id, "status": "new"}}
    assert not matches(trigger, lead, {"reason": "intake", "probability": 0.3, "stopped": True})
    assert matches(trigger, lead, {"reason": "intake", "probability": 0.3, "stopped": False})


async def test_receipt_signals_dedupe_and_close(skipping_env):
    client: Client = skipping_env.client
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, lead_id = await _start(client, queue)
        await skipping_env.sleep(timedelta(minutes=5))
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
    assert recorded.timeline[0].data == {"source": "direct_mail", "channel": "api"}
    assert recorded.timeline[0].actor == "key:k1"
    assert all(e.occurred_at.tzinfo is not None for e in recorded.timeline)
    assert [(s.status, s.actor) for s in recorded.statuses] == [("dead", "key:k2")]
    description = await handle.describe()
    assert description.typed_search_attributes.get(sa.LEAD_STATUS) == "dead"


async def test_poison_lead_ends_in_needs_review_with_the_reason(skipping_env):
    client: Client = skipping_env.client
    recorded = Recorded(score_error="lead cannot be scored: could not convert 'n/a'")
    queue = f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        handle, lead_id = await _start(client, queue)
        await skipping_env.sleep(timedelta(days=3))
        state = await handle.query(LeadWorkflow.state)
        description = await handle.describe()
    assert description.status.name == "RUNNING"  # waiting for staff, not failed, not retrying
    assert state.status == "needs_review" and state.cadence_stopped
    assert recorded.statuses[-1].status == "needs_review"
    assert "could not convert 'n/a'" in recorded.statuses[-1].reason
    assert len(recorded.scores) == 1 and recorded.sends == []  # one try, and nobody gets messaged
    await handle.terminate("test done")


async def test_enrichment_duplicate_hands_over_to_the_original(skipping_env):
    client: Client = skipping_env.client
    queue, original_id, duplicate_id = f"tq-{uuid.uuid4().hex[:6]}", "ld_orig" + uuid.uuid4().hex[:6], "ld_dup"
    recorded = Recorded(score=0.3, duplicates={duplicate_id: original_id})
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
        original, _ = await _start(client, queue, original_id)
        await skipping_env.sleep(timedelta(minutes=5))
        handle, _ = await _start(client, queue, duplicate_id)
        await eventually(lambda: _completed(handle))  # hands over and ends
        result = await handle.result()
        state = await handle.query(LeadWorkflow.state)
        await eventually(lambda: "lead.duplicate_received" in [e.kind for e in recorded.timeline])
    assert state.merged_into == original_id and result.status == "new"
    assert [r for r in recorded.sends if r.lead_id == duplicate_id] == []  # the duplicate messages nobody
    received = [e for e in recorded.timeline if e.kind == "lead.duplicate_received"]
    assert received[0].lead_id == original_id and received[0].data["lead_id"] == duplicate_id
    try:
        await original.terminate("test done")
    except RPCError as exc:  # the skipped time may have let the original finish its lifecycle already
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise


async def _completed(handle) -> bool:
    return (await handle.describe()).status.name == "COMPLETED"


async def test_poison_input_fails_the_workflow_not_the_task(skipping_env):
    client: Client = skipping_env.client
    recorded, queue = Recorded(), f"tq-{uuid.uuid4().hex[:6]}"
    async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
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


@pytest.mark.parametrize("path", sorted(HISTORIES.glob("*_workflow_*.json")), ids=lambda p: p.name)
async def test_recorded_histories_replay(path):
    """A change that makes a workflow non-deterministic for running executions fails here."""
    history = WorkflowHistory.from_json(path.stem, json.loads(path.read_text()))
    await Replayer(workflows=[*WORKFLOWS, ScoringRetrainWorkflow, ScoringDriftWorkflow],
                   data_converter=pydantic_data_converter).replay_workflow(history)


def test_histories_exist():
    names = {p.name.split("_v")[0] for p in HISTORIES.glob("*_workflow_*.json")}
    assert {"lead_workflow", "enrichment_workflow", "deal_workflow", "accreditation_workflow",
                     "offering_workflow", "scoring_retrain_workflow", "scoring_drift_workflow"} <= names, \
        "record with: python -m tests.histories.record"


async def test_continue_as_new_carries_the_leads_state():
    """A dev server that suggests continue-as-new after 60 events: a long-lived lead moves to a new run
    with its status, cadence state and remembered event ids."""
    from core.devserver import temporal_cli

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli(), data_converter=pydantic_data_converter, search_attributes=sa.ALL,
        dev_server_startup_timeout=DEV_SERVER_STARTUP,
        dev_server_extra_args=["--dynamic-config-value", "limit.historyCount.suggestContinueAsNew=60"])
    try:
        client, queue = env.client, f"tq-{uuid.uuid4().hex[:6]}"
        recorded = Recorded(score=0.3)
        async with Worker(client, task_queue=queue, workflows=WORKFLOWS, activities=recorded.activities()):
            handle, lead_id = await _start(client, queue)
            await eventually(lambda: _state_is(handle, lambda s: s.step == "done"))
            await handle.signal(LeadWorkflow.replied, LeadEvent(event_id="r-first", data={"text": "later"}))
            first_run = (await handle.describe()).run_id
            for i in range(40):
                await handle.signal(LeadWorkflow.note, LeadEvent(event_id=f"n{i}", note=f"note {i}"))
            await eventually(lambda: _new_run(handle, first_run), timeout=30)
            await handle.signal(LeadWorkflow.replied, LeadEvent(event_id="r-first"))  # seen before the new run
            await handle.signal(LeadWorkflow.note, LeadEvent(event_id="after", note="after"))
            state = await eventually(lambda: _state_is(handle, lambda s: s.events == 42))
        assert state.status == "new" and state.cadence_done and state.cadence_stopped
        replies = [e for e in recorded.timeline if e.kind == "lead.replied"]
        assert len(replies) == 1  # the re-sent reply from before continue-as-new was ignored
        assert len([e for e in recorded.timeline if e.kind == "lead.note"]) == 41
        assert [s.reason for s in recorded.scores] == ["intake", "engagement"]  # the lifecycle ran once
        assert recorded.sends == []
        await handle.terminate("test done")
    finally:
        await env.shutdown()


async def _state_is(handle, predicate):
    state = await handle.query(LeadWorkflow.state)
    return state if predicate(state) else None


async def _new_run(handle, first_run: str) -> bool:
    return (await handle.describe()).run_id != first_run
