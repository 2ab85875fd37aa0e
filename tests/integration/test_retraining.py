"""Retraining the lead model (issue 13): a candidate trained on the closed leads up to a cut-off is compared with
the active model on the leads closed after it, promoted only when better by the margin, kept in the registry
either way, and rolled back with one command; ScoringRetrainWorkflow does it on the (time-skipping) server; each
tenant's Schedule is created and updated on the dev server."""

from __future__ import annotations

import concurrent.futures
import random
import subprocess
import uuid
from datetime import timedelta

import pytest_asyncio
from sqlmodel import Session

from core.devserver import time_skipping_environment
from models.base import utcnow
from models.lead import Lead
from scoring.registry import ModelRegistry
from services.retraining import retrain_lead_model, rollback
from services.tenants import create_tenant
from tests.integration.test_cli import DEALFLOW, _env
from workflows.retrain import RetrainRequest, ScoringRetrainWorkflow, retrain_schedule_id


def _book(engine, tenant: str | None = None, n: int = 400, *, start=None, seed: int = 3) -> str:
    """Closed leads whose outcome follows one tag, the other way round from the cold-start model's belief (it
    ranks tired landlords above vacant houses): here vacant houses mostly convert, tired landlords almost never."""
    rng = random.Random(seed)
    tenant = tenant or f"r{uuid.uuid4().hex[:8]}"
    start = start or utcnow() - timedelta(days=300)
    with Session(engine) as session:
        if not _exists(session, tenant):
            create_tenant(session, tenant, None, "test")
        for i in range(n):
            landlord = rng.random() < 0.5
            converted = rng.random() < (0.08 if landlord else 0.85)
            created = start + timedelta(hours=12 * i)
            session.add(Lead(tenant_id=tenant, first_name="Old", email=f"o{i}.{uuid.uuid4().hex[:6]}@example.com",
                             source="direct_mail", tags=["tired-landlord"] if landlord else ["vacant"],
                             status="converted" if converted else "dead", created_at=created,
                             updated_at=created + timedelta(days=5)))
        session.commit()
    return tenant


def _exists(session, tenant: str) -> bool:
    from models.tenant import Tenant

    return session.get(Tenant, tenant) is not None


def test_a_better_candidate_is_promoted_an_equal_one_kept_inactive_and_rollback_undoes(engine, settings):
    registry = ModelRegistry(engine, settings.effective_models_dir)
    tenant = _book(engine)
    first = retrain_lead_model(engine, registry, tenant, by="test")
    assert first.version == 2 and first.promoted, first  # v1 is the cold start, made for the comparison
    assert first.candidate["auc"] >= first.active["auc"] + 0.005 and first.active_version == 1
    from core.metrics import MODEL_LIVE_AUC
    assert MODEL_LIVE_AUC.labels(tenant, "1")._value.get() == first.active["auc"]  # the cold start, realised
    versions = {v.version: v for v in registry.versions(tenant)}
    assert versions[2].active and not versions[1].active
    assert versions[2].metrics["promotion"]["by"] == "test" and versions[2].metrics["evaluation"]["cutoff"]

    # Right after: v2 has seen every closed lead, so there is nothing to compare on yet
    again = retrain_lead_model(engine, registry, tenant, by="test")
    assert again.version is None and "not enough history" in again.reason
    # New leads close (the same pattern): a candidate trained on more of the same is not better by the margin
    _book(engine, tenant, n=120, start=utcnow() + timedelta(minutes=1), seed=4)
    later = retrain_lead_model(engine, registry, tenant, by="test")
    assert later.version == 3 and not later.promoted and "the margin is 0.0050" in later.reason, later
    versions = {v.version: v for v in registry.versions(tenant)}
    assert versions[2].active and not versions[3].active and versions[3].metrics["promotion"]["promoted"] is False

    assert rollback(registry, tenant, by="test") == (2, 1)  # v2 replaced v1: back to v1
    versions = {v.version: v for v in registry.versions(tenant)}
    assert versions[1].active and not versions[2].active
    assert versions[1].metrics["activations"][-1]["reason"] == "rolled back from v2"
    assert rollback(registry, tenant, by="test", to=3) == (1, 3)  # or to a named version
    assert registry.active(tenant).version == 3


def test_retrain_rollback_and_models_from_the_cli(tmp_path, engine):
    env = _env(tmp_path, DEALFLOW_DATABASE_URL=str(engine.url.render_as_string(hide_password=False)))
    env["COLUMNS"] = "200"
    tenant = _book(engine)
    out = subprocess.run([*DEALFLOW, "scoring", "retrain", "--local", "--tenant", tenant], cwd=tmp_path, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert f"model v2 for {tenant}: promoted: now active" in out.stdout
    listed = subprocess.run([*DEALFLOW, "scoring", "models", "--tenant", tenant], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "v2" in listed.stdout and "crm_history" in listed.stdout and "cold_start" in listed.stdout
    back = subprocess.run([*DEALFLOW, "scoring", "rollback", "--tenant", tenant], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert back.returncode == 0 and "v1 active again (was v2)" in back.stdout, back.stderr
    none = subprocess.run([*DEALFLOW, "scoring", "rollback", "--tenant", tenant, "--to", "9"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=120)
    assert none.returncode == 1 and none.stderr.strip().endswith(f"{tenant} has no lead model v9"), none.stderr
    assert "Traceback" not in none.stderr


@pytest_asyncio.fixture
async def skipping(engine, settings):
    from worker import build_worker

    env = await time_skipping_environment()
    queue = f"retrain-{uuid.uuid4().hex[:6]}"
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as executor:
        async with build_worker(env.client, engine, settings.model_copy(update={"temporal_task_queue": queue}),
                                executor):
            yield env, queue
    await env.shutdown()


async def test_the_retrain_workflow_promotes_on_the_time_skipping_server(skipping, engine, settings):
    env, queue = skipping
    tenant = _book(engine)
    outcome = await env.client.execute_workflow(
        ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant), id=retrain_schedule_id(tenant), task_queue=queue)
    assert outcome["promoted"] and outcome["version"] == 2
    assert ModelRegistry(engine, settings.effective_models_dir).versions(tenant)[0].metrics["promotion"]["by"] \
        == "schedule"


async def drop_every_tenants_schedules(client, engine) -> None:
    """After a test of ensure_retrain_schedules: its Schedules for every tenant in the shared database would
    otherwise start hundreds of retrains and drift checks on the shared worker at the next interval boundary
    (daily ones at 00:00 UTC) while later tests run."""
    from temporalio.service import RPCError
    from sqlmodel import select

    from models.tenant import Tenant
    from workflows.retrain import RETRAINED, drift_schedule_id

    with Session(engine) as session:
        tenants = session.exec(select(Tenant.id)).all()
    for tenant in tenants:
        for schedule_id in (*(retrain_schedule_id(tenant, m) for m in RETRAINED), drift_schedule_id(tenant)):
            try:
                await client.get_schedule_handle(schedule_id).delete()
            except RPCError:
                pass  # never made (the test's call made no drift Schedules) or gone already


async def test_each_tenant_s_schedule_is_created_and_updated_on_the_dev_server(temporal_client, engine, settings):
    from events.schedules import ensure_retrain_schedule, ensure_retrain_schedules

    tenant = _book(engine, n=0)
    queue = settings.temporal_task_queue
    assert await ensure_retrain_schedule(temporal_client, tenant, queue, timedelta(days=7)) == "created"
    assert await ensure_retrain_schedule(temporal_client, tenant, queue, timedelta(days=7)) == "unchanged"
    assert await ensure_retrain_schedule(temporal_client, tenant, queue, timedelta(days=3)) == "updated"
    handle = temporal_client.get_schedule_handle(retrain_schedule_id(tenant))
    described = await handle.describe()
    assert described.schedule.spec.intervals[0].every == timedelta(days=3)
    assert described.schedule.action.workflow == "ScoringRetrainWorkflow"
    try:
        everyone = await ensure_retrain_schedules(temporal_client, engine, queue, timedelta(days=3))
        assert everyone.get("unchanged", 0) >= 1
    finally:
        await drop_every_tenants_schedules(temporal_client, engine)


async def test_the_schedule_command_keeps_the_tenant_s_retrain_and_drift_schedules(tmp_path, temporal_client,
                                                                                   database_url, settings, engine):
    """A tenant made after the worker started gets its drift check from `dealflow scoring schedule` too, not only
    at the next worker start: the same ensure_drift_schedule, at DEALFLOW_DRIFT_CHECK_EVERY_HOURS."""
    import asyncio

    from workflows.retrain import drift_schedule_id

    tenant = _book(engine, n=0)
    env = _env(tmp_path, DEALFLOW_DATABASE_URL=database_url, DEALFLOW_TEMPORAL_ADDRESS=settings.temporal_address,
               DEALFLOW_TEMPORAL_TASK_QUEUE=settings.temporal_task_queue, DEALFLOW_DRIFT_CHECK_EVERY_HOURS="12",
               COLUMNS="200")

    async def schedule(*args: str, **extra: str) -> list[str]:
        out = await asyncio.to_thread(subprocess.run, [*DEALFLOW, "scoring", "schedule", "--tenant", tenant, *args],
                                      cwd=tmp_path, env={**env, **extra}, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    assert await schedule() == [f"✓ {retrain_schedule_id(tenant)}: every 7 days (created)",
                                f"✓ {drift_schedule_id(tenant)}: every 12 hours (created)"]
    drift = temporal_client.get_schedule_handle(drift_schedule_id(tenant))
    described = await drift.describe()
    assert described.schedule.action.workflow == "ScoringDriftWorkflow"
    assert described.schedule.spec.intervals[0].every == timedelta(hours=12)
    assert await schedule() == [f"✓ {retrain_schedule_id(tenant)}: every 7 days (unchanged)",
                                f"✓ {drift_schedule_id(tenant)}: every 12 hours (unchanged)"]
    assert await schedule("--every-days", "3", DEALFLOW_DRIFT_CHECK_EVERY_HOURS="6") == [
        f"✓ {retrain_schedule_id(tenant)}: every 3 days (updated)",
        f"✓ {drift_schedule_id(tenant)}: every 6 hours (updated)"]
    assert (await drift.describe()).schedule.spec.intervals[0].every == timedelta(hours=6)
    # the deal model's Schedule beside it; the tenant's one drift check stays as it is
    assert await schedule("--model", "deal", DEALFLOW_DRIFT_CHECK_EVERY_HOURS="6") == [
        f"✓ {retrain_schedule_id(tenant, 'deal')}: every 7 days (created)",
        f"✓ {drift_schedule_id(tenant)}: every 6 hours (unchanged)"]
    for handle in (drift, temporal_client.get_schedule_handle(retrain_schedule_id(tenant)),
                   temporal_client.get_schedule_handle(retrain_schedule_id(tenant, "deal"))):
        await handle.delete()
