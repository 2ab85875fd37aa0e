"""Trigger matching: when an event happens to a lead, start the published definitions it triggers
(honouring `when` and re-enrollment rules) and pass the event to the definitions already running for it."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import anyio.from_thread
import celpy
from celpy import json_to_cel
from sqlmodel import Session, col, select
from temporalio.client import Client
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy
from temporalio.service import RPCError, RPCStatusCode

from core import search_attributes as sa
from definitions.store import active
from models.base import utcnow
from models.definition import WorkflowExecution
from models.lead import Lead
from models.views import lead_view
from workflows.definition import _FUNCTIONS, DefinitionEvent, DefinitionRun, DefinitionWorkflow

log = logging.getLogger("dealflow.enrollment")
_CEL = celpy.Environment()


def matches(expression: str | None, lead: dict[str, Any], data: dict[str, Any]) -> bool:
    if not expression:
        return True
    try:
        activation = {"lead": json_to_cel(lead), "event": json_to_cel(data), "vars": json_to_cel({})}
        return bool(_CEL.program(_CEL.compile(expression), functions=_FUNCTIONS).evaluate(activation))
    except Exception as exc:  # noqa: BLE001 - a filter that cannot be evaluated does not enroll
        log.warning("trigger filter %r could not be evaluated for lead %s: %s", expression, lead.get("id"), exc)
        return False


def on_event(session: Session, client: Client, task_queue: str, lead: Lead, name: str, event_id: str,
             data: dict[str, Any] | None = None) -> list[str]:
    """Forward the event to running definitions of the lead, then enroll it where triggered.
    Returns the workflow ids started. Call it from a worker thread (it reaches the event loop for Temporal
    calls and blocks on the database)."""
    data = data or {}
    running = session.exec(select(WorkflowExecution).where(
        WorkflowExecution.tenant_id == lead.tenant_id, WorkflowExecution.subject_id == lead.id,
        WorkflowExecution.workflow_type == "DefinitionWorkflow", WorkflowExecution.status == "running")).all()
    for execution in running:
        try:
            anyio.from_thread.run(_signal, client, execution.workflow_id,
                                  DefinitionEvent(name=name, event_id=event_id, data=data))
        except RPCError as exc:
            if exc.status != RPCStatusCode.NOT_FOUND:
                raise
            execution.status, execution.closed_at = "closed", utcnow()  # finished meanwhile
            session.add(execution)

    started: list[str] = []
    view = lead_view(session, lead)
    for definition in active(session, lead.tenant_id):
        if definition.trigger_event != name or not matches(definition.trigger_when, view, data):
            continue
        previous = session.exec(select(WorkflowExecution).where(
            WorkflowExecution.tenant_id == lead.tenant_id, WorkflowExecution.subject_id == lead.id,
            WorkflowExecution.definition_key == definition.key)
            .order_by(col(WorkflowExecution.started_at).desc())).first()
        if previous and (definition.reenroll_after_seconds is None or utcnow() - previous.started_at
                         < timedelta(seconds=definition.reenroll_after_seconds)):
            continue  # never re-enroll, or not yet
        count = len(session.exec(select(WorkflowExecution.id).where(
            WorkflowExecution.subject_id == lead.id, WorkflowExecution.definition_key == definition.key)).all())
        workflow_id = f"def-{lead.tenant_id}-{definition.key}-{lead.id}" + (f"-{count + 1}" if count else "")
        handle = anyio.from_thread.run(_start, client, task_queue, workflow_id, lead, definition)
        session.add(WorkflowExecution(
            tenant_id=lead.tenant_id, workflow_id=workflow_id, run_id=handle.result_run_id,
            workflow_type="DefinitionWorkflow", definition_key=definition.key, definition_version=definition.version,
            subject_type="lead", subject_id=lead.id))
        started.append(workflow_id)
    session.commit()
    return started


async def _signal(client: Client, workflow_id: str, event: DefinitionEvent) -> None:
    await client.get_workflow_handle(workflow_id).signal(DefinitionWorkflow.event, event)


async def _start(client: Client, task_queue: str, workflow_id: str, lead: Lead, definition):
    return await client.start_workflow(
        DefinitionWorkflow.run, DefinitionRun(tenant_id=lead.tenant_id, subject_id=lead.id, definition=definition),
        id=workflow_id, task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
        search_attributes=TypedSearchAttributes([
            SearchAttributePair(sa.TENANT_ID, lead.tenant_id), SearchAttributePair(sa.LEAD_ID, lead.id),
            SearchAttributePair(sa.DEFINITION_KEY, definition.key)]))
