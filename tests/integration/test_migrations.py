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


# Made by a migration alone, on Postgres only (a trigram GIN index on an expression the models cannot declare
# for one dialect): see migrations/versions/0008 and models.lead.LEAD_SEARCH_TEXT.
MIGRATION_ONLY_INDEXES = {"ix_leads_search"}


def test_models_and_migration_agree(engine):
    def include(obj, name, type_, reflected, compare_to) -> bool:
        return not (type_ == "index" and name in MIGRATION_ONLY_INDEXES)

    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn, opts={"include_object": include}), metadata)
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


def test_0006_links_the_duplicate_originals_a_database_already_holds(settings):
    """Run on a database that suffered the duplicate bug: the earliest lead of each person stays original, the
    others (chained by email or phone) are linked to it and get a `lead.merged` event for their workflows;
    duplicate properties are merged; then the unique indexes hold."""
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa
    from sqlalchemy.exc import IntegrityError

    from models.base import JSONType, UTCDateTime
    from tests.integration.stack import own_database

    with own_database(settings.database_url) as url:
        migrate(url, "0005", downgrade=True)
        engine = make_engine(url)
        t0 = datetime(2026, 11, 1, tzinfo=UTC)
        leads = [  # (id, email, phone, property, minutes after t0)
            ("ld_a", "maria@example.com", None, "pr_1", 0), ("ld_b", "maria@example.com", "+15125550142", "pr_2", 1),
            ("ld_c", None, "+15125550142", None, 2), ("ld_d", "other@example.com", None, None, 3)]
        def table(name, *columns, json=(), times=()):  # typed views: JSON and datetimes bound per backend
            return sa.table(name, *(sa.column(c) for c in columns), *(sa.column(c, JSONType) for c in json),
                            *(sa.column(c, UTCDateTime()) for c in times))

        tenants = table("tenants", "id", "name", "timezone", "send_window_days", "send_window_start",
                        "send_window_end", times=("created_at",))
        properties_t = table("properties", "id", "tenant_id", "street", "city", "state", "zip", "normalized_address",
                             json=("facts",), times=("created_at",))
        leads_t = table("leads", "id", "tenant_id", "first_name", "last_name", "email", "phone", "property_id",
                        "source", "status", "workflow_id", json=("tags", "custom"), times=("created_at", "updated_at"))
        with engine.begin() as conn:
            conn.execute(tenants.insert().values(id="old", name="Old", timezone="America/Chicago",
                                                 send_window_days="mon-sat", send_window_start="08:00",
                                                 send_window_end="20:00", created_at=t0))
            for pid, minutes in (("pr_1", 0), ("pr_2", 1)):
                conn.execute(properties_t.insert().values(
                    id=pid, tenant_id="old", street="1 Main St", city="Austin", state="TX", zip="78701",
                    normalized_address="1 MAIN ST, AUSTIN, TX 78701", facts={},
                    created_at=t0 + timedelta(minutes=minutes)))
            for lead_id, email, phone, prop, minutes in leads:
                at = t0 + timedelta(minutes=minutes)
                conn.execute(leads_t.insert().values(
                    id=lead_id, tenant_id="old", first_name="M", last_name="G", email=email, phone=phone,
                    property_id=prop, source="web_form", status="new", workflow_id=f"lead-old-{lead_id}", tags=[],
                    custom={}, created_at=at, updated_at=at))
        migrate(url)
        with engine.connect() as conn:
            rows = {r.id: r for r in conn.execute(text("SELECT id, duplicate_of, workflow_id, property_id FROM leads"))}
            merged = conn.execute(text("SELECT subject_id, name, workflow_signal FROM events ORDER BY seq")).all()
            properties = conn.execute(text("SELECT id FROM properties")).all()
        assert rows["ld_a"].duplicate_of is None and rows["ld_d"].duplicate_of is None
        assert rows["ld_b"].duplicate_of == "ld_a" and rows["ld_c"].duplicate_of == "ld_a"  # c is b's phone
        assert rows["ld_b"].workflow_id == "lead-old-ld_a"
        assert [tuple(m) for m in merged] == [("ld_b", "lead.merged", "merged"), ("ld_c", "lead.merged", "merged")]
        assert [p.id for p in properties] == ["pr_1"] and rows["ld_b"].property_id == "pr_1"
        with pytest.raises(IntegrityError), engine.begin() as conn:  # the database now refuses a second original
            conn.execute(text("UPDATE leads SET duplicate_of = NULL WHERE id = 'ld_b'"))
        engine.dispose()


def test_0007_publishes_speed_to_lead_for_existing_tenants(settings):
    """Every tenant the database already holds gets the speed-to-lead first touch published; one that had
    published the shipped web-lead-nurture or cant-reach v1 (which doubled a message beside it) gets the shipped
    v2, one that wrote its own web-lead-nurture keeps it, and one that retired speed-to-lead keeps it retired.
    Downgrading takes back what the older code could not read."""
    import hashlib

    from tests.integration.stack import own_database

    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "library-v1"  # as shipped at f81f4ec
    shipped_v1 = (fixtures / "web-lead-nurture.yaml").read_text()
    own = shipped_v1.replace("name: Web lead nurture", "name: Our own web nurture")
    with own_database(settings.database_url) as url:
        migrate(url, "0006", downgrade=True)
        engine = make_engine(url)
        with engine.begin() as conn:
            for tenant in ("plain", "shipped", "custom", "retired"):
                conn.execute(text("INSERT INTO tenants (id, name, timezone, send_window_days, send_window_start, "
                                  "send_window_end, created_at) VALUES (:id, :id, 'America/Chicago', 'mon-sat', "
                                  "'08:00', '20:00', CURRENT_TIMESTAMP)"), {"id": tenant})
            for tenant, key, source, status in (
                    ("shipped", "web-lead-nurture", shipped_v1, "published"),
                    ("shipped", "cant-reach", (fixtures / "cant-reach.yaml").read_text(), "published"),
                    ("custom", "web-lead-nurture", own, "published"),
                    ("retired", "speed-to-lead", "schema: dealflow/v1", "retired")):
                conn.execute(text("INSERT INTO workflow_definitions (id, tenant_id, key, version, source, content_hash,"
                                  " status, created_at) VALUES (:id, :t, :k, 1, :s, :h, :st, CURRENT_TIMESTAMP)"),
                             {"id": f"wd_{tenant}_{key}", "t": tenant, "k": key, "s": source, "st": status,
                              "h": hashlib.sha256(source.encode()).hexdigest()})

        def definitions():
            with engine.connect() as conn:
                return [tuple(r) for r in conn.execute(text(
                    "SELECT tenant_id, key, version, status FROM workflow_definitions "
                    "ORDER BY tenant_id, key, version"))]

        migrate(url)
        upgraded = definitions()
        migrate(url, "0006", downgrade=True)
        downgraded = definitions()
        engine.dispose()
    assert upgraded == [
        ("custom", "speed-to-lead", 1, "published"), ("custom", "web-lead-nurture", 1, "published"),
        ("plain", "speed-to-lead", 1, "published"),
        ("retired", "speed-to-lead", 1, "retired"),
        ("shipped", "cant-reach", 1, "published"), ("shipped", "cant-reach", 2, "published"),
        ("shipped", "speed-to-lead", 1, "published"), ("shipped", "web-lead-nurture", 1, "published"),
        ("shipped", "web-lead-nurture", 2, "published")]
    assert downgraded == [
        ("custom", "web-lead-nurture", 1, "published"), ("retired", "speed-to-lead", 1, "retired"),
        ("shipped", "cant-reach", 1, "published"), ("shipped", "web-lead-nurture", 1, "published")]
