"""an index on the address a message went to, for the opt-out that a STOP applies across tenants

Revision ID: 0011
Revises: 0008

An inbound STOP opts the number out for every tenant that texted it from the number (or through the shared
messaging service): `services.inbound_sms.tenants_that_texted` finds them among the outbound messages by
`to_address`, which was a scan of every tenant's messages.
"""
from __future__ import annotations

from typing import Sequence, Union

from alembic import op

revision: str = "0011"
down_revision: Union[str, None] = "0008"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_index("ix_messages_to_address", "messages", ["to_address", "channel", "direction"])


def downgrade() -> None:
    op.drop_index("ix_messages_to_address", table_name="messages")
