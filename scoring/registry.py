"""Model registry: versioned model files plus metadata rows; one active version per tenant.

A tenant with no model gets the cold-start model (trained on the documented synthetic book) on first use.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from models.enrichment import ScoringModel
from scoring.features import COUNTY, ENGAGEMENT, describe
from scoring.synthetic import synthetic_book
from scoring.training import Trained, prepare, train


@dataclass
class LoadedModel:
    tenant_id: str
    version: int
    kind: str
    features: list[str]
    categories: dict[str, list[str]]
    model: xgb.XGBClassifier
    metrics: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.tenant_id}-v{self.version}-{self.kind}"

    def frame(self, rows: list[dict[str, Any]]) -> pd.DataFrame:
        return prepare(pd.DataFrame(rows), self.features, self.categories)

    def predict(self, rows: list[dict[str, Any]]) -> np.ndarray:
        return self.model.predict_proba(self.frame(rows))[:, 1]

    def explain(self, row: dict[str, Any], top: int = 5) -> tuple[float, list[dict[str, Any]]]:
        """Probability and the top factors from XGBoost's own pred_contribs (log-odds, bias excluded)."""
        frame = self.frame([row])
        booster = self.model.get_booster()
        contribs = booster.predict(xgb.DMatrix(frame, enable_categorical=True), pred_contribs=True)[0]
        probability = float(self.model.predict_proba(frame)[0, 1])
        return probability, self._reasons(row, contribs[:-1], top)

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

    def register(self, tenant_id: str, trained: Trained, kind: str, activate: str = "if_better") -> ScoringModel:
        """Store a new version. activate: 'always', 'never', or 'if_better' (higher CV AUC than the active)."""
        with Session(self._engine, expire_on_commit=False) as session:
            version = (session.exec(select(func.max(ScoringModel.version))
                                    .where(ScoringModel.tenant_id == tenant_id)).one() or 0) + 1
            path = self._dir / tenant_id / f"v{version}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            trained.model.save_model(path)
            row = ScoringModel(tenant_id=tenant_id, version=version, kind=kind, path=str(path),
                               features=trained.features, training_data_hash=trained.data_hash,
                               metrics={**trained.metrics, "categories": trained.categories,
                                        "ignored_columns": trained.ignored_columns})
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

    def _active_row(self, session: Session, tenant_id: str) -> ScoringModel | None:
        return session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant_id,
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
                                           categories=row.metrics.get("categories", {}))
        return self._cache[key]
