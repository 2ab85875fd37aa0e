"""API keys for a tenant's admins: listed without their secret, revoked with an audit row, and a revoked key
refused at once, also when another process revoked it while this one had the key in its cache."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from pathlib import Path

from sqlmodel import Session, select

from models.audit import AuditLog
from models.tenant import Role

ROOT = Path(__file__).resolve().parents[2]


def _tenant_keys(make_key):
    tenant = f"k{uuid.uuid4().hex[:8]}"
    return tenant, make_key(Role.admin, tenant=tenant), make_key(Role.staff, tenant=tenant)


async def test_admins_list_their_tenants_keys_without_the_secret(api, make_key):
    tenant, admin, staff = _tenant_keys(make_key)
    make_key(Role.admin)  # another tenant's
    listed = await api.get("/api/v1/keys", headers=admin)
    assert listed.status_code == 200, listed.text
    rows = listed.json()
    assert len(rows) == 2 and {r["role"] for r in rows} == {"admin", "staff"}
    assert set(rows[0]) == {"id", "prefix", "name", "role", "user_id", "created_at", "last_used_at", "revoked_at"}
    secrets = {h["Authorization"].split()[-1] for h in (admin, staff)}
    assert not any(secret.split("_", 2)[2] in listed.text for secret in secrets)  # never the secret part
    assert {r["prefix"] for r in rows} == {s.split("_")[1] for s in secrets}
    assert next(r for r in rows if r["role"] == "admin")["last_used_at"] is not None  # it just called
    assert (await api.get("/api/v1/keys", headers=staff)).status_code == 403


async def test_a_revoked_key_is_refused_at_once_and_the_revocation_is_audited(api, make_key, engine):
    tenant, admin, staff = _tenant_keys(make_key)
    assert (await api.get("/api/v1/leads", headers=staff)).status_code == 200  # verified and cached
    rows = (await api.get("/api/v1/keys", headers=admin)).json()
    [row] = [r for r in rows if r["role"] == "staff"]
    [admin_row] = [r for r in rows if r["role"] == "admin"]
    other_tenant = make_key(Role.admin)
    assert (await api.post(f"/api/v1/keys/{row['id']}/revoke", headers=other_tenant)).status_code == 404
    revoked = await api.post(f"/api/v1/keys/{row['id']}/revoke", headers=admin)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"], revoked.text
    answer = await api.get("/api/v1/leads", headers=staff)
    assert answer.status_code == 401 and "revoked" in answer.json()["detail"]
    again = await api.post(f"/api/v1/keys/{row['prefix']}/revoke", headers=admin)  # by prefix; nothing changes
    assert again.status_code == 200 and again.json()["revoked_at"] == revoked.json()["revoked_at"]
    with Session(engine) as session:
        audits = session.exec(select(AuditLog).where(AuditLog.tenant_id == tenant,
                                                     AuditLog.action == "api_key.revoke")).all()
    assert [(a.entity_id, a.actor, a.before) for a in audits] == [(row["id"], f"key:{admin_row['id']}",
                                                                   {"revoked_at": None})]


async def test_a_key_revoked_by_another_process_is_refused_at_once(api, make_key, settings):
    """The API's cache of verified keys must not outlive a revocation made elsewhere (`dealflow keys revoke`)."""
    tenant, admin, staff = _tenant_keys(make_key)
    assert (await api.get("/api/v1/leads", headers=staff)).status_code == 200  # now in this process's cache
    prefix = staff["Authorization"].split("_")[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
    env.update({"DEALFLOW_DATABASE_URL": settings.database_url, "PYTHONPATH": str(ROOT)})
    out = subprocess.run([sys.executable, str(ROOT / "cli.py"), "keys", "revoke", prefix, "--tenant", tenant],
                         env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "revoked" in out.stdout, out.stderr
    assert (await api.get("/api/v1/leads", headers=staff)).status_code == 401
    assert (await api.get("/api/v1/leads", headers=admin)).status_code == 200
