"""Scoring: training from another CRM's CSV with an honest cross-validated AUC, explanations, registry."""

from __future__ import annotations

import subprocess

import numpy as np
import pandas as pd
import pytest

from scoring.features import describe
from scoring.registry import ModelRegistry, cold_start_model
from scoring.synthetic import synthetic_book
from tests.integration.test_cli import DEALFLOW, _env


def _other_crm_export(path, n=1500):
    """The synthetic book, dressed as another CRM's export: its own column names, yes/no outcome, blanks,
    and columns we do not know."""
    frame, y = synthetic_book(n=n, seed=99)
    export = frame.rename(columns={"source": "Lead Source", "absentee_owner": "Absentee", "state": "Property State"})
    export["Absentee"] = export["Absentee"].map({1.0: "1", 0.0: "0"})
    export["Notes"] = "called twice"
    export["Converted"] = np.where(y == 1, "Yes", "No")
    export.loc[::7, "Lead Source"] = None
    export.to_csv(path, index=False)
    return y


def test_train_from_a_csv_reports_an_honest_auc_and_activates_if_better(tmp_path):
    path = tmp_path / "old_crm.csv"
    _other_crm_export(path)
    env = _env(tmp_path)
    subprocess.run([*DEALFLOW, "keys", "create", "--tenant", "acme"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    env["COLUMNS"] = "200"  # the report's table on one line per column
    out = subprocess.run([*DEALFLOW, "scoring", "train", "--tenant", "acme", "--csv", str(path), "--target",
                          "converted"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    line = out.stdout.splitlines()[0]
    assert line.startswith("✓ model v1 for acme: cross-validated AUC 0.")
    auc = float(line.split("AUC ")[1].split(" ")[0])
    assert 0.65 < auc < 0.95  # learned from noisy outcomes: good, not perfect
    assert "active now" in out.stdout
    report = {line.split("  ")[0]: line for line in out.stdout.splitlines()[2:]}
    assert "no    constant (one value on every row)" in report["Notes"]  # every other column is a feature
    assert "yes   categorical" in report["Lead Source"] and "yes   yes/no" in report["Absentee"]
    again = subprocess.run([*DEALFLOW, "scoring", "train", "--tenant", "acme", "--csv", str(path), "--target",
                            "converted"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert "model v2" in again.stdout and "not activated" in again.stdout  # same data: not better


@pytest.mark.parametrize("target, message", [
    ("won", "error: no column 'won' in"),
    ("notes", "error: target 'notes' has values that are neither yes nor no: called twice"),
])
def test_csv_problems_are_one_line(tmp_path, target, message):
    path = tmp_path / "old_crm.csv"
    _other_crm_export(path, n=200)
    out = subprocess.run([*DEALFLOW, "scoring", "train", "--tenant", "acme", "--csv", str(path), "--target", target],
                         cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and out.stderr.startswith(message) and len(out.stderr.strip().splitlines()) == 1


def test_training_needs_enough_history(tmp_path):
    env = _env(tmp_path)
    subprocess.run([*DEALFLOW, "keys", "create", "--tenant", "acme"], cwd=tmp_path, env=env, check=True,
                   capture_output=True, timeout=120)
    out = subprocess.run([*DEALFLOW, "scoring", "train", "--tenant", "acme"], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "not enough history to train: 0 rows" in out.stderr


def test_cold_start_model_explains_in_plain_words(engine, tmp_path):
    from tests.conftest import insert_lead
    tenant, _ = insert_lead(engine)
    registry = ModelRegistry(engine, tmp_path)
    model = registry.ensure_active(tenant)
    assert model.kind == "cold_start" and model.metrics["cv_auc"] > 0.7
    row = {"replied_within_1d": 1.0, "replies": 2.0, "tag_probate": 1.0, "absentee_owner": 1.0, "source": "referral",
           "has_phone": 1.0, "email_disposable": 0.0}
    probability, reasons = model.explain(row)
    cold, _ = model.explain({"replied_within_1d": 0.0, "replies": 0.0, "source": "ppc", "email_disposable": 1.0,
                             "has_phone": 0.0})
    assert probability > 0.5 > cold
    texts = [r["text"] for r in reasons]
    assert any(t.startswith("replied within 1 day +") for t in texts)
    assert all(r["direction"] == ("up" if r["size"] > 0 else "down") for r in reasons)
    assert registry.ensure_active(tenant).version == 1  # cached, not retrained


def test_a_new_lead_s_reasons_are_ones_a_rep_can_act_on(engine, tmp_path):
    """Scored seconds after it arrived, with no county record: no engagement reason (nobody has written to it, so
    "no reply within 1 day" cannot have happened), and the missing county facts said once, not one by one."""
    from datetime import timedelta

    from models.base import utcnow
    from scoring.features import lead_features
    from tests.conftest import insert_lead

    tenant, _ = insert_lead(engine)
    model = ModelRegistry(engine, tmp_path).ensure_active(tenant)
    now = utcnow()
    row = lead_features({"email": "new@example.com", "phone": "+15125550142", "source": "web_form", "tags": [],
                         "created_at": now - timedelta(seconds=5)}, None,
                        {"messages_sent": 0, "replies": 0, "replied_within_1d": False}, now)
    assert row["replied_within_1d"] is None  # not "no": the day has not passed
    _, reasons = model.explain(row, top=10)
    features = [r["feature"] for r in reasons]
    assert not {"messages_sent", "replies", "replied_within_1d"} & set(features), reasons
    from scoring.features import COUNTY

    assert features.count("county_record") <= 1 and not COUNTY & set(features), reasons  # not "tax delinquent unknown"
    county = [r for r in reasons if r["feature"] == "county_record"]
    assert all(r["text"].startswith("no county record found") for r in county)
    assert "arrived just now" in " ".join(r["text"] for r in reasons) or "days_since_created" not in features
    day_old = lead_features({"created_at": now - timedelta(days=2)}, None, {"replied_within_1d": False}, now)
    assert day_old["replied_within_1d"] == 0.0  # a day later, "no reply within 1 day" is a fact


def test_describe_reads_like_a_rep_would_say_it():
    assert describe("source", "driving_for_dollars") == "source: driving for dollars"
    assert describe("years_owned", 12.5) == "12.5 years owned"
    assert describe("tag_pre_foreclosure", 1.0) == "tagged pre-foreclosure"
    assert describe("assessed_value", 312000.0) == "assessed at $312,000"
    assert describe("sqft", float("nan")) == "sqft unknown"


def test_synthetic_book_is_learnable_but_noisy():
    trained = cold_start_model()
    assert 0.7 < trained.metrics["cv_auc"] < 0.9
    frame, y = synthetic_book(n=1000, seed=1)
    assert isinstance(frame, pd.DataFrame) and 0.1 < y.mean() < 0.4
