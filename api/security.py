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

from sqlalchemy import Engine
from sqlmodel import Session, select

from models.audit import AuditLog
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


# Verified keys, briefly: the key lookup was a sixth of an intake's CPU. A key revoked in the database stops
# working within CACHE_SECONDS; a wrong key is never cached.
CACHE_SECONDS = 10.0
_verified: dict[str, tuple[Principal, float]] = {}


def authenticate(session: Session, key: str) -> Principal | None:
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    digest = hash_key(key)
    cached = _verified.get(digest)
    if cached and cached[1] > time.monotonic():
        return cached[0]
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
