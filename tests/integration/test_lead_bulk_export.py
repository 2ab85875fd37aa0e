"""Many leads at once: bulk assign, status and enrollment (each lead through its own endpoint's path, each with its
own outcome), the CSV export of a filtered list, and the list's tag and received-date filters."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, select

from models.definition import WorkflowExecution
from models.lead import Lead
from models.tenant import Role
from tests.conftest import delivered, eventually, insert_lead, workflow_running
from tests.integration.test_definition_enrollment import _publish
from tests.integration.test_users import staff_team

NURTURE = """schema: dealflow/v1
key: hand-nurture
trigger: {event: appointment.booked}
steps:
  - {id: wait_reply, wait_for: {event: lead.replied, timeout: 30d}, save_as: reply}
"""


async def _lead(api, headers, **fields) -> dict:
    body = {"first_name": "Bulk", "email": f"bulk.{uuid.uuid4().hex[:6]}@example.com", "source": "web_form", **fields}
    created = await api.post("/api/v1/leads", headers=headers, json=body)
    assert created.status_code == 201, created.text
    return created.json()


async def test_bulk_actions_go_lead_by_lead_through_the_single_lead_paths(api, make_key, engine, temporal_client):
    team = await staff_team(api, make_key, engine, "acquisitions", (("rita", "staff"), ("omar", "ops")))
    rita = team["rita"]["headers"]
    first, second = await _lead(api, rita), await _lead(api, rita)
    stranger = await _lead(api, make_key(Role.staff))  # another tenant's
    ids = [first["id"], second["id"], stranger["id"]]

    assigned = await api.post("/api/v1/leads/bulk", headers=rita, json={"lead_ids": ids, "action": "assign",
                                                                         "assignee": "me"})
    assert assigned.status_code == 200, assigned.text
    result = assigned.json()
    assert (result["done"], result["failed"]) == (2, 1)
    assert [r["ok"] for r in result["results"]] == [True, True, False]
    assert "not found" in result["results"][2]["detail"]
    with Session(engine) as session:
        assert {session.get(Lead, i).assigned_to for i in ids[:2]} == {team["rita"]["id"]}
        assert session.get(Lead, stranger["id"]).assigned_to is None

    for lead in (first, second):
        await workflow_running(api, rita, lead["id"])
    status = (await api.post("/api/v1/leads/bulk", headers=rita, json={
        "lead_ids": ids[:2], "action": "status", "status": "nurturing", "reason": "not ready"})).json()
    assert status["done"] == 2, status
    with Session(engine) as session:
        assert {session.get(Lead, i).status for i in ids[:2]} == {"nurturing"}

    # Enrollment by hand in a published definition, whatever its trigger; a lead already in a run of it is not
    # enrolled twice; an unpublished key is refused for each lead, saying so.
    await _publish(api, team["omar"]["headers"], NURTURE, "hand-nurture")
    enrolled = (await api.post("/api/v1/leads/bulk", headers=rita, json={
        "lead_ids": ids[:2], "action": "enroll", "definition": "hand-nurture"})).json()
    assert enrolled["done"] == 2 and all("enrolled in hand-nurture" in r["detail"] for r in enrolled["results"])

    def runs(lead_id):
        with Session(engine) as session:
            return session.exec(select(WorkflowExecution).where(WorkflowExecution.subject_id == lead_id,
                                                                WorkflowExecution.definition_key == "hand-nurture")
                                ).all()

    for lead_id in ids[:2]:
        run = (await eventually(lambda lead_id=lead_id: runs(lead_id), timeout=30))[0]
        assert (await temporal_client.get_workflow_handle(run.workflow_id).describe()).status.name == "RUNNING"
    again = (await api.post("/api/v1/leads/bulk", headers=rita, json={
        "lead_ids": ids[:1], "action": "enroll", "definition": "hand-nurture"})).json()
    assert again["results"][0]["detail"] == "already in a running hand-nurture" and len(runs(ids[0])) == 1
    unknown = (await api.post("/api/v1/leads/bulk", headers=rita, json={
        "lead_ids": ids[:1], "action": "enroll", "definition": "no-such"})).json()
    assert unknown["failed"] == 1 and "no published definition 'no-such'" in unknown["results"][0]["detail"]
    timeline = (await api.get(f"/api/v1/leads/{ids[0]}/timeline", headers=rita)).json()
    assert "definition.enrolled" in [e["kind"] for e in timeline]

    # Refused as a whole: a readonly key, or an action without what it needs.
    reader = make_key(Role.readonly, tenant=team["tenant"])
    assert (await api.post("/api/v1/leads/bulk", headers=reader, json={
        "lead_ids": ids[:1], "action": "assign", "assignee": None})).status_code == 403
    missing = await api.post("/api/v1/leads/bulk", headers=rita, json={"lead_ids": ids[:1], "action": "status"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "status"


async def test_the_csv_export_lists_what_the_filters_list_and_defuses_formulas(api, make_key, engine):
    headers = make_key(Role.staff)
    lead = await _lead(api, headers, first_name="=HYPERLINK(\"http://evil\")", tags=["Vacant", "probate"],
                       source="ppc", phone="(512) 555-0142")
    tenant = lead["tenant_id"]
    insert_lead(engine, tenant=tenant, first_name="Other", source="ppc", tags=["vacant-lot"])
    old = insert_lead(engine, tenant=tenant, first_name="Old", source="referral", tags=["vacant"],
                      created_at=datetime.now(UTC) - timedelta(days=40))[1]

    listed = (await api.get("/api/v1/leads", headers=headers, params={"tag": "vacant"})).json()["items"]
    assert {i["first_name"] for i in listed} == {lead["first_name"], "Old"}  # not "vacant-lot"
    since = (datetime.now(UTC) - timedelta(days=7)).isoformat()
    recent = (await api.get("/api/v1/leads", headers=headers, params={"tag": "vacant", "created_from": since})
              ).json()["items"]
    assert [i["id"] for i in recent] == [lead["id"]]
    edge = await api.get("/api/v1/leads/export.csv", headers=headers,
                         params={"created_from": "0001-01-01T00:00:00+14:00"})  # before year 1 in UTC
    assert edge.status_code == 422 and edge.json()["errors"][0]["field"] == "created_from"
    naive = await api.get("/api/v1/leads", headers=headers, params={"created_from": "2026-01-01T00:00:00"})
    assert naive.status_code == 422 and naive.json()["errors"][0]["field"] == "created_from"

    exported = await api.get("/api/v1/leads/export.csv", headers=headers, params={"tag": "vacant"})
    assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
    assert "attachment" in exported.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["id"] for r in rows} == {lead["id"], old}
    row = next(r for r in rows if r["id"] == lead["id"])
    assert row["first_name"].startswith("'=HYPERLINK")  # a spreadsheet shows it, does not run it
    assert row["tags"] == "probate;vacant" and row["source"] == "ppc"
    assert row["phone"] == "+15125550142"  # an E.164 number is kept as it is (no formula, no apostrophe)
    everything = list(csv.DictReader(io.StringIO((await api.get("/api/v1/leads/export.csv", headers=headers)).text)))
    assert len(everything) == 3
    other = make_key(Role.staff)
    assert list(csv.DictReader(io.StringIO((await api.get("/api/v1/leads/export.csv", headers=other)).text))) == []
    await delivered(engine, f"{lead['id']}:created")
