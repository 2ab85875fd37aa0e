"""Tasks over HTTP: a person's list (assignee=me, status, due_before, lead_id; keyset pages), complete, snooze and
reassign, each audited — staff on their own and unassigned tasks only (403 on a colleague's), managers and admins
on anyone's. A task landing on someone writes their in-app notification and the event of its email in the same
transaction; the relay has the email sent through the tenant's provider (the outbox here). And a definition whose
create_task takes turns in a team and whose notify tells the team's managers, and one whose tasks go to named
users, run end to end."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from models.audit import AuditLog
from models.event import STAFF_MESSAGE_EVENT, Event
from models.message import Message
from models.notification import Notification
from models.task import Task
from models.tenant import Role
from tests.conftest import delivered, eventually
from tests.integration.test_users import make_user, user_key


async def _team(api, make_key, engine) -> dict:
    tenant = f"k{uuid.uuid4().hex[:8]}"
    admin = make_key(Role.admin, tenant=tenant)
    people = {}
    for name, role in (("ana", "staff"), ("ben", "staff"), ("mia", "manager")):
        user = await make_user(api, admin, name=name.title(), email=f"{name}@{tenant}.example.com", role=role,
                               team="acquisitions")
        people[name] = {**user, "headers": user_key(engine, tenant, user["id"], Role(role))}
    return {"tenant": tenant, "admin": admin, **people}


async def _task(api, headers, **body) -> dict:
    response = await api.post("/api/v1/tasks", headers=headers, json={"title": "Call back", **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_a_reps_list_and_what_staff_managers_and_admins_may_do_with_tasks(api, make_key, engine):
    t = await _team(api, make_key, engine)
    ana, ben, mia = t["ana"], t["ben"], t["mia"]
    now = datetime.now(UTC)
    mine = [await _task(api, ana["headers"], title=f"Call {i}", due_at=(now + timedelta(hours=i)).isoformat())
            for i in range(5)]
    assert {m["assignee"] for m in mine} == {ana["id"]}  # `me` by default
    bens = await _task(api, mia["headers"], title="Ben's", assignee=ben["email"])
    loose = await _task(api, t["admin"], title="Nobody's")  # a tenant-level key: nobody's by default
    assert bens["assignee"] == ben["id"] and loose["assignee"] is None

    # The list: soonest due first, keyset pages, filters.
    page1 = (await api.get("/api/v1/tasks?assignee=me&limit=2", headers=ana["headers"])).json()
    page2 = (await api.get(f"/api/v1/tasks?assignee=me&limit=2&cursor={page1['next_cursor']}",
                           headers=ana["headers"])).json()
    page3 = (await api.get(f"/api/v1/tasks?assignee=me&limit=2&cursor={page2['next_cursor']}",
                           headers=ana["headers"])).json()
    assert [x["title"] for x in page1["items"] + page2["items"] + page3["items"]] == [f"Call {i}" for i in range(5)]
    assert page3["next_cursor"] is None
    due_soon = (await api.get("/api/v1/tasks", headers=ana["headers"], params={
        "assignee": "me", "due_before": (now + timedelta(hours=1, minutes=30)).isoformat()})).json()
    assert [x["title"] for x in due_soon["items"]] == ["Call 0", "Call 1"]
    unassigned = (await api.get("/api/v1/tasks?assignee=none", headers=ana["headers"])).json()
    assert [x["id"] for x in unassigned["items"]] == [loose["id"]]
    assert (await api.get("/api/v1/tasks?assignee=me", headers=t["admin"])).status_code == 422  # no person
    assert (await api.get("/api/v1/tasks?cursor=garbage", headers=ana["headers"])).status_code == 422

    # Staff on a colleague's task: 403, and nothing changed.
    for action, body in (("complete", None), ("snooze", {"until": (now + timedelta(days=1)).isoformat()}),
                         ("reassign", {"assignee": "me"})):
        refused = await api.post(f"/api/v1/tasks/{bens['id']}/{action}", headers=ana["headers"], json=body)
        assert refused.status_code == 403, (action, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
    assert (await api.get(f"/api/v1/tasks/{bens['id']}", headers=ana["headers"])).json()["status"] == "open"

    # Their own, and an unassigned one they take.
    done = await api.post(f"/api/v1/tasks/{mine[0]['id']}/complete", headers=ana["headers"])
    assert done.status_code == 200 and done.json()["status"] == "done"
    assert done.json()["completed_by"] == f"user:{ana['id']}"
    again = await api.post(f"/api/v1/tasks/{mine[0]['id']}/complete", headers=ana["headers"])
    assert again.status_code == 200 and again.json()["completed_at"] == done.json()["completed_at"]
    taken = await api.post(f"/api/v1/tasks/{loose['id']}/reassign", headers=ana["headers"], json={"assignee": "me"})
    assert taken.status_code == 200 and taken.json()["assignee"] == ana["id"]

    until = now + timedelta(days=2)
    snoozed = await api.post(f"/api/v1/tasks/{mine[1]['id']}/snooze", headers=ana["headers"],
                             json={"until": until.isoformat()})
    assert snoozed.status_code == 200 and snoozed.json()["status"] == "snoozed"
    assert datetime.fromisoformat(snoozed.json()["due_at"]) == until
    open_ids = [x["id"] for x in (await api.get("/api/v1/tasks?assignee=me", headers=ana["headers"])).json()["items"]]
    snoozed_ids = [x["id"] for x in (await api.get("/api/v1/tasks?assignee=me&status=snoozed",
                                                   headers=ana["headers"])).json()["items"]]
    done_ids = [x["id"] for x in (await api.get("/api/v1/tasks?assignee=me&status=done",
                                                headers=ana["headers"])).json()["items"]]
    assert mine[1]["id"] not in open_ids and snoozed_ids == [mine[1]["id"]] and done_ids == [mine[0]["id"]]
    past = await api.post(f"/api/v1/tasks/{mine[2]['id']}/snooze", headers=ana["headers"],
                          json={"until": (now - timedelta(hours=1)).isoformat()})
    assert past.status_code == 422 and past.json()["errors"][0]["field"] == "until"
    assert (await api.post(f"/api/v1/tasks/{mine[0]['id']}/snooze", headers=ana["headers"],
                           json={"until": until.isoformat()})).status_code == 409  # done already

    # A manager (and an admin) act on anyone's.
    moved = await api.post(f"/api/v1/tasks/{bens['id']}/reassign", headers=mia["headers"],
                           json={"assignee": ana["id"]})
    assert moved.status_code == 200 and moved.json()["assignee"] == ana["id"]
    assert (await api.post(f"/api/v1/tasks/{mine[3]['id']}/complete", headers=mia["headers"])).status_code == 200
    assert (await api.post(f"/api/v1/tasks/{mine[4]['id']}/complete", headers=t["admin"])).status_code == 200
    # Nobody assigns to a deactivated user, or to someone of another tenant.
    await api.patch(f"/api/v1/users/{ben['id']}", headers=t["admin"], json={"active": False})
    gone = await api.post(f"/api/v1/tasks/{bens['id']}/reassign", headers=mia["headers"], json={"assignee": ben["id"]})
    assert gone.status_code == 422 and gone.json()["errors"][0]["field"] == "assignee"
    other = await make_user(api, make_key(Role.admin))
    stranger = await api.post(f"/api/v1/tasks/{bens['id']}/reassign", headers=mia["headers"],
                              json={"assignee": other["id"]})
    assert stranger.status_code == 422
    # Another tenant's task is a 404; a readonly key reads but does not act.
    assert (await api.get(f"/api/v1/tasks/{bens['id']}", headers=make_key(Role.admin))).status_code == 404
    readonly = make_key(Role.readonly, tenant=t["tenant"])
    assert (await api.get("/api/v1/tasks?assignee=none", headers=readonly)).status_code == 200
    assert (await api.post(f"/api/v1/tasks/{bens['id']}/complete", headers=readonly)).status_code == 403

    with Session(engine) as session:
        actions = session.exec(select(AuditLog.action, AuditLog.actor).where(AuditLog.entity_id == bens["id"])
                               .order_by(AuditLog.id)).all()
    assert [tuple(a) for a in actions] == [("task.create", f"user:{mia['id']}"), ("task.reassign", f"user:{mia['id']}")]
    with Session(engine) as session:
        assert session.exec(select(AuditLog.action).where(AuditLog.entity_id == mine[1]["id"])
                            .order_by(AuditLog.id)).all() == ["task.create", "task.snooze"]


async def test_an_assigned_task_notifies_its_assignee_in_the_app_and_by_email(api, make_key, engine, worker):
    t = await _team(api, make_key, engine)
    ana, ben, mia = t["ana"], t["ben"], t["mia"]
    lead = (await api.post("/api/v1/leads", headers=ana["headers"], json={
        "first_name": "Nora", "last_name": "Diaz", "email": f"nora.{uuid.uuid4().hex[:6]}@example.com",
        "source": "referral"})).json()
    task = await _task(api, mia["headers"], title="Walk the property", lead_id=lead["id"], assignee=ben["id"])

    # In the same transaction as the task: Ben's notification and the event of its email.
    with Session(engine) as session:
        [note] = session.exec(select(Notification).where(Notification.task_id == task["id"])).all()
        event = session.exec(select(Event).where(Event.event_id == f"notify:{note.id}")).one()
    assert note.user_id == ben["id"] and note.kind == "task.assigned" and note.email
    assert event.name == STAFF_MESSAGE_EVENT and (event.subject_type, event.subject_id) == ("user", ben["id"])

    unread = (await api.get("/api/v1/notifications?unread=true", headers=ben["headers"])).json()
    assert [(n["kind"], n["task_id"], n["lead_id"]) for n in unread["items"]] == [
        ("task.assigned", task["id"], lead["id"])]
    assert "Walk the property" in unread["items"][0]["title"] and "Nora Diaz" in unread["items"][0]["body"]
    assert (await api.get("/api/v1/notifications", headers=ana["headers"])).json()["items"] == []  # Ben's only
    assert (await api.get("/api/v1/notifications", headers=t["admin"])).status_code == 422  # a key of nobody

    # The email: the relay starts its MessageWorkflow, which sends it through the outbox.
    await delivered(engine, f"notify:{note.id}")

    def sent():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.user_id == ben["id"],
                                                      Message.status == "sent")).first()

    email = await eventually(sent, timeout=30)
    assert email.channel == "email" and email.to_address == ben["email"] and email.provider == "outbox"
    assert email.template == "staff_notification" and email.subject == note.title
    assert "Hi Ben" in email.body and "Nora Diaz" in email.body and email.lead_id is None
    listed = (await api.get(f"/api/v1/messages?user_id={ben['id']}", headers=t["admin"])).json()
    assert [m["id"] for m in listed["items"]] == [email.id] and listed["items"][0]["user_id"] == ben["id"]

    # Read: one, then all; reading again changes nothing.
    read = await api.post(f"/api/v1/notifications/{note.id}/read", headers=ben["headers"])
    assert read.status_code == 200 and read.json()["read_at"] is not None
    assert (await api.post(f"/api/v1/notifications/{note.id}/read", headers=ana["headers"])).status_code == 404
    assert (await api.get("/api/v1/notifications?unread=true", headers=ben["headers"])).json()["items"] == []
    await api.post(f"/api/v1/tasks/{task['id']}/reassign", headers=mia["headers"], json={"assignee": ana["id"]})
    assert (await api.post("/api/v1/notifications/read", headers=ana["headers"], json={})).json() == {"marked": 1}
    assert (await api.post("/api/v1/notifications/read", headers=ana["headers"], json={})).json() == {"marked": 0}

    # Taking a task yourself tells nobody; nor does a task you create for yourself.
    mine = await _task(api, ana["headers"], title="Note to self")
    with Session(engine) as session:
        assert session.exec(select(Notification).where(Notification.task_id == mine["id"])).all() == []


ROUTE = """schema: dealflow/v1
key: {key}
trigger: {{event: lead.created, when: 'lead.source == "referral"'}}
steps:
  - {{id: call, action: create_task, with: {{title: Call the referral, assignee: round_robin, team: acquisitions,
      due_in: 1h}}, save_as: task}}
  - {{id: heads_up, action: notify, with: {{to: managers, title: "Referral in", message: "A referral came in."}},
      save_as: told}}
  - {{id: owner_call, action: create_task, with: {{title: Owner follow-up, assignee: owner}}}}
"""


async def test_a_definitions_round_robin_task_and_notify_to_managers_run_end_to_end(api, make_key, engine, worker,
                                                                                     temporal_client):
    from workflows.definition import DefinitionWorkflow

    t = await _team(api, make_key, engine)
    key = f"referral-route-{uuid.uuid4().hex[:4]}"
    ops = make_key(Role.ops, tenant=t["tenant"])
    source = ROUTE.format(key=key)
    dry = await api.post("/api/v1/definitions/test", headers=ops, json={"source": source, "events": [], "start_on": "tue"})
    assert dry.status_code == 200, dry.text
    lines = "\n".join(dry.json()["lines"])
    assert dry.json()["status"] == "completed", lines
    assert "create_task 'Call the referral' for round_robin" in lines and "notify managers: 1 told" in lines, lines
    saved = await api.post("/api/v1/definitions", content=source.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post(f"/api/v1/definitions/{key}/versions/1/publish", headers=ops)).status_code == 200

    leads = []
    for i in range(2):  # two referrals: the round robin gives them to the two reps in turn
        lead = (await api.post("/api/v1/leads", headers=t["admin"], json={
            "first_name": f"Ref{i}", "email": f"ref{i}.{uuid.uuid4().hex[:6]}@example.com",
            "source": "referral"})).json()
        leads.append(lead)
        await delivered(engine, f"{lead['id']}:created")

    def finished():
        with Session(engine) as session:
            tasks = session.exec(select(Task).where(col(Task.lead_id).in_([x["id"] for x in leads]),
                                                    col(Task.title).in_(["Call the referral", "Owner follow-up"]))
                                 ).all()
            notes = session.exec(select(Notification).where(Notification.tenant_id == t["tenant"])).all()
            return (tasks, notes) if len(tasks) == 4 and len(notes) >= 4 else None

    tasks, notes = await eventually(finished, timeout=60)
    calls = {x.lead_id: x for x in tasks if x.title == "Call the referral"}
    assert {calls[lead["id"]].assignee for lead in leads} == {t["ana"]["id"], t["ben"]["id"]}  # one each, in turn
    assert {x.created_by for x in tasks} == {f"definition:{key}"}
    assert all(x.due_at > x.created_at + timedelta(minutes=59) for x in calls.values())
    # `owner`: the leads have no owner yet, so the owner follow-ups are nobody's
    assert {x.assignee for x in tasks if x.title == "Owner follow-up"} == {None}
    by_kind = {}
    for note in notes:
        by_kind.setdefault(note.kind, []).append(note.user_id)
    assert sorted(by_kind["task.assigned"]) == sorted([t["ana"]["id"], t["ben"]["id"]])
    assert by_kind["definition.notify"] == [t["mia"]["id"]] * 2  # the team's manager, once per lead

    run_id = next(f"def-{t['tenant']}-{key}-{lead['id']}" for lead in leads[:1])
    state = await temporal_client.get_workflow_handle_for(DefinitionWorkflow.run, run_id).query(DefinitionWorkflow.state)
    assert any("notify managers: 1 told" in (p.get("detail") or "") for p in state.path), state.path

    def emails():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.user_id == t["mia"]["id"],
                                                      Message.status == "sent")).all()

    assert len(await eventually(lambda: len(emails()) == 2 and emails(), timeout=30)) == 2


NAMED = """schema: dealflow/v1
key: {key}
trigger: {{event: lead.created, when: 'lead.source == "direct_mail"'}}
steps:
  - {{id: by_email, action: create_task, with: {{title: Pull the title report, assignee: "{email}", due_in: 2h}}}}
  - {{id: by_id, action: create_task, with: {{title: Review the mailer response, assignee: {user_id}}}}}
"""


async def test_a_definitions_create_task_for_a_named_user_runs_end_to_end(api, make_key, engine, worker):
    """`assignee: <user>` (an email, any case, or a user id): the task is that person's — not the lead's owner's —
    they are notified, and it is in their own list."""
    t = await _team(api, make_key, engine)
    key = f"named-task-{uuid.uuid4().hex[:4]}"
    ops = make_key(Role.ops, tenant=t["tenant"])
    await _publish_definition(api, ops, NAMED.format(key=key, email=t["ben"]["email"].upper(),
                                                     user_id=t["mia"]["id"]), key)
    lead = (await api.post("/api/v1/leads", headers=t["admin"], json={
        "first_name": "Mailer", "email": f"mailer.{uuid.uuid4().hex[:6]}@example.com",
        "source": "direct_mail"})).json()
    assert (await api.post(f"/api/v1/leads/{lead['id']}/assign", headers=t["admin"],
                           json={"assignee": t["ana"]["id"]})).status_code == 200  # the owner is Ana
    await delivered(engine, f"{lead['id']}:created")

    def tasks():
        with Session(engine) as session:
            found = session.exec(select(Task).where(Task.lead_id == lead["id"])).all()
            return {x.title: x for x in found} if len(found) == 2 else None

    made = await eventually(tasks, timeout=60)
    title, review = made["Pull the title report"], made["Review the mailer response"]
    assert (title.assignee, review.assignee) == (t["ben"]["id"], t["mia"]["id"])
    assert title.created_by == f"definition:{key}" and title.due_at > title.created_at + timedelta(minutes=119)
    with Session(engine) as session:
        notes = session.exec(select(Notification).where(col(Notification.task_id).in_([title.id, review.id]))).all()
    assert sorted((n.user_id, n.kind) for n in notes) == sorted([(t["ben"]["id"], "task.assigned"),
                                                                (t["mia"]["id"], "task.assigned")])
    bens = (await api.get("/api/v1/tasks?assignee=me", headers=t["ben"]["headers"])).json()["items"]
    assert [x["title"] for x in bens] == ["Pull the title report"]
    anas = (await api.get("/api/v1/tasks?assignee=me", headers=t["ana"]["headers"])).json()["items"]
    assert anas == []


async def _publish_definition(api, ops, source: str, key: str) -> None:
    saved = await api.post("/api/v1/definitions", content=source.encode(),
                           headers={**ops, "Content-Type": "application/yaml"})
    assert saved.status_code == 201, saved.text
    assert (await api.post(f"/api/v1/definitions/{key}/versions/1/publish", headers=ops)).status_code == 200


def test_the_create_task_activity_is_once_per_key_goes_to_the_owner_and_refuses_a_name_it_cannot_use(engine):
    """The activity behind LeadWorkflow's call-now task and definitions' create_task: a retried attempt finds the
    first one's task; no assignee means the lead's owner; an unknown or deactivated user, or a team with nobody in
    it, is a final failure with the reason (the step fails, nothing is retried forever)."""
    import pytest
    from temporalio.exceptions import ApplicationError
    from temporalio.testing import ActivityEnvironment

    from activities.staff import StaffActivities
    from models.lead import Lead
    from models.payloads import TaskInput
    from models.tenant import User
    from tests.conftest import insert_lead

    tenant, lead_id = insert_lead(engine)
    with Session(engine) as session:
        owner = User(tenant_id=tenant, email=f"o@{tenant}.example.com", name="Olga", team="acquisitions")
        gone = User(tenant_id=tenant, email=f"g@{tenant}.example.com", name="Gus", active=False)
        session.add_all([owner, gone])
        session.flush()
        session.get(Lead, lead_id).assigned_to = owner.id
        session.commit()
        owner_id = owner.id
    activities, env = StaffActivities(engine), ActivityEnvironment()
    call_now = TaskInput(tenant_id=tenant, lead_id=lead_id, title="Call now", due_in_hours=1,
                         idempotency_key=f"{lead_id}:call-now")
    first, again = env.run(activities.create_task, call_now), env.run(activities.create_task, call_now)
    with Session(engine) as session:
        task = session.get(Task, first)
        notes = session.exec(select(Notification).where(Notification.task_id == first)).all()
    assert first == again and task.assignee == owner_id and len(notes) == 1
    for assignee, team, reason in ((f"g@{tenant}.example.com", None, "deactivated"),
                                   ("nobody@example.com", None, "no user"),
                                   ("round_robin", "dispositions", "no active staff")):
        with pytest.raises(ApplicationError, match=reason) as failure:
            env.run(activities.create_task, TaskInput(tenant_id=tenant, lead_id=lead_id, title="X", assignee=assignee,
                                                      team=team, idempotency_key=f"{lead_id}:{assignee}"))
        assert failure.value.non_retryable
