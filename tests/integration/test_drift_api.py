"""Drift reports through the API and `dealflow scoring drift`: a tenant's model trained on the synthetic book, its
book of leads written to the database (contact, enrichment, messages, replies: what lead_features reads) and scored
by the real re-scoring path; shifted leads are flagged and the gauges set, unshifted ones are not."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import insert, update
from sqlmodel import Session, select

from models.base import utcnow
from models.lead import Lead
from models.message import Message
from models.tenant import Role
from models.timeline import TimelineEntry
from scoring.registry import ModelRegistry
from scoring.synthetic import book_leads, synthetic_book
from scoring.training import train
from services.rescoring import rescore_leads
from tests.integration.test_cli import DEALFLOW, _env


@pytest.fixture(scope="module")
def trained():
    frame, y = synthetic_book(n=2500, seed=7)
    return train(frame, y, folds=3)


def _shifted(frame):
    """Owners who have held far longer, pricier houses, and every lead from PPC."""
    return frame.assign(years_owned=frame["years_owned"] + 15, assessed_value=frame["assessed_value"] * 2,
                        source="ppc")


@pytest.fixture
def book(engine, settings, trained, make_key):
    """book(n, shift=False, seed) -> (tenant, headers): a tenant whose active model is `trained` and whose n leads
    (drawn like the training data, or shifted) were scored by it just now."""

    def make(n: int = 600, shift: bool = False, seed: int = 31, role: Role = Role.readonly):
        tenant = f"dr{uuid.uuid4().hex[:8]}"
        headers = make_key(role, tenant)
        registry = ModelRegistry(engine, settings.effective_models_dir)
        registry.register(tenant, trained, "crm_history", activate="always")
        frame, _ = synthetic_book(n=n, seed=seed)
        records = book_leads(_shifted(frame) if shift else frame, tenant, utcnow(), seed=seed)
        with Session(engine) as session:
            for table, model in (("leads", Lead), ("messages", Message), ("timeline_entries", TimelineEntry)):
                if records[table]:
                    session.execute(insert(model), records[table])
            session.commit()
        assert rescore_leads(engine, registry, tenant)["scored"] == n
        return tenant, headers

    return make


def _gauge(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def test_shifted_leads_are_flagged_and_the_gauges_set(api, book):
    tenant, headers = book(shift=True)
    answer = await api.get("/api/v1/scoring/drift", headers=headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["model_version"] == 1 and report["model"] == f"{tenant}-v1-crm_history"
    assert report["n_current"] == 600 and report["n_reference"] == 2500 and report["window_days"] == 30
    assert report["reference"] == "stored with the version at training"
    assert {"years_owned", "assessed_value", "source"} <= set(report["drifted"]), report["drifted"]
    assert report["significant"] is True and report["threshold"] == 0.25
    by_name = {f["feature"]: f for f in report["features"]}
    assert by_name["source"]["level"] == "significant"
    ppc = next(b for b in by_name["source"]["bins"] if b["bin"] == "ppc")
    assert ppc["current"] == 1.0 and 0.1 < ppc["reference"] < 0.2
    assert by_name["state"]["level"] == "none" and "state" not in report["drifted"]  # what did not move did not
    assert [f["psi"] for f in report["features"]] == sorted((f["psi"] for f in report["features"]), reverse=True)
    assert report["score"]["n_current"] == 600
    # the gauges the ModelDrift alert reads
    assert _gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1",
                  feature="years_owned") == by_name["years_owned"]["psi"] > 0.25
    assert _gauge("dealflow_model_score_psi", tenant=tenant, model_version="1") == report["score"]["psi"]


async def test_leads_drawn_like_the_training_data_are_not_flagged(api, book):
    tenant, headers = book(shift=False, seed=32)
    report = (await api.get("/api/v1/scoring/drift", headers=headers)).json()
    assert report["drifted"] == [] and report["score_drifted"] is False and report["significant"] is False, \
        [(f["feature"], f["psi"]) for f in report["features"][:5]]
    assert all(f["psi"] < 0.1 for f in report["features"]), [(f["feature"], f["psi"]) for f in report["features"][:5]]
    assert report["score"]["psi"] < 0.1
    assert _gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1", feature="years_owned") < 0.1


async def test_the_plot_of_a_feature_is_a_png(api, book):
    tenant, headers = book(n=300, shift=True)
    answer = await api.get("/api/v1/scoring/drift/years_owned.png", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "image/png" and answer.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert len(answer.content) > 5000
    score = await api.get("/api/v1/scoring/drift/score.png?days=7", headers=headers)
    assert score.status_code == 200 and score.content.startswith(b"\x89PNG")
    unknown = await api.get("/api/v1/scoring/drift/shoe_size.png", headers=headers)
    assert unknown.status_code == 404 and unknown.headers["content-type"] == "application/problem+json"
    assert "no feature 'shoe_size'" in unknown.json()["detail"] and "years_owned" in unknown.json()["detail"]


async def test_no_model_and_no_scored_leads_say_why(api, book, make_key, engine, settings, trained):
    nobody = make_key(Role.staff)
    answer = await api.get("/api/v1/scoring/drift", headers=nobody)
    assert answer.status_code == 404 and answer.headers["content-type"] == "application/problem+json"
    assert "has no active scoring model" in answer.json()["detail"]

    tenant, headers = book(n=60)
    with Session(engine) as session:  # scored ten days ago: outside a 5-day window, inside the default 30
        session.execute(update(Lead).where(Lead.tenant_id == tenant).values(scored_at=utcnow() - timedelta(days=10)))
        session.commit()
    outside = await api.get("/api/v1/scoring/drift?days=5", headers=headers)
    assert outside.status_code == 409, outside.text
    assert outside.json()["detail"].startswith(f"no lead of '{tenant}' was scored in the last 5 days")
    inside = (await api.get("/api/v1/scoring/drift", headers=headers)).json()
    assert inside["n_current"] == 60 and any("only 60 leads in the window" in n for n in inside["notes"])
    for days in (0, 366, "x"):
        assert (await api.get(f"/api/v1/scoring/drift?days={days}", headers=headers)).status_code == 422


async def test_a_version_without_a_stored_reference_is_refused_unless_it_is_the_book(api, book, engine):
    from models.enrichment import ScoringModel

    tenant, headers = book(n=60)
    with Session(engine) as session:  # as a version trained before drift reports stored it
        row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant, ScoringModel.active)).one()
        row.metrics = {k: v for k, v in row.metrics.items() if k != "reference"}
        session.add(row)
        session.commit()
    answer = await api.get("/api/v1/scoring/drift", headers=headers)
    assert answer.status_code == 409 and "no reference stored for model v1" in answer.json()["detail"]
    assert "retrain it" in answer.json()["detail"]


async def test_the_cold_start_model_s_reference_is_recomputed_from_its_seeded_book(api, book, engine, trained,
                                                                                  monkeypatch):
    import scoring.registry
    from models.enrichment import ScoringModel
    from services.drift import _cold_start_book_hash

    tenant, headers = book(n=60)
    with Session(engine) as session:  # a cold-start version from before drift reports: the book's hash, no reference
        row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant, ScoringModel.active)).one()
        row.kind, row.training_data_hash = "cold_start", _cold_start_book_hash()
        row.metrics = {k: v for k, v in row.metrics.items() if k != "reference"}
        session.add(row)
        session.commit()
    # The process's cold-start model stands in for the book's (training it here would cost the test 15 s)
    monkeypatch.setattr(scoring.registry, "_COLD_START", trained)
    answer = await api.get("/api/v1/scoring/drift", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["reference"] == "recomputed from the cold-start book (seeded: the same rows)"
    assert answer.json()["n_reference"] == 2500
    with Session(engine) as session:  # another hash: not the book's rows, so not recomputed
        row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant, ScoringModel.active)).one()
        row.training_data_hash = "0" * 64
        session.add(row)
        session.commit()
    assert (await api.get("/api/v1/scoring/drift", headers=headers)).status_code == 409


def _drift(tmp_path, database_url, *args):
    return subprocess.run([*DEALFLOW, "scoring", "drift", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(tmp_path, DEALFLOW_DATABASE_URL=database_url, COLUMNS="200"), timeout=300)


def test_the_cli_prints_the_table_writes_the_plots_and_retrains_when_asked(tmp_path, database_url, book, engine):
    tenant, _ = book(shift=True, seed=33)
    out = _drift(tmp_path, database_url, "--tenant", tenant, "--plots", str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"model v1 (crm_history) of {tenant}: 600 leads scored in the last 30 days against "
                               "2,500 training rows")
    rows = {line.split()[0]: line.split() for line in lines[2:] if line and not line.startswith((" ", "drifted"))}
    assert rows["years_owned"][2] == "significant" and float(rows["years_owned"][1]) > 0.25
    assert rows["state"][2] == "none"
    drifted = next(line for line in lines if line.startswith("drifted"))
    assert "years_owned" in drifted and "source" in drifted
    written = sorted(p.name for p in (tmp_path / "plots").iterdir())
    assert {"years_owned.png", "assessed_value.png", "source.png"} <= set(written)
    assert "state.png" not in written and (tmp_path / "plots" / "source.png").read_bytes().startswith(b"\x89PNG")

    # --retrain with no closed leads: says so, in one line
    failed = _drift(tmp_path, database_url, "--tenant", tenant, "--retrain")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert failed.stderr.strip().splitlines() == [
        "error: drift is significant but retraining failed: not enough history to train: 0 rows, 0 deals (need at "
        "least 50 rows with 5 deals and 5 non-deals)"]
    with Session(engine) as session:  # the book's outcomes arrive: every seventh lead a deal, the rest dead
        ids = session.exec(select(Lead.id).where(Lead.tenant_id == tenant).order_by(Lead.id)).all()
        session.execute(update(Lead).where(Lead.id.in_(ids[::7])).values(status="converted"))
        session.execute(update(Lead).where(Lead.tenant_id == tenant, Lead.status != "converted")
                        .values(status="dead"))
        session.commit()
    retrained = _drift(tmp_path, database_url, "--tenant", tenant, "--retrain")
    assert retrained.returncode == 0, retrained.stderr
    assert "drift is significant: retraining on the tenant's closed leads" in retrained.stdout
    assert f"✓ model v2 for {tenant}: cross-validated AUC" in retrained.stdout and "on 600 leads (86 deals)" in \
        retrained.stdout


@pytest.mark.parametrize("args, message", [
    (["--tenant", "nobody-here"], "error: tenant 'nobody-here' does not exist"),
    (["--tenant", "nobody-here", "--days", "0"], "Invalid value for '--days'"),
])
def test_cli_problems_are_one_line(tmp_path, database_url, args, message):
    out = _drift(tmp_path, database_url, *args)
    assert out.returncode != 0 and message in out.stderr, out.stderr
    assert "Traceback" not in out.stderr


def test_cli_no_model_is_one_line(tmp_path, database_url, make_key, engine):
    tenant = f"dr{uuid.uuid4().hex[:8]}"
    make_key(Role.staff, tenant)
    out = _drift(tmp_path, database_url, "--tenant", tenant)
    assert out.returncode == 1 and out.stderr.startswith(f"error: tenant '{tenant}' has no active scoring model")
    assert len(out.stderr.strip().splitlines()) == 1
