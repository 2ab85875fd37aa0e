"""A real headless Chromium (Debian's `chromium`, driven by Playwright without its own download) and the API served
by uvicorn on a free port. The browser reaches 127.0.0.1 only: every other request is refused and recorded, as on
a machine without the internet."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from api.app import create_app
from core.settings import Settings
from tests.conftest import TEST_SECRET_KEY

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served_api(tmp_path_factory):
    """The app's pages over real HTTP (no lifespan: the documentation pages need neither Temporal nor the
    database)."""
    import uvicorn

    home = tmp_path_factory.mktemp("home")
    app = create_app(Settings(home=home, database_url=f"sqlite:///{home / 'crm.db'}", secret_key=TEST_SECRET_KEY))
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, lifespan="off", log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "uvicorn did not start"
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


@pytest.fixture(scope="module")
def offline_page():
    """page_factory() -> (page, refused): a page whose requests off 127.0.0.1 are refused and listed (as
    "<resource type> <url>")."""
    if CHROMIUM is None:
        # CI installs it (.ci/run) and requires these tests; a newcomer's `make test` skips them, saying why.
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("DEALFLOW_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        contexts = []

        def page_factory():
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            contexts.append(context)
            refused: list[str] = []

            def only_local(route):
                if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                    route.continue_()
                else:
                    refused.append(f"{route.request.resource_type} {route.request.url}")
                    route.abort("internetdisconnected")

            context.route("**/*", only_local)
            return context.new_page(), refused

        yield page_factory
        for context in contexts:
            context.close()
        browser.close()


# --- The console (/app) in a real browser, over the whole stack: the app under uvicorn on the session's database
# (Postgres in CI) and Temporal dev server, with the session's worker and relay running the workflows. Async
# Playwright: the worker runs on the tests' event loop, so a test awaits the browser instead of blocking it.

AXE = Path(__file__).with_name("vendor") / "axe-core-4.14.1.min.js"  # axe-core from npm, vendored (MPL-2.0)
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"


def need_chromium() -> str:
    if CHROMIUM is None:
        message = "chromium is not installed (apt-get install -y chromium)"
        if os.environ.get("DEALFLOW_REQUIRE_BROWSER"):
            pytest.fail(message)
        pytest.skip(message)
    return CHROMIUM


@pytest.fixture(scope="session")
def console_settings(settings):
    """The session's settings over plain http (their https public URL would make the cookies Secure)."""
    return settings.model_copy(update={"public_url": ""})


@pytest_asyncio.fixture(scope="session")
async def console(console_settings, worker):
    from tests.integration.stack import uvicorn_api

    with uvicorn_api(console_settings) as base:
        yield base


@pytest_asyncio.fixture(scope="session")
async def chromium():
    path = need_chromium()
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=path, headless=True, args=["--no-sandbox"])
        yield browser
        await browser.close()


class ConsolePage:
    """A browser tab of one signed-in person (or of nobody yet), its requests off 127.0.0.1 refused and listed,
    its console errors and CSP violations kept."""

    def __init__(self, page, refused: list[str], errors: list[str]) -> None:
        self.page, self.refused, self.errors = page, refused, errors


@pytest_asyncio.fixture
async def open_tab(chromium, console):
    """open_tab(user=None, password=PASSWORD, width=1280, height=800) -> ConsolePage, signed in through the form
    when a user is given."""
    contexts = []

    async def open_(user=None, password: str = "correct horse battery staple", width: int = 1280,
                    height: int = 800) -> ConsolePage:
        context = await chromium.new_context(viewport={"width": width, "height": height}, base_url=console)
        contexts.append(context)
        refused: list[str] = []
        errors: list[str] = []

        async def only_local(route):
            if urlsplit(route.request.url).hostname in ("127.0.0.1", "localhost"):
                await route.continue_()
            else:
                refused.append(f"{route.request.resource_type} {route.request.url}")
                await route.abort("internetdisconnected")

        await context.route("**/*", only_local)
        page = await context.new_page()
        # (an answer of 4xx is the browser's "Failed to load resource": refusals are part of the tests)
        page.on("console", lambda m: errors.append(m.text) if m.type == "error"
                and not m.text.startswith("Failed to load resource") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        tab = ConsolePage(page, refused, errors)
        if user is not None:
            await page.goto("/app/sign-in")
            await page.get_by_label("Email", exact=True).first.fill(user.email)
            await page.get_by_label("Password").fill(password)
            await page.get_by_role("button", name="Sign in").click()
            await page.wait_for_url(lambda url: "/app/sign-in" not in url)
        return tab

    yield open_
    for context in contexts:
        await context.close()


async def assert_accessible(page, *, exclude: tuple[str, ...] = ()) -> None:
    """axe-core (WCAG 2 A/AA rules) finds no serious or critical violation on the page as it stands."""
    await page.evaluate(AXE.read_text() + "\n;0")  # through the debugger protocol: the page's CSP stays as it is
    result = await page.evaluate("""async () => {
        const r = await axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21aa']}});
        return r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical')
            .map(v => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
    }""")
    result = [v for v in result if not any(v.startswith(rule) for rule in exclude)]
    assert result == [], f"{page.url}: " + "; ".join(result)


async def screenshot(page, name: str) -> None:
    """docs/console/<name>.png (linked from the README), the page as a person sees it."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
