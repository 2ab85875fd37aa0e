"""The Temporal Schedules Dealflow keeps (visible and editable in the Temporal UI): the hourly one behind
`schedule.daily` triggers, and one per tenant and model (`lead`, `deal`) that retrains it (weekly by default)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import (
    Client, Schedule, ScheduleActionStartWorkflow, ScheduleAlreadyRunningError, ScheduleIntervalSpec, ScheduleSpec,
    ScheduleUpdate, ScheduleUpdateInput,
)

from models.tenant import Tenant
from workflows.daily import SCHEDULE_ID, DailyTriggersWorkflow
from workflows.retrain import RETRAINED, RetrainRequest, ScoringRetrainWorkflow, retrain_schedule_id


async def ensure_daily_schedule(client: Client, task_queue: str) -> None:
    """The hourly Temporal Schedule behind `schedule.daily` triggers (created once)."""
    try:
        await client.create_schedule(SCHEDULE_ID, Schedule(
            action=ScheduleActionStartWorkflow(DailyTriggersWorkflow.run, id=SCHEDULE_ID, task_queue=task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])))
    except ScheduleAlreadyRunningError:
        pass


def _retrain_schedule(tenant_id: str, task_queue: str, every: timedelta, model: str) -> Schedule:
    return Schedule(action=ScheduleActionStartWorkflow(
        ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant_id, model=model),
        id=retrain_schedule_id(tenant_id, model), task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]))


async def ensure_retrain_schedule(client: Client, tenant_id: str, task_queue: str, every: timedelta,
                                  model: str = "lead") -> str:
    """The tenant's retraining Schedule of `model`, created, or updated when its interval is not `every`:
    'created', 'updated' or 'unchanged'."""
    schedule_id = retrain_schedule_id(tenant_id, model)
    try:
        await client.create_schedule(schedule_id, _retrain_schedule(tenant_id, task_queue, every, model))
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    described = await handle.describe()
    intervals = described.schedule.spec.intervals
    if len(intervals) == 1 and intervals[0].every == every:
        return "unchanged"

    def change(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=_retrain_schedule(tenant_id, task_queue, every, model))

    await handle.update(change)
    return "updated"


async def ensure_retrain_schedules(client: Client, engine: Engine, task_queue: str, every: timedelta) -> dict:
    """One retraining Schedule per tenant and model (the worker's start; a tenant made later gets its own at the
    next one, or from `dealflow scoring schedule`)."""
    with Session(engine) as session:
        tenants = session.exec(select(Tenant.id)).all()
    outcome: dict[str, int] = {}
    for tenant_id in tenants:
        for model in RETRAINED:
            done = await ensure_retrain_schedule(client, tenant_id, task_queue, every, model)
            outcome[done] = outcome.get(done, 0) + 1
    return outcome
