"""The Alembic migration matches the models and runs down and up again on the test database."""

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError
from sqlmodel import Session

from core.db import make_engine, migrate
from models.audit import AuditLog
from models.base import metadata


HEAD = sorted(p.name.split("_")[0] for p in (Path(__file__).resolve().parents[2] / "migrations" / "versions")
              .glob("[0-9]*.py"))[-1]


def test_models_and_migration_agree(engine):
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_downgrade_and_upgrade_again(tmp_path):
    url = f"sqlite:///{tmp_path / 'roundtrip.db'}"
    migrate(url)
    migrate(url, "base", downgrade=True)
    engine = make_engine(url)
    with engine.connect() as conn:
        tables = {r[0] for r in conn.execute(text("SELECT name FROM sqlite_master WHERE type='table'"))}
    assert tables <= {"alembic_version"}
    migrate(url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    engine.dispose()


def test_audit_log_is_append_only(engine):
    with Session(engine) as session:
        row = AuditLog(actor="test", action="test.append_only", entity_type="test", entity_id="x")
        session.add(row)
        session.commit()
        row_id = row.id
    for statement in (f"UPDATE audit_log SET actor = 'evil' WHERE id = {row_id}",
                      f"DELETE FROM audit_log WHERE id = {row_id}"):
        with pytest.raises(DatabaseError, match="append-only"), engine.begin() as conn:
            conn.execute(text(statement))
    with Session(engine) as session:
        assert session.get(AuditLog, row_id).actor == "test"
