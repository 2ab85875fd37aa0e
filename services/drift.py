"""A tenant's drift report: the population stability (PSI, scoring/drift.py) of every input of its active model and
of its score, between the training data and the leads scored in the last N days.

- The reference is what the version stored at training (`metrics["reference"]`: bins and shares per feature, and
  the out-of-fold scores'). A version trained before drift reports has none; the cold-start model's is recomputed
  when its training data is the seeded synthetic book (its `training_data_hash` says so), any other is refused
  with "retrain it": its training data (a tenant's closed leads then, an export file) cannot be read again as it
  was.
- The current sample is every live lead with a `scored_at` in the window, its features computed as score_lead
  computed them (the same feature function, or an export model's encoded custom fields) as of its `scored_at`
  (messages and replies up to then, days since created at then), read a page of leads at a time. The score's
  current sample is the scores of those leads that the active version itself gave (after a retrain, leads scored
  by the previous version say nothing about this one's scores).

Computing a report sets the gauges `dealflow_model_feature_psi` and `dealflow_model_score_psi` of this process
(core/metrics.py), which the ModelDrift alert reads: the worker computes every tenant's on a Schedule
(ScoringDriftWorkflow, `check_drift`), the API when asked. A scheduled check is also kept with the version
(`scoring_models.last_drift_check`), and a starting worker sets the gauges from it (`restore_drift_gauges`): the
gauges live in a process, and a deploy would otherwise leave the alert blind until the next check, up to a day.
"""

from __future__ import annotations

import threading
from contextlib import suppress
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel
from sqlalchemy import Engine, select, text, update
from sqlmodel import Session, col
from sqlmodel import select as select_model

from core.metrics import MODEL_FEATURE_PSI, MODEL_SCORE_PSI
from core.settings import Settings
from models.base import utcnow
from models.enrichment import ScoringModel
from models.lead import Lead
from models.payloads import DriftCheck
from models.tenant import Tenant
from scoring.drift import BINS, SCORE, FeatureDrift, Reference, compare, export_frame
from scoring.engagement import engagement_as_of
from scoring.export import ExportSpec, LeadValues
from scoring.features import lead_features
from scoring.registry import LEAD, model_label
from services.acting import Conflict, NotFound

PAGE = 5000
FEW = 200  # fewer current rows than this: chance alone gives a decile feature a PSI of about 0.05 or more
READ = ("id", "email", "phone", "source", "tags", "custom", "enrichment", "created_at", "scored_at", "score",
        "score_model_version")


class DriftReport(BaseModel):
    tenant: str
    model_version: int
    model: str  # as a lead's score_model_version names it
    model_kind: str
    reference: str  # where the reference came from
    window_days: int
    since: datetime
    computed_at: datetime
    threshold: float  # drift_psi_threshold: above it a feature (or the score) is drifted
    n_reference: int  # training rows
    n_current: int  # leads scored in the window
    score: FeatureDrift | None  # None when no lead in the window was scored by this version
    features: list[FeatureDrift]  # highest PSI first
    drifted: list[str]  # the features above the threshold, highest first
    score_drifted: bool
    significant: bool  # a feature or the score drifted: what `dealflow scoring drift --retrain` acts on
    notes: list[str]

    def find(self, feature: str) -> FeatureDrift:
        if feature == SCORE and self.score is not None:
            return self.score
        for entry in self.features:
            if entry.feature == feature:
                return entry
        known = ", ".join([SCORE] * (self.score is not None) + sorted(f.feature for f in self.features))
        raise NotFound(f"model v{self.model_version} has no feature {feature!r} (its features: {known})")


def drift_report(session: Session, settings: Settings, tenant_id: str, days: int | None = None,
                 now: datetime | None = None) -> DriftReport:
    """The report, or NotFound (no such tenant, no active model) / Conflict (no reference, no scored leads)."""
    days = days or settings.drift_window_days
    now = now or utcnow()
    since = now - timedelta(days=days)
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id!r} does not exist")
    row = session.exec(select_model(ScoringModel).where(ScoringModel.tenant_id == tenant_id,
                                                        ScoringModel.model == LEAD,  # not the deal models
                                                        col(ScoringModel.active).is_(True))).first()
    if row is None:
        raise NotFound(f"tenant {tenant_id!r} has no active scoring model: train one (dealflow scoring train) or "
                       "let a lead be scored (the cold-start model is made on first use)")
    reference, source = _reference(row)
    label = model_label(tenant_id, row.version, row.kind)
    spec = ExportSpec.from_dict(row.metrics["export"]) if row.metrics.get("export") else None
    frame, scores = current_sample(session, tenant_id, list(row.features), spec, label, since, now)
    if frame.empty:
        raise Conflict(f"no lead of {tenant_id!r} was scored in the last {days} days (since "
                       f"{since:%Y-%m-%d %H:%M} UTC): nothing to compare model v{row.version}'s training data with")
    features = sorted((compare(name, Reference(**reference["features"][name]), frame[name])
                       for name in row.features if name in reference["features"]), key=lambda f: -f.psi)
    score = compare(SCORE, Reference(**reference[SCORE]), scores) if len(scores) else None
    threshold = settings.drift_psi_threshold
    notes = []
    if len(frame) < FEW:
        notes.append(f"only {len(frame)} leads in the window: chance alone gives a decile feature a PSI of about "
                     f"{_chance(reference, len(frame)):.2f}, some more; widen the window (days) for a firmer reading")
    if score is None:
        notes.append(f"no lead in the window was scored by model v{row.version}: re-score the book "
                     "(dealflow scoring rescore) to compare its scores")
    elif len(scores) < len(frame):
        notes.append(f"the score's PSI is over the {len(scores)} leads scored by model v{row.version}; the other "
                     f"{len(frame) - len(scores)} were scored by an earlier version")
    drifted = [f.feature for f in features if f.psi > threshold]
    score_drifted = score is not None and score.psi > threshold
    report = DriftReport(
        tenant=tenant_id, model_version=row.version, model=label, model_kind=row.kind, reference=source,
        window_days=days, since=since, computed_at=now, threshold=threshold, n_reference=int(reference["n"]),
        n_current=len(frame), score=score, features=features, drifted=drifted, score_drifted=score_drifted,
        significant=bool(drifted) or score_drifted, notes=notes)
    _export_gauges(report.tenant, report.model_version, {f.feature: f.psi for f in report.features},
                   report.score.psi if report.score is not None else None)
    return report


def check_drift(engine: Engine, settings: Settings, tenant_id: str) -> DriftCheck:
    """ScoringDriftWorkflow's activity: the tenant's report (which sets this process's drift gauges: the worker's,
    which Prometheus scrapes) in brief, and whether to retrain. No report is an answer, not a failure: a tenant
    whose leads were not scored lately has nothing to compare."""
    with Session(engine) as session:
        try:
            report = drift_report(session, settings, tenant_id)
        except (NotFound, Conflict) as exc:
            return DriftCheck(tenant_id=tenant_id, checked=False, reason=str(exc))
        _keep_check(session, report)
        session.commit()
    drifted = ([SCORE] if report.score_drifted else []) + report.drifted
    psis = [f.psi for f in report.features] + ([report.score.psi] if report.score else [])
    retrain = report.significant and settings.scoring_retrain_on_drift
    reason = (f"drifted over {report.threshold}: {', '.join(drifted)}" if drifted else
              f"no drift over {report.threshold}") + f" ({report.n_current} leads scored in {report.window_days} days)"
    if report.significant and not retrain:
        reason += "; DEALFLOW_SCORING_RETRAIN_ON_DRIFT is off: not retrained"
    return DriftCheck(tenant_id=tenant_id, checked=True, reason=reason, model_version=report.model_version,
                      n_current=report.n_current, threshold=report.threshold, significant=report.significant,
                      drifted=drifted, max_psi=round(max(psis), 4) if psis else None, retrain=retrain)


def _keep_check(session: Session, report: DriftReport) -> None:
    """The report's PSIs on its version's row (restore_drift_gauges reads them); only this column is written, so a
    rollback or promotion changing the row's metrics meanwhile is not undone."""
    table = ScoringModel.__table__
    session.execute(update(table).where(
        table.c.tenant_id == report.tenant, table.c.model == LEAD, table.c.version == report.model_version).values(
        last_drift_check={"checked_at": report.computed_at.isoformat(), "window_days": report.window_days,
                          "n_current": report.n_current, "features": {f.feature: f.psi for f in report.features},
                          "score": report.score.psi if report.score is not None else None}))


def restore_drift_gauges(engine: Engine, lock_wait: float = 5.0) -> int:
    """The worker's start: each tenant's drift gauges as its active lead model's last scheduled check set them (what
    this process would hold had it run that check); the number of tenants set. A version never checked (new, or
    promoted since the last check) sets nothing: an older version's PSIs say nothing of it. On Postgres it waits at
    most `lock_wait` seconds for a lock on the models table (a migration's, say) and then raises."""
    table = ScoringModel.__table__
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_wait * 1000)}ms'"))
        rows = session.execute(select(table.c.tenant_id, table.c.version, table.c.last_drift_check).where(
            table.c.model == LEAD, table.c.active.is_(True))).all()
    kept = [(tenant, version, check) for tenant, version, check in rows if check]  # JSON null too: never checked
    for tenant, version, check in kept:
        _export_gauges(tenant, version, check["features"], check["score"])
    return len(kept)


def current_sample(session: Session, tenant_id: str, features: list[str], spec: ExportSpec | None, label: str,
                   since: datetime, now: datetime, page: int = PAGE) -> tuple[pd.DataFrame, np.ndarray]:
    """The model's inputs for every live lead scored since `since` (one row each, as of its scored_at), and the
    scores of those the version `label` gave; read `page` leads at a time in id order."""
    table = Lead.__table__
    values = LeadValues(spec) if spec else None
    read = [table.c[name] for name in READ if name != "custom" or values is not None]  # custom: an export's only
    scored = (table.c.tenant_id == tenant_id, table.c.deleted_at.is_(None), table.c.scored_at >= since,
              table.c.score.is_not(None))
    frames, scores, after = [], [], ""
    while True:
        leads = [dict(r._mapping) for r in session.execute(
            select(*read).where(*scored, table.c.id > after).order_by(table.c.id).limit(page))]
        if not leads:
            break
        first, after = after, leads[-1]["id"]
        engaged = engagement_as_of(session, leads, *scored, table.c.id > first, table.c.id <= after) \
            if values is None or values.maps else {}
        if values is None:
            rows = [lead_features(lead, lead["enrichment"], engaged[lead["id"]], lead["scored_at"]) for lead in leads]
            frames.append(pd.DataFrame(rows, columns=features))
        else:
            raws = [values.raw(lead["custom"], lambda lead=lead, engaged=engaged: lead_features(
                lead, lead["enrichment"], engaged[lead["id"]], lead["scored_at"])) for lead in leads]
            frames.append(_as_scored(export_frame(values.matrix(raws, now), spec), spec, leads, now))
        scores.extend(lead["score"] for lead in leads if lead["score_model_version"] == label)
    frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=features)
    return frame, np.asarray(scores, dtype=float)


def _as_scored(frame: pd.DataFrame, spec: ExportSpec, leads: list[dict], now: datetime) -> pd.DataFrame:
    """An export's dates were read as days before `now`; score_lead read them as days before the lead's
    scored_at: the difference, per lead."""
    dates = [f"{c.key}__days_since" for c in spec.columns if c.kind == "date"]
    if dates:
        earlier = np.array([(now - lead["scored_at"]).total_seconds() / 86400 for lead in leads])
        for name in dates:
            frame[name] = frame[name].to_numpy(dtype=float) - earlier
    return frame


def _reference(row: ScoringModel) -> tuple[dict[str, Any], str]:
    stored = row.metrics.get("reference")
    if stored:
        return stored, "stored with the version at training"
    if row.kind == "cold_start" and row.training_data_hash == _cold_start_book_hash():
        from scoring.registry import cold_start_model

        return cold_start_model().metrics["reference"], "recomputed from the cold-start book (seeded: the same rows)"
    raise Conflict(f"no reference stored for model v{row.version} (it was trained before drift reports): retrain "
                   "it (dealflow scoring train) and drift is measured against the new version's training data")


@lru_cache(maxsize=1)
def _cold_start_book_hash() -> str:
    from scoring.synthetic import synthetic_book
    from scoring.training import data_hash

    return data_hash(*synthetic_book())


def _chance(reference: dict[str, Any], n: int) -> float:
    """The expected PSI of two samples of one distribution: (bins - 1) * (1/n + 1/n_reference), deciles' bins."""
    return float(BINS * (1 / max(n, 1) + 1 / max(int(reference["n"]), 1)))  # 10 deciles and the missing bin


_exported: dict[str, set[tuple[str, ...]]] = {}  # tenant -> the label sets its gauges hold in this process
_exported_lock = threading.Lock()


def _export_gauges(tenant: str, model_version: int, features: dict[str, float], score: float | None) -> None:
    """A report's PSIs (or a kept check's), and nothing left of the tenant's previous version (or features it no
    longer has)."""
    version = str(model_version)
    current = {(tenant, version, feature) for feature in features}
    with _exported_lock:
        for labels in _exported.get(tenant, set()) - current:
            with suppress(KeyError):  # already gone
                (MODEL_FEATURE_PSI if len(labels) == 3 else MODEL_SCORE_PSI).remove(*labels)
        for feature, psi in features.items():
            MODEL_FEATURE_PSI.labels(tenant, version, feature).set(psi)
        if score is not None:
            MODEL_SCORE_PSI.labels(tenant, version).set(score)
            current.add((tenant, version))
        _exported[tenant] = current
