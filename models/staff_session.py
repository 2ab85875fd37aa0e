"""The console's sign-in: a staff user's browser sessions, the one-time sign-in links mailed to them, and every
sign-in attempt (what the rate limit counts).

Secrets are stored as their SHA-256 only (a session's cookie, a link's token): the table leaks no way in. A
session's CSRF token is stored as is: it is no credential, only proof that a form came from a page of ours."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index
from sqlmodel import Field, SQLModel

from models.base import new_id, time_field


class StaffSession(SQLModel, table=True):
    __tablename__ = "staff_sessions"
    id: str = Field(default_factory=lambda: new_id("ss"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=40)
    token_hash: str = Field(unique=True, max_length=64)  # sha256 of the cookie's value
    csrf_token: str = Field(max_length=64)
    method: str = Field(max_length=16)  # password | link
    ip: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=300)
    created_at: datetime = time_field()
    expires_at: datetime = time_field()  # absolute: a session is not extended by use
    last_seen_at: datetime | None = time_field(nullable=True, default_now=False)
    revoked_at: datetime | None = time_field(nullable=True, default_now=False)  # signed out


class SignInLink(SQLModel, table=True):
    """A one-time sign-in link: redeemed once (an UPDATE ... WHERE used_at IS NULL claims it), before it expires."""

    __tablename__ = "sign_in_links"
    id: str = Field(default_factory=lambda: new_id("sl"), primary_key=True, max_length=40)
    tenant_id: str = Field(foreign_key="tenants.id", max_length=40)
    user_id: str = Field(foreign_key="users.id", index=True, max_length=40)
    token_hash: str = Field(unique=True, max_length=64)
    created_at: datetime = time_field()
    expires_at: datetime = time_field()
    used_at: datetime | None = time_field(nullable=True, default_now=False)


class SignInAttempt(SQLModel, table=True):
    """One sign-in try (password or link request), ok or not: failures per email and per address in a window are
    what the rate limit counts, in every API process alike."""

    __tablename__ = "sign_in_attempts"
    __table_args__ = (Index("ix_sign_in_attempts_email_at", "email", "at"),
                      Index("ix_sign_in_attempts_ip_at", "ip", "at"))
    id: str = Field(default_factory=lambda: new_id("sa"), primary_key=True, max_length=40)
    email: str = Field(max_length=320)  # as typed, lower-cased (an unknown address counts too)
    ip: str = Field(default="", max_length=64)
    kind: str = Field(max_length=16)  # password | link
    ok: bool = False
    at: datetime = time_field()
