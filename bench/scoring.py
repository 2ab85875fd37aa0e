"""Scoring speed: single-lead latency (with explanations), batch throughput on 100k leads, training time
on 100k leads — printed as JSON with the baseline of a bare predict_proba in the same run.

    python bench/scoring.py [--rows 100000]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from scoring.registry import LoadedModel  # noqa: E402
from scoring.synthetic import synthetic_book  # noqa: E402
from scoring.training import prepare, train  # noqa: E402


def main(rows: int) -> dict:
    frame, y = synthetic_book(n=rows, seed=3)
    started = time.perf_counter()
    trained = train(frame, y)
    training_seconds = time.perf_counter() - started
    model = LoadedModel("bench", 1, "bench", trained.features, trained.categories, trained.model, trained.metrics)

    records = frame.head(1000).to_dict("records")
    single = []
    for record in records[:300]:
        t = time.perf_counter()
        model.explain(record)
        single.append((time.perf_counter() - t) * 1000)
    bare = []
    prepared = [prepare(frame.iloc[[i]], trained.features, trained.categories) for i in range(300)]
    for one in prepared:
        t = time.perf_counter()
        trained.model.predict_proba(one)
        bare.append((time.perf_counter() - t) * 1000)

    batch = prepare(frame, trained.features, trained.categories)
    t = time.perf_counter()
    trained.model.predict_proba(batch)
    batch_seconds = time.perf_counter() - t
    t = time.perf_counter()
    model.predict(frame.to_dict("records"))
    batch_with_prep = time.perf_counter() - t
    return {
        "benchmark": "scoring", "rows": rows,
        "training_seconds_5fold_cv_plus_final_fit": round(training_seconds, 2), "cv_auc": trained.metrics["cv_auc"],
        "single_lead_ms_with_reasons": {"median": round(statistics.median(single), 2),
                                        "p95": round(sorted(single)[int(len(single) * 0.95)], 2)},
        "baseline_single_predict_proba_ms": {"median": round(statistics.median(bare), 2)},
        "ratio_single_with_reasons_to_bare": round(statistics.median(single) / statistics.median(bare), 2),
        "batch_leads_per_s_predict_only": round(rows / batch_seconds),
        "batch_leads_per_s_from_dicts": round(rows / batch_with_prep),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    print(json.dumps(main(parser.parse_args().rows), indent=2))
