"""Another CRM's export (CSV or Excel) as training data, and the feature spec that scores later leads the same way.

An export is a snapshot: one row per lead, its outcome in one column, and every other column is whatever that CRM
knew when the file was written. So every column that is not an identifier becomes a feature, read the way a person
would read it:

- headers are matched case- and punctuation-insensitively (`Lead Source`, `lead_source` and `LEAD-SOURCE` are the
  key `lead_source`), so the target works as written in the file;
- placeholders (`Select`, `N/A`, `-`, `none`, empty, ...; see PLACEHOLDERS) are missing values;
- a column is yes/no (1/0), numeric (`1,250`, `$310,000`, `12%` read as numbers), a date (days before the export's
  newest date, month, weekday) or categorical (values matched case-insensitively, so `Google` and `google` are one);
- identifiers are left out: a column named like one (`id`, `Prospect ID`, `Lead Number`) whose values are (nearly)
  unique, or a text column with a different value on every row (emails, names);
- a column with no value, or one value on every row, says nothing and is left out.

The spec (the export's column names, kinds, categories) is stored with the model version, so a lead posted later
is scored from its `custom` values of the same names (matched the same insensitive way), or from the Dealflow field
a column maps onto (`Lead Source` -> the lead's source); anything missing is missing (XGBoost handles it).
Reading the file itself (the target, inference, leakage, the report) is scoring/export_file.py.
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd


PLACEHOLDERS = {"", "select", "n/a", "na", "-", "--", "---", "none", "null", "nan", "#n/a", "?", "unknown",
                "not provided", "not specified", "(blank)", "blank"}
YES = {"1", "1.0", "true", "yes", "y", "t"}
NO = {"0", "0.0", "false", "no", "n", "f"}
# An outcome column: converted (1) or not (0).
TRUTHY = YES | {"converted", "won", "deal", "closed_won", "closed won"}
FALSY = NO | {"dead", "lost", "closed_lost", "closed lost", "not converted"}
ID_NAME = re.compile(r"(^|_)(id|uuid|guid|number|num|no)$|^(id|uuid|guid|record|row)(_|$)")
DATE_PARTS = ("days_since", "month", "weekday")


@functools.lru_cache(maxsize=4096)  # a book's custom fields repeat the same few names on every lead
def header_key(name: Any) -> str:
    """`Lead Source`, `lead_source`, `LEAD-SOURCE ` -> `lead_source`: how headers and custom fields are matched."""
    return re.sub(r"[^a-z0-9]+", "_", str(name).strip().lower()).strip("_")


def is_placeholder(value: Any) -> bool:
    if value is None:
        return True
    if value.__class__ is str:
        return value.strip().lower() in PLACEHOLDERS
    return isinstance(value, float) and math.isnan(value)


@dataclass
class Column:
    """One export column used as a feature: its name as in the file and how its values are read."""

    name: str
    key: str
    kind: str  # yes_no, numeric, date, categorical
    categories: list[str] = field(default_factory=list)  # categorical: display spellings, code = position
    maps_to: str | None = None  # the Dealflow lead feature it stands for, read when `custom` lacks it

    @property
    def features(self) -> list[str]:
        return [f"{self.key}__{part}" for part in DATE_PARTS] if self.kind == "date" else [self.key]

    @property
    def feature_types(self) -> list[str]:
        return ["c"] if self.kind == "categorical" else ["q"] * len(self.features)

    def codes(self) -> dict[str, int]:
        return {c.lower(): i for i, c in enumerate(self.categories)}

    def encode(self, values: pd.Series | Cells, reference: datetime) -> np.ndarray:
        """The column's feature values for many raw values: shape (rows, len(features)). Each distinct cell is read
        once, by the same code that reads one lead's custom field (encode_value), so training and scoring agree."""
        cells = values if isinstance(values, Cells) else Cells.of(values)
        width = len(self.features)
        table = np.full((len(cells.uniques) + 1, width), np.nan)  # the last row: a missing cell (code -1)
        if self.kind == "date":
            moments = parse_dates(pd.Series(cells.uniques, dtype=object))
            days = (pd.Timestamp(reference) - moments).dt.total_seconds() / 86400
            table[:-1] = np.column_stack([days.to_numpy(float, na_value=np.nan),
                                          moments.dt.month.to_numpy(float, na_value=np.nan),
                                          moments.dt.day_of_week.to_numpy(float, na_value=np.nan)])
        else:
            codes = self.codes()
            for i, value in enumerate(cells.uniques):
                table[i] = self.encode_value(value, reference, codes)
        return table[cells.codes]

    def encode_value(self, value: Any, now: datetime, codes: dict[str, int]) -> list[float]:
        """The same for one value (a lead's custom field), without pandas: scoring one lead stays cheap."""
        nan = math.nan
        if value.__class__ is bool:
            value = "yes" if value else "no"
        elif self.kind == "numeric" and value.__class__ in (int, float):
            return [float(value)]  # NaN stays NaN
        if is_placeholder(value):
            return [nan] * len(self.features)
        text = value.strip() if value.__class__ is str else str(value).strip()
        if self.kind == "yes_no":
            lowered = text.lower()
            return [1.0 if lowered in YES else 0.0 if lowered in NO else nan]
        if self.kind == "numeric":
            try:
                return [float(re.sub(r"[,$%\s]", "", text))]
            except ValueError:
                return [nan]
        if self.kind == "categorical":
            code = codes.get(text.lower())
            return [nan if code is None else float(code)]
        moment = _one_datetime(value)
        if moment is None:
            return [nan] * 3
        return [(now - moment).total_seconds() / 86400, float(moment.month), float(moment.weekday())]


@dataclass
class Cells:
    """A column's cells as codes into its distinct values (stripped text; placeholders and blanks are code -1): an
    export has millions of cells but a column few distinct ones, so everything is read per distinct value."""

    codes: np.ndarray
    uniques: list[str | None]

    @classmethod
    def of(cls, values: pd.Series) -> Cells:
        codes, uniques = pd.factorize(values.astype(object), use_na_sentinel=True)
        cleaned = [None if is_placeholder(u) else str(u).strip() for u in uniques]
        # Equal after stripping ("Google", "Google "): one value; placeholders: missing.
        first: dict[str, int] = {}
        remap = np.empty(len(cleaned) + 1, dtype=np.int64)
        kept: list[str | None] = []
        for i, value in enumerate(cleaned):
            if value is None:
                remap[i] = -1
                continue
            if value not in first:
                first[value] = len(kept)
                kept.append(value)
            remap[i] = first[value]
        remap[-1] = -1
        return cls(remap[codes], kept)

    @property
    def counts(self) -> np.ndarray:
        return np.bincount(self.codes[self.codes >= 0], minlength=len(self.uniques))

    def text(self) -> pd.Series:
        return pd.Series(np.array([*self.uniques, None], dtype=object)[self.codes], dtype=object)


def clean(values: pd.Series) -> pd.Series:
    """Cells as stripped text, placeholders and blanks as None."""
    return Cells.of(values).text()


def parse_dates(text: pd.Series) -> pd.Series:
    """ISO dates fast; anything else (`03/14/2024`, `14 Mar 2024 10:05`) element by element."""
    with warnings.catch_warnings():  # "could not infer format": mixed is what was asked for
        warnings.simplefilter("ignore")
        iso = pd.to_datetime(text, errors="coerce", format="ISO8601", utc=True)
        if iso.notna().sum() >= 0.95 * text.notna().sum():
            return iso
        return pd.to_datetime(text, errors="coerce", format="mixed", utc=True)


def _one_datetime(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    text = str(value).strip()
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        parsed = parse_dates(pd.Series([text])).iloc[0]
        return None if pd.isna(parsed) else parsed.to_pydatetime()
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass
class ExportSpec:
    """What a model trained on an export needs to score a lead: its columns in model order and the snapshot
    moment its dates were measured from (stored in the model version's metrics as `export`)."""

    columns: list[Column]
    target: str
    reference: str  # ISO time: the newest date in the export (days-since was measured from it)

    @property
    def features(self) -> list[str]:
        return [f for c in self.columns for f in c.features]

    @property
    def feature_types(self) -> list[str]:
        return [t for c in self.columns for t in c.feature_types]

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns], "target": self.target, "reference": self.reference}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ExportSpec:
        return cls([Column(**c) for c in data["columns"]], data["target"], data["reference"])


class LeadValues:
    """Scoring with an export model: a lead's values for the export's columns, from `custom` (names matched the
    insensitive way) or from the Dealflow feature the column maps onto."""

    def __init__(self, spec: ExportSpec) -> None:
        self.spec = spec
        self._codes = [c.codes() for c in spec.columns]
        self._by_key = {c.key: c.name for c in spec.columns}
        self._names: dict[tuple, list[tuple[str, str]]] = {}  # custom's key set -> (custom key, column name)
        self.maps = any(c.maps_to for c in spec.columns)

    def _matched(self, keys: tuple) -> list[tuple[str, str]]:
        """Which custom keys are which columns; a book's leads mostly share one key set, so this is cached."""
        found = self._names.get(keys)
        if found is None:
            found = [(k, self._by_key[header_key(k)]) for k in keys if header_key(k) in self._by_key]
            if len(self._names) < 1024:
                self._names[keys] = found
        return found

    def raw(self, custom: dict[str, Any] | None,
            dealflow: dict[str, Any] | Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """{column name: the value used} for the export's columns. `dealflow`: the lead's Dealflow features, or a
        function that computes them, called only when a mapped column is missing from `custom` (a re-scored book
        mostly has them all: computing every feature of every lead for none was a twentieth of a re-score)."""
        values: dict[str, Any] = dict.fromkeys(self._by_key.values())
        if custom:
            for key, name in self._matched(tuple(custom)):
                values[name] = custom[key]
        if self.maps:
            for column in self.spec.columns:
                if column.maps_to and is_placeholder(values[column.name]):
                    if callable(dealflow):
                        dealflow = dealflow()
                    values[column.name] = dealflow.get(column.maps_to)
        return values

    def matrix(self, raws: list[dict[str, Any]], now: datetime) -> np.ndarray:
        """Many leads at once, column by column: each distinct value read once (re-scoring a book)."""
        blocks = [column.encode(pd.Series([raw.get(column.name) for raw in raws], dtype=object), now)
                  for column in self.spec.columns]
        return np.column_stack(blocks) if blocks else np.empty((len(raws), 0))

    def vector(self, raw: dict[str, Any], now: datetime) -> list[float]:
        out: list[float] = []
        for column, codes in zip(self.spec.columns, self._codes, strict=True):
            out.extend(column.encode_value(raw.get(column.name), now, codes))
        return out


def describe_value(column: Column, value: Any, now: datetime | None = None) -> str:
    """A reason's words for an export column's value, named as in the export: `Lead Quality: Might be`,
    `Total Visits: 7`, `Do Not Email: yes`, `Last Activity Date: 3 days ago`, `Tags: not given`."""
    if isinstance(value, bool):
        value = "yes" if value else "no"
    if is_placeholder(value):
        return f"{column.name}: not given"
    text = str(value).strip()
    if column.kind == "yes_no":
        lowered = text.lower()
        return f"{column.name}: {'yes' if lowered in YES else 'no' if lowered in NO else text}"
    if column.kind == "numeric":
        number = column.encode_value(value, now or datetime.now(UTC), {})[0]
        if math.isnan(number):
            return f"{column.name}: {text}"
        return f"{column.name}: {number:,.0f}" if abs(number) >= 1000 else f"{column.name}: {number:g}"
    if column.kind == "date":
        moment = _one_datetime(value)
        if moment is None:
            return f"{column.name}: {text}"
        days = ((now or datetime.now(UTC)) - moment).total_seconds() / 86400
        return f"{column.name}: {'today' if abs(days) < 1 else f'{days:.0f} days ago'}"
    return f"{column.name}: {text}"
