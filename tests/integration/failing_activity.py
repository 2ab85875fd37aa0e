"""A workflow whose activity fails once, for tests/integration/test_dashboard_metrics.py: the Temporal SDK counts
activity failures only once one has happened. Only temporalio imports (it runs in the workflow sandbox)."""

from datetime import timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError


@activity.defn
def always_fails() -> None:
    raise RuntimeError("this activity always fails")


@workflow.defn
class FailsOnceWorkflow:
    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_activity(always_fails, start_to_close_timeout=timedelta(seconds=10),
                                            retry_policy=RetryPolicy(maximum_attempts=1))
        except ActivityError:
            return "failed as expected"
        return "did not fail"
