"""One-off messages to investors (the inbox's replies, the investor page's composer) and which templates a one-off
send can use: an investor's send goes through the same event path, rules and checks as a lead's; a template that
names what only another send gives (a lead to an investor, a deal outside a blast) is refused before anything is
stored; an investor's allocations across raises; the inbox's filter on reply intent."""

from __future__ import annotations

import uuid

from sqlmodel import Session, func, select

from models.event import Event
from models.investor import Investor
from models.message import Message
from models.tenant import Role
from tests.conftest import eventually, set_tenant, toll_free, zone_at_local_hour


async def _investor(api, make_key, engine, local_hour: int = 12):
    tenant = f"im{uuid.uuid4().hex[:6]}"
    headers = make_key(Role.staff, tenant=tenant)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(local_hour), name="Peach State Capital",
               send_window_days="daily")
    investor = (await api.post("/api/v1/investors", headers=headers, json={
        "name": "Dana Whitfield", "email": f"dana.{uuid.uuid4().hex[:6]}@example.com", "phone": toll_free()})).json()
    return tenant, headers, investor


async def test_a_template_goes_only_to_whom_its_variables_are_written_for(api, make_key, engine):
    tenant, headers, investor = await _investor(api, make_key, engine)
    for_investors = (await api.get("/api/v1/templates?audience=investor", headers=headers)).json()
    for_leads = (await api.get("/api/v1/templates?audience=lead", headers=headers)).json()
    assert {"investor_intro", "investor_follow_up", "help_reply"} <= {t["key"] for t in for_investors}
    assert not {"still_interested", "investor_deal_blast", "staff_notification"} & {t["key"] for t in for_investors}
    assert {"still_interested", "help_reply"} <= {t["key"] for t in for_leads}
    assert not {"investor_intro", "investor_deal_blast"} & {t["key"] for t in for_leads}
    every = {t["key"]: t["audiences"] for t in (await api.get("/api/v1/templates", headers=headers)).json()}
    assert every["investor_deal_blast"] == [] and every["help_reply"] == ["lead", "investor"]

    url = f"/api/v1/investors/{investor['id']}/messages"
    for body, field in (({"channel": "email", "template": "still_interested"}, "template"),
                        ({"channel": "sms", "template": "investor_deal_blast_sms"}, "template"),
                        ({"channel": "sms", "text": "Hi {{ lead.first_name }}"}, "text")):
        for path in (url, f"{url}/preview"):
            refused = await api.post(path, headers=headers, json=body)
            assert refused.status_code == 422, (path, body, refused.text)
            assert refused.json()["errors"][0] == {"field": field, "message": "not written for one investor"}
    lead = (await api.post("/api/v1/leads", headers=headers, json={
        "first_name": "Rosa", "email": f"rosa.{uuid.uuid4().hex[:6]}@example.com", "source": "referral"})).json()
    wrong = await api.post(f"/api/v1/leads/{lead['id']}/messages", headers=headers,
                           json={"channel": "email", "template": "investor_intro"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "template"
    missing = await api.post("/api/v1/investors/iv_nobody/messages", headers=headers,
                             json={"channel": "email", "template": "investor_intro"})
    other = make_key(Role.staff)  # another tenant's investor reads as missing
    theirs = await api.post(url, headers=other, json={"channel": "email", "template": "investor_intro"})
    reader = await api.post(url, headers=make_key(Role.readonly, tenant=tenant),
                            json={"channel": "email", "template": "investor_intro"})
    assert (missing.status_code, theirs.status_code, reader.status_code) == (404, 404, 403)
    with Session(engine) as session:  # none of them stored a message or an event
        assert session.exec(select(func.count()).select_from(Event).where(
            Event.tenant_id == tenant, Event.name == "message.requested")).one() == 0


async def test_a_message_to_an_investor_is_previewed_then_sent_once_and_counts_as_contact(api, make_key, engine,
                                                                                           temporal_client):
    tenant, headers, investor = await _investor(api, make_key, engine)
    url = f"/api/v1/investors/{investor['id']}/messages"
    preview = await api.post(f"{url}/preview", headers=headers, json={"channel": "email", "template": "investor_intro"})
    assert preview.status_code == 200, preview.text
    shown = preview.json()
    assert shown["to"] == investor["email"] and shown["text"].startswith("Hi Dana,")
    assert "Peach State Capital" in shown["subject"] and shown["opted_out"] is False and shown["window_open"] is True

    sends = [await api.post(url, headers={**headers, "Idempotency-Key": "intro-1"},
                            json={"channel": "email", "template": "investor_intro"}) for _ in range(3)]
    assert {s.status_code for s in sends} == {202} and len({s.json()["workflow_id"] for s in sends}) == 1
    result = await eventually(lambda: _finished(temporal_client, sends[0].json()["workflow_id"]), timeout=60)
    assert result["status"] == "sent"
    page = (await api.get(f"/api/v1/messages?investor_id={investor['id']}", headers=headers)).json()
    intro = [m for m in page["items"] if m["template"] == "investor_intro"]
    assert len(intro) == 1 and intro[0]["to_address"] == investor["email"]
    # what the preview showed is what went (but the unsubscribe link's token, signed at each render)
    assert intro[0]["body"].split("Unsubscribe:")[0] == shown["text"].split("Unsubscribe:")[0]
    with Session(engine) as session:
        after = session.get(Investor, investor["id"])
        assert after.status == "contacted" and after.last_contacted_at is not None


async def _finished(client, workflow_id: str):
    from temporalio.service import RPCError

    try:
        return await client.get_workflow_handle(workflow_id).result()
    except RPCError:  # not started by the relay yet
        return None


async def test_an_investors_allocations_and_the_inbox_filter_on_intent(api, make_key, engine):
    from tests.integration.test_offerings import _raise

    tenant, staff, deal, offering, url, (a, b) = await _raise(api, make_key, engine, investors=2)
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    assert (await api.post(f"{url}/allocations", headers=staff,
                           json={"investor_id": a, "amount": "75000"})).status_code == 200
    rows = (await api.get(f"/api/v1/investors/{a}/allocations", headers=staff)).json()
    assert [(r["deal_title"], r["offering_id"], r["status"], r["amount"], r["rule"]) for r in rows] == [
        ("Fund 12 Oak", offering["id"], "soft_commit", "75000.00", "506c")]
    assert (await api.get(f"/api/v1/investors/{b}/allocations", headers=staff)).json() == []
    assert (await api.get(f"/api/v1/investors/{a}/allocations", headers=make_key(Role.staff))).status_code == 404

    with Session(engine) as session:
        for intent in ("opt_out", "interested", None):
            session.add(Message(tenant_id=tenant, investor_id=a, channel="sms", direction="inbound",
                                to_address="+18005550100", from_address="+18005550199", body=f"reply {intent}",
                                status="received", intent=intent, idempotency_key=uuid.uuid4().hex))
        session.commit()
    inbound = (await api.get("/api/v1/messages?direction=inbound&intent=interested&intent=opt_out",
                             headers=staff)).json()["items"]
    assert sorted(m["intent"] for m in inbound) == ["interested", "opt_out"]
    bad = await api.get("/api/v1/messages?direction=inbound&intent=maybe", headers=staff)
    assert bad.status_code == 422
