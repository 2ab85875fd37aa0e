"""Drift reports of the deal models (expected return and time to close) through the API and `dealflow scoring drift
--model deal`: a tenant's cold-start deal models (trained on the synthetic deal book, which stores their drift
reference), its deals written to the database as the CRM holds them (the deal, its property's type and state, its
lead's source); deals drawn like the training book are not flagged, deals whose prices doubled are, and the deal
gauges are set. Versions from before drift reports: the cold start's reference is recomputed, another's refused."""

from __future__ import annotations

import subprocess
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlmodel import Session, col, select

from models.base import utcnow
from models.enrichment import ScoringModel
from models.lead import Lead, Property
from models.opportunity import Opportunity
from models.tenant import Role
from scoring.deal_forecast import synthetic_deals
from scoring.deal_registry import DEAL_RETURN, DealModels
from tests.integration.test_cli import DEALFLOW, _env

PRICES = ("asking_price", "offer_price", "contract_price", "arv", "repair_estimate")
STAGE = {"won": "closed_won", "lost": "closed_lost", "open": "new"}


def write_deals(engine, tenant: str, n: int, seed: int, shift: bool = False, age: timedelta = timedelta(hours=1)
                ) -> None:
    """n deals of the synthetic deal book (seed), created `age` ago; `shift`: every price doubled."""
    book = synthetic_deals(n=n, seed=seed)
    created = utcnow() - age
    with Session(engine) as session:
        for i, (deal, status) in enumerate(zip(book.deals, book.status, strict=True)):
            lead = Lead(tenant_id=tenant, source=deal["lead_source"]) if deal["lead_source"] else None
            prop = None
            if deal["state"] or deal["property_type"]:
                prop = Property(tenant_id=tenant, street=f"{i} Drift St", city="Austin", state=deal["state"] or "",
                                zip="78701", normalized_address=f"{i} drift st {uuid.uuid4().hex[:6]}",
                                property_type=deal["property_type"])
            session.add_all([x for x in (lead, prop) if x is not None])
            session.flush()
            prices = {k: None if deal[k] is None else Decimal(str(round(float(deal[k]) * (2 if shift else 1), 2)))
                      for k in PRICES}
            session.add(Opportunity(tenant_id=tenant, title=f"{i} Drift St", pipeline=deal["pipeline"],
                                    stage=STAGE[str(status)], lead_id=lead.id if lead else None,
                                    property_id=prop.id if prop else None, created_at=created, updated_at=created,
                                    stage_entered_at=created, **prices))
        session.commit()


@pytest.fixture
def deal_book(engine, settings, make_key):
    """deal_book(n, shift=False, seed) -> (tenant, headers): a tenant with its cold-start deal models active and n
    deals created in the last hour."""

    def make(n: int = 600, shift: bool = False, seed: int = 31, role: Role = Role.readonly):
        tenant = f"dd{uuid.uuid4().hex[:8]}"
        headers = make_key(role, tenant)
        DealModels(engine, settings.effective_models_dir).ensure_active(tenant)
        if n:
            write_deals(engine, tenant, n, seed, shift)
        return tenant, headers

    return make


def _gauge(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def _psis(report: dict) -> dict[str, float]:
    return {f["feature"]: f["psi"] for f in report["predictions"] + report["features"]}


async def test_deals_drawn_like_the_training_book_are_not_flagged(api, deal_book):
    tenant, headers = deal_book(seed=31)
    answer = await api.get("/api/v1/scoring/drift?model=deal", headers=headers)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert report["family"] == "deal" and report["model_kind"] == "cold_start" and report["model_version"] == 1
    assert report["model"] == f"{tenant}-deals-v1-cold_start"
    assert report["reference"] == "stored with the version at training"
    assert report["n_current"] == 600 and report["n_reference"] == 3000
    assert [p["feature"] for p in report["predictions"]] == ["median_days", "profit_p50"]
    assert report["score"] is None and report["significant"] is False and report["drifted"] == []
    assert all(psi < 0.1 for psi in _psis(report).values()), _psis(report)
    assert {f["feature"] for f in report["features"]} >= {"pipeline", "state", "asking_price", "spread"}
    assert _gauge("dealflow_deal_model_feature_psi", tenant=tenant, model_version="1",
                  feature="asking_price") == _psis(report)["asking_price"] < 0.1
    assert _gauge("dealflow_deal_model_prediction_psi", tenant=tenant, model_version="1",
                  prediction="median_days") == _psis(report)["median_days"]
    # the lead model's gauges are not the deal models'
    assert _gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1", feature="asking_price") is None


async def test_doubled_prices_are_flagged_with_plots(api, deal_book):
    tenant, headers = deal_book(shift=True, seed=32)
    report = (await api.get("/api/v1/scoring/drift?model=deal", headers=headers)).json()
    psis = _psis(report)
    assert {"asking_price", "arv", "price", "spread"} <= set(report["drifted"]), psis
    assert "profit_p50" in report["predictions_drifted"] and report["significant"] is True
    assert psis["pipeline"] < 0.1 and psis["state"] < 0.1 and psis["price_to_arv"] < 0.1  # ratios did not move
    assert _gauge("dealflow_deal_model_prediction_psi", tenant=tenant, model_version="1",
                  prediction="profit_p50") == psis["profit_p50"] > 0.25
    plot = await api.get("/api/v1/scoring/drift/arv.png?model=deal", headers=headers)
    assert plot.status_code == 200 and plot.content.startswith(b"\x89PNG") and len(plot.content) > 5000
    days = await api.get("/api/v1/scoring/drift/median_days.png?model=deal&days=7", headers=headers)
    assert days.status_code == 200 and days.content.startswith(b"\x89PNG")
    unknown = await api.get("/api/v1/scoring/drift/score.png?model=deal", headers=headers)
    assert unknown.status_code == 404 and "deal models v1 has no feature 'score'" in unknown.json()["detail"]


async def test_an_unknown_model_an_empty_window_and_no_deal_models_say_why(api, deal_book, make_key, engine):
    tenant, headers = deal_book(n=0)
    for path in ("/api/v1/scoring/drift?model=shoes", "/api/v1/scoring/drift/arv.png?model=shoes"):
        unknown = await api.get(path, headers=headers)
        assert unknown.status_code == 422 and unknown.headers["content-type"] == "application/problem+json", path
    empty = await api.get("/api/v1/scoring/drift?model=deal", headers=headers)
    assert empty.status_code == 409 and empty.headers["content-type"] == "application/problem+json"
    assert empty.json()["detail"].startswith(f"no deal of '{tenant}' was created in the last 30 days")
    write_deals(engine, tenant, 40, seed=33, age=timedelta(days=10))  # created ten days ago
    assert (await api.get("/api/v1/scoring/drift?model=deal&days=5", headers=headers)).status_code == 409
    inside = (await api.get("/api/v1/scoring/drift?model=deal", headers=headers)).json()
    assert inside["n_current"] == 40 and any("only 40 deals in the window" in n for n in inside["notes"])
    nobody = await api.get("/api/v1/scoring/drift?model=deal", headers=make_key(Role.staff))
    assert nobody.status_code == 404 and "has no active deal models" in nobody.json()["detail"]


def _strip_reference(engine, tenant: str, **changes) -> None:
    """As a version trained before drift reports stored it (no reference), with `changes` to both rows."""
    with Session(engine) as session:
        for row in session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant,
                                                           col(ScoringModel.model) != "lead",
                                                           col(ScoringModel.active).is_(True))):
            row.metrics = {k: v for k, v in row.metrics.items() if k != "reference"}
            for key, value in changes.items():
                setattr(row, key, value)
            session.add(row)
        session.commit()


async def test_a_legacy_version_s_reference_is_recomputed_from_the_book_or_refused(api, deal_book, engine, settings):
    from services.drift import drift_report

    # One tenant per legacy case, each changed before the API first loads its version: the API's registry keeps
    # the versions it loaded (a version's metrics never change in place; this test changes them to make one).
    tenant, headers = deal_book(n=100, seed=34)
    with Session(engine) as session:  # the report with the stored reference, by a registry of its own
        stored = drift_report(session, settings, tenant, model="deal").model_dump(mode="json")
    _strip_reference(engine, tenant)  # a cold start from before drift reports: the deal book's hash, no reference
    with Session(engine) as session:
        row = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant,
                                                      ScoringModel.model == DEAL_RETURN)).one()
        assert "reference" not in row.metrics
    answer = await api.get("/api/v1/scoring/drift?model=deal", headers=headers)
    assert answer.status_code == 200, answer.text
    assert answer.json()["reference"] == ("recomputed from the cold-start deal book (seeded: the same rows) and this "
                                          "version's predictions")
    assert answer.json()["n_reference"] == 3000
    # the same reference as training stored: the book's rows, predicted by this version's own trees (not by the
    # cold start this process would train today, whose trees an older version need not share)
    assert _psis(answer.json()) == pytest.approx(_psis(stored), abs=1e-9)
    other, headers = deal_book(n=100, seed=34)
    _strip_reference(engine, other, training_data_hash="0" * 64)  # not the book's rows: not recomputed
    refused = await api.get("/api/v1/scoring/drift?model=deal", headers=headers)
    assert refused.status_code == 409 and "no reference stored for deal models v1" in refused.json()["detail"]
    assert "retrain them" in refused.json()["detail"]
    own, headers = deal_book(n=100, seed=34)
    _strip_reference(engine, own, kind="crm_history")  # a tenant's own book then: cannot be read again
    assert (await api.get("/api/v1/scoring/drift?model=deal", headers=headers)).status_code == 409


def _lose_files(engine, tenant: str) -> None:
    """The active deal models' files gone (a lost volume, a models dir not shared between machines)."""
    with Session(engine) as session:
        for row in session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant,
                                                           col(ScoringModel.model) != "lead")):
            row.path = f"/nonexistent/{uuid.uuid4().hex}/model.json"
            session.add(row)
        session.commit()


async def test_unreadable_deal_models_are_a_conflict_not_a_server_error(api, deal_book, engine):
    tenant, headers = deal_book(n=50, seed=35)
    _lose_files(engine, tenant)
    for path in ("/api/v1/scoring/drift?model=deal", "/api/v1/scoring/drift/arv.png?model=deal"):
        answer = await api.get(path, headers=headers)
        assert answer.status_code == 409 and answer.headers["content-type"] == "application/problem+json", path
        assert "cannot be read" in answer.json()["detail"] and "retrain them" in answer.json()["detail"]


def _drift(tmp_path, database_url, *args):
    return subprocess.run([*DEALFLOW, "scoring", "drift", *args], cwd=tmp_path, capture_output=True, text=True,
                          env=_env(tmp_path, DEALFLOW_DATABASE_URL=database_url, COLUMNS="200"), timeout=300)


def test_the_cli_reports_the_deal_models_and_writes_the_plots(tmp_path, database_url, deal_book):
    tenant, _ = deal_book(shift=True, seed=35)
    out = _drift(tmp_path, database_url, "--tenant", tenant, "--model", "deal", "--plots", str(tmp_path / "plots"))
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"deal models v1 (cold_start) of {tenant}: 600 deals created in the last 30 days "
                               "against 3,000 training deals"), lines[0]
    rows = {line.split()[0]: line.split() for line in lines[2:] if line and not line.startswith((" ", "drifted"))}
    assert rows["arv"][2] == "significant" and float(rows["arv"][1]) > 0.25
    assert rows["pipeline"][2] == "none" and "profit_p50" in rows and "median_days" in rows
    drifted = next(line for line in lines if line.startswith("drifted"))
    assert "asking_price" in drifted and "profit_p50" in drifted
    written = {p.name for p in (tmp_path / "plots").iterdir()}
    assert {"arv.png", "profit_p50.png"} <= written and "pipeline.png" not in written
    # --retrain runs the deal models' retraining, whose rule decides: these deals have no figures yet
    failed = _drift(tmp_path, database_url, "--tenant", tenant, "--model", "deal", "--retrain")
    assert failed.returncode == 1 and "Traceback" not in failed.stderr
    assert "drift is significant: retraining the deal models" in failed.stdout
    assert failed.stderr.strip().splitlines() == [
        "error: drift is significant but not retrained: not enough history: 0 closed-won deals with their figures; "
        "the tenant's own deal models replace the cold start at 30"], failed.stderr


def test_cli_deal_problems_are_one_line(tmp_path, database_url, deal_book, make_key, engine):
    empty, _ = deal_book(n=0)
    none = f"dd{uuid.uuid4().hex[:8]}"
    make_key(Role.staff, none)
    lost, _ = deal_book(n=20, seed=36)
    _lose_files(engine, lost)
    for args, message in (
            (["--tenant", lost, "--model", "deal"], f"error: the active deal models of '{lost}' cannot be read"),
            (["--tenant", empty, "--model", "deal"], f"error: no deal of '{empty}' was created in the last 30 days"),
            (["--tenant", none, "--model", "deal"], f"error: tenant '{none}' has no active deal models"),
            (["--tenant", none, "--model", "shoes"], "Invalid value for '--model'")):
        out = _drift(tmp_path, database_url, *args)
        assert out.returncode != 0 and message in out.stderr, out.stderr
        assert "Traceback" not in out.stderr
        if message.startswith("error:"):
            assert len(out.stderr.strip().splitlines()) == 1, out.stderr
