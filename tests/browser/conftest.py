"""A real headless Chromium (Debian's `chromium`, driven by Playwright without its own download) and the API served
by uvicorn on a free port. The browser reaches 127.0.0.1 only: every other request is refused and recorded, as on
a machine without the internet."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from urllib.parse import urlsplit

import pytest

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
