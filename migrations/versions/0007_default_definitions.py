"""the speed-to-lead first touch becomes a definition every tenant has published

Revision ID: 0007
Revises: 0006

LeadWorkflow no longer sends a hard-coded welcome, first SMS and nudge (patch "first-touch-by-definition"):
the shipped definitions/library/speed-to-lead.yaml does, starting from `lead.scored`. This publishes it for
every existing tenant that has no version of it yet (new tenants get it from services.tenants). Leads whose
workflow passed scoring before the change finish the old built-in cadence and never start speed-to-lead.

A tenant that published the shipped web-lead-nurture version 1 (which started on lead.created and, beside the
built-in cadence, messaged every web lead twice) gets the shipped version 2 published in its place: it starts
from lead.scored and `replaces: [speed-to-lead]`, so a web lead gets one first touch. A web-lead-nurture the
tenant wrote itself is left as it is.
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
# sha256 of the shipped web-lead-nurture.yaml version 1 (git show f81f4ec:definitions/library/web-lead-nurture.yaml)
WEB_LEAD_NURTURE_V1 = "0362da63177856b59e6161991ee1e828ecf1462fd203cf8c7b948c195b11ab62"
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

    web_version, web_source = _shipped("web-lead-nurture")
    shipped_v1 = conn.execute(sa.text(
        "SELECT tenant_id FROM workflow_definitions WHERE key = 'web-lead-nurture' AND version = 1 "
        "AND status = 'published' AND content_hash = :hash AND tenant_id NOT IN "
        "(SELECT tenant_id FROM workflow_definitions WHERE key = 'web-lead-nurture' AND version >= :v)"),
        {"hash": WEB_LEAD_NURTURE_V1, "v": web_version}).scalars().all()
    for tenant_id in shipped_v1:
        _publish(conn, tenant_id, "web-lead-nurture", web_version, web_source)


def downgrade() -> None:
    op.execute("DELETE FROM workflow_definitions WHERE created_by = 'migration 0007'")
