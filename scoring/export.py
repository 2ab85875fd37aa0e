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
"""

from __future__ import annotations

import difflib
import functools
import math
import re
import warnings
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoring.features import ALIASES, FEATURES

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
            moments = _to_datetime(pd.Series(cells.uniques, dtype=object))
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


def _to_datetime(text: pd.Series) -> pd.Series:
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
        parsed = _to_datetime(pd.Series([text])).iloc[0]
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


@dataclass
class ExportData:
    """An export read for training: the feature matrix (category codes as numbers), outcomes, spec and the
    per-column report (every column of the file, used or not, and why)."""

    X: np.ndarray
    y: np.ndarray
    spec: ExportSpec
    report: list[dict[str, Any]]
    path: str


def read_table(path: str | Path) -> pd.DataFrame:
    """A CSV or Excel (.xlsx) export as text cells, or a ValueError that says in one line why it cannot be read."""
    path = Path(path)
    try:
        if path.suffix.lower() in (".xlsx", ".xlsm"):
            frame = pd.read_excel(path, dtype=str, engine="openpyxl")
        else:
            with path.open(encoding="utf-8-sig") as handle:
                header = handle.readline()
            sep = max([",", ";", "\t"], key=header.count)  # Excel in many locales writes ';'
            frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig", sep=sep)
    except FileNotFoundError:
        raise ValueError(f"cannot read {path}: no such file") from None
    except UnicodeDecodeError:
        raise ValueError(f"cannot read {path}: not a text CSV in UTF-8 (save it as CSV UTF-8, or as .xlsx)") from None
    except Exception as exc:  # noqa: BLE001 - pandas' parsers raise many kinds; the user needs the one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ValueError(f"cannot read {path}: {reason}") from None
    if frame.shape[1] < 2 or frame.empty:
        raise ValueError(f"cannot read {path}: expected a header row and lead rows with an outcome column, found "
                         f"{frame.shape[1]} column(s) and {len(frame)} row(s)")
    return frame


def find_target(frame: pd.DataFrame, target: str) -> str:
    """The header the target names (insensitively), or a ValueError naming the nearest headers."""
    wanted = header_key(target)
    for name in frame.columns:
        if header_key(name) == wanted:
            return name
    keys = {header_key(n): n for n in frame.columns}
    near = [keys[k] for k in difflib.get_close_matches(wanted, list(keys), n=3, cutoff=0.5)]
    hint = f"nearest: {', '.join(map(repr, near))}" if near else f"headers: {', '.join(map(str, frame.columns[:12]))}"
    raise ValueError(f"no column {target!r} in the file ({hint})")


def outcomes(values: pd.Series, target: str) -> np.ndarray:
    labels = values.fillna("").astype(str).str.strip().str.lower()
    unknown = sorted(set(labels) - TRUTHY - FALSY - {""})
    if unknown:
        raise ValueError(f"target {target!r} has values that are neither yes nor no: {', '.join(unknown[:5])}")
    if (labels == "").any():
        raise ValueError(f"target {target!r} is empty on {int((labels == '').sum())} row(s): every row needs an "
                         "outcome")
    return labels.isin(TRUTHY).astype(int).to_numpy()


def infer_column(name: str, key: str, raw: pd.Series | Cells) -> tuple[Column | None, str]:
    """How a column is read, or why it is left out (None): (column, how). Shares are of the rows with a value."""
    cells = raw if isinstance(raw, Cells) else Cells.of(raw)
    counts = cells.counts
    present = int(counts.sum())
    if present == 0:
        return None, "empty (only placeholders or blanks)"
    lowered = [u.lower() for u in cells.uniques]
    distinct = len(set(lowered))
    unique_share = distinct / present
    if ID_NAME.search(key) and unique_share >= 0.9:
        return None, "an id (named like one, unique per row)"
    if distinct == 1 and present == len(cells.codes):
        return None, "constant (one value on every row)"
    maps_to = key if key in FEATURES else ALIASES.get(key)

    def share(ok: np.ndarray) -> float:
        return float(counts[ok].sum()) / present

    if set(lowered) <= YES | NO:
        return Column(name, key, "yes_no", maps_to=maps_to), "yes/no"
    numbers = pd.to_numeric(pd.Series([re.sub(r"[,$%\s]", "", u) for u in cells.uniques], dtype=object),
                            errors="coerce")
    if share(numbers.notna().to_numpy()) >= 0.95:
        return Column(name, key, "numeric", maps_to=maps_to), "numeric"
    # a date before the id rule: timestamps differ on every row too
    digits = np.array([any(ch.isdigit() for ch in u) for u in cells.uniques])
    if share(digits) >= 0.95 and share(_to_datetime(pd.Series(cells.uniques, dtype=object)).notna().to_numpy()
                                       ) >= 0.95:
        return Column(name, key, "date", maps_to=maps_to), "date (days since, month, weekday)"
    if unique_share >= 0.99 and present >= 0.5 * len(cells.codes) and present >= 20:
        return None, "an id (a different value on every row)"
    spelling: dict[str, tuple[int, str]] = {}  # the most common spelling of each value, any case
    for value, low, count in zip(cells.uniques, lowered, counts, strict=True):
        if low not in spelling or count > spelling[low][0]:
            spelling[low] = (int(count), value)
    categories = sorted((v for _, v in spelling.values()), key=str.lower)
    return Column(name, key, "categorical", categories, maps_to), f"categorical ({len(categories)} values)"


def read_export(path: str | Path, target: str, exclude_leaky: bool = False) -> ExportData:
    """Read an export for training; leakage (scoring/leakage.py) is flagged in the report, and those columns are
    left out with `exclude_leaky`."""
    from scoring.leakage import leak_reason

    frame = read_table(path)
    target_name = find_target(frame, target)
    y = outcomes(frame[target_name], target)
    report: list[dict[str, Any]] = []
    columns: list[Column] = []
    cells: dict[Any, Cells] = {}
    seen: set[str] = set()
    for name in frame.columns:
        if name == target_name:
            report.append(_entry(name, False, "the outcome (target)"))
            continue
        key = header_key(name) or "column"
        while key in seen:  # two headers that read the same: keep both
            key += "_2"
        seen.add(key)
        cells[name] = Cells.of(frame[name])
        column, how = infer_column(str(name), key, cells[name])
        report.append(_entry(name, column is not None, how))
        if column:
            columns.append(column)
    dates = [_to_datetime(cells[c.name].text()) for c in columns if c.kind == "date"]
    newest = max((d.max() for d in dates if d.notna().any()), default=None)
    reference = (newest.to_pydatetime() if newest is not None else datetime.now(UTC)).isoformat()
    blocks = {c.key: c.encode(cells[c.name], datetime.fromisoformat(reference)) for c in columns}
    by_name = {e["column"]: e for e in report}
    kept = []
    for column in columns:
        reason = leak_reason(blocks[column.key][:, 0], y, column.kind == "categorical")
        entry = by_name[column.name]
        if reason:
            entry["leak"] = reason
            if exclude_leaky:
                entry["used"], entry["how"] = False, f"{entry['how']}, left out as leaky"
                continue
        kept.append(column)
    if not kept:
        raise ValueError(f"no column of {Path(path).name} can be a feature (see the report: ids, empty or constant)")
    spec = ExportSpec(kept, str(target_name), reference)
    X = np.column_stack([blocks[c.key] for c in kept])
    return ExportData(X=X, y=y, spec=spec, report=report, path=str(path))


def _entry(name: Any, used: bool, how: str) -> dict[str, Any]:
    return {"column": str(name), "used": used, "how": how, "importance": None, "leak": None}


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

    def raw(self, custom: dict[str, Any] | None, dealflow: dict[str, Any]) -> dict[str, Any]:
        """{column name: the value used} for the export's columns."""
        values: dict[str, Any] = dict.fromkeys(self._by_key.values())
        if custom:
            for key, name in self._matched(tuple(custom)):
                values[name] = custom[key]
        if self.maps:
            for column in self.spec.columns:
                if column.maps_to and is_placeholder(values[column.name]):
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
