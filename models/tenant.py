"""Tenants, users and API keys (hashed at rest, scoped to a tenant and a role)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import Boolean, CheckConstraint, Column, String, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class Role(StrEnum):
    admin = "admin"
    manager = "manager"  # staff's rights, plus reassigning others' leads, deals and tasks; receives escalations
    staff = "staff"
    ops = "ops"
    readonly = "readonly"


# What each role may do beyond itself (admin may do everything: see `within`).
INCLUDES: dict[str, set[str]] = {
    Role.admin: {Role.manager, Role.staff, Role.ops, Role.readonly},
    Role.manager: {Role.staff, Role.readonly},
    Role.staff: {Role.readonly},
    Role.ops: {Role.readonly},
    Role.readonly: set(),
}


def within(role: str, of: str) -> bool:
    """`role` gives no right that `of` does not: a user's key may have the user's role or a narrower one."""
    return role == of or role in INCLUDES.get(of, set())


def effective_role(key_role: str, user_role: str | None) -> Role:
    """The role a request acts with: the key's, never more than its user's (a user demoted after the key was
    made acts with the new role; ops on a key of a user now staff shares only readonly)."""
    if user_role is None or within(key_role, user_role):
        return Role(key_role)
    if within(user_role, key_role):
        return Role(user_role)
    return Role.readonly


WORKING_ROLES = (Role.staff.value, Role.manager.value)  # who takes leads and tasks in a team's round robin


class Tenant(SQLModel, table=True):
    __tablename__ = "tenants"
    id: str = Field(primary_key=True, max_length=40)  # slug, e.g. "demo"
    name: str = Field(max_length=200)
    timezone: str = Field(default="America/New_York", max_length=64)  # fallback for recipients' zones
    # Quiet hours: messages go out only inside this window, in the RECIPIENT's local time.
    send_window_days: str = Field(default="mon-sat", max_length=40)
    send_window_start: str = Field(default="08:00", max_length=5)
    send_window_end: str = Field(default="20:00", max_length=5)
    email_from: str | None = Field(default=None, max_length=320)  # "Name <addr>"; settings.email_from if unset
    sms_from: str | None = Field(default=None, max_length=20)  # E.164; also routes inbound SMS to the tenant
    sms_help_text: str | None = Field(default=None, max_length=320)
    created_at: datetime = time_field()


class User(SQLModel, table=True):
    """A person on the tenant's staff. Emails are stored lower-cased (services/users.py normalises them, the
    check refuses anything else), so the unique (tenant, email) is case-insensitive."""

    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),
                      CheckConstraint("email = lower(email)", name="email_lower"))
    id: str = Field(default_factory=lambda: new_id("us"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = Field(default=Role.staff.value, sa_type=String(16))  # a Role (str: see Lead.source)
    team: str | None = Field(default=None, sa_type=String(32))  # a definitions.staff.Team, or none
    active: bool = Field(default=True, sa_column=Column(Boolean(), nullable=False, default=True,
                                                        server_default=text("true")))
    password_hash: str | None = Field(default=None, max_length=255)  # argon2id; None: signs in by API key only
    created_at: datetime = time_field()
    updated_at: datetime | None = time_field(nullable=True, default_now=False)


class AssignmentCursor(SQLModel, table=True):
    """Where a team's round robin stands: advanced by one UPDATE ... RETURNING per assignment (the row lock
    orders concurrent assignments), never read and written back."""

    __tablename__ = "assignment_cursors"
    tenant_id: str = Field(foreign_key="tenants.id", primary_key=True, max_length=40)
    team: str = Field(primary_key=True, sa_type=String(32))
    position: int = 0
    updated_at: datetime = time_field()


class ApiKey(SQLModel, table=True):
    __tablename__ = "api_keys"
    id: str = Field(default_factory=lambda: new_id("ak"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    user_id: str | None = Field(default=None, foreign_key="users.id", max_length=40)
    name: str = Field(default="", max_length=200)
    prefix: str = Field(unique=True, max_length=32)  # public part, used to find the row
    key_hash: str = Field(max_length=128)  # sha256 of the whole key
    role: str = Field(sa_type=String(16))  # a Role
    created_at: datetime = time_field()
    last_used_at: datetime | None = time_field(nullable=True, default_now=False)
    revoked_at: datetime | None = time_field(nullable=True, default_now=False)
