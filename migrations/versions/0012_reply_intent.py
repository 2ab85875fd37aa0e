"""reply intent on messages: the label, its confidence, who said so and which model or person

Revision ID: 0012
Revises: 0011

Every inbound reply is classified (scoring/intent.py); staff can correct it (POST /api/v1/messages/{id}/intent),
and the corrections are training rows for the next model (`dealflow scoring intent-train`), found by
ix_messages_intent_corrected.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: Union[str, None] = "0011"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("messages") as batch:
        batch.add_column(sa.Column("intent", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("intent_confidence", sa.Float(), nullable=True))
        batch.add_column(sa.Column("intent_source", sa.String(length=10), nullable=True))
        batch.add_column(sa.Column("intent_version", sa.String(length=100), nullable=True))
    op.create_index("ix_messages_intent_corrected", "messages", ["intent_source"],
                    sqlite_where=sa.text("intent_source = 'staff'"), postgresql_where=sa.text("intent_source = 'staff'"))


def downgrade() -> None:
    op.drop_index("ix_messages_intent_corrected", table_name="messages")
    with op.batch_alter_table("messages") as batch:
        for column in ("intent_version", "intent_source", "intent_confidence", "intent"):
            batch.drop_column(column)
