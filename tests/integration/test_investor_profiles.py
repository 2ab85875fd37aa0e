"""Investor profiles and accreditation over HTTP on the real worker, and AccreditationWorkflow on the time-skipping
server with the real activities: PATCH (buy box, entity, check sizes, notes, owner) with its rules and audit,
reopening a passed investor, every list filter, accreditation records with their windows (a third-party letter
counts 90 days), 506(b)/506(c) eligibility with the reason, reminders before the end and the expiry."""

from __future__ import annotations

import concurrent.futures
import uuid
from datetime import UTC, datetime, timedelta

import pytest_asyncio
from sqlmodel import Session, select

from core.devserver import time_skipping_environment
from models.accreditation import Accreditation
from models.audit import AuditLog
from models.event import Event
from models.investor import Investor
from models.notification import Notification
from models.tenant import Role
from tests.conftest import eventually
from tests.integration.test_users import staff_team
from worker import build_worker
from workflows.accreditation import AccreditationInput, AccreditationWorkflow


async def _ir_team(api, make_key, engine) -> dict:
    return await staff_team(api, make_key, engine, "investor_relations", (("ivy", "staff"), ("joe", "staff"),
                                                                          ("meg", "manager")))


async def _investor(api, headers, **body) -> dict:
    response = await api.post("/api/v1/investors", headers=headers, json={
        "name": "Ada Capital", "email": f"ada.{uuid.uuid4().hex[:6]}@example.com", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_patch_edits_the_profile_with_its_rules_and_audit(api, make_key, engine):
    t = await _ir_team(api, make_key, engine)
    ivy, joe, meg = t["ivy"]["headers"], t["joe"]["headers"], t["meg"]["headers"]
    ada = await _investor(api, ivy)
    other = await _investor(api, ivy, name="Other")
    url = f"/api/v1/investors/{ada['id']}"
    patched = await api.patch(url, headers=ivy, json={
        "entity_type": "llc", "check_min": "50000", "check_max": "250000", "notes": "Prefers Austin flips",
        "tags": ["vip"], "assignee": "me", "preferences": {
            "markets": ["tx", "78731"], "property_types": ["sfh"], "strategies": ["flip"], "price_min": "100000",
            "price_max": "400000", "target_return": "0.12", "hold_period_months": 18, "risk": "medium"}})
    assert patched.status_code == 200, patched.text
    body = patched.json()
    assert (body["entity_type"], body["check_min"], body["check_max"], body["assigned_to"]) == (
        "llc", "50000.00", "250000.00", t["ivy"]["id"])
    assert body["preferences"]["markets"] == ["TX", "78731"] and body["preferences"]["target_return"] == "0.12"
    assert body["notes"] == "Prefers Austin flips" and body["tags"] == ["vip"] and body["updated_at"]

    refused = [await api.patch(url, headers=ivy, json=change) for change in (
        {"check_min": "300000"},  # above check_max
        {"entity_type": None}, {"entity_type": "partnership"}, {"preferences": {"markets": ["Texas"]}},
        {"preferences": {"target_return": 12}}, {"email": None, "phone": None}, {"name": ""}, {"status": "passed"},
        {"assignee": "nobody@example.com"})]
    assert [r.status_code for r in refused] == [422] * 9, [r.text for r in refused]
    assert refused[0].json()["errors"][0]["field"] == "check_min"
    clash = await api.patch(url, headers=ivy, json={"email": other["email"]})
    assert clash.status_code == 409 and clash.json()["errors"][0]["field"] == "email"
    # Joe (staff) may not edit Ivy's investor nor take it; Meg (manager) reassigns it.
    assert (await api.patch(url, headers=joe, json={"notes": "mine"})).status_code == 403
    assert (await api.patch(url, headers=meg, json={"assignee": t["joe"]["email"]})).json()["assigned_to"] == \
        t["joe"]["id"]
    assert (await api.patch(url, headers=make_key(Role.readonly, tenant=t["tenant"]),
                            json={"notes": "x"})).status_code == 403
    with Session(engine) as session:
        audits = session.exec(select(AuditLog).where(AuditLog.entity_id == ada["id"],
                                                     AuditLog.action == "investor.update").order_by(AuditLog.id)).all()
    assert [sorted(a.after) for a in audits] == [
        ["assigned_to", "check_max", "check_min", "entity_type", "notes", "preferences", "tags"], ["assigned_to"]]
    assert audits[0].before["entity_type"] == "individual"
    timeline = (await api.get(f"{url}/timeline", headers=meg)).json()
    assert [e["kind"] for e in timeline] == ["investor.created", "investor.updated", "investor.updated"]


async def test_a_passed_investor_is_reopened(api, make_key, engine):
    t = await _ir_team(api, make_key, engine)
    ivy = t["ivy"]["headers"]
    ada = await _investor(api, ivy)
    url = f"/api/v1/investors/{ada['id']}"
    assert (await api.post(f"{url}/reopen", headers=ivy, json={})).status_code == 409  # a prospect
    await api.post(f"{url}/events/investor.passed", headers=ivy, json={"event_id": "p1"})
    assert (await api.get(url, headers=ivy)).json()["status"] == "passed"
    joe = t["joe"]["headers"]
    await api.patch(url, headers=ivy, json={"assignee": "me"})
    assert (await api.post(f"{url}/reopen", headers=joe, json={})).status_code == 403  # Ivy's investor
    reopened = await api.post(f"{url}/reopen", headers=ivy, json={"reason": "new fund, asked for deals " + "x" * 470})
    assert reopened.status_code == 200 and reopened.json()["status"] == "engaged"  # a 500-character reason fits
    with Session(engine) as session:
        names = [e.name for e in session.exec(select(Event).where(Event.subject_id == ada["id"]))]
    assert "investor.reopened" in names


async def test_the_list_filters(api, make_key, engine):
    t = await _ir_team(api, make_key, engine)
    ivy, admin = t["ivy"]["headers"], t["admin"]
    a = await _investor(api, ivy, name="A", accredited=True, preferences={"markets": ["TX"]})
    b = await _investor(api, ivy, name="B", preferences={"markets": ["FL", "78731"]})
    await _investor(api, ivy, name="C")
    await api.patch(f"/api/v1/investors/{a['id']}", headers=ivy, json={"check_min": "50000", "check_max": "100000",
                                                                      "assignee": "me"})
    await api.patch(f"/api/v1/investors/{b['id']}", headers=ivy, json={"check_min": "200000"})
    with Session(engine) as session:  # A was written to ten days ago, B yesterday, C never
        for investor_id, days in ((a["id"], 10), (b["id"], 1)):
            row = session.get(Investor, investor_id)
            row.last_contacted_at = datetime.now(UTC) - timedelta(days=days)
            session.add(row)
        session.commit()
    # A's letter (90 days) ends within 90 days, not within 30; B's self-certification in a year
    for who, method in ((a, "third_party_letter"), (b, "self_certification")):
        recorded = await api.post(f"/api/v1/investors/{who['id']}/accreditations", headers=ivy, json={
            "method": method, "verifier": "J. Doe, CPA", "evidence": "on file"})
        assert recorded.status_code == 201, recorded.text

    async def names(headers=admin, **params) -> list[str]:
        response = await api.get("/api/v1/investors", headers=headers, params=params)
        assert response.status_code == 200, response.text
        return [i["name"] for i in response.json()["items"]]

    assert await names() == ["C", "B", "A"]
    assert await names(market="tx") == ["A"]
    assert await names(market="78731") == ["B"]
    assert await names(accredited="true") == ["B", "A"]  # B self-certified
    assert await names(accredited="false") == ["C"]
    assert await names(accreditation_ends_within=90) == ["A"]
    assert await names(accreditation_ends_within=30) == []
    assert await names(accreditation_ends_within=366) == ["B", "A"]
    assert await names(check="75000") == ["C", "A"]  # C has no limits; B starts at 200k
    assert await names(check="500000") == ["C", "B"]
    before = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    assert await names(contacted_before=before) == ["A"]
    assert await names(contacted_after=before) == ["B"]
    assert await names(ivy, owner="me") == ["A"]
    assert await names(owner="none") == ["C", "B"]
    for params in ({"market": "Texas"}, {"check": "-1"}, {"contacted_before": "2026-01-01T00:00:00"},
                   {"status": "sleeping"}, {"accreditation_ends_within": "0"}):
        assert (await api.get("/api/v1/investors", headers=admin, params=params)).status_code == 422, params


async def test_accreditation_records_their_windows_and_506c_eligibility(api, make_key, engine, temporal_client):
    t = await _ir_team(api, make_key, engine)
    ivy = t["ivy"]["headers"]
    ada = await _investor(api, ivy)
    url = f"/api/v1/investors/{ada['id']}"

    async def eligible(rule: str) -> tuple[bool, str | None]:
        body = (await api.get(f"{url}/eligibility", headers=ivy, params={"rule": rule})).json()
        return body["eligible"], body["reason"]

    assert await eligible("506c") == (False, "a Rule 506(c) offering needs Ada Capital's accreditation verified: "
                                             "none is on record")
    assert (await eligible("506b"))[0] is False
    self_cert = await api.post(f"{url}/accreditations", headers=ivy, json={"method": "self_certification"})
    assert self_cert.status_code == 201, self_cert.text
    assert await eligible("506b") == (True, None)
    ok, reason = await eligible("506c")
    assert not ok and "only self-certified" in reason

    refused = [await api.post(f"{url}/accreditations", headers=ivy, json=body) for body in (
        {"method": "third_party_letter", "evidence": "letter"},  # who wrote it?
        {"method": "income"},  # no evidence
        {"method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "x",
         "verified_at": (datetime.now(UTC) - timedelta(days=91)).isoformat()},  # lapsed already
        {"method": "income", "evidence": "W-2s", "verified_at": (datetime.now(UTC) + timedelta(days=2)).isoformat()},
        {"method": "astrology"}, {"method": "income", "evidence_document_id": "dc_nope"})]
    assert [r.status_code for r in refused] == [422] * 6, [r.text for r in refused]
    assert [r.json()["errors"][0]["field"] for r in refused[:4]] == ["verifier", "evidence", "verified_at",
                                                                     "verified_at"]

    verified = datetime.now(UTC) - timedelta(days=89, hours=23)
    letter = await api.post(f"{url}/accreditations", headers=ivy, json={
        "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "CPA letter dated today",
        "verified_at": verified.isoformat()})
    assert letter.status_code == 201, letter.text
    row = letter.json()
    assert datetime.fromisoformat(row["expires_at"]) - verified == timedelta(days=90)
    assert row["verified_by"] == f"user:{t['ivy']['id']}" and row["workflow_id"]
    assert await eligible("506c") == (True, None)
    listed = (await api.get(f"{url}/accreditations", headers=ivy)).json()
    assert [(r["method"], r["status"]) for r in listed] == [("third_party_letter", "valid"),
                                                            ("self_certification", "superseded")]
    # The relay started its workflow; in an hour it expires the letter (its 90 days are up).
    await eventually(lambda: _described(temporal_client, row["workflow_id"]), timeout=30)
    from services.accreditation import expire

    with Session(engine) as session:
        assert expire(session, row["id"]).startswith("not yet")
        assert expire(session, row["id"], at=datetime.now(UTC) + timedelta(hours=2)) == "expired"
    ok, reason = await eligible("506c")
    assert not ok and "expired on" in reason
    assert (await api.get(url, headers=ivy)).json()["accredited"] is False


async def _described(client, workflow_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id).describe()
        return True
    except Exception:  # noqa: BLE001 - not started yet
        return False


@pytest_asyncio.fixture  # one per test: the server's clock starts at the wall clock, as the records' windows do
async def skipping(engine, settings):
    env = await time_skipping_environment()
    queue = f"accr-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(env.client, engine, settings.model_copy(update={"temporal_task_queue": queue}),
                                executor):
            yield env, queue
    await env.shutdown()


def _letter(engine, *, owner: bool = True) -> tuple[Accreditation, str]:
    from services.acting import Caller
    from services.accreditation import record
    from services.tenants import create_tenant
    from models.accreditation import AccreditationMethod
    from models.tenant import User

    tenant = f"a{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        create_tenant(session, tenant, None, "test")
        session.commit()
        user = User(tenant_id=tenant, email=f"ivy@{tenant}.example.com", name="Ivy", team="investor_relations")
        session.add(user)
        session.flush()
        investor = Investor(tenant_id=tenant, name="Bea Fund", email=f"bea@{tenant}.example.com",
                            assigned_to=user.id if owner else None)
        session.add(investor)
        session.commit()
        row = record(session, Caller(tenant_id=tenant, actor="user:test"), investor, method=AccreditationMethod.third_party_letter,
                     valid_days={"third_party_letter": 90}, reminder_days=[30, 7], verifier="J. Doe, CPA",
                     evidence="letter")
        return row, user.id


def _events(engine, investor_id: str) -> list[tuple[str, dict]]:
    with Session(engine) as session:
        return [(e.name, e.data) for e in session.exec(select(Event).where(
            Event.subject_id == investor_id, Event.name.startswith("accreditation.")).order_by(Event.seq))]


async def test_the_workflow_reminds_before_the_end_and_expires_the_letter(skipping, engine):
    from models.accreditation import AccreditationMethod

    env, queue = skipping
    row, owner = _letter(engine)
    assert row.method == AccreditationMethod.third_party_letter
    handle = await env.client.start_workflow(AccreditationWorkflow.run, AccreditationInput(
        tenant_id=row.tenant_id, investor_id=row.investor_id, accreditation_id=row.id, expires_at=row.expires_at),
        id=row.workflow_id, task_queue=queue)
    await env.sleep(timedelta(days=59))
    assert [n for n, _ in _events(engine, row.investor_id)] == ["accreditation.recorded"]  # 31 days left
    await env.sleep(timedelta(days=2))
    assert [(n, d.get("days_left")) for n, d in _events(engine, row.investor_id)] == [
        ("accreditation.recorded", None), ("accreditation.expiring", 30)]
    with Session(engine) as session:
        told = [n.title for n in session.exec(select(Notification).where(Notification.user_id == owner))]
    assert told == ["Bea Fund's accreditation expires in 30 days"]
    await env.sleep(timedelta(days=30))  # past the end
    result = await handle.result()
    assert result.outcome == "expired"
    assert [(n, d.get("days_left")) for n, d in _events(engine, row.investor_id)][1:] == [
        ("accreditation.expiring", 30), ("accreditation.expiring", 7), ("accreditation.expired", None)]
    with Session(engine) as session:
        assert session.get(Accreditation, row.id).status == "expired"
        assert session.get(Investor, row.investor_id).accredited is False


async def test_a_superseded_record_ends_its_workflow_without_a_word(skipping, engine):
    env, queue = skipping
    row, _ = _letter(engine, owner=False)
    handle = await env.client.start_workflow(AccreditationWorkflow.run, AccreditationInput(
        tenant_id=row.tenant_id, investor_id=row.investor_id, accreditation_id=row.id, expires_at=row.expires_at),
        id=row.workflow_id, task_queue=queue)
    with Session(engine) as session:
        stored = session.get(Accreditation, row.id)
        stored.status = "superseded"
        session.add(stored)
        session.commit()
    await env.sleep(timedelta(days=61))
    result = await handle.result()
    assert result.outcome.startswith("not reminded")
    assert [n for n, _ in _events(engine, row.investor_id)] == ["accreditation.recorded"]
