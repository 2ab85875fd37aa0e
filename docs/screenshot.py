"""Regenerate docs/temporal-ui-lead.png, the README's screenshot: `dealflow up` in a scratch home, the README's lead
posted, then the Temporal UI's workflow list filtered on TenantId="demo" in headless Chromium (Debian's
`chromium`, driven by Playwright).

    .venv/bin/python docs/screenshot.py [--out docs/temporal-ui-lead.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cli_startup import temporal_ui_url  # noqa: E402

LEAD = {"first_name": "Maria", "last_name": "Garcia", "email": "Maria.Garcia@Example.com", "phone": "(512) 555-0142",
        "source": "web_form", "property_address": "4500 Oak Ridge Dr, Austin, TX 78731"}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait(check, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"{what}: not within {timeout:.0f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "temporal-ui-lead.png")
    args = parser.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        raise SystemExit("chromium is not installed (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    api_port, ui_port = _free_port(), _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / ".dealflow"
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEALFLOW_")}
        env.update({"DEALFLOW_HOME": str(home), "DEALFLOW_API_PORT": str(api_port), "PYTHONPATH": str(ROOT),
                    "DEALFLOW_EMBEDDED_TEMPORAL_PORT": str(_free_port()),
                    "DEALFLOW_EMBEDDED_TEMPORAL_UI_PORT": str(ui_port)})
        up = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "up"], cwd=tmp, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            base = f"http://127.0.0.1:{api_port}"
            _wait(lambda: httpx.get(f"{base}/health", timeout=2).status_code == 200 and
                  (home / "worker.ready").exists(), "dealflow up healthy")
            headers = {"Authorization": f"Bearer {(home / 'dev-admin-key').read_text().strip()}"}
            lead = httpx.post(f"{base}/api/v1/leads", headers=headers, json=LEAD, timeout=10).json()
            _wait(lambda: httpx.get(f"{base}/api/v1/leads/{lead['id']}", headers=headers, timeout=5)
                  .json()["score"] is not None, "the lead scored")
            time.sleep(2)  # its first touch starts; visibility catches up
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1600, "height": 560}, device_scale_factor=1)
                page.goto(temporal_ui_url(f"http://127.0.0.1:{ui_port}", "default", "demo"))
                page.wait_for_selector(f"text={lead['workflow_id']}", timeout=30_000)
                page.wait_for_timeout(1000)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            up.send_signal(signal.SIGINT)
            up.wait(90)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
