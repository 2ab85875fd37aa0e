"""The dashboard in headless Chromium over the whole stack: the last 30 days by default (empty: it says what to do),
then March 2026 chosen in the date form, where the book of tests/integration/test_dashboard_numbers.py shows its
numbers in the charts and their tables; a range the API refuses shown at its field. Checked with axe-core and
photographed."""

from __future__ import annotations

from playwright.async_api import expect

from tests.browser.conftest import assert_accessible, screenshot
from tests.integration.test_console_sign_in import staff
from tests.integration.test_dashboard_numbers import Book, seed


async def test_the_dashboard_charts_a_chosen_range(open_tab, engine):
    rep = staff(engine)
    book = Book(engine, rep.tenant_id)
    seed(book)
    try:
        tab = await open_tab(rep)
        page = tab.page
        await page.get_by_role("link", name="Dashboard").click()
        await expect(page.get_by_role("heading", name="Dashboard", level=1)).to_be_visible()
        # the last 30 days hold nothing of the book (it is March 2026); the open pipeline is now, whatever the days
        await expect(page.get_by_text("No lead in this range: widen the dates or add leads.").first).to_be_visible()
        await expect(page.locator("tr[data-stage='disposition:marketing']")).to_contain_text("$140,000")

        await page.get_by_label("From").fill("2026-03-01")
        await page.get_by_label("To (included)").fill("2026-03-31")
        await page.get_by_role("button", name="Show").click()
        await page.wait_for_url("**/app/dashboard?from=2026-03-01&to=2026-03-31")

        funnel = page.get_by_role("table", name="Funnel by source")
        await expect(funnel.locator("tr[data-source=web_form] td")).to_have_text(["4", "3", "2", "1", "1"])
        await expect(funnel.locator("tr[data-source=all] td")).to_have_text(["7", "5", "3", "2", "1"])
        await expect(page.get_by_role("img", name="Funnel of web form")).to_be_visible()
        speed = page.get_by_role("table", name="Speed to lead")
        await expect(speed.locator("tr[data-source=web_form] td").first).to_have_text("10m")
        await expect(speed.locator("tr[data-source=all] td")).to_have_text(["2m", "5", "2"])
        profit = page.get_by_role("img", name="Gross profit of the deals won, by source")
        await expect(profit).to_contain_text("$63,500")
        conversion = page.get_by_role("table", name="Conversion and gross profit by source")
        await expect(conversion.locator("tr[data-source=web_form]")).to_contain_text("25 %")
        await expect(conversion.locator("tr[data-source=all] td").last).to_have_text("$63,500")
        await expect(page.get_by_text("1 won deal without a gross profit")).to_be_visible()
        messages = page.get_by_role("table", name="Messages")
        await expect(messages.locator("tr[data-channel=sms] td")).to_have_text(["3", "2", "1", "1"])
        await expect(page.get_by_role("img", name="Messages by sms")).to_contain_text("opted out")
        pipeline = page.get_by_role("img", name="Open acquisition deals' value by stage")
        await expect(pipeline).to_contain_text("$120,000 · 2")
        await assert_accessible(page)
        await screenshot(page, "dashboard")

        # a range the API refuses is said at its field, and the page keeps what was typed
        await page.get_by_label("From").fill("2026-04-01")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#from-error")).to_contain_text("is after to")
        await expect(page.get_by_label("From")).to_have_value("2026-04-01")
        await expect(page.get_by_label("From")).to_have_attribute("aria-invalid", "true")
        await assert_accessible(page)
        assert tab.errors == [] and tab.refused == []
    finally:
        book.remove()
