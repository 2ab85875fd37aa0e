"""A tenant's staff users: admins create and change them; every key may read them (to pick an assignee)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Admin, PrincipalDep, SessionDep
from api.errors import Problem
from definitions.staff import Team
from models.contact import Email
from models.input import Input, OneLine
from models.tenant import Role, User
from services.users import UserFilters, create_user, get_user, list_users, still_assigned, update_user

router = APIRouter(prefix="/api/v1/users", tags=["users"])


class UserPublic(BaseModel):
    id: str
    email: str
    name: str
    role: str
    team: str | None
    active: bool
    has_password: bool
    created_at: datetime
    updated_at: datetime | None


class UserDetail(UserPublic):
    still_assigned: dict[str, int] | None = Field(
        default=None, description="for a deactivated user: the open tasks and live leads still theirs")


class UserCreate(Input):
    model_config = ConfigDict(extra="forbid")
    email: Email
    name: OneLine = Field(min_length=1, max_length=200)
    role: Role = Role.staff
    team: Team | None = None
    password: str | None = Field(default=None, min_length=12, max_length=1024,
                                 description="optional; stored as an argon2id hash")


class UserUpdate(Input):
    model_config = ConfigDict(extra="forbid")
    email: Email | None = None
    name: OneLine | None = Field(default=None, min_length=1, max_length=200)
    role: Role | None = None
    team: Team | None = Field(default=None, description="null: no team")
    active: bool | None = None
    password: str | None = Field(default=None, min_length=12, max_length=1024)


def public(user: User) -> UserPublic:
    return UserPublic(id=user.id, email=user.email, name=user.name, role=user.role, team=user.team,
                      active=user.active, has_password=user.password_hash is not None, created_at=user.created_at,
                      updated_at=user.updated_at)


@router.post("", status_code=201, response_model=UserPublic)
def create(body: UserCreate, response: Response, session: SessionDep, principal: Admin) -> UserPublic:
    """409 when the tenant has a user with this email, in any case."""
    user = create_user(session, principal.tenant_id, email=body.email, name=body.name, role=body.role.value,
                       team=body.team.value if body.team else None, password=body.password, actor=principal.actor)
    response.headers["Location"] = f"/api/v1/users/{user.id}"
    return public(user)


@router.get("", response_model=list[UserPublic])
def list_(session: SessionDep, principal: PrincipalDep,
          role: Role | None = None,
          team: Annotated[str | None, Query(pattern="^(acquisitions|dispositions|investor_relations|none)$")] = None,
          active: bool | None = None) -> list[UserPublic]:
    """The tenant's users by name."""
    users = list_users(session, principal.tenant_id, UserFilters(role=role.value if role else None, team=team,
                                                                 active=active))
    return [public(u) for u in users]


@router.get("/me", response_model=UserPublic)
def me(session: SessionDep, principal: PrincipalDep) -> UserPublic:
    """The user the calling key belongs to (404 for a tenant-level key)."""
    if principal.user_id is None:
        raise Problem(404, "this API key belongs to no user (a tenant-level key)")
    return public(get_user(session, principal.tenant_id, principal.user_id))


@router.get("/{user_id}", response_model=UserDetail)
def detail(user_id: str, session: SessionDep, principal: PrincipalDep) -> UserDetail:
    user = get_user(session, principal.tenant_id, user_id)
    held = None if user.active else still_assigned(session, user)
    return UserDetail(**public(user).model_dump(), still_assigned=held)


@router.patch("/{user_id}", response_model=UserDetail)
def change(user_id: str, body: UserUpdate, session: SessionDep, principal: Admin) -> UserDetail:
    """Change name, email, role, team, active (false: deactivate — their keys stop working at once) or password.
    Audited; nobody deactivates or demotes their own user."""
    changes = body.model_dump(exclude_unset=True, mode="json")
    if not changes:
        raise Problem(422, "nothing to change", errors=[{"field": "body", "message": "no fields given"}])
    for field in ("email", "name", "role", "active"):
        if field in changes and changes[field] is None:
            raise Problem(422, f"{field} cannot be null", errors=[{"field": field, "message": "cannot be null"}])
    user = update_user(session, principal, get_user(session, principal.tenant_id, user_id), changes)
    held = None if user.active else still_assigned(session, user)
    return UserDetail(**public(user).model_dump(), still_assigned=held)
