"""PSI on shifted synthetic data (issue 13): the same distribution reads ~0, a mean shifted by one standard deviation
reads significant, and categories, missing values and unseen categories each have their bin."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scoring.drift import EPSILON, MISSING, OTHER, Reference, compare, level, psi, references
from scoring.synthetic import synthetic_book


def _normal(seed: int, n: int, mean: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).normal(mean, 1.0, n)


def test_the_formula_is_the_standard_one():
    expected, actual = [0.5, 0.3, 0.2], [0.4, 0.4, 0.2]
    by_hand = (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.4 - 0.3) * math.log(0.4 / 0.3)
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, expected) == 0
    # an empty bin counts as EPSILON, not as an infinite term
    assert psi([0.5, 0.5, 0.0], [0.4, 0.4, 0.2]) == pytest.approx(
        2 * (0.4 - 0.5) * math.log(0.4 / 0.5) + (0.2 - EPSILON) * math.log(0.2 / EPSILON))


def test_two_samples_of_one_distribution_read_about_zero():
    reference = Reference.of(_normal(1, 5000))
    assert len(reference.labels) == 11 and reference.labels[-1] == MISSING  # deciles, and the NaN bin
    assert reference.proportions[:10] == pytest.approx([0.1] * 10, abs=0.001)
    drift = compare("x", reference, _normal(2, 3000))
    assert drift.psi < 0.02 and drift.level == "none", drift.psi


def test_a_mean_shifted_by_one_standard_deviation_is_significant():
    reference = Reference.of(_normal(1, 5000))
    drift = compare("x", reference, _normal(2, 3000, mean=1.0))
    assert drift.psi > 0.25 and drift.level == "significant", drift.psi
    half = compare("x", reference, _normal(3, 3000, mean=0.3))
    assert 0.05 < half.psi < drift.psi  # a smaller shift reads smaller
    # the top decile of the reference holds far more of the shifted sample than its 10 %
    assert drift.bins[9].reference == pytest.approx(0.1, abs=0.001) and drift.bins[9].current > 0.3


def test_roughly_symmetric():
    a, b = _normal(1, 5000), _normal(2, 5000, mean=0.6)
    forward, backward = compare("x", Reference.of(a), b).psi, compare("x", Reference.of(b), a).psi
    assert forward > 0.1 and backward > 0.1
    assert forward == pytest.approx(backward, rel=0.25)  # the same formula, bins from the other side


def test_missing_values_are_a_bin_of_their_own():
    values = _normal(1, 4000)
    with_holes = values.copy()
    with_holes[:400] = np.nan  # 10 % missing in the reference
    reference = Reference.of(with_holes)
    assert reference.proportions[-1] == pytest.approx(0.1)
    assert sum(reference.proportions[:-1]) == pytest.approx(0.9)
    same = compare("x", reference, np.where(np.random.default_rng(5).random(4000) < 0.1, np.nan, _normal(6, 4000)))
    assert same.psi < 0.03, same.psi
    mostly_missing = np.where(np.random.default_rng(7).random(4000) < 0.5, np.nan, _normal(8, 4000))
    drift = compare("x", reference, mostly_missing)
    assert drift.bins[-1].bin == MISSING and drift.bins[-1].current == pytest.approx(0.5, abs=0.03)
    assert drift.level == "significant"
    # None and NaN alike; a reference with no value at all still bins the current sample
    empty = Reference.of([None, np.nan, None])
    assert empty.labels == ["any", MISSING] and empty.proportions == [0.0, 1.0]
    assert compare("x", empty, [1.0, 2.0, None]).bins[0].current == pytest.approx(2 / 3, abs=1e-4)


def test_a_categorical_shift_is_detected():
    rng = np.random.default_rng(1)
    sources = ["web_form", "ppc", "direct_mail", "referral"]
    reference = Reference.of(rng.choice(sources, 5000, p=[0.4, 0.3, 0.2, 0.1]), "categorical")
    assert reference.labels == [*sources, OTHER, MISSING]  # most common first
    same = compare("source", reference, rng.choice(sources, 2000, p=[0.4, 0.3, 0.2, 0.1]))
    assert same.psi < 0.02 and same.level == "none"
    shifted = compare("source", reference, rng.choice(sources, 2000, p=[0.1, 0.6, 0.2, 0.1]))
    assert shifted.psi > 0.25 and shifted.level == "significant"
    assert shifted.bins[1].bin == "ppc" and shifted.bins[1].current == pytest.approx(0.6, abs=0.04)


def test_unseen_categories_share_one_bin_and_missing_has_its_own():
    reference = Reference.of(["a"] * 60 + ["b"] * 40, "categorical")
    drift = compare("c", reference, ["a"] * 50 + ["new"] * 20 + ["newer"] * 10 + [None] * 10 + [""] * 10)
    bins = {b.bin: b for b in drift.bins}
    assert bins[OTHER].reference == 0 and bins[OTHER].current == pytest.approx(0.3)
    assert bins[MISSING].current == pytest.approx(0.2) and bins["b"].current == 0
    assert drift.level == "significant" and math.isfinite(drift.psi)


def test_rare_categories_beyond_the_cap_go_to_other():
    values = [f"c{i:02d}" for i in range(30) for _ in range(30 - i)]
    reference = Reference.of(values, "categorical")
    assert len(reference.categories) == 20 and reference.proportions[20] > 0  # "other" holds the rarest 10
    assert compare("c", reference, values).psi == pytest.approx(0, abs=1e-9)


def test_levels():
    assert [level(x) for x in (0.0, 0.099, 0.1, 0.2499, 0.25, 3.0)] == [
        "none", "none", "moderate", "moderate", "significant", "significant"]


def test_the_stored_reference_round_trips_and_reads_the_book_the_same_way():
    frame, _ = synthetic_book(n=3000, seed=7)
    scores = np.random.default_rng(0).beta(2, 8, len(frame))
    stored = references(frame, {"source", "state", "property_type"}, scores)
    assert set(stored["features"]) == set(frame.columns) and stored["n"] == 3000
    assert stored["features"]["source"]["kind"] == "categorical"
    again, _ = synthetic_book(n=3000, seed=8)  # another draw of the same book: nothing drifts
    for name, ref in stored["features"].items():
        assert compare(name, Reference(**ref), again[name]).psi < 0.1, name
    shifted = again.assign(years_owned=again["years_owned"] + 10, source="ppc")
    assert compare("years_owned", Reference(**stored["features"]["years_owned"]), shifted["years_owned"]).psi > 0.25
    assert compare("source", Reference(**stored["features"]["source"]), shifted["source"]).psi > 0.25
    assert compare("score", Reference(**stored["score"]), pd.Series(scores)).psi == pytest.approx(0, abs=1e-6)
