"""Staff activities: tasks (call now, a definition's create_task, reminders) and a definition's notify.

Each is one transaction in services/ (the task or notification, its audit row, the assignee's notification and
its email's event), idempotent on the step's key: a retried attempt finds what the first one wrote. A refusal
(a user named who is unknown or deactivated, a team with nobody in it) is final: the step fails with the reason
instead of retrying."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine
from sqlmodel import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from models.base import utcnow
from models.payloads import NotifyInput, TaskInput
from services.acting import ServiceError
from services.staff_notices import notify_people
from services.tasks import create_task


def _refused(exc: ServiceError) -> ApplicationError:
    return ApplicationError(str(exc), type="NotFound" if exc.status == 404 else "StaffRefused", non_retryable=True)


class StaffActivities:
    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    @activity.defn
    def create_task(self, request: TaskInput) -> str:
        """The task's id. No assignee given: the subject's owner, when it has one."""
        due_at = utcnow() + timedelta(hours=request.due_in_hours) if request.due_in_hours else None
        with Session(self._engine, expire_on_commit=False) as session:
            try:
                task = create_task(
                    session, tenant_id=request.tenant_id, title=request.title, description=request.description,
                    lead_id=request.lead_id, opportunity_id=request.opportunity_id, investor_id=request.investor_id,
                    due_at=due_at, assignee=request.assignee or "owner", team=request.team, actor=request.actor,
                    idempotency_key=request.idempotency_key)
            except ServiceError as exc:
                raise _refused(exc) from None
            return task.id

    @activity.defn
    def notify_staff(self, request: NotifyInput) -> list[str]:
        """The users notified."""
        with Session(self._engine) as session:
            try:
                return notify_people(session, tenant_id=request.tenant_id, to=request.to, title=request.title,
                                     message=request.message, team=request.team, email=request.email,
                                     key=request.idempotency_key, lead_id=request.lead_id,
                                     opportunity_id=request.opportunity_id, investor_id=request.investor_id)
            except ServiceError as exc:
                raise _refused(exc) from None
