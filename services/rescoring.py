"""Re-scoring a tenant's book with its active model (after training one from an export, say): every live lead, a
page at a time, each page one transaction that writes the scores and their reasons back.

A bulk refresh, not a lead's event: it writes no timeline entry and no `lead.scored` event (definitions that wait for
scores hear the per-lead score_lead of the lead's workflow, which a new model also serves from then on).
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Engine, update
from sqlmodel import Session, col, func, select

from models.base import utcnow
from models.lead import Lead
from scoring.engagement import engagement_of
from scoring.registry import ModelRegistry

PAGE = 2000


def live_leads(session: Session, tenant_id: str) -> int:
    return session.exec(select(func.count()).select_from(Lead).where(
        Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None))).one()


def rescore_leads(engine: Engine, registry: ModelRegistry, tenant_id: str, page: int = PAGE,
                  progress: Callable[[int], None] | None = None) -> dict:
    """Score every live lead of the tenant with the active model; `progress(n)` after each page of n leads."""
    model = registry.ensure_active(tenant_id)
    now, after, scored = utcnow(), "", 0
    while True:
        with Session(engine) as session:
            leads = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None),
                                                    Lead.id > after).order_by(Lead.id).limit(page)).all()
            if not leads:
                break
            engaged = engagement_of(session, leads)
            rows = [model.row(lead.model_dump(), lead.enrichment, engaged[lead.id], now) for lead in leads]
            results = model.explain_many(rows, now)
            session.execute(update(Lead), [
                {"id": lead.id, "score": round(probability, 4), "score_model_version": model.label,
                 "score_explanation": reasons, "scored_at": now}
                for lead, (probability, reasons) in zip(leads, results, strict=True)])
            session.commit()
            after = leads[-1].id
            scored += len(leads)
        if progress:
            progress(len(leads))
    return {"scored": scored, "model": model.label}
