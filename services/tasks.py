"""Tasks: created by workflows and definitions (call now, checklists, reminders) or by staff; listed per person;
completed, snoozed and reassigned by the people they belong to.

Each operation is one transaction: the change, its audit row, and — when the task lands on someone — their
notification with its email's event (services/notifications.py). A staff member acts on their own tasks and
unassigned ones; managers and admins on anyone's (services/acting.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from core.db import is_unique_violation
from definitions.staff import OWNER
from models.audit import record_audit
from models.base import utcnow
from models.investor import Investor
from models.lead import Lead
from models.opportunity import Opportunity
from models.task import Task, TaskStatus
from models.tenant import User
from models.timeline import TimelineEntry
from services.acting import Acting, Conflict, Invalid, NotFound, check_owner
from services.assignment import resolve
from services.notifications import notify

SNOOZE_LIMIT = timedelta(days=366)


def subject_of(session: Session, tenant_id: str, lead_id: str | None = None, opportunity_id: str | None = None,
               investor_id: str | None = None) -> Lead | Opportunity | Investor | None:
    """What a task is about: the deal when it names one, else the lead, else the investor (Invalid, naming the
    field, when one named is missing or another tenant's)."""
    for model, row_id in ((Opportunity, opportunity_id), (Lead, lead_id), (Investor, investor_id)):
        if row_id:
            row = session.get(model, row_id)
            if row is None or row.tenant_id != tenant_id:
                raise Invalid(f"{model.__tablename__[:-1]} {row_id} not found",
                               field={"opportunities": "opportunity_id", "leads": "lead_id",
                                      "investors": "investor_id"}[model.__tablename__])
            return row
    return None


def _assigned(session: Session, task: Task, user: User | None, actor_user_id: str | None) -> None:
    """Tell the new assignee (not someone who took the task themselves)."""
    if user is None or user.id == actor_user_id:
        return
    about = ""
    if task.lead_id:
        lead = session.get(Lead, task.lead_id)
        if lead is not None:
            about = " ".join(p for p in (lead.first_name, lead.last_name) if p) or lead.email or lead.phone or ""
    due = task.due_at.strftime("%Y-%m-%d %H:%M UTC")
    notify(session, user, kind="task.assigned", title=f"Task for you: {task.title}",
           body=(f"{task.title}" + (f" — {about}" if about else "") + f", due {due}."
                 + (f"\n\n{task.description}" if task.description else "")),
           key=f"task.assigned:{task.id}:{(task.updated_at or task.created_at).isoformat()}", task_id=task.id,
           lead_id=task.lead_id, opportunity_id=task.opportunity_id, investor_id=task.investor_id)


def create_task(session: Session, *, tenant_id: str, title: str, actor: str, description: str | None = None,
                lead_id: str | None = None, opportunity_id: str | None = None, investor_id: str | None = None,
                due_at: datetime | None = None, assignee: str | None = OWNER, team: str | None = None,
                idempotency_key: str | None = None, actor_user_id: str | None = None) -> Task:
    """Create the task, assigned per `assignee` (services.assignment.resolve: a user, round_robin, owner — the
    default — or None), with its timeline entry, audit row and the assignee's notification; commits. The same
    `idempotency_key` twice is one task (the first), also when two attempts race."""
    if idempotency_key:
        existing = session.exec(select(Task).where(Task.idempotency_key == idempotency_key)).first()
        if existing is not None:
            return existing
    lead_id, opportunity_id, investor_id = lead_id or None, opportunity_id or None, investor_id or None
    title = " ".join(title.split())
    if not title or len(title) > 300:
        raise Invalid("a task's title has 1 to 300 characters", field="title")
    subject = subject_of(session, tenant_id, lead_id, opportunity_id, investor_id)
    if isinstance(subject, Opportunity) and not lead_id:
        lead_id = subject.lead_id
    user = resolve(session, tenant_id, assignee, team=team, subject=subject)
    task = Task(tenant_id=tenant_id, lead_id=lead_id, opportunity_id=opportunity_id, investor_id=investor_id,
                title=title, description=description, assignee=user.id if user else None,
                due_at=due_at or utcnow(), idempotency_key=idempotency_key, created_by=actor)
    session.add(task)
    if lead_id or investor_id:
        session.add(TimelineEntry(tenant_id=tenant_id, lead_id=lead_id, investor_id=investor_id, kind="task.created",
                                  summary=f"Task: {title}" + (f" (for {user.name or user.email})" if user else ""),
                                  data={"task_id": task.id, "assignee": task.assignee},
                                  idempotency_key=f"{idempotency_key or task.id}:timeline"))
    record_audit(session, tenant_id=tenant_id, actor=actor, action="task.create", entity_type="task",
                 entity_id=task.id, after={"title": title, "assignee": task.assignee, "due_at": task.due_at.isoformat(),
                                           "lead_id": lead_id, "opportunity_id": opportunity_id,
                                           "investor_id": investor_id})
    session.flush()
    _assigned(session, task, user, actor_user_id)
    try:
        session.commit()
    except IntegrityError as exc:  # a concurrent attempt with the same key committed first: theirs stands
        session.rollback()
        if not (idempotency_key and is_unique_violation(exc)):
            raise
        return session.exec(select(Task).where(Task.idempotency_key == idempotency_key)).one()
    return task


@dataclass(frozen=True)
class TaskFilters:
    assignee: str | None = None  # a user id, or "none" for unassigned
    status: str = TaskStatus.open.value
    due_before: datetime | None = None
    lead_id: str | None = None


def task_list_query(tenant_id: str, filters: TaskFilters, now: datetime | None = None) -> SelectOfScalar[Task]:
    """The filtered, unordered query (api.paging orders it on (due_at, id) and pages it). Each assignee + status
    list is an index scan of ix_tasks_list_assignee, everyone's by status of ix_tasks_list_status; snoozed and
    open are both stored open, told apart by `snoozed_until` on the rows the scan reads."""
    now = now or utcnow()
    stored = TaskStatus.open.value if filters.status == TaskStatus.snoozed else filters.status
    query = select(Task).where(Task.tenant_id == tenant_id, Task.status == stored)
    if filters.status == TaskStatus.open:
        query = query.where(or_(col(Task.snoozed_until).is_(None), col(Task.snoozed_until) <= now))
    elif filters.status == TaskStatus.snoozed:
        query = query.where(col(Task.snoozed_until) > now)
    if filters.assignee == "none":
        query = query.where(col(Task.assignee).is_(None))
    elif filters.assignee:
        query = query.where(Task.assignee == filters.assignee)
    if filters.due_before is not None:
        query = query.where(col(Task.due_at) < filters.due_before)
    if filters.lead_id:
        query = query.where(Task.lead_id == filters.lead_id)
    return query


def get_task(session: Session, tenant_id: str, task_id: str) -> Task:
    task = session.get(Task, task_id)
    if task is None or task.tenant_id != tenant_id:  # another tenant's task is reported like a missing one
        raise NotFound(f"task {task_id} not found")
    return task


def _audit(session: Session, caller: Acting, task: Task, action: str, before: dict[str, Any],
           after: dict[str, Any]) -> None:
    record_audit(session, tenant_id=task.tenant_id, actor=caller.actor, action=action, entity_type="task",
                 entity_id=task.id, before=before, after=after)


def _timeline(session: Session, task: Task, kind: str, summary: str, key: str) -> None:
    if task.lead_id or task.investor_id:
        session.add(TimelineEntry(tenant_id=task.tenant_id, lead_id=task.lead_id, investor_id=task.investor_id,
                                  kind=kind, summary=summary, data={"task_id": task.id}, idempotency_key=key))


def complete_task(session: Session, caller: Acting, task: Task) -> Task:
    """Done (audited, on the lead's timeline); commits. A done task stays as it was; a cancelled one is a 409."""
    check_owner(caller, task.assignee, f"task {task.id}")
    if task.status == TaskStatus.done:
        return task
    if task.status != TaskStatus.open:
        raise Conflict(f"task {task.id} is {task.status}: only an open task can be completed")
    before = {"status": task.shown_status()}
    task.status, task.completed_at, task.completed_by = TaskStatus.done.value, utcnow(), caller.actor
    task.snoozed_until, task.updated_at = None, task.completed_at
    session.add(task)
    _audit(session, caller, task, "task.complete", before, {"status": task.status})
    _timeline(session, task, "task.completed", f"Task done: {task.title}", f"{task.id}:completed")
    session.commit()
    return task


def snooze_task(session: Session, caller: Acting, task: Task, until: datetime) -> Task:
    """Out of the open list until `until`, when it is due (audited); commits. Snoozing again moves it."""
    check_owner(caller, task.assignee, f"task {task.id}")
    if task.status != TaskStatus.open:
        raise Conflict(f"task {task.id} is {task.status}: only an open task can be snoozed")
    if until.tzinfo is None:
        raise Invalid("give `until` with its time zone (e.g. 2026-06-01T09:00:00-05:00)", field="until")
    now = utcnow()
    if not now < until <= now + SNOOZE_LIMIT:
        raise Invalid("`until` is a time in the coming year", field="until")
    before = {"due_at": task.due_at.isoformat(), "snoozed_until": task.snoozed_until.isoformat()
              if task.snoozed_until else None}
    task.snoozed_until = task.due_at = until
    task.updated_at = now
    session.add(task)
    _audit(session, caller, task, "task.snooze", before,
           {"due_at": until.isoformat(), "snoozed_until": until.isoformat()})
    session.commit()
    return task


def reassign_task(session: Session, caller: Acting, task: Task, assignee: str | None, *,
                  team: str | None = None) -> Task:
    """Give the task to `assignee` (a user, round_robin, owner, or None), audited, the new assignee notified;
    commits. Staff hand over their own tasks and take unassigned ones; managers and admins move anyone's."""
    check_owner(caller, task.assignee, f"task {task.id}")
    if task.status != TaskStatus.open:
        raise Conflict(f"task {task.id} is {task.status}: only an open task can be reassigned")
    subject = subject_of(session, task.tenant_id, task.lead_id, task.opportunity_id, task.investor_id)
    user = resolve(session, task.tenant_id, assignee, team=team, subject=subject)
    before = task.assignee
    task.assignee, task.updated_at = (user.id if user else None), utcnow()
    session.add(task)
    _audit(session, caller, task, "task.reassign", {"assignee": before}, {"assignee": task.assignee})
    if task.assignee != before:
        _assigned(session, task, user, caller.user_id)
    session.commit()
    return task
