"""The lead lifecycle through the API on the dev server with the real activities: enrichment, scoring
with reasons, status updates with validators, conversion into a deal and its stage machine."""

from __future__ import annotations

import uuid

from models.tenant import Role
from tests.conftest import (
    distant_weekday, eventually, ready_for_contract, set_tenant, toll_free, workflow_running, zone_at_local_hour,
)


async def _lead(api, make_key, engine):
    tenant = f"l{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    # nothing is sent during the test: the window opens only in three days (the Texas address puts the lead in
    # Chicago whatever the tenant's zone, so quiet hours in that zone alone let the first touch go in the day)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(2), send_window_days=distant_weekday())
    lead = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Life", "last_name": "Cycle", "email": f"life.{uuid.uuid4().hex[:6]}@mailinator.com",
        "phone": toll_free(), "source": "direct_mail", "tags": ["probate", "vacant"],
        "property_address": "4500 Oak Ridge Drive, Austin, TX 78731"})).json()
    await workflow_running(api, headers, lead["id"])
    return tenant, headers, lead


async def _detail(api, headers, lead_id, predicate):
    body = (await api.get(f"/api/v1/leads/{lead_id}", headers=headers)).json()
    return body if predicate(body) else None


async def test_a_posted_lead_is_enriched_and_scored_with_reasons(api, make_key, engine):
    tenant, headers, lead = await _lead(api, make_key, engine)
    detail = await eventually(lambda: _detail(api, headers, lead["id"], lambda b: b["score"] is not None
                                              and b["definitions"]), timeout=90)
    contact = detail["enrichment"]["contact"]
    assert contact["email"]["disposable"] is True  # mailinator
    assert contact["phone"]["type"] == "toll_free"
    assert detail["enrichment"]["address"]["key"] == "4500 OAK RIDGE DR, AUSTIN, TX 78731"
    assert detail["enrichment"]["sources"]["county_records"]["status"] == "no_match"
    assert detail["enrichment"]["sources"]["property_api"]["status"] == "disabled"
    assert 0 < detail["score"] < 1 and detail["score_model_version"] == f"{tenant}-v1-cold_start"
    reasons = detail["score_explanation"]
    assert reasons and all(r["text"].endswith(f"{r['size']:+.2f}") for r in reasons)
    assert any("disposable email" in r["text"] for r in reasons)
    # The lifecycle is done; the first touch is the speed-to-lead definition's (waiting for the send window)
    assert detail["cadence_step"] == "done"
    assert detail["next_action"] == "waiting for replies, notes or staff actions"
    assert [(d["key"], d["version"], d["status"]) for d in detail["definitions"]] == [("speed-to-lead", 1, "running")]
    call_next = (await api.get("/api/v1/leads?sort=-score&min_score=0", headers=headers)).json()["items"]
    assert [x["id"] for x in call_next] == [lead["id"]]


async def test_status_updates_are_validated_by_the_workflow(api, make_key, engine):
    tenant, headers, lead = await _lead(api, make_key, engine)
    url = f"/api/v1/leads/{lead['id']}/status"
    illegal = await api.post(url, headers=headers, json={"status": "converted"})
    assert illegal.status_code == 409 and "only through POST /leads/{id}/convert" in illegal.json()["detail"]
    ok = await api.post(url, headers=headers, json={"status": "qualified", "reason": "motivated, 30 days"})
    assert ok.status_code == 200 and ok.json()["status"] == "qualified" and ok.json()["cadence_stopped"] is False
    again = await api.post(url, headers=headers, json={"status": "new"})
    assert again.status_code == 409
    assert again.json()["detail"] == "cannot move a qualified lead to new (allowed: dead, nurturing)"
    bad = await api.post(url, headers=headers, json={"status": "sleeping"})
    assert bad.status_code == 422
    row = (await api.get(f"/api/v1/leads/{lead['id']}", headers=headers)).json()
    assert row["status"] == "qualified" and row["status_reason"] == "motivated, 30 days"


async def test_convert_creates_a_deal_whose_stages_are_validated(api, make_key, engine, temporal_client):
    tenant, headers, lead = await _lead(api, make_key, engine)
    converted = await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=headers,
                               json={"asking_price": "185000.00"})
    assert converted.status_code == 200, converted.text
    deal_id = converted.json()["opportunity_id"]
    again = await api.post(f"/api/v1/leads/{lead['id']}/convert", headers=headers, json={})
    assert again.status_code == 409  # converted once
    deal = (await api.get(f"/api/v1/opportunities/{deal_id}", headers=headers)).json()
    assert deal["stage"] == "new" and deal["asking_price"] == "185000.00" and deal["lead_id"] == lead["id"]
    assert (await api.get(f"/api/v1/leads/{lead['id']}", headers=headers)).json()["status"] == "converted"

    stage = f"/api/v1/opportunities/{deal_id}/stage"
    skip = await api.post(stage, headers=headers, json={"stage": "under_contract"})
    assert skip.status_code == 409
    assert [e["message"] for e in skip.json()["errors"]] == [
        "cannot move from new to under_contract (allowed: closed_lost, contacted)",
        "under_contract needs contract price (contract_price)",
        "under_contract needs a signed purchase agreement (purchase_agreement completed)"]
    ready_for_contract(engine, deal_id)
    for step in ("contacted", "offer_made", "under_contract"):
        moved = await api.post(stage, headers=headers, json={"stage": step})
        assert moved.status_code == 200 and moved.json()["stage"] == step
    deal = (await api.get(f"/api/v1/opportunities/{deal_id}", headers=headers)).json()
    assert [h["to_stage"] for h in deal["history"]] == ["new", "contacted", "offer_made", "under_contract"]
    description = await temporal_client.get_workflow_handle(deal["workflow_id"]).describe()
    from core import search_attributes as sa
    assert description.typed_search_attributes.get(sa.DEAL_STAGE) == "under_contract"
    other = make_key(Role.staff)
    assert (await api.post(stage, headers=other, json={"stage": "closed_won"})).status_code == 404
