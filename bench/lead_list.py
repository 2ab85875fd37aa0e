"""The lists a rep uses all day, on a 100,000-lead book, beside the bare SQL of the same page. Prints JSON.

    python bench/lead_list.py [--leads 100000] [--requests 300]

Seeds one tenant of a fresh Postgres database (DEALFLOW_TEST_DATABASE_URL's server, the local one by default):
`--leads` leads (statuses, sources, scores, assignees, 5% duplicates, 1% deleted, two years of created_at),
a tenth as many investors, a twentieth as many deals, two messages and three timeline entries per lead; then
ANALYZE. Then, per query shape, `--requests` sequential GETs through the API (`dealflow api` in its own
process, bench/loadgen.py's keep-alive client) → p50/p99, and the bare SQL of the same page (the statement the
route runs, literal values, straight through psycopg, rows fetched) → p50/p99, from the same run.
Sequential, as a rep's clicks are: the figure is a request's latency, not the server's throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from rich.progress import Progress  # noqa: E402
from sqlalchemy import insert, text  # noqa: E402
from sqlalchemy.dialects import postgresql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from api.paging import decode_cursor, keyset  # noqa: E402
from api.security import create_api_key  # noqa: E402
from bench.intake import api_process, fresh_database, pct  # noqa: E402
from bench.loadgen import LoadClient  # noqa: E402
from core.db import make_engine  # noqa: E402
from models.investor import Investor  # noqa: E402
from models.lead import Lead  # noqa: E402
from models.message import Message  # noqa: E402
from models.opportunity import Opportunity  # noqa: E402
from services.deals import DealFilters, deal_list_query  # noqa: E402
from services.tasks import TaskFilters, task_list_query  # noqa: E402
from models.task import Task  # noqa: E402
from models.tenant import Role, User  # noqa: E402
from models.timeline import TimelineEntry  # noqa: E402
from services.lead_lists import LeadFilters, lead_list_query  # noqa: E402
from sqlmodel import col, select  # noqa: E402
from tests.integration.stack import free_port  # noqa: E402

STATUSES = [("new", 40), ("contacted", 25), ("qualified", 10), ("nurturing", 10), ("dead", 10), ("converted", 5)]
SOURCES = [("web_form", 35), ("ppc", 25), ("direct_mail", 15), ("cold_call", 10), ("referral", 10), ("other", 5)]
STAGES = ["new", "contacted", "appointment_set", "offer_made", "under_contract", "closed_won", "closed_lost"]
DISPOSITION_STAGES = ["marketing", "showing", "buyer_offer", "assigned", "closed_won", "closed_lost"]
BATCH = 5000


def weighted(rng: random.Random, table: list[tuple[str, int]]) -> str:
    return rng.choices([v for v, _ in table], [w for _, w in table])[0]


def seed(url: str, tenant: str, n: int, progress: Progress, prefix: str = "b", deals_per_lead: int = 20) -> dict:
    """Rows of a plausible book for `tenant`, written in batches of Core INSERTs; returns ids the shapes need.
    `prefix` keeps ids and keys apart from another book's in the same database; one deal per `deals_per_lead`
    leads."""
    deal_count = n // deals_per_lead
    rng = random.Random(42)
    engine = make_engine(url)
    now = datetime.now(UTC)
    users = [{"id": f"us_{prefix}{i}", "tenant_id": tenant, "email": f"rep{i}@{prefix}.example.com", "name": f"Rep {i}",
              "role": "staff", "created_at": now} for i in range(10)]
    lead_ids: list[str] = []

    def leads():
        for i in range(n):
            lead_id = f"ld_{prefix}{i:07d}"
            original = i > 100 and rng.random() < 0.05
            created = now - timedelta(seconds=(n - i) * 730 * 86400 / n)
            lead_ids.append(lead_id)
            yield {"id": lead_id, "tenant_id": tenant, "first_name": f"First{i}", "last_name": f"Lead{i}",
                   "email": f"lead{i}@{prefix}.example.com", "phone": f"+1512{2_000_000 + i:07d}",
                   "property_address": f"{100 + i % 9000} Oak Ridge Dr, Austin, TX 78{i % 1000:03d}",
                   "source": weighted(rng, SOURCES), "status": weighted(rng, STATUSES),
                   "score": round(rng.random(), 4) if rng.random() < 0.85 else None,
                   "assigned_to": rng.choice(users)["id"] if rng.random() < 0.6 else None,
                   "tags": [], "custom": {}, "duplicate_of": lead_ids[rng.randrange(i)] if original else None,
                   "created_at": created, "updated_at": created,
                   "deleted_at": now if rng.random() < 0.01 else None}

    def investors():
        for i in range(n // 10):
            created = now - timedelta(seconds=(n - i * 10) * 730 * 86400 / n)
            yield {"id": f"iv_{prefix}{i:07d}", "tenant_id": tenant, "name": f"Investor {i}",
                   "company": f"Fund {i % 700}",
                   "email": f"investor{i}@{prefix}.example.com", "phone": f"+1737{2_000_000 + i:07d}",
                   "status": rng.choice(["prospect", "contacted", "engaged", "committed", "passed"]),
                   "accredited": rng.random() < 0.6, "preferences": {}, "tags": [], "created_at": created}

    def deals():
        for i in range(deal_count):
            created = now - timedelta(seconds=(deal_count - i) * 730 * 86400 / deal_count)
            pipeline = "disposition" if rng.random() < 0.2 else "acquisition"
            stage = rng.choice(STAGES if pipeline == "acquisition" else DISPOSITION_STAGES)
            entered = created + (now - created) * rng.random()  # in its stage since then
            yield {"id": f"op_{prefix}{i:07d}", "tenant_id": tenant, "lead_id": lead_ids[i * deals_per_lead],
                   "title": f"Deal {i}",
                   "pipeline": pipeline, "stage": stage, "created_at": created, "updated_at": entered,
                   "stage_entered_at": entered, "closed_at": entered if stage.startswith("closed") else None,
                   "asking_price": 50_000 + rng.randrange(400) * 1000,
                   "assigned_to": rng.choice(users)["id"] if rng.random() < 0.9 else None}

    def messages():
        for i in range(n * 2):
            lead = lead_ids[i // 2]
            yield {"id": f"ms_{prefix}{i:08d}", "tenant_id": tenant, "lead_id": lead,
                   "channel": rng.choice(["email", "sms"]),
                   "direction": "outbound", "to_address": "x", "body": "Hello", "provider": "outbox",
                   "status": "delivered", "events": [], "idempotency_key": f"{prefix}:{i}",
                   "created_at": now - timedelta(seconds=rng.randrange(730 * 86400))}

    def tasks():
        for i in range(n):
            created = now - timedelta(seconds=(n - i) * 730 * 86400 / n)
            status = rng.choices(["open", "done", "cancelled"], [50, 45, 5])[0]
            snoozed = now + timedelta(days=rng.randrange(1, 10)) if status == "open" and rng.random() < 0.1 else None
            yield {"id": f"tk_{prefix}{i:07d}", "tenant_id": tenant, "lead_id": lead_ids[rng.randrange(n)],
                   "title": "Call now", "assignee": rng.choice(users)["id"] if rng.random() < 0.8 else None,
                   "status": status, "due_at": snoozed or now + timedelta(hours=rng.randrange(-24 * 60, 24 * 60)),
                   "snoozed_until": snoozed, "created_at": created,
                   "completed_at": created if status == "done" else None}

    def timeline():
        for i in range(n * 3):
            yield {"id": f"tl_{prefix}{i:08d}", "tenant_id": tenant, "lead_id": lead_ids[i // 3],
                   "kind": "message.sent",
                   "summary": "Welcome email sent", "data": {}, "actor": "system", "idempotency_key": f"{prefix}:{i}",
                   "occurred_at": now - timedelta(seconds=rng.randrange(730 * 86400))}

    with engine.begin() as conn:
        conn.execute(insert(User.__table__), users)
    for label, table, rows, total in (("leads", Lead, leads, n), ("investors", Investor, investors, n // 10),
                                      ("deals", Opportunity, deals, deal_count), ("messages", Message, messages, n * 2),
                                      ("tasks", Task, tasks, n),
                                      ("timeline", TimelineEntry, timeline, n * 3)):
        task = progress.add_task(f"seeding {label}", total=total)
        batch = []
        for row in rows():
            batch.append(row)
            if len(batch) == BATCH:
                with engine.begin() as conn:
                    conn.execute(insert(table.__table__), batch)
                progress.advance(task, len(batch))
                batch = []
        if batch:
            with engine.begin() as conn:
                conn.execute(insert(table.__table__), batch)
            progress.advance(task, len(batch))
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
    engine.dispose()
    return {"user": users[3]["id"], "lead": lead_ids[n // 2], "investor": f"iv_{prefix}0000042"}


def lead_shapes(ids: dict) -> dict[str, dict]:
    """The issue's table, plus the call-next queue, an assignee, unassigned and a phone search."""
    return {
        "newest": {},
        "status=qualified": {"status": ["qualified"]},
        "sort=-score": {"sort": "-score"},
        "min_score=0.9&sort=-score": {"min_score": 0.9, "sort": "-score"},
        "source=ppc&status=new": {"source": ["ppc"], "status": ["new"]},
        "status=new&sort=-score (call next)": {"status": ["new"], "sort": "-score"},
        "assigned=<rep>": {"assigned": ids["user"]},
        "assigned=none": {"assigned": "none"},
        "q=Lead4242 (search)": {"q": "Lead4242"},
        "q=512200 (phone digits)": {"q": "5122004242"},
    }


def query_string(params: dict) -> str:
    return urlencode({k: v for k, v in params.items()}, doseq=True)


def compile_sql(statement) -> str:
    sql = str(statement.compile(dialect=postgresql.psycopg.dialect(), compile_kwargs={"literal_binds": True}))
    return sql.replace("%%", "%")  # the psycopg dialect doubles % for its paramstyle; executed without parameters


STARTUP_SECONDS = 6.0  # untimed requests after the API starts, while its background start-up work runs
WARMUP = 20  # untimed requests per shape first (a new connection, the first plan, cold pages), API and SQL alike


async def measure(base: str, headers: dict, path: str, requests: int) -> list[float]:
    latencies = []
    async with LoadClient(base, headers, 1) as http:
        for _ in range(WARMUP):
            if await http.get(path) != 200:
                raise RuntimeError(f"GET {path} failed during warm-up")
        for _ in range(requests):
            started = time.perf_counter()
            status = await http.get(path)
            latencies.append(time.perf_counter() - started)
            if status != 200:
                raise RuntimeError(f"GET {path} answered {status}")
    return latencies


def measure_sql(dsn: str, sql: str, requests: int) -> tuple[list[float], int]:
    latencies = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for _ in range(WARMUP):
            conn.execute(sql).fetchall()
        for _ in range(requests):
            started = time.perf_counter()
            rows = conn.execute(sql).fetchall()
            latencies.append(time.perf_counter() - started)
    return latencies, len(rows)


def figures(latencies: list[float]) -> dict:
    return {"p50_ms": pct(latencies, 0.5), "p99_ms": pct(latencies, 0.99)}


async def run(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp, fresh_database("postgres", Path(tmp)) as url:
        engine = make_engine(url)
        tenant = f"bench{uuid.uuid4().hex[:4]}"
        _, key = create_api_key(engine, tenant, Role.staff)
        headers = {"Authorization": f"Bearer {key}"}
        with Progress(transient=True) as progress:
            started = time.perf_counter()
            ids = seed(url, tenant, args.leads, progress)
            seeded_s = round(time.perf_counter() - started, 1)
        dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        results = {}
        with api_process(url, "127.0.0.1:1", free_port()) as base:  # no Temporal: lists read the database only
            # The API trains (or loads) the reply-intent model in a background thread for its first ~2 s: the
            # lists are measured once it is done, not while a fresh process is still starting up.
            deadline = time.monotonic() + STARTUP_SECONDS
            while time.monotonic() < deadline:
                httpx.get(f"{base}/api/v1/leads", headers=headers, timeout=30)
            shapes = [(name, f"/api/v1/leads?{query_string(params)}", lead_list_query(tenant, LeadFilters(**params)),
                       LeadFilters(**params)) for name, params in lead_shapes(ids).items()]
            # The second page of the newest: the cursor the first page handed out.
            first = httpx.get(f"{base}/api/v1/leads", headers=headers, timeout=30).json()
            cursor = first["next_cursor"]
            shapes.append(("second page of newest (cursor)", f"/api/v1/leads?cursor={cursor}",
                           lead_list_query(tenant, LeadFilters()), LeadFilters(), decode_cursor(cursor)))
            # A page far down the list: the 1,000th row's cursor.
            deep = httpx.get(f"{base}/api/v1/leads?limit=200", headers=headers, timeout=30).json()
            for _ in range(4):
                deep = httpx.get(f"{base}/api/v1/leads?limit=200&cursor={deep['next_cursor']}", headers=headers,
                                 timeout=30).json()
            shapes.append(("page after 1,000 rows (cursor)", f"/api/v1/leads?cursor={deep['next_cursor']}",
                           lead_list_query(tenant, LeadFilters()), LeadFilters(), decode_cursor(deep["next_cursor"])))
            with Progress(transient=True) as progress:
                task = progress.add_task("measuring", total=len(shapes) + 5)
                for name, path, query, filters, *after in shapes:
                    api = await measure(base, headers, path, args.requests)
                    sql = compile_sql(keyset(query, Lead, 51, after[0] if after else None, filters.sort_key,
                                             filters.descending))
                    bare, rows = await asyncio.to_thread(measure_sql, dsn, sql, args.requests)
                    results[name] = {"api": figures(api), "bare_sql": figures(bare), "rows": rows}
                    progress.advance(task)
                others = {
                    "investors newest": ("/api/v1/investors",
                                         keyset(select(Investor).where(Investor.tenant_id == tenant), Investor, 51)),
                    "investors status=engaged": (
                        "/api/v1/investors?status=engaged",
                        keyset(select(Investor).where(Investor.tenant_id == tenant, Investor.status == "engaged"),
                               Investor, 51)),
                    "deals stage=offer_made": (
                        "/api/v1/opportunities?stage=offer_made",
                        keyset(select(Opportunity).where(Opportunity.tenant_id == tenant,
                                                         Opportunity.stage == "offer_made"), Opportunity, 51)),
                    "deals assignee=me": (
                        f"/api/v1/opportunities?assignee={ids['user']}",
                        keyset(deal_list_query(tenant, DealFilters(assignee=ids["user"])), Opportunity, 51)),
                    "deals stale_for=3d": (
                        "/api/v1/opportunities?stale_for=3d",
                        keyset(deal_list_query(tenant, DealFilters(stale_for=timedelta(days=3))), Opportunity, 51,
                               None, "stage_entered_at", False)),
                    "tasks of a rep (open, by due)": (
                        f"/api/v1/tasks?assignee={ids['user']}",
                        keyset(task_list_query(tenant, TaskFilters(assignee=ids["user"])), Task, 51, None, "due_at",
                               False)),
                    "messages of a lead": (
                        f"/api/v1/messages?lead_id={ids['lead']}",
                        keyset(select(Message).where(Message.tenant_id == tenant, Message.lead_id == ids["lead"]),
                               Message, 51)),
                    "timeline of a lead": (
                        f"/api/v1/leads/{ids['lead']}/timeline",
                        select(TimelineEntry).where(TimelineEntry.tenant_id == tenant,
                                                    col(TimelineEntry.lead_id).in_([ids["lead"]]))
                        .order_by(col(TimelineEntry.occurred_at), col(TimelineEntry.id))),
                }
                for name, (path, statement) in others.items():
                    api = await measure(base, headers, path, args.requests)
                    bare, rows = await asyncio.to_thread(measure_sql, dsn, compile_sql(statement), args.requests)
                    results[name] = {"api": figures(api), "bare_sql": figures(bare), "rows": rows}
                    progress.advance(task)
        engine.dispose()
    worst = max(r["api"]["p99_ms"] for r in results.values())
    return {"leads": args.leads, "seeded_s": seeded_s, "requests_per_shape": args.requests, "shapes": results,
            "worst_api_p99_ms": worst, "median_api_p50_ms": statistics.median(r["api"]["p50_ms"]
                                                                              for r in results.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leads", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    results = asyncio.run(run(args))
    print(json.dumps({"bench": "lead_list", "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
                      "args": vars(args), "results": results}, indent=2))


if __name__ == "__main__":
    main()
