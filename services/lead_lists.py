"""The lead list's query (filters, search, sort), shared by GET /api/v1/leads, the console and the benchmark.

Every filter and sort it offers has an index made for it (models/lead.py, migration 0008): each page is an index
scan in (tenant, filter, sort key, id) order on the partial indexes of live, non-duplicate leads, and the search
uses trigram indexes on Postgres (pg_trgm). tests/integration/test_lead_list_plans.py checks the plans. The tag
and received-date filters narrow those scans (no index of their own: a tag is matched in the row's JSON text).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import String, cast, or_
from sqlmodel import col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.db import like_pattern
from models.lead import LEAD_SEARCH_TEXT, Lead

SORTS = ("-created_at", "created_at", "-score", "score")


@dataclass(frozen=True)
class LeadFilters:
    status: list[str] = field(default_factory=list)
    source: list[str] = field(default_factory=list)
    q: str | None = None
    assigned: str | None = None  # a user id, or "none" for unassigned
    min_score: float | None = None
    max_score: float | None = None
    include_duplicates: bool = False
    sort: str = "-created_at"
    tag: str | None = None  # has this tag (tags are stored lower-cased)
    created_from: datetime | None = None  # received at or after
    created_to: datetime | None = None  # received before

    @property
    def sort_key(self) -> str:
        return self.sort.lstrip("-")

    @property
    def descending(self) -> bool:
        return self.sort.startswith("-")


def search_condition(q: str):
    """Name, email, address or phone contains `q` (any case), or its digits (3 or more) — one indexed text."""
    conditions = [LEAD_SEARCH_TEXT.like(like_pattern(q.lower()), escape="\\")]
    digits = "".join(ch for ch in q if ch.isdigit())
    if len(digits) >= 3 and digits != q:  # "(512) 200-4242" finds +15122004242
        conditions.append(LEAD_SEARCH_TEXT.like(f"%{digits}%"))
    return or_(*conditions) if len(conditions) > 1 else conditions[0]


def lead_list_query(tenant_id: str, filters: LeadFilters) -> SelectOfScalar[Lead]:
    """The filtered, unordered query; api.paging adds the order, the cursor and the limit."""
    query = select(Lead).where(Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None))
    if not filters.include_duplicates:
        query = query.where(col(Lead.duplicate_of).is_(None))
    if filters.status:
        query = query.where(col(Lead.status).in_(filters.status))
    if filters.source:
        query = query.where(col(Lead.source).in_(filters.source))
    if filters.q:
        query = query.where(search_condition(filters.q))
    if filters.assigned == "none":
        query = query.where(col(Lead.assigned_to).is_(None))
    elif filters.assigned:
        query = query.where(Lead.assigned_to == filters.assigned)
    if filters.min_score is not None:
        query = query.where(col(Lead.score) >= filters.min_score)
    if filters.max_score is not None:
        query = query.where(col(Lead.score) <= filters.max_score)
    if filters.tag:  # the JSON list's text holds "tag" (quoted: a tag that is part of another does not match)
        pattern = like_pattern(json.dumps(filters.tag.strip().lower()))
        query = query.where(cast(Lead.__table__.c.tags, String).like(pattern, escape="\\"))
    if filters.created_from is not None:
        query = query.where(col(Lead.created_at) >= filters.created_from)
    if filters.created_to is not None:
        query = query.where(col(Lead.created_at) < filters.created_to)
    if filters.sort_key == "score":  # unscored leads have no place in a list by score
        query = query.where(col(Lead.score).is_not(None))
    return query
