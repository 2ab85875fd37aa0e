"""Staff users of a tenant: create, change, deactivate, find; their passwords (argon2id).

A user's email is unique in the tenant whatever its case (stored lower-cased; the table checks it). Deactivating a
user keeps the row (tasks, audit rows and leads still name them) and stops their API keys from the next request
on (api/security.py reads the user with the key); round robins skip them and nothing can be assigned to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.db import is_unique_violation
from definitions.staff import TEAMS
from models.audit import record_audit
from models.base import utcnow
from models.contact import normalise_email
from models.lead import Lead
from models.task import Task
from models.tenant import Role, Tenant, User
from services.acting import Acting, Conflict, Invalid, NotFound

PASSWORD_MIN, PASSWORD_MAX = 12, 1024
_hasher = PasswordHasher()  # argon2id with the library's current parameters (RFC 9106's second choice)


def hash_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise Invalid(f"a password has {PASSWORD_MIN} to {PASSWORD_MAX} characters", field="password")
    return _hasher.hash(password)


def verify_password(session: Session, user: User, password: str) -> bool:
    """Whether `password` is the user's (an inactive user's never is). A hash made with older parameters is
    replaced by one with the current ones (the caller commits)."""
    if not user.active or not user.password_hash:
        return False
    try:
        _hasher.verify(user.password_hash, password)
    except (VerificationError, InvalidHashError):
        return False
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
        session.add(user)
    return True


def _email(value: str) -> str:
    try:
        return normalise_email(value)
    except ValueError as exc:
        raise Invalid(f"not an email address: {exc}", field="email") from None


def _role(value: str) -> str:
    if value not in {r.value for r in Role}:
        raise Invalid(f"unknown role {value!r} (one of {', '.join(r.value for r in Role)})", field="role")
    return value


def _team(value: str | None) -> str | None:
    if value in (None, "", "none"):
        return None
    if value not in TEAMS:
        raise Invalid(f"unknown team {value!r} (one of {', '.join(TEAMS)}, or none)", field="team")
    return value


def _name(value: str) -> str:
    name = " ".join(str(value).split())
    if not name or len(name) > 200:
        raise Invalid("a name has 1 to 200 characters", field="name")
    return name


def public_fields(user: User) -> dict[str, Any]:
    """What audit rows and listings say about a user (never the password hash)."""
    return {"email": user.email, "name": user.name, "role": user.role, "team": user.team, "active": user.active,
            "has_password": user.password_hash is not None}


def create_user(session: Session, tenant_id: str, *, email: str, name: str, role: str, team: str | None = None,
                password: str | None = None, actor: str) -> User:
    """Add the user with its audit row and commit. Conflict when the tenant has a user with this email (in any
    case: the database decides, so two concurrent creations make one user)."""
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"no tenant {tenant_id!r}")
    user = User(tenant_id=tenant_id, email=_email(email), name=_name(name), role=_role(role), team=_team(team),
                password_hash=hash_password(password) if password is not None else None)
    session.add(user)
    record_audit(session, tenant_id=tenant_id, actor=actor, action="user.create", entity_type="user",
                 entity_id=user.id, after=public_fields(user))
    _commit(session, user.email)
    return user


def update_user(session: Session, caller: Acting, user: User, changes: dict[str, Any]) -> User:
    """Change name, email, role, team, active or password (audited with before and after; the password only as
    changed). Nobody demotes or deactivates their own user: another admin must, so a tenant is never locked out
    by a slip."""
    before = public_fields(user)
    values: dict[str, Any] = {}
    if "email" in changes:
        values["email"] = _email(changes["email"])
    if "name" in changes:
        values["name"] = _name(changes["name"])
    if "role" in changes:
        values["role"] = _role(changes["role"])
    if "team" in changes:
        values["team"] = _team(changes["team"])
    if "active" in changes:
        values["active"] = bool(changes["active"])
    if changes.get("password") is not None:
        values["password_hash"] = hash_password(changes["password"])
    if caller.user_id == user.id and (values.get("active") is False
                                      or values.get("role", user.role) != user.role):
        raise Invalid("you cannot deactivate yourself or change your own role; ask another admin",
                      field="active" if values.get("active") is False else "role")
    for key, value in values.items():
        setattr(user, key, value)
    after = public_fields(user)
    changed = {k: v for k, v in after.items() if before[k] != v}
    if "password" in changes and changes["password"] is not None:
        changed["password"] = "changed"
    if not changed:
        return user
    user.updated_at = utcnow()
    session.add(user)
    record_audit(session, tenant_id=user.tenant_id, actor=caller.actor,
                 action="user.deactivate" if changed.get("active") is False else "user.update", entity_type="user",
                 entity_id=user.id, before={k: before[k] for k in changed if k in before}, after=changed)
    _commit(session, user.email)
    return user


def _commit(session: Session, email: str) -> None:
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if is_unique_violation(exc):
            raise Conflict(f"this tenant already has a user with the email {email}", field="email") from None
        raise


def find_user(session: Session, tenant_id: str | None, id_or_email: str) -> User | None:
    """A user by id (us_...) or email (any case), in the tenant (in any tenant: None, the first found)."""
    query = select(User)
    if tenant_id is not None:
        query = query.where(User.tenant_id == tenant_id)
    if "@" in id_or_email:
        query = query.where(User.email == id_or_email.strip().lower())
    else:
        query = query.where(User.id == id_or_email)
    return session.exec(query.order_by(col(User.created_at))).first()


def get_user(session: Session, tenant_id: str, user_id: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.tenant_id != tenant_id:  # another tenant's user is reported like a missing one
        raise NotFound(f"user {user_id} not found")
    return user


@dataclass(frozen=True)
class UserFilters:
    role: str | None = None
    team: str | None = None
    active: bool | None = None


def list_users(session: Session, tenant_id: str, filters: UserFilters = UserFilters()) -> list[User]:
    """The tenant's users, by name (a tenant has tens of people, not thousands: no paging)."""
    query = select(User).where(User.tenant_id == tenant_id)
    if filters.role:
        query = query.where(User.role == filters.role)
    if filters.team:
        query = query.where(col(User.team).is_(None) if filters.team == "none" else User.team == filters.team)
    if filters.active is not None:
        query = query.where(User.active == filters.active)
    return list(session.exec(query.order_by(func.lower(User.name), col(User.id))).all())


def still_assigned(session: Session, user: User) -> dict[str, int]:
    """What a deactivated user still holds: open tasks and live leads assigned to them (to hand over)."""
    tasks = session.exec(select(func.count()).select_from(Task).where(
        Task.tenant_id == user.tenant_id, Task.assignee == user.id, Task.status == "open")).one()
    leads = session.exec(select(func.count()).select_from(Lead).where(
        Lead.tenant_id == user.tenant_id, Lead.assigned_to == user.id, col(Lead.deleted_at).is_(None),
        col(Lead.duplicate_of).is_(None), col(Lead.status).not_in(["dead", "converted"]))).one()
    return {"open_tasks": tasks, "leads": leads}
