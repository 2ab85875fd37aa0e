"""The staff console in headless Chromium over the whole stack (uvicorn, the session's database, Temporal, the
worker): a rep signs in, works call next, filters leads, works a lead (status, note, convert), drags deals across
the board — one move accepted, refused ones snapping back with every reason — and signs out; CSRF and roles are
the API's. Every page is checked with axe-core and photographed for docs/console/."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import httpx
from playwright.async_api import expect
from sqlmodel import Session, select

from api.security import create_api_key
from models.base import utcnow
from models.lead import Lead
from models.message import Message
from models.opportunity import Opportunity
from models.task import Task
from models.timeline import TimelineEntry
from models.tenant import Role
from services.tasks import create_task
from tests.browser.conftest import assert_accessible, screenshot
from tests.conftest import eventually, insert_lead, set_tenant
from tests.integration.test_console_sign_in import staff


def _api(console: str, engine, user) -> httpx.AsyncClient:
    """The API as the user's own key (to set a scene the browser then works on)."""
    _, key = create_api_key(engine, user.tenant_id, Role(user.role), "test", user_id=user.id)
    return httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {key}"}, timeout=30)


async def _running_lead(api: httpx.AsyncClient, **fields) -> dict:
    body = {"first_name": "Maria", "last_name": "Garcia", "email": f"maria.{uuid.uuid4().hex[:6]}@example.com",
            "source": "web_form", "property_address": "4500 Oak Ridge Dr, Austin, TX 78745", **fields}
    created = await api.post("/api/v1/leads", json=body)
    assert created.status_code == 201, created.text

    async def running():
        lead = (await api.get(f"/api/v1/leads/{created.json()['id']}")).json()
        return lead if lead.get("workflow_status") == "RUNNING" else None

    return await eventually(running, timeout=30)


async def test_a_rep_signs_in_works_call_next_and_signs_out(open_tab, engine):
    rep = staff(engine)
    _, lead_id = insert_lead(engine, tenant=rep.tenant_id, first_name="Walter", last_name="White", score=0.91)
    with Session(engine, expire_on_commit=False) as session:
        call = create_task(session, tenant_id=rep.tenant_id, title="Call Walter back", lead_id=lead_id,
                           due_at=utcnow() - timedelta(hours=1), assignee=rep.id, actor="test")
        later = create_task(session, tenant_id=rep.tenant_id, title="Send comps", lead_id=lead_id,
                            due_at=utcnow() + timedelta(hours=3), assignee=rep.id, actor="test")

    tab = await open_tab()
    page = tab.page
    await page.goto("/app/leads")
    assert "/app/sign-in" in page.url  # signed out: to the sign-in page first
    await assert_accessible(page)
    await screenshot(page, "sign-in")
    await page.get_by_label("Email", exact=True).first.fill(rep.email)
    await page.get_by_label("Password").fill("not my password")
    await page.get_by_role("button", name="Sign in").click()
    await page.get_by_text("wrong email or password").wait_for()
    assert await page.get_by_label("Password").get_attribute("aria-invalid") == "true"
    await page.get_by_label("Password").fill("correct horse battery staple")
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url("**/app/leads")  # back where they were going

    await page.goto("/app")
    tasks = page.locator("section[data-region=tasks] li")
    assert await tasks.count() == 2
    assert "Call Walter back" in await tasks.nth(0).inner_text()  # the overdue one first
    assert "Walter White" in await page.locator("section[data-region=new-leads]").inner_text()
    await assert_accessible(page)
    await screenshot(page, "call-next")

    await page.locator(f"#task-{call.id}").get_by_role("button", name="Complete").click()
    await page.locator(f"#task-{call.id}").wait_for(state="detached")
    await page.locator(f"#task-{later.id}").get_by_role("button", name="Snooze 2h").click()
    await page.locator(f"#task-{later.id}").wait_for(state="detached")
    with Session(engine) as session:
        assert session.get(Task, call.id).status == "done" and session.get(Task, call.id).completed_by
        assert session.get(Task, later.id).snoozed_until is not None
    await page.reload()
    assert "No open tasks" in await page.locator("section[data-region=tasks]").inner_text()

    await page.get_by_role("link", name="Walter White").click()
    await page.wait_for_url(f"**/app/leads/{lead_id}")
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/app/sign-in")
    await page.goto(f"/app/leads/{lead_id}")
    assert "/app/sign-in" in page.url
    assert tab.refused == [] and tab.errors == []


async def test_the_lead_list_filters_sorts_and_pages(open_tab, engine):
    rep = staff(engine)
    tenant = rep.tenant_id
    for i in range(55):
        insert_lead(engine, tenant=tenant, first_name=f"Bulk{i:02d}", last_name="Seller", source="direct_mail",
                    score=0.2)
    insert_lead(engine, tenant=tenant, first_name="Hot", last_name="Lead", source="ppc", status="qualified",
                score=0.95)
    insert_lead(engine, tenant=tenant, first_name="Cold", last_name="Lead", source="ppc", status="qualified",
                score=0.1)
    tab = await open_tab(rep)
    page = tab.page
    await page.goto("/app/leads")
    rows = page.locator("table.list tbody tr")
    filters = page.get_by_role("search", name="Filter leads")
    assert await rows.count() == 50
    await page.get_by_role("link", name="Next page").click()
    assert await rows.count() == 7  # 57 in all
    await page.goto("/app/leads")
    await filters.get_by_label("Status").select_option(["qualified"])
    await filters.get_by_label("Source").select_option(["ppc"])
    await filters.get_by_label("Score from").fill("0.5")
    await filters.get_by_role("button", name="Apply").click()
    await page.wait_for_url(re.compile(r"status=qualified"))
    assert await rows.count() == 1 and "Hot Lead" in await rows.first.inner_text()
    await filters.get_by_label("Score from").fill("")
    await filters.get_by_label("Sort").select_option("-score")
    await filters.get_by_role("button", name="Apply").click()
    await page.wait_for_url(re.compile(r"sort=-score"))
    names = [await rows.nth(i).get_by_role("link").inner_text() for i in range(await rows.count())]
    assert names == ["Hot Lead", "Cold Lead"]
    await filters.get_by_label("Search").fill("cold")
    await filters.get_by_role("button", name="Apply").click()
    await page.wait_for_url(re.compile(r"q=cold"))
    assert await rows.count() == 1
    await filters.get_by_label("Search").fill("nobody-like-this")
    await filters.get_by_role("button", name="Apply").click()
    await page.get_by_text("No lead matches these filters").wait_for()
    # Bulk: the two ppc leads to me, in one go; then the CSV of the same filters.
    await page.goto("/app/leads?source=ppc")
    assert await rows.count() == 2
    await page.get_by_label("Select all on this page").check()
    await expect(page.locator("[data-selected]")).to_have_text("2 selected")
    bulk = page.get_by_role("form", name="Bulk actions")
    await bulk.get_by_label("Action").select_option("assign")
    await bulk.get_by_label("Assignee").select_option("me")
    async with page.expect_navigation():
        await page.get_by_role("button", name="Apply to selected").click()
    with Session(engine) as session:
        owners = session.exec(select(Lead.assigned_to).where(Lead.tenant_id == tenant, Lead.source == "ppc")).all()
        assert owners == [rep.id, rep.id]
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Export CSV").click()
    exported = (await (await download.value).path()).read_text()
    assert exported.splitlines()[0].startswith("id,first_name") and len(exported.splitlines()) == 3
    assert "Hot" in exported and "Bulk00" not in exported
    await page.get_by_label("Select Hot Lead").check()
    await bulk.get_by_label("Action").select_option("enroll")
    key = await bulk.get_by_label("Definition").input_value()  # the tenant's default first touch is published
    async with page.expect_navigation():
        await page.get_by_role("button", name="Apply to selected").click()
    with Session(engine) as session:
        hot = session.exec(select(Lead.id).where(Lead.tenant_id == tenant, Lead.first_name == "Hot")).one()
        entries = session.exec(select(TimelineEntry.summary).where(TimelineEntry.lead_id == hot,
                                                                   TimelineEntry.kind == "definition.enrolled")).all()
        assert entries == [f"Enrolled in {key} by hand"]
    await assert_accessible(page)
    await screenshot(page, "leads")
    assert tab.refused == [] and tab.errors == []


SLOW_NURTURE = """schema: dealflow/v1
key: slow-nurture
trigger: {event: lead.created}
steps:
  - {id: wait_reply, wait_for: {event: lead.replied, timeout: 30d}, save_as: reply}
  - {id: follow_up, action: create_task, with: {title: Follow up}}
"""


async def test_a_rep_works_a_lead_and_converts_it_to_a_deal(open_tab, engine, console):
    rep = staff(engine)
    # a send window open all day: the message below goes now, whatever the time of the run (at 23:36 in Austin
    # it waited for the morning and the test never saw it)
    set_tenant(engine, rep.tenant_id, send_window_days="daily", send_window_start="00:00", send_window_end="24:00")
    _, ops_key = create_api_key(engine, rep.tenant_id, Role.ops, "test")
    async with httpx.AsyncClient(base_url=console, headers={"Authorization": f"Bearer {ops_key}"}) as ops:
        saved = await ops.post("/api/v1/definitions", content=SLOW_NURTURE.encode(),
                               headers={"Content-Type": "application/yaml"})
        assert saved.status_code == 201, saved.text
        assert (await ops.post("/api/v1/definitions/slow-nurture/versions/1/publish")).status_code == 200
    async with _api(console, engine, rep) as api:
        lead = await _running_lead(api)

        async def enrolled():
            found = (await api.get(f"/api/v1/leads/{lead['id']}")).json()
            return any(r["key"] == "slow-nurture" and r["status"] == "running" for r in found["definitions"])

        await eventually(enrolled, timeout=30)
    tab = await open_tab(rep)
    page = tab.page
    await page.goto(f"/app/leads/{lead['id']}")
    assert "4500 Oak Ridge Dr" in await page.locator("#property-h + p").inner_text()
    await assert_accessible(page)

    # Out of the running cadence: the run ends, and the timeline says who removed the lead.
    run = page.locator("#workflow-h ~ ul li", has_text="slow-nurture")
    await expect(run).to_contain_text("at wait_reply")  # its current step, asked of its workflow
    await run.get_by_role("button", name="Remove from slow-nurture").click()

    async def removed():
        await page.reload()
        return ("definition.removed" in await page.locator("[data-region=timeline]").inner_text()
                and await page.get_by_role("button", name="Remove from slow-nurture").count() == 0)

    await eventually(removed, timeout=30, interval=0.5)


    await page.get_by_label("Status", exact=True).select_option("contacted")
    await page.get_by_role("button", name="Set status").click()
    await page.locator(".title-row .badge", has_text="contacted").wait_for()
    await page.get_by_label("Note").fill("Seller wants to close before March; roof is 20 years old.")
    await page.get_by_role("button", name="Add note").click()

    async def noted():
        await page.reload()
        return "roof is 20 years old" in await page.locator("[data-region=timeline]").inner_text()

    await eventually(noted, timeout=20, interval=0.5)
    timeline = await page.locator("[data-region=timeline]").inner_text()
    assert "lead.status_changed" in timeline and "Status new → contacted" in timeline

    # A message from a template: previewed (rendered for this lead, with consent and quiet hours), then sent.
    composer = page.locator("form.composer")
    await composer.get_by_label("Channel").select_option("email")
    await composer.get_by_label("Template").select_option("still_interested")
    await composer.get_by_role("button", name="Preview").click()
    preview = composer.locator(".preview")
    await expect(preview).to_be_visible()
    await expect(preview.locator("[data-field=to]")).to_have_text(lead["email"])
    await expect(preview.locator("[data-field=text]")).to_contain_text("Maria")
    await expect(preview.locator("[data-field=opted_out]")).to_contain_text("may be contacted")
    await expect(preview.locator("[data-field=summary]")).to_contain_text("send window opens")
    await screenshot(page, "lead")
    async with page.expect_navigation():  # (the page reloads once the API took the send)
        await composer.get_by_role("button", name="Send").click()

    def sent() -> bool:
        with Session(engine) as session:
            return session.exec(select(Message).where(Message.lead_id == lead["id"],
                                                      Message.template == "still_interested")).first() is not None

    await eventually(sent, timeout=30)


    # A refusal is shown in the form, next to its field (here the API's 422 on a price past its 14 digits).
    await page.get_by_label("Asking price ($)").fill("1000000000000000")
    await page.get_by_role("button", name="Convert").click()
    await expect(page.locator("[data-error-for=asking_price]")).not_to_be_empty()
    assert await page.get_by_label("Asking price ($)").get_attribute("aria-invalid") == "true"
    await page.get_by_label("Asking price ($)").fill("180000")
    await page.get_by_role("button", name="Convert").click()
    await page.wait_for_url("**/app/deals/**")
    assert "$180,000" in await page.locator("#numbers-h + dl").inner_text()
    await assert_accessible(page)
    with Session(engine) as session:
        deal = session.exec(select(Opportunity).where(Opportunity.lead_id == lead["id"])).one()
        assert session.get(Lead, lead["id"]).status == "converted" or deal.stage == "new"
    assert tab.refused == [] and tab.errors == []


async def test_board_moves_a_dragged_deal_and_snaps_a_refused_one_back_with_every_reason(open_tab, engine, console):
    rep = staff(engine)
    async with _api(console, engine, rep) as api:
        made = await api.post("/api/v1/opportunities", json={"title": "12 Elm St", "pipeline": "acquisition",
                                                            "assignee": "me", "asking_price": "150000"})
        assert made.status_code == 201, made.text
        deal_id = made.json()["id"]

        async def running():
            moved = await api.post(f"/api/v1/opportunities/{deal_id}/stage", json={"stage": "nowhere"})
            return moved.status_code == 409 and "not running" not in moved.text

        await eventually(running, timeout=30, interval=0.3)
    tab = await open_tab(rep)
    page = tab.page
    await page.goto("/app/board")
    card = page.locator(f"#deal-{deal_id}")
    assert await card.get_attribute("data-stage") == "new"
    await assert_accessible(page)

    # Accepted: new -> contacted, through DealWorkflow's update.
    await card.drag_to(page.locator(".column[data-stage=contacted]"), source_position={"x": 3, "y": 3})
    await page.locator(f".column[data-stage=contacted] #deal-{deal_id}").wait_for()
    await page.wait_for_load_state("load")
    await eventually(lambda: _stage(engine, deal_id) == "contacted", timeout=20)
    await page.reload()
    card = page.locator(f"#deal-{deal_id}")
    assert await card.get_attribute("data-stage") == "contacted"

    # Refused: offer_made needs an offer price; the card snaps back and the reasons are shown.
    await card.drag_to(page.locator(".column[data-stage=offer_made]"), source_position={"x": 3, "y": 3})
    alert = page.locator("[data-board-error]")
    await expect(alert).to_contain_text("offer_made needs offer price (offer_price)")
    assert await page.locator(f".column[data-stage=contacted] #deal-{deal_id}").count() == 1
    # closed_lost without a reason: refused too, and says so.
    await card.drag_to(page.locator(".column[data-stage=closed_lost]"), source_position={"x": 3, "y": 3})
    await expect(alert).to_contain_text("closed_lost needs a reason")
    assert _stage(engine, deal_id) == "contacted"
    await screenshot(page, "board")

    # The keyboard way: the card's stage menu, with a reason.
    await card.get_by_label("Move to").select_option("closed_lost")
    await card.get_by_label("Reason").fill("Seller listed with an agent")
    await card.get_by_role("button", name="Move").click()
    await eventually(lambda: _stage(engine, deal_id) == "closed_lost", timeout=20)
    await page.locator(f".column[data-stage=closed_lost] #deal-{deal_id}").wait_for()
    assert tab.refused == []


def _stage(engine, deal_id: str) -> str:
    with Session(engine) as session:
        return session.get(Opportunity, deal_id).stage


async def test_csrf_and_roles_are_the_apis_in_the_browser(open_tab, engine):
    rep = staff(engine)
    reader = staff(engine, Role.readonly, tenant=rep.tenant_id)
    _, lead_id = insert_lead(engine, tenant=rep.tenant_id, first_name="Jesse", last_name="Pink")

    tab = await open_tab(rep)
    page = tab.page
    await page.goto(f"/app/leads/{lead_id}")
    await page.evaluate("document.querySelector('meta[name=csrf-token]').content = 'forged'")
    await page.get_by_role("button", name="Assign to me").click()
    await page.get_by_text("missing or wrong CSRF token").wait_for()
    with Session(engine) as session:
        assert session.get(Lead, lead_id).assigned_to is None  # nothing changed

    tab = await open_tab(reader)
    page = tab.page
    await page.goto(f"/app/leads/{lead_id}")
    assert await page.get_by_role("button", name="Set status").count() == 0  # no control the API would refuse
    status = await page.evaluate("""async () => {
        const token = document.querySelector('meta[name=csrf-token]').content;
        const r = await fetch(location.pathname.replace('/app/', '/api/v1/') + '/assign', {method: 'POST',
            headers: {'Content-Type': 'application/json', 'X-CSRF-Token': token}, body: JSON.stringify({assignee: 'me'})});
        return [r.status, (await r.json()).detail];
    }""")
    assert status[0] == 403 and "readonly" in status[1]
    await assert_accessible(page)


async def test_pages_follow_the_event_path_without_a_reload(open_tab, engine, console):
    """A note added elsewhere shows on the open lead page, a deal moved by someone else crosses the open board, and a
    new lead appears in call next — each page still the same document (no reload)."""
    rep = staff(engine)
    async with _api(console, engine, rep) as api:
        lead = await _running_lead(api, first_name="Live")
        made = await api.post("/api/v1/opportunities", json={"title": "9 Live Oak", "pipeline": "acquisition",
                                                            "assignee": "me"})
        deal_id = made.json()["id"]
        tab = await open_tab(rep)
        page = tab.page

        await page.goto(f"/app/leads/{lead['id']}")
        await page.evaluate("window.sameDocument = 'yes'")
        signal = await api.post(f"/api/v1/workflows/{lead['workflow_id']}/signals/note",
                                json={"note": "Called from the truck: wants $210k"})
        assert signal.status_code == 202, signal.text
        await expect(page.locator("[data-region=timeline]")).to_contain_text("wants $210k", timeout=20_000)
        assert await page.evaluate("window.sameDocument") == "yes"

        await page.goto("/app/board")
        await page.evaluate("window.sameDocument = 'yes'")

        async def moved():
            answer = await api.post(f"/api/v1/opportunities/{deal_id}/stage", json={"stage": "contacted"})
            return answer.status_code == 200

        await eventually(moved, timeout=30, interval=0.5)  # (once its DealWorkflow runs)
        await expect(page.locator(f".column[data-stage=contacted] #deal-{deal_id}")).to_be_visible(timeout=20_000)
        assert await page.evaluate("window.sameDocument") == "yes"

        await page.goto("/app")
        await page.evaluate("window.sameDocument = 'yes'")
        # A manager hands the rep a task: its notification's event is the rep's, and call next shows it.
        manager = staff(engine, Role.manager, tenant=rep.tenant_id)
        async with _api(console, engine, manager) as boss:
            task = await boss.post("/api/v1/tasks", json={"title": "Call the Live seller today", "assignee": rep.id,
                                                          "lead_id": lead["id"]})
            assert task.status_code == 201, task.text
        await expect(page.locator("section[data-region=tasks]")).to_contain_text("Call the Live seller today",
                                                                                  timeout=20_000)
        assert await page.evaluate("window.sameDocument") == "yes"
        assert tab.errors == []


async def test_a_rep_sends_the_purchase_agreement_for_signature_from_the_deal_page(open_tab, engine, console):
    from tests.integration.test_signing import make_deal

    tenant, deal_id, seller_email = make_deal(engine)
    rep = staff(engine, tenant=tenant)
    tab = await open_tab(rep)
    page = tab.page
    await page.goto(f"/app/deals/{deal_id}")
    await expect(page.get_by_text("No document yet")).to_be_visible()
    # Expected return and time to close: the median with its p10-p90 interval, the chances by 30/60/90 days, and
    # which model says so (a new tenant's: the cold start on the synthetic book)
    forecast = page.locator("[data-region=deal-forecast]")
    await expect(forecast.locator("[data-forecast=profit]")).to_contain_text(re.compile(r"\(80 % interval -?\$[\d,]+ to -?\$[\d,]+\)"))
    await expect(forecast.locator("[data-forecast=roi]")).to_contain_text(re.compile(r"80 % interval -?[\d.]+ % to"))
    for days in ("30", "60", "90"):
        await expect(forecast.locator(f"[data-forecast=close-{days}]")).to_contain_text(re.compile(r"^\d+ % chance$"))
    await expect(page.locator("[data-forecast=basis]")).to_contain_text("synthetic book")
    form = page.locator("form[aria-labelledby=send-h]")
    assert await form.get_by_label("Seller's email").input_value() == seller_email  # from the seller's lead
    await form.get_by_label("Document").select_option("purchase_agreement")
    await form.get_by_role("button", name="Send for signature").click()
    # The template prints terms the form did not give: refused, saying which.
    await expect(form.locator("[data-form-error]")).to_contain_text("closing_date")
    await form.get_by_label("Closing date").fill("2027-01-15")
    await form.get_by_label("Earnest money ($)").fill("2500")
    await form.get_by_label("Title company").fill("Lone Star Title")
    await form.get_by_label("Inspection days").fill("10")
    await form.get_by_label("Signers have (e.g. 14d)").fill("3d")
    async with page.expect_navigation():
        await form.get_by_role("button", name="Send for signature").click()
    documents = page.locator("[data-region=deal-documents]")
    await expect(documents).to_contain_text("Purchase and Sale Agreement")
    await expect(documents).to_contain_text("Maria Garcia (seller)")
    await assert_accessible(page)
    await screenshot(page, "deal")

    pdf = await page.context.request.get(await documents.get_by_role("link", name="PDF").get_attribute("href"))
    assert pdf.status == 200 and pdf.headers["content-type"] == "application/pdf" and (await pdf.body())[:5] == b"%PDF-"

    # The signing workflow sends it (the relay starts it from the event committed with the request): the seller
    # is invited, live on the page; then the rep voids it.
    await expect(documents).to_contain_text("sent", timeout=30_000)
    await documents.get_by_role("button", name="Void Purchase and Sale Agreement").click()
    await expect(documents).to_contain_text("voided", timeout=30_000)
    assert tab.refused == [] and tab.errors == []


async def test_every_page_reads_at_a_phone_width(open_tab, engine, console):
    """390×844: nothing wider than the screen (no sideways scrolling of the page), every page still accessible."""
    rep = staff(engine)
    _, lead_id = insert_lead(engine, tenant=rep.tenant_id, first_name="Phone", last_name="Reader",
                             email=f"a.very.long.address.{uuid.uuid4().hex}@example-brokerage.com", score=0.5)
    async with _api(console, engine, rep) as api:
        made = await api.post("/api/v1/opportunities", json={"title": "1 Small Screen Way", "pipeline": "acquisition",
                                                            "assignee": "me", "asking_price": "99000"})
        deal_id = made.json()["id"]
    tab = await open_tab(rep, width=390, height=844)
    page = tab.page
    for path, name in (("/app", None), ("/app/leads", None), (f"/app/leads/{lead_id}", "lead-phone"),
                       ("/app/board", "board-phone"), (f"/app/deals/{deal_id}", None), ("/app/investors", None),
                       ("/app/inbox", None), ("/app/dashboard", None)):
        await page.goto(path)
        overflow = await page.evaluate("document.scrollingElement.scrollWidth - window.innerWidth")
        assert overflow <= 1, f"{path} is {overflow}px wider than the phone"
        await assert_accessible(page)
        if name:
            await screenshot(page, name)
