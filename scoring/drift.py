"""Population stability (PSI) of a model's inputs and of its outputs (the lead model's score, the deal models' central
predictions): the training data (the reference) against the current sample (the leads scored lately, the deals
created lately). Pure: numbers in, numbers out; the database side is
services/drift.py, the plots scoring/drift_plot.py.

    PSI = sum over bins of (a - e) * ln(a / e)

with e a bin's share of the reference and a its share of the current sample (each at least EPSILON, so an empty
bin counts as a very small one instead of an infinite term). Conventional reading: under 0.1 no shift worth a
look, 0.1-0.25 a moderate shift, over 0.25 a significant one (the population the model sees is not the one it
learnt from). Chance alone gives about (bins - 1) * (1/n_reference + 1/n_current): 0.1 for 10 bins and ~100
current rows, so a small window reads high (the report notes it).

Bins come from the reference and are stored with the model version (`metrics["reference"]`):

- a number: the reference's deciles as cut points (ties merge bins: a yes/no feature has the bins <= 0, 0-1 and
  > 1), each bin (low, high]; a missing value (NaN) is a bin of its own;
- a category: one bin per category of the reference (the MAX_CATEGORIES most common; rarer ones share "other"),
  "other" also for a category the reference never had, and "missing".
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel

if TYPE_CHECKING:
    from scoring.export import ExportSpec

BINS = 10
EPSILON = 1e-4
MAX_CATEGORIES = 20
MODERATE, SIGNIFICANT = 0.1, 0.25
MISSING, OTHER = "missing", "other"
SCORE = "score"  # the score's entry beside the features'
Level = Literal["none", "moderate", "significant"]


def level(psi: float) -> Level:
    return "significant" if psi >= SIGNIFICANT else "moderate" if psi >= MODERATE else "none"


def psi(expected: Iterable[float], actual: Iterable[float], epsilon: float = EPSILON) -> float:
    """sum((a - e) * ln(a / e)) over the bins, each share at least epsilon."""
    e = np.maximum(np.asarray(list(expected), dtype=float), epsilon)
    a = np.maximum(np.asarray(list(actual), dtype=float), epsilon)
    return float(np.sum((a - e) * np.log(a / e)))


class Reference(BaseModel):
    """One feature's reference distribution: its bins and the reference's share of each."""

    kind: Literal["numeric", "categorical"]
    edges: list[float] = []  # numeric: cut points, ascending
    categories: list[str] = []  # categorical: the bins' categories (then "other", "missing")
    proportions: list[float]
    n: int

    @classmethod
    def of(cls, values: Any, kind: str = "numeric") -> Reference:
        series = pd.Series(values)
        if kind == "categorical":
            known = Counter(t for t in _texts(series) if t is not None)
            ordered = sorted(known.items(), key=lambda item: (-item[1], item[0]))[:MAX_CATEGORIES]
            reference = cls(kind="categorical", categories=[c for c, _ in ordered], proportions=[], n=len(series))
        else:
            numbers = _numbers(series)
            present = numbers[~np.isnan(numbers)]
            edges = np.unique(np.quantile(present, np.linspace(0, 1, BINS + 1)[1:-1])) if len(present) else []
            reference = cls(kind="numeric", edges=[float(e) for e in edges], proportions=[], n=len(series))
        reference.proportions = [round(float(p), 6) for p in reference.shares(series)]
        return reference

    @property
    def labels(self) -> list[str]:
        if self.kind == "categorical":
            return [*self.categories, OTHER, MISSING]
        if not self.edges:
            return ["any", MISSING]
        e = [_short(x) for x in self.edges]
        return [f"≤ {e[0]}", *(f"{lo} – {hi}" for lo, hi in zip(e, e[1:], strict=False)), f"> {e[-1]}", MISSING]

    def counts(self, values: Any) -> np.ndarray:
        """How many of `values` fall in each bin (labels' order)."""
        series = pd.Series(values)
        if self.kind == "categorical":
            index = {c: i for i, c in enumerate(self.categories)}
            other, missing = len(self.categories), len(self.categories) + 1
            codes = np.array([missing if t is None else index.get(t, other) for t in _texts(series)], dtype=np.int64)
            return np.bincount(codes, minlength=len(self.categories) + 2)
        numbers = _numbers(series)
        nan = np.isnan(numbers)
        bins = np.searchsorted(np.asarray(self.edges, dtype=float), numbers[~nan], side="left")
        counts = np.bincount(bins, minlength=len(self.edges) + 1)
        return np.append(counts, int(nan.sum()))

    def shares(self, values: Any) -> np.ndarray:
        counts = self.counts(values)
        total = counts.sum()
        return counts / total if total else np.zeros(len(counts))


class DriftBin(BaseModel):
    bin: str
    reference: float  # share of the reference in this bin
    current: float  # share of the current sample


class FeatureDrift(BaseModel):
    feature: str
    kind: Literal["numeric", "categorical"]
    psi: float
    level: Level
    n_reference: int
    n_current: int
    bins: list[DriftBin]


def compare(name: str, reference: Reference, values: Any) -> FeatureDrift:
    """One feature's (or the score's) PSI and its bins, reference against `values`."""
    current = reference.shares(values)
    value = psi(reference.proportions, current)
    return FeatureDrift(feature=name, kind=reference.kind, psi=round(value, 4), level=level(value),
                        n_reference=reference.n, n_current=len(pd.Series(values)),
                        bins=[DriftBin(bin=label, reference=round(e, 4), current=round(float(a), 4))
                              for label, e, a in zip(reference.labels, reference.proportions, current, strict=True)])


def references(frame: pd.DataFrame, categorical: set[str], scores: Any = None,
               outputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a model version stores at training (`metrics["reference"]`): every feature's bins and shares, and its
    outputs' — the lead model's score (the out-of-fold probabilities, as a model sees rows it did not learn from),
    or the deal models' central predictions (`outputs`, name -> values; `outputs` lists their names)."""
    outputs = {SCORE: scores} if outputs is None else outputs
    return {
        "bins": BINS, "epsilon": EPSILON, "n": len(frame),
        "features": {c: Reference.of(frame[c], "categorical" if c in categorical else "numeric").model_dump()
                     for c in frame.columns},
        "outputs": list(outputs),
        **{name: Reference.of(np.asarray(values, dtype=float)).model_dump() for name, values in outputs.items()},
    }


def output_names(reference: dict[str, Any]) -> list[str]:
    """The outputs a stored reference has bins for (one stored before `outputs` was written: the score)."""
    return list(reference.get("outputs", [SCORE]))


def _numbers(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float, na_value=np.nan)


def _texts(series: pd.Series) -> list[str | None]:
    """Categories as text; None, NaN and "" are missing (None)."""
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) or v == "" else str(v)
            for v in series.astype(object)]


def _short(x: float) -> str:
    if x == int(x) and abs(x) < 1e15:
        return f"{int(x):,}" if abs(x) >= 10000 else str(int(x))
    return f"{x:.3g}" if abs(x) < 1000 else f"{x:,.0f}"


def export_frame(matrix: np.ndarray, spec: ExportSpec) -> pd.DataFrame:
    """An export model's input matrix as its features read: categorical codes as the export's spellings (a value
    the export never had is read as missing, as the model reads it)."""
    frame = pd.DataFrame(matrix, columns=spec.features)
    for column in spec.columns:
        if column.kind == "categorical":
            names = np.array([*column.categories, None], dtype=object)
            codes = frame[column.key].to_numpy(dtype=float)
            frame[column.key] = names[np.where(np.isnan(codes), -1, codes).astype(np.int64)]
    return frame


def categorical_features(spec: ExportSpec | None, features: list[str]) -> set[str]:
    """Which of a model's features are categories: an export's categorical columns, or Dealflow's CATEGORICAL."""
    if spec is not None:
        return {c.key for c in spec.columns if c.kind == "categorical"}
    from scoring.features import CATEGORICAL

    return set(CATEGORICAL) & set(features)
