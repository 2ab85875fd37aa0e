"""Shared by the benchmarks: a database at rest before a measurement."""

from __future__ import annotations

import time


def settle(engine, limit: float = 60.0, vacuum: tuple[str, ...] = ()) -> float:
    """Let the database finish what a bulk phase left (a checkpoint, autovacuum of the new rows; `vacuum`: tables
    vacuumed at once, as autovacuum would have long before a real book is worked on) so what is measured next is
    steady work, not the after-effects of rows written a moment before. Seconds waited."""
    from sqlalchemy import text

    started = time.perf_counter()
    with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            for table in vacuum:
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text(f"VACUUM {table}"))
            conn.execute(text("CHECKPOINT"))
            conn.execute(text("ANALYZE"))
            while time.perf_counter() - started < limit and conn.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'autovacuum worker'")).scalar():
                time.sleep(0.5)
        else:
            conn.execute(text("PRAGMA wal_checkpoint(TRUNCATE)"))
    time.sleep(1.0)
    return round(time.perf_counter() - started, 1)
