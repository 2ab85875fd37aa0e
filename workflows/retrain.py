"""ScoringRetrainWorkflow: one retraining of a tenant's lead model (`scoring-retrain-{tenant}-lead`), started by
its Temporal Schedule (weekly by default) or by `dealflow scoring retrain`. The activity trains a candidate on
the closed leads up to a cut-off, scores it and the active model on the leads closed after, registers it and
promotes it only when it is better by the margin (services/retraining.py); the workflow returns what happened,
which the Temporal UI shows as its result."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy


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
