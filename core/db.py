"""CRM database engine and sessions (SQLite with WAL + foreign keys, or Postgres via psycopg 3)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.exc import DisconnectionError, IntegrityError
from sqlalchemy.engine import make_url
from sqlmodel import Session, create_engine


def make_engine(url: str) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # A request holds its connection while SQLite's single writer makes it wait its turn: the pool must
        # not run dry before the lock comes round (the default 5 + 10 gave "QueuePool limit reached" 500s at
        # 32 concurrent intakes). Connections to a file are cheap.
        in_memory = not parsed.database or parsed.database == ":memory:"
        pool = {} if in_memory else {"pool_size": 20, "max_overflow": 80, "pool_timeout": 60}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    # Connections kept open cover a process's steady concurrency (the relay's 16 threads, the scanner and the
    # activities; an API process's requests): the pool closes an overflow connection when it is checked in, and
    # a new one costs a Postgres backend fork. At most 30 per process, as before (docs/decisions.md).
    engine = create_engine(url, pool_size=24, max_overflow=6)
    _ping_idle_connections(engine)
    return engine


# A connection handed back less than this long ago is handed out again without a ping (HikariCP's
# aliveBypassWindowMs, 500 ms): under load every checkout found a busy connection and pinged it anyway, 8% of an
# intake's CPU and a round trip; one that sat idle — maybe across a database restart — is still pinged.
PING_BYPASS_SECONDS = 0.5


def _ping_idle_connections(engine: Engine) -> None:
    """pool_pre_ping, skipped for a connection in use moments ago. A failed ping is a DisconnectionError, which
    makes the pool throw the connection away and take another (SQLAlchemy's pessimistic recipe)."""

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection, record) -> None:
        record.info["returned_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_connection, record, _proxy) -> None:
        if time.monotonic() - record.info.get("returned_at", 0.0) < PING_BYPASS_SECONDS:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except engine.dialect.loaded_dbapi.Error as exc:  # a connection that cannot answer SELECT 1 is gone
            error = DisconnectionError(str(exc))
            # the server went away (a restart): every connection of the pool is stale, not just this one
            error.invalidate_pool = engine.dialect.is_disconnect(exc, dbapi_connection, None)
            raise error from exc


def is_unique_violation(exc: Exception) -> bool:
    """True for a unique-constraint failure on SQLite or Postgres."""
    orig = getattr(exc, "orig", exc)
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "23505":
        return True
    return "UNIQUE constraint failed" in str(orig)


T = TypeVar("T")
log = logging.getLogger("dealflow.db")


def committed(session: Session) -> bool:
    """Commit; False (rolled back) when a unique constraint refused it — someone else wrote it first."""
    try:
        session.commit()
        return True
    except IntegrityError as exc:
        session.rollback()
        if not is_unique_violation(exc):
            raise
        return False


def in_transaction(session: Session, work: Callable[[], T], attempts: int = 5) -> T:
    """Run `work` and commit. A unique violation means a concurrent writer committed the same thing first:
    roll back and run `work` again, which now reads what the other one wrote."""
    for attempt in range(1, attempts + 1):
        try:
            result = work()
            session.commit()
            return result
        except IntegrityError as exc:
            session.rollback()
            if not is_unique_violation(exc) or attempt == attempts:
                raise
            log.info("concurrent write (%s), reading again (attempt %d)", exc.orig.__class__.__name__,
                     attempt)
        except BaseException:
            session.rollback()
            raise
    raise AssertionError("unreachable")


def migrate(url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    """Run Alembic migrations up (or down) to `revision` against `url`."""
    from alembic import command
    from alembic.config import Config

    root = Path(__file__).resolve().parent.parent / "migrations"
    config = Config()
    config.set_main_option("script_location", str(root))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    (command.downgrade if downgrade else command.upgrade)(config, revision)


def like_pattern(text: str) -> str:
    """`%text%` for `LIKE ... ESCAPE '\\'`, with LIKE's wildcards in `text` taken literally: a search for "%"
    or "_" finds the rows that contain one, not every row."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
