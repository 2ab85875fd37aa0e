"""Scoring speed, each figure beside its baseline from the same run, as JSON:

- one lead with its reasons, from an already loaded lead (score_lead's own work: the lead's row, the model's numbers,
  the probability, the contributions, the reasons in words), against the bare XGBoost calls it makes
  (`inplace_predict` and the `pred_contribs` call on one prepared row, one thread) — interleaved rounds, medians;
  for the cold-start model (Dealflow's features) and for a model trained on an export (the lead's custom fields);
- re-scoring a book of leads in pages (services/rescoring.py: read, engagement, rows, predict, contributions,
  reasons, the scores written back), against the bare batch predict + contributions on the prepared matrix;
- training on the rows: an export read and trained as `dealflow scoring train --csv` does (leakage checks, 5-fold
  CV, final fit), and Dealflow's own features (the synthetic book), against the same six XGBoost fits on prepared
  arrays.

    python bench/scoring.py [--rows 100000] [--database-url postgresql://...]   (default: a temporary SQLite file)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import xgboost as xgb  # noqa: E402

from bench.settle import settle  # noqa: E402
from core.db import make_engine, migrate  # noqa: E402
from models.base import utcnow  # noqa: E402
from scoring.export_file import read_export  # noqa: E402
from scoring.registry import LoadedModel, ModelRegistry  # noqa: E402
from scoring.synthetic import synthetic_book  # noqa: E402
from scoring.synthetic_export import synthetic_export  # noqa: E402
from scoring.training import EXPORT_PARAMS, PARAMS, folds_of, prepare, train, train_export  # noqa: E402


def _median_ms(samples: list[float]) -> float:
    return round(statistics.median(samples) * 1000, 3)


def single_lead(model: LoadedModel, leads: list[tuple], rounds: int = 5, per_round: int = 200) -> dict:
    """score_lead's work on loaded leads vs the two bare calls on the same leads' prepared rows, interleaved."""
    now = utcnow()
    booster = model.model.get_booster()
    booster.set_param({"nthread": 1})
    types = model._types
    prepared = [np.array([model.vector(model.row(*lead, now), now)]) for lead in leads[:per_round]]
    ours, bare, ratios = [], [], []
    for _ in range(rounds):
        round_ours, round_bare = [], []
        for lead, row in zip(leads[:per_round], prepared, strict=True):
            t = time.perf_counter()
            booster.inplace_predict(row)
            booster.predict(xgb.DMatrix(row, feature_types=types, feature_names=model.features,
                                        enable_categorical=True), pred_contribs=True)
            round_bare.append(time.perf_counter() - t)
            t = time.perf_counter()
            model.score(*lead, now)
            round_ours.append(time.perf_counter() - t)
        ours += round_ours
        bare += round_bare
        ratios.append(round(statistics.median(round_ours) / statistics.median(round_bare), 3))
    return {"score_lead_with_reasons_ms": {"median": _median_ms(ours),
                                           "p95": round(sorted(ours)[int(len(ours) * 0.95)] * 1000, 3)},
            "baseline_inplace_predict_plus_contribs_ms": {"median": _median_ms(bare)},
            "ratio": round(statistics.median(ours) / statistics.median(bare), 3), "round_ratios": ratios,
            "within_2x": statistics.median(ours) <= 2 * statistics.median(bare)}


def _book(engine, tenant: str, export: list[dict]) -> None:
    """`len(export)` leads of one tenant, each with the export's columns as custom fields (not timed)."""
    from sqlalchemy import insert
    from sqlmodel import Session

    from models.lead import Lead
    from services.tenants import create_tenant

    with Session(engine) as session:
        create_tenant(session, tenant)
        session.commit()
    now = utcnow()
    sources = ["web_form", "ppc", "direct_mail", "referral", "cold_call"]
    for start in range(0, len(export), 5000):
        with Session(engine) as session:
            session.execute(insert(Lead), [
                {"id": f"ld_{uuid.uuid4().hex[:20]}", "tenant_id": tenant, "first_name": "Bench",
                 "email": f"lead{start + i}@example.com", "source": sources[(start + i) % 5], "status": "new",
                 "tags": [], "custom": custom, "created_at": now - timedelta(days=(start + i) % 90),
                 "updated_at": now}
                for i, custom in enumerate(export[start:start + 5000])])
            session.commit()


def rescoring(url: str, models_dir: Path, trained, export: list[dict]) -> dict:
    from services.rescoring import rescore_leads

    engine = make_engine(url)
    tenant = f"bench{uuid.uuid4().hex[:6]}"
    try:
        _book(engine, tenant, export)
        settled = settle(engine, vacuum=("leads",))  # a book at rest, not rows inserted a second ago
        registry = ModelRegistry(engine, models_dir)
        registry.register(tenant, trained, "export", activate="always")
        model = registry.ensure_active(tenant)
        now = utcnow()
        matrix = model.matrix([model._values.raw(c, {}) for c in export], now)
        batch = model.model.get_booster().copy()
        batch.set_param({"nthread": 2})
        t = time.perf_counter()
        batch.inplace_predict(matrix)
        batch.predict(xgb.DMatrix(matrix, feature_types=model._types, feature_names=model.features,
                                  enable_categorical=True), pred_contribs=True)
        bare = time.perf_counter() - t
        t = time.perf_counter()
        result = rescore_leads(engine, registry, tenant)
        ours = time.perf_counter() - t
    finally:
        engine.dispose()
    return {"leads": result["scored"], "rescore_seconds_with_reasons_and_write_back": round(ours, 2),
            "leads_per_s": round(result["scored"] / ours), "baseline_bare_batch_predict_plus_contribs_seconds":
            round(bare, 2), "under_30s": ours < 30, "settled_s": settled}


def bare_fits(X, y, make) -> float:
    t = time.perf_counter()
    for train_idx, _ in folds_of(y):
        make().fit(X[train_idx] if isinstance(X, np.ndarray) else X.iloc[train_idx], y[train_idx])
    make().fit(X, y)
    return time.perf_counter() - t


def main(rows: int, database_url: str | None) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        url = database_url or f"sqlite:///{folder / 'bench.db'}"
        migrate(url)
        export_frame = synthetic_export(rows, seed=5)
        path = folder / "export.csv"
        export_frame.to_csv(path, index=False)

        t = time.perf_counter()
        data = read_export(path, "Converted")
        export_trained = train_export(data)
        export_seconds = time.perf_counter() - t
        export_bare = bare_fits(data.X, data.y, lambda: xgb.XGBClassifier(
            **EXPORT_PARAMS, feature_types=data.spec.feature_types))

        frame, y = synthetic_book(n=rows, seed=3)
        t = time.perf_counter()
        book_trained = train(frame, y)
        book_seconds = time.perf_counter() - t
        X = prepare(frame, book_trained.features, book_trained.categories)
        book_bare = bare_fits(X, y, lambda: xgb.XGBClassifier(**PARAMS))

        book_model = LoadedModel("bench", 1, "bench", book_trained.features, book_trained.categories,
                                 book_trained.model, book_trained.metrics)
        now = utcnow()
        book_leads = [({"email": "a@example.com", "phone": "+15125550142", "source": r["source"] or "web_form",
                        "tags": [t for t in ("vacant", "probate") if r.get(f"tag_{t}")],
                        "created_at": now - timedelta(days=float(r["days_since_created"]))},
                       {"facts": {k: (None if isinstance(r[k], float) and np.isnan(r[k]) else r[k])
                                  for k in ("absentee_owner", "tax_delinquent", "years_owned", "assessed_value", "sqft",
                                            "year_built", "beds", "property_type")},
                        "address": {"state": r["state"]}},
                       {"messages_sent": r["messages_sent"], "replies": r["replies"],
                        "replied_within_1d": bool(r["replied_within_1d"] == 1.0)})
                      for r in frame.head(200).to_dict("records")]
        export_model = LoadedModel("bench", 2, "export", export_trained.features, {}, export_trained.model,
                                   export_trained.metrics, export=data.spec)
        customs = export_frame.drop(columns=["Converted"]).to_dict("records")
        export_leads = [({"source": "web_form", "tags": [], "custom": c, "created_at": now}, None,
                         {"messages_sent": 0, "replies": 0, "replied_within_1d": False}) for c in customs[:200]]

        return {
            "benchmark": "scoring", "rows": rows, "database": url.split(":")[0],
            "single_lead_cold_start_model": single_lead(book_model, book_leads),
            "single_lead_export_model": single_lead(export_model, export_leads),
            "rescoring": rescoring(url, folder / "models", export_trained, customs),
            "training_export": {"seconds_read_leak_checks_5fold_cv_final_fit": round(export_seconds, 2),
                                "baseline_six_bare_fits_seconds": round(export_bare, 2),
                                "cv_auc": export_trained.metrics["cv_auc"], "columns": len(data.spec.columns),
                                "under_30s": export_seconds < 30},
            "training_dealflow_features": {"seconds_5fold_cv_final_fit": round(book_seconds, 2),
                                           "baseline_six_bare_fits_seconds": round(book_bare, 2),
                                           "cv_auc": book_trained.metrics["cv_auc"], "under_30s": book_seconds < 30},
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "xgboost": xgb.__version__},
        }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--database-url", help="re-score in this database (default: a temporary SQLite file)")
    args = parser.parse_args()
    print(json.dumps(main(args.rows, args.database_url), indent=2))
