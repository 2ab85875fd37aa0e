"""Whether a retrained model replaces the active one (issue 13): both are scored on the same rows, the ones whose
outcome came after the candidate's training cut-off (the candidate never saw them).

- The lead model: promoted only when its AUC is higher by the margin and its Brier score (calibration and
  sharpness) no worse.
- The deal models (expected return and time to close, scoring/deal_forecast.py): promoted only when the pinball
  loss of its profit and of its ROI quantiles are both lower by the margin (a share of the active model's loss:
  profit is in dollars, ROI a ratio) and its time-to-close concordance is no worse than the active model's less
  the tolerance.

Pure: predictions and outcomes in, a decision with its reason out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score

from scoring.deal_forecast import DealForecaster, concordance, deal_features, pinball_loss


@dataclass(frozen=True)
class Evaluation:
    auc: float
    brier: float
    n: int
    positives: int

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate(probabilities, outcomes) -> Evaluation:
    p, y = np.asarray(probabilities, dtype=float), np.asarray(outcomes, dtype=int)
    if len(y) == 0 or y.min() == y.max():
        raise ValueError(f"an evaluation needs both outcomes: {len(y)} leads, {int(y.sum())} deals")
    return Evaluation(auc=round(float(roc_auc_score(y, p)), 4), brier=round(float(brier_score_loss(y, p)), 4),
                      n=int(len(y)), positives=int(y.sum()))


def decide(candidate: Evaluation, active: Evaluation | None, margin: float = 0.005) -> tuple[bool, str]:
    if active is None:
        return True, "no active model"
    gain = candidate.auc - active.auc
    if gain < margin:
        return False, (f"AUC {candidate.auc:.4f} vs the active model's {active.auc:.4f} on the same {candidate.n} "
                       f"later leads: up {gain:+.4f}, the margin is {margin:.4f}")
    if candidate.brier > active.brier:
        return False, (f"AUC up {gain:+.4f} but the Brier score is worse ({candidate.brier:.4f} vs "
                       f"{active.brier:.4f}): less well calibrated")
    return True, (f"AUC {candidate.auc:.4f} vs {active.auc:.4f} (up {gain:+.4f}), Brier {candidate.brier:.4f} vs "
                  f"{active.brier:.4f}, on {candidate.n} later leads")


@dataclass(frozen=True)
class DealEvaluation:
    profit_pinball: float  # mean pinball loss of the p10/p50/p90 profit over the won deals with their figures
    roi_pinball: float
    concordance: float | None  # Harrell's C of the predicted days to close over the closed deals (None: no pairs)
    n: int  # closed deals (won and lost) after the cut-off
    n_returns: int  # of them, won with their figures

    def as_dict(self) -> dict:
        return asdict(self)


def evaluate_deals(forecaster: DealForecaster, deals: Sequence[Mapping[str, Any]], won: Sequence[bool],
                   days: Sequence[float], profit: Sequence[float], roi: Sequence[float]) -> DealEvaluation:
    """One forecaster on closed deals: the return's pinball losses over the won ones with a profit and ROI (NaN
    for the others), the concordance of its median days with the days to close (won: an event; lost: censored)."""
    won_, days_, profit_, roi_ = (np.asarray(a, dtype=float) for a in (won, days, profit, roi))
    returns = np.flatnonzero((won_ > 0) & np.isfinite(profit_) & np.isfinite(roi_))
    if not len(returns):
        raise ValueError(f"an evaluation needs won deals with their figures: {len(deals)} deals, none")
    matrix = forecaster.spec.matrix([deal_features(d) for d in deals])
    c_index = concordance(days_, won_, forecaster.median_days(matrix))
    return DealEvaluation(
        profit_pinball=round(pinball_loss(profit_[returns], forecaster.quantiles("profit", matrix[returns])), 4),
        roi_pinball=round(pinball_loss(roi_[returns], forecaster.quantiles("roi", matrix[returns])), 6),
        concordance=round(c_index, 4) if math.isfinite(c_index) else None, n=len(deals), n_returns=len(returns))


def decide_deals(candidate: DealEvaluation, active: DealEvaluation | None, margin: float = 0.02,
                 tolerance: float = 0.0) -> tuple[bool, str]:
    """Both pinball losses lower by `margin` (a share of the active model's), the concordance no lower than the
    active model's less `tolerance`."""
    if active is None:
        return True, "no active model"
    on = f"on the same {candidate.n} later deals ({candidate.n_returns} won with their figures)"
    changes = []
    for name in ("profit", "roi"):
        mine, theirs = getattr(candidate, f"{name}_pinball"), getattr(active, f"{name}_pinball")
        change = (mine - theirs) / theirs if theirs > 0 else (0.0 if mine == theirs else math.inf)
        if change > -margin:
            return False, (f"{name} pinball loss {mine:.4g} vs the active model's {theirs:.4g} {on}: "
                           f"{change:+.1%}, it must be lower by {margin:.1%}")
        changes.append(f"{name} pinball {change:+.1%}")
    mine, theirs = candidate.concordance, active.concordance
    if theirs is not None and (mine is None or mine < theirs - tolerance):
        return False, (f"{', '.join(changes)} but the time-to-close concordance is worse ({mine} vs {theirs}, "
                       f"tolerance {tolerance:.3f})")
    return True, f"{', '.join(changes)}, concordance {mine} vs {theirs}, {on}"
