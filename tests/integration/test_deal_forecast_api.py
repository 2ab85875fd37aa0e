"""GET /api/v1/opportunities/{id}/forecast over HTTP: a new tenant's deal is forecast by the cold-start models (the
synthetic deal book), the tenant's own take over once it has enough closed deals and the retraining has run (a
forecast never trains), a closed deal answers its outcome,
and another tenant's deal is a 404. Runs on SQLite, and on Postgres when DEALFLOW_TEST_DATABASE_URL is set."""

from __future__ import annotations

import uuid
from datetime import timedelta
from decimal import Decimal

import numpy as np
from sqlmodel import Session, col, select

from models.base import utcnow
from models.enrichment import ScoringModel
from models.opportunity import Opportunity
from models.tenant import Role
from scoring.deal_registry import DealModels
from services.deal_retraining import retrain_deal_models

DEAL = {"title": "12 Oak St", "asking_price": "180000", "offer_price": "150000", "arv": "260000",
        "repair_estimate": "45000"}


def _past_deals(engine, tenant: str, won: int, open_: int = 0, lost: int = 0, seed: int = 1) -> None:
    """Deals written straight to the database: `won` closed won with a flip's figures, some open and lost ones."""
    rng = np.random.default_rng(seed)
    now = utcnow()
    with Session(engine) as session:
        for i in range(won + open_ + lost):
            arv = Decimal(int(rng.uniform(150_000, 400_000)))
            repairs = (arv * Decimal(rng.uniform(0.05, 0.3))).quantize(Decimal(1))
            contract = (arv * Decimal("0.7") - repairs).quantize(Decimal(1))
            opened = now - timedelta(days=float(rng.uniform(60, 400)))
            stage = "closed_won" if i < won else "contacted" if i < won + open_ else "closed_lost"
            closed = opened + timedelta(days=float(rng.uniform(20, 90))) if stage != "contacted" else None
            session.add(Opportunity(
                tenant_id=tenant, title=f"{i} Elm St", stage=stage, arv=arv, repair_estimate=repairs,
                asking_price=contract * Decimal("1.2"), contract_price=contract if stage == "closed_won" else None,
                sale_price=(arv * Decimal(rng.uniform(0.95, 1.05))).quantize(Decimal(1)) if stage == "closed_won"
                else None, closing_costs=(arv * Decimal("0.08")).quantize(Decimal(1)) if stage == "closed_won"
                else None, created_at=opened, updated_at=closed or opened, stage_entered_at=closed or opened,
                closed_at=closed))
        session.commit()


def _ordered(interval: dict) -> bool:
    return interval["p10"] <= interval["p50"] <= interval["p90"]


async def test_a_new_deal_is_forecast_by_the_cold_start_then_by_the_tenant_s_own_models(api, make_key, engine,
                                                                                         settings):
    tenant = f"fc{uuid.uuid4().hex[:8]}"
    staff = make_key(Role.staff, tenant)
    created = await api.post("/api/v1/opportunities", json=DEAL, headers=staff)
    assert created.status_code == 201, created.text
    deal_id = created.json()["id"]

    response = await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=make_key(Role.readonly, tenant))
    assert response.status_code == 200, response.text
    first = response.json()
    assert first["closed"] is False and first["model"]["kind"] == "cold_start" and first["model"]["version"] == 1
    assert _ordered(first["profit"]) and _ordered(first["roi"]) and first["profit"]["p10"] < first["profit"]["p90"]
    chances = [first["close_within"][h] for h in ("30", "60", "90")]
    assert all(0 <= p <= 1 for p in chances) and chances == sorted(chances)
    assert first["model"]["trained_on"] == 3000 and "synthetic" in first["basis"] and "(you have 0)" in first["basis"]
    assert first["model"]["metrics"]["profit_pinball"] < first["model"]["metrics"]["profit_pinball_baseline"]

    # 29 closed-won deals with their figures (and open and lost ones): one short of the setting's 30
    _past_deals(engine, tenant, won=29, open_=12, lost=8)
    again = (await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=staff)).json()
    assert again["model"]["kind"] == "cold_start" and "(you have 29)" in again["basis"]

    _past_deals(engine, tenant, won=1, seed=2)  # the 30th
    # A forecast reads the active models and never trains: the switch-over is the retraining's (its Schedule's)
    still = (await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=staff)).json()
    assert still["model"]["kind"] == "cold_start" and still["model"]["version"] == 1, still
    assert "(you have 30)" in still["basis"] and "next retraining" in still["basis"]
    outcome = retrain_deal_models(engine, DealModels(engine, settings.effective_models_dir), tenant, by="test",
                                  min_closed=30)
    assert outcome.promoted and outcome.version == 2, outcome
    own = (await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=staff)).json()
    assert own["model"]["kind"] == "crm_history" and own["model"]["version"] == 2, own
    assert own["model"]["trained_on"] == 51  # 30 won, 12 open, 8 lost and the deal itself (open)
    assert own["model"]["metrics"]["n_returns"] == 30 and own["model"]["metrics"]["n_open"] == 13
    assert _ordered(own["profit"]) and _ordered(own["roi"]) and "Trained on 51 of your deals" in own["basis"]
    with Session(engine) as session:
        rows = session.exec(select(ScoringModel).where(ScoringModel.tenant_id == tenant,
                                                       col(ScoringModel.active).is_(True))).all()
    assert sorted((r.model, r.version, r.kind) for r in rows) == [("deal_close_time", 2, "crm_history"),
                                                                  ("deal_return", 2, "crm_history")]
    # Five more closed deals (what used to retrain inside the request): the forecast still reads v2
    _past_deals(engine, tenant, won=5, seed=3)
    assert (await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=staff)).json()["model"]["version"] == 2


async def test_a_closed_deal_answers_its_outcome(api, make_key, engine):
    tenant = f"fc{uuid.uuid4().hex[:8]}"
    staff = make_key(Role.staff, tenant)
    _past_deals(engine, tenant, won=1)
    with Session(engine) as session:
        deal = session.exec(select(Opportunity).where(Opportunity.tenant_id == tenant)).one()
    answer = (await api.get(f"/api/v1/opportunities/{deal.id}/forecast", headers=staff)).json()
    assert answer["closed"] is True and answer["profit"] is None and answer["close_within"] is None
    expected = deal.sale_price - deal.contract_price - deal.repair_estimate - deal.closing_costs
    assert Decimal(str(answer["outcome"]["profit"])) == expected
    assert 20 <= answer["outcome"]["days_to_close"] <= 90


async def test_another_tenant_s_deal_is_not_found(api, make_key):
    created = await api.post("/api/v1/opportunities", json=DEAL, headers=make_key(Role.staff))
    deal_id = created.json()["id"]
    response = await api.get(f"/api/v1/opportunities/{deal_id}/forecast", headers=make_key(Role.admin))
    assert response.status_code == 404 and response.headers["content-type"].startswith("application/problem+json")
    assert (await api.get("/api/v1/opportunities/op_nope/forecast", headers=make_key(Role.staff))).status_code == 404
