"""the speed-to-lead first touch becomes a definition every tenant has published

Revision ID: 0007
Revises: 0006

LeadWorkflow no longer sends a hard-coded welcome, first SMS and nudge (patch "first-touch-by-definition"):
the shipped definitions/library/speed-to-lead.yaml does, starting from `lead.scored`. This publishes it for
every existing tenant that has no version of it yet (new tenants get it from services.tenants). Leads whose
workflow passed scoring before the change finish the old built-in cadence and never start speed-to-lead.

A tenant that published the shipped web-lead-nurture version 1 (which started on lead.created and, beside the
built-in cadence, messaged every web lead twice) gets the shipped version 2 published in its place: it starts
from lead.scored and `replaces: [speed-to-lead]`, so a web lead gets one first touch. Likewise the shipped
cant-reach version 1 (its first attempt at once, beside speed-to-lead's nudge) becomes version 2, which takes
over from the first touch. A definition the tenant wrote itself under those keys is left as it is.

Downgrading retires what the code before this revision cannot read (definitions naming lead.scored or
`replaces`) and removes the versions this revision published.
"""
from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

LIBRARY = Path(__file__).resolve().parents[2] / "definitions" / "library"
# sha256 of the shipped version 1 of each (git show f81f4ec:definitions/library/<key>.yaml): published as it
# was shipped, it is replaced by the shipped version of today.
SHIPPED_V1 = {"web-lead-nurture": "0362da63177856b59e6161991ee1e828ecf1462fd203cf8c7b948c195b11ab62",
              "cant-reach": "2a01ec4939890e0d04be1b690841ad13876a6dedb327db64539074790c6e1889"}
DEFINITIONS = sa.table("workflow_definitions", *(sa.column(c) for c in (
    "id", "tenant_id", "key", "version", "source", "content_hash", "status", "created_by")),
    sa.column("created_at", models.base.UTCDateTime()), sa.column("published_at", models.base.UTCDateTime()))


def _shipped(key: str) -> tuple[int, str]:
    from definitions.loader import load

    source = (LIBRARY / f"{key}.yaml").read_text()
    return load(source, f"{key}.yaml").version, source


def _publish(conn, tenant_id: str, key: str, version: int, source: str) -> None:
    now = datetime.now(UTC)
    conn.execute(sa.insert(DEFINITIONS).values(
        id=f"wd_{uuid.uuid4().hex[:20]}", tenant_id=tenant_id, key=key, version=version, source=source,
        content_hash=hashlib.sha256(source.encode()).hexdigest(), status="published",
        created_by="migration 0007", created_at=now, published_at=now))


def upgrade() -> None:
    conn = op.get_bind()
    version, source = _shipped("speed-to-lead")
    tenants = conn.execute(sa.text(
        "SELECT id FROM tenants WHERE id NOT IN (SELECT tenant_id FROM workflow_definitions WHERE key = :key)"),
        {"key": "speed-to-lead"}).scalars().all()
    for tenant_id in tenants:
        _publish(conn, tenant_id, "speed-to-lead", version, source)

    for key, v1_hash in SHIPPED_V1.items():
        shipped_version, shipped_source = _shipped(key)
        tenants = conn.execute(sa.text(
            "SELECT tenant_id FROM workflow_definitions WHERE key = :key AND version = 1 AND status = 'published' "
            "AND content_hash = :hash AND tenant_id NOT IN "
            "(SELECT tenant_id FROM workflow_definitions WHERE key = :key AND version >= :v)"),
            {"key": key, "hash": v1_hash, "v": shipped_version}).scalars().all()
        for tenant_id in tenants:
            _publish(conn, tenant_id, key, shipped_version, shipped_source)


def downgrade() -> None:
    op.execute("DELETE FROM workflow_definitions WHERE created_by = 'migration 0007'")
    op.execute("UPDATE workflow_definitions SET status = 'retired' WHERE status = 'published' "
               "AND (source LIKE '%lead.scored%' OR source LIKE '%replaces:%')")
