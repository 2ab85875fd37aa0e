"""Investors: the API (create with dedupe, list, detail, timeline, recorded events) and definitions with
`subject: investor` running for real: enrollment on investor.created, email and SMS to the investor, a reply
by SMS, a commitment that ends the run."""

from __future__ import annotations

import asyncio
import uuid

from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from models.definition import WorkflowExecution
from models.investor import Investor
from models.message import Message
from models.task import Task
from models.tenant import Role
from tests.conftest import (
    TWILIO_TOKEN, always_open, delivered, eventually, ready_for_contract, set_tenant, toll_free, workflow_running,
)
from workflows.definition import DefinitionWorkflow

RAISE = """schema: dealflow/v1
key: raise-test
subject: investor
trigger: {event: investor.created, when: 'investor.accredited'}
enrollment: {exit_when: [{event: investor.committed}, {event: investor.opted_out}]}
settings: {send_window: ignore}
steps:
  - {id: intro, action: send_email, with: {template: investor_intro}}
  - {id: text, action: send_sms, with: {template: investor_follow_up}}
  - {id: reply, wait_for: {event: investor.replied, timeout: 3d}, save_as: reply}
  - {id: call, if: 'reply != null', action: create_task, with: {title: Call the investor back}}
  - {id: meeting, wait_for: {event: meeting.booked, timeout: 10d}}
"""


async def _is(value, expected) -> bool:
    return await value == expected


def _investor(**extra):
    return {"name": "Dana Whitfield", "company": "Whitfield Capital",
            "email": f"dana.{uuid.uuid4().hex[:6]}@example.com", **extra}


async def test_investor_api_creates_dedupes_lists_and_rejects_bad_input(api, make_key):
    tenant = f"i{uuid.uuid4().hex[:6]}"
    staff = make_key(Role.staff, tenant=tenant)
    body = _investor(phone="(512) 555-0177", accredited=True, accreditation_method="net_worth",
                     capital_available="250000.00", preferences={"markets": ["tx", "78731"], "price_max": 400000})
    created = await api.post("/api/v1/investors", headers=staff, json=body)
    assert created.status_code == 201, created.text
    investor = created.json()
    assert investor["phone"] == "+15125550177" and investor["status"] == "prospect"
    assert investor["preferences"] == {"markets": ["TX", "78731"], "property_types": [], "strategies": [],
                                       "price_max": "400000"}
    assert created.headers["Location"] == f"/api/v1/investors/{investor['id']}"

    again = await api.post("/api/v1/investors", headers=staff, json={**body, "email": body["email"].upper()})
    assert again.status_code == 200 and again.json()["id"] == investor["id"] and again.json()["duplicate"]

    bad = await api.post("/api/v1/investors", headers=staff, json={"name": "X", "preferences": {"markets": ["Texas"]}})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    fields = {e["field"]: e["message"] for e in bad.json()["errors"]}
    assert "preferences.markets" in fields and "Texas" in fields["preferences.markets"]
    unreachable = await api.post("/api/v1/investors", headers=staff, json={"name": "No Contact"})
    assert unreachable.status_code == 422 and "an investor needs an email or a phone" in unreachable.text

    await api.post("/api/v1/investors", headers=staff, json=_investor(accredited=False))
    accredited = (await api.get("/api/v1/investors?accredited=true", headers=staff)).json()
    assert [i["id"] for i in accredited["items"]] == [investor["id"]]
    assert len((await api.get("/api/v1/investors?limit=1", headers=staff)).json()["items"]) == 1
    assert (await api.get("/api/v1/investors?q=whitfield", headers=staff)).json()["items"]

    other = make_key(Role.staff, tenant=f"o{uuid.uuid4().hex[:6]}")
    assert (await api.get(f"/api/v1/investors/{investor['id']}", headers=other)).status_code == 404
    unknown = await api.post(f"/api/v1/investors/{investor['id']}/events/investor.comitted", headers=staff, json={})
    assert unknown.status_code == 422 and "investor.committed" in unknown.json()["errors"][0]["message"]
    viewer = make_key(Role.readonly, tenant=tenant)
    assert (await api.post("/api/v1/investors", headers=viewer, json=_investor())).status_code == 403


async def test_capital_raise_runs_for_an_investor_hears_a_reply_and_ends_on_commitment(
        api, make_key, engine, temporal_client):
    tenant = f"r{uuid.uuid4().hex[:6]}"
    ops, staff = make_key(Role.ops, tenant=tenant), make_key(Role.staff, tenant=tenant)
    number = toll_free()
    always_open(engine, tenant)
    set_tenant(engine, tenant, sms_from=number)
    saved = await api.post("/api/v1/definitions", content=RAISE.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post("/api/v1/definitions/raise-test/versions/1/publish", headers=ops)).status_code == 200

    phone = toll_free()
    investor = (await api.post("/api/v1/investors", headers=staff,
                               json=_investor(phone=phone, accredited=True))).json()
    browsing = (await api.post("/api/v1/investors", headers=staff, json=_investor(accredited=False))).json()
    for created in (investor, browsing):
        await delivered(engine, f"{created['id']}:created")
    with Session(engine) as session:
        runs = session.exec(select(WorkflowExecution).where(WorkflowExecution.tenant_id == tenant)).all()
    assert [(r.subject_type, r.subject_id, r.definition_key) for r in runs] == [
        ("investor", investor["id"], "raise-test")]  # the `when` filter left the unaccredited one out
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, runs[0].workflow_id)

    def sent():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.investor_id == investor["id"],
                                                      Message.direction == "outbound")).all()
    # a message row is written before the provider answers (pending, then sending), then marked sent: wait
    # for both to have an outcome
    messages = await eventually(lambda: (rows := sent()) and len(rows) == 2
                                and all(m.status not in ("pending", "sending") for m in rows) and rows)
    by_channel = {m.channel: m for m in messages}
    assert by_channel["email"].to_address == investor["email"] and by_channel["sms"].to_address == phone
    assert all(m.status == "sent" and m.lead_id is None for m in messages)
    assert "Hi Dana" in by_channel["email"].body and "Hi Dana" in by_channel["sms"].body
    assert by_channel["email"].idempotency_key == f"{investor['id']}:raise-test:1:intro"
    async def status() -> str:
        return (await api.get(f"/api/v1/investors/{investor['id']}", headers=staff)).json()["status"]
    # The send commits the message, then marks the investor contacted (a moment later).
    assert await eventually(lambda: _is(status(), "contacted"))
    listed = (await api.get(f"/api/v1/messages?investor_id={investor['id']}", headers=staff)).json()["items"]
    assert {m["id"] for m in listed} == {m.id for m in messages} and listed[0]["investor_id"] == investor["id"]

    # The investor texts back: the run hears investor.replied and the investor is now engaged.
    form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": phone, "To": number, "Body": "Interested - call me"}
    signature = RequestValidator(TWILIO_TOKEN).compute_signature(
        "https://crm.example.com/api/v1/webhooks/twilio/sms", form)
    inbound = await api.post("/api/v1/webhooks/twilio/sms", data=form, headers={"X-Twilio-Signature": signature})
    assert inbound.status_code == 200, inbound.text

    def tasks():
        with Session(engine) as session:
            return [t.title for t in session.exec(select(Task).where(Task.investor_id == investor["id"]))]
    assert await eventually(lambda: tasks() == ["Call the investor back"])
    async def waiting_for_the_meeting():  # the run's query, through the workflows API
        described = (await api.get(f"/api/v1/workflows/{runs[0].workflow_id}", headers=staff)).json()
        return (described["state"] or {}).get("current_step") == "meeting" and described
    described = await eventually(waiting_for_the_meeting)
    assert described["workflow_type"] == "DefinitionWorkflow" and described["state"]["key"] == "raise-test"
    assert described["search_attributes"]["DefinitionKey"] == "raise-test"
    assert (await api.get(f"/api/v1/investors/{investor['id']}", headers=staff)).json()["status"] == "engaged"

    # A commitment (recorded twice with the same id: applied once) ends the run while it waits for a meeting.
    event = {"event_id": "commit-1", "data": {"amount": 150000}}
    first = await api.post(f"/api/v1/investors/{investor['id']}/events/investor.committed", headers=staff, json=event)
    second = await api.post(f"/api/v1/investors/{investor['id']}/events/investor.committed", headers=staff, json=event)
    assert first.status_code == 202 and first.json()["status"] == "committed" and not first.json()["duplicate"]
    assert second.json()["duplicate"]
    state = await asyncio.wait_for(handle.result(), timeout=30)
    assert state.status == "exited" and state.path[-1]["detail"] == "exited: exit_when event investor.committed"
    assert [p["detail"] for p in state.path][:4] == [
        "send_email investor_intro: sent", "send_sms investor_follow_up: sent", "investor.replied received",
        "create_task 'Call the investor back'"]

    timeline = (await api.get(f"/api/v1/investors/{investor['id']}/timeline", headers=staff)).json()
    kinds = [e["kind"] for e in timeline]
    assert kinds.count("investor.committed") == 1
    assert {"investor.created", "message.sent", "message.received", "task.created"} <= set(kinds)
    with Session(engine) as session:
        assert session.get(Investor, browsing["id"]).status == "prospect"


async def test_the_test_button_uses_a_sample_investor_for_investor_definitions(api, make_key):
    from pathlib import Path

    ops = make_key(Role.ops, tenant=f"t{uuid.uuid4().hex[:6]}")
    source = (Path(__file__).resolve().parents[2] / "definitions" / "library" / "investor-capital-raise.yaml").read_text()
    result = await api.post("/api/v1/definitions/test", headers=ops, json={
        "source": source, "start_on": "mon", "events": [{"after": "4d", "name": "investor.passed"}]})
    assert result.status_code == 200, result.text
    body = result.json()
    assert body["status"] == "exited" and "day 0 09:00 intro send_email investor_intro: sent" in body["lines"]
    assert body["lines"][-1].endswith("exited: exit_when event investor.passed")
    wrong = await api.post("/api/v1/definitions/test", headers=ops, json={
        "source": source.replace("investor.created", "lead.created", 1)})
    assert wrong.status_code == 422 and "never happens to an investor" in wrong.json()["errors"][0]["message"]


DISPO = """schema: dealflow/v1
key: dispo-match
subject: deal
trigger: {event: deal.stage_changed, when: 'deal.stage == "under_contract"'}
steps:
  - {id: match, action: match_investors, with: {limit: 5, accredited_only: true}, save_as: matches}
  - id: each
    for_each:
      in: 'matches'
      as: m
      max_items: 5
      steps: [{id: send_deal, action: create_task, with: {title: Send the deal to a matched investor}}]
"""


async def test_deals_are_matched_to_investor_buy_boxes_by_api_and_by_definition(api, make_key, engine):
    tenant = f"m{uuid.uuid4().hex[:6]}"
    ops, staff = make_key(Role.ops, tenant=tenant), make_key(Role.staff, tenant=tenant)
    texas = (await api.post("/api/v1/investors", headers=staff, json=_investor(
        name="Texas Lender", accredited=True, capital_available="500000",
        preferences={"markets": ["TX"], "price_max": 400000}))).json()
    anywhere = (await api.post("/api/v1/investors", headers=staff, json=_investor(name="Anywhere Buyer"))).json()
    await api.post("/api/v1/investors", headers=staff, json=_investor(
        name="Florida Fund", accredited=True, preferences={"markets": ["FL"]}))
    lead = (await api.post("/api/v1/leads", headers=staff, json={
        "first_name": "Oak", "email": f"oak.{uuid.uuid4().hex[:6]}@example.com", "source": "referral",
        "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"})).json()
    await workflow_running(api, staff, lead["id"])
    deal_id = (await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=staff,
                              json={"asking_price": "285000"})).json()["opportunity_id"]
    ready_for_contract(engine, deal_id, offer="285000.00", contract="285000.00")

    found = await api.post(f"/api/v1/opportunities/{deal_id}/matches", headers=staff, json={})
    assert found.status_code == 200, found.text
    # 4 of the 5 buy-box points, of 7 possible (no history with us, no reply yet)
    assert [(m["name"], m["score"]) for m in found.json()] == [("Texas Lender", 0.57), ("Anywhere Buyer", 0.0)]
    assert found.json()[0]["reasons"] == ["buys in TX", "$285,000 up to $400,000", "$500,000 available",
                                          "accredited"]
    assert [m["investor_id"] for m in (await api.get(f"/api/v1/opportunities/{deal_id}/matches",
                                                     headers=staff)).json()] == [texas["id"], anywhere["id"]]

    saved = await api.post("/api/v1/definitions", content=DISPO.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post("/api/v1/definitions/dispo-match/versions/1/publish", headers=ops)).status_code == 200
    for stage in ("contacted", "offer_made", "under_contract"):
        assert (await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=staff,
                               json={"stage": stage})).status_code == 200

    def tasks():
        with Session(engine) as session:
            return session.exec(select(Task).where(Task.opportunity_id == deal_id,
                                                   Task.title == "Send the deal to a matched investor")).all()
    # accredited_only: one match, one task (and the for_each would give each match its own task).
    assert await eventually(lambda: len(tasks()) == 1)
    timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=staff)).json()
    assert any(e["kind"] == "deal.investors_matched" for e in timeline)


async def test_concurrent_posts_of_one_investor_store_one_row_and_one_run(api, make_key, engine):
    tenant = f"c{uuid.uuid4().hex[:6]}"
    ops, staff = make_key(Role.ops, tenant=tenant), make_key(Role.staff, tenant=tenant)
    welcome = RAISE.replace("key: raise-test", "key: welcome-investor")
    assert (await api.post("/api/v1/definitions", content=welcome.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})).status_code == 201
    assert (await api.post("/api/v1/definitions/welcome-investor/versions/1/publish", headers=ops)).status_code == 200
    body = _investor(phone=toll_free(), accredited=True)
    answers = await asyncio.gather(*(api.post("/api/v1/investors", headers=staff, json=body) for _ in range(8)))
    assert sorted(a.status_code for a in answers) == [200] * 7 + [201], [a.text for a in answers]
    assert len({a.json()["id"] for a in answers}) == 1
    with Session(engine) as session:
        assert len(session.exec(select(Investor).where(Investor.tenant_id == tenant)).all()) == 1
    await delivered(engine, f"{answers[0].json()['id']}:created")
    with Session(engine) as session:
        runs = session.exec(select(WorkflowExecution).where(WorkflowExecution.tenant_id == tenant)).all()
    assert [r.definition_key for r in runs] == ["welcome-investor"], [(r.workflow_id, r.run_id) for r in runs]
