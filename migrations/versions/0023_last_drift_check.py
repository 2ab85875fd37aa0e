"""drift gauges across restarts (issue 13): a lead model version keeps its last scheduled drift check (each
feature's PSI and the score's), from which a starting worker sets the drift gauges again

Revision ID: 0023
Revises: 0022
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0023"
down_revision: Union[str, None] = "0022"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("scoring_models") as batch:
        batch.add_column(sa.Column("last_drift_check",
                                   sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("scoring_models") as batch:
        batch.drop_column("last_drift_check")
