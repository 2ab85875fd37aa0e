"""`dealflow status`: what runs, where, and whether it is healthy — a table for people, `--json` for scripts, and
an exit code that is not 0 when a part is down.

Each part is asked directly, not through one another: Temporal by its health check, the API by /health, the
worker by the pollers Temporal sees on the task queue (so a worker of a compose stack counts too), the relay (it
runs in the worker) by the worker and the age of the oldest undelivered event, read from the database. Under
`dealflow up` the state file it keeps (.dealflow/up.json) adds each child's pid, state and restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.table import Table

from cli_common import console, load_settings
from core.settings import Settings

RELAY_LAG_SECONDS = 60  # as /health: an undelivered event older than this means no relay keeps up
POLLER_FRESH_SECONDS = 90  # a worker long-polls for up to a minute; a poller unseen for longer is gone
WORKFLOW_TYPES = ("LeadWorkflow", "EnrichmentWorkflow", "DefinitionWorkflow", "MessageWorkflow", "DealWorkflow",
                  "DailyTriggersWorkflow")
STATE_FILE = "up.json"


@dataclass
class Part:
    name: str
    state: str  # up, down, lagging, starting, restarting, off
    address: str = ""
    detail: str = ""


@dataclass
class Status:
    parts: list[Part] = field(default_factory=list)
    relay: dict | None = None
    workflows: dict[str, int] | None = None
    scoring_model: dict | None = None

    @property
    def ok(self) -> bool:
        return all(p.state in ("up", "off") for p in self.parts)

    def as_json(self) -> dict:
        return {"ok": self.ok, "parts": {p.name: {k: v for k, v in asdict(p).items() if k != "name"}
                                         for p in self.parts},
                "relay": self.relay, "workflows": self.workflows, "scoring_model": self.scoring_model}


# -- `dealflow up`'s state file ----------------------------------------------------------------------------------

def write_up_state(settings: Settings, children, ui_url: str | None) -> None:
    """Called by `dealflow up` on every change of a child's state (written whole, then renamed: never half)."""
    path = settings.home / STATE_FILE
    body = {"pid": os.getpid(), "api": settings.effective_public_url, "temporal": settings.effective_temporal_address,
            "ui": ui_url, "updated_at": datetime.now(UTC).isoformat(),
            "children": {c.name: {"state": c.state, "pid": c.process.pid if c.process else None,
                                  "restarts": c.restarts} for c in children}}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(body, indent=2))
    tmp.replace(path)


def _up_state(settings: Settings) -> dict | None:
    """The running `dealflow up`'s state, or None (none runs, or it was killed before it could remove it)."""
    try:
        body = json.loads((settings.home / STATE_FILE).read_text())
        os.kill(int(body["pid"]), 0)
        return body
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _alive(pid: int | None) -> bool:
    try:
        os.kill(int(pid), 0)
    except (OSError, TypeError, ValueError):
        return False
    try:  # a zombie (dead, not yet reaped by `dealflow up`) is not running
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True  # no /proc (not Linux): kill(0) is all we know


# -- the checks --------------------------------------------------------------------------------------------------

def _api(url: str) -> tuple[Part, dict | None]:
    import httpx

    try:
        response = httpx.get(f"{url}/health", timeout=3)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        return Part("api", "down", url, f"no answer from {url}/health ({exc.__class__.__name__})"), None
    if response.status_code != 200:
        return Part("api", "down", url, body.get("detail") or f"/health answered {response.status_code}"), body
    return Part("api", "up", url, f"/health: {body.get('status')}"), body


def _database(settings: Settings) -> tuple[Part, dict | None, dict | None]:
    """The database part, the relay backlog and the tenant's active scoring model."""
    from sqlalchemy.engine import make_url
    from sqlmodel import Session, col, select

    from core.db import make_engine
    from models.enrichment import ScoringModel
    from models.event import backlog

    url = settings.effective_database_url
    shown = make_url(url).render_as_string(hide_password=True)
    database = make_url(url).database
    if url.startswith("sqlite") and database and not Path(database).exists():
        return Part("database", "down", shown, "no database yet (`dealflow up` or `dealflow migrate` makes it)"), \
            None, None
    engine = make_engine(url)
    try:
        with Session(engine) as session:
            count, oldest, parked = backlog(session)
            row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == settings.default_tenant,
                                                          ScoringModel.model == "lead",
                                                          col(ScoringModel.active).is_(True))).first()
    except Exception as exc:  # noqa: BLE001 - any failure is "down", said in one line
        return Part("database", "down", shown, f"{exc.__class__.__name__}: {exc}".splitlines()[0][:200]), None, None
    finally:
        engine.dispose()
    relay = {"backlog": count, "oldest_seconds": round(oldest, 1) if oldest is not None else None, "parked": parked}
    model = None
    if row is not None:
        model = {"tenant": row.tenant_id, "version": row.version, "kind": row.kind,
                 "cv_auc": row.metrics.get("cv_auc"), "trained_on": row.metrics.get("n_rows"),
                 "created_at": row.created_at.isoformat()}
    return Part("database", "up", shown), relay, {"tenant": settings.default_tenant, "active": model}


async def _temporal(settings: Settings) -> tuple[Part, Part, dict[str, int] | None]:
    """Temporal itself, the worker (pollers on the task queue) and the running workflows by type."""
    from temporalio.api.enums.v1 import TaskQueueType
    from temporalio.api.taskqueue.v1 import TaskQueue
    from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest

    from core.temporal import connect

    address, queue = settings.effective_temporal_address, settings.temporal_task_queue
    try:
        client = await asyncio.wait_for(connect(settings), timeout=5)
        await asyncio.wait_for(client.service_client.check_health(), timeout=3)
    except Exception as exc:  # noqa: BLE001
        reason = str(exc).splitlines()[0][:200] if str(exc) else "no answer within 5 s"
        if "ConnectionRefused" in reason or "Connection refused" in reason:
            reason = "nothing listens there (connection refused)"
        return (Part("temporal", "down", address, reason),
                Part("worker", "down", f"task queue {queue}", "Temporal is down: no worker can poll"), None)
    temporal = Part("temporal", "up", address, f"namespace {settings.temporal_namespace}")
    try:
        described = await client.workflow_service.describe_task_queue(DescribeTaskQueueRequest(
            namespace=client.namespace, task_queue=TaskQueue(name=queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW))
        now = time.time()
        fresh = [p for p in described.pollers if now - p.last_access_time.ToSeconds() <= POLLER_FRESH_SECONDS]
        worker = (Part("worker", "up", f"task queue {queue}",
                       f"{len(fresh)} poller{'s' if len(fresh) != 1 else ''} seen in {POLLER_FRESH_SECONDS} s: "
                       + ", ".join(sorted({p.identity for p in fresh}))[:120]) if fresh
                  else Part("worker", "down", f"task queue {queue}", "no worker polls the task queue"))
        counts = {}
        for name in WORKFLOW_TYPES:
            counts[name] = (await client.count_workflows(
                f"WorkflowType = '{name}' AND ExecutionStatus = 'Running'")).count
    except Exception as exc:  # noqa: BLE001
        return temporal, Part("worker", "down", f"task queue {queue}", str(exc).splitlines()[0][:200]), None
    return temporal, worker, counts


def _relay(settings: Settings, worker: Part, relay: dict | None) -> Part:
    if not settings.relay_enabled:
        return Part("relay", "off", "in the worker", "DEALFLOW_RELAY_ENABLED=false")
    if relay is None:
        return Part("relay", "down", "in the worker", "the database is down: the backlog is unknown")
    backlog = f"backlog {relay['backlog']}, parked {relay['parked']}"
    if worker.state != "up":
        return Part("relay", "down", "in the worker", f"no worker runs it; {backlog}")
    oldest = relay["oldest_seconds"]
    if oldest is not None and oldest > RELAY_LAG_SECONDS:
        return Part("relay", "lagging", "in the worker", f"oldest undelivered event {oldest:.0f} s old; {backlog}")
    return Part("relay", "up", "in the worker", backlog)


def collect(settings: Settings) -> Status:
    up = _up_state(settings)
    status = Status()
    temporal, worker, status.workflows = asyncio.run(_temporal(settings))
    api, _ = _api(up["api"] if up else settings.effective_public_url)
    database, status.relay, status.scoring_model = _database(settings)
    if up:  # under `dealflow up`: its children's own states (a killed worker's poller stays listed a while)
        if up.get("ui"):
            temporal.detail += f"; UI {up['ui']}"
        for part, prefix in ((worker, "worker"), (api, "api")):
            mine = {n: c for n, c in up["children"].items() if n == prefix or n.startswith(prefix + "-")}
            states = {c["state"] if c["state"] != "ready" or _alive(c["pid"]) else "down" for c in mine.values()}
            for state in ("down", "restarting", "starting"):  # the worst of them
                if state in states and part.state in ("up", "down"):
                    part.state = state
                    break
            pids = ", ".join(f"{n} pid {c['pid']} {c['state']}" + (f", {c['restarts']} restarts" if c["restarts"]
                                                                   else "") for n, c in mine.items() if c["pid"])
            part.detail = "; ".join(filter(None, [part.detail, pids]))
    status.parts = [temporal, worker, api, _relay(settings, worker, status.relay), database]
    return status


# -- the command -------------------------------------------------------------------------------------------------

COLOURS = {"up": "green", "off": "dim", "lagging": "yellow", "starting": "yellow", "restarting": "red", "down": "red"}


def status_command(as_json: bool = typer.Option(False, "--json", help="one JSON object, for scripts")) -> None:
    """What runs (Temporal, worker, API, relay, database), where, the relay backlog, running workflows by type and
    the active scoring model. Exit code 0 when everything is up, 1 when a part is down or lagging."""
    settings = load_settings()
    if as_json:
        status = collect(settings)
        print(json.dumps(status.as_json(), indent=2))
    else:
        with console.status("Asking Temporal, the API and the database"):
            status = collect(settings)
        _print(status)
    raise typer.Exit(0 if status.ok else 1)


def _print(status: Status) -> None:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("part", "state", "address", "detail"):
        table.add_column(column, overflow="fold")
    for part in status.parts:
        table.add_row(part.name, f"[{COLOURS.get(part.state, '')}]{part.state}[/]", part.address, part.detail)
    console.print(table)
    if status.relay is not None:
        oldest = status.relay["oldest_seconds"]
        console.print(f"relay backlog: {status.relay['backlog']} undelivered"
                      + (f" (oldest {oldest:.0f} s)" if oldest is not None else "")
                      + f", {status.relay['parked']} parked", highlight=False)
    if status.workflows is not None:
        running = ", ".join(f"{name} {count}" for name, count in status.workflows.items() if count) or "none"
        console.print(f"running workflows: {running}", highlight=False)
    if status.scoring_model is not None:
        model = status.scoring_model["active"]
        console.print(f"scoring model ({status.scoring_model['tenant']}): " + (
            f"v{model['version']} {model['kind']}" + (f", CV AUC {model['cv_auc']:.3f}" if model["cv_auc"] else "")
            + (f", trained on {model['trained_on']} leads" if model["trained_on"] else "")
            if model else "none active yet (the first lead scored trains the cold-start model)"), highlight=False)
    verdict = "[green]everything is up[/]" if status.ok else \
        "[red]not healthy:[/] " + ", ".join(f"{p.name} {p.state}" for p in status.parts if p.state not in ("up", "off"))
    console.print(verdict)
    if not status.ok and status.parts[0].state == "down" and status.parts[2].state == "down":
        console.print("start everything with `make run` (or `dealflow up`)")
