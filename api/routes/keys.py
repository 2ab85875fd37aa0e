"""A tenant's API keys, for its admins: list them (never the secret, which is stored only as a hash) and revoke
one. Keys are created with `dealflow keys create` (the key is shown once, where only its owner sees it)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path
from pydantic import BaseModel

from api.deps import Admin, SessionDep
from api.errors import Problem
from api.security import find_api_key, list_api_keys, revoke_api_key
from models.tenant import ApiKey

router = APIRouter(prefix="/api/v1/keys", tags=["keys"])


class ApiKeyPublic(BaseModel):
    id: str
    prefix: str  # the public part of the key: dfk_<prefix>_...
    name: str
    role: str
    user_id: str | None = None  # the person the key belongs to (null: a tenant-level key)
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


def _public(row: ApiKey) -> ApiKeyPublic:
    return ApiKeyPublic(id=row.id, prefix=row.prefix, name=row.name, role=row.role, user_id=row.user_id,
                        created_at=row.created_at,
                        last_used_at=row.last_used_at, revoked_at=row.revoked_at)


@router.get("", response_model=list[ApiKeyPublic])
def list_keys(session: SessionDep, principal: Admin) -> list[ApiKeyPublic]:
    """The tenant's keys, newest first; revoked ones say when."""
    return [_public(row) for row in list_api_keys(session, principal.tenant_id)]


@router.post("/{key_id}/revoke", response_model=ApiKeyPublic)
def revoke_key(key_id: Annotated[str, Path(min_length=1, max_length=40, description="the key's id or prefix")],
                     session: SessionDep, principal: Admin) -> ApiKeyPublic:
    """Refused from the next request on, in every API process. Audited; revoking a revoked key changes nothing."""
    row = find_api_key(session, principal.tenant_id, key_id)
    if row is None:
        raise Problem(404, f"no key {key_id!r} in this tenant")
    return _public(revoke_api_key(session, row, principal.actor))
