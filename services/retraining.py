"""Retraining a tenant's lead model (issue 13): ScoringRetrainWorkflow's activity and `dealflow scoring retrain`.

The tenant's closed leads (converted: a deal; dead: not) are split in time at a cut-off: the candidate is trained
on the ones that closed before it, and it and the active model are both scored on the ones that closed after
(leads the candidate never saw). The candidate is registered either way (every version stays in the registry with
its data hash, features and metrics), and made active only when scoring/promotion.py says it is better by the
margin; `rollback` makes an earlier version active again. Each step records who did it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from core.metrics import MODEL_LIVE_AUC, MODEL_LIVE_BRIER
from core.settings import Settings
from models.base import utcnow
from models.lead import Lead
from scoring.engagement import engagement
from scoring.features import FEATURES, lead_features
from scoring.deal_registry import DealModels
from scoring.promotion import decide, evaluate
from scoring.registry import ModelRegistry
from scoring.training import train

HOLD_OUT = 0.2  # without a cut-off: the latest fifth of the closed leads is the evaluation period
MIN_EVALUATION = 20  # later leads (with both outcomes) a comparison needs


@dataclass(frozen=True)
class RetrainOutcome:
    tenant_id: str
    version: int | None  # the candidate registered (None: not enough history to train and compare)
    promoted: bool
    reason: str
    cutoff: str | None = None
    candidate: dict | None = None
    active: dict | None = None
    active_version: int | None = None
    model: str = "lead"  # or deal (services/deal_retraining.py)

    def as_dict(self) -> dict:
        return self.__dict__.copy()


def closed_leads(engine: Engine, tenant_id: str) -> list[tuple[dict, dict | None, dict, datetime, int]]:
    """(lead, enrichment, engagement, closed at, outcome) for every closed lead, oldest close first."""
    with Session(engine) as session:
        leads = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None),
                                                col(Lead.status).in_(["converted", "dead"]))
                             .order_by(col(Lead.updated_at), col(Lead.id))).all()
        return [(lead.model_dump(), lead.enrichment, engagement(session, lead), lead.updated_at,
                 1 if lead.status == "converted" else 0) for lead in leads]


def retrain_lead_model(engine: Engine, registry: ModelRegistry, tenant_id: str, *, by: str,
                       cutoff: datetime | None = None, margin: float = 0.005) -> RetrainOutcome:
    rows = closed_leads(engine, tenant_id)
    registry.ensure_active(tenant_id)
    current = next((v for v in registry.versions(tenant_id) if v.active), None)
    if cutoff is None and len(rows) >= 5:
        cutoff = rows[int(len(rows) * (1 - HOLD_OUT))][3]
        if current is not None and current.kind != "cold_start":  # it learned from what closed before it was made:
            cutoff = max(cutoff, current.created_at)  # compare on leads neither model saw
    before = [r for r in rows if cutoff is not None and r[3] < cutoff]
    after = [r for r in rows if cutoff is not None and r[3] >= cutoff]
    later = np.array([r[4] for r in after], dtype=int)
    if len(after) < MIN_EVALUATION or later.min(initial=0) == later.max(initial=0):
        return RetrainOutcome(tenant_id, None, False, f"not enough history: {len(rows)} closed leads, "
                              f"{len(after)} after the cut-off (a comparison needs {MIN_EVALUATION} later leads "
                              "with both outcomes)", cutoff.isoformat() if cutoff else None)
    frame = pd.DataFrame([lead_features(lead, enr, eng, at) for lead, enr, eng, at, _ in before], columns=FEATURES)
    try:
        candidate = train(frame, np.array([r[4] for r in before], dtype=int))
    except ValueError as exc:  # too few rows or deals before the cut-off
        return RetrainOutcome(tenant_id, None, False, str(exc), cutoff.isoformat())
    evaluation_rows = [lead_features(lead, enr, eng, at) for lead, enr, eng, at, _ in after]
    from scoring.training import prepare

    candidate_eval = evaluate(candidate.model.predict_proba(
        prepare(pd.DataFrame(evaluation_rows, columns=FEATURES), candidate.features, candidate.categories))[:, 1],
        later)
    active = registry.ensure_active(tenant_id)
    active_rows = [active.row(lead, enr, eng, at) for lead, enr, eng, at, _ in after]
    active_eval = evaluate(active.predict(active_rows, utcnow()), later)
    MODEL_LIVE_AUC.labels(tenant_id, str(active.version)).set(active_eval.auc)  # the active model, realised
    MODEL_LIVE_BRIER.labels(tenant_id, str(active.version)).set(active_eval.brier)
    promoted, reason = decide(candidate_eval, active_eval, margin)
    row = registry.register(tenant_id, candidate, "crm_history", activate="always" if promoted else "never", extra={
        "evaluation": {"cutoff": cutoff.isoformat(), "candidate": candidate_eval.as_dict(),
                       "active": active_eval.as_dict(), "active_version": active.version, "margin": margin},
        "promotion": {"promoted": promoted, "by": by, "at": utcnow().isoformat(), "reason": reason}})
    return RetrainOutcome(tenant_id, row.version, promoted, reason, cutoff.isoformat(), candidate_eval.as_dict(),
                          active_eval.as_dict(), active.version)


def retrain_model(engine: Engine, settings: Settings, lead: ModelRegistry, deals: DealModels, tenant_id: str,
                  model: str, *, by: str) -> RetrainOutcome:
    """One model's retraining with the settings' margins: ScoringRetrainWorkflow's activity and `dealflow scoring
    retrain --local`. A ValueError for a model that is not retrained."""
    if model == "lead":
        return retrain_lead_model(engine, lead, tenant_id, by=by, margin=settings.scoring_promotion_margin)
    if model == "deal":
        from services.deal_retraining import retrain_deal_models  # it builds on this module

        return retrain_deal_models(engine, deals, tenant_id, by=by, min_closed=settings.deal_forecast_min_closed,
                                   margin=settings.scoring_deal_pinball_margin,
                                   tolerance=settings.scoring_deal_concordance_tolerance)
    raise ValueError(f"no retraining for the {model} model")


def rollback(registry: ModelRegistry | DealModels, tenant_id: str, *, by: str, to: int | None = None,
             model: str = "lead") -> tuple[int, int]:
    """The version active before the current one (or `to`) made active again: (from version, to version). The
    lead model's registry, or (model="deal") the deal models' (DealModels: the same versions and activate)."""
    versions = registry.versions(tenant_id)
    current = next((v for v in versions if v.active), None)
    if current is None:
        raise LookupError(f"{tenant_id} has no active {model} model")
    if to is None:
        earlier = [a.get("replaced") for a in current.metrics.get("activations", [])]
        promoted_over = (current.metrics.get("evaluation") or {}).get("active_version")
        to = next((v for v in reversed(earlier) if v), None) or promoted_over or next(
            (v.version for v in versions if v.version < current.version), None)
    if to is None or to == current.version:
        raise LookupError(f"{tenant_id}'s {model} model v{current.version} has no earlier version to roll back to")
    registry.activate(tenant_id, to, by=by, reason=f"rolled back from v{current.version}")
    return current.version, to
