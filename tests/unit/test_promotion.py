"""Promotion of a retrained model (scoring/promotion.py): the lead model better by the margin and no worse
calibrated; the deal models lower pinball losses by the margin and no worse at ordering closes."""

from __future__ import annotations

import numpy as np
import pytest

from scoring.promotion import DealEvaluation, Evaluation, decide, decide_deals, evaluate, evaluate_deals


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


def _deal(profit: float, roi: float, c: float | None, n: int = 40) -> DealEvaluation:
    return DealEvaluation(profit_pinball=profit, roi_pinball=roi, concordance=c, n=n, n_returns=n - 5)


def test_deal_models_lower_by_the_margin_on_both_losses_and_no_worse_at_ordering_are_promoted():
    promoted, reason = decide_deals(_deal(9_000, 0.030, 0.70), _deal(10_000, 0.033, 0.68), margin=0.02)
    assert promoted and "profit pinball -10.0%" in reason and "roi pinball -9.1%" in reason


@pytest.mark.parametrize("candidate, why", [
    (_deal(9_900, 0.030, 0.70), "profit pinball loss 9900 vs the active model's 1e+04"),  # 1 % lower only
    (_deal(9_000, 0.0329, 0.70), "roi pinball loss"),  # the ROI's not lower by the margin
    (_deal(11_000, 0.030, 0.70), "+10.0%"),  # worse
    (_deal(9_000, 0.030, 0.66), "concordance is worse"),  # a better return, a worse ordering of closes
    (_deal(9_000, 0.030, None), "concordance is worse"),  # no ordering to compare is not better
])
def test_deal_promotion_refuses_a_candidate_not_better_by_the_margin_or_worse_at_ordering(candidate, why):
    promoted, reason = decide_deals(candidate, _deal(10_000, 0.033, 0.68), margin=0.02)
    assert not promoted and why in reason, reason


def test_the_concordance_tolerance_lets_a_slightly_worse_ordering_through():
    assert decide_deals(_deal(9_000, 0.030, 0.67), _deal(10_000, 0.033, 0.68), tolerance=0.02)[0]
    assert decide_deals(_deal(9_000, 0.030, 0.67), None) == (True, "no active model")


def test_a_deal_evaluation_scores_the_won_deals_returns_and_every_closed_deal_s_days():
    from scoring.deal_forecast import synthetic_deals, train_forecaster

    book = synthetic_deals(n=600, seed=5)
    forecaster = train_forecaster(book)
    later = synthetic_deals(n=300, seed=6)
    closed = later.status != "open"
    deals = [d for d, c in zip(later.deals, closed, strict=True) if c]
    evaluation = evaluate_deals(forecaster, deals, later.status[closed] == "won", later.days[closed],
                                later.profit[closed], later.roi[closed])
    assert evaluation.n == int(closed.sum()) and evaluation.n_returns == int((later.status == "won").sum())
    assert evaluation.profit_pinball > 0 and evaluation.roi_pinball > 0 and 0.55 < evaluation.concordance < 0.8
    with pytest.raises(ValueError, match="won deals with their figures"):
        evaluate_deals(forecaster, deals[:3], [False] * 3, [10.0] * 3, [np.nan] * 3, [np.nan] * 3)
