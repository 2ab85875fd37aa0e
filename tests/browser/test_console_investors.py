"""Investor relations in headless Chromium over the whole stack: the investor list's filters, an investor's page
(buy box, accreditation with its expiry and what it allows, allocations in a raise, a message previewed and sent,
a passed investor reopened), and the inbox: replies by SMS arriving live from the Twilio webhook with their intent,
filtered by intent, answered from a template and corrected. Every page checked with axe-core and photographed."""

from __future__ import annotations

import re
import uuid

from playwright.async_api import expect
from sqlmodel import Session, select
from twilio.request_validator import RequestValidator

from models.investor import Investor
from models.message import Message
from tests.browser.conftest import assert_accessible, screenshot
from tests.browser.test_console import _api
from tests.conftest import eventually, set_tenant, toll_free, zone_at_local_hour
from tests.integration.test_console_sign_in import staff


async def test_investor_relations_works_the_list_and_an_investors_page(open_tab, engine, console):
    rep = staff(engine)
    set_tenant(engine, rep.tenant_id, timezone=zone_at_local_hour(12), send_window_days="daily")
    async with _api(console, engine, rep) as api:
        ada = (await api.post("/api/v1/investors", json={
            "name": "Ada Whitfield", "company": "Whitfield Capital", "email": f"ada.{uuid.uuid4().hex[:6]}@example.com",
            "preferences": {"markets": ["TX"], "strategies": ["flip"], "target_return": "0.12"}})).json()
        assert (await api.patch(f"/api/v1/investors/{ada['id']}", json={
            "check_min": "50000", "check_max": "250000", "entity_type": "llc"})).status_code == 200
        letter = await api.post(f"/api/v1/investors/{ada['id']}/accreditations", json={
            "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "CPA letter of 2026-11-30"})
        assert letter.status_code == 201, letter.text
        ben = (await api.post("/api/v1/investors", json={
            "name": "Ben Ortiz", "phone": toll_free(), "preferences": {"markets": ["GA"]}})).json()
        assert (await api.post(f"/api/v1/investors/{ben['id']}/events/investor.passed", json={})).status_code == 202
        deal = (await api.post("/api/v1/opportunities", json={"title": "12 Fund Oak"})).json()
        offering = (await api.post(f"/api/v1/opportunities/{deal['id']}/offerings", json={
            "target_amount": "300000", "minimum_investment": "50000", "rule": "506c"})).json()

        async def opened():  # once the relay has started the offering's workflow
            moved = await api.post(f"/api/v1/offerings/{offering['id']}/status", json={"status": "open"})
            return moved.status_code == 200
        await eventually(opened, timeout=30, interval=0.5)
        soft = await api.post(f"/api/v1/offerings/{offering['id']}/allocations",
                              json={"investor_id": ada["id"], "amount": "100000"})
        assert soft.status_code == 200, soft.text

    tab = await open_tab(rep)
    page = tab.page
    await page.get_by_role("link", name="Investors").click()
    rows = page.locator("table[aria-label=Investors] tbody tr")
    await expect(rows).to_have_count(2)
    await page.get_by_label("Market").fill("tx")
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ada Whitfield")
    await expect(rows.first).to_contain_text("$50,000–$250,000")
    await assert_accessible(page)
    await page.goto("/app/investors")
    await page.get_by_label("Accreditation ends").select_option("90")  # Ada's letter: 90 days
    await page.get_by_role("button", name="Apply").click()
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ada Whitfield")
    await page.goto("/app/investors?ends=30")
    await expect(page.get_by_text("No investor matches these filters")).to_be_visible()
    await page.goto("/app/investors?status=passed")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ben Ortiz")
    await page.goto("/app/investors?check=10000")  # below Ada's minimum; Ben set no limits
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Ben Ortiz")
    await page.goto("/app/investors?q=nobody-by-this-name")
    await expect(page.get_by_text("No investor matches these filters")).to_be_visible()
    for odd in ("lots", "NaN", "-5", "1e99"):
        await page.goto(f"/app/investors?check={odd}")
        await expect(page.get_by_text("check is an amount in dollars")).to_be_visible()
    await page.goto("/app/investors")
    await screenshot(page, "investors")

    await page.get_by_role("link", name="Ada Whitfield").click()
    await expect(page.get_by_role("heading", name="Ada Whitfield")).to_be_visible()
    buy_box = page.locator("section[aria-labelledby=buybox-h]")
    await expect(buy_box).to_contain_text("TX")
    await expect(buy_box).to_contain_text("12.0 % a year")
    accreditation = page.locator("section[aria-labelledby=accreditation-h]")
    await expect(accreditation).to_contain_text("third party letter")
    await expect(accreditation).to_contain_text("J. Doe, CPA")
    await expect(accreditation).to_contain_text("in 89d")  # a letter counts for 90 days
    await expect(accreditation.get_by_text("may commit")).to_have_count(2)  # 506(b) and 506(c)
    allocations = page.locator("[data-region=investor-allocations]")
    await expect(allocations).to_contain_text("12 Fund Oak")
    await expect(allocations).to_contain_text("$100,000")
    await expect(allocations).to_contain_text("soft commit")

    composer = page.locator("form.composer")
    templates = await composer.get_by_label("Template").locator("option").all_inner_texts()
    assert "investor intro (email)" in templates and not [t for t in templates if "still interested" in t]
    await composer.get_by_label("Template").select_option("investor_intro")
    await composer.get_by_role("button", name="Preview").click()
    preview = composer.locator(".preview")
    await expect(preview.locator("[data-field=text]")).to_contain_text("Hi Ada,")
    await expect(preview.locator("[data-field=to]")).to_have_text(ada["email"])
    await expect(preview.locator("[data-field=window_open]")).to_contain_text("open now")
    async with page.expect_navigation():
        await composer.get_by_role("button", name="Send").click()
    messages = page.locator("[data-region=investor-messages]")
    await expect(messages).to_contain_text("how we put private capital to work", timeout=30_000)  # the relay sent it
    await page.reload()
    await expect(page.locator("[data-region=investor-head]")).to_contain_text("contacted")
    await assert_accessible(page)
    await screenshot(page, "investor")

    # A passed investor is reopened from their page.
    await page.goto(f"/app/investors/{ben['id']}")
    await expect(page.locator("section[aria-labelledby=accreditation-h]")).to_contain_text("may not commit")
    await page.get_by_label("Reason (optional)").fill("New fund, new terms")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Reopen").click()
    await expect(page.locator("[data-region=investor-head]")).to_contain_text("engaged")
    await expect(page.locator("[data-region=timeline]")).to_contain_text("New fund, new terms")

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto(f"/app/investors/{ada['id']}")
    overflow = await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the investor page is {overflow}px wider than the phone"
    await assert_accessible(page)
    assert tab.refused == [] and tab.errors == []


async def _text_in(console_settings, console: str, form: dict[str, str]) -> None:
    """An inbound SMS as Twilio posts it: signed with the account's token over the URL it calls."""
    import httpx

    path = "/api/v1/webhooks/twilio/sms"
    signature = RequestValidator(console_settings.twilio_auth_token).compute_signature(
        f"{console_settings.effective_public_url}{path}", form)
    async with httpx.AsyncClient(base_url=console, timeout=30) as client:
        answer = await client.post(path, data=form, headers={"X-Twilio-Signature": signature})
    assert answer.status_code == 200, answer.text


async def test_the_inbox_shows_replies_live_with_their_intent_and_answers_them(open_tab, engine, console,
                                                                             console_settings):
    rep = staff(engine)
    number = toll_free()
    set_tenant(engine, rep.tenant_id, sms_from=number, timezone=zone_at_local_hour(12), send_window_days="daily")
    async with _api(console, engine, rep) as api:
        lead = (await api.post("/api/v1/leads", json={"first_name": "Rosa", "last_name": "Diaz", "phone": toll_free(),
                                                       "source": "direct_mail"})).json()
        investor = (await api.post("/api/v1/investors", json={"name": "Dana Whitfield", "phone": toll_free()})).json()
    tab = await open_tab(rep)
    page = tab.page
    await page.get_by_role("link", name="Inbox").click()
    await expect(page.get_by_text("No reply yet")).to_be_visible()
    await page.evaluate("window.sameDocument = 'yes'")

    await _text_in(console_settings, console, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": lead["phone"],
                                               "To": number, "Body": "How much would you pay for it?"})
    replies = page.locator("[data-region=inbox] li.reply")
    await expect(replies).to_have_count(1, timeout=20_000)  # live: the reply's event reached the open page
    await expect(replies.first).to_contain_text("Rosa Diaz")
    await expect(replies.first).to_contain_text("asks offer")
    await _text_in(console_settings, console, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": investor["phone"],
                                               "To": number, "Body": "Send me the numbers on the next deal"})
    await expect(replies).to_have_count(2, timeout=20_000)
    await expect(replies.first).to_contain_text("Dana Whitfield")  # newest first
    assert await page.evaluate("window.sameDocument") == "yes"
    # The composers the refresh rebuilt still offer only the templates of the reply's channel, for an investor.
    await replies.first.get_by_text("Reply from a template").click()
    offered = await replies.first.get_by_label("Template", exact=True).locator("option:not([hidden])").all_inner_texts()
    assert offered and all("(sms)" in t for t in offered) and "investor follow up (sms)" in offered, offered
    await assert_accessible(page)
    await screenshot(page, "inbox")

    # The investor's reply read as something else: corrected in one click (the API records who said so).
    dana = replies.filter(has_text="Dana Whitfield")
    await dana.get_by_label("Means").select_option("call_later")
    async with page.expect_navigation():
        await dana.get_by_role("button", name="Correct").click()
    await expect(replies.filter(has_text="Dana Whitfield")).to_contain_text("call later (corrected)")

    # Filtered by intent, then answered from a template: previewed for the lead, sent by SMS as it came in.
    await page.get_by_label("Intent").select_option("asks_offer")
    await page.get_by_role("button", name="Apply").click()
    await expect(replies).to_have_count(1)
    rosa = replies.first
    await rosa.get_by_text("Reply from a template").click()
    templates = await rosa.get_by_label("Template", exact=True).locator("option:not([hidden])").all_inner_texts()
    assert templates and all("(sms)" in t for t in templates) and "offer follow up (sms)" in templates
    await rosa.get_by_label("Template", exact=True).select_option("offer_follow_up")
    await rosa.get_by_role("button", name="Preview").click()
    await expect(rosa.locator(".preview [data-field=to]")).to_have_text(lead["phone"])
    await expect(rosa.locator(".preview [data-field=text]")).to_contain_text("Rosa")
    async with page.expect_navigation():
        await rosa.get_by_role("button", name="Send").click()

    def answered():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.lead_id == lead["id"], Message.direction == "outbound",
                                                      Message.template == "offer_follow_up")).all()
    sent = await eventually(answered, timeout=30)
    assert len(sent) == 1 and sent[0].channel == "sms" and sent[0].to_address == lead["phone"]
    with Session(engine) as session:
        assert session.get(Investor, investor["id"]).status == "engaged"  # the reply engaged the investor

    await page.set_viewport_size({"width": 390, "height": 844})
    await page.goto("/app/inbox")
    overflow = await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
    assert overflow <= 1, f"the inbox is {overflow}px wider than the phone"
    await assert_accessible(page)
    assert tab.refused == [] and tab.errors == []


async def test_a_reply_to_a_blast_becomes_a_soft_commit_from_the_deal_page(open_tab, engine, console,
                                                                            console_settings):
    rep = staff(engine)
    number = toll_free()
    set_tenant(engine, rep.tenant_id, sms_from=number, timezone=zone_at_local_hour(12), send_window_days="daily")
    async with _api(console, engine, rep) as api:
        investor = (await api.post("/api/v1/investors", json={"name": "Cleo Park", "phone": toll_free(),
                                                              "accredited": True})).json()
        assert (await api.post(f"/api/v1/investors/{investor['id']}/accreditations", json={
            "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "letter"})).status_code == 201
        deal = (await api.post("/api/v1/opportunities", json={"title": "7 Blast Lane"})).json()
        offering = (await api.post(f"/api/v1/opportunities/{deal['id']}/offerings", json={
            "target_amount": "400000", "minimum_investment": "25000", "rule": "506c"})).json()

        async def opened():
            moved = await api.post(f"/api/v1/offerings/{offering['id']}/status", json={"status": "open"})
            return moved.status_code == 200
        await eventually(opened, timeout=30, interval=0.5)
        await api.post(f"/api/v1/opportunities/{deal['id']}/matches", json={})
    tab = await open_tab(rep)
    page = tab.page
    await page.goto(f"/app/deals/{deal['id']}")
    # The blast from the deal's matches: by SMS to the best one.
    blast = page.get_by_role("form", name="Blast the deal to its best matches")
    await blast.get_by_label("Blast to the best").fill("1")
    await blast.get_by_label("by").select_option("sms")
    async with page.expect_navigation():
        await blast.get_by_role("button", name="Blast the deal").click()

    def blasted():
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.investor_id == investor["id"],
                                                      Message.direction == "outbound")).first()
    await eventually(blasted, timeout=30)
    await _text_in(console_settings, console, {"MessageSid": f"SM{uuid.uuid4().hex}", "From": investor["phone"],
                                               "To": number, "Body": "I'm in for 50k, send the docs"})
    await page.reload()
    replies = page.locator("[data-region=deal-replies]")
    await expect(replies).to_contain_text("Cleo Park")
    await expect(replies).to_contain_text("I'm in for 50k")
    await replies.get_by_label("Soft commit ($)").fill("10000")  # under the minimum: the workflow says so
    await replies.get_by_role("button", name="Record in 7 Blast Lane").click()
    await expect(replies.locator("[data-form-error]")).to_contain_text("the minimum investment is 25,000.00")
    await replies.get_by_label("Soft commit ($)").fill("50000")
    async with page.expect_navigation():
        await replies.get_by_role("button", name="Record in 7 Blast Lane").click()
    allocations = page.locator("[data-region=deal-allocations]")
    await expect(allocations).to_contain_text("Cleo Park")
    await expect(allocations).to_contain_text("$50,000")
    await expect(page.locator("[data-region=deal-replies]")).to_contain_text("In 7 Blast Lane already")
    await assert_accessible(page)
    assert tab.refused == [] and tab.errors == []


async def test_a_soft_commit_s_subscription_agreement_is_sent_from_the_deal_page(open_tab, engine, console):
    rep = staff(engine)
    async with _api(console, engine, rep) as api:
        investor = (await api.post("/api/v1/investors", json={"name": "Dora Lee", "accredited": True,
                                                              "email": f"dora.{uuid.uuid4().hex[:6]}@example.com"})).json()
        assert (await api.post(f"/api/v1/investors/{investor['id']}/accreditations", json={
            "method": "third_party_letter", "verifier": "J. Doe, CPA", "evidence": "letter"})).status_code == 201
        deal = (await api.post("/api/v1/opportunities", json={"title": "9 Signing Row", "assignee": "me"})).json()
        offering = (await api.post(f"/api/v1/opportunities/{deal['id']}/offerings", json={
            "target_amount": "400000", "minimum_investment": "25000", "rule": "506c"})).json()

        async def moved(status: str) -> bool:
            return (await api.post(f"/api/v1/offerings/{offering['id']}/status",
                                   json={"status": status})).status_code == 200
        await eventually(lambda: moved("open"), timeout=30, interval=0.5)
        assert (await api.post(f"/api/v1/offerings/{offering['id']}/allocations",
                               json={"investor_id": investor["id"], "amount": "75000"})).status_code == 200
        assert await moved("active")
    tab = await open_tab(rep)
    page = tab.page
    await page.goto(f"/app/deals/{deal['id']}")
    allocations = page.locator("[data-region=deal-allocations]")
    await allocations.get_by_text("Send for signature").click()
    form = page.get_by_role("form", name="Subscription agreement for Dora Lee")
    await form.get_by_label("Memorandum dated").fill("2026-11-15")
    await form.get_by_label("Governing law (state)").fill("Texas")
    await assert_accessible(page)
    async with page.expect_navigation():
        await form.get_by_role("button", name="Send to Dora Lee").click()
    await expect(allocations.get_by_role("link", name=re.compile(r"^(draft|sent)$"))).to_be_visible(timeout=20_000)
    await expect(allocations.get_by_text("Send for signature")).to_have_count(0)
    with Session(engine) as session:
        from models.document import Document
        document = session.exec(select(Document).where(Document.opportunity_id == deal["id"])).one()
        assert document.kind == "subscription_agreement"
    assert tab.refused == [] and tab.errors == []
