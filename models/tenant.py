"""Tenants, users and API keys (hashed at rest, scoped to a tenant and a role)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import String, UniqueConstraint
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class Role(StrEnum):
    admin = "admin"
    staff = "staff"
    ops = "ops"
    readonly = "readonly"


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
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("tenant_id", "email"),)
    id: str = Field(default_factory=lambda: new_id("us"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", index=True, max_length=40)
    email: str = Field(max_length=320)
    name: str = Field(default="", max_length=200)
    role: str = Field(default=Role.staff.value, sa_type=String(16))  # a Role (str: see Lead.source)
    created_at: datetime = time_field()


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
