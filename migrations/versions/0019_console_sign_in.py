"""console sign-in: staff users' browser sessions, one-time sign-in links, sign-in attempts (the rate limit)

Revision ID: 0019
Revises: 0018

- staff_sessions: a signed-in browser (the cookie's SHA-256, unique), its CSRF token, absolute expiry, sign-out.
- sign_in_links: a mailed one-time link (its token's SHA-256, unique), claimed once before it expires.
- sign_in_attempts: every try by email and by address, counted by the rate limit in every API process.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.base

revision: str = "0019"
down_revision: Union[str, None] = "0018"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

S = sqlmodel.sql.sqltypes.AutoString
T = models.base.UTCDateTime


def upgrade() -> None:
    op.create_table(
        "staff_sessions",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("tenant_id", S(length=40), nullable=False),
        sa.Column("user_id", S(length=40), nullable=False),
        sa.Column("token_hash", S(length=64), nullable=False),
        sa.Column("csrf_token", S(length=64), nullable=False),
        sa.Column("method", S(length=16), nullable=False),
        sa.Column("ip", S(length=64), nullable=True),
        sa.Column("user_agent", S(length=300), nullable=True),
        sa.Column("created_at", T(timezone=True), nullable=False),
        sa.Column("expires_at", T(timezone=True), nullable=False),
        sa.Column("last_seen_at", T(timezone=True), nullable=True),
        sa.Column("revoked_at", T(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_staff_sessions_user_id", "staff_sessions", ["user_id"])
    op.create_table(
        "sign_in_links",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("tenant_id", S(length=40), nullable=False),
        sa.Column("user_id", S(length=40), nullable=False),
        sa.Column("token_hash", S(length=64), nullable=False),
        sa.Column("created_at", T(timezone=True), nullable=False),
        sa.Column("expires_at", T(timezone=True), nullable=False),
        sa.Column("used_at", T(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"]),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
    )
    op.create_index("ix_sign_in_links_user_id", "sign_in_links", ["user_id"])
    op.create_table(
        "sign_in_attempts",
        sa.Column("id", S(length=40), nullable=False),
        sa.Column("email", S(length=320), nullable=False),
        sa.Column("ip", S(length=64), nullable=False),
        sa.Column("kind", S(length=16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("at", T(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_sign_in_attempts_email_at", "sign_in_attempts", ["email", "at"])
    op.create_index("ix_sign_in_attempts_ip_at", "sign_in_attempts", ["ip", "at"])


def downgrade() -> None:
    op.drop_index("ix_sign_in_attempts_ip_at", table_name="sign_in_attempts")
    op.drop_index("ix_sign_in_attempts_email_at", table_name="sign_in_attempts")
    op.drop_table("sign_in_attempts")
    op.drop_index("ix_sign_in_links_user_id", table_name="sign_in_links")
    op.drop_table("sign_in_links")
    op.drop_index("ix_staff_sessions_user_id", table_name="staff_sessions")
    op.drop_table("staff_sessions")
