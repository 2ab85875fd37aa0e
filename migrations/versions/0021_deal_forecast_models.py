"""deal forecasts (issue 13): scoring_models holds every model of a tenant, told apart by `model` (lead,
deal_return, deal_close_time); versions and the active one are per tenant and model

Revision ID: 0021
Revises: 0020
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: Union[str, None] = "0020"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("scoring_models", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model", sa.String(length=20), nullable=False, server_default="lead"))
        batch_op.drop_constraint("uq_scoring_models_tenant_id", type_="unique")
        batch_op.create_unique_constraint("uq_scoring_models_tenant_id", ["tenant_id", "model", "version"])
        batch_op.drop_index("ix_scoring_models_active")
        batch_op.create_index("ix_scoring_models_active", ["tenant_id", "model", "active"], unique=False)


def downgrade() -> None:
    op.execute("DELETE FROM scoring_models WHERE model <> 'lead'")
    with op.batch_alter_table("scoring_models", schema=None) as batch_op:
        batch_op.drop_index("ix_scoring_models_active")
        batch_op.create_index("ix_scoring_models_active", ["tenant_id", "active"], unique=False)
        batch_op.drop_constraint("uq_scoring_models_tenant_id", type_="unique")
        batch_op.create_unique_constraint("uq_scoring_models_tenant_id", ["tenant_id", "version"])
        batch_op.drop_column("model")
