"""Nothing accepted is lost or doubled when Temporal is killed or paused, or when the worker is killed between
the relay's Temporal call and its commit. Each test runs a stack of its own — its own database, its own dev
server (so it can be killed), `worker.py` and the API as subprocesses — and counts effects afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
from sqlmodel import Session, col, func, select
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from api.security import create_api_key
from core.db import make_engine
from core.devserver import DevServer
from models.definition import WorkflowExecution
from models.event import Event
from models.task import Task
from models.tenant import Role
from models.timeline import TimelineEntry
from tests.integration.stack import free_port, own_database, start_api, start_worker, stop, wait_for


class Stack:
    def __init__(self, tmp: Path, database_url: str) -> None:
        self.tmp, self.database_url = tmp, database_url
        self.engine = make_engine(database_url)
        self.temporal = DevServer(tmp / "temporal.db", port=free_port(), ui_port=None, log_file=tmp / "temporal.log")
        self.queue = f"own-{uuid.uuid4().hex[:6]}"
        self.api_port = free_port()
        self.worker = self.api = None

    def settings(self, **extra: str) -> dict[str, str]:
        return {"database_url": self.database_url, "temporal_address": self.temporal.address,
                "temporal_task_queue": self.queue, "relay_poll_seconds": "0.1", **extra}

    def start_worker(self, **extra: str) -> None:
        self.worker = start_worker(**self.settings(**extra))

    def key(self, tenant: str, role: Role = Role.staff) -> dict[str, str]:
        _, key = create_api_key(self.engine, tenant, role)
        return {"Authorization": f"Bearer {key}"}

    def count(self, model, *where) -> int:
        with Session(self.engine) as session:
            return session.exec(select(func.count()).select_from(model).where(*where)).one()

    def undelivered(self, tenant: str) -> int:
        return self.count(Event, Event.tenant_id == tenant, col(Event.delivered_at).is_(None))

    async def client(self) -> Client:
        return await Client.connect(self.temporal.address, data_converter=pydantic_data_converter)


@contextmanager
def own_stack(tmp_path: Path, database_url: str) -> Iterator[Stack]:
    with own_database(database_url) as url:
        stack = Stack(tmp_path, url)
        stack.temporal.start()
        try:
            stack.api = start_api(stack.api_port, **stack.settings())
            yield stack
        finally:
            stop(stack.api)
            stop(stack.worker)
            stack.temporal.stop()
            stack.engine.dispose()


async def _post_leads(base: str, headers: dict, tenant: str, n: int) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=httpx.Limits(max_connections=16)) as http:
        return list(await asyncio.gather(*(http.post("/api/v1/leads", headers=headers, json={
            "first_name": f"Out{i}", "email": f"out{i}.{tenant}@example.com", "source": "ppc"}) for i in range(n))))


async def test_leads_posted_while_temporal_is_down_or_paused_all_get_their_workflow(tmp_path, database_url):
    with own_stack(tmp_path, database_url) as stack:
        tenant = f"o{uuid.uuid4().hex[:6]}"
        headers = stack.key(tenant)
        base = f"http://127.0.0.1:{stack.api_port}"
        stack.start_worker()

        stack.temporal.process.kill()  # Temporal killed: intake answers from the database alone
        stack.temporal.process.wait(10)
        responses = await _post_leads(base, headers, tenant, 100)
        assert [r.status_code for r in responses] == [201] * 100, {r.status_code for r in responses}
        ids = [r.json()["id"] for r in responses]
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            assert (await http.get(f"/api/v1/leads/{ids[0]}", headers=headers)).json()["workflow_status"] == "PENDING"
            health = await http.get("/health")
            assert health.status_code == 200 and health.json()["status"] == "degraded"
            assert health.json()["checks"]["database"] == "ok" and health.json()["checks"]["temporal"] != "ok"
            assert health.json()["relay"]["backlog"] >= 100

        stack.temporal.start()  # the same database file and port: the relay catches up on its own
        received = lambda: stack.count(TimelineEntry, TimelineEntry.tenant_id == tenant,  # noqa: E731
                                       TimelineEntry.kind == "lead.received")
        await wait_for(lambda: received() == 100, timeout=120)
        await wait_for(lambda: stack.undelivered(tenant) == 0, timeout=60)

        os.kill(stack.temporal.process.pid, signal.SIGSTOP)  # paused: calls hang instead of failing
        try:
            paused = await _post_leads(base, headers, f"{tenant}p", 20)
            assert [r.status_code for r in paused] == [201] * 20
        finally:
            os.kill(stack.temporal.process.pid, signal.SIGCONT)
        await wait_for(lambda: received() == 120, timeout=120)

        client = await stack.client()
        workflows = [w async for w in client.list_workflows(f'TenantId="{tenant}" AND WorkflowType="LeadWorkflow"')]
        assert len(workflows) == 120 and len({w.id for w in workflows}) == 120
        assert received() == 120  # once each


# A 5 s action timeout: the worker may be killed while it runs the task's activity, which Temporal then gives
# to the next worker after that timeout (the default 2 minutes would outlast the test).
DEFINITION = """schema: dealflow/v1
key: call-new-ppc
trigger: {event: lead.created}
settings: {defaults: {timeout: 5s}}
steps:
  - {id: call, action: create_task, with: {title: Call the new lead}}
"""


async def test_worker_killed_between_temporal_and_the_commit_loses_nothing_and_doubles_nothing(
        tmp_path, database_url):
    hold = tmp_path / "hold"
    with own_stack(tmp_path, database_url) as stack:
        tenant = f"k{uuid.uuid4().hex[:6]}"
        headers, ops = stack.key(tenant), stack.key(tenant, Role.ops)
        base = f"http://127.0.0.1:{stack.api_port}"
        async with httpx.AsyncClient(base_url=base, timeout=30) as http:
            saved = await http.post("/api/v1/definitions", content=DEFINITION.encode(),
                                    headers={**ops, "Content-Type": "application/yaml"})
            assert saved.status_code == 201, saved.text
            assert (await http.post("/api/v1/definitions/call-new-ppc/versions/1/publish",
                                    headers=ops)).status_code == 200
            hold.touch()
            stack.start_worker(relay_hold_file=str(hold))
            lead = (await http.post("/api/v1/leads", headers=headers, json={
                "first_name": "Kill", "email": f"kill.{tenant}@example.com", "source": "ppc"})).json()

        client = await stack.client()

        async def in_temporal() -> bool:
            runs = [w async for w in client.list_workflows(f'TenantId="{tenant}"')]
            return {w.workflow_type for w in runs} >= {"LeadWorkflow", "DefinitionWorkflow"}

        for _ in range(240):  # delivered to Temporal, held before the commit
            if await in_temporal():
                break
            await asyncio.sleep(0.25)
        assert await in_temporal()
        assert stack.undelivered(tenant) == 1
        stack.worker.kill()  # SIGKILL between the Temporal calls and the commit of delivered_at
        stack.worker.wait(10)
        hold.unlink()

        stack.start_worker()  # redelivers the event: nothing may happen twice
        await wait_for(lambda: stack.undelivered(tenant) == 0, timeout=60)
        await wait_for(lambda: stack.count(Task, Task.lead_id == lead["id"]) >= 1, timeout=60)
        await wait_for(lambda: stack.count(TimelineEntry, TimelineEntry.lead_id == lead["id"],
                                           TimelineEntry.kind == "lead.received") == 1, timeout=60)
        await asyncio.sleep(2)
        assert stack.count(Task, Task.lead_id == lead["id"], Task.title == "Call the new lead") == 1
        # and later, lead.scored starts the default first touch, once, like everything else
        await wait_for(lambda: stack.count(WorkflowExecution, WorkflowExecution.subject_id == lead["id"],
                                           WorkflowExecution.definition_key == "speed-to-lead") == 1, timeout=60)
        await asyncio.sleep(2)
        for key in ("call-new-ppc", "speed-to-lead"):
            assert stack.count(WorkflowExecution, WorkflowExecution.subject_id == lead["id"],
                               WorkflowExecution.definition_key == key) == 1, key
        assert stack.count(TimelineEntry, TimelineEntry.lead_id == lead["id"], TimelineEntry.kind == "lead.received") == 1
        runs = [w async for w in client.list_workflows(f'TenantId="{tenant}"')]
        assert sorted(w.workflow_type for w in runs if w.workflow_type in ("LeadWorkflow", "DefinitionWorkflow")) \
            == ["DefinitionWorkflow", "DefinitionWorkflow", "LeadWorkflow"]
