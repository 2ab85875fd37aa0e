"""Round robin is fair under concurrency, over real HTTP: 20 leads assigned in turn within a team by 20 requests
released together (the app under uvicorn, each request on its own connection, against the session's database —
Postgres in CI) land 5 each on the team's 4 active staff. Counted afterwards: the leads' owners, their
notifications and audit rows.

The same race with the cursor read and written back (instead of one UPDATE ... RETURNING) piles the leads on
whoever the readers all saw next: `test_a_cursor_read_then_written_back_is_unfair` keeps that failure visible."""

from __future__ import annotations

import time
import uuid
from collections import Counter

import pytest
from sqlmodel import Session, col, select

import services.assignment
from models.audit import AuditLog
from models.base import utcnow
from models.lead import Lead
from models.notification import Notification
from models.tenant import AssignmentCursor, Role, User
from tests.conftest import insert_lead
from tests.integration.stack import released_together, uvicorn_api

N = 20


def _team(engine, tenant: str) -> list[str]:
    """4 active staff in acquisitions, and people who must never get a turn: a deactivated rep, an ops user in the
    team, a rep of another team."""
    ids = []
    with Session(engine) as session:
        for i in range(4):
            user = User(tenant_id=tenant, email=f"rep{i}@{tenant}.example.com", name=f"Rep {i}", role="staff",
                        team="acquisitions")
            session.add(user)
            ids.append(user.id)
            session.flush()  # created_at in order: the rotation's order
        session.add(User(tenant_id=tenant, email=f"gone@{tenant}.example.com", name="Gone", role="staff",
                         team="acquisitions", active=False))
        session.add(User(tenant_id=tenant, email=f"ops@{tenant}.example.com", name="Ops", role="ops",
                         team="acquisitions"))
        session.add(User(tenant_id=tenant, email=f"dispo@{tenant}.example.com", name="Dispo", role="staff",
                         team="dispositions"))
        session.commit()
    return ids


def _race(settings, engine, make_key) -> tuple[str, list[str], list[str]]:
    tenant = f"rr{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.admin, tenant=tenant)
    members = _team(engine, tenant)
    leads = [insert_lead(engine, tenant)[1] for _ in range(N)]
    body = {"assignee": "round_robin", "team": "acquisitions"}
    with uvicorn_api(settings) as base_url:
        responses = released_together(base_url, [
            (lambda c, lead=lead: c.post(f"/api/v1/leads/{lead}/assign", json=body, headers=headers))
            for lead in leads])
    assert [r.status_code for r in responses] == [200] * N, [r.text for r in responses if r.status_code != 200][:3]
    return tenant, members, leads


async def test_concurrent_round_robin_assignments_split_evenly_across_the_teams_active_staff(
        settings, worker, engine, make_key):
    tenant, members, leads = _race(settings, engine, make_key)
    with Session(engine) as session:
        owners = session.exec(select(Lead.assigned_to).where(col(Lead.id).in_(leads))).all()
        notified = session.exec(select(Notification.user_id).where(Notification.tenant_id == tenant,
                                                                   Notification.kind == "lead.assigned")).all()
        audited = session.exec(select(AuditLog).where(AuditLog.tenant_id == tenant,
                                                      AuditLog.action == "lead.assign")).all()
        cursor = session.get(AssignmentCursor, (tenant, "acquisitions"))
    assert Counter(owners) == {member: N // len(members) for member in members}, Counter(owners)
    assert Counter(notified) == Counter(owners)  # each owner told once per lead, in the same transaction
    assert len(audited) == N and {a.after["round_robin"] for a in audited} == {"acquisitions"}
    assert cursor.position == N


def test_a_cursor_read_then_written_back_is_unfair(settings, worker, engine, make_key, monkeypatch):
    """What the one-statement cursor prevents: readers that all see the same position pick the same person."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: a read-then-write cursor is serialised there")

    def read_then_write(session, tenant_id, team):
        row = session.get(AssignmentCursor, (tenant_id, team))
        position = (row.position if row else 0) + 1
        time.sleep(0.05)  # the gap between the read and the write that the real race has, widened
        row = row or AssignmentCursor(tenant_id=tenant_id, team=team)
        row.position, row.updated_at = position, utcnow()
        session.add(row)
        session.flush()
        return position

    original_team = _team

    def team_with_cursor(engine, tenant):  # the row exists already: the racy version only updates it
        ids = original_team(engine, tenant)
        with Session(engine) as session:
            session.add(AssignmentCursor(tenant_id=tenant, team="acquisitions", position=0))
            session.commit()
        return ids

    monkeypatch.setattr(services.assignment, "advance_cursor", read_then_write)
    monkeypatch.setitem(globals(), "_team", team_with_cursor)
    tenant, members, leads = _race(settings, engine, make_key)
    with Session(engine) as session:
        owners = Counter(session.exec(select(Lead.assigned_to).where(col(Lead.id).in_(leads))).all())
    assert max(owners.values()) > N // len(members), owners  # some rep got far more than their share


def test_a_deal_takes_its_turn_in_its_pipelines_team_and_staff_keep_to_their_own(engine):
    """assign_deal, for the deal routes: a disposition deal goes to dispositions by default; staff cannot take a
    colleague's deal, a manager can move it."""
    from models.opportunity import Opportunity
    from services.acting import Caller, Forbidden
    from services.assignment import assign_deal

    tenant, _ = insert_lead(engine)
    with Session(engine, expire_on_commit=False) as session:
        dispo = User(tenant_id=tenant, email=f"d@{tenant}.example.com", name="Dee", team="dispositions")
        acq = User(tenant_id=tenant, email=f"a@{tenant}.example.com", name="Al", team="acquisitions")
        boss = User(tenant_id=tenant, email=f"b@{tenant}.example.com", name="Bo", role="manager", team="dispositions")
        deal = Opportunity(tenant_id=tenant, title="12 Elm St", pipeline="disposition", stage="marketing")
        session.add_all([dispo, acq, boss, deal])
        session.commit()
        assign_deal(session, Caller(tenant_id=tenant, actor="test"), deal, "round_robin")
        assert deal.assigned_to == dispo.id  # dispositions' first in turn (Dee joined before Bo)
        with pytest.raises(Forbidden):
            assign_deal(session, Caller(tenant_id=tenant, actor=f"user:{acq.id}", role="staff", user_id=acq.id),
                        deal, acq.id)
        assign_deal(session, Caller(tenant_id=tenant, actor=f"user:{boss.id}", role="manager", user_id=boss.id),
                    deal, acq.email)
        assert deal.assigned_to == acq.id
        notes = session.exec(select(Notification.user_id).where(Notification.opportunity_id == deal.id)
                             .order_by(Notification.created_at)).all()
        actions = session.exec(select(AuditLog.action).where(AuditLog.entity_id == deal.id)).all()
    assert notes == [dispo.id, acq.id] and actions == ["deal.assign", "deal.assign"]


async def test_a_manager_reassigns_a_colleagues_lead_and_staff_may_not(api, make_key, engine):
    """services.acting.check_owner over HTTP: a staff member may not take or hand on a colleague's lead (403,
    nothing changes); their team's manager may, and the audit and the new owner's notification name them."""
    from tests.integration.test_users import staff_team

    p = await staff_team(api, make_key, engine, "acquisitions", (("ana", "staff"), ("ben", "staff"),
                                                                 ("mia", "manager")))
    ana, ben, mia = (p[name]["headers"] for name in ("ana", "ben", "mia"))
    _, lead_id = insert_lead(engine, p["tenant"])
    url = f"/api/v1/leads/{lead_id}/assign"
    assert (await api.post(url, headers=ana, json={"assignee": "me"})).json()["assigned_to"] == p["ana"]["id"]

    for body in ({"assignee": "me"}, {"assignee": p["ben"]["email"]}, {"assignee": None}):
        refused = await api.post(url, headers=ben, json=body)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert "assigned to someone else" in refused.json()["detail"]
    assert (await api.get(f"/api/v1/leads/{lead_id}", headers=ben)).json()["assigned_to"] == p["ana"]["id"]

    handed = await api.post(url, headers=mia, json={"assignee": p["ben"]["email"]})
    assert handed.status_code == 200, handed.text
    assert handed.json()["assigned_to"] == p["ben"]["id"]
    assert (await api.post(url, headers=ana, json={"assignee": "me"})).status_code == 403  # Ben's now
    with Session(engine) as session:
        audit = [(a.actor, a.before, a.after) for a in session.exec(
            select(AuditLog).where(AuditLog.entity_id == lead_id, AuditLog.action == "lead.assign")
            .order_by(col(AuditLog.id)))]
        told = session.exec(select(Notification).where(Notification.user_id == p["ben"]["id"],
                                                       Notification.lead_id == lead_id)).all()
    assert [(actor, before["assigned_to"], after["assigned_to"]) for actor, before, after in audit] == [
        (f"user:{p['ana']['id']}", None, p["ana"]["id"]), (f"user:{p['mia']['id']}", p["ana"]["id"], p["ben"]["id"])]
    assert len(told) == 1 and told[0].kind == "lead.assigned"
