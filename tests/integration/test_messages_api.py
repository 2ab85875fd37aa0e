"""Messages, templates and unsubscribe links through the API."""

from __future__ import annotations

from temporalio.service import RPCError

import uuid

from sqlmodel import Session

from models.consent import is_opted_out
from models.tenant import Role
from tests.conftest import eventually, set_tenant, toll_free, zone_at_local_hour


async def _tenant(make_key, engine, local_hour: int = 12):
    tenant = f"m{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(local_hour), name="Peach State Buyers",
               send_window_days="daily")  # open or closed by the hour alone, whatever day the test runs
    return tenant, headers


async def _lead(api, headers, **fields):
    body = {"first_name": "Msg", "email": f"msg.{uuid.uuid4().hex[:6]}@example.com", "phone": toll_free(),
            "source": "referral", **fields}
    return (await api.post("/api/v1/leads", headers=headers, json=body)).json()


async def test_first_touch_messages_show_in_messages_and_timeline(api, make_key, engine):
    tenant, headers = await _tenant(make_key, engine, local_hour=12)  # window open
    lead = await _lead(api, headers)

    async def sent():
        page = (await api.get(f"/api/v1/messages?lead_id={lead['id']}", headers=headers)).json()
        return page["items"] if len([m for m in page["items"] if m["status"] == "sent"]) == 2 else None
    messages = await eventually(sent)
    by_channel = {m["channel"]: m for m in messages}
    assert by_channel["sms"]["body"].startswith("Hi Msg, Peach State Buyers here.")
    assert by_channel["sms"]["provider"] == "outbox" and by_channel["sms"]["template_version"] == 1
    assert by_channel["email"]["subject"] == "Peach State Buyers: thanks for reaching out, Msg"
    sms_only = (await api.get(f"/api/v1/messages?lead_id={lead['id']}&channel=sms", headers=headers)).json()
    assert [m["channel"] for m in sms_only["items"]] == ["sms"]
    async def both_on_timeline():  # written right after the status, in its own transaction
        timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=headers)).json()
        return [e["kind"] for e in timeline].count("message.sent") == 2
    await eventually(both_on_timeline, timeout=10)

    other = make_key(Role.admin)  # another tenant sees none of it
    assert (await api.get(f"/api/v1/messages?lead_id={lead['id']}", headers=other)).json()["items"] == []
    assert (await api.get(f"/api/v1/messages/{messages[0]['id']}", headers=other)).status_code == 404


async def test_staff_one_off_message_is_sent_once_per_idempotency_key(api, make_key, engine, temporal_client):
    tenant, headers = await _tenant(make_key, engine, local_hour=12)
    lead = await _lead(api, headers)
    body = {"channel": "sms", "text": "Hi {{ lead.first_name }}, are you free at 3pm?"}
    first = await api.post(f"/api/v1/leads/{lead['id']}/messages", json=body,
                           headers={**headers, "Idempotency-Key": "call-3pm"})
    again = await api.post(f"/api/v1/leads/{lead['id']}/messages", json=body,
                           headers={**headers, "Idempotency-Key": "call-3pm"})
    assert first.status_code == again.status_code == 202
    assert first.json()["workflow_id"] == again.json()["workflow_id"]
    handle = temporal_client.get_workflow_handle(first.json()["workflow_id"])

    async def started():  # the relay starts it from the request's event, moments after the answer
        try:
            return await handle.describe()
        except RPCError:
            return None

    await eventually(started)
    result = await handle.result()
    assert result["status"] == "sent"
    page = (await api.get(f"/api/v1/messages?lead_id={lead['id']}", headers=headers)).json()
    staff = [m for m in page["items"] if m["idempotency_key"] == first.json()["idempotency_key"]]
    assert len(staff) == 1 and staff[0]["body"] == "Hi Msg, are you free at 3pm?"


async def test_bad_one_off_messages_are_rejected_before_anything_runs(api, make_key, engine):
    tenant, headers = await _tenant(make_key, engine)
    lead = await _lead(api, headers, phone=None)
    url = f"/api/v1/leads/{lead['id']}/messages"
    no_phone = await api.post(url, json={"channel": "sms", "text": "hi"}, headers=headers)
    assert no_phone.status_code == 422 and "has no phone" in no_phone.json()["detail"]
    typo = await api.post(url, json={"channel": "email", "text": "Hi {{ lead.frist_name }}", "subject": "x"},
                          headers=headers)
    assert typo.status_code == 422 and typo.json()["errors"][0]["field"] == "text"
    wrong = await api.post(url, json={"channel": "email", "template": "first_touch"}, headers=headers)
    assert wrong.status_code == 422 and "is for sms" in wrong.json()["detail"]
    readonly = make_key(Role.readonly, tenant=tenant)
    assert (await api.post(url, json={"channel": "email", "template": "welcome"}, headers=readonly)).status_code == 403


async def test_templates_are_validated_versioned_and_report_segments(api, make_key, engine):
    tenant, headers = await _tenant(make_key, engine)
    ops = make_key(Role.ops, tenant=tenant)
    bad = await api.post("/api/v1/templates", headers=ops, json={
        "key": "nudge_1", "channel": "sms", "text": "Hi {{ lead.frist_name }} at {{ propert.street }}"})
    assert bad.status_code == 422
    assert "propert" in bad.json()["errors"][0]["message"]
    bad = await api.post("/api/v1/templates", headers=ops, json={"key": "promo", "channel": "email", "text": "x"})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "subject"

    good = await api.post("/api/v1/templates", headers=ops, json={
        "key": "nudge_1", "channel": "sms", "text": "Hi {{ lead.first_name }}, still thinking about selling? " * 5})
    assert good.status_code == 201
    body = good.json()
    assert body["version"] == 2  # after the built-in version 1
    assert body["report"]["segments"]["segments"] == 2 and body["report"]["segments"]["encoding"] == "GSM-7"
    listed = {t["key"]: t for t in (await api.get("/api/v1/templates", headers=headers)).json()}
    assert listed["nudge_1"]["version"] == 2 and not listed["nudge_1"]["builtin"]
    assert listed["welcome"]["builtin"]
    readonly = make_key(Role.readonly, tenant=tenant)
    assert (await api.post("/api/v1/templates", headers=readonly, json={
        "key": "x", "channel": "sms", "text": "hi"})).status_code == 403


async def test_unsubscribe_link_opts_out_on_post_only(api, make_key, engine, settings):
    from services.message_content import unsubscribe_url

    tenant, headers = await _tenant(make_key, engine, local_hour=2)
    lead = await _lead(api, headers)
    url = unsubscribe_url(settings, tenant, "email", lead["email"]).removeprefix(settings.public_url)
    page = await api.get(url)
    assert page.status_code == 200 and "Unsubscribe" in page.text
    with Session(engine) as session:
        assert not is_opted_out(session, tenant, "email", lead["email"])  # link scanners change nothing
    done = await api.post(url)
    assert done.status_code == 200 and "will get no more emails" in done.text
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "email", lead["email"])
    forged = await api.post(url[:-3] + "abc")
    assert forged.status_code == 400


async def test_a_preview_renders_for_the_lead_with_consent_and_quiet_hours_and_sends_nothing(api, make_key, engine):
    from sqlmodel import func, select

    from models.consent import record_consent
    from models.message import Message
    from models.payloads import ConsentChange

    tenant, headers = await _tenant(make_key, engine, local_hour=2)  # 2 a.m. where the lead lives: window shut
    lead = await _lead(api, headers, first_name="Rosa")
    preview = await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=headers,
                             json={"channel": "email", "template": "still_interested"})
    assert preview.status_code == 200, preview.text
    body = preview.json()
    assert body["to"] == lead["email"] and "Rosa" in body["text"] and "Peach State Buyers" in body["subject"]
    assert body["opted_out"] is False and body["window_open"] is False and "send window opens" in body["summary"]
    sms = (await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=headers,
                          json={"channel": "sms", "text": "Hi {{ lead.first_name }}, still selling?"})).json()
    assert sms["text"].startswith("Hi Rosa") and sms["sms_segments"] == 1
    with Session(engine) as session:
        record_consent(session, ConsentChange(tenant_id=tenant, channel="sms", address=lead["phone"],
                                              status="opted_out", source="test"))
        session.commit()
    sms = (await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=headers,
                          json={"channel": "sms", "text": "Hi"})).json()
    assert sms["opted_out"] is True
    # The send's own checks, each naming its field; a template that cannot render says why.
    wrong = await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=headers,
                           json={"channel": "sms", "template": "still_interested"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "channel"
    broken = await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=headers,
                            json={"channel": "sms", "text": "{{ lead.first_name | nosuchfilter }}"})
    assert broken.status_code == 422, broken.text
    reader = make_key(Role.readonly, tenant=tenant)
    assert (await api.post(f"/api/v1/leads/{lead['id']}/messages/preview", headers=reader,
                           json={"channel": "sms", "text": "Hi"})).status_code == 403
    with Session(engine) as session:  # nothing stored by any of them
        assert session.exec(select(func.count()).select_from(Message).where(
            Message.lead_id == lead["id"], Message.template == "still_interested")).one() == 0
