"""AccreditationWorkflow: one per accreditation record (`accreditation-{tenant}-{record}`). It sleeps until each
reminder (30 and 7 days before the end by default), has the investor's definitions and owner told, and marks the
record expired when its window ends. A record superseded by a newer one, or revoked, ends it at its next wake-up
(the activities check the row, so nothing is sent for a record no longer current)."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel, Field
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core import search_attributes as sa

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(minutes=5))


class AccreditationInput(BaseModel):
    tenant_id: str
    investor_id: str
    accreditation_id: str
    expires_at: datetime
    reminder_days: list[int] = Field(default_factory=lambda: [30, 7])


class AccreditationState(BaseModel):
    accreditation_id: str
    expires_at: datetime
    outcome: str  # waiting, reminded (N days left), expired, or why it ended early


@workflow.defn
class AccreditationWorkflow:
    @workflow.init
    def __init__(self, request: AccreditationInput) -> None:
        self._request = request
        self._outcome = "waiting"

    @workflow.run
    async def run(self, request: AccreditationInput) -> AccreditationState:
        workflow.upsert_search_attributes([sa.INVESTOR_ID.value_set(request.investor_id)])
        for days in sorted({d for d in request.reminder_days if d > 0}, reverse=True):
            at = request.expires_at - timedelta(days=days)
            if at <= workflow.now():
                continue  # recorded with less time left than this reminder
            await workflow.sleep(at - workflow.now(), summary=f"{days} days before the accreditation ends")
            self._outcome = await workflow.execute_activity(
                "remind_accreditation", args=[request.accreditation_id, days],
                start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
            if self._outcome.startswith("not reminded"):
                return self.state()  # superseded or revoked meanwhile
        if request.expires_at > workflow.now():
            await workflow.sleep(request.expires_at - workflow.now(), summary="the accreditation ends")
        self._outcome = await workflow.execute_activity(  # the workflow's clock says the window is over
            "expire_accreditation", args=[request.accreditation_id, workflow.now().isoformat()],
            start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
        return self.state()

    @workflow.query
    def state(self) -> AccreditationState:
        return AccreditationState(accreditation_id=self._request.accreditation_id,
                                  expires_at=self._request.expires_at, outcome=self._outcome)
