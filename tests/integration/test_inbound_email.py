"""Inbound email over HTTP (SendGrid Inbound Parse): a reply reaches the lead's workflow and the inbox with its
intent, its quoted thread cut off; "take me off your list" or an "Unsubscribe" subject opts the address out of
email and stops the cadence; a retried post changes nothing; wrong credentials are refused."""

from __future__ import annotations

import asyncio
import base64
import uuid

from sqlmodel import Session, select

from models.consent import is_opted_out
from models.event import Event
from models.message import Message
from tests.conftest import INBOUND_EMAIL_PASSWORD, first_touch_run, set_tenant
from tests.integration.test_webhooks import _quiet_lead

URL = "/api/v1/webhooks/sendgrid/inbound"


def _auth(password: str = INBOUND_EMAIL_PASSWORD) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"sendgrid:{password}".encode()).decode()}


def _email(sender: str, text: str, subject: str = "Re: Your property at 4500 Oak Ridge Dr", to: str = "", **extra
           ) -> dict:
    message_id = f"<{uuid.uuid4().hex}@mail.example.com>"
    return {"from": f"Stop Seller <{sender}>", "to": f"Peach State Buyers <{to}>", "subject": subject, "text": text,
            "envelope": f'{{"to":["{to}"],"from":"{sender}"}}',
            "headers": f"Message-ID: {message_id}\nSubject: {subject}\n", "spam_score": "0.1",
            "SPF": "pass", "dkim": "{@mail.example.com : pass}", **extra}


async def _post(api, form: dict, headers: dict | None = None):
    # multipart/form-data, as Inbound Parse posts it (with an attachment that is not kept)
    return await api.post(URL, data=form, files={"attachment1": ("roof.jpg", b"\xff\xd8\xff" + b"0" * 2048,
                                                                  "image/jpeg")},
                          headers=_auth() if headers is None else headers)


async def _lead(api, engine, make_key):
    """A quiet lead (its first touch waits for the send window) of a tenant sending from its own address."""
    tenant, _, lead, headers = await _quiet_lead(api, engine, make_key)
    address = f"offers@{tenant}.example.com"
    set_tenant(engine, tenant, email_from=f"Peach State Buyers <{address}>")
    return tenant, address, lead, headers


async def test_an_emailed_reply_reaches_the_lead_and_the_inbox_once(api, engine, make_key):
    tenant, address, lead, headers = await _lead(api, engine, make_key)
    form = _email(lead["email"], to=address, text="What would you offer for it?\n\nOn Tue, Dec 1, 2026 at 9:00 AM "
                  "Peach State "
                  "<offers@peach.example.com> wrote:\n> Hi, are you still thinking of selling?\n> Thanks\n")
    answers = await asyncio.gather(*(_post(api, form) for _ in range(8)))  # a retried post, several at once
    assert sorted(r.json()["status"] for r in answers) == ["duplicate"] * 7 + ["reply"], [r.text for r in answers]
    with Session(engine) as session:
        inbound = session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                     Message.direction == "inbound")).all()
        replied = session.exec(select(Event).where(Event.subject_id == lead["id"],
                                                   Event.name == "lead.replied")).all()
    assert len(inbound) == 1 and len(replied) == 1
    assert inbound[0].channel == "email" and inbound[0].body == "What would you offer for it?"  # no quoted thread
    assert inbound[0].intent == "asks_offer" and replied[0].data["intent"] == "asks_offer"
    shown = (await api.get("/api/v1/messages", headers=headers, params={"direction": "inbound",
                                                                        "channel": "email"})).json()["items"]
    assert [m["id"] for m in shown] == [inbound[0].id] and shown[0]["subject"].startswith("Re: Your property")
    timeline = (await api.get(f"/api/v1/leads/{lead['id']}/timeline", headers=headers)).json()
    assert any(e["kind"] == "message.received" and e["summary"].startswith(f"Email from {lead['email']}")
               for e in timeline)
    assert not is_opted_out(Session(engine), tenant, "email", lead["email"])


async def test_take_me_off_your_list_by_email_opts_out_and_stops_the_cadence(api, engine, make_key,
                                                                             temporal_client):
    tenant, address, lead, _ = await _lead(api, engine, make_key)
    first_touch = await first_touch_run(engine, temporal_client, lead["id"], step="welcome", timeout=90)
    answer = await _post(api, _email(lead["email"], "Please take me off your list. Not selling.", to=address))
    assert answer.status_code == 200 and answer.json()["status"] == "opt_out", answer.text
    state = await asyncio.wait_for(first_touch.result(), timeout=20)
    assert state.status == "exited" and "lead.opted_out" in state.path[-1]["detail"]
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "email", lead["email"])
        names = session.exec(select(Event.name).where(Event.subject_id == lead["id"])).all()
    assert "lead.opted_out" in names and "lead.replied" not in names


async def test_an_unsubscribe_subject_opts_out_and_strangers_are_kept(api, engine, make_key):
    tenant, address, lead, _ = await _lead(api, engine, make_key)
    assert (await _post(api, _email(lead["email"], "", subject="Unsubscribe", to=address))).json()["status"] \
        == "opt_out"
    with Session(engine) as session:
        assert is_opted_out(session, tenant, "email", lead["email"])
    stranger = f"who.{uuid.uuid4().hex[:6]}@example.com"
    assert (await _post(api, _email(stranger, "Is this the right address?", to=address))).json()["status"] \
        == "unknown_sender"
    nobody = _email(stranger, "Hello?", to="someone@elsewhere.example.com")  # no tenant of ours: kept, not applied
    assert (await _post(api, nobody)).json()["status"] in ("unknown_recipient", "unknown_sender")
    with Session(engine) as session:
        assert session.exec(select(Message).where(Message.from_address == stranger)).one().direction == "inbound"


async def test_an_unauthenticated_email_is_kept_but_moves_nothing_and_harmless_subjects_stay(api, engine, make_key):
    tenant, address, lead, headers = await _lead(api, engine, make_key)
    forged = _email(lead["email"], "Yes! Send me the contract.", to=address, SPF="fail", dkim="none")
    assert (await _post(api, forged)).json()["status"] == "unverified"
    stop_by = _email(lead["email"], "Can you come then?", to=address, subject="Stop by Friday?")
    assert (await _post(api, stop_by)).json()["status"] == "reply"
    with Session(engine) as session:
        statuses = sorted(m.status for m in session.exec(select(Message).where(
            Message.lead_id == lead["id"], Message.direction == "inbound")))
        replied = session.exec(select(Event).where(Event.subject_id == lead["id"],
                                                   Event.name == "lead.replied")).all()
        assert statuses == ["received", "unverified"] and len(replied) == 1  # only the authenticated one
        assert not is_opted_out(session, tenant, "email", lead["email"])


async def test_inbound_email_needs_its_password_and_a_sender(api):
    form = _email(f"x.{uuid.uuid4().hex[:6]}@example.com", "hello")
    for headers in ({}, _auth("guess"), {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
        refused = await _post(api, form, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Basic"), headers
    refused = await _post(api, {**form, "from": "nobody", "envelope": "not json"})
    assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "from"
    for odd in ({"envelope": "[1, 2]"}, {"envelope": "[" * 5000 + "]" * 5000}, {"envelope": '{"to": "x@y.z"}'},
                {"to": ", ".join(f"a{i}%_@example.com" for i in range(500))}, {"text": "\u00e9" * 100_000},
                {"headers": "Message-ID: <" + "x" * 5000 + ">"}):
        answer = await _post(api, {**form, **odd})
        assert answer.status_code == 200, (list(odd), answer.text)
    long = await _post(api, {**form, "from": "a" * 300 + "@example.com", "subject": "Unsubscribe"})
    assert long.status_code == 422 and "longer than 254" in long.json()["detail"]
