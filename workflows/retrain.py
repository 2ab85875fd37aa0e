"""ScoringRetrainWorkflow: one retraining of one of a tenant's models — the lead model
(`scoring-retrain-{tenant}-lead`) or its deal models (`scoring-retrain-{tenant}-deal`: expected return and time to
close) — started by its Temporal Schedule (weekly by default) or by `dealflow scoring retrain [--model deal]`. The
activity trains a candidate on the data up to a cut-off, scores it and the active model on what closed after,
registers it and promotes it only when it is better by the margin (services/retraining.py,
services/deal_retraining.py); the workflow returns what happened, which the Temporal UI shows as its result.

ScoringDriftWorkflow: a tenant's drift check on a Schedule of its own (daily by default), which may start the lead
model's retraining."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():  # models.payloads reads ruamel (the pipelines), not sandbox-safe
    from models.payloads import DriftCheck, DriftCheckInput


RETRAINED = ("lead", "deal")  # the models a Schedule retrains (RetrainRequest.model)


def retrain_schedule_id(tenant_id: str, model: str = "lead") -> str:
    return f"scoring-retrain-{tenant_id}-{model}"


class RetrainRequest(BaseModel):
    tenant_id: str
    model: str = "lead"
    by: str = "schedule"


@workflow.defn
class ScoringRetrainWorkflow:
    @workflow.run
    async def run(self, request: RetrainRequest) -> dict:
        return await workflow.execute_activity(
            "retrain_scoring_model", request, result_type=dict, start_to_close_timeout=timedelta(minutes=30),
            heartbeat_timeout=None, retry_policy=RetryPolicy(maximum_attempts=3, non_retryable_error_types=["Invalid"]),
            summary=f"retrain {request.tenant_id}'s {request.model} model")


def drift_schedule_id(tenant_id: str) -> str:
    return f"scoring-drift-{tenant_id}"


@workflow.defn
class ScoringDriftWorkflow:
    """A tenant's drift check (`scoring-drift-{tenant}`, daily by default): the drift report, computed by the
    activity in the worker (which sets the drift gauges the worker serves, so the ModelDrift alert needs no one to
    open the API); when it is significant and retraining on drift is on, the lead model's ScoringRetrainWorkflow as
    a child (by "drift"), whose promotion rule decides as on its weekly run."""

    @workflow.run
    async def run(self, request: DriftCheckInput) -> dict:
        check = await workflow.execute_activity(
            "check_scoring_drift", request, result_type=DriftCheck, start_to_close_timeout=timedelta(minutes=15),
            retry_policy=RetryPolicy(maximum_attempts=3), summary=f"drift report of {request.tenant_id}'s lead model")
        result: dict = {"drift": check.model_dump()}
        if check.retrain:
            result["retrain"] = await workflow.execute_child_workflow(
                ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=request.tenant_id, model="lead", by="drift"),
                id=f"{retrain_schedule_id(request.tenant_id)}-drift-{workflow.now():%Y%m%dT%H%M%SZ}", result_type=dict)
        return result
