"""Investor profiles: editing one (buy box, entity, check sizes, notes, owner, tags), reopening a passed one, and
the list filters investor relations work with. The API's investor routes call these."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, or_, type_coerce
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from core.db import is_unique_violation, like_pattern
from models.audit import record_audit
from models.base import utcnow
from models.event import emit
from models.investor import Investor, InvestorStatus
from models.timeline import TimelineEntry
from services.acting import Acting, Conflict, Invalid, check_owner
from services.assignment import resolve

PROFILE = ("name", "company", "email", "phone", "entity_type", "check_min", "check_max", "capital_available",
           "notes", "tags", "source", "preferences")


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def update_investor(session: Session, caller: Acting, investor: Investor, changes: dict[str, Any]) -> Investor:
    """PATCH: the fields sent (a null clears an optional one; `preferences` replaces the buy box), audited with
    before and after. `assignee` changes the owner (staff: themselves or nobody on an investor that is theirs or
    no one's; managers and admins: anyone). An email or phone another investor has is a 409."""
    check_owner(caller, investor.assigned_to, f"investor {investor.id}")
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for field in PROFILE:
        if field not in changes:
            continue
        value = changes[field]
        if field == "name" and not (value or "").strip():
            raise Invalid("an investor's name cannot be empty", field="name")
        if field == "entity_type" and value is None:
            raise Invalid("an investor's entity type cannot be cleared (individual, joint, llc, trust, ira)",
                          field="entity_type")
        if field in ("tags", "preferences") and value is None:
            value = [] if field == "tags" else {}
        if getattr(investor, field) != value:
            before[field], after[field] = _json(getattr(investor, field)), _json(value)
            setattr(investor, field, value)
    low, high = investor.check_min, investor.check_max
    if low is not None and high is not None and low > high:
        raise Invalid("check_min is above check_max", field="check_min")
    if not investor.email and not investor.phone:
        raise Invalid("an investor needs an email or a phone", field="email")
    if "assignee" in changes:
        user = resolve(session, caller.tenant_id, changes["assignee"], team=changes.get("team"), subject=investor)
        owner = user.id if user else None
        if owner != investor.assigned_to:
            if owner not in (None, caller.user_id):  # giving it to someone else: the manager's right
                check_owner(caller, "someone-else", f"investor {investor.id}")
            before["assigned_to"], after["assigned_to"] = investor.assigned_to, owner
            investor.assigned_to = owner
    if after:
        investor.updated_at = utcnow()
        session.add(investor)
        record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="investor.update",
                     entity_type="investor", entity_id=investor.id, before=before, after=after)
        session.add(TimelineEntry(tenant_id=investor.tenant_id, investor_id=investor.id, kind="investor.updated",
                                  summary="Profile updated: " + ", ".join(sorted(after)),
                                  data={"fields": sorted(after)}, actor=caller.actor,
                                  idempotency_key=f"{investor.id}:updated:{investor.updated_at.isoformat()}"))
    try:
        session.commit()
    except IntegrityError as exc:
        session.rollback()
        if is_unique_violation(exc):
            raise Conflict("another investor of this tenant has that email or phone", field="email") from None
        raise
    session.refresh(investor)  # the stored values (money as saved: 50000.00)
    return investor


def reopen_investor(session: Session, caller: Acting, investor: Investor, reason: str | None) -> Investor:
    """A passed investor back in the raise (status engaged), with the reason on the timeline and
    investor.reopened on the event path (definitions may start on it). 409 unless passed."""
    check_owner(caller, investor.assigned_to, f"investor {investor.id}")
    if investor.status != InvestorStatus.passed.value:
        raise Conflict(f"investor {investor.id} is {investor.status}: only a passed investor is reopened",
                       field="status")
    now = utcnow()
    investor.status, investor.updated_at = InvestorStatus.engaged.value, now
    session.add(investor)
    key = f"{investor.id}:reopened:{now.isoformat()}"
    session.add(TimelineEntry(tenant_id=investor.tenant_id, investor_id=investor.id, kind="investor.reopened",
                              summary=("Reopened" + (f": {reason}" if reason else ""))[:500], data={"reason": reason},
                              actor=caller.actor, idempotency_key=key))
    record_audit(session, tenant_id=caller.tenant_id, actor=caller.actor, action="investor.reopen",
                 entity_type="investor", entity_id=investor.id, before={"status": "passed"},
                 after={"status": investor.status, "reason": reason})
    emit(session, tenant_id=investor.tenant_id, subject_type="investor", subject_id=investor.id,
         name="investor.reopened", event_id=key, data={"reason": reason})
    session.commit()
    return investor


@dataclass(frozen=True)
class InvestorFilters:
    status: tuple[str, ...] = ()
    accredited: bool | None = None
    market: str | None = None  # a state or ZIP in the buy box
    check: Decimal | None = None  # a check of this size fits their min/max
    contacted_before: datetime | None = None
    contacted_after: datetime | None = None
    owner: str | None = None  # a user id, or "none"
    q: str | None = None
    accreditation_ends_by: datetime | None = None  # an unexpired accreditation that ends by then (about to lapse)


def investor_list_query(tenant_id: str, filters: InvestorFilters, dialect: str) -> SelectOfScalar[Investor]:
    query = select(Investor).where(Investor.tenant_id == tenant_id)
    if filters.status:
        query = query.where(col(Investor.status).in_(filters.status))
    if filters.accredited is not None:
        query = query.where(Investor.accredited == filters.accredited)
    if filters.owner == "none":
        query = query.where(col(Investor.assigned_to).is_(None))
    elif filters.owner:
        query = query.where(Investor.assigned_to == filters.owner)
    if filters.market:
        if dialect == "postgresql":  # JSONB containment: ["TX"] in the array
            query = query.where(type_coerce(Investor.preferences, JSONB)["markets"].contains([filters.market]))
        else:  # SQLite: the array's JSON text holds the quoted code (codes are [A-Z]{2} or 5 digits)
            query = query.where(cast(Investor.preferences["markets"], String).like(f'%"{filters.market}"%'))
    if filters.check is not None:
        query = query.where(or_(col(Investor.check_min).is_(None), col(Investor.check_min) <= filters.check),
                            or_(col(Investor.check_max).is_(None), col(Investor.check_max) >= filters.check))
    if filters.accreditation_ends_by is not None:
        query = query.where(col(Investor.accreditation_expires_at) > utcnow(),
                            col(Investor.accreditation_expires_at) <= filters.accreditation_ends_by)
    if filters.contacted_before is not None:
        query = query.where(col(Investor.last_contacted_at) < filters.contacted_before)
    if filters.contacted_after is not None:
        query = query.where(col(Investor.last_contacted_at) >= filters.contacted_after)
    if filters.q:
        needle = like_pattern(filters.q.lower())  # a % or _ in the text is itself
        conditions = [func.lower(col(Investor.name)).like(needle, escape="\\"),
                      func.lower(col(Investor.company)).like(needle, escape="\\"),
                      col(Investor.email).like(needle, escape="\\")]
        digits = "".join(ch for ch in filters.q if ch.isdigit())
        if len(digits) >= 3:
            conditions.append(col(Investor.phone).like(f"%{digits}%"))
        query = query.where(or_(*conditions))
    return query
