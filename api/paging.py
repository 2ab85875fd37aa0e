"""Keyset cursors over (created_at, id), newest first: stable under concurrent inserts."""

from __future__ import annotations

import base64
import binascii
import json
import math
from datetime import datetime

from sqlalchemy import bindparam, tuple_
from sqlmodel import col

from api.errors import Problem


def encode_cursor(value: datetime | float, row_id: str) -> str:
    raw = json.dumps([value.isoformat() if isinstance(value, datetime) else value, row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, by: str = "created_at") -> tuple[datetime | float, str]:
    """The (sort value, row id) a cursor carries; 422 for anything `encode_cursor` cannot have made (a naive
    time, an id longer than ids are, a number that is not finite)."""
    try:
        if len(cursor) > 400:
            raise ValueError("too long")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        value, row_id = json.loads(raw)
        if not isinstance(row_id, str) or not 0 < len(row_id) <= 40:
            raise ValueError("bad id")
        if by.endswith("_at"):  # created_at, due_at: a time
            value = datetime.fromisoformat(value)
            if value.tzinfo is None:
                raise ValueError("naive time")
        elif isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ValueError("bad number")
        return value, row_id
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError, RecursionError):
        raise Problem(422, "invalid cursor: pass back next_cursor exactly as received",
                      errors=[{"field": "cursor", "message": "malformed cursor"}]) from None


def keyset(query, model, limit: int, after: tuple | None = None, by: str = "created_at", descending: bool = True):
    """`query` ordered on (by, id), after the row whose (by, id) is `after`, `limit` rows. The cursor is one row
    comparison, `(by, id) < (value, id)`, which an index on (..., by, id) starts its scan at: the thousandth page
    costs what the first does (an OR of the two parts is a filter the scan must read its way to)."""
    key, row_key = col(getattr(model, by)), col(model.id)
    if after is not None:
        position = tuple_(key, row_key)
        bound = tuple_(*(bindparam(None, v, type_=c.type) for c, v in zip((key, row_key), after, strict=True)))
        query = query.where(position < bound if descending else position > bound)
    order = (key.desc(), row_key.desc()) if descending else (key.asc(), row_key.asc())
    return query.order_by(*order).limit(limit)


def page(session, query, model, limit: int, cursor: str | None, by: str = "created_at", descending: bool = True):
    """Keyset paging on (by, id), newest/highest first by default; fetches one extra row.
    Rows whose `by` is NULL are left out (callers filter them when sorting by score)."""
    after = decode_cursor(cursor, by) if cursor else None
    rows = session.exec(keyset(query, model, limit + 1, after, by, descending)).all()
    items = rows[:limit]
    next_cursor = encode_cursor(getattr(items[-1], by), items[-1].id) if len(rows) > limit else None
    return items, next_cursor
