"""The hand-written equivalent of bench/definitions.py's definition (same activities, same order)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from models.payloads import MessageRequest, MessageResult, ScoreInput, ScoreResult, TaskInput

RETRY = RetryPolicy(initial_interval=timedelta(seconds=30), backoff_coefficient=2.0, maximum_attempts=5)


@workflow.defn
class HandWrittenNurture:
    @workflow.run
    async def run(self, lead_id: str) -> str:
        await workflow.execute_activity("load_lead", {"tenant_id": "bench", "lead_id": lead_id}, result_type=dict,
                                        start_to_close_timeout=timedelta(seconds=30))
        score = await workflow.execute_activity(
            "score_lead", ScoreInput(tenant_id="bench", lead_id=lead_id), result_type=ScoreResult,
            start_to_close_timeout=timedelta(minutes=2), retry_policy=RETRY)
        for channel, template in (("email", "welcome"), ("sms", "first_touch")):
            await workflow.execute_activity(
                "send_message", MessageRequest(tenant_id="bench", lead_id=lead_id, channel=channel, template=template,
                                               idempotency_key=f"{lead_id}:hand:{template}", respect_send_window=False),
                result_type=MessageResult, start_to_close_timeout=timedelta(seconds=30), retry_policy=RETRY)
        if score.probability > 0.7:
            await workflow.execute_activity(
                "create_task", TaskInput(tenant_id="bench", lead_id=lead_id, title="Call now",
                                         idempotency_key=f"{lead_id}:hand:call"),
                result_type=str, start_to_close_timeout=timedelta(minutes=2), retry_policy=RETRY)
        return "done"
