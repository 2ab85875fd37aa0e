"""Definition versions in the database: drafts are editable, published versions are frozen (content hash),
retiring stops new enrollments. Every version stored has passed validation."""

from __future__ import annotations

from sqlmodel import Session, col, select

from core.settings import get_settings
from definitions.loader import load
from definitions.model import Definition
from models.base import utcnow
from models.definition import WorkflowDefinition


class DefinitionConflict(ValueError):
    """A change that publishing rules forbid (409)."""


def load_submitted(source: str, filename: str = "definition.yaml") -> Definition:
    """`load` with the settings' size and depth limits: for what a person submits (the API's drafts and tests)."""
    settings = get_settings()
    return load(source, filename, max_bytes=settings.definition_max_bytes, max_depth=settings.definition_max_depth)


def save_draft(session: Session, tenant_id: str, source: str, filename: str, actor: str) -> WorkflowDefinition:
    """Validate and store (or replace) a draft. Raises DefinitionInvalid or DefinitionConflict."""
    definition = load_submitted(source, filename)
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
    definition = load(row.source, f"{key}.yaml")  # still valid under today's vocabulary
    for other in active(session, tenant_id):
        if other.key != key and other.key in definition.replaces and key in other.replaces:
            raise DefinitionConflict(f"{key} and {other.key} replace each other, so neither would ever start: "
                                     f"take one out of the other's 'replaces'")
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
    """The newest published version of each key: what new enrollments use. Reads the versions' ids and
    fingerprints only; the source of a version this process has not compiled yet is read once."""
    rows = session.exec(select(WorkflowDefinition.key, WorkflowDefinition.id, WorkflowDefinition.content_hash)
                        .where(WorkflowDefinition.tenant_id == tenant_id, WorkflowDefinition.status == "published")
                        .order_by(WorkflowDefinition.key, col(WorkflowDefinition.version).desc())).all()
    newest: dict[str, tuple[str, str]] = {}
    for key, row_id, content_hash in rows:
        newest.setdefault(key, (row_id, content_hash))
    return [_compiled(session, row_id, content_hash) for row_id, content_hash in newest.values()]


# A published version never changes, so it is parsed and checked once per process, not once per event the relay
# delivers (parsing and compiling the CEL of every published definition took most of a delivery).
_COMPILED: dict[tuple[str, str], Definition] = {}
_COMPILED_LIMIT = 1024


def _compiled(session: Session, row_id: str, content_hash: str) -> Definition:
    definition = _COMPILED.get((row_id, content_hash))
    if definition is None:
        row = session.get(WorkflowDefinition, row_id)
        definition = load(row.source, f"{row.key}.yaml")
        if len(_COMPILED) >= _COMPILED_LIMIT:
            _COMPILED.clear()
        _COMPILED[(row_id, content_hash)] = definition
    return definition
