"""Activities that drive other workflows on behalf of definitions (a workflow cannot start or update
another workflow outside its own children): the daily trigger, `set_status` (LeadWorkflow's validated
update), `set_stage` (DealWorkflow's) and `run_definition` (another published definition for the same
subject). Updates carry the step's idempotency key as their update id: a retried attempt gets the first
attempt's result instead of changing anything twice."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.lead import LeadActivities
from activities.rows import owned
from events.enrollment import on_schedule, run_definition
from models.lead import Lead, status_change_problem
from models.opportunity import Opportunity
from definitions.pipelines import DealFacts
from services.deals import deal_facts
from models.payloads import (
    DealStageInput, LeadState, LeadStatusInput, StageMove, StartDefinitionInput, StatusChange,
)
from models.tenant import Tenant
from workflows.deal import DealState, DealWorkflow
from workflows.lead import WORKFLOW_CLOSED, LeadWorkflow


class EnrollmentActivities:
    def __init__(self, engine: Engine, client: Client, task_queue: str, loop: asyncio.AbstractEventLoop) -> None:
        self._engine, self._client, self._queue, self._loop = engine, client, task_queue, loop

    def _call(self, function, *args):
        """Run a Temporal call on the worker's event loop from this activity thread."""
        return asyncio.run_coroutine_threadsafe(function(*args), self._loop).result(timeout=60)

    @activity.defn
    def fire_daily_triggers(self, now: datetime) -> dict:
        started: dict[str, int] = {}
        with Session(self._engine) as session:
            tenants = session.exec(select(Tenant)).all()
            for tenant in tenants:
                if now.astimezone(ZoneInfo(tenant.timezone)).hour != 9:
                    continue
                event_id = f"schedule.daily:{now.astimezone(ZoneInfo(tenant.timezone)).date()}"
                runs = on_schedule(session, self._client, self._queue, tenant.id, event_id, self._call)
                session.commit()
                if runs:
                    started[tenant.id] = len(runs)
        return {"tenants": started}

    def _lead_status(self, change: LeadStatusInput) -> tuple[str | None, str]:
        with Session(self._engine) as session:
            lead = owned(session, Lead, change.lead_id, change.tenant_id, "lead")
            return lead.workflow_id, lead.status

    # Async: waiting for another workflow's update holds no thread of the activity executor, so many definitions
    # setting statuses at once cannot starve the activities those updates run (set_lead_status) of threads.
    @activity.defn
    async def change_lead_status(self, change: LeadStatusInput) -> str:
        """Through LeadWorkflow's update, so the lead's own workflow knows (a definition marking a lead dead
        stops its cadence too) and its validator decides; when the lead has no running workflow, the same rule
        is checked here before the same write. Setting the status the lead already has does nothing."""
        workflow_id, current = await asyncio.to_thread(self._lead_status, change)
        if current == change.status:
            return current
        if workflow_id:
            try:
                state: LeadState = await self._update(workflow_id, LeadWorkflow.set_status,
                                                      StatusChange(status=change.status, reason=change.reason,
                                                                   actor=change.actor), change.idempotency_key)
                return state.status
            except WorkflowUpdateFailedError as exc:
                reason = getattr(exc.cause, "message", None) or str(exc.cause)
                if reason != WORKFLOW_CLOSED:
                    raise ApplicationError(f"status change refused: {reason}", type="StatusRefused",
                                           non_retryable=True) from None
            except RPCError as exc:
                if exc.status != RPCStatusCode.NOT_FOUND:
                    raise
        problem = status_change_problem(current, change.status)
        if problem:
            raise ApplicationError(f"status change refused: {problem}", type="StatusRefused", non_retryable=True)
        await asyncio.to_thread(LeadActivities(self._engine).set_lead_status, change)
        return change.status

    def _deal_workflow(self, move: DealStageInput) -> tuple[str | None, DealFacts]:
        with Session(self._engine) as session:
            deal = owned(session, Opportunity, move.opportunity_id, move.tenant_id, "deal")
            return deal.workflow_id, deal_facts(session, deal)

    @activity.defn
    async def move_deal_stage(self, move: DealStageInput) -> str:
        """Through DealWorkflow's update (its validator may refuse: final, with the reason). The update id is
        the step's idempotency key, so a retried attempt gets the first attempt's result, not a second move.
        DealWorkflow's own activity records the move and its deal.stage_changed event."""
        workflow_id, facts = await asyncio.to_thread(self._deal_workflow, move)
        if not workflow_id:
            raise ApplicationError(f"deal {move.opportunity_id} has no workflow", type="NotFound", non_retryable=True)
        try:
            state: DealState = await self._update(workflow_id, DealWorkflow.advance_stage,
                                                  StageMove(stage=move.stage, reason=move.reason, actor=move.actor,
                                                            facts=facts),
                                                  move.idempotency_key)
        except WorkflowUpdateFailedError as exc:
            reason = getattr(exc.cause, "message", None) or str(exc.cause)
            raise ApplicationError(f"stage change refused: {reason}", type="StageRefused",
                                   non_retryable=True) from None
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                raise ApplicationError(f"deal {move.opportunity_id}'s workflow is not running", type="NotFound",
                                       non_retryable=True) from None
            raise
        return state.stage

    async def _update(self, workflow_id: str, update, argument, update_id: str):
        return await self._client.get_workflow_handle(workflow_id).execute_update(
            update, argument, id=update_id, rpc_timeout=timedelta(seconds=50))

    @activity.defn
    def start_definition(self, request: StartDefinitionInput) -> str:
        """The workflow id derives from the step's idempotency key: a retry finds the run it started."""
        digest = hashlib.sha256(request.idempotency_key.encode()).hexdigest()[:12]
        workflow_id = f"def-{request.tenant_id}-{request.key}-{request.subject_id}-by-{digest}"
        with Session(self._engine) as session:
            try:
                return run_definition(session, self._client, self._queue, request.tenant_id, request.subject_type,
                                      request.subject_id, request.key, workflow_id, self._call)
            except LookupError as exc:
                raise ApplicationError(str(exc), type="NotFound", non_retryable=True) from None
