"""Connections the database dropped (a restart, a failover, an idle timeout) are replaced at checkout, not handed
to a request: the engine pings a connection that sat idle (core.db.PING_BYPASS_SECONDS) and throws away one that
does not answer. Postgres only: the server ends every connection to the database, as a restart would."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from core import db
from core.db import make_engine


@pytest.fixture
def postgres_url(database_url) -> str:
    if make_url(database_url).get_backend_name() != "postgresql":
        pytest.skip("needs Postgres (DEALFLOW_TEST_DATABASE_URL): SQLite has no server to drop connections")
    return database_url


def _drop_every_connection(url: str) -> int:
    admin = make_engine(url).execution_options(isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        dropped = conn.execute(text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid() AND backend_type = 'client backend'"
            " AND application_name = 'reconnect-test'")).scalar_one()
    admin.dispose()
    return dropped


def test_a_connection_dropped_by_the_server_is_replaced_at_checkout(postgres_url):
    url = make_url(postgres_url).update_query_dict({"application_name": "reconnect-test"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        pids = set()
        for _ in range(3):  # several pooled connections, all returned to the pool
            with engine.connect() as conn:
                pids.add(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
        assert _drop_every_connection(postgres_url) >= 1
        time.sleep(db.PING_BYPASS_SECONDS + 0.1)  # past the window: the next checkout pings
        for _ in range(3):
            with engine.connect() as conn:
                pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
                assert pid not in pids  # a new backend: the dropped one was never used
    finally:
        engine.dispose()


def test_without_the_ping_the_dropped_connection_reaches_the_caller(postgres_url, monkeypatch):
    """The baseline the first test stands on: with the ping disabled, the same drop fails the next statement."""
    monkeypatch.setattr(db, "PING_BYPASS_SECONDS", 3600.0)
    url = make_url(postgres_url).update_query_dict({"application_name": "reconnect-test"})
    engine = make_engine(url.render_as_string(hide_password=False))
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert _drop_every_connection(postgres_url) == 1
        with pytest.raises(Exception, match="terminat|closed|connection"), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    finally:
        engine.dispose()
