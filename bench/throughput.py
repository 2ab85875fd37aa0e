"""Throughput: leads/s through POST /api/v1/leads, until each lead's `lead.received` entry exists (`--until
received`) or through its whole first lifecycle (`--until first-touch`: received, enriched, scored, then the
speed-to-lead definition's welcome email and first SMS sent), against the baseline of a no-op one-activity
workflow, measured in the same run on the same server.

    python bench/throughput.py [--leads 300] [--concurrency 16] [--repeats 3] [--until received|first-touch]

Starts an embedded Temporal dev server (WAL-backed file, as `dealflow up` does) unless
DEALFLOW_TEMPORAL_ADDRESS is set, and a fresh SQLite CRM unless DEALFLOW_DATABASE_URL is set.
The API and the worker run in this process, as under `dealflow up`. Prints JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import os
import platform
import secrets
import socket
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import uvicorn  # noqa: E402
from sqlmodel import Session, col, func, select  # noqa: E402
from temporalio.worker import Worker  # noqa: E402

from api.app import create_app  # noqa: E402
from api.security import create_api_key  # noqa: E402
from bench.noop import NoopWorkflow, noop  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from core.devserver import DevServer  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.temporal import connect  # noqa: E402
from models.message import Message  # noqa: E402
from models.tenant import Role, Tenant  # noqa: E402
from models.timeline import TimelineEntry  # noqa: E402
from worker import build_worker, running_relay  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _bounded(n: int, concurrency: int, make):
    semaphore = asyncio.Semaphore(concurrency)

    async def one(i: int):
        async with semaphore:
            return await make(i)

    return await asyncio.gather(*(one(i) for i in range(n)))


async def baseline_round(client, queue: str, n: int, concurrency: int) -> float:
    started = time.perf_counter()

    async def run(i: int):
        return await client.execute_workflow(NoopWorkflow.run, str(i), id=f"noop-{uuid.uuid4().hex}",
                                             task_queue=queue)

    await _bounded(n, concurrency, run)
    return n / (time.perf_counter() - started)


_EXCHANGES = iter(range(200, 1000))


def _progress(engine, tenant: str, until: str) -> int:
    """Leads of the tenant that got this far: their receipt recorded, or both first-touch messages sent."""
    with Session(engine) as session:
        if until == "received":
            return session.exec(select(func.count()).select_from(TimelineEntry).where(
                TimelineEntry.tenant_id == tenant, TimelineEntry.kind == "lead.received")).one()
        return session.exec(select(func.count()).select_from(Message).where(
            Message.tenant_id == tenant, col(Message.template).in_(["welcome", "first_touch"]),
            Message.status == "sent")).one() // 2


async def leads_round(http: httpx.AsyncClient, engine, headers, tenant: str, n: int, concurrency: int,
                      until: str = "received") -> float:
    tag = uuid.uuid4().hex[:8]
    exchange = next(_EXCHANGES)  # a round's phone numbers are its own: no lead is taken for a duplicate
    before = await asyncio.to_thread(_progress, engine, tenant, until)  # (never a blocking read on the loop)
    started = time.perf_counter()

    async def post(i: int):
        response = await http.post("/api/v1/leads", headers=headers, json={
            "first_name": "Bench", "last_name": f"Lead{tag}{i}", "email": f"bench.{tag}.{i}@example.com",
            "phone": f"+1888{exchange}{i:04d}",  # toll-free (the tenant's zone applies), one person each
            "source": "web_form", "property_address": f"{100 + i} Main St, Austin, TX 78701"})
        if response.status_code != 201:
            raise RuntimeError(f"POST /leads answered {response.status_code}: {response.text[:300]}")

    await _bounded(n, concurrency, post)
    while await asyncio.to_thread(_progress, engine, tenant, until) - before < n:  # until every lead got that far
        await asyncio.sleep(0.05)
    return n / (time.perf_counter() - started)


async def main(args) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix="dealflow-bench-"))
    settings = Settings(home=workdir, temporal_task_queue=f"bench-{uuid.uuid4().hex[:6]}",
                        secret_key=os.environ.get("DEALFLOW_SECRET_KEY") or secrets.token_hex(32))
    devserver = None
    if not settings.temporal_address:
        devserver = DevServer(workdir / "temporal.db", _free_port(), None, workdir / "temporal.log")
        devserver.start()
        settings.temporal_address = devserver.address
    try:
        migrate(settings.effective_database_url)
        engine = make_engine(settings.effective_database_url)
        tenant = f"bench{uuid.uuid4().hex[:6]}"
        _, key = create_api_key(engine, tenant, Role.admin, "bench")  # the tenant, speed-to-lead published
        with Session(engine) as session:  # the send window open around the clock: the first touch goes at once
            row = session.get(Tenant, tenant)
            row.timezone, row.send_window_days, row.send_window_start, row.send_window_end = \
                "Etc/UTC", "mon-sun", "00:00", "24:00"
            session.add(row)
            session.commit()
        headers = {"Authorization": f"Bearer {key}"}
        client = await connect(settings)
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(create_app(settings, temporal_client=client, engine=engine),
                                               host="127.0.0.1", port=port, log_level="warning"))
        server_task = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        baseline_queue = f"{settings.temporal_task_queue}-noop"
        with concurrent.futures.ThreadPoolExecutor(max_workers=32) as executor:
            lead_worker = build_worker(client, engine, settings, executor)
            noop_worker = Worker(client, task_queue=baseline_queue, workflows=[NoopWorkflow], activities=[noop],
                                 activity_executor=executor)
            async with lead_worker, running_relay(engine, client, settings), noop_worker, \
                    httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30) as http:
                await baseline_round(client, baseline_queue, 20, args.concurrency)  # warm-up
                await leads_round(http, engine, headers, tenant, 20, args.concurrency, args.until)
                baseline, leads = [], []
                for _ in range(args.repeats):  # interleaved so drift hits both alike
                    baseline.append(await baseline_round(client, baseline_queue, args.leads, args.concurrency))
                    leads.append(await leads_round(http, engine, headers, tenant, args.leads, args.concurrency,
                                                   args.until))
        server.should_exit = True
        await server_task
        engine.dispose()
    finally:
        if devserver:
            devserver.stop()
    b, per_lead = statistics.median(baseline), statistics.median(leads)
    return {
        "benchmark": "throughput",
        "until": args.until, "n_per_round": args.leads, "concurrency": args.concurrency, "repeats": args.repeats,
        "database": make_engine(settings.effective_database_url).dialect.name,
        "temporal": "embedded dev server (sqlite WAL)" if devserver else settings.temporal_address,
        "baseline_noop_workflows_per_s": {"median": round(b, 1), "runs": [round(x, 1) for x in baseline]},
        "leads_per_s": {"median": round(per_lead, 1), "runs": [round(x, 1) for x in leads]},
        "ratio_leads_to_baseline": round(per_lead / b, 3),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--leads", type=int, default=300, help="workflows / leads per round")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--until", choices=("received", "first-touch"), default="received",
                        help="a lead counts once its receipt is recorded, or once its first touch is sent")
    print(json.dumps(asyncio.run(main(parser.parse_args())), indent=2))
