"""Training from another CRM's export, honest against a plain xgboost: the cross-validated AUC of Dealflow's training
(`dealflow scoring train --csv`) and of a plain XGBClassifier over the same file, the same columns and the same
folds, with every column and with the leaky ones excluded, from one run, as JSON.

    python bench/train_export.py [--csv leads.csv --target Converted] [--rows 9000] [--seed 11]

Without --csv it writes the synthetic export of scoring/synthetic_export.py (9,000 leads, 37 columns). The plain
baseline reads the file with pandas' defaults (`pd.read_csv`: its own NaN rules, so `Select` stays a category),
makes every text column a pandas category (XGBoost's native categorical splits), dates as timestamps, and fits
`XGBClassifier(enable_categorical=True, tree_method="hist")` with XGBoost's default parameters.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xgboost as xgb  # noqa: E402
from sklearn.metrics import roc_auc_score  # noqa: E402

from scoring.export_file import find_target, outcomes, read_export  # noqa: E402
from scoring.synthetic_export import synthetic_export  # noqa: E402
from scoring.training import folds_of, train_export  # noqa: E402


def plain_frame(path: str, columns: list[str], dates: list[str]) -> pd.DataFrame:
    raw = pd.read_csv(path)  # pandas' defaults, as a notebook would
    frame = raw[columns].copy()
    for name in columns:
        if name in dates:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                moments = pd.to_datetime(frame[name], errors="coerce", format="mixed")
            frame[name] = moments.map(lambda m: m.timestamp() if not pd.isna(m) else np.nan).astype(float)
        elif frame[name].dtype == object or str(frame[name].dtype).startswith(("str", "string")):
            frame[name] = frame[name].astype("category")
    return frame


def plain_cv_auc(frame: pd.DataFrame, y: np.ndarray) -> float:
    aucs = []
    for train_idx, test_idx in folds_of(y):
        model = xgb.XGBClassifier(enable_categorical=True, tree_method="hist", n_jobs=2, random_state=13)
        model.fit(frame.iloc[train_idx], y[train_idx])
        aucs.append(roc_auc_score(y[test_idx], model.predict_proba(frame.iloc[test_idx])[:, 1]))
    return round(float(np.mean(aucs)), 4)


def compare(path: str, target: str, exclude_leaky: bool) -> dict:
    started = time.perf_counter()
    data = read_export(path, target, exclude_leaky=exclude_leaky)
    trained = train_export(data)
    dealflow_seconds = time.perf_counter() - started
    columns = [c.name for c in data.spec.columns]
    dates = [c.name for c in data.spec.columns if c.kind == "date"]
    started = time.perf_counter()
    frame = plain_frame(path, columns, dates)
    y = outcomes(pd.read_csv(path, dtype=str, keep_default_na=False)[data.spec.target], target)
    plain = plain_cv_auc(frame, y)
    plain_seconds = time.perf_counter() - started
    dealflow = trained.metrics["cv_auc"]
    return {"columns_used": len(columns), "leaky_flagged": trained.metrics["leaky_columns"],
            "dealflow_cv_auc": dealflow, "plain_xgboost_cv_auc": plain, "difference": round(dealflow - plain, 4),
            "within_0_01": dealflow >= plain - 0.01,
            "dealflow_seconds": round(dealflow_seconds, 2), "plain_seconds": round(plain_seconds, 2)}


def main(csv: str | None, target: str, rows: int, seed: int) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        if csv is None:
            csv = str(Path(folder) / "synthetic_export.csv")
            synthetic_export(rows, seed).to_csv(csv, index=False)
            source = f"synthetic export ({rows} rows, seed {seed})"
        else:
            source = csv
        header = pd.read_csv(csv, nrows=0)
        find_target(header, target)
        return {"benchmark": "train_export", "file": source, "columns_in_file": header.shape[1],
                "all_columns": compare(csv, target, exclude_leaky=False),
                "leaky_excluded": compare(csv, target, exclude_leaky=True),
                "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                            "xgboost": xgb.__version__}}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--csv", help="an export to read (default: the synthetic one)")
    parser.add_argument("--target", default="Converted", help="the outcome column, as in the file")
    parser.add_argument("--rows", type=int, default=9000)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(json.dumps(main(args.csv, args.target, args.rows, args.seed), indent=2))
