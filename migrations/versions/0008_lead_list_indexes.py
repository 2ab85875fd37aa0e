"""indexes for every filter and sort of the lists staff use, and a trigram index for the lead search (Postgres)

Revision ID: 0008
Revises: 0007

Each of the list's filters (status, source, assignee) and sorts (created, score) gets a partial index over the
live, non-duplicate leads the list shows by default, in (tenant, filter, sort key, id) order, so a page — the
first or the thousandth, through the keyset cursor — is an index scan that stops after `limit` rows. The old
(tenant, status) index is replaced by (tenant, status, created_at, id). The leads linked to an original get an index of their own (a lead's timeline
reads them on every view; it was a scan of the table).

The other lists get (tenant, [filter,] created_at, id) in place of their single-column indexes: investors (all,
by status), deals (all, by stage), messages (the tenant's, a lead's, an investor's).

The search (name, email, address, phone) is one expression, `models.lead.LEAD_SEARCH_TEXT`; on Postgres a GIN
trigram index on it (extension pg_trgm, created here when the role may; when it may not, the search stays a
scan and a warning says so). SQLite has no trigram index: its search scans the tenant's leads.
"""
from __future__ import annotations

import logging
from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: Union[str, None] = "0007"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

log = logging.getLogger("alembic.runtime.migration")

ORIGINAL = "duplicate_of IS NULL AND deleted_at IS NULL"
SCORED = f"{ORIGINAL} AND score IS NOT NULL"
LIST_INDEXES = {  # name: (columns after tenant_id and before id, predicate)
    "ix_leads_list_created": (["created_at"], ORIGINAL),
    "ix_leads_list_score": (["score"], SCORED),
    "ix_leads_list_status": (["status", "created_at"], ORIGINAL),
    "ix_leads_list_status_score": (["status", "score"], SCORED),
    "ix_leads_list_source": (["source", "created_at"], ORIGINAL),
    "ix_leads_list_assigned": (["assigned_to", "created_at"], ORIGINAL),
}
REPLACED = {  # table: {old single-column index: the composite that serves it and the list}
    "messages": {"ix_messages_tenant_id": ("ix_messages_tenant_created", ["tenant_id", "created_at", "id"]),
                 "ix_messages_lead_id": ("ix_messages_lead_created", ["lead_id", "created_at", "id"]),
                 "ix_messages_investor_id": ("ix_messages_investor_created", ["investor_id", "created_at", "id"])},
    "investors": {"ix_investors_tenant_id": ("ix_investors_tenant_created", ["tenant_id", "created_at", "id"])},
    "opportunities": {"ix_opportunities_tenant_id": ("ix_opportunities_tenant_created",
                                                     ["tenant_id", "created_at", "id"])},
}
ADDED = {"ix_investors_tenant_status": ("investors", ["tenant_id", "status", "created_at", "id"]),
         "ix_opportunities_tenant_stage": ("opportunities", ["tenant_id", "stage", "created_at", "id"])}
# The same text as models.lead.LEAD_SEARCH_TEXT (the planner matches the index by its expression).
SEARCH_TEXT = ("lower(first_name || ' ' || last_name || ' ' || coalesce(email, '') || ' ' || "
               "coalesce(property_address, '') || ' ' || coalesce(phone, ''))")


def _trigrams_available(bind) -> bool:
    if bind.execute(sa.text("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")).scalar():
        return True
    try:
        with bind.begin_nested():
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
        return True
    except sa.exc.DBAPIError as exc:
        log.warning("pg_trgm is not available (%s): the lead search will scan the tenant's leads (a superuser's "
                    "CREATE EXTENSION pg_trgm before this migration gives it its index)", str(exc).splitlines()[0])
        return False


def upgrade() -> None:
    for name, (columns, where) in LIST_INDEXES.items():
        op.create_index(name, "leads", ["tenant_id", *columns, "id"], sqlite_where=sa.text(where),
                        postgresql_where=sa.text(where))
    op.drop_index("ix_leads_tenant_status", table_name="leads")
    op.create_index("ix_leads_duplicate_of", "leads", ["duplicate_of"], sqlite_where=sa.text("duplicate_of IS NOT NULL"),
                    postgresql_where=sa.text("duplicate_of IS NOT NULL"))
    for table, indexes in REPLACED.items():
        for old, (new, columns) in indexes.items():
            op.create_index(new, table, columns)
            op.drop_index(old, table_name=table)
    for name, (table, columns) in ADDED.items():
        op.create_index(name, table, columns)
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and _trigrams_available(bind):
        op.execute(f"CREATE INDEX ix_leads_search ON leads USING gin (({SEARCH_TEXT}) gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS ix_leads_search")
    for name, (table, _) in ADDED.items():
        op.drop_index(name, table_name=table)
    for table, indexes in REPLACED.items():
        for old, (new, columns) in indexes.items():
            op.create_index(old, table, columns[:1])
            op.drop_index(new, table_name=table)
    op.create_index("ix_leads_tenant_status", "leads", ["tenant_id", "status"])
    op.drop_index("ix_leads_duplicate_of", table_name="leads")
    for name in LIST_INDEXES:
        op.drop_index(name, table_name="leads")
