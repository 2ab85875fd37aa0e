"""Promotion of a retrained lead model (scoring/promotion.py): better by the margin, and no worse calibrated."""

from __future__ import annotations

import pytest

from scoring.promotion import Evaluation, decide, evaluate


def test_a_model_better_by_the_margin_and_no_worse_calibrated_is_promoted():
    active, candidate = Evaluation(0.70, 0.20, 100, 30), Evaluation(0.72, 0.19, 100, 30)
    promoted, reason = decide(candidate, active)
    assert promoted and "up +0.0200" in reason


@pytest.mark.parametrize("candidate, why", [
    (Evaluation(0.703, 0.19, 100, 30), "the margin is 0.0050"),  # up 0.003 only
    (Evaluation(0.65, 0.19, 100, 30), "up -0.0500"),  # worse
    (Evaluation(0.75, 0.25, 100, 30), "the Brier score is worse"),  # sharper ranking, worse probabilities
])
def test_promotion_refuses_a_model_not_better_by_the_margin_or_worse_calibrated(candidate, why):
    promoted, reason = decide(candidate, Evaluation(0.70, 0.20, 100, 30))
    assert not promoted and why in reason


def test_the_first_model_is_promoted_and_an_evaluation_needs_both_outcomes():
    assert decide(Evaluation(0.6, 0.2, 10, 3), None) == (True, "no active model")
    assert evaluate([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0]) == Evaluation(1.0, 0.0375, 4, 2)
    with pytest.raises(ValueError, match="both outcomes"):
        evaluate([0.5, 0.4], [1, 1])
