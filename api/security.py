"""API keys: `dfk_<prefix>_<secret>`, stored as a sha256 hash, scoped to one tenant and one role.

Keys carry 160 bits of randomness, so a fast hash is the right tool (no password stretching needed);
the prefix finds the row and the hash is compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from sqlalchemy import Engine, or_, text
from sqlmodel import Session, col, select

from models.audit import AuditLog, record_audit
from models.base import utcnow
from models.tenant import ApiKey, Role, Tenant
from services.tenants import create_tenant

KEY_PREFIX = "dfk"


@dataclass(frozen=True)
class Principal:
    tenant_id: str
    role: Role
    key_id: str

    @property
    def actor(self) -> str:
        return f"key:{self.key_id}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(engine: Engine, tenant_id: str, role: Role, name: str = "",
                   tenant_name: str | None = None, actor: str = "cli") -> tuple[ApiKey, str]:
    """Create a key (and the tenant if it is new). Returns the row and the key, shown once."""
    prefix = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{prefix}_{secrets.token_urlsafe(20)}"
    with Session(engine, expire_on_commit=False) as session:
        if session.get(Tenant, tenant_id) is None:
            create_tenant(session, tenant_id, tenant_name, actor)
        row = ApiKey(tenant_id=tenant_id, role=role, name=name, prefix=prefix, key_hash=hash_key(key))
        session.add(row)
        session.add(AuditLog(tenant_id=tenant_id, actor=actor, action="api_key.create", entity_type="api_key",
                             entity_id=row.id, after={"role": role.value, "name": name, "prefix": prefix}))
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
# key is still checked against its row's revoked_at on every request (one primary-key read, no ORM, outside a
# transaction: no COMMIT round trip), so a key revoked by any process is refused at once; a wrong key is never
# cached.
CACHE_SECONDS = 10.0
_verified: dict[str, tuple[Principal, float]] = {}
_REVOKED = text("SELECT revoked_at FROM api_keys WHERE id = :id")


def cached_principal(key: str) -> Principal | None:
    """The principal of a key verified less than CACHE_SECONDS ago (its revocation still to be read)."""
    cached = _verified.get(hash_key(key))
    return cached[0] if cached and cached[1] > time.monotonic() else None


def still_valid(engine: Engine, key: str, principal: Principal) -> bool:
    """Whether the cached key's row still stands unrevoked (blocking: one autocommit read)."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        row = connection.execute(_REVOKED, {"id": principal.key_id}).first()
    if row is not None and row[0] is None:
        return True
    _verified.pop(hash_key(key), None)
    return False


def authenticate(session: Session, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    digest = hash_key(key)
    cached = _verified.get(digest)
    if cached and cached[1] > time.monotonic():
        if still_valid(session.get_bind(), key, cached[0]):
            return cached[0]
        return None
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
    now = utcnow()
    if row.last_used_at is None or (now - row.last_used_at).total_seconds() > 60:
        row.last_used_at = now  # coarse, to avoid a write per request
        session.add(row)
        session.commit()
    return Principal(tenant_id=row.tenant_id, role=Role(row.role), key_id=row.id)
