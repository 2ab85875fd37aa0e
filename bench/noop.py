"""The baseline: a workflow that runs one no-op activity (what Temporal alone costs here)."""

from datetime import timedelta

from temporalio import activity, workflow


@activity.defn
def noop(value: str) -> str:
    return value


@workflow.defn
class NoopWorkflow:
    @workflow.run
    async def run(self, value: str) -> str:
        return await workflow.execute_activity(noop, value, start_to_close_timeout=timedelta(seconds=15))
