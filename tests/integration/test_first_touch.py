"""One cadence mechanism: LeadWorkflow sends nothing itself; the first touch is the speed-to-lead definition every
tenant has published from the start, and the shipped library published all together never messages a lead
twice (a definition that `replaces` another takes its place, or ends its run: a hand-over)."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from pathlib import Path

from sqlmodel import Session, select

from models.definition import WorkflowDefinition, WorkflowExecution
from models.message import Message
from models.tenant import Role
from tests.conftest import always_open, eventually, toll_free
from workflows.definition import DefinitionWorkflow
from workflows.lead import LeadWorkflow

LIBRARY = Path(__file__).resolve().parents[2] / "definitions" / "library"


def _tenant(make_key, engine) -> tuple[str, dict, dict]:
    tenant = f"f{uuid.uuid4().hex[:6]}"
    staff, ops = make_key(Role.staff, tenant=tenant), make_key(Role.ops, tenant=tenant)
    always_open(engine, tenant)  # whatever the hour and weekday the test runs, the first touch goes out at once
    return tenant, staff, ops


def _messages(engine, lead_id: str) -> Counter:
    with Session(engine) as session:
        return Counter(m.template for m in session.exec(select(Message).where(Message.lead_id == lead_id)))


def _runs(engine, lead_id: str) -> dict[str, WorkflowExecution]:
    with Session(engine) as session:
        return {r.definition_key: r for r in session.exec(select(WorkflowExecution).where(
            WorkflowExecution.subject_id == lead_id, WorkflowExecution.workflow_type == "DefinitionWorkflow"))}


async def _lead(api, staff, source: str) -> dict:
    created = await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Maria", "last_name": "Garcia", "email": f"maria.{uuid.uuid4().hex[:8]}@example.com",
        "phone": toll_free(), "source": source})
    assert created.status_code == 201, created.text
    return created.json()


async def test_a_new_tenant_has_speed_to_lead_published_and_the_lead_workflow_sends_nothing(
        api, make_key, engine, temporal_client):
    tenant, staff, _ = _tenant(make_key, engine)
    with Session(engine) as session:
        published = session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == tenant)).all()
    assert [(d.key, d.status) for d in published] == [("speed-to-lead", "published")]

    lead = await _lead(api, staff, "ppc")
    await eventually(lambda: _messages(engine, lead["id"]) == {"welcome": 1, "first_touch": 1}, timeout=30)
    with Session(engine) as session:
        keys = sorted(m.idempotency_key for m in session.exec(select(Message).where(Message.lead_id == lead["id"])))
    assert keys == [f"{lead['id']}:speed-to-lead:1:first_touch", f"{lead['id']}:speed-to-lead:1:welcome"]
    await eventually(lambda: _status(api, staff, lead["id"], "contacted"))  # set by the definition, via the lead
    state = await temporal_client.get_workflow_handle(lead["workflow_id"]).query(LeadWorkflow.state)
    assert state.first_touch == {} and state.cadence_done  # the lifecycle is over; it sent nothing itself
    run = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, _runs(engine, lead["id"])["speed-to-lead"]
                                                  .workflow_id)
    # the lead's status is set before the set_status activity returns to the run: the run moves on a moment later
    async def waiting_for_a_reply() -> bool:
        return (await run.query(DefinitionWorkflow.state)).current_step == "wait_reply"
    await eventually(waiting_for_a_reply, timeout=10)


async def test_a_tenant_that_retires_speed_to_lead_sends_no_first_touch(api, make_key, engine):
    tenant, staff, ops = _tenant(make_key, engine)
    assert (await api.post("/api/v1/definitions/speed-to-lead/retire", headers=ops)).status_code == 200
    lead = await _lead(api, staff, "ppc")
    await eventually(lambda: _scored(engine, lead["id"]), timeout=30)
    await asyncio.sleep(1.0)  # the relay has had time to deliver lead.scored (to nothing)
    assert _messages(engine, lead["id"]) == {} and _runs(engine, lead["id"]) == {}


async def test_the_whole_library_published_together_messages_a_lead_once(api, make_key, engine, temporal_client):
    tenant, staff, ops = _tenant(make_key, engine)
    for path in sorted(LIBRARY.glob("*.yaml")):
        if path.stem == "speed-to-lead":
            continue  # published already (every tenant has it)
        saved = await api.post("/api/v1/definitions", content=path.read_bytes(),
                               headers={**ops, "Content-Type": "application/yaml"})
        assert saved.status_code == 201, saved.text
        version = saved.json()["version"]
        assert (await api.post(f"/api/v1/definitions/{path.stem}/versions/{version}/publish",
                               headers=ops)).status_code == 200

    web, ppc = await _lead(api, staff, "web_form"), await _lead(api, staff, "ppc")
    # web-lead-nurture takes speed-to-lead's place for the web lead; the ppc lead gets speed-to-lead. Each has
    # its first touch once, and then cant-reach (which starts at `contacted`) takes the run over.
    for lead, first in ((web, "web-lead-nurture"), (ppc, "speed-to-lead")):
        await eventually(lambda lead=lead, first=first: set(_runs(engine, lead["id"])) == {first, "cant-reach"},
                         timeout=40)
        runs = _runs(engine, lead["id"])
        handed = await temporal_client.get_workflow_handle_for(
            DefinitionWorkflow.run, runs[first].workflow_id).result()
        assert handed.status == "exited" and handed.path[-1]["detail"] == "exited: handed over to cant-reach"
        taking_over = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, runs["cant-reach"].workflow_id)
        # waiting: two days before its first attempt, and for an answer (its parallel lanes)
        await eventually(lambda handle=taking_over: _current(handle, "gap_0", "answer"))
        assert _messages(engine, lead["id"]) == {"welcome": 1, "first_touch": 1}, lead["source"]
        shown = (await api.get(f"/api/v1/leads/{lead['id']}", headers=staff)).json()["definitions"]
        assert sorted((d["key"], d["status"]) for d in shown) == [("cant-reach", "running"), (first, "completed")]


def _scored(engine, lead_id: str) -> bool:
    from models.event import Event

    with Session(engine) as session:
        return session.exec(select(Event).where(Event.subject_id == lead_id, Event.name == "lead.scored",
                                                Event.delivered_at.is_not(None))).first() is not None


async def _status(api, staff, lead_id: str, status: str) -> bool:
    return (await api.get(f"/api/v1/leads/{lead_id}", headers=staff)).json()["status"] == status


async def _current(handle, *steps: str) -> bool:
    return (await handle.query(DefinitionWorkflow.state)).current_step in steps


OWN_FIRST_TOUCH = """schema: dealflow/v1
key: our-welcome
trigger: {event: lead.created}
replaces: [speed-to-lead]
steps:
  - {id: hello, action: send_email, with: {template: welcome}}
  - {id: wait, wait: 3d}
"""


async def test_a_replacement_that_started_earlier_keeps_the_replaced_first_touch_out(api, make_key, engine):
    """The tenant's own first touch starts on lead.created; speed-to-lead's trigger (lead.scored) comes later and
    finds the lead taken over: it does not start, and the lead is welcomed once."""
    tenant, staff, ops = _tenant(make_key, engine)
    saved = await api.post("/api/v1/definitions", content=OWN_FIRST_TOUCH.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post("/api/v1/definitions/our-welcome/versions/1/publish", headers=ops)).status_code == 200
    lead = await _lead(api, staff, "ppc")
    await eventually(lambda: _scored(engine, lead["id"]), timeout=30)
    await eventually(lambda: _messages(engine, lead["id"]) == {"welcome": 1}, timeout=30)
    await asyncio.sleep(1.0)
    assert set(_runs(engine, lead["id"])) == {"our-welcome"} and _messages(engine, lead["id"]) == {"welcome": 1}


async def test_two_definitions_that_replace_each_other_cannot_both_be_published(api, make_key, engine):
    tenant, staff, ops = _tenant(make_key, engine)
    mutual = OWN_FIRST_TOUCH.replace("trigger: {event: lead.created}", "trigger: {event: lead.scored}")
    speed = (LIBRARY / "speed-to-lead.yaml").read_text().replace("version: 1", "version: 2")
    speed = speed.replace("settings:", "replaces: [our-welcome]\nsettings:")
    for source in (mutual, speed):
        assert (await api.post("/api/v1/definitions", content=source.encode(),
                               headers={**ops, "Content-Type": "application/yaml"})).status_code == 201
    assert (await api.post("/api/v1/definitions/our-welcome/versions/1/publish", headers=ops)).status_code == 200
    refused = await api.post("/api/v1/definitions/speed-to-lead/versions/2/publish", headers=ops)
    assert refused.status_code == 409 and "replace each other" in refused.json()["detail"]
