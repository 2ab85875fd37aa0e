"""staff users (team, active, password), round-robin cursors, tasks listed by assignee, notifications

Revision ID: 0014
Revises: 0013

- users: `team`, `active`, `password_hash`, `updated_at`; emails lower-cased and checked to stay so, which
  makes the existing unique (tenant_id, email) case-insensitive.
- assignment_cursors: one row per (tenant, team), advanced by UPDATE ... RETURNING for each round-robin pick.
- tasks: every task has a due time (the ones without get their creation time), `snoozed_until`, who created
  and completed it; (tenant, assignee, status, due_at, id) and (tenant, status, due_at, id) for the lists, the
  second replacing the single-column tenant index.
- messages: `user_id`, for the emails that go to staff (notifications).
- notifications: a user's in-app list, with an index over the unread ones.
"""
from __future__ import annotations

from typing import Sequence, Union

import sqlalchemy as sa
import sqlmodel
from alembic import op
from sqlalchemy.dialects import postgresql

import models.base

revision: str = "0014"
down_revision: Union[str, None] = "0013"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    op.execute("UPDATE users SET email = lower(email) WHERE email <> lower(email)")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.add_column(sa.Column("team", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("active", sa.Boolean(), server_default=sa.text("true"), nullable=False))
        batch_op.add_column(sa.Column("password_hash", sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_check_constraint(op.f("ck_users_email_lower"), "email = lower(email)")

    op.create_table(
        "assignment_cursors",
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("team", sa.String(length=32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_assignment_cursors_tenant_id_tenants")),
        sa.PrimaryKeyConstraint("tenant_id", "team", name=op.f("pk_assignment_cursors")),
    )

    op.execute("UPDATE tasks SET due_at = created_at WHERE due_at IS NULL")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.alter_column("due_at", existing_type=models.base.UTCDateTime(timezone=True), nullable=False)
        batch_op.add_column(sa.Column("snoozed_until", models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("created_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.add_column(sa.Column("updated_at", models.base.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("completed_by", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True))
        batch_op.create_index("ix_tasks_list_assignee", ["tenant_id", "assignee", "status", "due_at", "id"])
        batch_op.create_index("ix_tasks_list_status", ["tenant_id", "status", "due_at", "id"])
        batch_op.drop_index("ix_tasks_tenant_id")

    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True))
        batch_op.create_foreign_key(op.f("fk_messages_user_id_users"), "users", ["user_id"], ["id"])

    op.create_table(
        "notifications",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("tenant_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("user_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("title", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
        sa.Column("body", sqlmodel.sql.sqltypes.AutoString(), nullable=False),
        sa.Column("task_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("lead_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("opportunity_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("investor_id", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
        sa.Column("data", JSON, nullable=False),
        sa.Column("email", sa.Boolean(), nullable=False),
        sa.Column("idempotency_key", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
        sa.Column("created_at", models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("read_at", models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["investor_id"], ["investors.id"], name=op.f("fk_notifications_investor_id_investors")),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], name=op.f("fk_notifications_lead_id_leads")),
        sa.ForeignKeyConstraint(["opportunity_id"], ["opportunities.id"],
                                name=op.f("fk_notifications_opportunity_id_opportunities")),
        sa.ForeignKeyConstraint(["task_id"], ["tasks.id"], name=op.f("fk_notifications_task_id_tasks")),
        sa.ForeignKeyConstraint(["tenant_id"], ["tenants.id"], name=op.f("fk_notifications_tenant_id_tenants")),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_notifications_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notifications")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_notifications_idempotency_key")),
    )
    op.create_index("ix_notifications_user_created", "notifications", ["user_id", "created_at", "id"])
    op.create_index("ix_notifications_user_unread", "notifications", ["user_id", "created_at", "id"],
                    sqlite_where=sa.text("read_at IS NULL"), postgresql_where=sa.text("read_at IS NULL"))


def downgrade() -> None:
    op.drop_index("ix_notifications_user_unread", table_name="notifications")
    op.drop_index("ix_notifications_user_created", table_name="notifications")
    op.drop_table("notifications")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_messages_user_id_users"), type_="foreignkey")
        batch_op.drop_column("user_id")
    with op.batch_alter_table("tasks", schema=None) as batch_op:
        batch_op.create_index("ix_tasks_tenant_id", ["tenant_id"])
        batch_op.drop_index("ix_tasks_list_status")
        batch_op.drop_index("ix_tasks_list_assignee")
        batch_op.drop_column("completed_by")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("created_by")
        batch_op.drop_column("snoozed_until")
        batch_op.alter_column("due_at", existing_type=models.base.UTCDateTime(timezone=True), nullable=True)
    op.drop_table("assignment_cursors")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_users_email_lower"), type_="check")
        batch_op.drop_column("updated_at")
        batch_op.drop_column("password_hash")
        batch_op.drop_column("active")
        batch_op.drop_column("team")
