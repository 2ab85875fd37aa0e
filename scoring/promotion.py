"""Whether a retrained lead model replaces the active one (issue 13): both are scored on the same leads, the ones
whose outcome came after the candidate's training cut-off (the candidate never saw them), and the candidate is
promoted only when its AUC is higher by the margin and its Brier score (calibration and sharpness) no worse.
Pure: probabilities and outcomes in, a decision with its reason out."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from sklearn.metrics import brier_score_loss, roc_auc_score


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
