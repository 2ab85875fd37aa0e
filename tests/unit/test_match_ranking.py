"""The learned investor ranking (scoring/match_ranking.py): held-out deals, compared with the rules honestly."""

from __future__ import annotations

import random

from scoring.match_ranking import train


def _history(label, deals: int = 30, per_deal: int = 10, seed: int = 7):
    rng = random.Random(seed)
    rows, labels, groups = [], [], []
    for d in range(deals):
        for _ in range(per_deal):
            row = {"rule_score": rng.choice([0.5, 0.6, 0.7, 0.8]), "capital_multiple": rng.uniform(1, 6),
                   "past_deals": float(rng.randint(0, 3)), "accredited": 1.0}
            rows.append(row)
            labels.append(label(row, rng))
            groups.append(f"deal{d}")
    return rows, labels, groups


def test_a_signal_the_rules_miss_is_learned_and_beats_them_on_held_out_deals():
    # those with three times the raise's minimum free commit (the rules only ask for the minimum)
    ranker = train(*_history(lambda row, rng: int(row["capital_multiple"] > 3 and rng.random() < 0.9)))
    assert ranker.better, ranker
    assert ranker.model_auc > 0.85 and ranker.rule_auc < 0.6
    assert ranker.outcomes == 300 and ranker.deals == 30
    low, high = ranker.predict([{"rule_score": 0.8, "capital_multiple": 1.5, "past_deals": 0.0, "accredited": 1.0},
                                {"rule_score": 0.5, "capital_multiple": 5.0, "past_deals": 0.0, "accredited": 1.0}])
    assert high > low


def test_when_the_rules_already_say_it_the_rules_are_kept():
    ranker = train(*_history(lambda row, rng: int(row["rule_score"] >= 0.7)))
    assert ranker.rule_auc == 1.0 and not ranker.better


def test_one_outcome_only_teaches_nothing():
    ranker = train(*_history(lambda row, rng: 0))
    assert ranker.booster is None and not ranker.better and ranker.predict([{}]) == []
