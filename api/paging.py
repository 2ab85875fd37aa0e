"""Keyset cursors over (created_at, id), newest first: stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sqlalchemy import and_, or_
from sqlmodel import col

from api.errors import Problem


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        created, row_id = json.loads(raw)
        return datetime.fromisoformat(created), str(row_id)
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Problem(422, "invalid cursor: pass back next_cursor exactly as received",
                      errors=[{"field": "cursor", "message": "malformed cursor"}]) from None


def page(session, query, model, limit: int, cursor: str | None):
    """Apply the cursor, order newest first, fetch one extra row. Returns (rows, next_cursor)."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(col(model.created_at) < created,
                                and_(col(model.created_at) == created, col(model.id) < row_id)))
    rows = session.exec(query.order_by(col(model.created_at).desc(), col(model.id).desc()).limit(limit + 1)).all()
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1].created_at, items[-1].id) if len(rows) > limit else None
    return items, next_cursor
