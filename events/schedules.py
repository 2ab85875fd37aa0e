"""The Temporal Schedules Dealflow keeps (visible and editable in the Temporal UI): the hourly one behind
`schedule.daily` triggers, one per tenant and model (`lead`, `deal`) that retrains it (weekly by default), and one
per tenant that checks its lead model's drift (daily by default)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio.client import (
    Client, Schedule, ScheduleActionStartWorkflow, ScheduleAlreadyRunningError, ScheduleIntervalSpec, ScheduleSpec,
    ScheduleUpdate, ScheduleUpdateInput,
)

from models.payloads import DriftCheckInput
from models.tenant import Tenant
from workflows.daily import SCHEDULE_ID, DailyTriggersWorkflow
from workflows.retrain import (
    RETRAINED, RetrainRequest, ScoringDriftWorkflow, ScoringRetrainWorkflow, drift_schedule_id, retrain_schedule_id,
)


async def ensure_daily_schedule(client: Client, task_queue: str) -> None:
    """The hourly Temporal Schedule behind `schedule.daily` triggers (created once)."""
    try:
        await client.create_schedule(SCHEDULE_ID, Schedule(
            action=ScheduleActionStartWorkflow(DailyTriggersWorkflow.run, id=SCHEDULE_ID, task_queue=task_queue),
            spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(hours=1))])))
    except ScheduleAlreadyRunningError:
        pass


def _every(every: timedelta) -> ScheduleSpec:
    return ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)])


def _retrain_schedule(tenant_id: str, task_queue: str, every: timedelta, model: str) -> Schedule:
    return Schedule(action=ScheduleActionStartWorkflow(
        ScoringRetrainWorkflow.run, RetrainRequest(tenant_id=tenant_id, model=model),
        id=retrain_schedule_id(tenant_id, model), task_queue=task_queue), spec=_every(every))


def _drift_schedule(tenant_id: str, task_queue: str, every: timedelta) -> Schedule:
    return Schedule(action=ScheduleActionStartWorkflow(
        ScoringDriftWorkflow.run, DriftCheckInput(tenant_id=tenant_id), id=drift_schedule_id(tenant_id),
        task_queue=task_queue), spec=_every(every))


async def _ensure(client: Client, schedule_id: str, schedule: Schedule, every: timedelta) -> str:
    """The Schedule created, or updated when its interval is not `every`: 'created', 'updated' or 'unchanged'."""
    try:
        await client.create_schedule(schedule_id, schedule)
        return "created"
    except ScheduleAlreadyRunningError:
        pass
    handle = client.get_schedule_handle(schedule_id)
    described = await handle.describe()
    intervals = described.schedule.spec.intervals
    if len(intervals) == 1 and intervals[0].every == every:
        return "unchanged"

    def change(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    await handle.update(change)
    return "updated"


async def ensure_retrain_schedule(client: Client, tenant_id: str, task_queue: str, every: timedelta,
                                  model: str = "lead") -> str:
    """The tenant's retraining Schedule of `model` (_ensure's answer)."""
    return await _ensure(client, retrain_schedule_id(tenant_id, model),
                         _retrain_schedule(tenant_id, task_queue, every, model), every)


async def ensure_drift_schedule(client: Client, tenant_id: str, task_queue: str, every: timedelta) -> str:
    """The tenant's drift-check Schedule (ScoringDriftWorkflow; _ensure's answer)."""
    return await _ensure(client, drift_schedule_id(tenant_id), _drift_schedule(tenant_id, task_queue, every), every)


async def ensure_retrain_schedules(client: Client, engine: Engine, task_queue: str, every: timedelta,
                                   drift_every: timedelta | None = None) -> dict:
    """One retraining Schedule per tenant and model, and (given `drift_every`) one drift check per tenant (the
    worker's start; a tenant made later gets its own at the next one, or from `dealflow scoring schedule`)."""
    with Session(engine) as session:
        tenants = session.exec(select(Tenant.id)).all()
    outcome: dict[str, int] = {}
    for tenant_id in tenants:
        done = [await ensure_retrain_schedule(client, tenant_id, task_queue, every, model) for model in RETRAINED]
        if drift_every is not None:
            done.append(await ensure_drift_schedule(client, tenant_id, task_queue, drift_every))
        for each in done:
            outcome[each] = outcome.get(each, 0) + 1
    return outcome
