"""Request dependencies: DB session, Temporal client, settings, the authenticated principal."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from temporalio.client import Client

from api.errors import Problem
from api.security import SESSION_COOKIE, Principal, authenticate, cached_principal, console_principal, still_valid
from core.logging import request_id_var
from core.settings import Settings
from models.audit import AuditLog, compact
from models.tenant import INCLUDES, Role
from scoring.deal_registry import DealModels


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's session. Async on purpose: opening one touches nothing, and a sync dependency costs two
    thread hops a request (enter and exit), a tenth of an intake's CPU. Closing it blocks only when a
    transaction is still open (a read that did not commit: its rollback), and then runs in a thread."""
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        if session.in_transaction():
            await run_in_threadpool(session.close)
        else:
            session.close()


def get_client(request: Request) -> Client:
    return request.app.state.temporal


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_deal_models(request: Request) -> DealModels:
    """The deal models' registry of this app (its loaded models cached across requests), made on first use."""
    models = getattr(request.app.state, "deal_models", None)
    if models is None:
        with _deal_models_lock:
            models = getattr(request.app.state, "deal_models", None)
            if models is None:
                models = DealModels(request.app.state.engine, request.app.state.settings.effective_models_dir)
                request.app.state.deal_models = models
    return models


_deal_models_lock = threading.Lock()
SessionDep = Annotated[Session, Depends(get_session)]
ClientDep = Annotated[Client, Depends(get_client)]
SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
DealModelsDep = Annotated[DealModels, Depends(get_deal_models)]

_bearer = HTTPBearer(auto_error=False)


async def get_principal(request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None,
                                                                 Depends(_bearer)]) -> Principal:
    challenge = {"WWW-Authenticate": "Bearer"}
    engine = request.app.state.engine
    if credentials is None:
        cookie = request.cookies.get(SESSION_COOKIE)
        if cookie:  # the console's own calls: a signed-in browser (and, for a change, its CSRF token)
            return await run_in_threadpool(console_principal, engine, request, cookie)
        raise Problem(401, "missing API key: send 'Authorization: Bearer <key>'", headers=challenge)
    cached = cached_principal(credentials.credentials)
    if cached is not None:  # a key verified moments ago: only its standing is read (autocommit, one statement)
        principal = await run_in_threadpool(still_valid, engine, credentials.credentials, cached)
    else:
        # Its own short session, handed back before the route's thread hop: held across the hop, requests
        # waiting for a thread each held a connection while the threads waited for connections (the pool ran
        # dry; the open-loop benchmark's p99 went from ~60 ms to 120 s).
        def verify() -> Principal | None:
            with Session(engine) as session:
                return authenticate(session, credentials.credentials)

        principal = await run_in_threadpool(verify)
    if principal is None:
        raise Problem(401, "invalid or revoked API key", headers=challenge)
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def allowed_roles(*roles: Role) -> set[str]:
    """`roles` and every role that includes one of them (models.tenant.INCLUDES: admin passes everywhere, a
    manager wherever staff do)."""
    return {Role.admin, *roles} | {role for role, included in INCLUDES.items() if included & set(roles)}


def may(principal: Principal, *roles: Role) -> bool:
    """What `require(*roles)` lets through (the console shows a control only to whom the API allows it)."""
    return principal.role in allowed_roles(*roles)


def require(*roles: Role):
    """Dependency factory: the caller's role must be one of `roles`, or a role that includes one of them."""
    allowed = allowed_roles(*roles)
    shown = ", ".join(sorted(allowed))

    async def check(principal: PrincipalDep) -> Principal:  # async: no thread hop for a comparison
        if principal.role not in allowed:
            raise Problem(403, f"role '{principal.role}' may not do this (needs one of: {shown})")
        return principal

    return Depends(check)


Staff = Annotated[Principal, require(Role.staff)]
Admin = Annotated[Principal, require()]  # admins only


def me(principal: Principal, value: str | None, field: str = "assignee") -> str | None:
    """`me` as the caller's own user id (a 422 naming `field` for a key that belongs to no user); anything else
    as given."""
    if value != "me":
        return value
    if principal.user_id is None:
        raise Problem(422, "`me` needs a key that belongs to a user (this one is the tenant's)",
                      errors=[{"field": field, "message": "the key belongs to no user"}])
    return principal.user_id


def audit(session: Session, principal: Principal | None, action: str, entity_type: str, entity_id: str | None,
          before: dict[str, Any] | None = None, after: dict[str, Any] | None = None,
          actor: str | None = None, tenant_id: str | None = None) -> None:
    """Add an audit row to the caller's transaction (committed together with the change)."""
    session.add(AuditLog(
        tenant_id=tenant_id or (principal.tenant_id if principal else None),
        actor=actor or (principal.actor if principal else "system"),
        action=action, entity_type=entity_type, entity_id=entity_id,
        before=compact(before), after=compact(after), request_id=request_id_var.get(),
    ))
