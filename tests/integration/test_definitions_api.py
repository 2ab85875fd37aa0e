"""Definitions through the API: every error with its line and column, drafts, publishing, retiring."""

from __future__ import annotations

import uuid
from datetime import datetime
from zoneinfo import ZoneInfo

from models.tenant import Role

SOURCE = """schema: dealflow/v1
key: {key}
version: {version}
trigger: {{event: lead.created}}
steps:
  - {{id: welcome, action: send_email, with: {{template: welcome}}}}
  - {{id: wait_reply, wait_for: {{event: lead.replied, timeout: {wait}}}}}
"""


def _yaml(key, version=1, wait="2d"):
    return SOURCE.format(key=key, version=version, wait=wait).encode()


async def test_drafts_publish_and_versions_are_frozen(api, make_key):
    tenant = f"d{uuid.uuid4().hex[:6]}"
    ops, staff, readonly = (make_key(role, tenant=tenant) for role in (Role.ops, Role.staff, Role.readonly))
    yaml = {"Content-Type": "application/yaml"}
    key = "web-nurture"

    bad = await api.post("/api/v1/definitions", content=_yaml(key, wait="2 days"),
                         headers={**ops, **yaml, "X-Filename": "web.yaml"})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"] == [{"line": 7, "column": 63,
                                     "message": "'2 days' is not a duration like 30s, 15m, 2h, 3d or 1w"}]
    assert bad.json()["detail"] == "1 problem(s) in web.yaml"

    draft = await api.post("/api/v1/definitions", content=_yaml(key), headers={**ops, **yaml})
    assert draft.status_code == 201 and draft.json()["status"] == "draft" and draft.json()["steps"] == 2
    edited = await api.post("/api/v1/definitions", content=_yaml(key, wait="3d"), headers={**ops, **yaml})
    assert edited.status_code == 201 and edited.json()["content_hash"] != draft.json()["content_hash"]

    assert (await api.post(f"/api/v1/definitions/{key}/versions/1/publish", headers=staff)).status_code == 403
    published = await api.post(f"/api/v1/definitions/{key}/versions/1/publish", headers=ops)
    assert published.status_code == 200 and published.json()["status"] == "published"
    frozen = await api.post("/api/v1/definitions", content=_yaml(key, wait="4d"), headers={**ops, **yaml})
    assert frozen.status_code == 409 and "bump 'version' to 2" in frozen.json()["detail"]

    assert (await api.post("/api/v1/definitions", content=_yaml(key, version=2), headers={**ops, **yaml})
            ).status_code == 201
    assert (await api.post(f"/api/v1/definitions/{key}/versions/2/publish", headers=ops)).status_code == 200
    shown = (await api.get(f"/api/v1/definitions/{key}", headers=readonly)).json()
    assert [(v["version"], v["status"]) for v in shown] == [(2, "published"), (1, "published")]
    assert "timeout: 3d" in shown[1]["source"]  # version 1 is exactly what was published

    retired = await api.post(f"/api/v1/definitions/{key}/retire", headers=ops)
    assert retired.json() == {"key": key, "retired_versions": 2}
    listed = {v["key"]: v["status"] for v in (await api.get("/api/v1/definitions", headers=ops)).json()}
    assert listed == {key: "retired", "speed-to-lead": "published"}  # every tenant starts with speed-to-lead
    assert (await api.post("/api/v1/definitions", content=_yaml("x-def"), headers={**readonly, **yaml})
            ).status_code == 403
    other = make_key(Role.admin)
    assert (await api.get(f"/api/v1/definitions/{key}", headers=other)).status_code == 404


async def test_dry_run_through_the_api(api, make_key):
    headers = make_key(Role.ops)
    source = _yaml("api-dry-run").decode()
    response = await api.post("/api/v1/definitions/test", headers=headers, json={
        "source": source, "subject": {"id": "ld_x", "first_name": "Ann", "status": "new", "tags": [],
                                      "timezone": "America/Denver"},
        "events": [{"after": "1d", "name": "lead.replied", "data": {"text": "yes"}}], "start_on": "wed"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "completed" and body["zone"] == "America/Denver"
    starts = datetime.fromisoformat(body["starts"])
    denver = ZoneInfo("America/Denver")
    assert (starts.weekday(), f"{starts:%H:%M}", starts.utcoffset()) == (2, "09:00", starts.astimezone(denver).utcoffset())
    assert body["lines"] == ["day 0 09:00 welcome send_email welcome: sent",
                             "day 1 09:00 wait_reply lead.replied received"]
    invalid = await api.post("/api/v1/definitions/test", headers=headers, json={"source": source.replace("2d", "2x")})
    assert invalid.status_code == 422 and invalid.json()["errors"][0]["line"] == 7


async def test_a_dry_run_starts_on_the_weekday_asked_and_send_windows_skip_the_closed_days(api, make_key):
    """The default send window is Monday to Saturday 08:00-20:00: a run whose day 0 is a Saturday sends its first
    message at once and its second, due on Sunday, at Monday's opening; the same run from a Monday does not wait.
    Without `start_on` day 0 is whatever the next morning is, so this path changed with the day CI ran."""
    headers = make_key(Role.ops)
    source = _yaml("weekday-dry-run", wait="1d").decode()
    nudge = source + "  - {id: nudge, action: send_sms, with: {template: nudge_1}}\n"
    subject = {"id": "ld_w", "first_name": "Wes", "status": "new", "tags": [],
               "timezone": "America/Phoenix"}  # no daylight saving: a 1d wait over a Sunday stays 24 h on the clock
    paths = {}
    for day in ("sat", "mon"):
        response = await api.post("/api/v1/definitions/test", headers=headers, json={
            "source": nudge, "subject": subject, "start_on": day, "start_at": "10:30"})
        assert response.status_code == 200, response.text
        paths[day] = response.json()["lines"]
        starts = datetime.fromisoformat(response.json()["starts"])
        assert f"{starts:%a %H:%M}" == f"{day.title()} 10:30"
    assert paths["sat"] == ["day 0 10:30 welcome send_email welcome: sent",
                            "day 1 10:30 wait_reply lead.replied timed out",
                            "day 2 08:00 nudge send_sms nudge_1: sent"]
    assert paths["mon"] == ["day 0 10:30 welcome send_email welcome: sent",
                            "day 1 10:30 wait_reply lead.replied timed out",
                            "day 1 10:30 nudge send_sms nudge_1: sent"]
    for bad, field in (({"start_on": "someday"}, "start_on"), ({"start_at": "9am"}, "start_at"),
                       ({"start_at": "24:00"}, "start_at")):
        refused = await api.post("/api/v1/definitions/test", headers=headers, json={"source": source, **bad})
        assert refused.status_code == 422, refused.text
        assert refused.json()["errors"][0]["field"].endswith(field), refused.json()


async def test_validate_checks_as_saving_does_and_stores_nothing(api, make_key, engine):
    from sqlmodel import Session, select

    from models.definition import WorkflowDefinition

    tenant = f"v{uuid.uuid4().hex[:6]}"
    ops, staff = make_key(Role.ops, tenant=tenant), make_key(Role.staff, tenant=tenant)
    yaml = {"Content-Type": "application/yaml"}

    bad = await api.post("/api/v1/definitions/validate", content=_yaml("checked", wait="2 days"),
                         headers={**ops, **yaml, "X-Filename": "web.yaml"})
    saved = await api.post("/api/v1/definitions", content=_yaml("checked", wait="2 days"),
                           headers={**ops, **yaml, "X-Filename": "web.yaml"})
    assert bad.status_code == saved.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"] == saved.json()["errors"] == [
        {"line": 7, "column": 63, "message": "'2 days' is not a duration like 30s, 15m, 2h, 3d or 1w"}]
    broken = await api.post("/api/v1/definitions/validate", content=b"schema: dealflow/v1\nkey: [oops\n",
                            headers={**ops, **yaml})
    assert broken.status_code == 422 and broken.json()["errors"][0]["line"] >= 2  # a YAML error has its place too

    good = await api.post("/api/v1/definitions/validate", content=_yaml("checked"), headers={**ops, **yaml})
    assert good.status_code == 200, good.text
    assert good.json() | {"content_hash": None} == {"valid": True, "key": "checked", "version": 1, "subject": "lead",
                                                   "trigger": "lead.created", "steps": 2, "content_hash": None}
    with Session(engine) as session:  # nothing saved
        assert session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == tenant,
                                                             WorkflowDefinition.key == "checked")).all() == []
    assert (await api.post("/api/v1/definitions/validate", content=_yaml("checked"), headers={**staff, **yaml})
            ).status_code == 403
