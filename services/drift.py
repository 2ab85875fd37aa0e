"""A tenant's drift report: the population stability (PSI, scoring/drift.py) of every input of one of its active
models and of that model's outputs, between the training data and the current sample of the last N days — the
lead model (here) or the deal models (`model="deal"`: services/deal_drift.py reads their sample); one report, one
comparison, one set of notes for both.

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
(the deal models': `dealflow_deal_model_feature_psi`, `dealflow_deal_model_prediction_psi`; core/metrics.py),
which the ModelDrift and DealModelDrift alerts read: the worker computes every tenant's on a Schedule
(ScoringDriftWorkflow, `check_drift`: both models), the API when asked. A scheduled check is also kept with the
version (`scoring_models.last_drift_check`), and a starting worker sets the gauges from it
(`restore_drift_gauges`): the gauges live in a process, and a deploy would otherwise leave the alert blind until the
next check, up to a day.
"""

from __future__ import annotations

import logging
import threading
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import pandas as pd
from prometheus_client import Gauge
from pydantic import BaseModel
from sqlalchemy import Engine, select, text, update
from sqlmodel import Session, col
from sqlmodel import select as select_model

from core.metrics import DEAL_FEATURE_PSI, DEAL_PREDICTION_PSI, MODEL_FEATURE_PSI, MODEL_SCORE_PSI
from core.settings import Settings
from models.base import utcnow
from models.enrichment import ScoringModel
from models.lead import Lead
from models.payloads import DriftCheck
from models.tenant import Tenant
from scoring.deal_registry import DEAL_CLOSE_TIME, DEAL_RETURN, DealModels
from scoring.drift import BINS, SCORE, FeatureDrift, Reference, compare, export_frame, output_names
from scoring.engagement import engagement_as_of
from scoring.export import ExportSpec, LeadValues
from scoring.features import lead_features
from scoring.registry import LEAD, model_label
from services.acting import Conflict, Invalid, NotFound

log = logging.getLogger("dealflow.drift")

PAGE = 5000
FEW = 200  # fewer current rows than this: chance alone gives a decile feature a PSI of about 0.05 or more
READ = ("id", "email", "phone", "source", "tags", "custom", "enrichment", "created_at", "scored_at", "score",
        "score_model_version")


MODELS = ("lead", "deal")  # what ?model= / --model names: the lead score, the deal forecasts (services/deal_drift.py)


@dataclass
class Sample:
    """What one model's report compares: its active version and reference, and the current sample (`frame`, one row
    of inputs each) with the current values of each of its outputs (`outputs`, name -> values)."""

    version: int
    label: str
    kind: str
    reference: dict[str, Any]
    source: str  # where the reference came from
    frame: pd.DataFrame
    outputs: dict[str, np.ndarray]
    noun: str  # what a row is: "leads", "deals"
    notes: list[str] = field(default_factory=list)


class DriftReport(BaseModel):
    tenant: str
    family: Literal["lead", "deal"]  # which model, as ?model= names it: the lead score or the deal forecasts
    model_version: int
    model: str  # as a lead's score_model_version names it (the deal models: {tenant}-deals-v{n}-{kind})
    model_kind: str
    reference: str  # where the reference came from
    window_days: int
    since: datetime
    computed_at: datetime
    threshold: float  # drift_psi_threshold: above it a feature (or an output) is drifted
    n_reference: int  # training rows
    n_current: int  # leads scored in the window; deals created in it
    score: FeatureDrift | None  # the lead model's: None when no lead in the window was scored by this version
    # The model's outputs: the lead model's score (as `score`); the deal models' median days to close and p50 profit
    predictions: list[FeatureDrift]
    features: list[FeatureDrift]  # highest PSI first
    drifted: list[str]  # the features above the threshold, highest first
    score_drifted: bool
    predictions_drifted: list[str]  # the outputs above the threshold ("score" for the lead model)
    significant: bool  # a feature or an output drifted: what `dealflow scoring drift --retrain` acts on
    notes: list[str]

    @property
    def noun(self) -> str:
        """What the current sample is."""
        return "deals created" if self.family == "deal" else "leads scored"

    def find(self, feature: str) -> FeatureDrift:
        for entry in [*self.predictions, *self.features]:
            if entry.feature == feature:
                return entry
        known = ", ".join([p.feature for p in self.predictions] + sorted(f.feature for f in self.features))
        what = "deal models" if self.family == "deal" else "model"
        raise NotFound(f"{what} v{self.model_version} has no feature {feature!r} (its features: {known})")


def plot_title(report: DriftReport, feature: str) -> str:
    what = "deal models" if report.family == "deal" else "model"
    return f"{feature} ({what} v{report.model_version}, last {report.window_days} days)"


def drift_report(session: Session, settings: Settings, tenant_id: str, days: int | None = None,
                 now: datetime | None = None, model: str = "lead", deals: DealModels | None = None) -> DriftReport:
    """The report of the tenant's active lead model (`model="lead"`) or deal models (`"deal"`), or Invalid (another
    model) / NotFound (no such tenant, no active model) / Conflict (no reference, an empty window)."""
    if model not in MODELS:
        raise Invalid(f"no drift report for the {model!r} model: lead or deal")
    days = days or settings.drift_window_days
    now = now or utcnow()
    since = now - timedelta(days=days)
    if session.get(Tenant, tenant_id) is None:
        raise NotFound(f"tenant {tenant_id!r} does not exist")
    if model == "deal":
        from services.deal_drift import deal_sample

        sample = deal_sample(session, deals or DealModels(session.get_bind(), settings.effective_models_dir),
                             tenant_id, since, now, days)
    else:
        sample = _lead_sample(session, tenant_id, since, now, days)
    report = _report(settings, tenant_id, model, sample, days, since, now)
    _export_gauges(model, tenant_id, report.model_version, {f.feature: f.psi for f in report.features},
                   {p.feature: p.psi for p in report.predictions})
    return report


def _lead_sample(session: Session, tenant_id: str, since: datetime, now: datetime, days: int) -> Sample:
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
    notes = []
    if not len(scores):
        notes.append(f"no lead in the window was scored by model v{row.version}: re-score the book "
                     "(dealflow scoring rescore) to compare its scores")
    elif len(scores) < len(frame):
        notes.append(f"the score's PSI is over the {len(scores)} leads scored by model v{row.version}; the other "
                     f"{len(frame) - len(scores)} were scored by an earlier version")
    features = {name: reference["features"][name] for name in row.features if name in reference["features"]}
    return Sample(version=row.version, label=label, kind=row.kind, reference={**reference, "features": features},
                  source=source, frame=frame, outputs={SCORE: scores}, noun="leads", notes=notes)


def _report(settings: Settings, tenant_id: str, model: str, sample: Sample, days: int, since: datetime,
            now: datetime) -> DriftReport:
    """Either model's report from its sample: compare, order, the threshold, and the notes on a small window."""
    reference, frame = sample.reference, sample.frame
    features = sorted((compare(name, Reference(**stored), frame[name])
                       for name, stored in reference["features"].items()), key=lambda f: -f.psi)
    predictions = [compare(name, Reference(**reference[name]), sample.outputs[name])
                   for name in output_names(reference) if len(sample.outputs.get(name, ()))]
    threshold = settings.drift_psi_threshold
    notes = []
    if len(frame) < FEW:
        notes.append(f"only {len(frame)} {sample.noun} in the window: chance alone gives a decile feature a PSI of "
                     f"about {_chance(reference, len(frame)):.2f}, some more; widen the window (days) for a firmer "
                     "reading")
    drifted = [f.feature for f in features if f.psi > threshold]
    predictions_drifted = [p.feature for p in predictions if p.psi > threshold]
    score = next((p for p in predictions if p.feature == SCORE), None)
    return DriftReport(
        tenant=tenant_id, family=model, model_version=sample.version, model=sample.label, model_kind=sample.kind,
        reference=sample.source, window_days=days, since=since, computed_at=now, threshold=threshold,
        n_reference=int(reference["n"]), n_current=len(frame), score=score, predictions=predictions,
        features=features, drifted=drifted, score_drifted=score is not None and score.psi > threshold,
        predictions_drifted=predictions_drifted, significant=bool(drifted) or bool(predictions_drifted),
        notes=notes + sample.notes)


def check_drift(engine: Engine, settings: Settings, tenant_id: str, deals: DealModels | None = None) -> DriftCheck:
    """ScoringDriftWorkflow's activity: the tenant's lead-model report (which sets this process's drift gauges: the
    worker's, which Prometheus scrapes) in brief, and whether to retrain; and its deal models' in `deals` (their
    gauges too; they are retrained by their own weekly Schedule, not on drift). No report is an answer, not a
    failure: a tenant whose leads were not scored lately, or with no new deals, has nothing to compare."""
    check = _check(engine, settings, tenant_id, "lead")
    try:
        check.deals = _check(engine, settings, tenant_id, "deal", deals)
    except Exception as exc:  # noqa: BLE001 - the lead check stands (its gauges are set); the deal failure is told
        log.exception("drift: the deal models' check of %s failed", tenant_id)
        check.deals = DriftCheck(tenant_id=tenant_id, model="deal", checked=False,
                                 reason=f"the deal models' check failed: {type(exc).__name__}: {exc}"[:500])
    return check


def _check(engine: Engine, settings: Settings, tenant_id: str, model: str,
           deals: DealModels | None = None) -> DriftCheck:
    with Session(engine) as session:
        try:
            report = drift_report(session, settings, tenant_id, model=model, deals=deals)
        except (NotFound, Conflict) as exc:
            return DriftCheck(tenant_id=tenant_id, model=model, checked=False, reason=str(exc))
        _keep_check(session, report)
        session.commit()
    drifted = report.predictions_drifted + report.drifted
    psis = [f.psi for f in report.features] + [p.psi for p in report.predictions]
    retrain = report.significant and settings.scoring_retrain_on_drift and model == "lead"
    reason = (f"drifted over {report.threshold}: {', '.join(drifted)}" if drifted else
              f"no drift over {report.threshold}") + f" ({report.n_current} {report.noun} in {report.window_days} days)"
    if report.significant and model == "deal":
        reason += "; the deal models are retrained by their weekly Schedule, whose promotion rule decides"
    elif report.significant and not retrain:
        reason += "; DEALFLOW_SCORING_RETRAIN_ON_DRIFT is off: not retrained"
    return DriftCheck(tenant_id=tenant_id, model=model, checked=True, reason=reason,
                      model_version=report.model_version, n_current=report.n_current, threshold=report.threshold,
                      significant=report.significant, drifted=drifted,
                      max_psi=round(max(psis), 4) if psis else None, retrain=retrain)


def _rows(model: str):
    """The scoring_models rows a model's check is kept on: the lead model's, or both of a deal version's."""
    table = ScoringModel.__table__
    return table.c.model == LEAD if model == "lead" else table.c.model.in_([DEAL_RETURN, DEAL_CLOSE_TIME])


def _keep_check(session: Session, report: DriftReport) -> None:
    """The report's PSIs on its version's row(s) (restore_drift_gauges reads them); only this column is written, so
    a rollback or promotion changing the row's metrics meanwhile is not undone."""
    table = ScoringModel.__table__
    session.execute(update(table).where(
        table.c.tenant_id == report.tenant, _rows(report.family), table.c.version == report.model_version).values(
        last_drift_check={"checked_at": report.computed_at.isoformat(), "window_days": report.window_days,
                          "n_current": report.n_current, "features": {f.feature: f.psi for f in report.features},
                          "score": report.score.psi if report.score is not None else None,
                          "outputs": {p.feature: p.psi for p in report.predictions}}))


def restore_drift_gauges(engine: Engine, lock_wait: float = 5.0) -> int:
    """The worker's start: each tenant's drift gauges as its active lead model's and deal models' last scheduled
    checks set them (what this process would hold had it run those checks); the number of checks restored. A version
    never checked (new, or promoted since the last check) sets nothing: an older version's PSIs say nothing of it.
    On Postgres it waits at most `lock_wait` seconds for a lock on the models table (a migration's, say) and then
    raises."""
    table = ScoringModel.__table__
    with Session(engine) as session:
        if engine.dialect.name == "postgresql":
            session.execute(text(f"SET LOCAL lock_timeout = '{int(lock_wait * 1000)}ms'"))
        rows = session.execute(select(table.c.model, table.c.tenant_id, table.c.version, table.c.last_drift_check)
                               .where(table.c.model.in_([LEAD, DEAL_RETURN]), table.c.active.is_(True))).all()
    kept = [row for row in rows if row.last_drift_check]  # JSON null too: never checked
    for name, tenant, version, check in kept:
        outputs = check.get("outputs")
        if outputs is None:  # kept before the outputs were: the lead model's score
            outputs = {SCORE: check["score"]} if check.get("score") is not None else {}
        _export_gauges("lead" if name == LEAD else "deal", tenant, version, check["features"], outputs)
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


# (model, tenant) -> the (gauge, labels) its series hold in this process
_exported: dict[tuple[str, str], set[tuple[Gauge, tuple[str, ...]]]] = {}
_exported_lock = threading.Lock()
# Each model's (feature gauge, output gauge). The lead model's score gauge has no output label (one output; the
# ModelDrift alert's series as they were); the deal models' names the prediction (DealModelDrift).
GAUGES = {"lead": (MODEL_FEATURE_PSI, MODEL_SCORE_PSI), "deal": (DEAL_FEATURE_PSI, DEAL_PREDICTION_PSI)}


def _export_gauges(model: str, tenant: str, model_version: int, features: dict[str, float],
                   outputs: dict[str, float]) -> None:
    """A report's PSIs (or a kept check's), and nothing left of the tenant's previous version of that model (or
    features it no longer has)."""
    version = str(model_version)
    per_feature, per_output = GAUGES[model]
    series = {(per_feature, (tenant, version, feature)): psi for feature, psi in features.items()}
    for name, psi in outputs.items():
        series[(per_output, (tenant, version) if model == "lead" else (tenant, version, name))] = psi
    with _exported_lock:
        for gauge, labels in _exported.get((model, tenant), set()) - set(series):
            with suppress(KeyError):  # already gone
                gauge.remove(*labels)
        for (gauge, labels), psi in series.items():
            gauge.labels(*labels).set(psi)
        _exported[(model, tenant)] = set(series)
