"""DailyTriggersWorkflow: started every hour by a Temporal Schedule; fires `schedule.daily` for each tenant
whose local time is 09:00-09:59, so daily definitions run at nine in the morning in the tenant's zone."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

SCHEDULE_ID = "dealflow-daily-triggers"


@workflow.defn
class DailyTriggersWorkflow:
    @workflow.run
    async def run(self) -> dict:
        return await workflow.execute_activity(
            "fire_daily_triggers", workflow.now(), result_type=dict, start_to_close_timeout=timedelta(minutes=10),
            retry_policy=RetryPolicy(maximum_attempts=3), summary="schedule.daily for tenants at 09:00 local")
