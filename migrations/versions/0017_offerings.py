"""capital raises: offerings on deals and the investors' allocations in them

Revision ID: 0017
Revises: 0016
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0017"
down_revision: Union[str, None] = "0016"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

TIME = models.base.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "offerings",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("tenant_id", sa.String(length=40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("opportunity_id", sa.String(length=40), sa.ForeignKey("opportunities.id"), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("target_amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("minimum_investment", sa.Numeric(14, 2), nullable=True),
        sa.Column("rule", sa.String(length=8), nullable=False),
        sa.Column("close_date", sa.Date(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("workflow_id", sa.String(length=200), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
    )
    op.create_index("ix_offerings_opportunity_id", "offerings", ["opportunity_id"])
    op.create_table(
        "allocations",
        sa.Column("id", sa.String(length=40), primary_key=True),
        sa.Column("tenant_id", sa.String(length=40), sa.ForeignKey("tenants.id"), nullable=False),
        sa.Column("offering_id", sa.String(length=40), sa.ForeignKey("offerings.id"), nullable=False),
        sa.Column("investor_id", sa.String(length=40), sa.ForeignKey("investors.id"), nullable=False),
        sa.Column("amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("subscription_document_id", sa.String(length=40), sa.ForeignKey("documents.id"), nullable=True),
        sa.Column("funded_amount", sa.Numeric(14, 2), nullable=True),
        sa.Column("funded_on", sa.Date(), nullable=True),
        sa.Column("funding_method", sa.String(length=10), nullable=True),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("updated_at", TIME, nullable=False),
        sa.UniqueConstraint("offering_id", "investor_id", name="uq_allocations_offering_investor"),
    )
    op.create_index("ix_allocations_investor", "allocations", ["investor_id"])


def downgrade() -> None:
    op.drop_index("ix_allocations_investor", table_name="allocations")
    op.drop_table("allocations")
    op.drop_index("ix_offerings_opportunity_id", table_name="offerings")
    op.drop_table("offerings")
