"""the inbox: an index on messages by tenant, direction and time (the replies across leads and investors, newest
first, without reading the tenant's outbound mail)

Revision ID: 0020
Revises: 0019
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0020"
down_revision: Union[str, None] = "0019"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_messages_tenant_direction_created", "messages", ["tenant_id", "direction", "created_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_messages_tenant_direction_created", table_name="messages")
