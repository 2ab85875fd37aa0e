"""Leakage in an export: columns that were filled in after the outcome was known.

An export is a snapshot taken after its leads were worked, so some columns say what happened rather than what was
known when the lead arrived (a salesperson's tags, a lead-quality grade, a close reason). A model trained on them
looks brilliant and is useless at intake. Two signs, each checked on its own column:

- it alone nearly separates converted from not: the out-of-fold AUC of the column's per-value conversion rate
  (numbers in 20 quantile bins, "missing" a value of its own) is at least SEPARATES;
- it is filled in (almost) only for one outcome: at least PURITY of the rows that have a value share one outcome,
  well above that outcome's base rate.
"""

from __future__ import annotations

import numpy as np
from sklearn.metrics import roc_auc_score

SEPARATES = 0.90
PURITY = 0.97
FOLDS = 5


def _bins(values: np.ndarray, categorical: bool) -> np.ndarray:
    missing = np.isnan(values)
    if categorical:
        codes = np.where(missing, -1, values).astype(np.int64)
    else:
        present = values[~missing]
        edges = np.unique(np.quantile(present, np.linspace(0, 1, 21)[1:-1])) if present.size else np.array([])
        codes = np.searchsorted(edges, np.where(missing, 0, values), side="right").astype(np.int64)
        codes[missing] = -1
    return codes + 1  # 0 is "missing"


def alone_auc(values: np.ndarray, y: np.ndarray, categorical: bool, seed: int = 13) -> float:
    """How well this column alone ranks converted above not (0.5 = not at all, 1.0 = perfectly): each row gets the
    conversion rate of its value among the other folds' rows (smoothed towards the base rate)."""
    codes = _bins(values, categorical)
    size = int(codes.max()) + 1
    fold = np.random.default_rng(seed).permutation(len(y)) % FOLDS
    prior = float(y.mean())
    encoded = np.empty(len(y))
    for k in range(FOLDS):
        train, test = fold != k, fold == k
        hits = np.bincount(codes[train], weights=y[train], minlength=size)
        counts = np.bincount(codes[train], minlength=size)
        rate = (hits + 10 * prior) / (counts + 10)
        encoded[test] = rate[codes[test]]
    auc = roc_auc_score(y, encoded)
    return float(max(auc, 1 - auc))


def leak_reason(values: np.ndarray, y: np.ndarray, categorical: bool) -> str | None:
    """Why this column looks filled in after the outcome, in words, or None."""
    filled = ~np.isnan(values)
    share = float(filled.mean())
    if 0.02 <= share <= 0.98:
        converted = float(y[filled].mean())
        base = float(y.mean())
        if converted >= PURITY and converted - base >= 0.3:
            return (f"filled in for {share:.0%} of leads, {converted:.0%} of them converted: "
                    "a value recorded once the lead had converted")
        if 1 - converted >= PURITY and base - converted >= 0.3:
            return (f"filled in for {share:.0%} of leads, {1 - converted:.0%} of them not converted: "
                    "a value recorded once the lead was lost")
    auc = alone_auc(values, y, categorical)
    if auc >= SEPARATES:
        return (f"alone it nearly separates converted from not (AUC {auc:.2f}): "
                "probably filled in after the outcome")
    return None
