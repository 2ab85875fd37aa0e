"""event outbox; one original lead per person and one property per address, enforced by the database

Revision ID: 0006
Revises: 0005

Runs on a database that suffered the duplicate bug: before the unique indexes are created, properties with
the same address are merged into the earliest (leads and deals repointed), and live "original" leads sharing
an email or phone are linked to the earliest of them (transitively: A~B by email, B~C by phone is one
person). Each lead linked this way gets a `lead.merged` event, so the relay tells its workflow, which stops
its cadence; the earliest lead's workflow carries on.
"""
from __future__ import annotations

from datetime import UTC, datetime
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

ORIGINAL = "duplicate_of IS NULL AND deleted_at IS NULL"
# Typed views of the tables the data steps write (JSON and aware datetimes bound as on every backend).
EVENTS = sa.table("events", *(sa.column(c) for c in ("event_id", "tenant_id", "subject_type", "subject_id", "name",
                                                       "workflow_signal", "start", "attempts")),
                  sa.column("data", models.base.JSONType), sa.column("signal_payload", models.base.JSONType),
                  sa.column("occurred_at", models.base.UTCDateTime()),
                  sa.column("next_attempt_at", models.base.UTCDateTime()))



def _merge_properties(conn) -> None:
    rows = conn.execute(sa.text(
        "SELECT id, tenant_id, normalized_address FROM properties ORDER BY created_at, id")).all()
    keep: dict[tuple[str, str], str] = {}
    for pid, tenant, address in rows:
        first = keep.setdefault((tenant, address), pid)
        if first != pid:
            for table in ("leads", "opportunities"):
                conn.execute(sa.text(f"UPDATE {table} SET property_id = :keep WHERE property_id = :dup"),
                             {"keep": first, "dup": pid})
            conn.execute(sa.text("DELETE FROM properties WHERE id = :dup"), {"dup": pid})


def _link_duplicate_originals(conn) -> None:
    leads = conn.execute(sa.text(
        f"SELECT id, tenant_id, email, phone FROM leads WHERE {ORIGINAL} ORDER BY created_at, id")).all()
    order = {row.id: i for i, row in enumerate(leads)}
    parent = {row.id: row.id for row in leads}

    def root(x: str) -> str:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: str, b: str) -> None:
        ra, rb = root(a), root(b)
        if ra != rb:  # the earliest lead is the root
            first, second = (ra, rb) if order[ra] < order[rb] else (rb, ra)
            parent[second] = first

    seen: dict[tuple[str, str, str], str] = {}
    for row in leads:
        for field, value in (("email", row.email), ("phone", row.phone)):
            if value:
                other = seen.setdefault((row.tenant_id, field, value), row.id)
                if other != row.id:
                    union(other, row.id)
    now = datetime.now(UTC)
    for row in leads:
        original = root(row.id)
        if original == row.id:
            continue
        workflow_id = f"lead-{row.tenant_id}-{original}"
        conn.execute(sa.text("UPDATE leads SET duplicate_of = :o, workflow_id = :w WHERE id = :id"),
                     {"o": original, "w": workflow_id, "id": row.id})
        # Its own duplicates now point at the person's original too (no chains).
        conn.execute(sa.text("UPDATE leads SET duplicate_of = :o, workflow_id = :w WHERE duplicate_of = :id"),
                     {"o": original, "w": workflow_id, "id": row.id})
        payload = {"event_id": f"{row.id}:merged", "actor": "migration", "data": {"original": original},
                   "note": f"Merged into {original}: the same person was stored twice"}
        conn.execute(EVENTS.insert().values(
            event_id=f"{row.id}:merged", tenant_id=row.tenant_id, subject_type="lead", subject_id=row.id,
            name="lead.merged", data={"original": original}, workflow_signal="merged", signal_payload=payload,
            start=False, occurred_at=now, next_attempt_at=now, attempts=0))
        # (the lead's workflow records lead.merged on the timeline when it hears the event)

def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True, autoincrement=True),
        sa.Column("event_id", sa.String(length=300), nullable=False),
        sa.Column("tenant_id", sa.String(length=40), nullable=False),
        sa.Column("subject_type", sa.String(length=20), nullable=False),
        sa.Column("subject_id", sa.String(length=40), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("data", models.base.JSONType, nullable=False),
        sa.Column("workflow_signal", sa.String(length=40), nullable=True),
        sa.Column("signal_payload", models.base.JSONType, nullable=True),
        sa.Column("start", sa.Boolean(), nullable=False),
        sa.Column("traceparent", sa.String(length=64), nullable=True),
        sa.Column("occurred_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("delivered_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", models.base.UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.String(), nullable=True),
        sa.Column("parked_at", models.base.UTCDateTime(), nullable=True),
        sa.Column("outcome", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name="fk_events_tenant_id_tenants"),
        sa.PrimaryKeyConstraint("seq", name="pk_events"),
        sa.UniqueConstraint("tenant_id", "subject_type", "subject_id", "name", "event_id",
                            name="uq_events_subject_event"),
    )
    op.create_index("ix_events_pending", "events", ["seq"], sqlite_where=sa.text("delivered_at IS NULL"),
                    postgresql_where=sa.text("delivered_at IS NULL"))
    op.create_index("ix_events_subject", "events", ["subject_type", "subject_id", "seq"])

    conn = op.get_bind()
    _merge_properties(conn)
    with op.batch_alter_table("properties") as batch_op:
        batch_op.drop_index("ix_properties_tenant_address")
        batch_op.create_index("ix_properties_tenant_address", ["tenant_id", "normalized_address"], unique=True)

    _link_duplicate_originals(conn)
    for field in ("email", "phone"):
        where = sa.text(f"{ORIGINAL} AND {field} IS NOT NULL")
        op.create_index(f"uq_leads_original_{field}", "leads", ["tenant_id", field], unique=True,
                        sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    op.drop_index("uq_leads_original_phone", table_name="leads")
    op.drop_index("uq_leads_original_email", table_name="leads")
    with op.batch_alter_table("properties") as batch_op:
        batch_op.drop_index("ix_properties_tenant_address")
        batch_op.create_index("ix_properties_tenant_address", ["tenant_id", "normalized_address"], unique=False)
    op.drop_index("ix_events_subject", table_name="events")
    op.drop_index("ix_events_pending", table_name="events")
    op.drop_table("events")
