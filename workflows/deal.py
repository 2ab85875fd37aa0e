"""DealWorkflow: an opportunity's pipeline stage machine. Staff move stages with an update whose validator
refuses illegal moves with the reason (the API answers 409 with it)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from core import search_attributes as sa
    from models.opportunity import CLOSED, stage_change_problem
    from models.payloads import StageMove

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


class DealInput(BaseModel):
    tenant_id: str
    opportunity_id: str
    pipeline: str = "acquisition"
    stage: str = "new"


class DealState(BaseModel):
    opportunity_id: str
    pipeline: str
    stage: str
    history: list[str]
    closed: bool


@workflow.defn
class DealWorkflow:
    @workflow.init
    def __init__(self, deal: DealInput) -> None:
        self._deal = deal
        self._stage = deal.stage
        self._history = [deal.stage]

    @workflow.run
    async def run(self, deal: DealInput) -> DealState:
        workflow.upsert_search_attributes([sa.OPPORTUNITY_ID.value_set(deal.opportunity_id),
                                           sa.DEAL_STAGE.value_set(self._stage)])
        await workflow.wait_condition(lambda: self._stage == "closed_won")  # a lost deal can be revived
        await workflow.wait_condition(workflow.all_handlers_finished)
        return self.state()

    @workflow.update
    async def advance_stage(self, change: StageMove) -> DealState:
        previous = self._stage
        self._stage = change.stage  # claim it before awaiting, so a concurrent update sees the new stage
        await workflow.execute_activity(
            "record_stage_change",
            {"tenant_id": self._deal.tenant_id, "opportunity_id": self._deal.opportunity_id,
             "from_stage": previous, "to_stage": change.stage, "actor": change.actor, "reason": change.reason,
             "key": f"{workflow.info().workflow_id}:{workflow.current_update_info().id}"},
            start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
        self._history.append(change.stage)
        workflow.upsert_search_attributes([sa.DEAL_STAGE.value_set(change.stage)])
        return self.state()

    @advance_stage.validator
    def _check_stage(self, change: StageMove) -> None:
        problem = stage_change_problem(self._deal.pipeline, self._stage, change.stage)
        if problem:
            raise ValueError(problem)

    @workflow.query
    def state(self) -> DealState:
        return DealState(opportunity_id=self._deal.opportunity_id, pipeline=self._deal.pipeline, stage=self._stage,
                         history=list(self._history), closed=self._stage in CLOSED)
