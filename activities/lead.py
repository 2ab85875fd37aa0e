"""Lead activities: timeline writes and status changes, each idempotent on a business key."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.rows import owned

from core.db import committed
from models.investor import Investor
from models.lead import Lead, LeadStatus
from models.payloads import LeadStatusInput, TimelineEntryInput, TimelineEntryResult
from models.timeline import TimelineEntry
from models.opportunity import Opportunity
from models.views import deal_view, investor_view, lead_view
from services.lead_status import apply_status


class LeadActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    # Sync activities run on the worker's thread pool, so blocking DB calls are fine here.
    @activity.defn
    def record_timeline_entry(self, entry: TimelineEntryInput) -> TimelineEntryResult:
        with Session(self._engine) as session:
            existing = session.exec(
                select(TimelineEntry).where(TimelineEntry.idempotency_key == entry.idempotency_key)
            ).first()
            if existing:
                return TimelineEntryResult(entry_id=existing.id, created=False)
            row = TimelineEntry(**entry.model_dump())
            session.add(row)
            if not committed(session):
                # Another attempt won the race: the earlier write stands.
                existing = session.exec(
                    select(TimelineEntry).where(TimelineEntry.idempotency_key == entry.idempotency_key)
                ).one()
                return TimelineEntryResult(entry_id=existing.id, created=False)
            activity.logger.info("timeline %s recorded for %s", entry.kind, entry.lead_id)
            return TimelineEntryResult(entry_id=row.id, created=True)

    @activity.defn
    def load_lead(self, ref: dict[str, str]) -> dict[str, Any]:
        """What definitions' conditions see as `lead` (plain JSON)."""
        with Session(self._engine) as session:
            return lead_view(session, owned(session, Lead, ref["lead_id"], ref["tenant_id"], "lead"))

    @activity.defn
    def load_deal(self, ref: dict[str, str]) -> dict[str, Any]:
        """What definitions about deals see as `deal`."""
        with Session(self._engine) as session:
            return deal_view(session, owned(session, Opportunity, ref["deal_id"], ref["tenant_id"], "deal"))

    @activity.defn
    def load_investor(self, ref: dict[str, str]) -> dict[str, Any]:
        """What definitions about investors see as `investor`."""
        with Session(self._engine) as session:
            return investor_view(owned(session, Investor, ref["investor_id"], ref["tenant_id"], "investor"))

    @activity.defn
    def set_lead_status(self, change: LeadStatusInput) -> None:
        try:
            status = LeadStatus(change.status)
        except ValueError:
            raise ApplicationError(f"unknown lead status {change.status!r}", non_retryable=True) from None
        info = activity.info()
        with Session(self._engine) as session:
            lead = owned(session, Lead, change.lead_id, change.tenant_id, "lead")
            # A retried attempt finds the status applied and writes nothing; the event id is the attempt's
            # stable identity (run id + activity id), never a counter.
            if apply_status(session, lead, status, change.reason, change.actor,
                            event_id=f"{info.workflow_run_id}:{info.activity_id}:{status}"):
                session.commit()
