"""The activity behind DailyTriggersWorkflow: enroll leads in definitions triggered by `schedule.daily`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import Engine
from sqlmodel import Session, select
from temporalio import activity
from temporalio.client import Client

from definitions.enrollment import on_schedule
from models.tenant import Tenant


class ScheduleActivities:
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
                if runs:
                    started[tenant.id] = len(runs)
        return {"tenants": started}
