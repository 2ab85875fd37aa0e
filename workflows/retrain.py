"""ScoringRetrainWorkflow: one retraining of one of a tenant's models — the lead model
(`scoring-retrain-{tenant}-lead`) or its deal models (`scoring-retrain-{tenant}-deal`: expected return and time to
close) — started by its Temporal Schedule (weekly by default) or by `dealflow scoring retrain [--model deal]`. The
activity trains a candidate on the data up to a cut-off, scores it and the active model on what closed after,
registers it and promotes it only when it is better by the margin (services/retraining.py,
services/deal_retraining.py); the workflow returns what happened, which the Temporal UI shows as its result."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy


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
