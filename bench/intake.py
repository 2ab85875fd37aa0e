"""Durable intake and the event relay, each beside an honest baseline measured in the same run. Prints JSON.

    python bench/intake.py [--backend sqlite|postgres|both] [--leads 2000] [--clients 32] [--rate 150]
                           [--seconds 10] [--relay-concurrency 16] [--api-processes 2]
                           [--only relay|open-loop|closed-loop]

The clients are bench/loadgen.py's minimal keep-alive HTTP client (~0.2 ms of CPU a request; httpx took ~5 ms,
as much as the API, on the same two cores).

Per backend (a fresh database of its own; Postgres from DEALFLOW_TEST_DATABASE_URL or the local server):
1. accept path alone — the API as `dealflow up` runs it (`--api-processes` processes of `dealflow api --fd`
   on one socket), no worker and no relay running: `--clients` closed-loop clients POST distinct leads over
   HTTP → leads/s, p50/p99; beside a bare INSERT of the same rows (SQLAlchemy Core, one row per transaction,
   the same number of threads) as the floor.
2. open loop — a fixed arrival rate (`--rate` leads/s for `--seconds`, `--rounds` times), latency from each
   request's scheduled time (queueing counts) → p50/p99, medians of the rounds. Each round starts once the
   database has settled (a CHECKPOINT, and on Postgres no autovacuum worker still busy with phase 1's rows).
3. relay — the backlog from 1 and 2 drained into a Temporal dev server by the relay alone (no workflow worker,
   so Temporal's own execution is not in the figure) → events/s; beside raw signal-with-start calls of the
   same shape (start LeadWorkflow + `submitted` signal) with the same concurrency, on the same server.
4. commit-to-delivery — leads posted at 20/s while the relay runs: delivered_at − occurred_at, p50/p99.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from sqlalchemy import func, insert  # noqa: E402
from sqlmodel import Session, col, select  # noqa: E402
from temporalio.common import (  # noqa: E402
    SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)

from api.security import create_api_key  # noqa: E402
from core import search_attributes as sa  # noqa: E402
from bench.loadgen import LoadClient  # noqa: E402
from bench.settle import settle  # noqa: E402
from core.db import make_engine  # noqa: E402
from core.devserver import DevServer  # noqa: E402
from core.settings import Settings  # noqa: E402
from core.temporal import connect  # noqa: E402
from events.relay import Relay  # noqa: E402
from models.event import Event  # noqa: E402
from models.lead import Lead  # noqa: E402
from models.payloads import LeadEvent, LeadWorkflowInput  # noqa: E402
from models.tenant import Role  # noqa: E402
from tests.integration.stack import free_port, own_database  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2) if ordered else 0.0


@contextmanager
def fresh_database(backend: str, tmp: Path):
    """A migrated database of the run's own (tests.integration.stack.own_database): a new SQLite file, or a new
    database on the Postgres server of DEALFLOW_TEST_DATABASE_URL (the local one by default)."""
    base = f"sqlite:///{tmp / 'bench.db'}" if backend == "sqlite" else Settings(
        database_url=os.environ.get("DEALFLOW_TEST_DATABASE_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres").database_url
    with own_database(base) as url:
        yield url


@contextmanager
def api_process(url: str, temporal: str, port: int, processes: int = 1):
    """The API as `dealflow up` runs it: `processes` API processes serving one listening socket bound here."""
    env = {**os.environ, "DEALFLOW_DATABASE_URL": url, "DEALFLOW_TEMPORAL_ADDRESS": temporal,
           "DEALFLOW_LOG_LEVEL": "WARNING", "DEALFLOW_METRICS_ADDRESS": "",
           "DEALFLOW_SECRET_KEY": os.environ.get("DEALFLOW_SECRET_KEY") or "b" * 64}
    listener = socket.create_server(("127.0.0.1", port), backlog=2048)
    children = [subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "api", "--fd", str(listener.fileno())],
                                 cwd=ROOT, env=env, pass_fds=(listener.fileno(),)) for _ in range(processes)]
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code in (200, 503):
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the API did not start")
            time.sleep(0.2)
        time.sleep(1.0 if processes > 1 else 0)  # the others are up too
        yield f"http://127.0.0.1:{port}"
    finally:
        for child in children:
            child.terminate()
        for child in children:
            child.wait(20)
        listener.close()


def lead_body(tag: str, i: int) -> dict:
    return {"first_name": f"Bench{i}", "last_name": "Lead", "email": f"b{i}.{tag}@example.com",
            # 512-2xx-xxxx and up: a valid US number (an exchange starting 0 or 1 is refused with a 422)
            "phone": f"+1512{2_000_000 + (sum(map(ord, tag)) * 7919 + i) % 7_000_000:07d}", "source": "ppc"}


async def closed_loop(base: str, headers: dict, n: int, clients: int, tag: str) -> dict:
    latencies: list[float] = []
    counter = iter(range(n))
    errors = 0

    async def client_loop(http: LoadClient) -> None:
        nonlocal errors
        for i in counter:
            started = time.perf_counter()
            status = await http.post("/api/v1/leads", lead_body(tag, i))
            latencies.append(time.perf_counter() - started)
            errors += status not in (200, 201)

    async with LoadClient(base, headers, clients) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client_loop(http) for _ in range(clients)))
        elapsed = time.perf_counter() - started
    return {"leads": n, "leads_per_s": round(n / elapsed, 1), "p50_ms": pct(latencies, 0.5),
            "p99_ms": pct(latencies, 0.99), "errors": errors}


async def open_loop(base: str, headers: dict, rate: float, seconds: float, tag: str) -> dict:
    n = int(rate * seconds)
    latencies: list[float] = []
    errors = 0

    async def one(http: LoadClient, i: int, due: float) -> None:
        nonlocal errors
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        try:
            errors += await http.post("/api/v1/leads", lead_body(tag, i)) not in (200, 201)
        except OSError:
            errors += 1
        latencies.append(time.perf_counter() - due)  # from the scheduled time: waiting counts

    async with LoadClient(base, headers, 256) as http:
        start = time.perf_counter() + 0.5
        await asyncio.gather(*(one(http, i, start + i / rate) for i in range(n)))
    return {"rate_per_s": rate, "leads": n, "p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99),
            "errors": errors}


def bare_insert(url: str, tenant: str, n: int, threads: int, tag: str) -> dict:
    """The floor: the same lead rows, one INSERT + COMMIT each, from the same number of threads."""
    engine = make_engine(url)
    table = Lead.__table__
    counter = iter(range(n))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            body = lead_body(tag, i)
            with engine.begin() as conn:
                conn.execute(insert(table).values(
                    id=f"ld_bare{tag}{i}", tenant_id=tenant, first_name=body["first_name"], last_name="Lead",
                    email=body["email"], phone=body["phone"], source="ppc", status="new", tags=[], custom={},
                    created_at=func.now(), updated_at=func.now()))

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        for future in [pool.submit(work) for _ in range(threads)]:
            future.result()
    elapsed = time.perf_counter() - started
    engine.dispose()
    return {"rows": n, "rows_per_s": round(n / elapsed, 1)}


def undelivered(engine) -> int:
    with Session(engine) as session:
        return session.exec(select(func.count()).select_from(Event).where(col(Event.delivered_at).is_(None))).one()


async def drain(engine, client, queue: str, concurrency: int) -> dict:
    backlog = undelivered(engine)
    relay, stop = Relay(engine, client, queue, poll_seconds=0.05, concurrency=concurrency), asyncio.Event()
    started, cpu = time.perf_counter(), time.process_time()
    task = asyncio.create_task(relay.run(stop))
    while undelivered(engine):
        await asyncio.sleep(0.05)
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    stop.set()
    await task
    return {"events": backlog, "events_per_s": round(backlog / elapsed, 1),
            "cpu_ms_per_event": round(cpu * 1000 / backlog, 2)}  # this process's CPU: the relay's cost


async def raw_signal_with_start(client, queue: str, n: int, concurrency: int) -> dict:
    """What the relay does per lead.created, called directly: start LeadWorkflow with the `submitted` signal."""
    from workflows.lead import LeadWorkflow

    semaphore = asyncio.Semaphore(concurrency)
    tag = uuid.uuid4().hex[:6]

    async def one(i: int) -> None:
        async with semaphore:
            await client.start_workflow(
                LeadWorkflow.run, LeadWorkflowInput(tenant_id="raw", lead_id=f"raw{tag}{i}", source="ppc"),
                id=f"raw-{tag}-{i}", task_queue=queue, start_signal="submitted",
                start_signal_args=[LeadEvent(event_id=f"raw{tag}{i}")],
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                search_attributes=TypedSearchAttributes([  # the same call as the relay's, attributes and all
                    SearchAttributePair(sa.TENANT_ID, "raw"), SearchAttributePair(sa.LEAD_ID, f"raw{tag}{i}"),
                    SearchAttributePair(sa.LEAD_STATUS, "new")]),
                static_summary=f"Bench Lead {i}, {i} Main St, ppc")

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(n)))
    return {"calls": n, "calls_per_s": round(n / (time.perf_counter() - started), 1),
            "cpu_ms_per_call": round((time.process_time() - cpu) * 1000 / n, 2)}


async def commit_to_delivery(base: str, headers: dict, engine, client, queue: str, concurrency: int,
                             tag: str, n: int = 200, rate: float = 20.0) -> dict:
    with Session(engine) as session:  # only this phase's events count (not the backlog the drains delivered)
        floor = session.exec(select(func.max(Event.seq))).one() or 0
    relay, stop = Relay(engine, client, queue, concurrency=concurrency), asyncio.Event()
    task = asyncio.create_task(relay.run(stop))
    result = await open_loop(base, headers, rate, n / rate, tag)
    while undelivered(engine):
        await asyncio.sleep(0.05)
    stop.set()
    await task
    with Session(engine) as session:
        rows = session.exec(select(Event).where(Event.name == "lead.created", col(Event.seq) > floor)).all()
        delays = [(r.delivered_at - r.occurred_at).total_seconds() for r in rows if r.delivered_at]
    return {"events": len(delays), "p50_ms": pct(delays, 0.5), "p99_ms": pct(delays, 0.99),
            "intake_p99_ms_meanwhile": result["p99_ms"]}


async def relay_rounds_of(args, engine, client, queue: str, base: str, headers: dict) -> dict:
    """Interleaved: the relay drains the backlog, then the raw baseline makes the same calls, the same number."""
    rounds = []
    for r in range(args.rounds):
        if r:  # a fresh backlog for each round after the first (which drains what the phases before left)
            await closed_loop(base, headers, args.leads, args.clients, f"refill{uuid.uuid4().hex[:4]}")
        drained = await drain(engine, client, queue, args.relay_concurrency)
        raw = await raw_signal_with_start(client, queue, drained["events"], args.relay_concurrency)
        rounds.append({"relay": drained, "raw_signal_with_start": raw,
                       "ratio": round(drained["events_per_s"] / raw["calls_per_s"], 3)})
    median = statistics.median
    return {"concurrency": args.relay_concurrency, "rounds": rounds,
            "median_events_per_s": median(r["relay"]["events_per_s"] for r in rounds),
            "median_raw_calls_per_s": median(r["raw_signal_with_start"]["calls_per_s"] for r in rounds),
            "median_ratio": median(r["ratio"] for r in rounds)}


async def open_rounds(args, engine, base: str, headers: dict) -> dict:
    """`--rounds` open loops, each after the database has settled (see `settle`)."""
    rounds = []
    for r in range(args.rounds):
        settled = await asyncio.to_thread(settle, engine)
        rounds.append({**await open_loop(base, headers, args.rate, args.seconds, f"open{r}"), "settled_s": settled})
    median = statistics.median
    return {"rate_per_s": args.rate, "rounds": rounds, "median_p50_ms": median(r["p50_ms"] for r in rounds),
            "median_p99_ms": median(r["p99_ms"] for r in rounds)}


def closed_summary(args, rounds: list[dict]) -> dict:
    median = statistics.median
    return {"clients": args.clients, "rounds": rounds,
            "median_leads_per_s": median(r["intake"]["leads_per_s"] for r in rounds),
            "median_p99_ms": median(r["intake"]["p99_ms"] for r in rounds),
            "median_bare_insert_rows_per_s": median(r["bare_insert"]["rows_per_s"] for r in rounds),
            "median_ratio": median(r["ratio"] for r in rounds)}


async def bench_backend(backend: str, args, temporal: DevServer, tmp: Path) -> dict:
    with fresh_database(backend, tmp) as url:
        engine = make_engine(url)
        tenant = f"bench{uuid.uuid4().hex[:4]}"
        _, key = create_api_key(engine, tenant, Role.staff)
        headers = {"Authorization": f"Bearer {key}"}
        client = await connect(Settings(temporal_address=temporal.address, database_url=url))
        queue = f"bench-{uuid.uuid4().hex[:6]}"  # nobody polls it: the relay's cost alone
        with api_process(url, temporal.address, free_port(), args.api_processes) as base:
            await closed_loop(base, headers, 100, args.clients, "warm")
            if args.only == "relay":
                await closed_loop(base, headers, args.leads, args.clients, "backlog")
                return {"relay_drain": await relay_rounds_of(args, engine, client, queue, base, headers)}
            if args.only == "open-loop":
                return {"intake_open_loop": await open_rounds(args, engine, base, headers)}
            rounds = []
            for r in range(args.rounds):  # interleaved: our intake, then the bare INSERT floor
                ours = await closed_loop(base, headers, args.leads, args.clients, f"r{r}")
                floor = await asyncio.to_thread(bare_insert, url, tenant, args.leads, args.clients, f"f{r}")
                rounds.append({"intake": ours, "bare_insert": floor,
                               "ratio": round(ours["leads_per_s"] / floor["rows_per_s"], 3)})
            if args.only == "closed-loop":
                return {"intake_closed_loop": closed_summary(args, rounds)}
            opened = await open_rounds(args, engine, base, headers)
            relay = await relay_rounds_of(args, engine, client, queue, base, headers)
            # the backlog is empty here: commit-to-delivery is the healthy relay's latency
            latency = await commit_to_delivery(base, headers, engine, client, queue, args.relay_concurrency, "lat")
        engine.dispose()
    return {
        "intake_closed_loop": closed_summary(args, rounds),
        "intake_open_loop": opened,
        "relay_drain": relay,
        "commit_to_delivery": latency,
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--leads", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--rate", type=float, default=150.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--relay-concurrency", type=int, default=16)
    parser.add_argument("--api-processes", type=int, default=2, help="API processes on one socket (dealflow up's "
                        "default on 2 cores)")
    parser.add_argument("--only", choices=("relay", "open-loop", "closed-loop"),
                        help="one phase alone (relay: its backlog made by --leads intakes)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        temporal = DevServer(Path(tmp) / "temporal.db", port=free_port(), ui_port=None)
        temporal.start()
        try:
            results = {}
            for backend in (("sqlite", "postgres") if args.backend == "both" else (args.backend,)):
                results[backend] = await bench_backend(backend, args, temporal, Path(tmp))
        finally:
            temporal.stop()
    print(json.dumps({"bench": "intake", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                      "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
