"""Scheduled drift (issue 13): ScoringDriftWorkflow on the time-skipping server with the real activities computes a
tenant's drift report in the worker, which sets the drift gauges the worker serves (what the ModelDrift alert
reads, with no one opening the API), and retrains the lead model when the drift is significant and the setting
allows it; the tenant's drift Schedule is created on the dev server beside its retraining ones; a starting worker
sets the gauges again from the last check kept in the database."""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid
from datetime import timedelta

import pytest_asyncio
from prometheus_client import REGISTRY

from core.devserver import time_skipping_environment
from models.payloads import DriftCheckInput
from scoring.deal_registry import DealModels
from tests.integration.test_drift_api import book, trained  # noqa: F401 — a tenant's model and its scored leads
from workflows.retrain import ScoringDriftWorkflow, drift_schedule_id


@pytest_asyncio.fixture
async def skipping_env():
    env = await time_skipping_environment()
    yield env
    await env.shutdown()


@contextlib.asynccontextmanager
async def _worker(env, engine, settings, **overrides):
    from worker import build_worker

    queue = f"drift-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(env.client, engine, settings.model_copy(update={"temporal_task_queue": queue,
                                                                                **overrides}), executor):
            yield queue


def _gauge(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


async def _check(env, queue: str, tenant: str) -> dict:
    return await env.client.execute_workflow(ScoringDriftWorkflow.run, DriftCheckInput(tenant_id=tenant),
                                             id=f"{drift_schedule_id(tenant)}-test", task_queue=queue)


async def test_the_drift_check_sets_the_worker_s_gauges_and_retrains_on_significant_drift(
        skipping_env, book, engine, settings):  # noqa: F811
    tenant, _ = book(shift=True)
    # The tenant's deal models are active too: the report is of its lead model, not of whichever active row
    DealModels(engine, settings.effective_models_dir).ensure_active(tenant)
    assert _gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1", feature="years_owned") is None
    async with _worker(skipping_env, engine, settings) as queue:
        result = await _check(skipping_env, queue, tenant)
    drift = result["drift"]
    assert drift["checked"] and drift["significant"] and drift["model_version"] == 1, drift
    assert {"years_owned", "assessed_value", "source"} <= set(drift["drifted"]) and drift["n_current"] == 600
    # set by the activity in this (the worker's) process: what its /metrics serves and the alert reads
    assert _gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1", feature="years_owned") > 0.25
    assert _gauge("dealflow_model_score_psi", tenant=tenant, model_version="1") is not None
    assert drift["max_psi"] == max(_gauge("dealflow_model_feature_psi", tenant=tenant, model_version="1",
                                          feature=f) for f in ("years_owned", "assessed_value", "source"))
    # and the lead model's retraining ran as a child; its rule decides (these leads have no outcomes yet)
    assert result["retrain"]["tenant_id"] == tenant and result["retrain"]["version"] is None
    assert "not enough history" in result["retrain"]["reason"]


async def test_no_retrain_without_significant_drift_or_with_the_setting_off(skipping_env, book, engine, settings):  # noqa: F811
    calm, _ = book(shift=False, seed=32)
    shifted, _ = book(n=300, shift=True, seed=33)
    async with _worker(skipping_env, engine, settings, scoring_retrain_on_drift=False) as queue:
        unchanged = await _check(skipping_env, queue, calm)
        off = await _check(skipping_env, queue, shifted)
        nobody = await _check(skipping_env, queue, f"t{uuid.uuid4().hex[:8]}")
    assert unchanged["drift"]["checked"] and not unchanged["drift"]["significant"] and "retrain" not in unchanged
    assert _gauge("dealflow_model_feature_psi", tenant=calm, model_version="1", feature="years_owned") < 0.1
    assert off["drift"]["significant"] and not off["drift"]["retrain"] and "retrain" not in off
    assert "DEALFLOW_SCORING_RETRAIN_ON_DRIFT is off" in off["drift"]["reason"]
    # no report is an answer, not a failed workflow
    assert not nobody["drift"]["checked"] and "does not exist" in nobody["drift"]["reason"]


async def test_the_drift_check_covers_the_deal_models_and_sets_their_gauges(skipping_env, book, engine, settings):  # noqa: F811
    """One activity checks both: the lead model's report as before, the deal models' in `deals` (their gauges set in
    the worker's process, kept with the version, restored by a starting worker); deal drift retrains nothing here."""
    from services.drift import restore_drift_gauges
    from tests.integration.test_deal_drift import write_deals

    tenant, _ = book(n=300, shift=False, seed=37)
    DealModels(engine, settings.effective_models_dir).ensure_active(tenant)
    write_deals(engine, tenant, 400, seed=38, shift=True)
    quiet, _ = book(n=60, seed=39)  # deal models made, no deal created: the deal check says why, the lead's stands
    DealModels(engine, settings.effective_models_dir).ensure_active(quiet)
    assert _gauge("dealflow_deal_model_feature_psi", tenant=tenant, model_version="1", feature="arv") is None
    async with _worker(skipping_env, engine, settings) as queue:
        result = await _check(skipping_env, queue, tenant)
        calm = await _check(skipping_env, queue, quiet)
    drift, deals = result["drift"], result["drift"]["deals"]
    assert drift["checked"] and not drift["significant"] and "retrain" not in result  # the lead model is calm
    assert deals["model"] == "deal" and deals["checked"] and deals["significant"] and deals["n_current"] == 400
    assert {"arv", "asking_price", "profit_p50"} <= set(deals["drifted"]) and not deals["retrain"]
    assert "weekly Schedule" in deals["reason"] and "400 deals created in 30 days" in deals["reason"]
    assert _gauge("dealflow_deal_model_feature_psi", tenant=tenant, model_version="1", feature="arv") > 0.25
    assert _gauge("dealflow_deal_model_prediction_psi", tenant=tenant, model_version="1",
                  prediction="profit_p50") > 0.25
    assert calm["drift"]["checked"] and not calm["drift"]["deals"]["checked"]
    assert "no deal of" in calm["drift"]["deals"]["reason"]

    before = _series(tenant, DEAL_GAUGES)
    assert len(before) == 14  # 12 features, 2 predictions
    _new_process()
    assert _series(tenant, DEAL_GAUGES) == {}
    assert restore_drift_gauges(engine) >= 2
    assert _series(tenant, DEAL_GAUGES) == before


def test_a_failing_deal_check_does_not_take_the_lead_check_with_it(book, engine, settings):  # noqa: F811
    """The deal models' files gone (a lost volume): their check says so in `deals`, the lead report still counts
    (any other failure of the deal check is caught the same way, in check_drift, and logged)."""
    from sqlalchemy import update

    from models.enrichment import ScoringModel
    from scoring.deal_registry import DEAL_CLOSE_TIME, DEAL_RETURN
    from services.drift import check_drift
    from tests.integration.test_deal_drift import write_deals

    tenant, _ = book(n=300, shift=False, seed=41)
    DealModels(engine, settings.effective_models_dir).ensure_active(tenant)
    write_deals(engine, tenant, 50, seed=42, shift=False)
    with engine.begin() as connection:
        table = ScoringModel.__table__
        connection.execute(update(table).where(table.c.tenant_id == tenant,
                                               table.c.model.in_([DEAL_RETURN, DEAL_CLOSE_TIME]))
                           .values(path=f"/nonexistent/{uuid.uuid4().hex}/model.json"))
    check = check_drift(engine, settings, tenant)
    assert check.checked and check.model == "lead" and check.n_current > 0
    assert check.deals is not None and not check.deals.checked
    assert "cannot be read" in check.deals.reason and "retrain them" in check.deals.reason, check.deals.reason


async def test_the_drift_schedule_is_created_and_updated_on_the_dev_server(temporal_client, engine, settings):
    from tests.integration.test_retraining import _book, drop_every_tenants_schedules

    tenant = _book(engine, n=0)
    queue = settings.temporal_task_queue
    try:
        await _every_tenant_and_then_one(temporal_client, engine, tenant, queue)
    finally:
        await drop_every_tenants_schedules(temporal_client, engine)


async def _every_tenant_and_then_one(temporal_client, engine, tenant: str, queue: str) -> None:
    from events.schedules import ensure_drift_schedule, ensure_retrain_schedules
    from workflows.retrain import retrain_schedule_id

    everyone = await ensure_retrain_schedules(temporal_client, engine, queue, timedelta(days=7), timedelta(days=1))
    assert everyone.get("created", 0) >= 3  # this tenant's lead, deal and drift Schedules at least
    assert await ensure_drift_schedule(temporal_client, tenant, queue, timedelta(days=1)) == "unchanged"
    assert await ensure_drift_schedule(temporal_client, tenant, queue, timedelta(hours=6)) == "updated"
    drift = await temporal_client.get_schedule_handle(drift_schedule_id(tenant)).describe()
    assert drift.schedule.action.workflow == "ScoringDriftWorkflow"
    assert drift.schedule.spec.intervals[0].every == timedelta(hours=6)
    deal = temporal_client.get_schedule_handle(retrain_schedule_id(tenant, "deal"))
    described = await deal.describe()
    assert described.schedule.action.workflow == "ScoringRetrainWorkflow"
    assert described.schedule.action.id == f"scoring-retrain-{tenant}-deal"


LEAD_GAUGES = ("dealflow_model_feature_psi", "dealflow_model_score_psi")
DEAL_GAUGES = ("dealflow_deal_model_feature_psi", "dealflow_deal_model_prediction_psi")


def _series(tenant: str, gauges: tuple[str, ...] = LEAD_GAUGES) -> dict[tuple, float]:
    """Every drift gauge series of `tenant` in this process: (metric, model_version, feature) -> value."""
    return {(s.name, s.labels["model_version"], s.labels.get("feature") or s.labels.get("prediction")): s.value
            for metric in REGISTRY.collect() if metric.name in gauges
            for s in metric.samples if s.labels.get("tenant") == tenant}


def _new_process() -> None:
    """What a restarted worker starts with: no drift series at all."""
    from core.metrics import DEAL_FEATURE_PSI, DEAL_PREDICTION_PSI, MODEL_FEATURE_PSI, MODEL_SCORE_PSI
    from services import drift

    for gauge in (MODEL_FEATURE_PSI, MODEL_SCORE_PSI, DEAL_FEATURE_PSI, DEAL_PREDICTION_PSI):
        gauge.clear()
    drift._exported.clear()


def test_the_last_check_s_gauges_are_restored_when_the_worker_starts(book, engine, settings, trained, tmp_path):  # noqa: F811
    """After a deploy the ModelDrift alert reads the last daily check again, not nothing until the next one."""
    from core.db import make_engine, migrate
    from scoring.registry import ModelRegistry
    from services.drift import check_drift, restore_drift_gauges

    checked, _ = book(n=300, shift=True, seed=34)
    unchecked, _ = book(n=60, seed=35)  # an active model and scored leads, never checked
    retrained, _ = book(n=60, seed=36)
    assert check_drift(engine, settings, checked).checked and check_drift(engine, settings, retrained).checked
    ModelRegistry(engine, settings.effective_models_dir).register(retrained, trained, "crm_history",
                                                                  activate="always")  # v2, not checked yet
    before = _series(checked)
    assert before[("dealflow_model_feature_psi", "1", "years_owned")] > 0.25
    assert ("dealflow_model_score_psi", "1", None) in before and len(before) > 10

    _new_process()
    assert _series(checked) == {}
    assert restore_drift_gauges(engine) >= 1
    assert _series(checked) == before  # the same series, the same values
    assert _series(unchecked) == {}  # nothing stored: nothing set
    assert _series(retrained) == {}  # v1's check says nothing of the active v2

    _new_process()  # a database with no check stored at all: nothing set, no failure
    url = f"sqlite:///{tmp_path / 'empty.db'}"
    migrate(url)
    empty = make_engine(url)
    assert restore_drift_gauges(empty) == 0
    empty.dispose()
    assert _series(checked) == {}
