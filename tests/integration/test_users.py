"""Staff users over HTTP: admins create and change them, everyone reads them; a key owned by a user acts as that
person (the audit row names them, the audit list shows their email), with the key's role but never more than the
user's, and stops working the moment the user is deactivated. The CLI's users and keys --user commands."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlmodel import Session, select

from api.security import create_api_key
from models.audit import AuditLog
from models.tenant import Role, User

ROOT = Path(__file__).resolve().parents[2]
DEALFLOW = [sys.executable, "-c", "import cli; cli.main()"]


def _tenant(make_key) -> tuple[str, dict]:
    tenant = f"u{uuid.uuid4().hex[:8]}"
    return tenant, make_key(Role.admin, tenant=tenant)


def user_key(engine, tenant: str, user_id: str, role: Role) -> dict[str, str]:
    _, key = create_api_key(engine, tenant, role, "test", user_id=user_id)
    return {"Authorization": f"Bearer {key}"}


async def staff_team(api, make_key, engine, team: str, people: tuple[tuple[str, str], ...]) -> dict:
    """A new tenant with an admin key and, per (name, role), a user of `team` with a key of their own:
    {"tenant", "admin", name: {**user, "headers"}}."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    admin = make_key(Role.admin, tenant=tenant)
    found = {"tenant": tenant, "admin": admin}
    for name, role in people:
        user = await make_user(api, admin, name=name.title(), email=f"{name}@{tenant}.example.com", role=role,
                               team=team)
        found[name] = {**user, "headers": user_key(engine, tenant, user["id"], Role(role))}
    return found


async def make_user(api, admin: dict, **fields) -> dict:
    body = {"email": f"rep.{uuid.uuid4().hex[:6]}@example.com", "name": "Sam Rivera", "role": "staff", **fields}
    response = await api.post("/api/v1/users", headers=admin, json=body)
    assert response.status_code == 201, response.text
    return response.json()


async def test_admins_create_list_and_change_users_and_emails_are_unique_in_any_case(api, make_key, engine):
    tenant, admin = _tenant(make_key)
    created = await api.post("/api/v1/users", headers=admin, json={
        "email": "Maria.Lopez@Example.com", "name": "Maria Lopez", "role": "manager", "team": "acquisitions",
        "password": "correct horse battery staple"})
    assert created.status_code == 201, created.text
    maria = created.json()
    assert maria["email"] == "maria.lopez@example.com" and maria["role"] == "manager"
    assert maria["team"] == "acquisitions" and maria["active"] and maria["has_password"]
    assert "password" not in maria and "password_hash" not in maria
    with Session(engine) as session:
        stored = session.get(User, maria["id"])
    assert stored.password_hash.startswith("$argon2id$")

    again = await api.post("/api/v1/users", headers=admin, json={"email": "MARIA.LOPEZ@example.com", "name": "M"})
    assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    assert again.json()["errors"][0]["field"] == "email"
    for bad, field in (({"email": "not-an-email", "name": "X"}, "email"),
                       ({"email": "x@example.com", "name": "X", "role": "owner"}, "role"),
                       ({"email": "x@example.com", "name": "X", "team": "sales"}, "team"),
                       ({"email": "x@example.com", "name": "X", "password": "short"}, "password")):
        refused = await api.post("/api/v1/users", headers=admin, json=bad)
        assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == field, refused.text

    sam = await make_user(api, admin, team="dispositions")
    listed = (await api.get("/api/v1/users", headers=admin)).json()
    assert [u["name"] for u in listed] == ["Maria Lopez", "Sam Rivera"]
    assert [u["id"] for u in (await api.get("/api/v1/users?team=dispositions", headers=admin)).json()] == [sam["id"]]
    assert [u["id"] for u in (await api.get("/api/v1/users?role=manager", headers=admin)).json()] == [maria["id"]]

    changed = await api.patch(f"/api/v1/users/{sam['id']}", headers=admin, json={"role": "manager", "team": None})
    assert changed.status_code == 200 and changed.json()["role"] == "manager" and changed.json()["team"] is None
    off = await api.patch(f"/api/v1/users/{sam['id']}", headers=admin, json={"active": False})
    assert off.status_code == 200 and off.json()["active"] is False
    assert off.json()["still_assigned"] == {"open_tasks": 0, "leads": 0}
    assert [u["id"] for u in (await api.get("/api/v1/users?active=true", headers=admin)).json()] == [maria["id"]]

    other_tenant_admin = make_key(Role.admin)
    assert (await api.get(f"/api/v1/users/{sam['id']}", headers=other_tenant_admin)).status_code == 404
    with Session(engine) as session:
        actions = session.exec(select(AuditLog.action).where(AuditLog.entity_id == sam["id"])
                               .order_by(AuditLog.id)).all()
    assert actions == ["user.create", "user.update", "user.deactivate"]


async def test_only_admins_write_users_and_every_role_reads_them(api, make_key, engine):
    tenant, admin = _tenant(make_key)
    manager = await make_user(api, admin, role="manager")
    for role in (Role.staff, Role.ops, Role.readonly):
        headers = make_key(role, tenant=tenant)
        refused = await api.post("/api/v1/users", headers=headers, json={"email": "z@example.com", "name": "Z"})
        assert refused.status_code == 403 and "needs one of: admin" in refused.json()["detail"]
        assert (await api.patch(f"/api/v1/users/{manager['id']}", headers=headers,
                                json={"name": "Y"})).status_code == 403
        assert (await api.get("/api/v1/users", headers=headers)).status_code == 200
    # a manager's own key is no admin either
    as_manager = user_key(engine, tenant, manager["id"], Role.manager)
    assert (await api.post("/api/v1/users", headers=as_manager, json={"email": "z@example.com",
                                                                       "name": "Z"})).status_code == 403
    me = await api.get("/api/v1/users/me", headers=as_manager)
    assert me.status_code == 200 and me.json()["id"] == manager["id"]
    assert (await api.get("/api/v1/users/me", headers=admin)).status_code == 404  # a tenant-level key


async def test_a_users_key_acts_as_them_in_the_audit_log_and_stops_when_they_are_deactivated(api, make_key, engine):
    tenant, admin = _tenant(make_key)
    sam = await make_user(api, admin, name="Sam Rivera", email="Sam@Example.com")
    headers = user_key(engine, tenant, sam["id"], Role.staff)
    lead = await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Nora", "email": f"nora.{uuid.uuid4().hex[:6]}@example.com", "source": "web_form"})
    assert lead.status_code == 201, lead.text
    patched = await api.patch(f"/api/v1/leads/{lead.json()['id']}", headers=headers, json={"notes": "call at 5"})
    assert patched.status_code == 200
    with Session(engine) as session:
        rows = session.exec(select(AuditLog).where(AuditLog.entity_id == lead.json()["id"])
                            .order_by(AuditLog.id)).all()
    assert [(r.action, r.actor) for r in rows] == [("lead.create", f"user:{sam['id']}"),
                                                   ("lead.update", f"user:{sam['id']}")]

    listed = await api.get(f"/api/v1/audit?entity_id={lead.json()['id']}", headers=admin)
    assert listed.status_code == 200, listed.text
    assert [(r["action"], r["actor_user"]) for r in listed.json()["items"]] == [
        ("lead.update", {"id": sam["id"], "email": "sam@example.com", "name": "Sam Rivera"}),
        ("lead.create", {"id": sam["id"], "email": "sam@example.com", "name": "Sam Rivera"})]
    by_actor = await api.get(f"/api/v1/audit?actor=user:{sam['id']}", headers=admin)
    assert {r["entity_id"] for r in by_actor.json()["items"]} == {lead.json()["id"]}
    assert (await api.get("/api/v1/audit", headers=headers)).status_code == 403  # admins only
    keys = (await api.get("/api/v1/keys", headers=admin)).json()
    assert [k["user_id"] for k in keys if k["name"] == "test"] == [sam["id"]]

    # Deactivated: the same key (verified moments ago, so cached) is refused on the very next request.
    assert (await api.patch(f"/api/v1/users/{sam['id']}", headers=admin, json={"active": False})).status_code == 200
    refused = await api.get("/api/v1/leads", headers=headers)
    assert refused.status_code == 401
    assert (await api.patch(f"/api/v1/users/{sam['id']}", headers=admin, json={"active": True})).status_code == 200
    assert (await api.get("/api/v1/leads", headers=headers)).status_code == 200  # and back


async def test_a_users_key_never_has_more_than_the_users_role(api, make_key, engine):
    import pytest

    tenant, admin = _tenant(make_key)
    sam = await make_user(api, admin, role="manager")
    with pytest.raises(ValueError, match="cannot have role admin"):
        create_api_key(engine, tenant, Role.admin, user_id=sam["id"])
    narrower = user_key(engine, tenant, sam["id"], Role.readonly)  # narrower than the user: allowed, and kept
    refused = await api.post("/api/v1/leads", headers=narrower, json={"first_name": "A", "phone": "5125550101",
                                                                       "source": "web_form"})
    assert refused.status_code == 403
    staff_key = user_key(engine, tenant, sam["id"], Role.staff)
    assert (await api.get("/api/v1/leads", headers=staff_key)).status_code == 200
    # Demoted to readonly after the key was made: the key acts as readonly from the next request on.
    assert (await api.patch(f"/api/v1/users/{sam['id']}", headers=admin, json={"role": "readonly"})).status_code == 200
    demoted = await api.post("/api/v1/leads", headers=staff_key, json={"first_name": "A", "phone": "5125550102",
                                                                        "source": "web_form"})
    assert demoted.status_code == 403 and "role 'readonly'" in demoted.json()["detail"]


async def test_nobody_deactivates_or_demotes_their_own_user(api, make_key, engine):
    tenant, admin = _tenant(make_key)
    boss = await make_user(api, admin, role="admin")
    own = user_key(engine, tenant, boss["id"], Role.admin)
    for change in ({"active": False}, {"role": "staff"}):
        refused = await api.patch(f"/api/v1/users/{boss['id']}", headers=own, json=change)
        assert refused.status_code == 422, refused.text
    renamed = await api.patch(f"/api/v1/users/{boss['id']}", headers=own, json={"name": "The Boss"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "The Boss"


def _env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
    env.update({"DEALFLOW_HOME": str(tmp_path / ".dealflow"), "PYTHONPATH": str(ROOT), "COLUMNS": "200",
                "DEALFLOW_METRICS_ADDRESS": "", "DEALFLOW_TEMPORAL_METRICS_ADDRESS": ""})
    return env


def _run(tmp_path: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*DEALFLOW, *args], cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True,
                          timeout=120, input=stdin)


def test_users_and_keys_for_users_from_the_cli(tmp_path):
    created = _run(tmp_path, "users", "create", "--tenant", "acme", "--email", "Maria@Example.com", "--name",
                   "Maria Lopez", "--role", "manager", "--team", "acquisitions", "--password", "-",
                   stdin="correct horse battery staple\n")
    assert created.returncode == 0, created.stderr
    assert "Created manager us_" in created.stdout and "maria@example.com (acquisitions)" in created.stdout
    twice = _run(tmp_path, "users", "create", "--tenant", "acme", "--email", "MARIA@example.com", "--name", "M")
    assert twice.returncode == 1 and twice.stderr.strip() == (
        "error: this tenant already has a user with the email maria@example.com")
    bad = _run(tmp_path, "users", "create", "--tenant", "acme", "--email", "sam@example.com", "--name", "Sam",
               "--team", "sales")
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "unknown team 'sales'" in bad.stderr

    key = _run(tmp_path, "keys", "create", "--user", "maria@example.com", "--name", "laptop")
    assert key.returncode == 0, key.stderr
    assert "Created manager key ak_" in key.stdout and "maria@example.com (acme)" in key.stdout
    assert Path(key.stdout.split()[-1]).read_text().startswith("dfk_")
    wider = _run(tmp_path, "keys", "create", "--user", "maria@example.com", "--role", "admin")
    assert wider.returncode == 1 and "cannot have role admin" in wider.stderr and wider.stderr.count("\n") == 1
    nobody = _run(tmp_path, "keys", "create", "--user", "nobody@example.com")
    assert nobody.returncode == 1 and nobody.stderr.strip() == "error: no user 'nobody@example.com'"

    listed = _run(tmp_path, "users", "list", "--tenant", "acme")
    assert listed.returncode == 0 and "maria@example.com" in listed.stdout and "manager" in listed.stdout
    off = _run(tmp_path, "users", "deactivate", "maria@example.com")
    assert off.returncode == 0 and "deactivated" in off.stdout, off.stderr
    refused = _run(tmp_path, "keys", "create", "--user", "maria@example.com")
    assert refused.returncode == 1 and "is deactivated" in refused.stderr
    assert "no" in _run(tmp_path, "users", "list", "--tenant", "acme").stdout.split("maria@example.com")[1]
    on = _run(tmp_path, "users", "activate", "maria@example.com", "--tenant", "acme")
    assert on.returncode == 0 and "active" in on.stdout
