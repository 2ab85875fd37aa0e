"""Published definitions start when their trigger happens (with `when` and re-enrollment rules), hear the
lead's events while running, and keep their version when a newer one is published."""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import Session, col, select

from models.definition import WorkflowExecution
from models.task import Task
from models.tenant import Role
from tests.conftest import (
    always_open, ready_for_contract, delivered, eventually, set_tenant, started_by, workflow_running, zone_at_local_hour,
)
from workflows.definition import DefinitionEvent, DefinitionState, DefinitionWorkflow

REFERRAL = """schema: dealflow/v1
key: referral-welcome
version: {version}
trigger: {{event: lead.created, when: 'lead.source == "referral"'}}
steps:
  - {{id: thank_referrer, action: create_task, with: {{title: "{title}"}}}}
  - {{id: wait_reply, wait_for: {{event: lead.replied, timeout: 3d}}, save_as: reply}}
  - {{id: qualify, if: 'reply != null', action: set_status, with: {{status: qualified}}}}
"""
APPOINTMENT = """schema: dealflow/v1
key: appt-prep
trigger: {event: appointment.booked}
enrollment: {reenroll: {after: 1d}}
steps:
  - {id: prep, action: create_task, with: {title: Prepare for the appointment}}
"""


async def _setup(api, make_key, engine):
    tenant = f"n{uuid.uuid4().hex[:6]}"
    ops, staff = make_key(Role.ops, tenant=tenant), make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(2))
    return tenant, ops, staff


async def _publish(api, ops, source: str, key: str, version: int = 1):
    saved = await api.post("/api/v1/definitions", content=source.encode(), headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post(f"/api/v1/definitions/{key}/versions/{version}/publish", headers=ops)).status_code == 200


def _runs(engine, lead_id):
    with Session(engine) as session:
        return session.exec(select(WorkflowExecution).where(WorkflowExecution.subject_id == lead_id)).all()


def _stage_event(engine, deal_id, stage) -> str:
    """The event id of the deal's move to `stage` (its StageChange row's id)."""
    from models.opportunity import StageChange

    with Session(engine) as session:
        return session.exec(select(StageChange.id).where(StageChange.opportunity_id == deal_id,
                                                          StageChange.to_stage == stage)).one()


def _tasks(engine, lead_id):
    with Session(engine) as session:
        return [t.title for t in session.exec(select(Task).where(Task.lead_id == lead_id))]


async def test_trigger_filter_enrolls_and_running_runs_hear_events_and_keep_their_version(
        api, make_key, engine, temporal_client):
    tenant, ops, staff = await _setup(api, make_key, engine)
    await _publish(api, ops, REFERRAL.format(version=1, title="Thank the referrer"), "referral-welcome")

    referral = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Ref", "email": f"ref.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    ppc = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Ppc", "email": f"ppc.{uuid.uuid4().hex[:6]}@example.com", "source": "ppc"})).json()
    await delivered(engine, f"{referral['id']}:created")
    await delivered(engine, f"{ppc['id']}:created")
    runs = _runs(engine, referral["id"])
    assert [(r.definition_key, r.definition_version) for r in runs] == [("referral-welcome", 1)]
    assert _runs(engine, ppc["id"]) == []  # the `when` filter said no
    assert await eventually(lambda: "Thank the referrer" in _tasks(engine, referral["id"]))

    # A newer version is published while the first run waits for a reply: the run keeps version 1.
    await _publish(api, ops, REFERRAL.format(version=2, title="Call the referrer"), "referral-welcome", 2)
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, runs[0].workflow_id)
    replied = await api.post(f"/api/v1/leads/{referral['id']}/events/lead.replied", headers=staff,
                             json={"data": {"text": "thanks!"}})
    assert replied.status_code == 202 and await started_by(engine, replied.json()["event_id"]) == []
    state = await asyncio.wait_for(handle.result(), timeout=30)
    assert state.version == 1 and state.status == "completed"
    assert [p["detail"] for p in state.path][-2:] == ["lead.replied received", "set_status qualified"]
    lead = (await api.get(f"/api/v1/leads/{referral['id']}", headers=staff)).json()
    assert lead["status"] == "qualified"

    second = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Two", "email": f"two.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    await delivered(engine, f"{second['id']}:created")
    assert [r.definition_version for r in _runs(engine, second["id"])] == [2]
    assert await eventually(lambda: "Call the referrer" in _tasks(engine, second["id"]))


async def test_reenrollment_rules_and_unknown_events(api, make_key, engine):
    tenant, ops, staff = await _setup(api, make_key, engine)
    await _publish(api, ops, APPOINTMENT, "appt-prep")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Appt", "email": f"appt.{uuid.uuid4().hex[:6]}@example.com", "source": "cold_call"})).json()
    first = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.booked", headers=staff, json={})
    again = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.booked", headers=staff, json={})
    assert len(await started_by(engine, first.json()["event_id"])) == 1
    assert await started_by(engine, again.json()["event_id"]) == []  # re-enroll only after 1d
    assert await eventually(lambda: _tasks(engine, lead["id"]) == ["Prepare for the appointment"])
    unknown = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.made", headers=staff, json={})
    assert unknown.status_code == 422

    retired = await api.post("/api/v1/definitions/appt-prep/retire", headers=ops)
    assert retired.status_code == 200
    other = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Late", "email": f"late.{uuid.uuid4().hex[:6]}@example.com", "source": "cold_call"})).json()
    late = await api.post(f"/api/v1/leads/{other['id']}/events/appointment.booked", headers=staff, json={})
    assert await started_by(engine, late.json()["event_id"]) == []  # retired: no new enrollments


async def test_a_deal_going_under_contract_gets_the_closing_checklist(api, make_key, engine):
    from pathlib import Path

    tenant, ops, staff = await _setup(api, make_key, engine)
    playbook = (Path(__file__).resolve().parents[2] / "definitions" / "library" / "deal-under-contract.yaml").read_text()
    await _publish(api, ops, playbook, "deal-under-contract", 2)
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Deal", "email": f"deal.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    await workflow_running(api, staff, lead["id"])
    deal_id = (await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=staff, json={})).json()["opportunity_id"]
    ready_for_contract(engine, deal_id)
    for stage in ("contacted", "offer_made"):
        await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=staff, json={"stage": stage})
    await delivered(engine, _stage_event(engine, deal_id, "offer_made"))
    assert _runs(engine, deal_id) == []  # the filter wants under_contract
    await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=staff, json={"stage": "under_contract"})
    await delivered(engine, _stage_event(engine, deal_id, "under_contract"))
    runs = _runs(engine, deal_id)
    assert [(r.definition_key, r.subject_type) for r in runs] == [("deal-under-contract", "deal")]

    def checklist():
        with Session(engine) as session:
            return sorted(t.title for t in session.exec(select(Task).where(Task.opportunity_id == deal_id)))
    assert await eventually(lambda: len(checklist()) == 4)
    assert checklist()[0] == "Confirm the earnest money deposit"


async def test_message_events_reach_running_definitions(api, make_key, engine, sendgrid_signing_key, temporal_client):
    import json as _json
    import time as _time

    from models.message import Message
    from tests.integration.test_webhooks import _sendgrid_headers

    tenant, ops, staff = await _setup(api, make_key, engine)
    source = """schema: dealflow/v1
key: opened-follow-up
trigger: {event: offer.sent}
steps:
  - {id: opened, wait_for: {event: message.opened, timeout: 2d}, save_as: opened}
  - {id: call, if: 'opened != null', action: create_task, with: {title: They opened the offer - call now}}
"""
    await _publish(api, ops, source, "opened-follow-up")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Open", "email": f"open.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    offer = (await api.post(f"/api/v1/leads/{lead['id']}/events/offer.sent", headers=staff, json={})).json()
    started = {"started": await started_by(engine, offer["event_id"])}
    assert len(started["started"]) == 1
    with Session(engine) as session:
        message = Message(tenant_id=tenant, lead_id=lead["id"], channel="email", status="delivered", body="offer",
                          to_address=lead["email"], provider="sendgrid", idempotency_key=uuid.uuid4().hex)
        session.add(message)
        session.commit()
        message_id = message.id
    payload = _json.dumps([{"event": "open", "sg_event_id": uuid.uuid4().hex, "timestamp": int(_time.time()),
                            "dealflow_message_id": message_id}]).encode()
    response = await api.post("/api/v1/webhooks/sendgrid/events", content=payload,
                              headers=_sendgrid_headers(sendgrid_signing_key, payload))
    assert response.status_code == 200
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, started["started"][0])
    state = await asyncio.wait_for(handle.result(), timeout=30)
    assert [p["detail"] for p in state.path] == ["message.opened received",
                                                 "create_task 'They opened the offer - call now'"]


async def test_schedule_daily_enrolls_matching_leads_at_nine_local(api, make_key, engine, temporal_client, settings):
    from datetime import UTC, datetime, timedelta

    from temporalio.testing import ActivityEnvironment

    from activities.enrollment import EnrollmentActivities
    from events.schedules import ensure_daily_schedule
    from workflows.daily import SCHEDULE_ID

    tenant, ops, staff = await _setup(api, make_key, engine)
    source = """schema: dealflow/v1
key: probate-daily
trigger: {event: schedule.daily, when: '"probate" in lead.tags'}
enrollment: {reenroll: {after: 7d}}
steps:
  - {id: review, action: create_task, with: {title: Review probate lead}}
"""
    await _publish(api, ops, source, "probate-daily")
    probate = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Pro", "email": f"pro.{uuid.uuid4().hex[:6]}@example.com", "source": "direct_mail",
        "tags": ["probate"]})).json()
    other = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Oth", "email": f"oth.{uuid.uuid4().hex[:6]}@example.com", "source": "direct_mail"})).json()
    set_tenant(engine, tenant, timezone="Etc/GMT-3")  # UTC+3: 06:00 UTC is 09:00 there
    activities = EnrollmentActivities(engine, temporal_client, settings.temporal_task_queue,
                                    asyncio.get_running_loop())
    env = ActivityEnvironment()
    nine = datetime(2026, 12, 1, 6, 15, tzinfo=UTC)
    ten = nine + timedelta(hours=1)
    assert (await asyncio.to_thread(env.run, activities.fire_daily_triggers, ten))["tenants"].get(tenant) is None
    fired = await asyncio.to_thread(env.run, activities.fire_daily_triggers, nine)
    assert fired["tenants"][tenant] == 1
    assert [r.definition_key for r in _runs(engine, probate["id"])] == ["probate-daily"]
    assert _runs(engine, other["id"]) == []
    again = await asyncio.to_thread(env.run, activities.fire_daily_triggers, nine)
    assert again["tenants"].get(tenant) is None  # re-enrollment only after 7 days
    assert await eventually(lambda: _tasks(engine, probate["id"]) == ["Review probate lead"])

    await ensure_daily_schedule(temporal_client, settings.temporal_task_queue)
    await ensure_daily_schedule(temporal_client, settings.temporal_task_queue)  # idempotent
    description = await temporal_client.get_schedule_handle(SCHEDULE_ID).describe()
    assert description.schedule.spec.intervals[0].every == timedelta(hours=1)


ACCEPTED = """schema: dealflow/v1
key: offer-accepted
subject: deal
trigger: {event: deal.stage_changed, when: 'deal.stage == "offer_made"'}
steps:
  - {id: accepted, wait_for: {event: deal.stage_changed, timeout: 1d}, on_timeout: continue}
  - {id: to_contract, action: set_stage, with: {stage: under_contract, reason: seller signed}}
  - {id: extras, action: run_definition, with: {key: closing-extras}}
  - {id: back_to_new, action: set_stage, with: {stage: new}, on_error: continue}
"""
CLOSING = """schema: dealflow/v1
key: closing-tasks
subject: deal
trigger: {event: deal.stage_changed, when: 'deal.stage == "under_contract"'}
steps:
  - {id: title, action: create_task, with: {title: Order title}}
"""
EXTRAS = """schema: dealflow/v1
key: closing-extras
subject: deal
trigger: {event: deal.stage_changed, when: 'false'}
steps:
  - {id: photos, action: create_task, with: {title: Book the photographer}}
"""


async def test_set_stage_moves_the_deal_through_its_workflow_and_run_definition_starts_another(
        api, make_key, engine, temporal_client, settings):
    from activities.enrollment import EnrollmentActivities
    from models.opportunity import StageChange
    from models.payloads import DealStageInput
    from temporalio.exceptions import ApplicationError

    tenant, ops, staff = await _setup(api, make_key, engine)
    for source, key in ((ACCEPTED, "offer-accepted"), (CLOSING, "closing-tasks"), (EXTRAS, "closing-extras")):
        await _publish(api, ops, source, key)
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Stage", "email": f"stage.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    await workflow_running(api, staff, lead["id"])
    deal_id = (await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=staff, json={})).json()["opportunity_id"]
    ready_for_contract(engine, deal_id)
    for stage in ("contacted", "offer_made"):
        assert (await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=staff,
                               json={"stage": stage})).status_code == 200
    await delivered(engine, _stage_event(engine, deal_id, "offer_made"))
    run = next(r for r in _runs(engine, deal_id) if r.definition_key == "offer-accepted")
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, run.workflow_id)
    await handle.signal(DefinitionWorkflow.event, DefinitionEvent(name="deal.stage_changed", event_id="go"))
    state = await asyncio.wait_for(handle.result(), timeout=30)

    # The move went through DealWorkflow's validator (the illegal one back to `new` was refused, with the reason).
    assert [p["detail"] for p in state.path][1:3] == ["set_stage under_contract", "run_definition closing-extras"]
    refused = [p["detail"] for p in state.path if p["step"] == "back_to_new"]
    assert refused and "stage change refused" in refused[0] and "under_contract" in refused[0], state.path
    assert state.status == "completed"

    def tasks():
        with Session(engine) as session:
            return sorted(t.title for t in session.exec(select(Task).where(Task.opportunity_id == deal_id)))
    # closing-tasks heard the definition's move as it hears staff moves; closing-extras was started by name.
    assert await eventually(lambda: tasks() == ["Book the photographer", "Order title"])
    await delivered(engine, _stage_event(engine, deal_id, "under_contract"))
    assert {r.definition_key for r in _runs(engine, deal_id)} == {"offer-accepted", "closing-tasks", "closing-extras"}
    with Session(engine) as session:
        moves = session.exec(select(StageChange).where(StageChange.opportunity_id == deal_id,
                                                       StageChange.to_stage == "under_contract")).all()
    assert [(m.actor, m.reason) for m in moves] == [("definition:offer-accepted", "seller signed")]

    # A retried attempt (same idempotency key) returns the first move's result and moves nothing again.
    activities = EnrollmentActivities(engine, temporal_client, settings.temporal_task_queue,
                                      asyncio.get_running_loop())
    again = DealStageInput(tenant_id=tenant, opportunity_id=deal_id, stage="under_contract", reason="seller signed",
                           actor="definition:offer-accepted",
                           idempotency_key=f"{deal_id}:offer-accepted:1:to_contract")
    assert await activities.move_deal_stage(again) == "under_contract"
    with Session(engine) as session:
        assert len(session.exec(select(StageChange).where(StageChange.opportunity_id == deal_id,
                                                          StageChange.to_stage == "under_contract")).all()) == 1
    try:
        await activities.move_deal_stage(again.model_copy(update={"idempotency_key": "other", "stage": "contacted"}))
    except ApplicationError as exc:
        assert exc.type == "StageRefused" and exc.non_retryable
    else:
        raise AssertionError("an illegal move must be refused")


STATUSES = """schema: dealflow/v1
key: status-moves
trigger: {event: lead.note}
steps:
  - {id: qualify, action: set_status, with: {status: qualified}}
  - {id: review, action: set_status, with: {status: needs_review}, on_error: continue}
  - {id: close, action: set_status, with: {status: dead, reason: not selling}}
"""


async def test_set_status_goes_through_the_leads_own_workflow(api, make_key, engine, temporal_client):
    from workflows.lead import LeadWorkflow

    tenant, ops, staff = await _setup(api, make_key, engine)  # 02:00 there: the welcome waits for 08:00
    await _publish(api, ops, STATUSES, "status-moves")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Moves", "email": f"moves.{uuid.uuid4().hex[:6]}@example.com", "source": "ppc"})).json()
    note = (await api.post(f"/api/v1/leads/{lead['id']}/events/lead.note", headers=staff, json={})).json()
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, (await started_by(engine, note["event_id"]))[0])
    state = await asyncio.wait_for(handle.result(), timeout=30)
    details = [p["detail"] for p in state.path]
    assert details[0] == "set_status qualified" and details[-1] == "set_status dead", details
    assert "status change refused: cannot move a qualified lead to needs_review" in details[1]
    # The lead's workflow made the changes itself: it knows the lead is dead and its cadence is stopped.
    lead_state = await temporal_client.get_workflow_handle(lead["workflow_id"]).query(LeadWorkflow.state)
    assert lead_state.status == "dead" and lead_state.cadence_stopped
    detail = (await api.get(f"/api/v1/leads/{lead['id']}", headers=staff)).json()
    assert detail["status"] == "dead" and detail["status_reason"] == "not selling"


HOOK = """schema: dealflow/v1
key: tell-zapier
trigger: {{event: lead.note}}
steps:
  - {{id: hook, action: http_call, retry: {{max_attempts: 3, initial: 1s}}, save_as: zap,
     with: {{url: '{url}/hooks/lead', body: {{lead_id: 'lead.id', source: 'lead.source', at: 'now'}}}}}}
  - {{id: elsewhere, action: http_call, on_error: continue, with: {{url: 'https://example.org/x', method: GET}}}}
  - {{id: answered, if: 'zap.status == 200', action: create_task, with: {{title: Zapier has it}}}}
"""


async def test_http_call_reaches_allowed_hosts_once_per_step_with_its_idempotency_key(
        api, make_key, engine, temporal_client, hook_fake):
    from tests.fakes.server import Reply

    tenant, ops, staff = await _setup(api, make_key, engine)
    await _publish(api, ops, HOOK.format(url=hook_fake.url), "tell-zapier")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Hook", "email": f"hook.{uuid.uuid4().hex[:6]}@example.com", "source": "ppc"})).json()
    hook_fake.failures.append(Reply(503, {"error": "busy"}))  # the first attempt fails and is retried
    note = (await api.post(f"/api/v1/leads/{lead['id']}/events/lead.note", headers=staff, json={})).json()
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, (await started_by(engine, note["event_id"]))[0])
    state = await asyncio.wait_for(handle.result(), timeout=30)

    calls = [c for c in hook_fake.calls("POST", "/hooks/lead") if c.json()["lead_id"] == lead["id"]]
    assert len(calls) == 2 and calls[0].headers["idempotency-key"] == calls[1].headers["idempotency-key"] \
        == f"{lead['id']}:tell-zapier:1:hook"
    assert calls[1].json()["source"] == "ppc" and calls[1].json()["at"].endswith("+00:00")
    details = [p["detail"] for p in state.path]
    assert details[0] == f"http_call POST {hook_fake.url}/hooks/lead: 200"
    assert "example.org is not in DEALFLOW_HTTP_CALL_HOSTS" in details[1]  # refused before any request
    assert details[-1] == "create_task 'Zapier has it'" and state.saved["zap"]["body"]["ok"] is True


AGAIN = """schema: dealflow/v1
key: call-again
trigger: {event: appointment.booked}
enrollment: {reenroll: {after: 1s}}
steps:
  - {id: prep, action: create_task, with: {title: Prepare for the appointment}}
  - {id: mail, action: send_email, with: {template: welcome}}
  - {id: done, action: set_status, with: {status: nurturing}}
"""


async def test_a_reenrolled_lead_gets_its_messages_and_tasks_again_once_per_enrollment(api, make_key, engine):
    from models.message import Message

    tenant, ops, staff = await _setup(api, make_key, engine)
    always_open(engine, tenant)  # inside the send window, whatever the hour and weekday
    await _publish(api, ops, AGAIN, "call-again")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Again", "email": f"again.{uuid.uuid4().hex[:6]}@example.com", "source": "cold_call"})).json()

    def mails():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                      col(Message.idempotency_key).contains(":call-again:"))).all()

    for n in (1, 2):
        booked = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.booked", headers=staff, json={})
        assert len(await started_by(engine, booked.json()["event_id"])) == 1
        assert await eventually(lambda n=n: len(mails()) == n and _tasks(engine, lead["id"]).count(
            "Prepare for the appointment") == n, timeout=30)
        await asyncio.sleep(1.1)  # past the re-enrollment window
    assert len({m.idempotency_key for m in mails()}) == 2 and {m.status for m in mails()} == {"sent"}
    again = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.booked", headers=staff,
                           json={"event_id": "same-booking"})
    repeat = await api.post(f"/api/v1/leads/{lead['id']}/events/appointment.booked", headers=staff,
                            json={"event_id": "same-booking"})
    assert again.json()["recorded"] is True and repeat.json()["recorded"] is False  # one event, one third run
    assert len(await started_by(engine, "same-booking")) == 1


NURTURE = """schema: dealflow/v1
key: nurture-until-dead
trigger: {event: lead.created}
enrollment:
  exit_when: [{condition: 'lead.status in ["dead", "converted"]'}]
steps:
  - {id: wait_long, wait: 3d}
  - {id: mail, action: send_email, with: {template: welcome}}
"""


async def test_a_status_change_made_by_the_leads_workflow_ends_the_run_through_exit_when(api, make_key, engine,
                                                                                        temporal_client):
    tenant, ops, staff = await _setup(api, make_key, engine)
    await _publish(api, ops, NURTURE, "nurture-until-dead")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Dead", "email": f"dead.{uuid.uuid4().hex[:6]}@example.com", "source": "ppc"})).json()
    [run_id] = await started_by(engine, f"{lead['id']}:created")
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, run_id)
    await eventually(lambda: _current(handle, "wait_long"))
    closed = await api.post(f"/api/v1/workflows/{lead['workflow_id']}/signals/close", headers=staff,
                            json={"note": "sold to someone else"})
    assert closed.status_code == 202
    state = await asyncio.wait_for(handle.result(), timeout=30)  # not after 3 days: at once
    assert state.status == "exited" and "lead.status" in state.path[-1]["detail"], state.path


async def _current(handle, step: str) -> bool:
    return (await handle.query(DefinitionWorkflow.state)).current_step == step


async def test_staff_remove_a_lead_from_a_running_definition_and_the_run_ends_saying_who(
        api, make_key, engine, temporal_client):
    tenant, ops, staff = await _setup(api, make_key, engine)
    await _publish(api, ops, REFERRAL.format(version=1, title="Thank the referrer"), "referral-welcome")
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Ref", "email": f"ref.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    await delivered(engine, f"{lead['id']}:created")
    run = await eventually(lambda: _runs(engine, lead["id"]))
    workflow_id = run[0].workflow_id
    handle = temporal_client.get_workflow_handle(workflow_id, result_type=DefinitionState)

    async def waiting():
        state = await handle.query(DefinitionWorkflow.state)
        return state.current_step == "wait_reply"

    await eventually(waiting, timeout=30)
    other = make_key(Role.staff)  # another tenant's key: the run is not theirs
    assert (await api.post(f"/api/v1/workflows/{workflow_id}/remove", headers=other, json={})).status_code == 404
    reader = make_key(Role.readonly, tenant=tenant)
    assert (await api.post(f"/api/v1/workflows/{workflow_id}/remove", headers=reader, json={})).status_code == 403
    removed = await api.post(f"/api/v1/workflows/{workflow_id}/remove", headers=staff,
                             json={"reason": "asked us to stop"})
    assert removed.status_code == 202 and removed.json()["removed"] is True
    again = await api.post(f"/api/v1/workflows/{workflow_id}/remove", headers=staff, json={})
    assert again.json()["removed"] is False  # one removal

    result = await asyncio.wait_for(handle.result(), timeout=30)
    assert result.status == "exited" and "removed by key:" in result.path[-1]["detail"]
    assert "asked us to stop" in result.path[-1]["detail"]
    timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=staff)).json()
    entry = next(e for e in timeline if e["kind"] == "definition.removed")
    assert "referral-welcome" in entry["summary"] and entry["actor"].startswith("key:")
    assert "Thank the referrer" in _tasks(engine, lead["id"])  # what it did before stays
