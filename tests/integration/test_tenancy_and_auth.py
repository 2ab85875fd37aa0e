"""A key of tenant A can never read or change tenant B's rows or workflows; roles are enforced."""

from __future__ import annotations

import uuid

from models.tenant import Role
from tests.conftest import workflow_running


def _body():
    return {"first_name": "Iso", "last_name": "Lated", "email": f"iso.{uuid.uuid4().hex[:8]}@example.com",
            "source": "referral"}


async def test_tenant_b_cannot_see_or_touch_tenant_a(api, make_key):
    alice = make_key(Role.admin, tenant=f"a{uuid.uuid4().hex[:6]}")
    bob = make_key(Role.admin, tenant=f"b{uuid.uuid4().hex[:6]}")
    lead = (await api.post("/api/v1/leads", json=_body(), headers=alice)).json()
    wid = lead["workflow_id"]
    await workflow_running(api, alice, lead["id"])  # the relay has started it: B's 404 is about tenancy

    for method, url, body in [
        ("GET", f"/api/v1/leads/{lead['id']}", None),
        ("GET", f"/api/v1/leads/{lead['id']}/timeline", None),
        ("PATCH", f"/api/v1/leads/{lead['id']}", {"notes": "hijack"}),
        ("GET", f"/api/v1/workflows/{wid}", None),
        ("POST", f"/api/v1/workflows/{wid}/signals/close", {"note": "hijack"}),
    ]:
        response = await api.request(method, url, json=body, headers=bob)
        assert response.status_code == 404, (method, url, response.text)
        assert response.headers["content-type"] == "application/problem+json"

    assert (await api.get("/api/v1/leads", headers=bob)).json()["items"] == []
    # The same email in tenant B is a new lead there, not a duplicate of A's.
    same = await api.post("/api/v1/leads", json={**_body(), "email": lead["email"]}, headers=bob)
    assert same.status_code == 201 and same.json()["duplicate_of"] is None

    # And A's lead is untouched.
    mine = (await api.get(f"/api/v1/leads/{lead['id']}", headers=alice)).json()
    assert mine["notes"] is None and mine["status"] == "new"
    state = (await api.get(f"/api/v1/workflows/{wid}", headers=alice)).json()
    assert state["status"] == "RUNNING"


async def test_authentication_problems(api, make_key):
    response = await api.get("/api/v1/leads")
    assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
    assert response.headers["content-type"] == "application/problem+json"
    response = await api.get("/api/v1/leads", headers={"Authorization": "Bearer dfk_nope_nope"})
    assert response.status_code == 401 and response.json()["detail"] == "invalid or revoked API key"
    good = make_key(Role.readonly)
    tampered = {"Authorization": good["Authorization"][:-2] + "xx"}
    assert (await api.get("/api/v1/leads", headers=tampered)).status_code == 401


async def test_roles(api, make_key):
    tenant = f"r{uuid.uuid4().hex[:6]}"
    readonly, ops, staff = (make_key(role, tenant=tenant) for role in (Role.readonly, Role.ops, Role.staff))
    for headers in (readonly, ops):
        response = await api.post("/api/v1/leads", json=_body(), headers=headers)
        assert response.status_code == 403 and "needs one of: admin, manager, staff" in response.json()["detail"]
    lead = (await api.post("/api/v1/leads", json=_body(), headers=staff)).json()
    assert (await api.get(f"/api/v1/leads/{lead['id']}", headers=readonly)).status_code == 200
    signal = await api.post(f"/api/v1/workflows/{lead['workflow_id']}/signals/note", json={}, headers=readonly)
    assert signal.status_code == 403


async def test_unknown_routes_and_methods_are_problems(api, make_key):
    response = await api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and response.headers["content-type"] == "application/problem+json"
    response = await api.delete("/api/v1/leads", headers=make_key())
    assert response.status_code == 405 and response.json()["status"] == 405
