"""deal pipelines: when a deal entered its stage, the indexes behind the opportunity filters, disposition stages

Revision ID: 0015
Revises: 0014

`stage_entered_at` is the clock of stale-for and of the stage SLAs (backfilled from the last stage change, else
the creation time). The disposition pipeline now starts in `marketing` (definitions/pipelines.yaml): a
disposition deal still in the old `new` stage moves there.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

import models.base

revision: str = "0015"
down_revision: Union[str, None] = "0014"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

OPEN = "closed_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("stage_entered_at", models.base.UTCDateTime(timezone=True), nullable=True))
    op.execute("UPDATE opportunities SET stage_entered_at = COALESCE((SELECT MAX(c.changed_at) FROM "
               "opportunity_stage_changes c WHERE c.opportunity_id = opportunities.id), created_at)")
    op.execute("UPDATE opportunities SET stage = 'marketing' WHERE pipeline = 'disposition' AND stage = 'new'")
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.alter_column("stage_entered_at", existing_type=models.base.UTCDateTime(timezone=True),
                              nullable=False)
    op.create_index("ix_opportunities_tenant_pipeline", "opportunities", ["tenant_id", "pipeline", "created_at", "id"])
    op.create_index("ix_opportunities_tenant_assignee", "opportunities",
                    ["tenant_id", "assigned_to", "created_at", "id"])
    op.create_index("ix_opportunities_open_stage_entered", "opportunities", ["tenant_id", "stage_entered_at", "id"],
                    sqlite_where=sa.text(OPEN), postgresql_where=sa.text(OPEN))


def downgrade() -> None:
    op.drop_index("ix_opportunities_open_stage_entered", table_name="opportunities")
    op.drop_index("ix_opportunities_tenant_assignee", table_name="opportunities")
    op.drop_index("ix_opportunities_tenant_pipeline", table_name="opportunities")
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        batch_op.drop_column("stage_entered_at")
