"""A drift report's speed over a scored book, as JSON, beside the bare read of the same leads in the same run.

Seeds N leads drawn like the cold-start book (services as lead_features reads them: contact, enrichment, messages,
replies; scoring/synthetic.py book_leads), half of them shifted (older owners, pricier houses, more PPC), scores
them with the tenant's cold-start model (services/rescoring.py, not timed), then times `drift_report` (read the
leads a page at a time, their messages and replies as of scoring, the features, the PSI of each and of the score)
against a bare `SELECT` of the same columns of the same leads (the floor any report pays).

    python bench/drift.py [--rows 100000] [--database-url postgresql://...]   (default: a temporary SQLite file)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select  # noqa: E402
from sqlmodel import Session  # noqa: E402

from core.db import make_engine, migrate  # noqa: E402
from core.settings import Settings  # noqa: E402
from models.base import utcnow  # noqa: E402
from models.lead import Lead  # noqa: E402
from models.message import Message  # noqa: E402
from models.timeline import TimelineEntry  # noqa: E402
from scoring.registry import ModelRegistry  # noqa: E402
from scoring.synthetic import book_leads, synthetic_book  # noqa: E402
from services.drift import READ, drift_report  # noqa: E402
from services.rescoring import rescore_leads  # noqa: E402
from services.tenants import create_tenant  # noqa: E402


def seed(engine, tenant: str, rows: int) -> None:
    frame, _ = synthetic_book(n=rows, seed=21)
    half = frame.index >= rows // 2
    frame.loc[half, "years_owned"] += 12
    frame.loc[half, "assessed_value"] *= 1.8
    frame.loc[half & (frame.index % 2 == 0), "source"] = "ppc"
    with Session(engine) as session:
        create_tenant(session, tenant)
        session.commit()
    records = book_leads(frame, tenant, utcnow())
    for table, model in (("leads", Lead), ("messages", Message), ("timeline_entries", TimelineEntry)):
        for start in range(0, len(records[table]), 5000):
            with Session(engine) as session:
                session.execute(insert(model), records[table][start:start + 5000])
                session.commit()


def main(rows: int, database_url: str | None, rounds: int = 3) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        url = database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        migrate(url)
        engine = make_engine(url)
        tenant = f"drift{uuid.uuid4().hex[:6]}"
        settings = Settings(database_url=url, models_dir=Path(folder) / "models")
        try:
            t = time.perf_counter()
            seed(engine, tenant, rows)
            seeded = time.perf_counter() - t
            registry = ModelRegistry(engine, settings.effective_models_dir)
            t = time.perf_counter()
            rescore_leads(engine, registry, tenant)
            rescored = time.perf_counter() - t
            if engine.dialect.name == "postgresql":  # what autovacuum does to a live table after bulk writes
                with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
                    connection.exec_driver_sql("VACUUM ANALYZE leads, messages, timeline_entries")
            table = Lead.__table__
            ours, bare, report = [], [], None
            for _ in range(rounds):  # interleaved: the bare read, then the report
                t = time.perf_counter()
                with Session(engine) as session:
                    n = len(session.execute(select(*(table.c[c] for c in READ if c != "custom")).where(
                        table.c.tenant_id == tenant, table.c.scored_at.is_not(None))).all())
                bare.append(time.perf_counter() - t)
                t = time.perf_counter()
                with Session(engine) as session:
                    report = drift_report(session, settings, tenant)
                ours.append(time.perf_counter() - t)
        finally:
            engine.dispose()
    return {"benchmark": "drift", "rows": rows, "database": url.split(":")[0],
            "seed_seconds": round(seeded, 1), "rescore_seconds": round(rescored, 1),
            "drift_report_seconds_median": round(statistics.median(ours), 2),
            "drift_report_seconds": [round(s, 2) for s in ours],
            "baseline_bare_select_seconds_median": round(statistics.median(bare), 2), "leads_read": n,
            "n_current": report.n_current, "drifted": report.drifted, "score_psi": report.score.psi,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="seed and report in this database (default: a temporary SQLite file)")
    args = parser.parse_args()
    print(json.dumps(main(args.rows, args.database_url), indent=2))
