"""`dealflow users`: a tenant's staff users from a terminal — create, list, deactivate, activate (the same services
as /api/v1/users; audited as `cli`)."""

from __future__ import annotations

import sys

import typer
from rich.table import Table

from cli_common import CliError, console, load_settings, migrate_database
from definitions.staff import TEAMS
from models.tenant import Role

users_app = typer.Typer(help="Staff users: create, list, deactivate.", no_args_is_help=True)


def _engine():
    from core.db import make_engine

    settings = load_settings()
    migrate_database(settings)
    return make_engine(settings.effective_database_url)


def _password(value: str | None) -> str | None:
    """`-` reads the password from standard input (so it is not in the shell's history or the process list)."""
    if value == "-":
        value = sys.stdin.readline().rstrip("\r\n")
    return value


@users_app.command("create")
def users_create(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant slug; created if new"),
    email: str = typer.Option(..., "--email", "-e", help="unique in the tenant, in any case"),
    name: str = typer.Option(..., "--name", "-n"),
    role: Role = typer.Option(Role.staff, "--role", "-r", help="admin, manager, staff, ops or readonly"),
    team: str = typer.Option(None, "--team", help=f"{', '.join(TEAMS)}, or none"),
    password: str = typer.Option(None, "--password", help="at least 12 characters; '-' reads it from stdin"),
) -> None:
    """Add a staff user. Give them a key with `dealflow keys create --user EMAIL`."""
    from sqlmodel import Session

    from services.acting import ServiceError
    from services.tenants import create_tenant
    from models.tenant import Tenant
    from services.users import create_user

    if not tenant.replace("-", "").replace("_", "").isalnum() or len(tenant) > 40:
        raise CliError(f"tenant {tenant!r} must be letters, digits, '-' or '_' (at most 40)")
    engine = _engine()
    try:
        with Session(engine, expire_on_commit=False) as session:
            new_tenant = session.get(Tenant, tenant) is None
            if new_tenant:  # committed with the user, or not at all
                create_tenant(session, tenant, None, "cli")
            user = create_user(session, tenant, email=email, name=name, role=role.value, team=team,
                               password=_password(password), actor="cli")
    except ServiceError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    console.print(f"Created {user.role} {user.id} {user.email} ({user.team or 'no team'}) in tenant {tenant}"
                  + (" (new tenant)" if new_tenant else ""), highlight=False)


@users_app.command("list")
def users_list(
    tenant: str = typer.Option(..., "--tenant", "-t", help="tenant slug"),
    inactive: bool = typer.Option(True, "--inactive/--active-only", help="include deactivated users"),
) -> None:
    """The tenant's users by name: id, email, name, role, team, active, password set, created."""
    from sqlmodel import Session

    from services.users import UserFilters, list_users

    engine = _engine()
    try:
        with Session(engine) as session:
            users = list_users(session, tenant, UserFilters(active=None if inactive else True))
    finally:
        engine.dispose()
    if not users:
        raise CliError(f"tenant {tenant!r} has no users")
    table = Table("id", "email", "name", "role", "team", "active", "password", "created", box=None, pad_edge=False)
    for user in users:
        table.add_row(user.id, user.email, user.name, user.role, user.team or "-", "yes" if user.active else "no",
                      "set" if user.password_hash else "-", user.created_at.strftime("%Y-%m-%d %H:%M"))
    console.print(table, soft_wrap=True)


def _set_active(user_ref: str, tenant: str | None, active: bool) -> None:
    from sqlmodel import Session

    from services.acting import Caller, ServiceError
    from services.users import still_assigned, update_user

    engine = _engine()
    try:
        with Session(engine, expire_on_commit=False) as session:
            user = find_user_once(session, tenant, user_ref)
            was = user.active
            update_user(session, Caller(tenant_id=user.tenant_id, actor="cli"), user, {"active": active})
            held = still_assigned(session, user) if not active else None
    except ServiceError as exc:
        raise CliError(str(exc)) from None
    finally:
        engine.dispose()
    state = "active" if active else "deactivated"
    note = "" if was != active else f" (already {state})"
    console.print(f"user {user.id} {user.email} (tenant {user.tenant_id}) {state}{note}", highlight=False)
    if held and (held["open_tasks"] or held["leads"]):
        console.print(f"still assigned to them: {held['open_tasks']} open tasks, {held['leads']} leads "
                      "(reassign them: POST /api/v1/tasks/{id}/reassign, /leads/{id}/assign)", highlight=False)


def find_user_once(session, tenant: str | None, user_ref: str):
    """The user named by email or id, in the tenant; without a tenant, the one user anywhere with that email
    (a one-line error when there is none, or several)."""
    from sqlmodel import select

    from models.tenant import User
    from services.users import find_user

    if tenant is None and "@" in user_ref:
        tenants = session.exec(select(User.tenant_id).where(User.email == user_ref.strip().lower())).all()
        if len(tenants) > 1:
            raise CliError(f"{user_ref} is a user of several tenants ({', '.join(sorted(tenants))}): give --tenant")
    user = find_user(session, tenant, user_ref)
    if user is None:
        raise CliError(f"no user {user_ref!r}" + (f" in tenant {tenant!r}" if tenant else ""))
    return user


@users_app.command("deactivate")
def users_deactivate(
    user: str = typer.Argument(..., help="the user's email or id"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="the user's tenant (needed when the email is in several)"),
) -> None:
    """Deactivate a user: their keys stop working from the next request, nothing more is assigned to them, round
    robins skip them. Their tasks and leads stay theirs until reassigned (the count is printed)."""
    _set_active(user, tenant, False)


@users_app.command("activate")
def users_activate(
    user: str = typer.Argument(..., help="the user's email or id"),
    tenant: str = typer.Option(None, "--tenant", "-t", help="the user's tenant (needed when the email is in several)"),
) -> None:
    """Activate a deactivated user again (their unrevoked keys work again)."""
    _set_active(user, tenant, True)
