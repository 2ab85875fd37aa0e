"""learned investor ranking (issue 12): each match keeps the facts the rules read when it was made (frozen once
the deal is sent), so a model of past outcomes learns from what was known then, not from what the outcome wrote

Revision ID: 0022
Revises: 0021
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op
from sqlalchemy import Text
from sqlalchemy.dialects import postgresql

revision: str = "0022"
down_revision: Union[str, None] = "0021"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("opportunity_matches") as batch:
        batch.add_column(sa.Column("facts", sa.JSON().with_variant(postgresql.JSONB(astext_type=Text()), "postgresql"),
                                   nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opportunity_matches") as batch:
        batch.drop_column("facts")
