"""Retraining a tenant's deal models (issue 13): the first own version replaces the cold start once the tenant has
enough closed-won deals; later a candidate trained on the book as it stood at a cut-off is compared with the active
version on the deals closed after it (pinball loss of profit and ROI, concordance of the time to close), promoted
only when better by the margin, kept in the registry either way, and rolled back with one command; the same through
ScoringRetrainWorkflow on the time-skipping server and through the CLI."""

from __future__ import annotations

import subprocess
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
from sqlmodel import Session

from models.base import utcnow
from models.opportunity import Opportunity
from scoring.deal_registry import DealModels
from services.deal_retraining import retrain_deal_models
from services.retraining import rollback
from services.tenants import create_tenant
from tests.integration.test_cli import DEALFLOW, _env
from tests.integration.test_retraining import skipping  # noqa: F401 — the time-skipping server and a worker
from workflows.retrain import RetrainRequest, ScoringRetrainWorkflow, retrain_schedule_id

T0 = utcnow() - timedelta(days=100)  # when the tenant's first own deal models were trained


def _deals(engine, tenant: str, won: int, *, closed_from: datetime, closed_to: datetime, arv_matters: bool,
           seed: int) -> None:
    """`won` flips closed won with their figures and a fifth as many lost deals, closing evenly between the two
    dates. Without `arv_matters` the profit is about $25,000 whatever the house and the days to close are noise;
    with it, both grow with the ARV (a market that changed: what the tenant's older deals could not teach)."""
    rng = np.random.default_rng(seed)
    n = won + won // 5
    with Session(engine) as session:
        for i in range(n):
            arv = float(rng.uniform(150_000, 400_000))
            repairs, closing = arv * float(rng.uniform(0.05, 0.3)), arv * 0.08
            contract = arv * 0.7 - repairs
            profit = 0.3 * arv - 30_000 + rng.normal(0, 2_000) if arv_matters else rng.normal(25_000, 3_000)
            days = 20 + (arv - 150_000) / 2_500 + rng.uniform(0, 5) if arv_matters else rng.uniform(20, 120)
            closed = closed_from + (closed_to - closed_from) * (i / n)
            won_deal = i % 6 != 5
            money = lambda v: Decimal(int(v))  # noqa: E731
            session.add(Opportunity(
                tenant_id=tenant, title=f"{i} Elm St", stage="closed_won" if won_deal else "closed_lost",
                arv=money(arv), repair_estimate=money(repairs), asking_price=money(contract * 1.2),
                contract_price=money(contract) if won_deal else None,
                sale_price=money(contract + repairs + closing + profit) if won_deal else None,
                closing_costs=money(closing) if won_deal else None, created_at=closed - timedelta(days=days),
                updated_at=closed, stage_entered_at=closed, closed_at=closed))
        session.commit()


def _tenant(engine) -> str:
    tenant = f"dr{uuid.uuid4().hex[:8]}"
    with Session(engine) as session:
        create_tenant(session, tenant, None, "test")
        session.commit()
    return tenant


def _older_book(engine, tenant: str) -> None:
    """40 won (and 8 lost) deals that closed before T0, the ARV not mattering."""
    _deals(engine, tenant, 40, closed_from=T0 - timedelta(days=300), closed_to=T0 - timedelta(days=5),
           arv_matters=False, seed=1)


def test_the_first_own_models_then_a_better_candidate_promoted_an_equal_one_kept_and_rollback(engine, settings):
    models = DealModels(engine, settings.effective_models_dir)
    tenant = _tenant(engine)
    _deals(engine, tenant, 25, closed_from=T0 - timedelta(days=300), closed_to=T0 - timedelta(days=5),
           arv_matters=False, seed=1)
    short = retrain_deal_models(engine, models, tenant, by="test", now=T0)
    assert short.version is None and not short.promoted and "25 closed-won deals" in short.reason, short
    assert [v.kind for v in models.versions(tenant)] == ["cold_start"]  # made for the comparison, nothing else

    _deals(engine, tenant, 15, closed_from=T0 - timedelta(days=200), closed_to=T0 - timedelta(days=6),
           arv_matters=False, seed=2)
    first = retrain_deal_models(engine, models, tenant, by="test", now=T0)
    assert first.version == 2 and first.promoted and first.model == "deal" and first.active_version == 1, first
    assert "first own deal models: 40 closed-won deals" in first.reason
    active = models.active(tenant)
    assert active.version == 2 and active.kind == "crm_history" and active.metrics["trained_until"] == T0.isoformat()
    assert active.metrics["promotion"]["by"] == "test" and active.metrics["evaluation"] is None

    # The market moves: 60 deals since T0 whose profit and time to close follow the ARV
    _deals(engine, tenant, 60, closed_from=T0 + timedelta(days=1), closed_to=utcnow() - timedelta(days=1),
           arv_matters=True, seed=3)
    better = retrain_deal_models(engine, models, tenant, by="test")
    assert better.version == 3 and better.promoted and better.active_version == 2, better
    cutoff = datetime.fromisoformat(better.cutoff)
    assert cutoff > T0  # the evaluation period starts after what v2 learnt from
    mine, theirs = better.candidate, better.active
    assert mine["n_returns"] >= 10 and mine["n"] == theirs["n"]
    assert mine["profit_pinball"] < 0.98 * theirs["profit_pinball"] and mine["roi_pinball"] < 0.98 * theirs["roi_pinball"]
    assert mine["concordance"] >= theirs["concordance"]
    assert models.active(tenant).version == 3

    # Asked again with nothing new: the candidate is the same model, not better by the margin: kept inactive
    again = retrain_deal_models(engine, models, tenant, by="test")
    assert again.version == 4 and not again.promoted and "it must be lower by 2.0%" in again.reason, again
    versions = {v.version: v for v in models.versions(tenant)}
    assert sorted(versions) == [1, 2, 3, 4] and versions[3].active and not versions[4].active
    assert versions[4].metrics["promotion"] == {**versions[4].metrics["promotion"], "promoted": False, "by": "test"}
    assert versions[4].metrics["evaluation"]["active_version"] == 3 and versions[4].training_data_hash
    assert versions[3].features and versions[3].metrics["evaluation"]["cutoff"] == better.cutoff

    assert rollback(models, tenant, by="test", model="deal") == (3, 2)  # v3 was promoted over v2
    assert models.active(tenant).version == 2
    assert models.versions(tenant)[2].metrics["activations"][-1]["reason"] == "rolled back from v3"
    assert rollback(models, tenant, by="test", to=4, model="deal") == (2, 4)
    assert models.active(tenant).version == 4


async def test_the_retrain_workflow_registers_the_first_deal_models_on_the_time_skipping_server(
        skipping, engine, settings):  # noqa: F811
    env, queue = skipping
    tenant = _tenant(engine)
    _older_book(engine, tenant)
    outcome = await env.client.execute_workflow(
        ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant, model="deal"),
        id=retrain_schedule_id(tenant, "deal"), task_queue=queue)
    assert outcome["promoted"] and outcome["version"] == 2 and outcome["model"] == "deal", outcome
    active = DealModels(engine, settings.effective_models_dir).active(tenant)
    assert active.version == 2 and active.metrics["promotion"]["by"] == "schedule"


def test_retrain_models_and_rollback_of_the_deal_models_from_the_cli(tmp_path, engine):
    env = _env(tmp_path, DEALFLOW_DATABASE_URL=str(engine.url.render_as_string(hide_password=False)))
    env["COLUMNS"] = "220"
    tenant = _tenant(engine)
    _older_book(engine, tenant)

    def dealflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([*DEALFLOW, "scoring", *args, "--tenant", tenant], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=300)

    out = dealflow("retrain", "--local", "--model", "deal")
    assert out.returncode == 0, out.stderr
    assert f"deal models v2 for {tenant}: promoted: now active" in out.stdout and "trained on every deal" in out.stdout
    listed = dealflow("models", "--model", "deal")
    assert "v2" in listed.stdout and "crm_history" in listed.stdout and "cold_start" in listed.stdout, listed.stdout
    lead = dealflow("models")  # the lead model's, as before: the deal versions are not in it
    assert lead.returncode == 0 and "crm_history" not in lead.stdout
    back = dealflow("rollback", "--model", "deal")
    assert back.returncode == 0 and f"{tenant}'s deal models: v1 active again (was v2)" in back.stdout, back.stderr
    none = dealflow("rollback", "--model", "deal", "--to", "9")
    assert none.returncode == 1 and none.stderr.strip().endswith(f"{tenant} has no deal model v9"), none.stderr
