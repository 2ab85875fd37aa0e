"""investor profiles and accreditation records

Revision ID: 0016
Revises: 0015

The investor's entity type, check sizes, notes, owner, last contact; and `accreditations`, one row per
verification (method, evidence, who recorded it, when it expires). An investor marked accredited before this
keeps the flag; its first record sets the dates.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0016"
down_revision: Union[str, None] = "0015"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIME = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("investors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("entity_type", sa.String(length=20), nullable=False,
                                      server_default="individual"))
        batch_op.add_column(sa.Column("check_min", sa.Numeric(14, 2), nullable=True))
        batch_op.add_column(sa.Column("check_max", sa.Numeric(14, 2), nullable=True))
        batch_op.add_column(sa.Column("notes", sa.String(length=20000), nullable=True))
        batch_op.add_column(sa.Column("assigned_to", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("last_contacted_at", TIME, nullable=True))
        batch_op.add_column(sa.Column("updated_at", TIME, nullable=True))
        batch_op.create_foreign_key("fk_investors_assigned_to_users", "users", ["assigned_to"], ["id"])
    with op.batch_alter_table("investors", schema=None) as batch_op:
        batch_op.alter_column("entity_type", server_default=None, existing_type=sa.String(length=20))
    op.create_index("ix_investors_tenant_owner", "investors", ["tenant_id", "assigned_to", "created_at", "id"])
    op.create_table(
        "accreditations",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("tenant_id", sa.String(length=40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("investor_id", sa.String(length=40), sa.ForeignKey("investors.id"), nullable=False),
        sa.Column("method", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("evidence_document_id", sa.String(length=40), sa.ForeignKey("documents.id"), nullable=True),
        sa.Column("evidence", sa.String(length=2000), nullable=True),
        sa.Column("verifier", sa.String(length=200), nullable=True),
        sa.Column("verified_by", sa.String(length=200), nullable=False),
        sa.Column("verified_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=False),
        sa.Column("expired_at", TIME, nullable=True),
        sa.Column("workflow_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
    )
    op.create_index("ix_accreditations_investor", "accreditations", ["investor_id", "created_at", "id"])
    valid = sa.text("status = 'valid'")
    op.create_index("uq_accreditations_one_valid", "accreditations", ["investor_id"], unique=True,
                    postgresql_where=valid, sqlite_where=valid)


def downgrade() -> None:
    op.drop_index("uq_accreditations_one_valid", table_name="accreditations")
    op.drop_index("ix_accreditations_investor", table_name="accreditations")
    op.drop_table("accreditations")
    op.drop_index("ix_investors_tenant_owner", table_name="investors")
    with op.batch_alter_table("investors", schema=None) as batch_op:
        batch_op.drop_constraint("fk_investors_assigned_to_users", type_="foreignkey")
        for name in ("updated_at", "last_contacted_at", "assigned_to", "notes", "check_max", "check_min",
                     "entity_type"):
            batch_op.drop_column(name)
