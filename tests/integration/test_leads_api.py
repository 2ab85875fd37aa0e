"""POST/GET leads end to end: real API, real DB, real Temporal dev server, real worker."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select

from core import search_attributes as sa
from models.audit import AuditLog
from models.lead import Lead
from models.tenant import Role
from tests.conftest import event_kinds, eventually


def _lead(**overrides):
    body = {"first_name": "Maria", "last_name": "Garcia", "email": f"Maria.{uuid.uuid4().hex[:6]}@Example.com",
            "phone": f"(512) 555-{uuid.uuid4().int % 10000:04d}", "source": "web_form",
            "property_address": "4500 oak ridge dr, austin, tx 78731", "tags": ["Vacant"]}
    body.update(overrides)
    return body


async def _timeline(api, headers, lead_id):
    """The lead.* entries (message.* ones depend on the send window at the moment the test runs)."""
    response = await api.get(f"/api/v1/leads/{lead_id}/timeline", headers=headers)
    assert response.status_code == 200
    return [e for e in response.json() if e["kind"] in event_kinds([e["kind"]])]


async def test_posted_lead_is_normalised_stored_and_running_with_search_attributes(api, make_key,
                                                                                   temporal_client):
    headers = make_key(Role.staff)
    response = await api.post("/api/v1/leads", json=_lead(phone="512.555.0199"), headers=headers)
    assert response.status_code == 201, response.text
    lead = response.json()
    assert lead["email"].startswith("maria.") and lead["email"].endswith("@example.com")
    assert lead["phone"] == "+15125550199"
    assert lead["property_address"] == "4500 Oak Ridge Dr, Austin, TX 78731"
    assert lead["property"]["state"] == "TX" and lead["property"]["zip"] == "78731"
    assert lead["status"] == "new" and lead["tags"] == ["vacant"]
    assert lead["workflow_id"] == f"lead-{lead['tenant_id']}-{lead['id']}"
    assert response.headers["location"] == f"/api/v1/leads/{lead['id']}"

    entries = await eventually(lambda: _timeline(api, headers, lead["id"]))
    assert [e["kind"] for e in entries] == ["lead.received"]
    assert entries[0]["data"]["source"] == "web_form" and entries[0]["data"]["channel"] == "api"

    description = await temporal_client.get_workflow_handle(lead["workflow_id"]).describe()
    assert description.status.name == "RUNNING"
    attrs = description.typed_search_attributes
    assert attrs.get(sa.TENANT_ID) == lead["tenant_id"]
    assert attrs.get(sa.LEAD_ID) == lead["id"]
    assert attrs.get(sa.LEAD_STATUS) == "new"

    detail = (await api.get(f"/api/v1/leads/{lead['id']}", headers=headers)).json()
    assert detail["workflow_status"] == "RUNNING" and detail["id"] == lead["id"]


async def test_duplicate_is_kept_linked_and_reported_to_the_original_workflow(api, make_key, engine):
    headers = make_key(Role.staff)
    first = (await api.post("/api/v1/leads", json=_lead(phone="(512) 555-0101"), headers=headers)).json()
    again = await api.post("/api/v1/leads", json=_lead(first_name="M.", phone="+1 512 555 0101",
                                                       email=None, source="cold_call"), headers=headers)
    assert again.status_code == 200, again.text
    duplicate = again.json()
    assert duplicate["duplicate_of"] == first["id"] and duplicate["id"] != first["id"]
    assert duplicate["workflow_id"] == first["workflow_id"]  # one workflow per person

    entries = await eventually(lambda: _check_kinds(api, headers, first["id"], 2))
    assert [e["kind"] for e in entries] == ["lead.received", "lead.duplicate_received"]
    assert entries[1]["data"]["lead_id"] == duplicate["id"]
    with Session(engine) as session:  # nothing dropped: the resubmission is its own row
        assert session.get(Lead, duplicate["id"]).source == "cold_call"

    listed = (await api.get("/api/v1/leads", headers=headers)).json()["items"]
    assert [item["id"] for item in listed] == [first["id"]]
    listed = (await api.get("/api/v1/leads?include_duplicates=true", headers=headers)).json()["items"]
    assert {item["id"] for item in listed} == {first["id"], duplicate["id"]}


async def _check_kinds(api, headers, lead_id, count):
    entries = await _timeline(api, headers, lead_id)
    return entries if len(entries) >= count else None


async def test_invalid_lead_is_a_problem_naming_each_field(api, make_key):
    headers = make_key(Role.staff)
    response = await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Ann", "email": "ann@@example", "phone": "12", "source": "billboard",
        "property": {"street": "1 Main", "city": "Austin", "state": "ZZ", "zip": "7870"}})
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    fields = {e["field"] for e in problem["errors"]}
    assert {"email", "phone", "source", "property.state", "property.zip"} <= fields
    assert problem["status"] == 422 and "request_id" in problem

    response = await api.post("/api/v1/leads", headers=headers, json={"first_name": "Ann", "source": "ppc"})
    assert response.status_code == 422
    assert "a lead needs an email or a phone" in response.json()["detail"]

    response = await api.post("/api/v1/leads", headers=headers, json=_lead(property_address="hello there"))
    assert [e["field"] for e in response.json()["errors"]] == ["property_address"]


async def test_list_filters_search_and_cursor_paging(api, make_key):
    headers = make_key(Role.admin)
    ids = []
    for i, source in enumerate(["ppc", "ppc", "referral", "ppc", "direct_mail"]):
        body = _lead(first_name=f"Pager{i}", last_name="Zed", source=source, phone=f"(713) 555-01{i:02d}",
                     property_address=f"{100 + i} Elm St, Houston, TX 77002")
        ids.append((await api.post("/api/v1/leads", json=body, headers=headers)).json()["id"])

    ppc = (await api.get("/api/v1/leads?source=ppc", headers=headers)).json()["items"]
    assert [x["first_name"] for x in ppc] == ["Pager3", "Pager1", "Pager0"]  # newest first
    two = (await api.get("/api/v1/leads?source=ppc&source=referral&limit=2", headers=headers)).json()
    assert len(two["items"]) == 2 and two["next_cursor"]
    rest = (await api.get(f"/api/v1/leads?source=ppc&source=referral&limit=2&cursor={two['next_cursor']}",
                          headers=headers)).json()
    assert rest["next_cursor"] is None
    paged = [x["id"] for x in two["items"] + rest["items"]]
    assert sorted(paged) == sorted(ids[:4]) and len(set(paged)) == 4

    found = (await api.get("/api/v1/leads?q=pager4", headers=headers)).json()["items"]
    assert [x["id"] for x in found] == [ids[4]]
    found = (await api.get("/api/v1/leads?q=104 elm", headers=headers)).json()["items"]
    assert [x["id"] for x in found] == [ids[4]]
    found = (await api.get("/api/v1/leads?q=7135550102", headers=headers)).json()["items"]
    assert [x["id"] for x in found] == [ids[2]]
    assert (await api.get("/api/v1/leads?status=dead", headers=headers)).json()["items"] == []

    bad = await api.get("/api/v1/leads?cursor=not-a-cursor", headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "cursor"
    bad = await api.get("/api/v1/leads?status=sleeping", headers=headers)
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "status.0"


async def test_search_takes_like_wildcards_literally_and_finds_formatted_phones(api, make_key):
    headers = make_key(Role.staff)  # a tenant of its own: "%" and "_" would match every lead it holds
    plain = (await api.post("/api/v1/leads", headers=headers, json=_lead(
        first_name="Wilma", last_name="Plain", email="wilma.plain@example.com", phone="(281) 555-0140"))).json()
    odd = (await api.post("/api/v1/leads", headers=headers, json=_lead(
        first_name="Percy", last_name="100%_Sure", email="percy@example.com", phone="(281) 555-0141"))).json()
    for q, expected in (("%", [odd["id"]]), ("_", [odd["id"]]), ("100%_s", [odd["id"]]), ("w%a", []),
                        ("wilma_plain", []), ("wilma.plain", [plain["id"]]), ("(281) 555-0140", [plain["id"]]),
                        ("281-555-014", [odd["id"], plain["id"]]), ("\\", [])):
        response = await api.get("/api/v1/leads", headers=headers, params={"q": q})
        assert response.status_code == 200, (q, response.text)
        assert [x["id"] for x in response.json()["items"]] == expected, q


async def test_every_mutation_writes_the_audit_log(api, make_key, engine):
    headers = make_key(Role.staff)
    lead = (await api.post("/api/v1/leads", json=_lead(), headers=headers)).json()
    response = await api.patch(f"/api/v1/leads/{lead['id']}", headers={**headers, "X-Request-ID": "req-42"},
                               json={"notes": "Call after 5pm", "phone": "(512) 555-0777"})
    assert response.status_code == 200 and response.json()["phone"] == "+15125550777"
    with Session(engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.entity_id == lead["id"]).order_by(AuditLog.id)).all()
    assert [r.action for r in rows] == ["lead.create", "lead.update"]
    assert rows[1].before["notes"] is None and rows[1].after == {"notes": "Call after 5pm", "phone": "+15125550777"}
    assert rows[1].request_id == "req-42" and rows[1].actor.startswith("key:")
