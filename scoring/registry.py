"""Model registry: versioned model files plus metadata rows; one active version per tenant.

A tenant with no model gets the cold-start model (trained on the documented synthetic book) on first use.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from models.base import utcnow
from models.enrichment import ScoringModel
from scoring.export import ExportSpec, LeadValues, describe_value
from scoring.features import CATEGORICAL, COUNTY, ENGAGEMENT, describe, lead_features
from scoring.synthetic import synthetic_book
from scoring.training import Trained, prepare, train

LEAD = "lead"  # scoring_models.model of the lead-to-deal classifier (the deal models: scoring/deal_registry.py)


def model_label(tenant_id: str, version: int, kind: str) -> str:
    """What a lead's `score_model_version` says of the model that scored it."""
    return f"{tenant_id}-v{version}-{kind}"


@dataclass
class LoadedModel:
    tenant_id: str
    version: int
    kind: str
    features: list[str]
    categories: dict[str, list[str]]
    model: xgb.XGBClassifier
    metrics: dict[str, Any]
    export: ExportSpec | None = None  # a model trained on another CRM's export reads the export's columns

    def __post_init__(self) -> None:
        self._booster = self.model.get_booster()
        self._booster.set_param({"nthread": 1})  # one row at a time: threads cost more than they give
        self._batch_booster: xgb.Booster | None = None
        if self.export:
            self._values = LeadValues(self.export)
            self._types = self.export.feature_types
        else:
            self._codes = {c: {v: float(i) for i, v in enumerate(self.categories.get(c, []))}
                           for c in self.features if c in CATEGORICAL or c in self.categories}
            self._types = ["c" if f in self._codes else "q" for f in self.features]

    @property
    def reads_engagement(self) -> bool:
        """Whether a lead's engagement (messages sent, replies) enters its row: Dealflow's own features do; an export
        model only through a column mapped onto one (re-scoring skips the two engagement queries otherwise)."""
        if self.export:
            return any(column.maps_to in ENGAGEMENT for column in self.export.columns)
        return bool(ENGAGEMENT.intersection(self.features))

    @property
    def label(self) -> str:
        return model_label(self.tenant_id, self.version, self.kind)

    def row(self, lead: dict[str, Any], enrichment: dict[str, Any] | None, engagement: dict[str, Any],
            now: datetime) -> dict[str, Any]:
        """What this model reads of a lead: Dealflow's features, or (an export model) the export's columns from the
        lead's `custom` fields and the Dealflow fields they map onto."""
        if self.export:  # Dealflow's own features only when a column maps onto one
            return self._values.raw(lead.get("custom"), lambda: lead_features(lead, enrichment, engagement, now))
        return lead_features(lead, enrichment, engagement, now)

    def score(self, lead: dict[str, Any], enrichment: dict[str, Any] | None, engagement: dict[str, Any],
              now: datetime, top: int = 5) -> tuple[float, list[dict[str, Any]]]:
        """score_lead's work on a loaded lead: its row, the probability and the reasons."""
        return self.explain(self.row(lead, enrichment, engagement, now), top, now)

    def vector(self, row: dict[str, Any], now: datetime | None = None) -> list[float]:
        """One row as the model's numbers (categories as their codes), without pandas."""
        if self.export:
            return self._values.vector(row, now or utcnow())
        out = []
        for feature in self.features:
            value = row.get(feature)
            codes = self._codes.get(feature)
            if codes is not None:
                code = None if value is None else codes.get(str(value))
                out.append(math.nan if code is None else code)
            else:
                out.append(_number(value))
        return out

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return prepare(pd.DataFrame(rows), self.features, self.categories)

    def predict(self, rows: list[dict[str, Any]], now: datetime | None = None) -> np.ndarray:
        return self._booster.inplace_predict(self.matrix(rows, now))

    def matrix(self, rows: list[dict[str, Any]], now: datetime | None = None) -> np.ndarray:
        if self.export and len(rows) > 1:
            return self._values.matrix(rows, now or utcnow())
        return np.array([self.vector(r, now) for r in rows], dtype=float).reshape(len(rows), len(self.features))

    def contributions(self, matrix: np.ndarray, booster: xgb.Booster | None = None) -> np.ndarray:
        """XGBoost's own pred_contribs (log-odds per feature; the last column is the bias)."""
        booster = booster or self._booster
        return booster.predict(xgb.DMatrix(matrix, feature_types=self._types, feature_names=self.features,
                                           enable_categorical=True), pred_contribs=True)

    def explain_many(self, rows: list[dict[str, Any]], now: datetime, threads: int = 2, top: int = 5
                     ) -> list[tuple[float, list[dict[str, Any]]]]:
        """Many rows at once (re-scoring a book): one predict and one contributions call per batch, on a copy of the
        booster with its own threads (the shared one stays single-threaded for score_lead)."""
        if self._batch_booster is None:
            self._batch_booster = self._booster.copy()
            self._batch_booster.set_param({"nthread": threads})
        matrix = self.matrix(rows, now)
        probabilities = self._batch_booster.inplace_predict(matrix)
        contribs = self.contributions(matrix, self._batch_booster)[:, :-1]
        if self.export:
            reasons = _export_reasons_many(self.export, rows, contribs, top)
        else:
            reasons = [self._reasons(row, c, top) for row, c in zip(rows, contribs, strict=True)]
        return [(float(p), r) for p, r in zip(probabilities, reasons, strict=True)]

    def explain(self, row: dict[str, Any], top: int = 5, now: datetime | None = None
                ) -> tuple[float, list[dict[str, Any]]]:
        """Probability and the top factors from XGBoost's own pred_contribs (log-odds, bias excluded)."""
        matrix = self.matrix([row], now)
        probability = float(self._booster.inplace_predict(matrix)[0])
        contribs = self.contributions(matrix)[0]
        return probability, self.reasons(row, contribs[:-1], top)

    def reasons(self, row: dict[str, Any], contribs: np.ndarray, top: int = 5) -> list[dict[str, Any]]:
        if self.export:
            return _export_reasons(self.export, row, contribs, top)
        return self._reasons(row, contribs, top)

    def _reasons(self, row: dict[str, Any], contribs: np.ndarray, top: int) -> list[dict[str, Any]]:
        """The largest contributions in words a rep can act on: nothing about engagement for a lead nobody has
        written to yet (it could not have replied), and the county facts a missing record leaves unknown said
        once, as "no county record found", with their contributions summed."""
        contacted = bool(row.get("messages_sent")) or bool(row.get("replies"))
        missing_county = [i for i, f in enumerate(self.features)
                          if f in COUNTY and _plain(row.get(f)) is None]
        items: list[tuple[float, str, Any, str]] = []  # (size, feature, value, words)
        if missing_county:
            items.append((float(sum(contribs[i] for i in missing_county)), "county_record", None,
                          "no county record found"))
        for index, feature in enumerate(self.features):
            if index in missing_county or (feature in ENGAGEMENT and not contacted):
                continue
            value = row.get(feature)
            items.append((float(contribs[index]), feature, _plain(value), describe(feature, value)))
        reasons = []
        for size, feature, value, words in sorted(items, key=lambda item: -abs(item[0]))[:top]:
            if abs(size) < 0.005:
                continue
            reasons.append({"feature": feature, "value": value, "size": round(size, 2),
                            "direction": "up" if size > 0 else "down", "text": f"{words} {size:+.2f}"})
        return reasons


def _plain(value: Any) -> Any:
    if isinstance(value, float) and np.isnan(value):
        return None
    return value


def _number(value: Any) -> float:
    if value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _export_reasons(spec: ExportSpec, row: dict[str, Any], contribs: np.ndarray, top: int) -> list[dict[str, Any]]:
    """An export model's reasons: one per export column (a date's parts summed), named as in the export."""
    return _export_reasons_many(spec, [row], contribs.reshape(1, -1), top)[0]


def _column_starts(spec: ExportSpec) -> np.ndarray:
    widths = [len(c.features) for c in spec.columns]
    return np.concatenate([[0], np.cumsum(widths)[:-1]]).astype(np.intp)


def _export_reasons_many(spec: ExportSpec, rows: list[dict[str, Any]], contribs: np.ndarray, top: int
                         ) -> list[list[dict[str, Any]]]:
    """Per column sums and the top ones by size for many rows at once (numpy), words only for those."""
    sizes = np.add.reduceat(contribs, _column_starts(spec), axis=1)  # (rows, columns)
    order = np.argsort(-np.abs(sizes), axis=1, kind="stable")[:, :top]
    words: dict[tuple[int, Any], str] = {}  # a column has few distinct values: each described once per batch
    out, columns = [], spec.columns
    # As Python lists at once: numpy's scalars, indexed one at a time, cost more than the reasons' words
    for row, row_sizes, best in zip(rows, sizes.tolist(), order.tolist(), strict=True):
        reasons = []
        for index in best:
            size = row_sizes[index]
            if abs(size) < 0.005:
                continue
            column = columns[index]
            value = row.get(column.name)
            key = (index, value if value.__class__ in (str, int, float, bool, type(None)) else repr(value))
            text = words.get(key)
            if text is None:
                text = words[key] = describe_value(column, value)
            reasons.append({"feature": column.name, "value": _plain(value), "size": round(size, 2),
                            "direction": "up" if size > 0 else "down", "text": f"{text} {size:+.2f}"})
        out.append(reasons)
    return out


_COLD_START: Trained | None = None
_COLD_START_LOCK = threading.Lock()


def cold_start_model() -> Trained:
    """Trained once per process on the synthetic book; every new tenant gets a copy as its version 1."""
    global _COLD_START
    with _COLD_START_LOCK:
        if _COLD_START is None:
            frame, y = synthetic_book()
            _COLD_START = train(frame, y)
        return _COLD_START


class ModelRegistry:
    def __init__(self, engine: Engine, models_dir: Path) -> None:
        self._engine, self._dir = engine, models_dir
        self._cache: dict[tuple[str, int], LoadedModel] = {}
        self._lock = threading.Lock()

    def register(self, tenant_id: str, trained: Trained, kind: str, activate: str = "if_better",
                 extra: dict[str, Any] | None = None) -> ScoringModel:
        """Store a new version. activate: 'always', 'never', or 'if_better' (higher CV AUC than the active).
        `extra` joins its metrics (a retrain's evaluation and promotion)."""
        with Session(self._engine, expire_on_commit=False) as session:
            version = (session.exec(select(func.max(ScoringModel.version)).where(
                ScoringModel.tenant_id == tenant_id, ScoringModel.model == LEAD)).one() or 0) + 1
            path = self._dir / tenant_id / f"v{version}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            trained.model.save_model(path)
            row = ScoringModel(tenant_id=tenant_id, model=LEAD, version=version, kind=kind, path=str(path),
                               features=trained.features, training_data_hash=trained.data_hash,
                               metrics={**trained.metrics, "categories": trained.categories,
                                        "ignored_columns": trained.ignored_columns,
                                        **({"export": trained.export, "report": trained.report}
                                           if trained.export else {}), **(extra or {})})
            current = self._active_row(session, tenant_id)
            better = current is None or trained.metrics["cv_auc"] > current.metrics.get("cv_auc", 0)
            if activate == "always" or (activate == "if_better" and better):
                if current:
                    current.active = False
                    session.add(current)
                row.active = True
            session.add(row)
            session.commit()
            return row

    def versions(self, tenant_id: str) -> list[ScoringModel]:
        """Every lead-model version of the tenant, newest first."""
        with Session(self._engine, expire_on_commit=False) as session:
            return list(session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant_id,
                                                                ScoringModel.model == LEAD)
                                     .order_by(col(ScoringModel.version).desc())))

    def activate(self, tenant_id: str, version: int, by: str, reason: str) -> ScoringModel:
        """Make `version` the active one (a rollback, or a promotion by hand), recording who and why on it."""
        with Session(self._engine, expire_on_commit=False) as session:
            row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant_id,
                                                          ScoringModel.model == LEAD,
                                                          ScoringModel.version == version)).first()
            if row is None:
                raise LookupError(f"{tenant_id} has no lead model v{version}")
            current = self._active_row(session, tenant_id)
            if current is not None and current.id != row.id:
                current.active = False
                session.add(current)
                session.flush()  # one active version at a time (the unique partial index, where there is one)
            history = [*row.metrics.get("activations", []), {"by": by, "at": utcnow().isoformat(), "reason": reason,
                                                               "replaced": current.version if current else None}]
            row.metrics = {**row.metrics, "activations": history}
            row.active = True
            session.add(row)
            session.commit()
            return row

    def _active_row(self, session: Session, tenant_id: str) -> ScoringModel | None:
        return session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant_id, ScoringModel.model == LEAD,
                                                       col(ScoringModel.active).is_(True))).first()

    def active(self, tenant_id: str) -> LoadedModel | None:
        with Session(self._engine) as session:
            row = self._active_row(session, tenant_id)
        return self._load(row) if row else None

    def ensure_active(self, tenant_id: str) -> LoadedModel:
        model = self.active(tenant_id)
        if model:
            return model
        with self._lock:  # one cold-start training per process; the DB settles races between processes
            model = self.active(tenant_id)
            if model:
                return model
            try:
                self.register(tenant_id, cold_start_model(), "cold_start", activate="always")
            except IntegrityError:
                pass  # another worker registered it first
            model = self.active(tenant_id)
            assert model is not None
            return model

    def _load(self, row: ScoringModel) -> LoadedModel:
        key = (row.tenant_id, row.version)
        if key not in self._cache:
            model = xgb.XGBClassifier()
            model.load_model(row.path)
            self._cache[key] = LoadedModel(tenant_id=row.tenant_id, version=row.version, kind=row.kind,
                                           features=list(row.features), model=model, metrics=row.metrics,
                                           categories=row.metrics.get("categories", {}),
                                           export=ExportSpec.from_dict(row.metrics["export"])
                                           if row.metrics.get("export") else None)
        return self._cache[key]
