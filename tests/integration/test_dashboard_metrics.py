"""Every metric the Grafana dashboard and the Prometheus alert rules name (ops/) exists in a live scrape of the
worker's Temporal SDK endpoint and of Dealflow's own metrics endpoint, after real traffic: a lead through the
API, the relay and its LeadWorkflow, a refused webhook, and an activity that fails. And the rules pass promtool
(Debian's `prometheus` package; .ci/run installs it)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML
from temporalio.worker import Worker

from api.app import create_app
from api.routes.health import read_backlog
from api.security import create_api_key
from core.db import make_engine
from core.metrics import serve
from core.settings import Settings
from core.temporal import connect, prometheus_runtime
from models.tenant import Role
from tests.integration.failing_activity import FailsOnceWorkflow, always_fails
from tests.integration.stack import free_port, own_database
from worker import build_worker, running_relay

OPS = Path(__file__).resolve().parents[2] / "ops"
NAME = re.compile(r"\b((?:dealflow|temporal)_[a-z0-9_]+)")


def _named_in_ops() -> dict[str, set[str]]:
    """metric name -> where it is named (dashboard panel titles, alert names)."""
    named: dict[str, set[str]] = {}
    dashboard = json.loads((OPS / "grafana" / "dashboards" / "dealflow.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            for name in NAME.findall(target["expr"]):
                named.setdefault(name, set()).add(f"panel {panel['title']!r}")
    rules = YAML(typ="safe").load((OPS / "prometheus" / "alerts.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            for name in NAME.findall(rule["expr"]):
                named.setdefault(name, set()).add(f"alert {rule['alert']}")
    return named


def _exposed(text: str) -> set[str]:
    """The series names a scrape offers, read from the text as Prometheus stores them (prometheus-client's parser
    adds `_total` to a counter that lacks it); a family declared without samples yet counts by its type's names."""
    names: set[str] = set()
    declared: dict[str, str] = {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(maxsplit=3)
            declared[name] = kind
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{\s]", line, maxsplit=1)[0])
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}
    for name, kind in declared.items():
        if not any(n == name or n.startswith(name + "_") for n in names):  # nothing counted yet (messages, say)
            names.update(name.removesuffix("_total") + suffix for suffix in suffixes.get(kind, ("",)))
    return names


async def _scrape(url: str) -> str:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.get(url)
    response.raise_for_status()
    return response.text


async def test_every_metric_on_the_dashboard_and_in_the_alerts_is_in_a_live_scrape(settings, database_url):
    named = _named_in_ops()
    assert len(named) >= 10, named  # the extraction found the dashboard's and the rules' metrics
    sdk_port, app_port = free_port(), free_port()
    with own_database(database_url) as url:
        own = Settings(**{**settings.model_dump(), "database_url": url,
                          "temporal_task_queue": f"dash-{uuid.uuid4().hex[:6]}"})
        engine = make_engine(url)
        # The worker's client as `dealflow worker` makes it: its Runtime serves the SDK's metrics.
        client = await connect(own, runtime=prometheus_runtime(f"127.0.0.1:{sdk_port}"))
        _, key = create_api_key(engine, f"t{uuid.uuid4().hex[:8]}", Role.staff)
        app = create_app(own, temporal_client=client, engine=engine)
        metrics = serve(f"127.0.0.1:{app_port}", backlog=lambda: read_backlog(engine))
        failing_queue = f"fails-{uuid.uuid4().hex[:6]}"
        try:
            with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
                worker = build_worker(client, engine, own, executor)
                failing = Worker(client, task_queue=failing_queue, workflows=[FailsOnceWorkflow],
                                 activities=[always_fails], activity_executor=executor)
                async with worker, failing, running_relay(engine, client, own), app.router.lifespan_context(app):
                    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as api:
                        created = await api.post("/api/v1/leads", headers={"Authorization": f"Bearer {key}"}, json={
                            "first_name": "Dash", "email": f"dash{uuid.uuid4().hex[:6]}@example.com",
                            "source": "web_form"})
                        assert created.status_code == 201, created.text
                        refused = await api.post("/api/v1/webhooks/leads/zapier?tenant=nobody", content=b"{}",
                                                 headers={"webhook-id": "x", "webhook-timestamp": "1",
                                                          "webhook-signature": "v1,bad"})
                        assert refused.status_code == 403, refused.text
                    assert await client.execute_workflow(FailsOnceWorkflow.run, id=f"fails-{uuid.uuid4().hex}",
                                                         task_queue=failing_queue) == "failed as expected"
                    exposed: set[str] = set()
                    for _ in range(100):  # until the lead's workflow ran and the SDK exported what it counted
                        sdk_text = await _scrape(f"http://127.0.0.1:{sdk_port}/metrics")
                        app_text = await _scrape(f"http://127.0.0.1:{app_port}/metrics")
                        exposed = _exposed(sdk_text) | _exposed(app_text)
                        if set(named) <= exposed:
                            break
                        await asyncio.sleep(0.2)
        finally:
            metrics.shutdown()
            metrics.server_close()
            engine.dispose()
    missing = {name: sorted(where) for name, where in named.items() if name not in exposed}
    assert not missing, f"named on the dashboard or in the alerts but not scraped: {missing}\n" \
                        f"scraped: {sorted(n for n in exposed if n.startswith(('dealflow_', 'temporal_')))}"
    # the labels the dashboard groups by are the SDK's
    assert 'activity_type="always_fails"' in sdk_text
    assert "worker_type=" in sdk_text and "workflow_type=" in sdk_text


PROMTOOL = shutil.which("promtool")


@pytest.mark.skipif(PROMTOOL is None and not os.environ.get("DEALFLOW_REQUIRE_PROMTOOL"),
                    reason="promtool not installed (apt-get install prometheus)")
def test_prometheus_config_and_alert_rules_pass_promtool():
    assert PROMTOOL, "DEALFLOW_REQUIRE_PROMTOOL is set but promtool is not installed"
    for args in (["check", "rules", str(OPS / "prometheus" / "alerts.yml")],
                 ["check", "config", str(OPS / "prometheus" / "prometheus.yml")]):
        done = subprocess.run([PROMTOOL, *args], capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_has_a_runbook_section():
    runbook = (Path(__file__).resolve().parents[2] / "docs" / "runbook.md").read_text()
    anchors = {re.sub(r"[^a-z0-9 -]", "", line.lstrip("#").strip().lower()).replace(" ", "-")
               for line in runbook.splitlines() if line.startswith("## ")}
    rules = YAML(typ="safe").load((OPS / "prometheus" / "alerts.yml").read_text())
    for rule in (r for g in rules["groups"] for r in g["rules"]):
        link = rule["annotations"]["runbook"]
        assert link == f"docs/runbook.md#{rule['alert'].lower()}", link
        assert rule["alert"].lower() in anchors, f"docs/runbook.md has no section for {rule['alert']}"
