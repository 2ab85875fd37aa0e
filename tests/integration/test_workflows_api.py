"""Describe, query and signal workflows through the API."""

from __future__ import annotations

import uuid

from sqlmodel import Session, select
from temporalio.service import RPCError

from core import search_attributes as sa
from models.lead import Lead
from models.tenant import Role
from models.timeline import TimelineEntry
from workflows.lead import LeadWorkflow
from tests.conftest import event_kinds, eventually


async def _new_lead(api, headers):
    body = {"first_name": "Sig", "last_name": "Nal", "email": f"sig.{uuid.uuid4().hex[:8]}@example.com",
            "source": "ppc"}
    return (await api.post("/api/v1/leads", json=body, headers=headers)).json()


def _kinds(engine, lead_id):
    with Session(engine) as session:
        # lead.* events only: message.* entries depend on the send window at the time the test runs
        return event_kinds(e.kind for e in session.exec(select(TimelineEntry).where(TimelineEntry.lead_id == lead_id)
                                                        .order_by(TimelineEntry.occurred_at, TimelineEntry.id)))


async def test_describe_shows_state_search_attributes_and_signals(api, make_key):
    headers = make_key(Role.staff)
    lead = await _new_lead(api, headers)
    async def described():
        body = (await api.get(f"/api/v1/workflows/{lead['workflow_id']}", headers=headers)).json()
        return body if body.get("state") and body["state"]["received"] else None
    body = await eventually(described)
    assert body["workflow_type"] == "LeadWorkflow" and body["status"] == "RUNNING"
    assert body["search_attributes"]["LeadId"] == lead["id"]
    assert body["search_attributes"]["TenantId"] == lead["tenant_id"]
    assert body["state"]["next_action"] and body["state"]["step"] in (
        "enrichment", "scoring", "first_touch", "wait_for_reply", "nudge", "done")
    assert body["signals"] == ["close", "note", "opted_out", "replied"]


async def test_signals_are_recorded_once_per_event_id(api, make_key, engine):
    headers = make_key(Role.staff)
    lead = await _new_lead(api, headers)
    url = f"/api/v1/workflows/{lead['workflow_id']}/signals/note"
    for _ in range(3):  # a client retrying the same request
        response = await api.post(url, json={"note": "Left voicemail"}, headers={**headers, "Idempotency-Key": "n1"})
        assert response.status_code == 202 and response.json()["event_id"] == "n1"
    response = await api.post(url, json={"note": "Spoke to owner", "event_id": "n2"}, headers=headers)
    assert response.status_code == 202
    await eventually(lambda: _kinds(engine, lead["id"]).count("lead.note") == 2)
    assert _kinds(engine, lead["id"]) == ["lead.received", "lead.note", "lead.note"]


async def test_unknown_signal_is_rejected_with_the_allowed_ones(api, make_key):
    headers = make_key(Role.staff)
    lead = await _new_lead(api, headers)
    response = await api.post(f"/api/v1/workflows/{lead['workflow_id']}/signals/explode", json={}, headers=headers)
    assert response.status_code == 422
    assert response.json()["detail"] == "LeadWorkflow has no signal 'explode'; allowed: close, note, opted_out, replied"
    response = await api.post(f"/api/v1/workflows/{lead['workflow_id']}/signals/submitted", json={}, headers=headers)
    assert response.status_code == 422  # internal signal, not for callers


async def test_close_ends_the_workflow_and_marks_the_lead_dead(api, make_key, engine, temporal_client):
    headers = make_key(Role.staff)
    lead = await _new_lead(api, headers)
    url = f"/api/v1/workflows/{lead['workflow_id']}/signals/close"
    response = await api.post(url, json={"note": "Sold to another buyer"}, headers=headers)
    assert response.status_code == 202  # accepted before the relay even started the workflow: delivered after
    handle = temporal_client.get_workflow_handle_for(LeadWorkflow.run, lead["workflow_id"])

    async def started() -> bool:
        try:
            return bool(await handle.describe())
        except RPCError:
            return False

    await eventually(started)
    result = await handle.result()
    assert result.status == "dead"
    with Session(engine) as session:
        row = session.get(Lead, lead["id"])
        assert row.status == "dead" and row.status_reason == "Sold to another buyer"
    kinds = _kinds(engine, lead["id"])  # (a first touch sent in the window may have made it contacted first)
    assert kinds[0] == "lead.received" and kinds[-2:] == ["lead.closed", "lead.status_changed"], kinds
    assert set(kinds) == {"lead.received", "lead.closed", "lead.status_changed"}
    description = await temporal_client.get_workflow_handle(lead["workflow_id"]).describe()
    assert description.typed_search_attributes.get(sa.LEAD_STATUS) == "dead"
    again = await api.post(url, json={"note": "again"}, headers=headers)
    assert again.status_code == 409 and "completed" in again.json()["detail"]


async def test_unknown_workflow_is_404(api, make_key):
    response = await api.get("/api/v1/workflows/lead-nobody-ld_0", headers=make_key())
    assert response.status_code == 404
