"""API keys: `dfk_<prefix>_<secret>`, stored as a sha256 hash, scoped to one tenant and one role.

Keys carry 160 bits of randomness, so a fast hash is the right tool (no password stretching needed);
the prefix finds the row and the hash is compared in constant time.

A key may belong to a staff user: it then acts as that person (audit rows say `user:<id>`), with the key's role
but never more than the user's current one, and stops working while the user is deactivated — both read with
the key on every request, like its revocation.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, or_, text
from sqlmodel import Session, col, select

from api.errors import Problem
from models.audit import AuditLog, record_audit
from models.base import utcnow
from models.tenant import ApiKey, Role, Tenant, User, effective_role, within
from services.staff_sessions import session_principal
from services.tenants import create_tenant

KEY_PREFIX = "dfk"
SESSION_COOKIE = "dealflow_session"  # a console sign-in (services/staff_sessions.py)
CSRF_HEADER = "X-CSRF-Token"  # the session's token, which every change made with the cookie must carry
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    key_id: str  # the key's id, or the console session's (ss_...)
    user_id: str | None = None  # the person the key belongs to (None: a tenant-level key)
    csrf_token: str | None = None  # a console session's: forms and the console's calls send it back

    @property
    def actor(self) -> str:
        """Who audit rows name: the person when the key is theirs, else the key."""
        return f"user:{self.user_id}" if self.user_id else f"key:{self.key_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, tenant_id: str, role: Role, name: str = "", tenant_name: str | None = None,
                   actor: str = "cli", user_id: str | None = None) -> tuple[ApiKey, str]:
    """Create a key (and the tenant if it is new), owned by the user `user_id` when given (its role must be the
    user's or narrower: ValueError otherwise). Returns the row and the key, shown once."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(20)}"
    with Session(engine, expire_on_commit=False) as session:
        if user_id is not None:
            user = session.get(User, user_id)
            if user is None or user.tenant_id != tenant_id:
                raise ValueError(f"no user {user_id} in tenant {tenant_id}")
            if not user.active:
                raise ValueError(f"user {user.email} is deactivated")
            if not within(role, user.role):
                raise ValueError(f"a key of {user.email} ({user.role}) cannot have role {role.value}: give "
                                 f"{user.role} or a narrower role")
        if session.get(Tenant, tenant_id) is None:
            create_tenant(session, tenant_id, tenant_name, actor)
        row = ApiKey(tenant_id=tenant_id, role=role, name=name, prefix=prefix, key_hash=hash_key(key),
                     user_id=user_id)
        session.add(row)
        session.add(AuditLog(tenant_id=tenant_id, actor=actor, action="api_key.create", entity_type="api_key",
                             entity_id=row.id, after={"role": role.value, "name": name, "prefix": prefix,
                                                      **({"user_id": user_id} if user_id else {})}))
        session.commit()
    return row, key


def list_api_keys(session: Session, tenant_id: str) -> list[ApiKey]:
    """The tenant's keys, newest first, revoked ones included (they say when)."""
    return list(session.exec(select(ApiKey).where(ApiKey.tenant_id == tenant_id)
                             .order_by(col(ApiKey.created_at).desc(), col(ApiKey.id))).all())


def find_api_key(session: Session, tenant_id: str | None, key_id_or_prefix: str) -> ApiKey | None:
    """A key by its id (ak_...) or its public prefix (the part after dfk_), in the tenant (any tenant: None)."""
    query = select(ApiKey).where(or_(ApiKey.id == key_id_or_prefix, ApiKey.prefix == key_id_or_prefix))
    if tenant_id is not None:
        query = query.where(ApiKey.tenant_id == tenant_id)
    return session.exec(query).first()


def revoke_api_key(session: Session, row: ApiKey, actor: str) -> ApiKey:
    """Revoke the key (refused from the next request on, in every process) with its audit row, and commit.
    Revoking a revoked key changes nothing."""
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        session.add(row)
        record_audit(session, tenant_id=row.tenant_id, actor=actor, action="api_key.revoke", entity_type="api_key",
                     entity_id=row.id, before={"revoked_at": None},
                     after={"revoked_at": row.revoked_at.isoformat(), "prefix": row.prefix})
        session.commit()
    _verified.pop(row.key_hash, None)
    return row


# Verified keys, briefly: loading the key row (and its last-used write) was a sixth of an intake's CPU. A cached
# key is still checked against its row's revoked_at — and its user's active flag and role — on every request (one
# primary-key read, no ORM, outside a transaction: no COMMIT round trip), so a key revoked or a user deactivated
# by any process is refused at once, and a user's new role counts from the next request; a wrong key is never
# cached.
CACHE_SECONDS = 10.0
_verified: dict[str, tuple[Principal, float]] = {}
_STANDING = text("SELECT k.revoked_at, k.role, k.user_id, u.active, u.role FROM api_keys k "
                 "LEFT JOIN users u ON u.id = k.user_id WHERE k.id = :id")


def cached_principal(key: str) -> Principal | None:
    """The principal of a key verified less than CACHE_SECONDS ago (its revocation still to be read)."""
    cached = _verified.get(hash_key(key))
    return cached[0] if cached and cached[1] > time.monotonic() else None


def still_valid(engine: Engine, key: str, principal: Principal) -> Principal | None:
    """The cached key's principal as its rows stand now (blocking: one autocommit read): None when the key was
    revoked or its user deactivated; with the new role when the user's role changed."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_STANDING, {"id": principal.key_id}).first()
    digest = hash_key(key)
    if row is None or row[0] is not None or (row[2] is not None and not row[3]):
        _verified.pop(digest, None)
        return None
    role = effective_role(row[1], row[4] if row[2] is not None else None)
    if role != principal.role:
        principal = Principal(tenant_id=principal.tenant_id, role=role, key_id=principal.key_id,
                              user_id=principal.user_id)
        cached = _verified.get(digest)
        if cached:
            _verified[digest] = (principal, cached[1])
    return principal


def authenticate(session: Session, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    digest = hash_key(key)
    cached = _verified.get(digest)
    if cached and cached[1] > time.monotonic():
        return still_valid(session.get_bind(), key, cached[0])
    principal = _authenticate(session, parts[1], digest)
    if principal is not None:
        if len(_verified) > 10_000:
            _verified.clear()
        _verified[digest] = (principal, time.monotonic() + CACHE_SECONDS)
    return principal


def _authenticate(session: Session, prefix: str, digest: str) -> Principal | None:
    row = session.exec(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, digest):
        return None
    user = session.get(User, row.user_id) if row.user_id else None
    if row.user_id and (user is None or not user.active or user.tenant_id != row.tenant_id):
        return None  # a deactivated user's keys are refused (and work again if they are reactivated)
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now  # coarse, to avoid a write per request
        session.add(row)
        session.commit()
    return Principal(tenant_id=row.tenant_id, role=effective_role(row.role, user.role if user else None),
                     key_id=row.id, user_id=row.user_id)


def console_principal(engine: Engine, request, cookie: str, *, csrf_header: bool = True) -> Principal:
    """The signed-in staff user of a console session cookie (read on every request, so signing out, expiry, a
    deactivation and a new role count at once). A change (any method but GET, HEAD, OPTIONS) must also carry the
    session's CSRF token in the X-CSRF-Token header, else 403 (the console's own forms are checked by the console)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        signed_in = session_principal(connection, cookie)
    if signed_in is None:
        raise Problem(401, "your session has ended: sign in again at /app/sign-in",
                      headers={"WWW-Authenticate": "Bearer"})
    if csrf_header and request.method not in SAFE_METHODS and not hmac.compare_digest(
            request.headers.get(CSRF_HEADER, "").encode(), signed_in.csrf_token.encode()):
        raise Problem(403, "missing or wrong CSRF token: reload the page and try again",
                      errors=[{"field": "csrf_token", "message": "missing or wrong"}])
    return Principal(tenant_id=signed_in.tenant_id, role=signed_in.role, key_id=signed_in.session_id,
                     user_id=signed_in.user_id, csrf_token=signed_in.csrf_token)
