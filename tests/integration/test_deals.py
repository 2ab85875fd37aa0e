"""Deals over HTTP on the real worker: opened from scratch or for a lead (its DealWorkflow started by the relay from
the event committed with it), edited, assigned, listed with every filter, and moved stage by stage with every
rule of definitions/pipelines.yaml enforced (409 listing each unmet one); the stage history says who, when and
why; a lost deal ends its definition runs."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from decimal import Decimal

from sqlmodel import Session, select

from models.audit import AuditLog
from models.base import utcnow
from models.document import Document
from models.opportunity import Opportunity
from models.tenant import Role
from tests.conftest import eventually, insert_lead
from tests.integration.test_users import staff_team


async def _people(api, make_key, engine) -> dict:
    return await staff_team(api, make_key, engine, "acquisitions", (("ana", "staff"), ("ben", "staff"),
                                                                    ("mia", "manager")))


async def _open(api, headers, **body) -> dict:
    response = await api.post("/api/v1/opportunities", headers=headers, json={"title": "12 Oak St", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def _running(api, headers, deal_id: str) -> None:
    """The relay started the deal's workflow: a move it would refuse answers 409 with the reason, not 'not
    running'."""
    async def check():
        body = (await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=headers,
                               json={"stage": "nowhere"})).json()
        return "not running" not in body["detail"]
    await eventually(check, timeout=30)


async def _move(api, headers, deal_id: str, stage: str, reason: str | None = None):
    return await api.post(f"/api/v1/opportunities/{deal_id}/stage", headers=headers,
                          json={"stage": stage, **({"reason": reason} if reason else {})})


async def test_every_illegal_move_and_unmet_rule_is_refused_with_its_reason(api, make_key, engine):
    p = await _people(api, make_key, engine)
    ana = p["ana"]["headers"]
    deal = await _open(api, ana, assignee="me", asking_price="200000")
    assert deal["stage"] == "new" and deal["assigned_to"] == p["ana"]["id"] and deal["workflow_id"]
    await _running(api, ana, deal["id"])
    d = deal["id"]

    async def refused(stage: str, reason: str | None = None) -> list[str]:
        response = await _move(api, ana, d, stage, reason)
        assert response.status_code == 409, response.text
        body = response.json()
        assert body["detail"] == "; ".join(e["message"] for e in body["errors"])
        return [e["message"] for e in body["errors"]]

    assert await refused("under_contract") == [
        "cannot move from new to under_contract (allowed: closed_lost, contacted)",
        "under_contract needs contract price (contract_price)",
        "under_contract needs a signed purchase agreement (purchase_agreement completed)"]
    assert await refused("marketing") == [
        "unknown stage 'marketing' (stages of acquisition: new, contacted, appointment_set, offer_made, "
        "under_contract, closed_won, closed_lost)"]
    assert await refused("new") == ["the deal is already in new"]
    assert await refused("closed_lost") == ["closed_lost needs a reason"]
    assert (await _move(api, ana, d, "contacted")).status_code == 200
    assert await refused("offer_made") == ["offer_made needs offer price (offer_price)"]
    assert (await api.patch(f"/api/v1/opportunities/{d}", headers=ana, json={"offer_price": "150000"})).status_code == 200
    assert (await _move(api, ana, d, "offer_made", "verbal offer at 150k")).status_code == 200
    # under_contract is unreachable until the purchase agreement is signed, price or no price
    assert (await api.patch(f"/api/v1/opportunities/{d}", headers=ana,
                            json={"contract_price": "148000.50"})).status_code == 200
    assert await refused("under_contract") == [
        "under_contract needs a signed purchase agreement (purchase_agreement completed)"]
    with Session(engine) as session:  # a draft (unsigned) agreement is not enough either
        session.add(Document(tenant_id=p["tenant"], opportunity_id=d, kind="purchase_agreement", title="PSA",
                             status="sent"))
        session.commit()
    assert await refused("under_contract") == [
        "under_contract needs a signed purchase agreement (purchase_agreement completed)"]
    with Session(engine) as session:
        session.add(Document(tenant_id=p["tenant"], opportunity_id=d, kind="purchase_agreement", title="PSA",
                             status="completed", content_sha256="0" * 64, signed_sha256="1" * 64))
        session.commit()
    moved = await _move(api, ana, d, "under_contract", "seller signed")
    assert moved.status_code == 200 and moved.json()["stage"] == "under_contract"
    assert moved.json()["sla_due_at"] is not None  # 30 days to close
    assert await refused("offer_made") == [
        "cannot move from under_contract to offer_made (allowed: closed_lost, closed_won)"]

    # The stage history: who, when and why.
    body = (await api.get(f"/api/v1/opportunities/{d}", headers=ana)).json()
    history = [(h["from_stage"], h["to_stage"], h["actor"], h["reason"]) for h in body["history"]]
    who = f"user:{p['ana']['id']}"
    assert [h[:2] for h in history] == [(None, "new"), ("new", "contacted"), ("contacted", "offer_made"),
                                        ("offer_made", "under_contract")]
    assert history[3][2:] == (who, "seller signed") and history[2][3] == "verbal offer at 150k", history
    assert body["contract_price"] == "148000.50" and body["closed_at"] is None
    assert all(h["changed_at"] for h in body["history"])


async def test_disposition_rules_and_closed_won_contract_price_over_http(api, make_key, engine):
    p = await _people(api, make_key, engine)
    ana = p["ana"]["headers"]

    async def refused(deal_id: str, stage: str) -> list[str]:
        response = await _move(api, ana, deal_id, stage)
        assert response.status_code == 409, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        return [e["message"] for e in response.json()["errors"]]

    def signed(deal_id: str, kind: str) -> None:
        with Session(engine) as session:
            session.add(Document(tenant_id=p["tenant"], opportunity_id=deal_id, kind=kind, title=kind,
                                 status="completed", content_sha256="0" * 64, signed_sha256="1" * 64))
            session.commit()

    dispo = (await _open(api, ana, pipeline="disposition", assignee="me"))["id"]
    await _running(api, ana, dispo)
    assert (await _move(api, ana, dispo, "showing")).status_code == 200
    assert await refused(dispo, "buyer_offer") == ["buyer_offer needs sale price (sale_price)"]
    assert (await api.patch(f"/api/v1/opportunities/{dispo}", headers=ana,
                            json={"sale_price": "210000"})).status_code == 200
    assert (await _move(api, ana, dispo, "buyer_offer")).status_code == 200
    assert await refused(dispo, "assigned") == [
        "assigned needs a signed assignment of contract (assignment_of_contract completed)"]
    signed(dispo, "assignment_of_contract")
    assert (await _move(api, ana, dispo, "assigned")).status_code == 200

    # closed_won (acquisition) needs the contract price: cleared after under_contract, the win is refused
    acq = (await _open(api, ana, assignee="me", offer_price="150000", contract_price="148000"))["id"]
    await _running(api, ana, acq)
    for stage in ("contacted", "offer_made"):
        assert (await _move(api, ana, acq, stage)).status_code == 200
    signed(acq, "purchase_agreement")
    assert (await _move(api, ana, acq, "under_contract")).status_code == 200
    assert (await api.patch(f"/api/v1/opportunities/{acq}", headers=ana,
                            json={"contract_price": None})).status_code == 200
    assert await refused(acq, "closed_won") == ["closed_won needs contract price (contract_price)"]
    assert (await api.patch(f"/api/v1/opportunities/{acq}", headers=ana,
                            json={"contract_price": "147500"})).status_code == 200
    won = await _move(api, ana, acq, "closed_won")
    assert won.status_code == 200 and won.json()["closed"] is True


async def test_open_patch_assign_and_the_audit(api, make_key, engine):
    p = await _people(api, make_key, engine)
    ana, ben, mia = p["ana"]["headers"], p["ben"]["headers"], p["mia"]["headers"]
    lead = (await api.post("/api/v1/leads", headers=ana, json={
        "first_name": "Rosa", "email": f"rosa.{uuid.uuid4().hex[:6]}@example.com", "source": "referral",
        "property": {"street": "77 Pine Rd", "city": "Austin", "state": "TX", "zip": "78701"}})).json()
    linked = await _open(api, ana, title=None, lead_id=lead["id"], pipeline="disposition")
    assert linked["title"].startswith("77 Pine Rd") and linked["lead_id"] == lead["id"]
    assert linked["stage"] == "marketing" and linked["pipeline"] == "disposition"
    lead_now = (await api.get(f"/api/v1/leads/{lead['id']}", headers=ana)).json()
    assert lead_now["status"] != "converted"  # linking is not converting

    bad = [await api.post("/api/v1/opportunities", headers=ana, json=body) for body in (
        {"title": "x", "pipeline": "capital"}, {"title": "x", "offer_price": "-1"}, {"title": "  "},
        {"lead_id": "ld_nope"}, {"title": "x", "stage": "closed_won"}, {"title": "x", "arv": "1e15"})]
    assert [r.status_code for r in bad] == [422] * 6, [r.text for r in bad]
    assert (await api.post("/api/v1/opportunities", headers=make_key(Role.readonly, tenant=p["tenant"]),
                           json={"title": "x"})).status_code == 403

    deal = await _open(api, ana, assignee="me", offer_price="100000")
    patched = await api.patch(f"/api/v1/opportunities/{deal['id']}", headers=ana,
                              json={"offer_price": None, "repair_estimate": "25000.00", "title": "12 Oak Street"})
    assert patched.status_code == 200, patched.text
    assert (patched.json()["offer_price"], patched.json()["repair_estimate"], patched.json()["title"]) == (
        None, "25000.00", "12 Oak Street")
    assert (await api.patch(f"/api/v1/opportunities/{deal['id']}", headers=ana,
                            json={"stage": "closed_won"})).status_code == 422  # stages move through /stage only
    # Ben (staff) may not edit or take Ana's deal; Mia (manager) may reassign it.
    assert (await api.patch(f"/api/v1/opportunities/{deal['id']}", headers=ben,
                            json={"title": "mine"})).status_code == 403
    assert (await api.post(f"/api/v1/opportunities/{deal['id']}/assign", headers=ben,
                           json={"assignee": "me"})).status_code == 403
    assert (await api.post(f"/api/v1/opportunities/{deal['id']}/stage", headers=ben,
                           json={"stage": "closed_lost", "reason": "not mine"})).status_code == 403
    handed = await api.post(f"/api/v1/opportunities/{deal['id']}/assign", headers=mia,
                            json={"assignee": p["ben"]["email"]})
    assert handed.status_code == 200 and handed.json()["assigned_to"] == p["ben"]["id"]
    with Session(engine) as session:
        actions = [(a.action, a.actor) for a in session.exec(
            select(AuditLog).where(AuditLog.entity_id == deal["id"]).order_by(AuditLog.id))]
    assert actions == [("deal.create", f"user:{p['ana']['id']}"), ("deal.assign", f"user:{p['ana']['id']}"),
                       ("deal.update", f"user:{p['ana']['id']}"), ("deal.assign", f"user:{p['mia']['id']}")]


async def test_the_list_filters_by_pipeline_stage_assignee_value_and_staleness(api, make_key, engine):
    p = await _people(api, make_key, engine)
    ana, admin = p["ana"]["headers"], p["admin"]
    a1 = await _open(api, ana, title="A1", assignee="me", asking_price="90000")
    a2 = await _open(api, ana, title="A2", assignee="me", asking_price="250000", contract_price="180000")
    b1 = await _open(api, admin, title="B1", assignee=p["ben"]["id"], offer_price="400000")
    n1 = await _open(api, admin, title="N1", pipeline="disposition")
    with Session(engine) as session:  # A1 entered its stage ten days ago, B1 four days ago, N1 is closed
        for deal_id, days in ((a1["id"], 10), (b1["id"], 4)):
            row = session.get(Opportunity, deal_id)
            row.stage_entered_at = utcnow() - timedelta(days=days)
            session.add(row)
        row = session.get(Opportunity, n1["id"])
        row.stage_entered_at, row.closed_at = utcnow() - timedelta(days=30), utcnow()
        session.add(row)
        session.commit()

    async def titles(headers=admin, **params) -> list[str]:
        response = await api.get("/api/v1/opportunities", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [item["title"] for item in response.json()["items"]]

    assert await titles() == ["N1", "B1", "A2", "A1"]
    assert await titles(pipeline="disposition") == ["N1"]
    assert await titles(stage="marketing") == ["N1"]
    assert await titles(ana, assignee="me") == ["A2", "A1"]
    assert await titles(assignee=p["ben"]["id"]) == ["B1"]
    assert await titles(assignee="none") == ["N1"]
    # value: the contract price, else the offer, else the asking price
    assert await titles(min_value="150000") == ["B1", "A2"]
    assert await titles(min_value="100000", max_value="200000") == ["A2"]
    assert await titles(stale_for="3d") == ["A1", "B1"]  # open deals only, stalest first
    assert await titles(stale_for="1w") == ["A1"]
    first = (await api.get("/api/v1/opportunities", headers=admin, params={"stale_for": "1d", "limit": 1})).json()
    second = (await api.get("/api/v1/opportunities", headers=admin,
                            params={"stale_for": "1d", "limit": 1, "cursor": first["next_cursor"]})).json()
    assert [i["title"] for i in first["items"] + second["items"]] == ["A1", "B1"] and second["next_cursor"] is None
    for params in ({"stale_for": "3 days"}, {"min_value": "-5"}, {"min_value": "abc"}, {"stale_for": "9" * 20}):
        response = await api.get("/api/v1/opportunities", headers=admin, params=params)
        assert response.status_code == 422, (params, response.text)
    assert await titles(make_key(Role.admin)) == []  # another tenant sees none of them
    assert Decimal(a2["contract_price"]) == Decimal("180000")


LOST_STOPS = """schema: dealflow/v1
key: offer-follow-up
subject: deal
trigger: {event: deal.stage_changed, when: 'deal.stage == "offer_made"'}
steps:
  - {id: wait, wait: 3d}
  - {id: nudge, action: create_task, with: {title: Follow up on the offer}}
"""


async def test_a_lost_deal_stops_its_automations(api, make_key, engine, temporal_client):
    from tests.integration.test_definition_enrollment import _publish, _runs
    from workflows.definition import DefinitionWorkflow

    from models.signing import SigningState
    from tests.integration.test_signing import body as document_body, document_is, link_for

    p = await _people(api, make_key, engine)
    ana, ops = p["ana"]["headers"], make_key(Role.ops, tenant=p["tenant"])
    await _publish(api, ops, LOST_STOPS, "offer-follow-up")
    seller = f"maria.{uuid.uuid4().hex[:6]}@example.com"
    _, lead_id = insert_lead(engine, p["tenant"], first_name="Maria", last_name="Garcia", email=seller, property={
        "street": "4500 Oak Ridge Dr", "city": "Austin", "state": "TX", "zip": "78745"})
    deal = await _open(api, ana, lead_id=lead_id, assignee="me", offer_price="100000", contract_price="98000")
    await _running(api, ana, deal["id"])
    assert (await _move(api, ana, deal["id"], "contacted")).status_code == 200
    assert (await _move(api, ana, deal["id"], "offer_made")).status_code == 200
    run = (await eventually(lambda: _runs(engine, deal["id"]) or None, timeout=30))[0]
    assert run.definition_key == "offer-follow-up"
    handle = temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, run.workflow_id)
    await eventually(lambda: _at(handle, "wait"), timeout=30)
    # An envelope out to the seller, its day-2 and day-5 reminders armed.
    asked = await api.post(f"/api/v1/opportunities/{deal['id']}/documents", headers=ana,
                           json=document_body(seller, expires_in="7d"))
    assert asked.status_code == 201, asked.text
    document = asked.json()
    await link_for(api, ana, seller)  # the invitation went out: the signing workflow waits for the signers

    lost = await _move(api, ana, deal["id"], "closed_lost", "seller listed with an agent")
    assert lost.status_code == 200 and lost.json()["closed"] is True and lost.json()["sla_due_at"] is None
    result = await asyncio.wait_for(handle.result(), 20)  # ends now, not in three days
    assert result.status == "exited" and "the deal was lost" in result.path[-1]["detail"], result
    body = (await api.get(f"/api/v1/opportunities/{deal['id']}", headers=ana)).json()
    assert body["closed_at"] is not None and body["history"][-1]["reason"] == "seller listed with an agent"
    # The envelope is voided through the staff void's path, saying why; its workflow is over, no timer left.
    voided = await document_is(api, ana, document["id"], "voided")
    assert "deal closed lost" in voided["status_reason"], voided
    assert any(e["event"] == "voided" and "deal closed lost: seller listed with an agent" in (e["detail"] or "")
               for e in voided["events"]), voided["events"]
    signing = temporal_client.get_workflow_handle(document["workflow_id"], result_type=SigningState)
    ended = await asyncio.wait_for(signing.result(), 20)
    assert ended.status == "voided" and ended.reminders_sent == 0
    assert not [e for e in voided["events"] if e["event"] == "reminded"]
    messages = (await api.get("/api/v1/messages", headers=ana, params={"limit": 200})).json()["items"]
    assert not [m for m in messages if m["template"] == "esign_reminder"]
    # A closed deal takes no new document.
    refused = await api.post(f"/api/v1/opportunities/{deal['id']}/documents", headers=ana,
                             json=document_body(seller, expires_in="7d"))
    assert refused.status_code == 409 and refused.headers["content-type"].startswith("application/problem+json")
    assert "closed_lost" in refused.json()["detail"], refused.text
    # revived: open again, its SLA clock running
    revived = await _move(api, ana, deal["id"], "contacted", "seller came back")
    assert revived.status_code == 200 and revived.json()["closed"] is False and revived.json()["sla_due_at"]
    assert (await api.get(f"/api/v1/opportunities/{deal['id']}", headers=ana)).json()["closed_at"] is None


async def test_the_temporal_ui_shows_the_deals_stage_owner_and_sla(api, make_key, engine, temporal_client):
    """DealWorkflow's current details (what the Temporal UI shows, read as it reads them: the
    __temporal_workflow_metadata query) follow the stage, the owner (reassigned on the event path) and the SLA."""
    from temporalio.api.enums.v1 import WorkflowExecutionStatus
    from temporalio.api.sdk.v1 import WorkflowMetadata

    from core import search_attributes as sa
    from workflows.deal import DealWorkflow

    p = await _people(api, make_key, engine)
    ana, mia = p["ana"]["headers"], p["mia"]["headers"]
    deal = await _open(api, ana, assignee="me")
    await _running(api, ana, deal["id"])
    handle = temporal_client.get_workflow_handle_for(DealWorkflow.run, deal["workflow_id"])

    seen = {"details": ""}

    async def details(*wanted: str) -> str:
        async def check():
            metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
            seen["details"] = metadata.current_details
            return seen["details"] if all(w in seen["details"] for w in wanted) else None
        try:
            return await eventually(check, timeout=30)
        except AssertionError:
            raise AssertionError(f"{wanted} not in {seen['details']!r}") from None

    def due(state) -> str:
        return f"due {state.sla_due_at[:16].replace('T', ' ')} UTC"

    described = await handle.describe()
    assert described.status == WorkflowExecutionStatus.WORKFLOW_EXECUTION_STATUS_RUNNING
    assert described.typed_search_attributes.get(sa.DEAL_STAGE) == "new"
    state = await handle.query(DealWorkflow.state)
    shown = await details("**Stage** new (acquisition)", f"**Owner** Ana <{p['ana']['email']}>",
                          f"**SLA** First contact with the seller {due(state)}")
    assert "missed" not in shown

    handed = await api.post(f"/api/v1/opportunities/{deal['id']}/assign", headers=mia,
                            json={"assignee": p["ben"]["email"]})
    assert handed.status_code == 200, handed.text
    await details("**Stage** new", f"**Owner** Ben <{p['ben']['email']}>")

    assert (await _move(api, mia, deal["id"], "contacted")).status_code == 200
    state = await handle.query(DealWorkflow.state)
    await details("**Stage** contacted (acquisition)", f"**Owner** Ben <{p['ben']['email']}>",
                  f"**SLA** Set an appointment or make an offer {due(state)}")
    assert (await _move(api, mia, deal["id"], "closed_lost", "went with a realtor")).status_code == 200
    await details("**Stage** closed_lost (acquisition)", "**SLA** closed: no SLA")


async def _at(handle, step: str) -> bool:
    from workflows.definition import DefinitionWorkflow

    return (await handle.query(DefinitionWorkflow.state)).current_step == step
