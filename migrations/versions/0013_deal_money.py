"""deal money: the sale price, the assignment fee, the closing costs and the repairs spent on a deal

Revision ID: 0013
Revises: 0012

The asking, offer and contract prices, the ARV and the repair estimate were already there; these four complete
what a deal records (issue 11) and what its analysis (scoring/deal_analysis.py) reads. All nullable: nothing to
backfill.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: Union[str, None] = "0012"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

COLUMNS = ("sale_price", "assignment_fee", "closing_costs", "repairs_spent")


def upgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        for name in COLUMNS:
            batch_op.add_column(sa.Column(name, sa.Numeric(14, 2), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("opportunities", schema=None) as batch_op:
        for name in reversed(COLUMNS):
            batch_op.drop_column(name)
