"""DealWorkflow: an opportunity moving through its pipeline (definitions/pipelines.yaml). Staff and definitions move
stages with an update whose validator refuses an illegal move or an unmet entry rule with every reason (the API
answers 409 with them). Each open stage may have an SLA: a first breach creates a reminder task for the assignee
and notifies them, a second escalates to the managers of their team; moving the deal re-arms the clock (one timer
at a time, never stacked). closed_won ends the workflow; closed_lost stops its SLAs (a lost deal can be revived).
The Temporal UI's current details say the stage, the owner and when the SLA falls due (or that it was missed)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from pydantic import BaseModel
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from core import search_attributes as sa
    from definitions.pipelines import entry_problems, is_closed
    from models.payloads import StageMove

DB_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))
ESCALATE_AFTER = 2  # breaches: the first reminds the assignee, the second tells their managers


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
    sla_breaches: int = 0  # of the current stage
    sla_due_at: str | None = None  # when the current stage's next breach falls due (ISO), if it has an SLA


class StageSla(BaseModel):
    within: timedelta | None = None  # None: the stage has no SLA (or is closed)
    expect: str = ""
    owner: str | None = None  # the deal's owner at the stage's entry ("Name <email>"); deal_stage_facts only


class DealOwner(BaseModel):
    """The `owner_changed` signal (services.assignment.assign_deal, on the event path): who owns the deal now."""

    event_id: str
    owner: str | None = None


class SlaBreach(BaseModel):
    tenant_id: str
    opportunity_id: str
    stage: str
    breach: int  # 1: remind the assignee; 2: escalate to the managers
    expect: str
    overdue_since: str  # ISO time the stage's SLA fell due
    key: str  # idempotency: workflow id, the stage's entry number, the breach number


@workflow.defn
class DealWorkflow:
    @workflow.init
    def __init__(self, deal: DealInput) -> None:
        self._deal = deal
        self._stage = deal.stage
        self._history = [deal.stage]
        self._moves = 0  # counts accepted moves: the SLA clock of a stage is the entry it was armed for
        self._breaches = 0
        self._due_at: str | None = None
        self._owner: str | None = None
        self._expect = ""
        self._writing = asyncio.Lock()  # moves are written in the order they were accepted (see advance_stage)

    @workflow.run
    async def run(self, deal: DealInput) -> DealState:
        workflow.upsert_search_attributes([sa.OPPORTUNITY_ID.value_set(deal.opportunity_id),
                                           sa.DEAL_STAGE.value_set(self._stage)])
        self._show()
        if workflow.patched("deal-stage-slas"):
            while self._stage != "closed_won":
                await self._watch_stage(self._moves)
        else:  # a run started before SLAs existed keeps the command sequence its history recorded
            await workflow.wait_condition(lambda: self._stage == "closed_won")  # a lost deal can be revived
        await workflow.wait_condition(workflow.all_handlers_finished)
        self._show()
        return self.state()

    def _show(self) -> None:
        """The Temporal UI's current details (no command, no history event: replay is unaffected)."""
        where = f"**Stage** {self._stage} ({self._deal.pipeline})"
        if is_closed(self._deal.pipeline, self._stage):
            sla = "closed: no SLA" + ("" if self._stage == "closed_won" else " (a lost deal can be revived)")
        elif self._due_at is not None:
            sla = f"{self._expect or 'SLA'} due {self._due_at[:16].replace('T', ' ')} UTC" + (
                f" (missed {self._breaches}×: the owner was reminded)" if self._breaches else "")
        elif self._breaches >= ESCALATE_AFTER:
            sla = f"{self._expect} missed twice: escalated to the managers"
        else:
            sla = "no SLA in this stage"
        workflow.set_current_details(f"{where} · **Owner** {self._owner or 'nobody'} · **SLA** {sla}")

    async def _watch_stage(self, entry: int) -> None:
        """Until the deal moves (or wins): the stage's SLA, breach by breach."""
        moved = lambda: self._moves != entry or self._stage == "closed_won"  # noqa: E731
        self._breaches, self._due_at = 0, None
        # The stage's SLA as pipelines.yaml says at entry, recorded in the history (a local activity): editing the
        # file changes the next entries' clocks, never a running timer's replay.
        if workflow.patched("deal-current-details"):  # the owner too, for the current details
            found = await workflow.execute_local_activity(
                "deal_stage_facts", args=[self._deal.tenant_id, self._deal.opportunity_id, self._deal.pipeline,
                                          self._stage], result_type=StageSla,
                start_to_close_timeout=timedelta(seconds=10), retry_policy=DB_RETRY)
            self._owner = found.owner
        else:
            found = await workflow.execute_local_activity(
                "deal_stage_sla", args=[self._deal.pipeline, self._stage], result_type=StageSla,
                start_to_close_timeout=timedelta(seconds=10))
        self._expect = found.expect
        if found.within is None:
            self._show()
            await workflow.wait_condition(moved)
            return
        sla = found
        due = workflow.now() + sla.within
        while self._breaches < ESCALATE_AFTER:
            self._due_at = due.isoformat()
            self._show()
            try:
                await workflow.wait_condition(moved, timeout=max(due - workflow.now(), timedelta(seconds=1)))
                return
            except asyncio.TimeoutError:
                pass
            self._breaches += 1
            await workflow.execute_activity(
                "deal_sla_breached",
                SlaBreach(tenant_id=self._deal.tenant_id, opportunity_id=self._deal.opportunity_id,
                          stage=self._stage, breach=self._breaches, expect=sla.expect,
                          overdue_since=(due - sla.within * (self._breaches - 1)).isoformat(),
                          key=f"{workflow.info().workflow_id}:{entry}:{self._breaches}"),
                start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
            due = due + sla.within
        self._due_at = None
        self._show()
        await workflow.wait_condition(moved)  # escalated: nothing more until the deal moves

    @workflow.update
    async def advance_stage(self, change: StageMove) -> DealState:
        previous = self._stage
        self._stage = change.stage  # claim it before awaiting, so a concurrent update sees the new stage
        self._moves += 1
        record = {"tenant_id": self._deal.tenant_id, "opportunity_id": self._deal.opportunity_id,
                  "from_stage": previous, "to_stage": change.stage, "actor": change.actor, "reason": change.reason,
                  "key": f"{workflow.info().workflow_id}:{workflow.current_update_info().id}"}
        if workflow.patched("deal-moves-written-in-order"):
            # Two moves in flight (lost then revived) are written, and their events emitted, in the order accepted.
            async with self._writing:
                await workflow.execute_activity("record_stage_change", record,
                                                start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
        else:
            await workflow.execute_activity("record_stage_change", record,
                                            start_to_close_timeout=timedelta(seconds=30), retry_policy=DB_RETRY)
        self._history.append(change.stage)
        workflow.upsert_search_attributes([sa.DEAL_STAGE.value_set(change.stage)])
        return self.state()  # (the current details follow once the run loop has the new stage's SLA)

    @advance_stage.validator
    def _check_stage(self, change: StageMove) -> None:
        problems = entry_problems(self._deal.pipeline, self._stage, change.stage, change.facts, change.reason)
        if problems:  # every unmet rule, each a detail (the API lists them), joined in the message
            raise ApplicationError("; ".join(problems), *problems, type="StageRefused", non_retryable=True)

    @workflow.signal
    def owner_changed(self, owner: DealOwner) -> None:
        self._owner = owner.owner
        self._show()

    @workflow.query
    def state(self) -> DealState:
        return DealState(opportunity_id=self._deal.opportunity_id, pipeline=self._deal.pipeline, stage=self._stage,
                         history=list(self._history), closed=is_closed(self._deal.pipeline, self._stage),
                         sla_breaches=self._breaches, sla_due_at=self._due_at)
