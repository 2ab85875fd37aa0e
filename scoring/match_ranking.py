"""Investor–deal ranking learned from past outcomes (issue 12): whether an investor who was matched to a deal
put money into it, predicted from the same facts the weighted rules of services/matching.py look at.

`train(rows, labels, deals)` evaluates on held-out deals first (grouped folds: every pair of a deal is in the
same fold, so the model is never scored on a deal it saw) and measures the rule score's AUC on the very same
held-out pairs; the `Ranker` it answers says whether the model beat the rules there (`better`). The caller uses
the model only then, so a tenant whose history says nothing the rules do not already know keeps the rules.
Pure: numbers in, a model out, no database.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import xgboost as xgb
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GroupKFold

# The facts of one investor–deal pair (services/matching.py fills them; NaN where unknown).
FEATURES = ["rule_score", "market", "price", "property_type", "capital", "accredited", "check_fit",
            "capital_multiple", "check_multiple", "return_met", "return_margin", "past_deals", "days_since_reply"]
FOLDS = 5


@dataclass(frozen=True)
class Ranker:
    booster: xgb.Booster | None
    model_auc: float
    rule_auc: float
    outcomes: int
    positives: int
    deals: int

    @property
    def better(self) -> bool:
        return self.booster is not None and self.model_auc > self.rule_auc

    def predict(self, rows: Sequence[Mapping[str, float]]) -> list[float]:
        if self.booster is None or not rows:
            return []
        return [float(p) for p in self.booster.inplace_predict(matrix(rows))]

    @property
    def summary(self) -> str:
        return (f"ranked by {self.outcomes} past outcomes on {self.deals} deals "
                f"(held-out AUC {self.model_auc:.2f} vs the rules' {self.rule_auc:.2f})")


def matrix(rows: Sequence[Mapping[str, float]]) -> np.ndarray:
    return np.array([[float(row.get(name, np.nan)) for name in FEATURES] for row in rows], dtype=np.float32)


PARAMS = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.1, "min_child_weight": 2, "subsample": 0.9,
          "eval_metric": "auc", "nthread": 1, "seed": 13}
ROUNDS = 120


def _fit(X: np.ndarray, y: np.ndarray) -> xgb.Booster:
    return xgb.train(PARAMS, xgb.DMatrix(X, label=y, feature_names=FEATURES), num_boost_round=ROUNDS)


def train(rows: Sequence[Mapping[str, float]], labels: Sequence[int], deals: Sequence[str]) -> Ranker:
    """Held-out AUC of the model and of the rule score on the same pairs, then the model fitted on every pair.
    Without both outcomes on enough deals there is nothing to learn: the Ranker has no booster."""
    X, y, groups = matrix(rows), np.asarray(labels, dtype=int), np.asarray(deals)
    n_deals = len(set(deals))
    if len(y) == 0 or y.min() == y.max() or n_deals < FOLDS:
        return Ranker(None, 0.0, 0.0, len(y), int(y.sum()), n_deals)
    predicted = np.zeros(len(y))
    for train_idx, test_idx in GroupKFold(n_splits=FOLDS).split(X, y, groups):
        if y[train_idx].min() == y[train_idx].max():
            predicted[test_idx] = 0.5
            continue
        predicted[test_idx] = _fit(X[train_idx], y[train_idx]).inplace_predict(X[test_idx])
    rule = X[:, FEATURES.index("rule_score")]
    return Ranker(_fit(X, y), round(float(roc_auc_score(y, predicted)), 4),
                  round(float(roc_auc_score(y, np.nan_to_num(rule))), 4), len(y), int(y.sum()), n_deals)
