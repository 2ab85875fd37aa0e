"""Tasks: a person's list (`assignee=me`), the team's, a lead's; create, complete, snooze, reassign.

Staff act on their own tasks and unassigned ones, managers and admins on anyone's (services/acting.py); every
change is audited, and a task landing on someone notifies them (in-app and by email, in the same transaction)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query, Response
from pydantic import ConfigDict, Field

from api.deps import PrincipalDep, SessionDep, Staff, me
from api.errors import Problem
from api.paging import page
from definitions.staff import Team
from models.input import Input, OneLine
from models.task import Task, TaskPage, TaskPublic, TaskStatus
from services.tasks import (
    TaskFilters, complete_task, create_task, get_task, reassign_task, snooze_task, task_list_query,
)

router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

ASSIGNEE = ("a user's id or email, `round_robin` (the next of `team` in turn), `owner` (the owner of what the task "
            "is about), or null for nobody")


class TaskCreate(Input):
    model_config = ConfigDict(extra="forbid")
    title: OneLine = Field(min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=5000)
    due_at: datetime | None = Field(default=None, description="default: now")
    lead_id: str | None = Field(default=None, max_length=40)
    opportunity_id: str | None = Field(default=None, max_length=40)
    investor_id: str | None = Field(default=None, max_length=40)
    assignee: str | None = Field(default="me", max_length=320,
                                 description="`me` (the default; nobody for a tenant-level key), or " + ASSIGNEE)
    team: Team | None = None


class SnoozeBody(Input):
    model_config = ConfigDict(extra="forbid")
    until: datetime = Field(description="when the task is back in the open list, and due (with its time zone)")


class ReassignBody(Input):
    model_config = ConfigDict(extra="forbid")
    assignee: str | None = Field(max_length=320, description=ASSIGNEE)
    team: Team | None = Field(default=None, description="round_robin's team (default: the subject's)")


def _assignee(principal, value: str | None, *, me_or_nobody: bool = False) -> str | None:
    if value == "me" and me_or_nobody and principal.user_id is None:
        return None  # a tenant-level key's own task: nobody's
    return me(principal, value) or None


@router.get("", response_model=TaskPage)
def list_tasks(
    session: SessionDep, principal: PrincipalDep,
    assignee: Annotated[str | None, Query(max_length=40, description="`me`, a user id, or `none` (unassigned)")
                        ] = None,
    status: TaskStatus = TaskStatus.open,
    due_before: datetime | None = None,
    lead_id: Annotated[str | None, Query(max_length=40)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: str | None = None,
) -> TaskPage:
    """Soonest due first (keyset cursor). `status=open` leaves snoozed tasks out until their snooze ends."""
    if assignee == "me":
        if principal.user_id is None:
            raise Problem(422, "assignee=me needs a key that belongs to a user (this one is the tenant's)",
                          errors=[{"field": "assignee", "message": "the key belongs to no user"}])
        assignee = principal.user_id
    if due_before is not None and due_before.tzinfo is None:
        raise Problem(422, "give due_before with its time zone", errors=[{"field": "due_before",
                                                                          "message": "no time zone"}])
    filters = TaskFilters(assignee=assignee, status=status.value, due_before=due_before, lead_id=lead_id)
    items, next_cursor = page(session, task_list_query(principal.tenant_id, filters), Task, limit, cursor,
                              by="due_at", descending=False)
    return TaskPage(items=[TaskPublic.of(t) for t in items], next_cursor=next_cursor)


@router.post("", status_code=201, response_model=TaskPublic)
def create(body: TaskCreate, response: Response, session: SessionDep, principal: Staff) -> TaskPublic:
    """A task by hand (a follow-up, a reminder); for the caller by default."""
    if body.due_at is not None and body.due_at.tzinfo is None:
        raise Problem(422, "give due_at with its time zone", errors=[{"field": "due_at", "message": "no time zone"}])
    task = create_task(session, tenant_id=principal.tenant_id, title=body.title, description=body.description,
                       lead_id=body.lead_id, opportunity_id=body.opportunity_id, investor_id=body.investor_id,
                       due_at=body.due_at, assignee=_assignee(principal, body.assignee, me_or_nobody=True),
                       team=body.team.value if body.team else None, actor=principal.actor,
                       actor_user_id=principal.user_id)
    response.headers["Location"] = f"/api/v1/tasks/{task.id}"
    return TaskPublic.of(task)


@router.get("/{task_id}", response_model=TaskPublic)
def detail(task_id: str, session: SessionDep, principal: PrincipalDep) -> TaskPublic:
    return TaskPublic.of(get_task(session, principal.tenant_id, task_id))


@router.post("/{task_id}/complete", response_model=TaskPublic)
def complete(task_id: str, session: SessionDep, principal: Staff) -> TaskPublic:
    """Done. Completing a done task changes nothing; a cancelled one is a 409."""
    return TaskPublic.of(complete_task(session, principal, get_task(session, principal.tenant_id, task_id)))


@router.post("/{task_id}/snooze", response_model=TaskPublic)
def snooze(task_id: str, body: SnoozeBody, session: SessionDep, principal: Staff) -> TaskPublic:
    """Out of the open list until `until` (within a year), and due then."""
    return TaskPublic.of(snooze_task(session, principal, get_task(session, principal.tenant_id, task_id),
                                     body.until))


@router.post("/{task_id}/reassign", response_model=TaskPublic)
def reassign(task_id: str, body: ReassignBody, session: SessionDep, principal: Staff) -> TaskPublic:
    """To another person (notified), to the next of a team in turn, or to nobody."""
    task = get_task(session, principal.tenant_id, task_id)
    return TaskPublic.of(reassign_task(session, principal, task, _assignee(principal, body.assignee),
                                       team=body.team.value if body.team else None))
