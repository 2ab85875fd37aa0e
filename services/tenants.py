"""Tenants: a new one starts with the shipped default definitions published (the speed-to-lead first touch), so a
new lead gets its welcome without anyone writing YAML; ops can retire them or publish replacements."""

from __future__ import annotations

from pathlib import Path

from sqlmodel import Session, select

from models.definition import WorkflowDefinition
from models.tenant import Tenant
from services.definition_store import publish, save_draft

LIBRARY = Path(__file__).resolve().parent.parent / "definitions" / "library"
# Published for every tenant unless the tenant already has a version of that key (a retired default stays
# retired).
DEFAULT_DEFINITIONS = ("speed-to-lead",)


def create_tenant(session: Session, tenant_id: str, name: str | None = None, actor: str = "system") -> Tenant:
    """Add the tenant and publish its default definitions (the caller commits)."""
    tenant = Tenant(id=tenant_id, name=name or tenant_id.replace("-", " ").title())
    session.add(tenant)
    session.flush()
    publish_defaults(session, tenant_id, actor)
    return tenant


def publish_defaults(session: Session, tenant_id: str, actor: str = "system") -> list[str]:
    """Publish each default definition the tenant has no version of; returns the keys published."""
    published = []
    for key in DEFAULT_DEFINITIONS:
        if session.exec(select(WorkflowDefinition.id).where(
                WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == key).limit(1)).first():
            continue
        path = LIBRARY / f"{key}.yaml"
        row = save_draft(session, tenant_id, path.read_text(), path.name, actor)
        session.flush()
        publish(session, tenant_id, key, row.version)
        published.append(key)
    return published
