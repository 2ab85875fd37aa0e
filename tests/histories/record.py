"""Record workflow histories for the replay tests:
`python -m tests.histories.record [lifecycle|first-touch|definition]`.

Runs the workflows on the time-skipping test server with the recording activities of the workflow tests
and writes each history as JSON next to this file. Record a new file for a new behaviour worth pinning;
never delete old ones while workflows that started on that code may still be running: they are what new
code must still replay (guard changes with workflow.patched).
"""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import timedelta
from pathlib import Path

from temporalio import activity
from temporalio.worker import Worker

from core.devserver import time_skipping_environment
from models.payloads import LeadEvent
from tests.integration.test_lead_workflow import WORKFLOWS, Recorded, _start

HERE = Path(__file__).resolve().parent


def _write(name: str, history) -> Path:
    path = HERE / f"{name}.json"
    path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return path


async def record_lifecycle() -> list[Path]:
    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=WORKFLOWS,
                          activities=Recorded(score=0.82).activities()):
            handle, lead_id = await _start(env.client, "history", "ld_history0002")
            await env.sleep(timedelta(days=2, hours=1))  # first touch, 2-day wait, nudge
            await handle.signal("note", LeadEvent(event_id="n1", note="left voicemail"))
            await handle.signal("replied", LeadEvent(event_id="r1", data={"text": "call me"}))
            await handle.signal("close", LeadEvent(event_id="c1", note="sold elsewhere"))
            await handle.result()
            lead = await handle.fetch_history()
            enrichment = await env.client.get_workflow_handle(f"enrich-acme-{lead_id}").fetch_history()
    finally:
        await env.shutdown()
    return [_write("lead_workflow_v2_lifecycle", lead), _write("enrichment_workflow_v1", enrichment)]


async def record_first_touch() -> list[Path]:
    """LeadWorkflow since "first-touch-by-definition": scoring writes lead.scored, no messages of its own."""
    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=WORKFLOWS,
                          activities=Recorded(score=0.82).activities()):
            handle, _ = await _start(env.client, "history", "ld_history0003")
            await env.sleep(timedelta(days=2, hours=1))
            await handle.signal("note", LeadEvent(event_id="n1", note="left voicemail"))
            await handle.signal("replied", LeadEvent(event_id="r1", data={"text": "call me"}))
            await env.sleep(timedelta(minutes=1))
            await handle.signal("close", LeadEvent(event_id="c1", note="sold elsewhere"))
            await handle.result()
            lead = await handle.fetch_history()
    finally:
        await env.shutdown()
    return [_write("lead_workflow_v3_first_touch_by_definition", lead)]


async def record_definition() -> list[Path]:
    from tests.integration.test_definitions import NURTURE, _start as start_definition

    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=WORKFLOWS,
                          activities=Recorded(score=0.82).activities()):
            handle, _ = await start_definition(env.client, "history", NURTURE)
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    # v1 (kept) wrote set_status straight to the row; v2 goes through LeadWorkflow (the patch marker is in it).
    return [_write("definition_workflow_v2_status_through_lead", history)]


async def record_deal(name: str = "deal_workflow_v3_current_details") -> list[Path]:
    """DealWorkflow: opened, a stage SLA breached twice (reminder, escalation), reassigned, moved on (the clock
    re-armed), won. Its activities only record. `python -m tests.histories.record deal` (v1 was recorded the same
    way from the code before stage SLAs, commit b477f16; v2 before "deal-current-details")."""
    from temporalio import activity

    from models.payloads import StageMove
    from workflows.deal import DealInput, DealOwner, DealWorkflow

    @activity.defn(name="record_stage_change")
    async def record_stage_change(change: dict) -> None:
        return None

    @activity.defn(name="deal_sla_breached")
    async def deal_sla_breached(breach: dict) -> str:
        return f"breach {breach['breach']}"

    from activities.deal import DealActivities

    @activity.defn(name="deal_stage_sla")
    async def stage_sla(pipeline: str, stage: str):
        return DealActivities(None).deal_stage_sla(pipeline, stage)  # pure: reads pipelines.yaml

    @activity.defn(name="deal_stage_facts")
    async def stage_facts(tenant_id: str, opportunity_id: str, pipeline: str, stage: str):
        found = DealActivities(None).deal_stage_sla(pipeline, stage)
        found.owner = "Ana Ruiz <ana@example.com>"
        return found

    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=[DealWorkflow],
                          activities=[record_stage_change, deal_sla_breached, stage_sla, stage_facts]):
            handle = await env.client.start_workflow(
                DealWorkflow.run, DealInput(tenant_id="acme", opportunity_id="op_history0001"),
                id="deal-acme-op_history0001", task_queue="history")
            await env.sleep(timedelta(hours=2, minutes=5))  # new's SLA: reminded, then escalated
            await handle.signal(DealWorkflow.owner_changed, DealOwner(event_id="a1", owner="Ben <ben@example.com>"))
            for stage in ("contacted", "offer_made", "under_contract", "closed_won"):
                await handle.execute_update(DealWorkflow.advance_stage, StageMove(stage=stage, actor="user:history"))
                await env.sleep(timedelta(minutes=30))
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    return [_write(name, history)]


async def record_accreditation() -> list[Path]:
    """AccreditationWorkflow: a 90-day letter, reminded 30 and 7 days before, expired. Recording activities."""
    from datetime import UTC

    from temporalio import activity

    from workflows.accreditation import AccreditationInput, AccreditationWorkflow

    @activity.defn(name="remind_accreditation")
    async def remind_accreditation(accreditation_id: str, days: int) -> str:
        return f"reminded ({days} days left)"

    @activity.defn(name="expire_accreditation")
    async def expire_accreditation(accreditation_id: str, at: str) -> str:
        return "expired"

    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=[AccreditationWorkflow],
                          activities=[remind_accreditation, expire_accreditation]):
            now = await env.get_current_time()
            handle = await env.client.start_workflow(AccreditationWorkflow.run, AccreditationInput(
                tenant_id="acme", investor_id="iv_history01", accreditation_id="ac_history01",
                expires_at=now.astimezone(UTC) + timedelta(days=90)), id="accreditation-acme-ac_history01",
                task_queue="history")
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    return [_write("accreditation_workflow_v1", history)]


async def record_offering() -> list[Path]:
    """OfferingWorkflow: opened, three soft commits, three commitments (the third waitlisted), a withdrawal that
    promotes it, a funding, closed. Its activity only records."""
    from decimal import Decimal

    from temporalio import activity

    from workflows.offering import AllocationFacts, AllocationMove, OfferingInput, OfferingMove, OfferingWorkflow

    @activity.defn(name="record_offering_change")
    async def record_offering_change(change: dict) -> None:
        return None

    ok = AllocationFacts(subscription_signed=True)
    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=[OfferingWorkflow],
                          activities=[record_offering_change]):
            handle = await env.client.start_workflow(OfferingWorkflow.run, OfferingInput(
                tenant_id="acme", offering_id="of_history01", opportunity_id="op_history01",
                target_amount=Decimal("200000"), minimum_investment=Decimal("50000")),
                id="offering-acme-of_history01", task_queue="history")
            for status in ("open", "active"):
                await handle.execute_update(OfferingWorkflow.set_status, OfferingMove(status=status))
            for investor, amount in (("iv_a", "100000"), ("iv_b", "100000"), ("iv_c", "50000")):
                await handle.execute_update(OfferingWorkflow.allocate, AllocationMove(
                    investor_id=investor, action="soft_commit", amount=Decimal(amount), facts=ok))
            for investor in ("iv_a", "iv_b", "iv_c"):
                await handle.execute_update(OfferingWorkflow.allocate, AllocationMove(
                    investor_id=investor, action="commit", subscription_document_id="dc_1", facts=ok))
            await handle.execute_update(OfferingWorkflow.allocate, AllocationMove(investor_id="iv_b",
                                                                                  action="withdraw"))
            for investor in ("iv_a", "iv_c"):
                await handle.execute_update(OfferingWorkflow.allocate, AllocationMove(
                    investor_id=investor, action="fund", funded_amount=Decimal("50000"), funded_on="2026-12-01",
                    funding_method="wire"))
            await handle.execute_update(OfferingWorkflow.set_status, OfferingMove(status="closed"))
            await handle.result()
            history = await handle.fetch_history()
    finally:
        await env.shutdown()
    return [_write("offering_workflow_v1", history)]


async def _one_run(workflows: list, activities: list, run, argument, workflow_id: str):
    """The history of one run of `run(argument)` to its end, its activities recording."""
    env = await time_skipping_environment()
    try:
        async with Worker(env.client, task_queue="history", workflows=workflows, activities=activities):
            handle = await env.client.start_workflow(run, argument, id=workflow_id, task_queue="history")
            await handle.result()
            return await handle.fetch_history()
    finally:
        await env.shutdown()


@activity.defn(name="retrain_scoring_model")
async def _recorded_retrain(request: dict) -> dict:
    return {"tenant_id": request["tenant_id"], "version": None, "promoted": False, "reason": "recorded"}


async def record_retrain() -> list[Path]:
    """ScoringRetrainWorkflow (scheduled, lead model): one retrain activity; it only records here (the file was
    recorded with a version 2 promoted)."""
    from workflows.retrain import RetrainRequest, ScoringRetrainWorkflow

    history = await _one_run([ScoringRetrainWorkflow], [_recorded_retrain], ScoringRetrainWorkflow.run,
                             RetrainRequest(tenant_id="acme"), "scoring-retrain-acme-lead")
    return [_write("scoring_retrain_workflow_v1", history)]


async def record_drift() -> list[Path]:
    """ScoringDriftWorkflow: a significant drift report, then the lead model's retraining as a child. Recording
    activities."""
    from models.payloads import DriftCheckInput
    from workflows.retrain import ScoringDriftWorkflow, ScoringRetrainWorkflow

    @activity.defn(name="check_scoring_drift")
    async def check_scoring_drift(request: dict) -> dict:
        return {"tenant_id": request["tenant_id"], "checked": True, "reason": "drifted over 0.25: source",
                "model_version": 1, "significant": True, "drifted": ["source"], "max_psi": 1.2, "retrain": True}

    history = await _one_run([ScoringDriftWorkflow, ScoringRetrainWorkflow],
                             [check_scoring_drift, _recorded_retrain], ScoringDriftWorkflow.run,
                             DriftCheckInput(tenant_id="acme"), "scoring-drift-acme")
    return [_write("scoring_drift_workflow_v1", history)]


if __name__ == "__main__":
    which = sys.argv[1:] or ["first-touch"]
    recorders = {"lifecycle": record_lifecycle, "first-touch": record_first_touch, "definition": record_definition,
                 "deal": record_deal, "accreditation": record_accreditation,
                 "offering": record_offering, "retrain": record_retrain,
                 "drift": record_drift}
    for name in which:
        for path in asyncio.run(recorders[name]()):
            print(path)
