"""Train the lead-to-deal classifier (XGBoost) with an honest cross-validated AUC."""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from scoring.drift import categorical_features, export_frame, references
from scoring.features import CATEGORICAL, FEATURES

if TYPE_CHECKING:
    from scoring.export_file import ExportData

PARAMS = dict(n_estimators=200, max_depth=4, learning_rate=0.08, subsample=0.9, colsample_bytree=0.9,
              min_child_weight=2.0, tree_method="hist", enable_categorical=True, max_cat_to_onehot=8,
              eval_metric="auc", n_jobs=2, random_state=13)
# An export's model: shallower trees. A lead's reasons are XGBoost's exact (Tree SHAP) contributions, whose cost
# grows with the square of the depth: depth 3 made them 3.7x cheaper (re-scoring 100k leads) at the same CV AUC on
# bench/train_export.py's export (0.9983 / 0.9507 with and without the leaky columns, vs 0.9982 / 0.9501 at depth 4).
# Their cost also grows with the number of trees: 100 at a larger step (plain xgboost's count) cost two thirds of 150
# at the same CV AUC (0.9983 / 0.9501 and 0.9979 / 0.9514 on two seeds, vs 0.9983 / 0.9507 and 0.9977 / 0.9512).
EXPORT_PARAMS = {**PARAMS, "n_estimators": 100, "max_depth": 3, "learning_rate": 0.18}


@dataclass
class Trained:
    model: xgb.XGBClassifier
    features: list[str]
    categories: dict[str, list[str]]
    metrics: dict[str, Any]
    data_hash: str
    ignored_columns: list[str] = field(default_factory=list)
    export: dict[str, Any] | None = None  # an export model's spec (scoring/export.py), stored with the version
    report: list[dict[str, Any]] = field(default_factory=list)  # per export column: used, how, importance, leak


NO_VALUE = "(no value)"


def prepare(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Columns in model order; categoricals as pandas categories (unknown values -> missing)."""
    frame = frame.reindex(columns=features)
    categories = categories or {}
    for column in features:
        if column in CATEGORICAL or column in categories:
            values = frame[column].astype("object").where(frame[column].notna(), None)
            known = categories.get(column) or sorted({str(v) for v in values if v is not None}) or [NO_VALUE]
            frame[column] = pd.Categorical([str(v) if v is not None else None for v in values], categories=known)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def from_closed_leads(engine, tenant_id: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """The tenant's own history: converted leads are deals, dead leads are not."""
    from sqlmodel import Session, col, select

    from models.lead import Lead
    from scoring.engagement import engagement
    from scoring.features import lead_features

    rows, y = [], []
    with Session(engine) as session:
        for lead in session.exec(select(Lead).where(Lead.tenant_id == tenant_id,
                                                    col(Lead.status).in_(["converted", "dead"]))):
            rows.append(lead_features(lead.model_dump(), lead.enrichment, engagement(session, lead), lead.updated_at))
            y.append(1 if lead.status == "converted" else 0)
    return pd.DataFrame(rows, columns=FEATURES), np.array(y, dtype=int), []


def _enough(y: np.ndarray) -> None:
    if len(y) < 50 or y.sum() < 5 or (len(y) - y.sum()) < 5:
        raise ValueError(f"not enough history to train: {len(y)} rows, {int(y.sum())} deals "
                         "(need at least 50 rows with 5 deals and 5 non-deals)")


Progress = Callable[[str], None]


def cross_validate(make: Callable[[], xgb.XGBClassifier], X: Any, y: np.ndarray, folds: int = 5,
                   progress: Progress | None = None, oof: np.ndarray | None = None
                   ) -> tuple[xgb.XGBClassifier, dict[str, Any]]:
    """Stratified k-fold AUC (the folds every comparison in bench/ uses too), then the final fit on every row.
    `oof`, given, receives each row's out-of-fold probability (the score's drift reference)."""
    started = time.perf_counter()
    aucs = []
    take = (lambda idx: X.iloc[idx]) if isinstance(X, pd.DataFrame) else (lambda idx: X[idx])
    for k, (train_idx, test_idx) in enumerate(folds_of(y, folds), start=1):
        if progress:
            progress(f"cross-validating: fold {k} of {folds}")
        fold = make()
        fold.fit(take(train_idx), y[train_idx])
        predicted = fold.predict_proba(take(test_idx))[:, 1]
        if oof is not None:
            oof[test_idx] = predicted
        aucs.append(roc_auc_score(y[test_idx], predicted))
    if progress:
        progress("fitting the final model on every row")
    model = make()
    model.fit(X, y)
    return model, {"cv_auc": round(float(np.mean(aucs)), 4), "cv_auc_std": round(float(np.std(aucs)), 4),
                   "folds": folds, "n_rows": int(len(y)), "positives": int(y.sum()),
                   "train_seconds": round(time.perf_counter() - started, 2)}


def folds_of(y: np.ndarray, folds: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    return list(StratifiedKFold(n_splits=folds, shuffle=True, random_state=13).split(np.zeros(len(y)), y))


def train(frame: pd.DataFrame, y: np.ndarray, folds: int = 5, progress: Progress | None = None) -> Trained:
    """Dealflow's own features (the cold-start book, the tenant's closed leads)."""
    _enough(y)
    features = list(frame.columns)
    # a category column no lead has a value in (no enrichment yet: state, property type) keeps one placeholder
    # category: XGBoost refuses a categorical column with none
    categories = {c: sorted({str(v) for v in frame[c].dropna()}) or [NO_VALUE] for c in features
                  if c in CATEGORICAL or frame[c].dtype == object}
    X = prepare(frame, features, categories)
    oof = np.full(len(y), np.nan)
    model, metrics = cross_validate(lambda: xgb.XGBClassifier(**PARAMS), X, y, folds, progress, oof)
    metrics["reference"] = references(frame, categorical_features(None, features) | set(categories), oof)
    return Trained(model=model, features=features, categories=categories, data_hash=data_hash(frame, y),
                   metrics=metrics)


def data_hash(frame: pd.DataFrame, y: np.ndarray) -> str:
    """The training data's fingerprint, stored with the version (`training_data_hash`)."""
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes() + y.tobytes()).hexdigest()


def train_export(data: ExportData, folds: int = 5, progress: Progress | None = None) -> Trained:
    """Every used column of an export (scoring/export.py), category codes with XGBoost's native categorical
    splits; the report gets each column's share of the model's total gain."""
    _enough(data.y)
    spec = data.spec
    oof = np.full(len(data.y), np.nan)
    model, metrics = cross_validate(
        lambda: xgb.XGBClassifier(**EXPORT_PARAMS, feature_types=spec.feature_types), data.X, data.y, folds, progress,
        oof)
    metrics["reference"] = references(export_frame(data.X, spec), categorical_features(spec, spec.features), oof)
    model.get_booster().feature_names = spec.features
    gains = model.get_booster().get_score(importance_type="total_gain")
    total = sum(gains.values()) or 1.0
    report = [dict(entry) for entry in data.report]
    by_name = {e["column"]: e for e in report}
    for column in spec.columns:
        share = sum(gains.get(f, 0.0) for f in column.features) / total
        by_name[column.name]["importance"] = round(share, 4)
    digest = hashlib.sha256(np.ascontiguousarray(data.X).tobytes() + data.y.tobytes())
    metrics["leaky_columns"] = [e["column"] for e in report if e["leak"]]
    return Trained(model=model, features=spec.features, categories={}, data_hash=digest.hexdigest(), metrics=metrics,
                   export=spec.to_dict(), report=report)
