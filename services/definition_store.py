"""Definition versions in the database: drafts are editable, published versions are frozen (content hash),
retiring stops new enrollments. Every version stored has passed validation."""

from __future__ import annotations

import functools

from sqlmodel import Session, col, select

from definitions.loader import load
from definitions.model import Definition
from models.base import utcnow
from models.definition import WorkflowDefinition


class DefinitionConflict(ValueError):
    """A change that publishing rules forbid (409)."""


def save_draft(session: Session, tenant_id: str, source: str, filename: str, actor: str) -> WorkflowDefinition:
    """Validate and store (or replace) a draft. Raises DefinitionInvalid or DefinitionConflict."""
    definition = load(source, filename)
    row = session.exec(select(WorkflowDefinition).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == definition.key,
        WorkflowDefinition.version == definition.version)).first()
    if row and row.status != "draft":
        raise DefinitionConflict(f"{definition.key} version {definition.version} is {row.status} and cannot change; "
                                 f"bump 'version' to {latest_version(session, tenant_id, definition.key) + 1}")
    row = row or WorkflowDefinition(tenant_id=tenant_id, key=definition.key, version=definition.version, source="",
                                    content_hash="", created_by=actor)
    row.source, row.content_hash = source, definition.content_hash
    session.add(row)
    return row


def latest_version(session: Session, tenant_id: str, key: str) -> int:
    versions = session.exec(select(WorkflowDefinition.version).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == key)).all()
    return max(versions, default=0)


def publish(session: Session, tenant_id: str, key: str, version: int) -> WorkflowDefinition:
    row = session.exec(select(WorkflowDefinition).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == key,
        WorkflowDefinition.version == version)).first()
    if row is None:
        raise LookupError(f"no definition {key} version {version}")
    if row.status == "published":
        return row
    newest = session.exec(select(WorkflowDefinition).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == key,
        WorkflowDefinition.status == "published").order_by(col(WorkflowDefinition.version).desc())).first()
    if newest and newest.version > version:
        raise DefinitionConflict(f"version {newest.version} of {key} is already published; publish a newer version")
    load(row.source, f"{key}.yaml")  # still valid under today's vocabulary
    row.status, row.published_at = "published", utcnow()
    session.add(row)
    return row


def retire(session: Session, tenant_id: str, key: str) -> int:
    """Stop new enrollments into every published version of `key` (running executions finish)."""
    rows = session.exec(select(WorkflowDefinition).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.key == key,
        WorkflowDefinition.status == "published")).all()
    for row in rows:
        row.status = "retired"
        session.add(row)
    return len(rows)


def active(session: Session, tenant_id: str) -> list[Definition]:
    """The newest published version of each key: what new enrollments use."""
    rows = session.exec(select(WorkflowDefinition).where(
        WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.status == "published")
        .order_by(WorkflowDefinition.key, col(WorkflowDefinition.version).desc())).all()
    newest: dict[str, WorkflowDefinition] = {}
    for row in rows:
        newest.setdefault(row.key, row)
    return [_compiled(row.key, row.version, row.content_hash, row.source) for row in newest.values()]


@functools.lru_cache(maxsize=1024)
def _compiled(key: str, version: int, content_hash: str, source: str) -> Definition:
    """A published version never changes, so it is parsed and checked once per process, not once per event
    the relay delivers (parsing and compiling the CEL of every published definition took most of a delivery)."""
    del version, content_hash  # part of the cache key only
    return load(source, f"{key}.yaml")
