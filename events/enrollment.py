"""Trigger matching: when an event happens to a lead, deal or investor, start the published definitions it
triggers (honouring `when` and re-enrollment rules) and pass the event to the definitions already running
for it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from celpy import json_to_cel
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import (
    SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy,
)
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core import search_attributes as sa
from core.db import is_unique_violation
from definitions.language import HANDED_OVER, REMOVED
from definitions.model import Definition
from services.definition_store import active
from models.base import utcnow
from models.definition import WorkflowExecution
from models.investor import Investor
from models.lead import Lead
from models.opportunity import Opportunity
from models.views import deal_view, investor_view, lead_view
from definitions.cel import program
from workflows.definition import DefinitionEvent, DefinitionRun, DefinitionWorkflow

log = logging.getLogger("dealflow.enrollment")


def matches(expression: str | None, views: dict[str, Any], data: dict[str, Any]) -> bool:
    if not expression:
        return True
    try:
        activation = {name: json_to_cel(views.get(name) or {}) for name in ("lead", "deal", "investor")}
        activation.update(event=json_to_cel(data), vars=json_to_cel({}))
        return bool(program(expression).evaluate(activation))
    except Exception as exc:  # noqa: BLE001 - a filter that cannot be evaluated does not enroll
        log.warning("trigger filter %r could not be evaluated: %s", expression, exc)
        return False


def dispatch(session: Session, client: Client, task_queue: str, kind: str, subject: Any, name: str,
             event_id: str, data: dict[str, Any], call: Callable[..., Any],
             published: list[Definition] | None = None,
             running: list[WorkflowExecution] | None = None) -> list[str]:
    """Something happened to a lead, deal or investor (`kind`): forward it to the subject's running
    definitions, then enroll it in the published definitions about that kind of subject it triggers. Returns
    the workflow ids started; the caller commits the executions recorded. Called by the relay from one of its
    threads (`call` runs a Temporal call on the worker's event loop); `published`: the tenant's active
    definitions when the caller read them already; `running`: the subject's running definition runs, likewise."""
    published = active(session, subject.tenant_id) if published is None else published
    # The subject's view is read only when a published definition could start (most events start none).
    candidates = any(d.subject == kind and d.trigger_event == name for d in published)
    views = _views(session, kind, subject) if candidates else {}
    return _dispatch(session, client, task_queue, subject.tenant_id, kind, subject.id, views,
                     name, event_id, data or {}, call=call, published=published, running=running)


SUBJECT_MODELS: dict[str, type] = {"lead": Lead, "deal": Opportunity, "investor": Investor}


def _views(session: Session, kind: str, subject: Any) -> dict[str, Any]:
    """What a definition about this subject sees: {lead, deal, investor} (the ones it has)."""
    if kind == "investor":
        return {"investor": investor_view(subject)}
    if kind == "deal":
        lead = session.get(Lead, subject.lead_id) if subject.lead_id else None
        return {"deal": deal_view(session, subject), "lead": lead_view(session, lead) if lead else {}}
    return {"lead": lead_view(session, subject), "deal": {}}


def run_definition(session: Session, client: Client, task_queue: str, tenant_id: str, kind: str, subject_id: str,
                   key: str, workflow_id: str, call: Callable[..., Any], commit: bool = True) -> str:
    """The `run_definition` action: start the newest published version of `key` for the same subject, whatever
    its trigger says (the calling definition decided, or staff did). Idempotent on `workflow_id`. Raises LookupError
    when there is no such published definition, or it is about another kind of subject."""
    if session.exec(select(WorkflowExecution).where(WorkflowExecution.workflow_id == workflow_id)).first():
        return workflow_id  # started by an earlier attempt of the same step
    definition = next((d for d in active(session, tenant_id) if d.key == key), None)
    if definition is None:
        raise LookupError(f"no published definition '{key}' (is it published, or retired?)")
    if definition.subject != kind:
        raise LookupError(f"definition '{key}' is about a {definition.subject}, not a {kind}")
    subject = session.get(SUBJECT_MODELS[kind], subject_id)
    if subject is None or subject.tenant_id != tenant_id:
        raise LookupError(f"{kind} {subject_id} not found")
    # A run started by another definition has keys of its own: the trigger's run of the same definition for the
    # same subject must not find this one's messages and take them for its own.
    enrollment = "by-" + workflow_id.rpartition("-by-")[2] if "-by-" in workflow_id else ""
    enroll(session, client, task_queue, tenant_id, kind, subject_id, _views(session, kind, subject), definition, call,
           workflow_id, enrollment)
    hand_over(session, client, tenant_id, subject_id, definition, workflow_id, call)
    if commit:  # (the relay commits with the batch it delivers)
        session.commit()
    return workflow_id


def _dispatch(session: Session, client: Client, task_queue: str, tenant_id: str, kind: str, subject_id: str,
              views: dict[str, Any], name: str, event_id: str, data: dict[str, Any],
              call: Callable[..., Any], deliver_to_running: bool = True,
              published: list[Definition] | None = None,
              running: list[WorkflowExecution] | None = None) -> list[str]:
    """`call(coroutine_function, *args)` runs a Temporal call on the worker's event loop from this thread.
    `published` and `running`: the tenant's active definitions and the subject's running runs when the caller
    has them already."""
    if running is None:
        running = running_runs(session, tenant_id, [subject_id]).get(subject_id, [])
    running = [e for e in running if e.status == "running" and e.tenant_id == tenant_id]
    for execution in running if deliver_to_running else []:
        try:
            call(_signal, client, execution.workflow_id, DefinitionEvent(name=name, event_id=event_id, data=data))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            execution.status, execution.closed_at = "closed", utcnow()  # finished meanwhile
            session.add(execution)

    published = active(session, tenant_id) if published is None else published
    started: list[str] = []
    eligible: list[tuple[Definition, int]] = []
    for definition in published:
        if definition.subject != kind or definition.trigger_event != name:
            continue
        if not matches(definition.trigger_when, views, data):
            continue
        # One read decides both whether to enroll and the run's workflow id (the n-th enrollment's id ends in
        # -n): two requests enrolling the same subject at once compute the same id, and Temporal starts it once.
        earlier = session.exec(select(WorkflowExecution).where(
            WorkflowExecution.tenant_id == tenant_id, WorkflowExecution.subject_id == subject_id,
            WorkflowExecution.definition_key == definition.key)
            .order_by(col(WorkflowExecution.started_at).desc())).all()
        if earlier and (definition.reenroll_after_seconds is None or utcnow() - earlier[0].started_at
                        < timedelta(seconds=definition.reenroll_after_seconds)):
            continue  # never re-enroll, or not yet
        eligible.append((definition, len(earlier)))
    # A definition another one replaces does not start when that one starts for this event, nor while a run of
    # that one is still going for the subject (it took the subject over, whichever event started it).
    by_key = {d.key: d for d in published}
    still_running = {e.definition_key for e in running if e.status == "running"}
    replaced = {key for d, _ in eligible for key in d.replaces} | {
        key for running_key in still_running if running_key in by_key for key in by_key[running_key].replaces}
    for definition, earlier in eligible:
        if definition.key in replaced:
            continue
        enrollment = f"e{earlier + 1}" if earlier else ""
        workflow_id = f"def-{tenant_id}-{definition.key}-{subject_id}" + (f"-{earlier + 1}" if earlier else "")
        started.append(enroll(session, client, task_queue, tenant_id, kind, subject_id, views, definition, call,
                              workflow_id, enrollment))
        hand_over(session, client, tenant_id, subject_id, definition, workflow_id, call)
    return started


def running_runs(session: Session, tenant_id: str | None, subject_ids: list[str]) -> dict[str, list[WorkflowExecution]]:
    """The running definition runs of these subjects (of any tenant when `tenant_id` is None; subject ids are
    unique), by subject id."""
    query = select(WorkflowExecution).where(
        col(WorkflowExecution.subject_id).in_(subject_ids), WorkflowExecution.workflow_type == "DefinitionWorkflow",
        WorkflowExecution.status == "running")
    if tenant_id is not None:
        query = query.where(WorkflowExecution.tenant_id == tenant_id)
    runs: dict[str, list[WorkflowExecution]] = {}
    for execution in session.exec(query).all():
        runs.setdefault(execution.subject_id, []).append(execution)
    return runs


def hand_over(session: Session, client: Client, tenant_id: str, subject_id: str, definition: Definition,
              workflow_id: str, call: Callable[..., Any]) -> None:
    """`definition` started for the subject: the running enrollments of the definitions it `replaces` end
    (told once per new run; a run that finished meanwhile needs nothing)."""
    if not definition.replaces:
        return
    running = session.exec(select(WorkflowExecution).where(
        WorkflowExecution.tenant_id == tenant_id, WorkflowExecution.subject_id == subject_id,
        WorkflowExecution.workflow_type == "DefinitionWorkflow", WorkflowExecution.status == "running",
        col(WorkflowExecution.definition_key).in_(definition.replaces))).all()
    event = DefinitionEvent(name=HANDED_OVER, event_id=f"{HANDED_OVER}:{workflow_id}",
                            data={"by": definition.key, "workflow_id": workflow_id})
    for execution in running:
        try:
            call(_signal, client, execution.workflow_id, event)
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise


def remove(client: Client, workflow_id: str, event_id: str, data: dict[str, Any], call: Callable[..., Any]) -> str:
    """Staff removed the subject from this run: tell it (it ends; a run that ended meanwhile needs nothing)."""
    try:
        call(_signal, client, workflow_id, DefinitionEvent(name=REMOVED, event_id=event_id, data=data))
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        return f"{workflow_id} had ended already"
    return f"removed from {workflow_id}"


def enroll(session: Session, client: Client, task_queue: str, tenant_id: str, kind: str, subject_id: str,
           views: dict[str, Any], definition: Definition, call: Callable[..., Any], workflow_id: str,
           enrollment: str = "") -> str:
    """Start one run of `definition` for the subject under `workflow_id` (an existing run with that id is
    reused) and record it once (the caller commits)."""
    try:
        handle = call(_start, client, task_queue, workflow_id, tenant_id, subject_id, views, definition, enrollment)
        run_id = handle.result_run_id
    except WorkflowAlreadyStartedError as exc:  # started and finished by an earlier delivery of this event
        run_id = exc.run_id
    try:
        with session.begin_nested():
            session.add(WorkflowExecution(
                tenant_id=tenant_id, workflow_id=workflow_id, run_id=run_id,
                workflow_type="DefinitionWorkflow", definition_key=definition.key,
                definition_version=definition.version, subject_type=kind, subject_id=subject_id))
    except IntegrityError as exc:  # a concurrent enrollment started the same run (USE_EXISTING) and recorded it
        if not is_unique_violation(exc):
            raise
    return workflow_id


RPC_TIMEOUT = timedelta(seconds=10)


async def _signal(client: Client, workflow_id: str, event: DefinitionEvent) -> None:
    await client.get_workflow_handle(workflow_id).signal(DefinitionWorkflow.event, event, rpc_timeout=RPC_TIMEOUT)


async def _start(client: Client, task_queue: str, workflow_id: str, tenant_id: str, subject_id: str,
                 views: dict[str, Any], definition: Definition, enrollment: str = ""):
    pairs = [SearchAttributePair(sa.TENANT_ID, tenant_id), SearchAttributePair(sa.DEFINITION_KEY, definition.key)]
    if views.get("lead", {}).get("id"):
        pairs.append(SearchAttributePair(sa.LEAD_ID, views["lead"]["id"]))
    if views.get("deal", {}).get("id"):
        pairs.append(SearchAttributePair(sa.OPPORTUNITY_ID, views["deal"]["id"]))
    return await client.start_workflow(
        DefinitionWorkflow.run, DefinitionRun(tenant_id=tenant_id, subject_id=subject_id, definition=definition,
                                              enrollment=enrollment),
        id=workflow_id, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        # A redelivered event must not start a run that already finished again.
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(pairs), rpc_timeout=RPC_TIMEOUT,
        static_summary=f"{definition.key} v{definition.version} for {kind_of(views)} {subject_id}")


def kind_of(views: dict[str, Any]) -> str:
    return "investor" if views.get("investor") else "deal" if views.get("deal") else "lead"


def on_schedule(session: Session, client: Client, task_queue: str, tenant_id: str, event_id: str,
                call: Callable[..., Any], limit: int = 10_000) -> list[str]:
    """`schedule.daily`: offer every live lead of the tenant to the definitions triggered by it (their `when`
    filter and re-enrollment rules decide). Only when such a definition is published."""
    if not any(d.trigger_event == "schedule.daily" and d.subject == "lead" for d in active(session, tenant_id)):
        return []
    started: list[str] = []
    leads = session.exec(select(Lead).where(Lead.tenant_id == tenant_id, col(Lead.deleted_at).is_(None),
                                            col(Lead.duplicate_of).is_(None)).limit(limit)).all()
    for lead in leads:
        started += _dispatch(session, client, task_queue, tenant_id, "lead", lead.id,
                             _views(session, "lead", lead), "schedule.daily", event_id, {},
                             call=call, deliver_to_running=False)
    return started
