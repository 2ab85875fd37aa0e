"""A capital raise over HTTP on the real worker: an offering on a deal moves draft → open → active → closed;
investors soft-commit (eligible under Rule 506(c) only with an unexpired verification), commit with a signed
subscription agreement, are waitlisted in commitment order when the raise is full and promoted when a place frees,
and are funded (equalisation recorded). Every refused move is a 409 with its reasons."""

from __future__ import annotations

import asyncio
import re
import uuid
from decimal import Decimal

from sqlmodel import Session, select

from models.document import Document
from models.event import Event
from models.tenant import Role
from tests.conftest import eventually


async def _raise(api, make_key, engine, *, investors: int = 3, target: str = "200000", rule: str = "506c",
                 headers: tuple[str, dict] | None = None):
    tenant, staff = headers or (f"o{uuid.uuid4().hex[:8]}", None)
    staff = staff or make_key(Role.staff, tenant=tenant)
    deal = (await api.post("/api/v1/opportunities", headers=staff, json={"title": "Fund 12 Oak"})).json()
    people = []
    for i in range(investors):
        investor = (await api.post("/api/v1/investors", headers=staff, json={
            "name": f"Investor {i}", "email": f"inv{i}.{uuid.uuid4().hex[:6]}@example.com"})).json()
        letter = await api.post(f"/api/v1/investors/{investor['id']}/accreditations", headers=staff, json={
            "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "letter"})
        assert letter.status_code == 201, letter.text
        people.append(investor["id"])
    created = await api.post(f"/api/v1/opportunities/{deal['id']}/offerings", headers=staff, json={
        "target_amount": target, "minimum_investment": "50000", "rule": rule})
    assert created.status_code == 201, created.text
    offering = created.json()
    url = f"/api/v1/offerings/{offering['id']}"

    async def judged():  # the relay started its workflow: a move a draft refuses is judged, not "not running"
        body = (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).json()
        return "not running" not in body.get("detail", "")
    await eventually(judged, timeout=30)
    return tenant, staff, deal, offering, url, people


def _signed(engine, tenant: str, deal_id: str, investor_id: str) -> str:
    """The investor's subscription agreement signed and countersigned (rows as DocumentSigningWorkflow leaves
    them: the document completed, the investor and the issuer among its signers)."""
    from models.document import DocumentSigner
    from models.investor import Investor

    with Session(engine) as session:
        investor = session.get(Investor, investor_id)
        document = Document(tenant_id=tenant, opportunity_id=deal_id, kind="subscription_agreement",
                            title="Subscription Agreement", status="completed", content_sha256="0" * 64,
                            signed_sha256="1" * 64)
        session.add(document)
        session.flush()
        for name, email, role in ((investor.name, investor.email, "subscriber"),
                                  ("Issuer", f"issuer@{tenant}.example.com", "issuer")):
            session.add(DocumentSigner(tenant_id=tenant, document_id=document.id, name=name, email=email.lower(),
                                       role=role, status="signed"))
        session.commit()
        return document.id


async def test_a_raise_from_soft_commit_to_funded_with_its_rules(api, make_key, engine):
    tenant, staff, deal, offering, url, (a, b, c) = await _raise(api, make_key, engine)

    async def refused(path: str, body: dict | None = None) -> list[str]:
        response = await api.post(f"{url}{path}", headers=staff, json=body or {})
        assert response.status_code == 409, response.text
        return [e["message"] for e in response.json().get("errors") or [{"message": response.json()["detail"]}]]

    assert await refused("/status", {"status": "active"}) == [
        "an offering cannot move from draft to active (allowed: closed, open)"]
    assert (await refused("/allocations", {"investor_id": a, "amount": "100000"}))[0].startswith(
        "the offering is draft")
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200

    unverified = (await api.post("/api/v1/investors", headers=staff, json={
        "name": "Walk In", "email": f"walk.{uuid.uuid4().hex[:6]}@example.com", "accredited": True})).json()
    assert await refused("/allocations", {"investor_id": unverified["id"], "amount": "40000"}) == [
        "the minimum investment is 50,000.00",
        "a Rule 506(c) offering needs Walk In's accreditation verified: none is on record"]
    for investor, amount in ((a, "100000"), (b, "100000"), (c, "50000")):
        moved = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": investor, "amount": amount})
        assert moved.status_code == 200, moved.text
    assert (await refused(f"/allocations/{a}/commit", {"subscription_document_id": _signed(engine, tenant,
                                                                                           deal["id"], a)}))[0] \
        == "the offering is open: commitments are taken while it is active"
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200

    with Session(engine) as session:  # an agreement not yet signed by everyone does not count
        draft = Document(tenant_id=tenant, opportunity_id=deal["id"], kind="subscription_agreement", title="SA",
                         status="sent")
        session.add(draft)
        session.commit()
        draft_id = draft.id
    assert await refused(f"/allocations/{a}/commit", {"subscription_document_id": draft_id}) == [
        "a commitment needs the investor's subscription agreement signed and countersigned (a completed "
        "subscription_agreement document of this deal that they signed)"]
    theirs = _signed(engine, tenant, deal["id"], b)  # B's agreement does not commit A
    assert (await refused(f"/allocations/{a}/commit", {"subscription_document_id": theirs}))[0].startswith(
        "a commitment needs the investor's subscription agreement")
    states = []
    for investor in (a, b, c):
        moved = await api.post(f"{url}/allocations/{investor}/commit", headers=staff,
                               json={"subscription_document_id": _signed(engine, tenant, deal["id"], investor)})
        assert moved.status_code == 200, moved.text
        states.append({s["investor_id"]: s["status"] for s in moved.json()["slots"]})
    assert states[-1] == {a: "committed", b: "committed", c: "waitlisted"}  # 200k taken: C waits, third in line
    body = (await api.get(url, headers=staff)).json()
    assert {k: Decimal(v) for k, v in body["totals"].items()} == {
        "soft_committed": 0, "committed": 200000, "funded": 0, "waitlisted": 50000, "remaining": 0,
        "equalisation": 0}

    withdrawn = await api.post(f"{url}/allocations/{b}/withdraw", headers=staff)
    assert {s["investor_id"]: s["status"] for s in withdrawn.json()["slots"]} == {
        a: "committed", b: "withdrawn", c: "committed"}  # C's turn came
    assert await refused(f"/allocations/{b}/fund", {"amount": "1", "received_on": "2026-12-01",
                                                     "method": "wire"}) == [
        "the investor has no allocation in this offering (soft commit first)"]
    funded = await api.post(f"{url}/allocations/{a}/fund", headers=staff,
                            json={"amount": "95000", "received_on": "2026-12-01", "method": "wire"})
    assert funded.status_code == 200, funded.text
    assert await refused(f"/allocations/{a}/withdraw") == [
        "a funded allocation cannot be withdrawn (refund it outside the raise)"]
    body = (await api.get(url, headers=staff)).json()
    assert {k: Decimal(v) for k, v in body["totals"].items()} == {
        "soft_committed": 0, "committed": 150000, "funded": 95000, "waitlisted": 0, "remaining": 50000,
        "equalisation": -5000}
    assert [(x["investor_id"], x["status"], x["funding_method"]) for x in body["allocations"]] == [
        (a, "funded", "wire"), (b, "withdrawn", None), (c, "committed", None)]

    with Session(engine) as session:
        events = [(e.subject_id, e.name) for e in session.exec(
            select(Event).where(Event.tenant_id == tenant, Event.name.like("investor.%")).order_by(Event.seq))]
    assert [n for s, n in events if s == c] == ["investor.created", "investor.soft_committed", "investor.waitlisted",
                                                "investor.committed"]
    assert [n for s, n in events if s == a][-2:] == ["investor.committed", "investor.funded"]
    investor_a = (await api.get(f"/api/v1/investors/{a}", headers=staff)).json()
    assert investor_a["status"] == "committed"
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "closed"})).status_code == 200


async def test_commitments_at_once_fill_the_raise_in_one_order_and_waitlist_the_rest(api, make_key, engine):
    tenant, staff, deal, offering, url, people = await _raise(api, make_key, engine, investors=6, target="250000")
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    for investor in people:
        await api.post(f"{url}/allocations", headers=staff, json={"investor_id": investor, "amount": "60000"})
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200
    documents = [_signed(engine, tenant, deal["id"], investor) for investor in people]
    answers = await asyncio.gather(*(api.post(f"{url}/allocations/{investor}/commit", headers=staff,
                                              json={"subscription_document_id": document})
                                     for investor, document in zip(people, documents, strict=True)))
    assert [r.status_code for r in answers] == [200] * 6
    body = (await api.get(url, headers=staff)).json()
    by_order = sorted(body["allocations"], key=lambda x: x["sequence"])
    assert [x["sequence"] for x in by_order] == [1, 2, 3, 4, 5, 6]  # one order, decided in one place
    assert [x["status"] for x in by_order] == ["committed"] * 4 + ["waitlisted"] * 2  # 4 × 60k fit in 250k
    assert Decimal(body["totals"]["committed"]) == 240000 and Decimal(body["totals"]["remaining"]) == 10000


async def test_a_minimum_investment_verification_holds_only_from_its_floor(api, make_key, engine):
    """Rule 506(c)'s minimum-investment method: $200,000 for a natural person, $1,000,000 for an entity; below it
    the investor is refused with the reason, at the soft commit and again at the commitment."""
    tenant, staff, deal, offering, url, (person, fund) = await _raise(api, make_key, engine, investors=2,
                                                                      target="3000000")
    assert (await api.patch(f"/api/v1/investors/{fund}", headers=staff, json={"entity_type": "llc"})).status_code \
        == 200
    for investor in (person, fund):
        verified = await api.post(f"/api/v1/investors/{investor}/accreditations", headers=staff, json={
            "method": "minimum_investment", "evidence": "written representations: not financed by a third party"})
        assert verified.status_code == 201, verified.text
    eligibility = (await api.get(f"/api/v1/investors/{fund}/eligibility", headers=staff)).json()
    assert eligibility["eligible"] is True and Decimal(eligibility["minimum_commitment"]) == 1_000_000
    assert (await api.get(f"/api/v1/investors/{fund}/eligibility?rule=506b", headers=staff)).json()[
        "minimum_commitment"] is None
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200

    low = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": person, "amount": "150000"})
    assert low.status_code == 409 and low.json()["errors"] == [{"field": "allocation", "message": (
        "the investor's accreditation rests on the minimum-investment method, which holds for a commitment of at "
        "least 200,000.00 (not 150,000.00)")}]
    entity = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": fund, "amount": "500000"})
    assert entity.status_code == 409 and "at least 1,000,000.00" in entity.text
    for investor, amount in ((person, "200000"), (fund, "1000000")):
        taken = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": investor, "amount": amount})
        assert taken.status_code == 200, taken.text
    # The person's verification is replaced by a third-party letter (no floor), then they commit: fine.
    letter = await api.post(f"/api/v1/investors/{person}/accreditations", headers=staff, json={
        "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "letter"})
    assert letter.status_code == 201
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200
    committed = await api.post(f"{url}/allocations/{person}/commit", headers=staff,
                               json={"subscription_document_id": _signed(engine, tenant, deal["id"], person)})
    assert committed.status_code == 200, committed.text


async def test_no_new_money_after_the_close_date(api, make_key, engine):
    from datetime import timedelta

    from models.base import utcnow
    from models.offering import Offering

    tenant, staff, deal, offering, url, (a, b) = await _raise(api, make_key, engine, investors=2)
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    assert (await api.post(f"{url}/allocations", headers=staff,
                           json={"investor_id": a, "amount": "100000"})).status_code == 200
    with Session(engine) as session:  # the close date came (yesterday, in UTC)
        row = session.get(Offering, offering["id"])
        row.close_date = utcnow().date() - timedelta(days=1)
        session.add(row)
        session.commit()
        closed_on = f"{row.close_date:%Y-%m-%d}"
    late = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": b, "amount": "100000"})
    assert late.status_code == 409 and {"field": "allocation", "message": (
        f"the offering's close date ({closed_on}) has passed: it takes no new soft commit or commitment "
        "(commitments already made are still funded)")} in late.json()["errors"]
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200
    commit = await api.post(f"{url}/allocations/{a}/commit", headers=staff,
                            json={"subscription_document_id": _signed(engine, tenant, deal["id"], a)})
    assert commit.status_code == 409 and "close date" in commit.text


async def test_matching_a_deal_with_an_open_raise_keeps_to_who_can_take_part(api, make_key, engine):
    tenant, staff, deal, offering, url, (a, b) = await _raise(api, make_key, engine, investors=2, target="120000")
    await api.patch(f"/api/v1/investors/{a}", headers=staff, json={"check_min": "50000", "check_max": "100000"})
    await api.patch(f"/api/v1/investors/{b}", headers=staff, json={"check_min": "150000"})  # more than is left
    unverified = (await api.post("/api/v1/investors", headers=staff, json={
        "name": "Walk In", "email": f"walk.{uuid.uuid4().hex[:6]}@example.com", "accredited": True})).json()
    found = await api.post(f"/api/v1/opportunities/{deal['id']}/matches", headers=staff, json={})
    assert found.status_code == 200, found.text
    matches = {m["investor_id"]: m for m in found.json()}
    assert set(matches) == {a}, matches  # B's checks are too big for the raise; Walk In is not verified (506(c))
    assert "check size $50,000–$100,000 fits (minimum $50,000, $120,000 left)" in matches[a]["reasons"]
    assert unverified["id"] not in matches


async def test_a_blast_goes_to_exactly_the_top_eligible_once_and_stops_when_the_raise_is_full(api, make_key, engine):
    from models.message import Message

    from tests.conftest import set_tenant, zone_at_local_hour

    tenant, staff, deal, offering, url, people = await _raise(api, make_key, engine, investors=4, target="100000")
    # noon where the tenant is, any day: the blast's emails go now (at 19:40 in Chicago they waited for the morning)
    set_tenant(engine, tenant, timezone=zone_at_local_hour(12), send_window_days="daily")
    with Session(engine) as session:  # the fourth asked never to be written to
        from models.consent import Consent
        from models.investor import Investor

        opted = session.get(Investor, people[3])
        session.add(Consent(tenant_id=tenant, channel="email", address=opted.email, status="opted_out",
                            source="test"))
        session.commit()
    path = f"/api/v1/opportunities/{deal['id']}/blast"
    first = await api.post(path, headers={**staff, "Idempotency-Key": "blast-1"}, json={"top": 2})
    assert first.status_code == 202, first.text
    sent = first.json()["sent"]
    assert len(sent) == 2 and first.json()["repeated"] is False
    again = await api.post(path, headers={**staff, "Idempotency-Key": "blast-1"}, json={"top": 2})  # a retry
    assert again.json() == {**first.json(), "skipped": [], "repeated": True}
    second = (await api.post(path, headers=staff, json={"top": 5})).json()
    assert len(second["sent"]) == 1 and not set(second["sent"]) & set(sent)  # the next one; nobody twice
    assert {"investor_id": people[3], "reason": "opted out"} in second["skipped"]

    def messages():
        with Session(engine) as session:
            rows = session.exec(select(Message).where(Message.tenant_id == tenant,
                                                      Message.template == "investor_deal_blast")).all()
            return rows if len(rows) >= 3 else None
    rows = await eventually(messages, timeout=40)
    assert sorted(m.investor_id for m in rows) == sorted(sent + second["sent"])
    assert all(deal["title"] in (m.subject or "") for m in rows)

    # fully committed: no more blasts
    a = sent[0]
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    await api.post(f"{url}/allocations", headers=staff, json={"investor_id": a, "amount": "100000"})
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200
    assert (await api.post(f"{url}/allocations/{a}/commit", headers=staff,
                           json={"subscription_document_id": _signed(engine, tenant, deal["id"], a)})).status_code == 200
    full = await api.post(path, headers=staff, json={"top": 5})
    assert full.status_code == 409 and "fully committed" in full.json()["detail"]


async def test_replies_to_a_blast_are_shown_with_the_deal_and_become_soft_commits(api, make_key, engine):
    from tests.conftest import set_tenant, toll_free, zone_at_local_hour
    from tests.integration.test_webhooks import _twilio_post

    tenant, staff, deal, offering, url, (a, b, c) = await _raise(api, make_key, engine, investors=3)
    number = toll_free()
    set_tenant(engine, tenant, timezone=zone_at_local_hour(12), send_window_days="daily", sms_from=number)
    phones = {}
    for investor in (a, b, c):
        phones[investor] = toll_free()
        assert (await api.patch(f"/api/v1/investors/{investor}", headers=staff,
                                json={"phone": phones[investor]})).status_code == 200
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    path = f"/api/v1/opportunities/{deal['id']}/blast"
    sent = (await api.post(path, headers=staff, json={"top": 2, "channel": "sms"})).json()["sent"]
    assert len(sent) == 2
    left_out = next(i for i in (a, b, c) if i not in sent)

    def delivered():  # the blast's texts went out (outbound rows of the same investors: not replies)
        from models.message import Message

        with Session(engine) as session:
            return len(session.exec(select(Message).where(Message.tenant_id == tenant,
                                                          Message.template == "investor_deal_blast_sms")).all()) == 2
    await eventually(delivered, timeout=40)
    for investor, body in ((sent[0], "Count me in for 100k"), (left_out, "What deals do you have?")):
        form = {"MessageSid": f"SM{uuid.uuid4().hex}", "From": phones[investor], "To": number, "Body": body}
        assert (await _twilio_post(api, "/api/v1/webhooks/twilio/sms", form)).status_code == 200

    replies = (await api.get(f"/api/v1/opportunities/{deal['id']}/blast/replies", headers=staff)).json()
    assert [(r["investor_id"], r["message"]["body"]) for r in replies] == [(sent[0], "Count me in for 100k")]
    assert replies[0]["message"]["intent"] is not None and replies[0]["blasted_at"] <= replies[0]["message"][
        "created_at"]
    assert (await api.get(f"/api/v1/opportunities/{deal['id']}/blast/replies",
                          headers=make_key(Role.staff))).status_code == 404  # another tenant's deal
    taken = await api.post(f"{url}/allocations", headers=staff, json={"investor_id": sent[0], "amount": "100000"})
    assert taken.status_code == 200, taken.text


async def test_a_506b_raise_is_not_blasted(api, make_key, engine):
    tenant, staff, deal, offering, url, people = await _raise(api, make_key, engine, investors=1, rule="506b")
    refused = await api.post(f"/api/v1/opportunities/{deal['id']}/blast", headers=staff, json={"top": 5})
    assert refused.status_code == 409 and "no general solicitation" in refused.json()["detail"]


SUBSCRIPTION_TERMS = {"memorandum_date": "2026-11-15", "governing_state": "Texas"}


async def test_a_signed_subscription_agreement_commits_its_soft_commit(api, make_key, engine):
    """Staff send a soft commit's subscription agreement from the raise; once the investor and the issuer signed
    it (the built-in signing page, over HTTP), the worker commits the soft commit through the offering's workflow.
    An investor whose accreditation lapsed in between is not committed, and their timeline says why."""
    from datetime import timedelta

    from models.accreditation import Accreditation
    from models.base import utcnow
    from models.offering import Allocation
    from models.timeline import TimelineEntry
    from tests.integration.test_signing import consent_and_sign, document_is
    from tests.integration.test_users import make_user, user_key

    tenant = f"o{uuid.uuid4().hex[:8]}"
    admin = make_key(Role.admin, tenant=tenant)
    rep = await make_user(api, admin, name="Rita Issuer", email=f"rita@{tenant}.example.com", role="staff")
    staff = user_key(engine, tenant, rep["id"], Role.staff)
    tenant, staff, deal, offering, url, (a, b, c) = await _raise(api, make_key, engine, target="300000",
                                                                 headers=(tenant, staff))
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "open"})).status_code == 200
    for investor in (a, b):
        assert (await api.post(f"{url}/allocations", headers=staff,
                               json={"investor_id": investor, "amount": "100000"})).status_code == 200
    early = await api.post(f"{url}/allocations/{a}/subscription", headers=staff, json={"terms": SUBSCRIPTION_TERMS})
    assert early.status_code == 409 and "the offering is open" in early.json()["detail"]
    assert (await api.post(f"{url}/status", headers=staff, json={"status": "active"})).status_code == 200

    missing = await api.post(f"{url}/allocations/{a}/subscription", headers=staff, json={})
    assert missing.status_code == 422, missing.text
    assert {e["field"] for e in missing.json()["errors"]} == {"terms.memorandum_date", "terms.governing_state"}
    none = await api.post(f"{url}/allocations/{c}/subscription", headers=staff, json={"terms": SUBSCRIPTION_TERMS})
    assert none.status_code == 409 and "has no soft commit" in none.json()["detail"]
    outsider = await api.post(f"{url}/allocations/nobody/subscription", headers=staff,
                              json={"terms": {**SUBSCRIPTION_TERMS, "memorandum_date": "soon"}})
    assert outsider.status_code == 422 and outsider.json()["errors"][0]["field"] == "terms.memorandum_date"

    # An agreement sent for one amount does not commit another: a changed soft commit needs a new agreement
    assert (await api.post(f"{url}/allocations", headers=staff,
                           json={"investor_id": c, "amount": "60000"})).status_code == 200
    first = (await api.post(f"{url}/allocations/{c}/subscription", headers=staff,
                            json={"terms": SUBSCRIPTION_TERMS})).json()
    assert (await api.post(f"{url}/allocations", headers=staff,
                           json={"investor_id": c, "amount": "80000"})).status_code == 200
    second = await api.post(f"{url}/allocations/{c}/subscription", headers=staff, json={"terms": SUBSCRIPTION_TERMS})
    assert second.status_code == 201 and second.json()["id"] != first["id"], second.text
    odd = await api.post(f"{url}/allocations/{c}/subscription", headers=staff,
                         json={"terms": {**SUBSCRIPTION_TERMS, "subscription_amount": "1000000"}})
    assert odd.status_code == 422  # the amount is the allocation's, not the caller's

    documents = {}
    for investor in (a, b):
        sent = await api.post(f"{url}/allocations/{investor}/subscription", headers=staff,
                              json={"terms": SUBSCRIPTION_TERMS, "expires_in": "2d"})
        assert sent.status_code == 201, sent.text
        documents[investor] = sent.json()
        again = await api.post(f"{url}/allocations/{investor}/subscription", headers=staff,
                               json={"terms": SUBSCRIPTION_TERMS})
        assert again.status_code == 200 and again.json()["id"] == sent.json()["id"]  # one out at a time
    emails = {i: (await api.get(f"/api/v1/investors/{i}", headers=staff)).json()["email"] for i in (a, b)}
    assert {(s["role"], s["email"]) for s in documents[a]["signers"]} == {
        ("subscriber", emails[a].lower()), ("issuer", rep["email"].lower())}

    async def new_link(email: str, used: set[str]) -> str:
        async def find():
            page = (await api.get("/api/v1/messages", headers=staff, params={"limit": 200})).json()
            for message in page["items"]:
                found = re.search(r"https://crm\.example\.com(/sign/\S+)", message["body"] or "")
                if message["to_address"] == email and message["template"] == "esign_invitation" and found \
                        and found.group(1) not in used:
                    return found.group(1)
            return None
        link = await eventually(find, timeout=30)
        used.add(link)
        return link

    used: set[str] = set()
    issuer = rep["email"].lower()

    def status_of(investor: str) -> str | None:
        with Session(engine) as session:
            return session.exec(select(Allocation).where(Allocation.investor_id == investor)).one().status

    await consent_and_sign(api, await new_link(emails[a].lower(), used), typed="Investor Zero")
    await consent_and_sign(api, await new_link(issuer, used), typed="Rita Issuer")  # countersigned
    await document_is(api, staff, documents[a]["id"], "completed")
    await eventually(lambda: status_of(a) == "committed", timeout=40)
    with Session(engine) as session:
        row = session.exec(select(Allocation).where(Allocation.investor_id == a)).one()
        assert row.subscription_document_id == documents[a]["id"]
        assert session.exec(select(Event).where(Event.subject_id == a, Event.name == "investor.committed")).first()

        # Delivered again (the relay's retry after a crash): A stays committed, nothing is refused
        completed = session.exec(select(Event).where(Event.name == "document.completed",
                                                     Event.subject_id == deal["id"])).one()
        completed.delivered_at = None
        session.add(completed)
        session.commit()

    def redelivered():
        with Session(engine) as session:
            return session.exec(select(Event.delivered_at).where(Event.name == "document.completed",
                                                                 Event.subject_id == deal["id"])).one()
    await eventually(redelivered, timeout=30)
    await asyncio.sleep(1)
    with Session(engine) as session:
        assert status_of(a) == "committed"
        assert not session.exec(select(TimelineEntry).where(TimelineEntry.investor_id == a,
                                                            TimelineEntry.kind == "investor.commit_refused")).all()
        assert len(session.exec(select(Event).where(Event.subject_id == a,
                                                    Event.name == "investor.committed")).all()) == 1
        letter = session.exec(select(Accreditation).where(Accreditation.investor_id == b)).one()
        letter.expires_at = utcnow() - timedelta(minutes=1)  # B's letter lapses before B's agreement is signed
        session.add(letter)
        session.commit()
    await consent_and_sign(api, await new_link(emails[b].lower(), used), typed="Investor One")
    await consent_and_sign(api, await new_link(issuer, used), typed="Rita Issuer")
    await document_is(api, staff, documents[b]["id"], "completed")

    def refused():
        with Session(engine) as session:
            return session.exec(select(TimelineEntry).where(TimelineEntry.investor_id == b,
                                                            TimelineEntry.kind == "investor.commit_refused")).first()
    entry = await eventually(refused, timeout=40)
    assert "expired" in entry.summary and status_of(b) == "soft_commit"
