"""Scoring activities (tasks are activities/staff.py's)."""

from __future__ import annotations

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.heartbeat import heartbeating
from activities.rows import owned

from core.settings import Settings
from models.base import utcnow
from models.event import emit
from models.lead import Lead
from models.payloads import DriftCheck, DriftCheckInput, ScoreInput, ScoreResult
from models.timeline import TimelineEntry
from scoring.deal_registry import DealModels
from scoring.engagement import engagement
from scoring.registry import ModelRegistry
from workflows.retrain import RETRAINED, RetrainRequest


class ScoringActivities:
    def __init__(self, engine: Engine, registry: ModelRegistry, settings: Settings,
                 deals: DealModels | None = None) -> None:
        self._engine, self._registry, self._settings = engine, registry, settings
        self._deals = deals or DealModels(engine, settings.effective_models_dir)

    @activity.defn
    def retrain_scoring_model(self, request: RetrainRequest) -> dict:
        """ScoringRetrainWorkflow's work: services/retraining.py for the lead model, services/deal_retraining.py for
        the deal models (a candidate, compared, promoted or not)."""
        from services.retraining import retrain_model

        if request.model not in RETRAINED:
            raise ApplicationError(f"no retraining for the {request.model} model", type="Invalid", non_retryable=True)
        with heartbeating():
            return retrain_model(self._engine, self._settings, self._registry, self._deals, request.tenant_id,
                                 request.model, by=request.by).as_dict()

    @activity.defn
    def check_scoring_drift(self, request: DriftCheckInput) -> DriftCheck:
        """ScoringDriftWorkflow's work: the tenant's drift report, which sets this worker's drift gauges."""
        from services.drift import check_drift

        with heartbeating():
            return check_drift(self._engine, self._settings, request.tenant_id, self._deals)

    @activity.defn
    def score_lead(self, request: ScoreInput) -> ScoreResult:
        with heartbeating():  # a cold-start model trains here: the beats tell Temporal this worker is alive
            return self._score(request)

    def _score(self, request: ScoreInput) -> ScoreResult:
        with Session(self._engine) as session:
            lead = owned(session, Lead, request.lead_id, request.tenant_id, "lead")
            facts = lead.model_dump(), lead.enrichment, engagement(session, lead)
        model = self._registry.ensure_active(request.tenant_id)
        try:  # Dealflow's features, or an export model's columns from the lead's custom fields
            probability, reasons = model.score(*facts, utcnow())
        except (ValueError, TypeError) as exc:  # garbage features are poison input, not a retry loop
            raise ApplicationError(f"lead cannot be scored: {exc}", type="BadFeatures", non_retryable=True) from None
        with Session(self._engine) as session:
            lead = session.get(Lead, request.lead_id)
            lead.score, lead.score_model_version = round(probability, 4), model.label
            lead.score_explanation, lead.scored_at = reasons, utcnow()
            session.add(lead)
            info = activity.info()
            key = f"{lead.id}:scored:{info.workflow_run_id}:{info.activity_id}"
            if not session.exec(select(TimelineEntry).where(TimelineEntry.idempotency_key == key)).first():
                session.add(TimelineEntry(
                    tenant_id=lead.tenant_id, lead_id=lead.id, kind="lead.scored",
                    summary=f"Scored {probability:.0%} ({request.reason}); "
                            + "; ".join(r["text"] for r in reasons[:3]),
                    data={"probability": round(probability, 4), "model": model.label, "reasons": reasons},
                    workflow_id=info.workflow_id, idempotency_key=key))
            if request.event_id:  # a retried attempt writes the same event id: stored once
                emit(session, tenant_id=lead.tenant_id, subject_type="lead", subject_id=lead.id, name="lead.scored",
                     event_id=request.event_id, data={"reason": request.reason, "probability": round(probability, 4),
                           "stopped": request.stopped})
            session.commit()
        return ScoreResult(probability=round(probability, 4), model_version=model.label, reasons=reasons)
