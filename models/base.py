"""Column types and conventions shared by every table."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, Column, DateTime, MetaData, Numeric
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel

# Stable constraint names so Alembic batch migrations work on SQLite and Postgres alike.
SQLModel.metadata.naming_convention = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata: MetaData = SQLModel.metadata


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    """Readable, URL-safe ids: `ld_3f2a...` for leads, `op_...` for opportunities."""
    return f"{prefix}_{uuid.uuid4().hex[:20]}"


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC on every backend (SQLite stores naive values)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: use aware UTC datetimes")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType = JSON().with_variant(JSONB(), "postgresql")


def json_field(default_factory=dict, **kwargs: Any) -> Any:
    return Field(default_factory=default_factory, sa_column=Column(JSONType, nullable=False), **kwargs)


def optional_json_field(**kwargs: Any) -> Any:
    return Field(default=None, sa_column=Column(JSONType, nullable=True), **kwargs)


def time_field(*, nullable: bool = False, index: bool = False, default_now: bool = True) -> Any:
    return Field(
        default_factory=utcnow if default_now else (lambda: None),
        sa_column=Column(UTCDateTime(), nullable=nullable, index=index),
    )


def money_field(**kwargs: Any) -> Any:
    return Field(default=None, sa_column=Column(Numeric(14, 2), nullable=True), **kwargs)

