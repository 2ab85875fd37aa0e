"""Reading an export file for training (CSV or Excel): the target, the outcomes, each column's kind, the leakage
checks, and the per-column report. What the columns mean and how a lead's values are read is scoring/export.py."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from scoring.export import FALSY, ID_NAME, NO, TRUTHY, YES, Cells, Column, ExportSpec, parse_dates, header_key
from scoring.features import ALIASES, FEATURES
from scoring.leakage import leak_reason


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
    if share(digits) >= 0.95 and share(parse_dates(pd.Series(cells.uniques, dtype=object)).notna().to_numpy()
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
    dates = [parse_dates(cells[c.name].text()) for c in columns if c.kind == "date"]
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
