"""The Definitions pages in headless Chromium over the whole stack: ops write a definition in the editor, which
marks a mistake at its line and column while they type (the API's own checker), try it ("Test": the dry run's path
on a simulated clock), save it as a version and publish it — the API records both — and see who is enrolled now;
staff read the same pages without a control to change them, and the API refuses them if they try. Every page is
checked with axe-core and photographed for docs/console/."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.async_api import expect
from sqlmodel import Session, select

from api.security import create_api_key
from models.definition import WorkflowDefinition, WorkflowExecution
from models.audit import AuditLog
from models.tenant import Role
from tests.browser.conftest import assert_accessible, screenshot
from tests.conftest import eventually
from tests.integration.test_console_sign_in import staff

HEAD = """schema: dealflow/v1
key: {key}
version: 1
trigger: {{event: lead.created, when: 'lead.first_name == "Zed"'}}
enrollment:
  exit_when: [{{event: lead.opted_out}}]
steps:
  - {{id: welcome, action: send_email, with: {{template: welcome}}}}
"""
WAIT = "  - {id: wait_reply, wait_for: {event: lead.replied, timeout: 2d}, save_as: reply}\n"
NUDGE = "  - {id: nudge, if: 'reply == null', action: send_sms, with: {template: nudge_1}}\n"


async def test_ops_check_as_they_type_test_save_publish_and_see_who_is_enrolled(open_tab, engine, tmp_path):
    ops = staff(engine, role=Role.ops)
    key = f"zed-welcome-{uuid.uuid4().hex[:4]}"
    tab = await open_tab(ops)
    page = tab.page

    await page.get_by_role("link", name="Definitions").click()
    await page.wait_for_url("**/app/definitions")
    await expect(page.locator("table.defs")).to_contain_text("speed-to-lead")  # every tenant starts with it
    await assert_accessible(page)
    await screenshot(page, "definitions")

    await page.get_by_role("link", name="New definition").click()
    await page.wait_for_url("**/app/definitions/new")
    source = page.get_by_label("Definition (YAML)")
    await expect(page.locator("[data-check-status]")).to_contain_text("No problems: my-cadence v1")  # the starter
    await source.fill(HEAD.format(key=key))
    await source.press("End")
    await source.press_sequentially(WAIT.replace("2d", "2 days"), delay=5)  # typed, key by key
    problems = page.locator("[data-check-errors]")
    await expect(problems).to_contain_text(
        "line 9, column 63: '2 days' is not a duration like 30s, 15m, 2h, 3d or 1w")
    await expect(page.locator("[data-gutter] span.bad")).to_have_text(["9"])  # the line is marked
    await assert_accessible(page)
    await problems.get_by_role("button").click()  # to the mistake
    assert await source.evaluate("el => el.value.slice(0, el.selectionStart).split('\\n').length") == 9

    await source.fill(HEAD.format(key=key) + WAIT + NUDGE)
    await expect(page.locator("[data-check-status]")).to_contain_text(f"No problems: {key} v1, about a lead")
    await expect(problems).to_be_hidden()
    await expect(page.locator("[data-gutter] span.bad")).to_have_count(0)

    await page.locator("details.sample summary").click()
    await page.locator("#start-on").select_option("mon")  # the window skips Sundays: pin the day the path starts
    await page.get_by_role("button", name="Test").click()
    path = page.locator("[data-test-lines] li")
    await expect(path).to_have_count(3, timeout=30_000)
    await expect(path).to_have_text([re.compile(r"day 0 09:00\s*welcome\s*send_email welcome: sent"),
                                     re.compile(r"day 2 09:00\s*wait_reply\s*lead.replied timed out"),
                                     re.compile(r"day 2 09:00\s*nudge\s*send_sms nudge_1: sent")])
    await expect(page.locator("[data-test-summary]")).to_contain_text(re.compile(
        r"Ended completed; times in the sample's zone \(America/New_York\); day 0 is Monday, \w+ \d+, from 09:00"))

    await page.get_by_role("button", name="Save as version").click()
    await page.wait_for_url(f"**/app/definitions/{key}?version=1")
    await expect(page.locator("[data-version='1']")).to_contain_text("draft")
    await page.get_by_role("button", name="Publish v1").click()
    await expect(page.locator("[data-version='1']")).to_contain_text("published", timeout=10_000)
    with Session(engine) as session:
        row = session.exec(select(WorkflowDefinition).where(WorkflowDefinition.tenant_id == ops.tenant_id,
                                                            WorkflowDefinition.key == key)).one()
        assert row.status == "published" and row.source == HEAD.format(key=key) + WAIT + NUDGE
        actions = session.exec(select(AuditLog.action).where(AuditLog.tenant_id == ops.tenant_id,
                                                             AuditLog.entity_id == f"{key}@1")).all()
        assert sorted(actions) == ["definition.publish", "definition.save"]
    await expect(page.get_by_role("button", name=f"Retire {key}")).to_be_visible()

    # A lead the trigger matches is enrolled: it is in "enrolled now" by name, with a link to its page.
    _, api_key = create_api_key(engine, ops.tenant_id, Role.admin, "test")
    async with httpx.AsyncClient(base_url=page.url.split("/app")[0],
                                 headers={"Authorization": f"Bearer {api_key}"}, timeout=30) as api:
        created = await api.post("/api/v1/leads", json={
            "first_name": "Zed", "last_name": "Lee", "email": f"zed.{uuid.uuid4().hex[:6]}@example.com",
            "source": "referral", "property_address": "12 Elm St, Austin, TX 78745"})
        assert created.status_code == 201, created.text
    lead_id = created.json()["id"]

    def enrolled():
        with Session(engine) as session:
            return session.exec(select(WorkflowExecution).where(WorkflowExecution.definition_key == key)).first()

    await eventually(enrolled, timeout=60)
    await page.reload()
    await expect(page.locator("[data-region=enrolled]")).to_contain_text("Zed Lee")  # by name, not by id
    await expect(page.locator(".counts")).to_contain_text("Enrolled1")
    await page.locator("details.sample summary").click()
    await page.locator("#start-on").select_option("fri")  # day 2 is a Sunday: the nudge waits for Monday 08:00
    await page.get_by_role("button", name="Test").click()
    await expect(path).to_have_count(3, timeout=30_000)
    await expect(path.nth(2)).to_have_text(re.compile(r"day 3 08:00\s*nudge\s*send_sms nudge_1: sent"))
    await expect(page.locator("[data-test-summary]")).to_contain_text("day 0 is Friday")
    await assert_accessible(page)
    await screenshot(page, "definition-editor")
    await page.locator("[data-region=enrolled]").get_by_role("link", name="Zed Lee").click()
    await page.wait_for_url(f"**/app/leads/{lead_id}")

    await page.goto("/app/definitions")
    await expect(page.locator(f"tr[data-key='{key}']")).to_contain_text("v1")
    cells = page.locator(f"tr[data-key='{key}'] td.num")
    await expect(cells).to_have_text(["1", "1", "0", "0", "0"])  # enrolled, running, completed, exited, failed

    phone = (await open_tab(ops, width=390, height=844)).page
    for where, name in ((f"/app/definitions/{key}", "editor"), ("/app/definitions", "list")):
        await phone.goto(where)
        await expect(phone.locator("main h1")).to_be_visible()
        await assert_accessible(phone)
        await phone.screenshot(path=str(tmp_path / f"phone-{name}.png"), full_page=True)
    assert tab.errors == [] and tab.refused == []


async def test_staff_read_definitions_without_controls_and_the_api_refuses_them(open_tab, engine):
    rep = staff(engine)
    tab = await open_tab(rep)
    page = tab.page
    await page.goto("/app/definitions")
    await expect(page.locator("table.defs")).to_contain_text("speed-to-lead")
    await expect(page.get_by_role("link", name="New definition")).to_have_count(0)
    await assert_accessible(page)

    await page.get_by_role("link", name="speed-to-lead").click()
    await page.wait_for_url("**/app/definitions/speed-to-lead")
    await expect(page.locator("[data-version]").first).to_contain_text("published")
    for control in ("Publish", "Retire", "Save as version", "Test"):
        await expect(page.get_by_role("button", name=re.compile(control))).to_have_count(0)
    assert await page.get_by_label("Definition (YAML)", exact=False).get_attribute("readonly") is not None
    await assert_accessible(page)

    # The controls are missing, and the API would refuse them anyway (the session, its CSRF token, a staff role).
    answers = await page.evaluate("""async () => {
        const token = document.querySelector('meta[name="csrf-token"]').content;
        const post = (url, body, type) => fetch(url, {method: "POST", credentials: "same-origin", body,
            headers: {"Content-Type": type, "X-CSRF-Token": token}}).then(r => r.status);
        const source = document.getElementById("source").value;
        return [await post("/api/v1/definitions/speed-to-lead/versions/1/publish", "{}", "application/json"),
                await post("/api/v1/definitions/speed-to-lead/retire", "{}", "application/json"),
                await post("/api/v1/definitions/validate", source, "application/yaml"),
                await post("/api/v1/definitions", source, "application/yaml")];
    }""")
    assert answers == [403, 403, 403, 403]
    with Session(engine) as session:
        rows = session.exec(select(WorkflowDefinition.status).where(WorkflowDefinition.tenant_id == rep.tenant_id,
                                                                    WorkflowDefinition.key == "speed-to-lead")).all()
        assert rows == ["published"]
    assert tab.errors == []
