"""Train the lead-to-deal classifier (XGBoost) with an honest cross-validated AUC."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold

from scoring.features import ALIASES, CATEGORICAL, FEATURES

PARAMS = dict(n_estimators=200, max_depth=4, learning_rate=0.08, subsample=0.9, colsample_bytree=0.9,
              min_child_weight=2.0, tree_method="hist", enable_categorical=True, max_cat_to_onehot=8,
              eval_metric="auc", n_jobs=2, random_state=13)


@dataclass
class Trained:
    model: xgb.XGBClassifier
    features: list[str]
    categories: dict[str, list[str]]
    metrics: dict[str, Any]
    data_hash: str
    ignored_columns: list[str] = field(default_factory=list)


def prepare(frame: pd.DataFrame, features: list[str], categories: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Columns in model order; categoricals as pandas categories (unknown values -> missing)."""
    frame = frame.reindex(columns=features)
    categories = categories or {}
    for column in features:
        if column in CATEGORICAL or column in categories:
            values = frame[column].astype("object").where(frame[column].notna(), None)
            known = categories.get(column) or sorted({str(v) for v in values if v is not None})
            frame[column] = pd.Categorical([str(v) if v is not None else None for v in values], categories=known)
        else:
            frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    return frame


def from_csv(path: str, target: str) -> tuple[pd.DataFrame, np.ndarray, list[str]]:
    """Read another CRM's export: our feature names (or known aliases) are used, other columns ignored.
    The target column must be yes/no-like (1/0, true/false, yes/no, converted/dead)."""
    raw = pd.read_csv(path)
    raw.columns = [c.strip().lower().replace(" ", "_") for c in raw.columns]
    if target not in raw.columns:
        raise ValueError(f"no column {target!r} in {path} (columns: {', '.join(raw.columns)})")
    truthy = {"1", "true", "yes", "y", "converted", "won", "deal", "closed_won"}
    falsy = {"0", "false", "no", "n", "dead", "lost", "closed_lost", ""}
    labels = raw.pop(target).astype(str).str.strip().str.lower()
    unknown = sorted(set(labels) - truthy - falsy)
    if unknown:
        raise ValueError(f"target {target!r} has values that are neither yes nor no: {', '.join(unknown[:5])}")
    y = labels.isin(truthy).astype(int).to_numpy()
    renamed = raw.rename(columns={k: v for k, v in ALIASES.items() if v})
    used = [c for c in renamed.columns if c in FEATURES]
    ignored = [c for c in raw.columns if c not in used and ALIASES.get(c) not in used]
    if not used:
        raise ValueError(f"none of the columns are known features; use names like {', '.join(FEATURES[:6])}, ...")
    return renamed[used], y, ignored


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


def train(frame: pd.DataFrame, y: np.ndarray, folds: int = 5) -> Trained:
    if len(frame) < 50 or y.sum() < 5 or (len(y) - y.sum()) < 5:
        raise ValueError(f"not enough history to train: {len(y)} rows, {int(y.sum())} deals "
                         "(need at least 50 rows with 5 deals and 5 non-deals)")
    features = list(frame.columns)
    categories = {c: sorted({str(v) for v in frame[c].dropna()}) for c in features
                  if c in CATEGORICAL or frame[c].dtype == object}
    X = prepare(frame, features, categories)
    started = time.perf_counter()
    aucs = []
    for train_idx, test_idx in StratifiedKFold(n_splits=folds, shuffle=True, random_state=13).split(X, y):
        fold = xgb.XGBClassifier(**PARAMS)
        fold.fit(X.iloc[train_idx], y[train_idx])
        aucs.append(roc_auc_score(y[test_idx], fold.predict_proba(X.iloc[test_idx])[:, 1]))
    model = xgb.XGBClassifier(**PARAMS)
    model.fit(X, y)
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).values.tobytes() + y.tobytes())
    return Trained(model=model, features=features, categories=categories, data_hash=digest.hexdigest(), metrics={
        "cv_auc": round(float(np.mean(aucs)), 4), "cv_auc_std": round(float(np.std(aucs)), 4), "folds": folds,
        "n_rows": int(len(y)), "positives": int(y.sum()), "train_seconds": round(time.perf_counter() - started, 2)})
